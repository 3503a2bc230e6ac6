"""How much does a small CPU measurement drift by itself, and does it change right after another thread pool ran?
NumPy's dot of 10⁴ f64 (single-threaded in OpenBLAS at this size) measured for 0.3 s at a time: alone at the start,
right after 0.5 s of PyTorch's 16-thread dot at 10⁶, 0.2 s and 1 s after it, after futhark multicore, and alone again
at the end; each line shows the median and the medians of the measurement's four quarters.  On the H100's 16-core
host the "alone" figures moved between 4.1 and 3.0 µs within one process, as much as anything after another pool
(results/h100-measurement-truth/probe_cpu.txt): the reason benchmarks/cpu_interplay.py alternates its rounds.

    python benchmarks/cpu_drift.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cpu_mhz() -> str:
    v = [float(line.split(":")[1]) for line in open("/proc/cpuinfo") if line.startswith("cpu MHz")]
    return f"{np.mean(v):.0f} MHz" if v else "? MHz"


def main() -> None:
    import torch

    import futhark_lab
    from futhark_lab.measure.timing import Policy, measure

    print(subprocess.run("lscpu | grep -E 'Thread|Core|Socket|Model name'", shell=True, capture_output=True,
                         text=True).stdout)
    policy = Policy(min_time_s=0.3, max_time_s=0.3, max_noise=0, max_samples=10**6, warmup_s=0.05)
    a = np.random.default_rng(0).random(10**4)
    b = a.copy()
    ta = torch.from_numpy(np.random.default_rng(1).random(10**6))
    tb = torch.from_numpy(np.random.default_rng(2).random(10**6))

    def numpy_dot(label: str) -> None:
        s = np.array(measure(lambda: np.dot(a, b), policy=policy).samples_s) * 1e6
        quarters = [round(float(np.median(q)), 2) for q in np.array_split(s, 4)]
        print(f"{label:<40} median {np.median(s):6.2f} us  quarters {quarters}  {cpu_mhz()}", flush=True)

    def busy(fn, seconds: float = 0.5) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            fn()

    numpy_dot("numpy alone")
    numpy_dot("numpy alone again")
    busy(lambda: torch.dot(ta, tb))
    numpy_dot("numpy right after torch 1e6 (all threads)")
    busy(lambda: torch.dot(ta, tb))
    time.sleep(0.2)
    numpy_dot("numpy 0.2 s after torch")
    busy(lambda: torch.dot(ta, tb))
    time.sleep(1.0)
    numpy_dot("numpy 1 s after torch")
    with futhark_lab.compile(ROOT / "kernels" / "dot.fut", backend="multicore") as m:
        xa, xb = m.array(ta.numpy()), m.array(tb.numpy())
        busy(lambda: m.dot_f64(xa, xb))
        numpy_dot("numpy right after futhark multicore 1e6")
        busy(lambda: m.dot_f64(xa, xb))
        time.sleep(0.2)
        numpy_dot("numpy 0.2 s after futhark multicore")
    torch.set_num_threads(1)
    busy(lambda: torch.dot(ta, tb))
    numpy_dot("numpy after torch on 1 thread")
    numpy_dot("numpy alone at the end")


if __name__ == "__main__":
    main()
