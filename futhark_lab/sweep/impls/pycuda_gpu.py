"""PyCUDA: a launcher of the user's ``SourceModule`` kernels, or of PyCUDA's ``ElementwiseKernel`` /
``ReductionKernel``, taking and returning ``pycuda.gpuarray`` arrays, timed as PyCUDA's examples time kernels:
``pycuda.driver.Context.synchronize()`` per sample, ``pycuda.driver.Event`` pairs for the device span.

PyCUDA works in device 0's primary context, pushed once and left current in this thread (the context PyTorch and
CuPy use; ``pycuda.autoinit`` would make another one).  Inputs
are ``gpuarray.to_gpu``-ed once per point (``h2d_s``).  ``SourceModule`` compiles with nvcc when the launcher first
builds it, which lands in ``first_call_s`` when the launcher builds lazily (the suite's do).
"""

from __future__ import annotations

from typing import Any

from ...errors import PeerUnavailable
from ..impl import Impl, Prepared, _host
from ..kernel import Kernel
from ..modules import _ModuleCache
from .peer import function, make_impl, put_inputs, require

KIND = "pycuda"


def pycuda(variant: str | None = None, *, name: str | None = None) -> Impl:
    """The launcher ``Kernel.peers["pycuda"]`` on CUDA device 0 (``variant``: a dict's key)."""
    return make_impl(KIND, "cuda", variant, name)


_CONTEXT: list = []


def _pycuda() -> tuple[Any, Any]:
    """pycuda.driver and pycuda.gpuarray with device 0's primary context current (the context PyTorch, CuPy and
    the CUDA runtime use, so their arrays and PyCUDA's live in one context; ``pycuda.autoinit`` would make a
    second one and leave it current under them)."""
    drv = require("pycuda.driver", KIND)
    gpuarray = require("pycuda.gpuarray", KIND)
    if not _CONTEXT:
        try:
            drv.init()
            if drv.Device.count() < 1:
                raise RuntimeError("no CUDA device")
            ctx = drv.Device(0).retain_primary_context()
            ctx.push()
        except Exception as exc:  # noqa: BLE001 - pycuda.driver.Error and friends
            raise PeerUnavailable(KIND, f"PyCUDA could not use a CUDA device ({type(exc).__name__}: {exc})",
                                  "an NVIDIA GPU and driver") from None
        _CONTEXT.append(ctx)
        import atexit
        atexit.register(_pop, ctx)  # as pycuda.autoinit does: PyCUDA aborts the process at exit over a pushed context
    return drv, gpuarray


def _pop(ctx: Any) -> None:
    import contextlib
    with contextlib.suppress(Exception):
        ctx.pop()


def available(device: str = "cuda") -> tuple[bool, str]:
    try:
        drv, _ = _pycuda()
        return True, f"pycuda on {drv.Context.get_device().name()}"
    except PeerUnavailable as exc:
        return False, str(exc)


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    drv, gpuarray = _pycuda()
    launcher = function(kernel, KIND, impl.variant)
    sync = drv.Context.synchronize
    h2d, ins = put_inputs(inputs, gpuarray.to_gpu, lambda _: sync())
    from ...measure.devicetime import PycudaEventTimer
    call = lambda: launcher(*ins)  # noqa: E731
    return Prepared(call, _host, drv.Context.get_device().name(), h2d, sync=sync, measure_device="cuda",
                    device_timer=PycudaEventTimer(), launch=call)
