"""Eager PyTorch on a device: inputs moved once per point (``resident``) or by every call, synchronised with
``torch.cuda.synchronize`` and timed on the device with CUDA events on PyTorch's own stream."""

from __future__ import annotations

import math
import time

import numpy as np

from ..impl import Impl, Prepared, _host, _staged
from ..kernel import Kernel
from ..modules import _ModuleCache

KIND = "torch"


def torch(device: str = "cpu", variant: str | None = None, *, resident: bool = True, name: str | None = None,
          pinned: bool = False) -> Impl:
    label = name or f"torch-{device}" + (f"-{variant}" if variant else "") + ("" if resident else "+copy") + \
        ("(pinned)" if pinned else "")
    return Impl(label, "torch", "torch", device, resident, torch_variant=variant, pinned=pinned)


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    fn = kernel.torch.get(impl.torch_variant or "default") or next(iter(kernel.torch.values()), None)
    if fn is None:
        raise LookupError(f"kernel {kernel.name!r} has no PyTorch implementation (Kernel(torch=...))")
    return prepare_function(impl, fn, inputs)


def prepare_function(impl: Impl, fn, inputs: tuple) -> Prepared:
    """``fn`` (a function of tensors: eager, or compiled by ``torch.compile``) on ``impl.device``."""
    import torch as _torch

    dev = impl.device

    def to_dev(v):
        if isinstance(v, np.ndarray):
            return _torch.from_numpy(v).to(dev)
        return v

    timer = None
    if dev.startswith("cuda"):
        sync = _torch.cuda.synchronize
        name = _torch.cuda.get_device_name()
        from ...measure.devicetime import TorchEventTimer
        timer = TorchEventTimer()
        inputs = _staged(impl, inputs)
    else:
        sync, name = None, "host CPU"
    if impl.resident:
        h2d_t = time.perf_counter()
        tins = tuple(to_dev(v) for v in inputs)
        if sync:
            sync()
        h2d = time.perf_counter() - h2d_t
        call = lambda: fn(*tins)  # noqa: E731
        return Prepared(call, _host, name, h2d, sync, dev, device_timer=timer, launch=call if timer else None)
    call = lambda: fn(*(to_dev(v) for v in inputs))  # noqa: E731
    return Prepared(call, _host, name, math.nan, sync, dev, device_timer=timer)
