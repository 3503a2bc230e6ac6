"""Kernel time apart from launch and synchronisation latency: CUDA events around a call, in the library's own
stream, behind a lead kernel (``runtime.cudadrv.LeadKernel``, nvbench's blocking kernel) so that the host's launch
latency is not inside the span; and k back-to-back launches with one synchronisation.

The call's result is held until the end event has completed, as the libraries' own examples hold their outputs:
PyCUDA frees a ``GPUArray`` with ``cuMemFree``, which waits for the device, so a result dropped inside the span put
that wait and the free there (a 10^6 f32 ReductionKernel on an H200: median spans of 100-104 us with the free, 37-38 us
without; results/h200-peers/pycuda_span.txt).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from ..runtime.cudadrv import LeadKernel
from .stats import Stats

# --------------------------------------------------------------------------- device-side time and batches

class TorchEventTimer:
    """Device-side span of a call on PyTorch's current stream (torch.cuda.Event)."""

    def __init__(self):
        import torch
        self._torch = torch
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)
        self.lead = LeadKernel()

    def time(self, fn: Callable[[], Any]) -> float:
        t0 = self.lead.before(self._torch.cuda.current_stream().cuda_stream)
        self.start.record()
        out = fn()                       # held past the end event: freeing it is not the call's work
        self.end.record()
        self.lead.after(t0)
        self.end.synchronize()
        del out
        return self.start.elapsed_time(self.end) / 1e3


class CupyEventTimer:
    """Device-side span of a call on CuPy's current stream (``cupy.cuda.Event``, ``cupy.cuda.get_elapsed_time``),
    as ``cupyx.profiler.benchmark`` measures its ``gpu_times``."""

    def __init__(self):
        import cupy
        self._cupy = cupy
        self.start, self.end = cupy.cuda.Event(), cupy.cuda.Event()
        self.lead = LeadKernel()

    def time(self, fn: Callable[[], Any]) -> float:
        t0 = self.lead.before(self._cupy.cuda.get_current_stream().ptr)
        self.start.record()
        out = fn()                       # held past the end event: freeing it is not the call's work
        self.end.record()
        self.lead.after(t0)
        self.end.synchronize()
        del out
        return self._cupy.cuda.get_elapsed_time(self.start, self.end) / 1e3


class NumbaEventTimer:
    """Device-side span of a call on Numba's default stream (``numba.cuda.event``, ``event_elapsed_time``), as
    Numba's documentation times kernels."""

    def __init__(self):
        from numba import cuda
        self._cuda = cuda
        try:
            self.start, self.end = cuda.event(timing=True), cuda.event(timing=True)
        except TypeError:        # Numba's CUDA simulator: events take no arguments
            self.start, self.end = cuda.event(), cuda.event()
        self.lead = LeadKernel()

    def time(self, fn: Callable[[], Any]) -> float:
        t0 = self.lead.before()          # Numba's events and launches use the default stream
        self.start.record()
        out = fn()                       # held past the end event: freeing it is not the call's work
        self.end.record()
        self.lead.after(t0)
        self.end.synchronize()
        del out
        return self._cuda.event_elapsed_time(self.start, self.end) / 1e3


class PycudaEventTimer:
    """Device-side span of a call on PyCUDA's default stream (``pycuda.driver.Event``, ``time_till``)."""

    def __init__(self):
        import pycuda.driver as drv
        self.start, self.end = drv.Event(), drv.Event()
        self.lead = LeadKernel()

    def time(self, fn: Callable[[], Any]) -> float:
        t0 = self.lead.before()          # PyCUDA's events and launches use the default stream
        self.start.record()
        out = fn()                       # held past the end event: freeing it is not the call's work
        self.end.record()
        self.lead.after(t0)
        self.end.synchronize()
        del out
        return self.start.time_till(self.end) / 1e3


def device_times(fn: Callable[[], Any], timer: Any, *, min_samples: int = 10, max_samples: int = 200,
                 max_time_s: float = 1.0, clock: Callable[[], float] = time.perf_counter) -> Stats:
    """Stats of the device-side span of ``fn`` (``timer.time(fn)``: CUDA events around the call), after one
    discarded run; beside the call + sync time it separates kernel time from launch and synchronisation latency."""
    timer.time(fn)
    spans: list[float] = []
    start = clock()
    while len(spans) < max_samples and (len(spans) < min_samples or clock() - start < max_time_s / 4):
        spans.append(timer.time(fn))
        if clock() - start > max_time_s and len(spans) >= 3:
            break
    return Stats.of(spans)


def batch_per_call(launch: Callable[[], Any], sync: Callable[[], None], *, k: int | None = None,
                   reps: int = 5, budget_s: float = 1.0, single_s: float | None = None,
                   clock: Callable[[], float] = time.perf_counter) -> tuple[float, int]:
    """(median over ``reps`` of (time of k back-to-back launches + one sync) / k, k): launch latency overlaps the
    device's work, so at small sizes this is far below one synchronised call, at large sizes close to kernel time."""
    launch()
    sync()
    if k is None:
        one = single_s
        if one is None:
            t = clock()
            launch()
            sync()
            one = clock() - t
        k = int(max(2, min(100, budget_s / reps / max(one, 1e-7))))
    per = []
    for _ in range(reps):
        t = clock()
        for _ in range(k):
            launch()
        sync()
        per.append((clock() - t) / k)
    return float(np.median(per)), k
