"""Synchronisation: how to wait for a result of any library (Futhark entries synchronise themselves; PyTorch, CuPy,
pyopencl are detected), so every sample is call + completion.
"""

from __future__ import annotations

from typing import Any, Callable

Sync = Callable[[], None]


# --------------------------------------------------------------------------- synchronisation

def _noop() -> None:
    return None


def sync_for_result(value: Any) -> tuple[Sync | None, str]:
    """The synchronisation an (asynchronous) result needs, detected from its type, and its name."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    for v in items:
        mod = type(v).__module__ or ""
        if mod.startswith("torch") and getattr(v, "is_cuda", False):
            import torch
            return torch.cuda.synchronize, "torch.cuda.synchronize"
        if mod.startswith("cupy"):
            import cupy
            return cupy.cuda.get_current_stream().synchronize, "cupy stream"
        if mod.startswith("pyopencl") and hasattr(v, "queue") and v.queue is not None:
            return v.queue.finish, "pyopencl queue.finish"
        ctx = getattr(v, "_ctx", None)
        if ctx is not None and hasattr(ctx, "sync") and getattr(ctx, "backend", "c") not in ("c", "multicore",
                                                                                          "python", "ispc"):
            return ctx.sync, f"futhark {ctx.backend} sync"
        data = getattr(v, "data", None)
        if data is not None and (type(data).__module__ or "").startswith("pyopencl"):
            return data.queue.finish, "pyopencl queue.finish"
    return None, ""


def device_sync(device: str) -> tuple[Sync, str]:
    """Synchronisation for a named device: 'cpu', 'cuda' (PyTorch/CuPy), or a callable passed through."""
    if device == "cpu":
        return _noop, "none (host clock)"
    if device.startswith("cuda"):
        try:
            import torch
            if torch.cuda.is_available():
                return torch.cuda.synchronize, "torch.cuda.synchronize"
        except ImportError:
            pass
        try:
            import cupy
            return cupy.cuda.Device().synchronize, "cupy device sync"
        except ImportError:
            pass
        raise RuntimeError("device='cuda' but neither PyTorch with CUDA nor CuPy is available to synchronise")
    raise ValueError(f"unknown device {device!r}; pass sync=callable for custom devices")


def entry_synchronised() -> None:
    """The sync for calls that synchronise themselves: Futhark entry calls do (futhark_context_sync inside the call,
    as futhark bench times a run), so a second synchronisation per sample would only add its own cost."""
