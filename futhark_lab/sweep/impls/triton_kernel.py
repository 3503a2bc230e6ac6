"""Triton: a user's ``@triton.jit`` kernel with its launcher (a function of CUDA tensors that allocates the output,
picks the grid and launches), timed as PyTorch work is: ``torch.cuda.synchronize`` per sample, CUDA events on
PyTorch's current stream for the device span (what ``triton.testing.do_bench`` records).

Inputs are moved to the GPU once per point (``h2d_s``).  Triton compiles a kernel at its first launch for each
specialisation (dtypes, constexprs, divisibility of sizes and pointers by 16): that lands in ``first_call_s``.  A
launcher may list its kernels as ``launcher.kernels``; their in-memory caches are then counted around every block of
samples, and a compilation there is a ``recompile``.
"""

from __future__ import annotations

from typing import Any

from ...errors import PeerUnavailable
from ..impl import Impl, Prepared, _host
from ..kernel import Kernel
from ..modules import _ModuleCache
from .peer import function, make_impl, put_inputs, require

KIND = "triton"


def triton(variant: str | None = None, *, name: str | None = None) -> Impl:
    """The launcher ``Kernel.peers["triton"]`` on the current CUDA device (``variant``: a dict's key)."""
    return make_impl(KIND, "cuda", variant, name)


def _check() -> Any:
    torch = require("torch", KIND)
    require("triton", KIND)
    if not torch.cuda.is_available():
        raise PeerUnavailable(KIND, "PyTorch sees no CUDA device (Triton's launchers take CUDA tensors)",
                              "an NVIDIA GPU, and torch's CUDA wheel (which brings triton)")
    return torch


def available(device: str = "cuda") -> tuple[bool, str]:
    try:
        torch = _check()
        import triton as _triton
        return True, f"triton {_triton.__version__} on {torch.cuda.get_device_name()}"
    except PeerUnavailable as exc:
        return False, str(exc)


def compiled_count(kernels: Any) -> int:
    """Kernels in the in-memory caches of Triton ``JITFunction``s (``device_caches``: per device, a tuple whose
    first item is the cache keyed by specialisation)."""
    n = 0
    for k in kernels:
        for entry in getattr(k, "device_caches", {}).values():
            cache = entry[0] if isinstance(entry, tuple) else entry
            n += len(cache) if hasattr(cache, "__len__") else 0
    return n


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    torch = _check()
    launcher = function(kernel, KIND, impl.variant)
    h2d, ins = put_inputs(inputs, lambda v: torch.from_numpy(v).to("cuda"), lambda _: torch.cuda.synchronize())
    from ...measure.devicetime import TorchEventTimer
    call = lambda: launcher(*ins)  # noqa: E731
    kernels = getattr(launcher, "kernels", None)
    return Prepared(call, _host, torch.cuda.get_device_name(), h2d, sync=torch.cuda.synchronize,
                    measure_device="cuda", device_timer=TorchEventTimer(), launch=call,
                    compiles=(lambda: compiled_count(kernels)) if kernels else None)
