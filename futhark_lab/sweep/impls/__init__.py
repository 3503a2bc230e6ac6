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


#: (peer name on the command line, module, devices it can run on)
PEER_DEVICES = (("jax", jax_jit, ("cpu", "cuda")), ("torch-compile", torch_compile, ("cpu", "cuda")),
                ("numba", numba_jit, ("cpu", "cuda")), ("cupy", cupy_gpu, ("cuda",)),
                ("triton", triton_kernel, ("cuda",)), ("pycuda", pycuda_gpu, ("cuda",)))


def peer_status() -> list[dict]:
    """Which peers work here and why the others don't (the doctor's peer table): one dict per peer and device
    with ``peer``, ``device``, ``works``, ``detail`` (version and device, or the reason with its install line)."""
    out = []
    for name, module, devices in PEER_DEVICES:
        for dev in devices:
            try:
                works, detail = module.available(dev)
            except Exception as exc:  # noqa: BLE001 - a broken install says so here, never crashes the doctor
                works, detail = False, f"{type(exc).__name__}: {exc}"
            out.append({"peer": name if not (name == "numba" and dev == "cuda") else "numba-cuda", "device": dev,
                        "works": works, "detail": detail})
    return out


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    """``impl`` made ready to be called on ``inputs`` (on its device, its synchronisation and timers found)."""
    kind = KINDS.get(impl.kind)
    if kind is None:
        raise ValueError(f"unknown implementation kind {impl.kind!r}")
    return kind.prepare(impl, kernel, dtype, inputs, modules)
