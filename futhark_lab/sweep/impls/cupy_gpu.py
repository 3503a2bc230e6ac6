"""CuPy: the kernel's function of CuPy arrays (plain CuPy, or the user's ``ElementwiseKernel`` /
``ReductionKernel`` / ``RawKernel``) on the current device, timed as ``cupyx.profiler.benchmark`` times it: the host
clock around call + stream synchronisation, and CUDA events on the current stream for the device span.

Inputs are ``cupy.asarray``-ed once per point and waited for (``h2d_s``).  CuPy compiles a kernel (its own
elementwise/reduction kernels included) at its first call for each dtype and caches it on disk, so compile time
lands in ``first_call_s``.
"""

from __future__ import annotations

from typing import Any

from ...errors import PeerUnavailable
from ..impl import Impl, Prepared, _host
from ..kernel import Kernel
from ..modules import _ModuleCache
from .peer import function, make_impl, put_inputs, require

KIND = "cupy"


def cupy(variant: str | None = None, *, name: str | None = None) -> Impl:
    """CuPy on the current CUDA device running ``Kernel.peers["cupy"]`` (``variant``: a dict's key)."""
    return make_impl(KIND, "cuda", variant, name)


def _cupy() -> Any:
    cp = require("cupy", KIND)
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - no driver: CUDARuntimeError
        raise PeerUnavailable(KIND, f"CuPy finds no CUDA device ({type(exc).__name__}: {exc})",
                              "an NVIDIA driver, and the CuPy wheel for its CUDA: pip install cupy-cuda13x") from None
    if n < 1:
        raise PeerUnavailable(KIND, "CuPy finds no CUDA device", "an NVIDIA GPU and driver")
    return cp


def _name(cp: Any) -> str:
    n = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"]
    return n.decode() if isinstance(n, bytes) else str(n)


def available(device: str = "cuda") -> tuple[bool, str]:
    try:
        cp = _cupy()
        return True, f"cupy {cp.__version__} on {_name(cp)}"
    except PeerUnavailable as exc:
        return False, str(exc)


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    cp = _cupy()
    fn = function(kernel, KIND, impl.variant)
    stream_sync = lambda: cp.cuda.get_current_stream().synchronize()  # noqa: E731
    h2d, ins = put_inputs(inputs, cp.asarray, lambda _: stream_sync())
    from ...measure.devicetime import CupyEventTimer
    call = lambda: fn(*ins)  # noqa: E731
    stream_sync.__qualname__ = "cupy current stream synchronize"
    return Prepared(call, _host, _name(cp), h2d, sync=stream_sync, measure_device="cuda",
                    device_timer=CupyEventTimer(), launch=call)
