"""Why a PyCUDA reduction's device span can exceed its call + sync time (tests/test_gpu_peers.py failed once on the
H200 with 69.5 us against 46.2 us at 10^6 f32): raw event spans with and without the lead kernel, and with the
result held past the end event, beside call + Context.synchronize() on the host clock.  Run on the GPU machine."""

import statistics
import time

import numpy as np

from futhark_lab.measure.devicetime import PycudaEventTimer
from futhark_lab.sweep.impls.pycuda_gpu import _pycuda
from futhark_lab.suite import pycuda_kernels as pk

drv, gpuarray = _pycuda()
x = gpuarray.to_gpu(np.random.default_rng(0).random(1_000_003, dtype=np.float32))
pk.sum_squares(x).get()


def host(n=200):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        pk.sum_squares(x)
        drv.Context.synchronize()
        out.append(time.perf_counter() - t)
    return out


def spans(lead: bool, hold: bool, n=200):
    t = PycudaEventTimer()
    if not lead:
        t.lead.off = "disabled for this check"
    held = []
    fn = (lambda: held.append(pk.sum_squares(x))) if hold else (lambda: pk.sum_squares(x))
    out = [t.time(fn) for _ in range(n)]
    return out, t.lead.off, t.lead.seconds


def show(name, v):
    v = np.array(v) * 1e6
    print(f"{name:34s} median {np.median(v):8.1f} us  p25 {np.percentile(v, 25):8.1f}  p75 {np.percentile(v, 75):8.1f}"
          f"  min {v.min():7.1f}  first8 {np.round(v[:8], 1).tolist()}")


for rnd in range(2):
    show(f"[{rnd}] host call+sync", host())
    for lead in (True, False):
        for hold in (False, True):
            s, off, sec = spans(lead, hold)
            show(f"[{rnd}] span lead={lead} hold={hold}", s)
            print(f"      lead off: {off!r} seconds {sec * 1e6:.0f} us")
