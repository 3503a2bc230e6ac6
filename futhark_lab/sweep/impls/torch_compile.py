"""``torch.compile``: the kernel's PyTorch function (or ``Kernel.peers["torch-compile"]``) compiled by TorchDynamo
and Inductor, timed exactly as eager PyTorch is (``torch.cuda.synchronize`` and CUDA events on PyTorch's stream).

The compiled wrapper is made once per function and mode for the process, so compilation happens at the first call
of each new shape/dtype/device (in ``first_call_s``; Dynamo marks a dimension dynamic after its second size, so
later sizes reuse that graph).  Dynamo's process-wide counter of compiled graphs is read around each block of
samples: a compilation there (a guard that failed between calls) is a ``recompile`` in the row.
"""

from __future__ import annotations

import shutil

from ...errors import PeerUnavailable
from ..impl import Impl, Prepared
from ..kernel import Kernel
from ..modules import _ModuleCache
from .peer import function, require, wrapped
from .torch_eager import prepare_function

KIND = "torch-compile"


def torch_compile(device: str = "cpu", variant: str | None = None, *, mode: str | None = None,
                  name: str | None = None) -> Impl:
    """``torch.compile(fn, mode=mode)`` on ``device``; ``variant``: which of ``Kernel.torch``'s functions."""
    label = name or f"torch-compile-{device}" + (f"-{variant}" if variant else "") + (f"-{mode}" if mode else "")
    return Impl(label, KIND, "torch", device, True, {"mode": mode}, torch_variant=variant)


def _check(device: str):
    torch = require("torch", KIND)
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PeerUnavailable(KIND, "PyTorch sees no CUDA device", "pip install torch (a CUDA wheel)")
        require("triton", KIND)
    elif not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise PeerUnavailable(KIND, "Inductor compiles C++ on CPUs and no C++ compiler is on PATH",
                              "apt-get install g++")
    return torch


def available(device: str = "cpu") -> tuple[bool, str]:
    try:
        torch = _check(device)
    except PeerUnavailable as exc:
        return False, str(exc)
    return True, f"torch {torch.__version__} (Inductor)"


def graphs_compiled() -> int:
    """Graphs Dynamo has compiled in this process (``torch._dynamo.utils.counters["stats"]["unique_graphs"]``)."""
    from torch._dynamo.utils import counters
    return int(counters["stats"]["unique_graphs"])


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    torch = _check(impl.device)
    if "torch-compile" in kernel.peers:
        fn = function(kernel, KIND, impl.torch_variant)
    else:
        fn = kernel.torch.get(impl.torch_variant or "default") or next(iter(kernel.torch.values()), None)
    if fn is None:
        raise LookupError(f"kernel {kernel.name!r} has no PyTorch function to compile (Kernel(torch=...))")
    mode = impl.options.get("mode")
    compiled = wrapped((KIND, fn, mode), lambda: torch.compile(fn, mode=mode))
    p = prepare_function(impl, compiled, inputs)
    p.compiles = graphs_compiled
    return p
