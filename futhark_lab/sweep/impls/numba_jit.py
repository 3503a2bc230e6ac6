"""Numba: ``numba.njit`` on the CPU, ``numba.cuda`` kernels (a launcher of the user's ``@cuda.jit`` kernels) on
NVIDIA GPUs, timed as Numba's documentation times them.

CPU: the kernel's function compiled by ``njit`` once per process (or the user's dispatcher as it is); compilation
happens at the first call of each new type signature (``first_call_s``); ``len(dispatcher.signatures)`` read
around every block of samples reports compilations during them as ``recompiles``.  The call returns when the work
is done (no device), so a sample is the call.
GPU: inputs copied once per point with ``cuda.to_device`` and waited for (``h2d_s``); each sample is the launcher's
call + ``cuda.synchronize()``; device spans with ``cuda.event`` pairs on the default stream.  A launcher may list
its kernels as ``launcher.kernels``; their compiled overloads are then counted the same way.
"""

from __future__ import annotations

from typing import Any


from ...errors import PeerUnavailable
from ..impl import Impl, Prepared, _host
from ..kernel import Kernel
from ..modules import _ModuleCache
from .peer import function, make_impl, put_inputs, require, wrapped

KIND = "numba"


def numba(device: str = "cpu", variant: str | None = None, *, name: str | None = None) -> Impl:
    """``numba.njit`` of ``Kernel.peers["numba"]`` on "cpu", or ``Kernel.peers["numba-cuda"]`` on "cuda"."""
    return make_impl(KIND, device, variant, name)


def _cuda() -> Any:
    require("numba", "numba-cuda")
    cuda = require("numba.cuda", "numba-cuda")
    try:
        ok = cuda.is_available()
    except Exception:  # noqa: BLE001
        ok = False
    if not ok:
        raise PeerUnavailable("numba-cuda", "numba.cuda finds no usable CUDA GPU and driver (numba.cuda."
                              "is_available() is False)", "pip install numba-cuda  (and an NVIDIA driver)")
    _compiles(cuda)
    return cuda


_PROBE: list = []


def _compiles(cuda: Any) -> None:
    """Compile and launch a one-element kernel once per process: a numba-cuda that imports but cannot compile
    against this NumPy (numba-cuda 0.30 calls np.row_stack, gone in NumPy 2.5) is unavailable, said once with its
    cause, instead of failing every point."""
    if not _PROBE:
        try:
            import numpy as np

            @cuda.jit
            def _one(a):
                a[0] = 1.0
            out = cuda.to_device(np.zeros(1, np.float32))
            _one[1, 1](out)
            cuda.synchronize()
            _PROBE.append(None)
        except Exception as exc:  # noqa: BLE001 - whatever breaks, the peer is not usable here
            import importlib.metadata

            import numpy as np
            try:
                version = importlib.metadata.version("numba-cuda")
            except importlib.metadata.PackageNotFoundError:   # numba's built-in CUDA target (numba < 0.61)
                version = "built into numba"
            _PROBE.append(f"numba.cuda cannot compile a kernel here ({type(exc).__name__}: {exc}; numba-cuda "
                          f"{version}, NumPy {np.__version__})")
    if _PROBE[0] is not None:
        hint = "pip install -U numba-cuda  (a release that supports this NumPy)"
        if "row_stack" in _PROBE[0]:   # NVIDIA/numba-cuda#907: 0.30.4 is the last release, in maintenance mode
            hint = ("pip install 'numpy<2.5'  (numba-cuda 0.30.4 registers np.row_stack, which NumPy 2.5 removed: "
                    "NVIDIA/numba-cuda#907; or, in your own process, np.row_stack = np.vstack before the first kernel)")
        raise PeerUnavailable("numba-cuda", _PROBE[0], hint)


def available(device: str = "cpu") -> tuple[bool, str]:
    try:
        if device == "cpu":
            nb = require("numba", KIND)
            return True, f"numba {nb.__version__} (njit)"
        cuda = _cuda()
        return True, f"numba.cuda on {_name(cuda)}"
    except PeerUnavailable as exc:
        return False, str(exc)


def _name(cuda: Any) -> str:
    try:
        n = cuda.get_current_device().name
    except AttributeError:       # Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) has no devices to name
        return "numba.cuda simulator"
    return n.decode() if isinstance(n, bytes) else str(n)


def njitted(fn: Any) -> Any:
    """``numba.njit(fn)`` once per process, or ``fn`` when it is a Numba dispatcher already."""
    nb = require("numba", KIND)
    if hasattr(fn, "signatures") and hasattr(fn, "py_func"):
        return fn
    return wrapped((KIND, fn), lambda: nb.njit(fn))


def _overloads(launcher: Any):
    kernels = getattr(launcher, "kernels", None)
    if not kernels:
        return None
    return lambda: sum(len(getattr(k, "overloads", {})) for k in kernels)


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    if impl.device == "cpu":
        f = njitted(function(kernel, KIND, impl.variant))
        return Prepared(lambda: f(*inputs), _host, "host CPU", compiles=lambda: len(f.signatures))
    cuda = _cuda()
    launcher = function(kernel, "numba-cuda", impl.variant)
    h2d, ins = put_inputs(inputs, cuda.to_device, lambda _: cuda.synchronize())
    from ...measure.devicetime import NumbaEventTimer
    call = lambda: launcher(*ins)  # noqa: E731
    return Prepared(call, _host, _name(cuda), h2d, sync=cuda.synchronize, measure_device=impl.device,
                    device_timer=NumbaEventTimer(), launch=call, compiles=_overloads(launcher))


