"""JAX: the kernel's function under ``jax.jit`` on a CPU or GPU device, timed as JAX's maintainers time it.

Each sample is ``f(*inputs).block_until_ready()`` (JAX dispatches asynchronously, on CPUs too, so a call
without it times the dispatch only).  Inputs are ``jax.device_put`` on the device once per point, waited for, the
transfer timed apart.  Tracing and XLA compilation happen at the first call of each new shape or dtype: that lands
in ``first_call_s``, and the jitted function's cache size read around every block of samples (``_cache_size()``)
reports compilations during the samples as ``recompiles``.  f64/i64 points switch ``jax_enable_x64`` on (JAX
otherwise turns f64 inputs into f32 silently); an input that still arrives narrower is refused.  On GPUs JAX is
imported with ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (unless set), so it allocates as it goes, as the others do.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...errors import PeerUnavailable
from ..impl import Impl, Prepared, _host
from ..kernel import Kernel
from ..modules import _ModuleCache
from .peer import function, make_impl, put_inputs, require, waited_inside, wrapped

KIND = "jax"


def jax(device: str = "cpu", variant: str | None = None, *, name: str | None = None) -> Impl:
    """JAX on ``device`` ("cpu" or "cuda") running ``Kernel.peers["jax"]`` (``variant``: one of a dict's keys)."""
    return make_impl(KIND, device, variant, name)


def _jax() -> Any:
    """jax, imported so that it shares the GPU: XLA would otherwise take 75% of the GPU's memory at its first use
    and starve PyTorch, CuPy and Futhark in the same process (set XLA_PYTHON_CLIENT_PREALLOCATE to override)."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return require("jax", KIND)


def _device(jx: Any, device: str) -> Any:
    platform = "cpu" if device == "cpu" else "gpu"
    try:
        return jx.devices(platform)[0]
    except Exception as exc:  # noqa: BLE001 - RuntimeError: no such backend
        raise PeerUnavailable("jax", f"JAX has no {platform} device here ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})",
                              "pip install 'jax[cuda13]'" if platform == "gpu" else "pip install jax") from None


def available(device: str = "cpu") -> tuple[bool, str]:
    try:
        jx = _jax()
        dev = _device(jx, device)
    except PeerUnavailable as exc:
        return False, str(exc)
    return True, f"jax {jx.__version__} on {getattr(dev, 'device_kind', dev)}"


def jitted(fn: Any) -> Any:
    """``fn`` under ``jax.jit`` (once per process), or ``fn`` itself when it is jitted already (static
    arguments are the user's to declare: ``jax.jit(f, static_argnums=...)``)."""
    jx = _jax()
    if hasattr(fn, "lower") and hasattr(fn, "_cache_size"):
        return fn
    return wrapped((KIND, fn), lambda: jx.jit(fn))


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    jx = _jax()
    dev = _device(jx, impl.device)
    wide = any(isinstance(v, np.ndarray | np.generic) and v.dtype.itemsize == 8 and v.dtype.kind in "fiuc"
               for v in inputs)
    if (dtype in ("f64", "i64") or wide) and not jx.config.jax_enable_x64:
        jx.config.update("jax_enable_x64", True)   # else f64 inputs silently become f32
    f = jitted(function(kernel, KIND, impl.variant))
    h2d, ins = put_inputs(inputs, lambda v: jx.device_put(v, dev), jx.block_until_ready)
    for v, a in zip(inputs, ins):
        if isinstance(v, np.ndarray) and np.dtype(a.dtype) != v.dtype:
            raise TypeError(f"kernel {kernel.name!r}: JAX holds a {v.dtype} input as {a.dtype} (jax_enable_x64 "
                            "is off and could not be switched on); set JAX_ENABLE_X64=1 before importing jax")
    block = jx.block_until_ready

    def call():
        # JAX's own way: the result waited for.  An array's method, as JAX's documentation times calls:
        # jax.block_until_ready(out) costs 13 us more per call (measured, jax 0.10 CPU); pytrees go through it
        out = f(*ins)
        wait = getattr(out, "block_until_ready", None)
        if wait is not None:
            wait()
        else:
            block(out)
        return out
    counter = getattr(f, "_cache_size", None)
    name = "host CPU" if impl.device == "cpu" else str(getattr(dev, "device_kind", dev))
    return Prepared(call, _host, name, h2d, sync=waited_inside("block_until_ready"), compiles=counter)
