"""``Impl`` (who computes a kernel) and ``Prepared`` (an implementation made ready for one point: the call, its
synchronisation, timers, host conversion), with the helpers every kind of implementation shares.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable

import numpy as np


@dataclasses.dataclass
class Impl:
    """Who computes a kernel.  Build with ``futhark()``, ``torch()``, ``numpy_impl()``, ``custom()`` or a peer's
    constructor (``jax()``, ``torch_compile()``, ``numba()``, ``cupy()``, ``triton()``, ``pycuda()``)."""

    name: str
    kind: str                      # futhark | torch | numpy | custom | jax | torch-compile | numba | cupy | ...
    backend: str                   # futhark backend, or the library for others
    device: str = "cpu"            # cpu | cuda
    resident: bool = True          # futhark/torch-cuda: inputs moved to the device once (False: every call)
    options: dict = dataclasses.field(default_factory=dict)
    fn: Callable | None = None
    torch_variant: str | None = None
    pinned: bool = False           # GPU: host inputs staged once in page-locked memory, copied to the device from it
    variant: str | None = None     # peers: which of the kernel's functions for that library (Kernel.peers)

    @property
    def label(self) -> str:
        return self.name


# --------------------------------------------------------------------------- preparing one implementation

@dataclasses.dataclass
class Prepared:
    call: Callable[[], Any]
    to_host: Callable[[Any], Any]
    device_name: str
    h2d_s: float = math.nan
    sync: Callable[[], None] | None = None
    measure_device: str = "cpu"
    flush: Callable[[], None] | None = None     # cache flush in the implementation's own context (cold samples)
    device_timer: Any = None                    # .time(fn) -> device-side span (CUDA events)
    launch: Callable[[], Any] | None = None     # the call without its synchronisation (batch figure)
    call_syncs: bool = False                    # the call itself synchronises (Futhark entry points)
    compiles: Callable[[], int] | None = None   # JIT peers: compilations so far (recompiles detected around samples)


def _median_time(fn: Callable[[], Any], reps: int = 3) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def _host(x: Any) -> Any:
    if isinstance(x, tuple):
        return tuple(_host(v) for v in x)
    if hasattr(x, "numpy") and callable(x.numpy):
        if type(x).__module__.startswith("torch"):
            return x.detach().cpu().numpy()
        return x.numpy()
    mod = type(x).__module__ or ""
    if hasattr(x, "get") and mod.startswith(("pyopencl", "cupy", "pycuda")):
        return x.get()
    if mod.startswith(("jax", "jaxlib")):      # a jax.Array: np.asarray waits for it and copies it to the host
        return np.asarray(x)
    if mod.startswith("numba") and hasattr(x, "copy_to_host"):
        return x.copy_to_host()
    return x


def _staged(impl: Impl, inputs: tuple) -> tuple:
    """Host inputs as a careful user stages them for ``pinned`` implementations: copied once (untimed) into
    page-locked memory, so every host→device copy runs at DMA speed."""
    if not impl.pinned:
        return inputs
    from ..runtime.cudadrv import pinned_copy
    return tuple(pinned_copy(v) if isinstance(v, np.ndarray) else v for v in inputs)
