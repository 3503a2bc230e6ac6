"""Issue 15's measuring pieces that run without a GPU: batch figures, device-span plumbing, the CUDA driver helpers'
clean refusal where there is no driver."""

from __future__ import annotations

import time

import numpy as np
import pytest

from futhark_lab import cudadrv
from futhark_lab.timing import batch_per_call, device_times


def test_batch_per_call_amortises_a_fixed_sync_cost():
    state = {"pending": 0}

    def launch():
        state["pending"] += 1

    def sync():  # a synchronisation that costs 2 ms however much work is pending
        time.sleep(0.002)
        state["pending"] = 0
    per, k = batch_per_call(launch, sync, k=50, reps=3)
    assert k == 50
    assert per < 0.0005  # 2 ms / 50 calls, far below one synchronised call (>= 2 ms)


class _HostTimer:
    def time(self, fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t


def test_device_times_reports_the_span():
    st = device_times(lambda: time.sleep(0.001), _HostTimer(), min_samples=5, max_time_s=0.2)
    assert st.n >= 5 and 0.001 <= st.median < 0.05


@pytest.mark.skipif(cudadrv.available(), reason="this machine has a CUDA driver")
def test_cuda_helpers_refuse_cleanly_without_a_driver():
    assert not cudadrv.available()
    with pytest.raises(cudadrv.CudaUnavailable, match="libcuda"):
        cudadrv.pinned_empty(10, np.float64)
    with pytest.raises(cudadrv.CudaUnavailable):
        cudadrv.ContextFlusher(0, 1024)
