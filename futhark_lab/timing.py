"""Measure one callable honestly (after nvbench's method).

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
import math
import time
from typing import Any, Callable, Sequence

import numpy as np

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


# --------------------------------------------------------------------------- cache flushing

class CacheFlusher:
    """Evict caches between cold samples: write a buffer twice the cache size (nvbench's l2flush)."""

    def __init__(self, device: str = "cpu", nbytes: int | None = None):
        self.device = device
        if device.startswith("cuda"):
            import torch
            props = torch.cuda.get_device_properties(torch.cuda.current_device())
            l2 = getattr(props, "L2_cache_size", 0) or 50 * 2**20
            self.buf = torch.empty(int(nbytes or 2 * l2), dtype=torch.uint8, device="cuda")

            def flush() -> None:
                self.buf.zero_()
                # wait for it: the measured work may run on another stream or context (futhark's), which would
                # otherwise overlap the flush and be charged for it
                torch.cuda.synchronize()
            self._flush = flush
        else:
            self.buf = np.empty(int(nbytes or 2 * _llc_bytes()), dtype=np.uint8)
            self._flush = lambda: self.buf.fill(1)

    def __call__(self) -> None:
        self._flush()


def sysfs_caches() -> list[tuple[int, str, int]]:
    """cpu0's caches from sysfs as (level, type, bytes); empty where sysfs says nothing."""
    import glob

    out = []
    for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            text = open(f"{d}/size").read().strip()
            size = int(text.rstrip("KMG")) * {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1], 1)
            out.append((int(open(f"{d}/level").read()), open(f"{d}/type").read().strip(), size))
        except (OSError, ValueError):
            continue
    return out


def _llc_bytes() -> int:
    """Last-level cache size from sysfs (default 32 MiB)."""
    return max((size for _, _, size in sysfs_caches()), default=0) or 32 * 2**20


# --------------------------------------------------------------------------- statistics

def median_ci(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics (binomial)."""
    from scipy import stats

    x = np.sort(np.asarray(samples, dtype=float))
    n = len(x)
    if n < 6:
        return float(x[0]), float(x[-1])
    alpha = 1 - confidence
    lo = int(stats.binom.ppf(alpha / 2, n, 0.5))
    hi = int(stats.binom.isf(alpha / 2, n, 0.5))
    lo = max(lo - 1, 0)
    hi = min(hi, n - 1)
    return float(x[lo]), float(x[hi])


@dataclasses.dataclass
class Stats:
    n: int
    median: float
    q1: float
    q3: float
    mean: float
    std: float
    min: float
    max: float
    ci_low: float
    ci_high: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def rel_noise(self) -> float:
        """Relative half-width of the median's 95% CI."""
        return (self.ci_high - self.ci_low) / 2 / self.median if self.median > 0 else math.inf

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Stats":
        x = np.asarray(samples, dtype=float)
        if len(x) == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan, nan, nan, nan, nan)
        q1, med, q3 = np.percentile(x, [25, 50, 75])
        lo, hi = median_ci(x)
        return cls(len(x), float(med), float(q1), float(q3), float(x.mean()), float(x.std(ddof=1) if len(x) > 1
                   else 0.0), float(x.min()), float(x.max()), lo, hi)


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


def entry_synchronised() -> None:
    """The sync for calls that synchronise themselves: Futhark entry calls do (futhark_context_sync inside the call,
    as futhark bench times a run), so a second synchronisation per sample would only add its own cost."""


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
) -> Measurement:
    """Time ``fn`` (no arguments) honestly; see the module docstring for the method.  ``setup``, if given, runs
    untimed before every call (fresh copies of inputs that an entry point consumes, as futhark bench reloads them).
    ``runtime``, if given, returns the duration the callee measured of its own last call (a Futhark entry point's
    ``last_runtime_s``: entry + sync timed in C, futhark bench's definition); samples are then those durations, and
    the host clock's times of the same calls are kept beside them (``host_samples_s``)."""
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


# --------------------------------------------------------------------------- device-side time and batches

class TorchEventTimer:
    """Device-side span of a call on PyTorch's current stream (torch.cuda.Event)."""

    def __init__(self):
        import torch
        self._torch = torch
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def time(self, fn: Callable[[], Any]) -> float:
        self.start.record()
        fn()
        self.end.record()
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / 1e3


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
