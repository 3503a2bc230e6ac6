"""The measurement method: statistics, stopping, first-call separation, and catching a timer that does not wait for
the device."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest

from futhark_lab.measure.timing import Policy, measure
from futhark_lab.measure.stats import Stats, median_ci

FAST = Policy(warmup_s=0.01, min_samples=10, min_time_s=0.02, max_time_s=1.0, max_noise=0.05)


def test_stats_match_numpy_and_ci_contains_median():
    rng = np.random.default_rng(0)
    x = rng.lognormal(0, 0.3, 501)
    s = Stats.of(x)
    assert s.n == 501
    assert s.median == pytest.approx(np.median(x))
    assert s.iqr == pytest.approx(np.percentile(x, 75) - np.percentile(x, 25))
    assert s.mean == pytest.approx(x.mean()) and s.std == pytest.approx(x.std(ddof=1))
    assert s.ci_low <= s.median <= s.ci_high
    lo, hi = median_ci(x)
    # a 95% CI of the median of 501 lognormal samples is narrow but not empty
    assert 0 < (hi - lo) / s.median < 0.2


def test_ci_of_median_covers_true_median_about_95_percent():
    rng = np.random.default_rng(1)
    hits = sum(lo <= 1.0 <= hi for lo, hi in (median_ci(rng.lognormal(0, 1, 60)) for _ in range(400)))
    assert 0.90 <= hits / 400 <= 0.995


def test_first_call_is_separated_from_samples():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.2 if len(calls) == 1 else 0.001)

    m = measure(fn, policy=FAST)
    assert m.first_call_s >= 0.19
    assert max(m.samples_s) < 0.1, "the slow first call must not be among the samples"
    assert m.stats.median == pytest.approx(0.001, abs=0.004)
    assert len(m.samples_s) == m.stats.n >= FAST.min_samples


def test_stops_on_noise_or_caps():
    m = measure(lambda: sum(range(200)), policy=Policy(warmup_s=0.0, min_samples=10, min_time_s=0.0,
                                                       max_noise=0.5, max_time_s=5))
    assert m.stop_reason == "noise" and m.stats.n >= 10
    m = measure(lambda: time.sleep(0.002), policy=Policy(warmup_s=0, min_samples=5, min_time_s=0, max_noise=0.0,
                                                         max_time_s=0.1, max_samples=10**6))
    assert m.stop_reason == "max_time"
    m = measure(lambda: None, policy=Policy(warmup_s=0, min_samples=5, min_time_s=0, max_noise=0.0,
                                            max_samples=50))
    assert m.stop_reason == "max_samples" and m.stats.n == 50


class AsyncDevice:
    """A device with a queue: launch() returns at once, the work runs later on the device's own thread."""

    def __init__(self):
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._worker, daemon=True).start()

    def _worker(self):
        while True:
            seconds = self.q.get()
            time.sleep(seconds)
            self.q.task_done()

    def launch(self, seconds: float):
        self.q.put(seconds)

    def sync(self):
        self.q.join()


def test_method_times_the_work_not_the_enqueue():
    dev = AsyncDevice()
    work = 0.005
    # what a naive timer reports: the enqueue
    t = time.perf_counter()
    dev.launch(work)
    naive = time.perf_counter() - t
    dev.sync()
    assert naive < work / 5
    m = measure(lambda: dev.launch(work), sync=dev.sync, policy=FAST)
    assert m.stats.median >= work * 0.95, "each sample must include the device's work"


def test_asynchronous_results_are_detected_and_synchronised():
    """A timer that does not wait is caught: an OpenCL kernel's enqueue returns at once, but measure() sees the
    asynchronous pyopencl result and waits on its queue even though no device was named."""
    cl = pytest.importorskip("pyopencl")
    try:
        ctx = cl.Context(devices=[cl.get_platforms()[0].get_devices()[0]])
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no OpenCL device: {exc}")
    import pyopencl.array as cla
    from pyopencl.elementwise import ElementwiseKernel

    q = cl.CommandQueue(ctx)
    spin = ElementwiseKernel(ctx, "float *y, const float *x",
                             "float v = x[i]; for (int k = 0; k < 4000; k++) v = v * 0.999f + 0.5f; y[i] = v",
                             "spin")
    x = cla.to_device(q, np.ones(200_000, dtype=np.float32))
    y = cla.empty_like(x)

    def launch():
        spin(y, x, wait_for=None)
        return y

    launch()
    q.finish()
    t = time.perf_counter()
    launch()
    enqueue = time.perf_counter() - t
    q.finish()
    t = time.perf_counter()
    launch()
    q.finish()
    true_time = time.perf_counter() - t
    if true_time < 5 * enqueue:
        pytest.skip(f"this OpenCL platform runs kernels synchronously (enqueue {enqueue:.4f}s vs {true_time:.4f}s)")
    m = measure(launch, policy=FAST)
    assert "pyopencl" in m.sync
    assert m.stats.median >= 0.5 * true_time, (m.stats.median, enqueue, true_time)


def test_runtime_reported_by_the_callee_replaces_the_host_clock():
    """``measure(runtime=...)``: samples are the callee's own timing (a Futhark entry point's ``last_runtime_s``), the
    host clock's times of the same calls kept beside them; a callee that cannot time itself falls back."""
    from futhark_lab.measure.timing import Policy, measure

    calls = []
    m = measure(lambda: calls.append(1), runtime=lambda: 1e-3, policy=Policy(min_samples=5, min_time_s=0.0,
                                                                                max_time_s=0.05))
    assert m.samples_s and all(s == 1e-3 for s in m.samples_s)
    assert len(m.host_samples_s) == len(m.samples_s) and all(0 < h < 1e-3 for h in m.host_samples_s)
    assert m.timer.startswith("inside the call") and m.summary()["host_time_s_median"] < 1e-3
    m = measure(lambda: None, runtime=lambda: None, policy=Policy(min_samples=5, min_time_s=0.0, max_time_s=0.05))
    assert m.timer.startswith("host clock") and not m.host_samples_s and all(s < 1e-3 for s in m.samples_s)
