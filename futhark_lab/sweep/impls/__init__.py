"""The kinds of implementation a sweep can time, one module each: a new peer is one new module listed here.

Peers (``PEER_MODULES``) also answer ``available(device) -> (works, why)`` for the doctor and the command line.
"""

from __future__ import annotations

from ..impl import Impl, Prepared
from ..kernel import Kernel
from ..modules import _ModuleCache
from . import (
    cupy_gpu,
    custom,
    futhark,
    jax_jit,
    numba_jit,
    numpy_cpu,
    pycuda_gpu,
    torch_compile,
    torch_eager,
    triton_kernel,
)

PEER_MODULES = (jax_jit, torch_compile, numba_jit, cupy_gpu, triton_kernel, pycuda_gpu)
KINDS = {m.KIND: m for m in (futhark, torch_eager, numpy_cpu, custom) + PEER_MODULES}


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    """``impl`` made ready to be called on ``inputs`` (on its device, its synchronisation and timers found)."""
    kind = KINDS.get(impl.kind)
    if kind is None:
        raise ValueError(f"unknown implementation kind {impl.kind!r}")
    return kind.prepare(impl, kernel, dtype, inputs, modules)
