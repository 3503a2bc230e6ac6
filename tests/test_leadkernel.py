"""The lead kernel ahead of a device span's start event (runtime.cudadrv.LeadKernel, nvbench's blocking kernel).

On a GPU: a call whose host side is slow (a 300 us sleep before its kernel) has a span of the kernel alone with the
lead, and of the sleep without it; a call that synchronises inside loses the lead without hanging.  Everywhere: the
lead's length follows the host's enqueue time, and with no driver the timer measures on without a lead."""

from __future__ import annotations

import time

import pytest

from futhark_lab.runtime import cudadrv
from futhark_lab.runtime.cudadrv import LeadKernel


class _Clock:
    """The host clock, advanced by the test: the lead's rule without the machine's timing noise."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_lead_follows_the_host_enqueue_time(monkeypatch):
    spun: list[float] = []
    monkeypatch.setattr(cudadrv, "spin", lambda s, stream=0: spun.append(s))
    clock = _Clock()
    lead = LeadKernel(clock)

    def call(enqueue_s: float) -> None:
        t0 = lead.before()
        clock.now += enqueue_s
        lead.after(t0)
    call(100e-6)                            # first call: no lead, its host time (100 us) sets the first one
    assert spun == [] and lead.seconds == pytest.approx(200e-6)
    call(1e-6)                              # a quick enqueue: the floor
    assert lead.seconds == LeadKernel.MIN_S and spun[-1] == pytest.approx(200e-6)
    for _ in range(12):                     # the host waits out every lead: doubled up to the cap, then off
        call(2 * lead.seconds)
    assert lead.off.startswith("the call waits for the device")
    n = len(spun)
    call(1e-6)
    assert len(spun) == n                   # off: no more leads


def test_without_a_driver_the_lead_is_off_with_the_reason(monkeypatch):
    def no_driver(s, stream=0):
        raise cudadrv.CudaUnavailable("libcuda.so.1 cannot be loaded")
    monkeypatch.setattr(cudadrv, "spin", no_driver)
    clock = _Clock()
    lead = LeadKernel(clock)
    for _ in range(2):
        t0 = lead.before()
        clock.now += 50e-6
        lead.after(t0)
    assert "libcuda.so.1" in lead.off


def _cuda_torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or not cudadrv.available():
        pytest.skip("no CUDA GPU on this machine")
    return torch


@pytest.mark.gpu
def test_a_slow_host_launch_is_outside_the_span_with_the_lead():
    torch = _cuda_torch()
    from futhark_lab.measure.devicetime import TorchEventTimer, device_times
    x = torch.ones(1 << 16, device="cuda")

    def slow_launch():
        time.sleep(300e-6)                  # the host is slow to launch, e.g. Python-side guards
        x.add_(1.0)
    with_lead = TorchEventTimer()
    spans = device_times(slow_launch, with_lead, min_samples=20, max_samples=40).median
    without = TorchEventTimer()
    without.lead.off = "switched off by the test"
    spans_without = device_times(slow_launch, without, min_samples=20, max_samples=40).median
    assert not with_lead.lead.off, with_lead.lead.off
    assert spans_without > 250e-6          # the sleep is inside the span without a lead
    assert spans < 60e-6, spans             # and outside it with one: the kernel's few microseconds


@pytest.mark.gpu
def test_a_call_that_synchronises_inside_loses_the_lead_and_does_not_hang():
    torch = _cuda_torch()
    from futhark_lab.measure.devicetime import TorchEventTimer, device_times
    x = torch.ones(1 << 20, device="cuda")

    def syncing():
        x.mul_(1.0001)
        torch.cuda.synchronize()
    timer = TorchEventTimer()
    t = time.perf_counter()
    st = device_times(syncing, timer, min_samples=30, max_samples=30)
    assert time.perf_counter() - t < 5
    assert timer.lead.off.startswith("the call waits for the device")
    assert 0 < st.median < 1e-3


@pytest.mark.gpu
def test_a_call_that_raises_while_the_lead_spins_leaves_the_timer_usable():
    """The exception reaches the caller (the sweep stores it as ``device_time_error``); the lead ends by itself, the
    GPU is not left waiting, and the same timer measures the next call."""
    torch = _cuda_torch()
    from futhark_lab.measure.devicetime import TorchEventTimer, device_times
    x = torch.ones(1 << 16, device="cuda")
    calls = [0]

    def fails_on_the_fifth_call():
        calls[0] += 1
        time.sleep(100e-6)                  # a slow host launch, so the lead is long and still spinning
        if calls[0] == 5:
            raise RuntimeError("the user's launcher failed")
        x.add_(1.0)
    timer = TorchEventTimer()
    with pytest.raises(RuntimeError, match="launcher failed"):
        device_times(fails_on_the_fifth_call, timer, min_samples=10, max_samples=10)
    assert timer.lead.seconds > 0 and not timer.lead.off   # the lead was on when the call raised
    t = time.perf_counter()
    torch.cuda.synchronize()
    assert time.perf_counter() - t < 0.1    # the spin (at most 2 ms) has ended by itself
    st = device_times(lambda: x.add_(1.0), timer, min_samples=20, max_samples=20)
    assert not timer.lead.off and 0 < st.median < 60e-6, (timer.lead.off, st.median)
    assert torch.equal(x, torch.full_like(x, 1.0 + 4 + 21))   # 4 adds before the failure, 1 + 20 after
