"""Measure one callable honestly (after nvbench's method): the policy, the stopping rule and the measurement.

- Every sample is ``fn()`` followed by a device synchronisation, timed on the host clock, or with CUDA events for
  CUDA work; an asynchronous result (CUDA tensor, CuPy/pyopencl array, Futhark GPU array) is detected on the first
  call and synchronised even if the caller named no device, so enqueue time is never reported as run time.
- Warm-up runs for a minimum time; the first call is timed and reported apart (kernel compilation, context creation,
  allocation), never mixed into the samples.
- Samples are taken until the 95% confidence interval of the median is narrower than ``max_noise`` (relative), with
  floors (``min_samples``, ``min_time_s``) and caps (``max_samples``, ``max_time_s``); a stop by cap is recorded.
- Cold samples flush the L2 (GPU) or last-level cache (CPU) before each run; warm samples do not.
- Result: median, IQR, mean, std, CI of the median, n, and the raw samples.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np

from .cacheflush import CacheFlusher
from .stats import Stats
from .sync import Sync, device_sync, entry_synchronised, sync_for_result

# --------------------------------------------------------------------------- measuring

@dataclasses.dataclass
class Policy:
    """When to stop sampling.  Defaults follow nvbench (0.5 s floor, 0.5% noise) scaled for notebooks."""

    warmup_s: float = 0.05
    min_samples: int = 10
    min_time_s: float = 0.1
    max_noise: float = 0.01
    max_samples: int = 2000
    max_time_s: float = 3.0
    cold: bool = False


@dataclasses.dataclass
class Measurement:
    samples_s: list[float]
    stats: Stats
    first_call_s: float
    sync: str
    stop_reason: str
    cold: bool = False
    cold_samples_s: list[float] = dataclasses.field(default_factory=list)
    cold_stats: Stats | None = None
    result: Any = None
    #: what a sample is: the host clock around call + sync, or the callee's own timing of itself (``runtime``)
    timer: str = "host clock around call + sync"
    #: with ``runtime``: the host clock's time of the same calls, so the binding's own cost stays visible
    host_samples_s: list[float] = dataclasses.field(default_factory=list)

    def summary(self) -> dict[str, float | int | str]:
        s = self.stats
        d = {"time_s_median": s.median, "time_s_q1": s.q1, "time_s_q3": s.q3, "time_s_iqr": s.iqr,
             "time_s_mean": s.mean, "time_s_std": s.std, "time_s_min": s.min, "time_s_ci_low": s.ci_low,
             "time_s_ci_high": s.ci_high, "n": s.n, "rel_noise": s.rel_noise, "first_call_s": self.first_call_s,
             "sync": self.sync, "stop_reason": self.stop_reason, "timer": self.timer}
        if self.host_samples_s:
            d["host_time_s_median"] = float(np.median(self.host_samples_s))
        if self.cold_stats is not None:
            c = self.cold_stats
            d.update({"cold_time_s_median": c.median, "cold_time_s_iqr": c.iqr, "cold_n": c.n})
        return d


entry_synchronised.__qualname__ = "none extra: the Futhark entry call synchronises before returning"


def measure(
    fn: Callable[[], Any],
    *,
    device: str = "cpu",
    sync: Sync | None = None,
    policy: Policy | None = None,
    flush: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    keep_result: bool = False,
    setup: Callable[[], None] | None = None,
    runtime: Callable[[], float | None] | None = None,
    after_first: Callable[[], None] | None = None,
) -> Measurement:
    """Time ``fn`` (no arguments) honestly; see the module docstring for the method.  ``setup``, if given, runs
    untimed before every call (fresh copies of inputs that an entry point consumes, as futhark bench reloads them).
    ``runtime``, if given, returns the duration the callee measured of its own last call (a Futhark entry point's
    ``last_runtime_s``: entry + sync timed in C, futhark bench's definition); samples are then those durations, and
    the host clock's times of the same calls are kept beside them (``host_samples_s``).  ``after_first``, if given,
    runs untimed right after the first call (a JIT's compile count read there tells compiles apart from
    recompiles during the samples)."""
    policy = policy or Policy()
    if sync is not None:
        sync_fn, sync_name = sync, getattr(sync, "__qualname__", "custom")
    else:
        sync_fn, sync_name = device_sync(device)

    # first call: timed apart (compilation, context, allocation); its result tells us how to synchronise
    if setup is not None:
        setup()
    t0 = clock()
    result = fn()
    detected, detected_name = sync_for_result(result)
    if detected is not None and sync is None and device == "cpu":
        sync_fn, sync_name = detected, detected_name + " (detected from the result)"
    sync_fn()
    first = clock() - t0
    if after_first is not None:
        after_first()
    if not keep_result:
        result = None

    host: list[float] = []

    def one() -> float:
        if setup is not None:
            setup()
        t = clock()
        fn()
        sync_fn()
        wall = clock() - t
        if runtime is None:
            return wall
        host.append(wall)
        return runtime()

    if runtime is not None and runtime() is None:
        runtime = None                     # the callee cannot time itself (a build without futhark-lab's helpers)
    # warm-up by time (the first call above is already discarded)
    end = clock() + policy.warmup_s
    while clock() < end:
        one()
    host.clear()

    samples: list[float] = []
    start = clock()
    stop = "max_samples"
    while len(samples) < policy.max_samples:
        samples.append(one())
        elapsed = clock() - start
        if len(samples) >= policy.min_samples and elapsed >= policy.min_time_s:
            if len(samples) % 5 == 0 and Stats.of(samples).rel_noise <= policy.max_noise:
                stop = "noise"
                break
        if elapsed >= policy.max_time_s and len(samples) >= min(policy.min_samples, 3):
            stop = "max_time"
            break
    m = Measurement(samples, Stats.of(samples), first, sync_name, stop, result=result)
    if runtime is not None:
        m.timer = "inside the call: entry point + sync on the C side's monotonic clock (as futhark's server)"
        m.host_samples_s = list(host)

    if policy.cold or flush is not None:
        flusher = flush or CacheFlusher("cuda" if device.startswith("cuda") else "cpu")
        cold: list[float] = []
        start = clock()
        while len(cold) < max(policy.min_samples, 5) or (clock() - start < policy.min_time_s and
                                                         len(cold) < policy.max_samples):
            flusher()
            sync_fn()
            cold.append(one())
            if clock() - start > policy.max_time_s and len(cold) >= 5:
                break
        m.cold, m.cold_samples_s, m.cold_stats = True, cold, Stats.of(cold)
    return m


def measure_cuda_events(fn: Callable[[], Any], policy: Policy | None = None) -> Measurement:
    """Like ``measure`` but each sample is the GPU time between CUDA events around ``fn`` (PyTorch streams)."""
    import torch

    policy = policy or Policy()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    start_ev, end_ev = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def one() -> float:
        start_ev.record()
        fn()
        end_ev.record()
        end_ev.synchronize()
        return start_ev.elapsed_time(end_ev) / 1e3

    end = time.perf_counter() + policy.warmup_s
    while time.perf_counter() < end:
        one()
    samples: list[float] = []
    start = time.perf_counter()
    stop = "max_samples"
    while len(samples) < policy.max_samples:
        samples.append(one())
        elapsed = time.perf_counter() - start
        if len(samples) >= policy.min_samples and elapsed >= policy.min_time_s and len(samples) % 5 == 0 \
                and Stats.of(samples).rel_noise <= policy.max_noise:
            stop = "noise"
            break
        if elapsed >= policy.max_time_s:
            stop = "max_time"
            break
    return Measurement(samples, Stats.of(samples), first, "cuda events", stop)
