"""Scale-out, measured: the same sweep serially and on a local Dask cluster of 1, 2 and 4 workers.

Prints wall time and its ratio to the serial run, whether each point's median agrees with the serial run's within
the two runs' noise (the larger of the points' relative IQRs, at least 5 %) beside a second serial run against the
first (the noise between two processes, which is what to compare with), and the sweep's own overhead per point
on a cluster: the gap between one point's timed section and the next one's on a single worker (scheduling, the
lock, moving the rows back), against the same gap in the serial run.  On one host timings never overlap (one lock
per host), so only the compiles and the untimed setup overlap: the possible speed-up is what those take.

    .venv/bin/python benchmarks/scale_out.py [--workers 1,2,4] [--out results/benchmarks/scale_out.txt]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(cluster, kernels, impls, sizes, policy, results):
    from futhark_lab import sweep as sw

    cache = tempfile.mkdtemp(prefix="scale-cache-")  # every run builds from scratch: compiles are part of it
    os.environ["FUTHARK_LAB_CACHE"] = cache
    t = time.perf_counter()
    df = sw.sweep(kernels, impls, sizes=sizes, results=results, policy=policy, progress=False, hardware=None,
                  cluster=cluster)
    return time.perf_counter() - t, df


def gaps_ms(df) -> float:
    """Median gap between consecutive timed sections (one worker, or serial): the sweep's own cost per point."""
    spans = df.drop_duplicates(subset=["kernel", "size", "dtype", "t_start"]).sort_values("t_start")
    g = spans["t_start"].values[1:] - spans["t_end"].values[:-1]
    return float(np.median(g)) * 1e3 if len(g) else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--out", help="also write the output here")
    a = ap.parse_args()
    from futhark_lab import suite
    from futhark_lab import sweep as sw
    from futhark_lab.measure import Policy
    from futhark_lab.measure.cluster import overlaps

    kernels = [suite.get(k) for k in ("sum_squares", "saxpy", "dot", "scan")]
    impls = [sw.futhark("c"), sw.futhark("multicore"), sw.numpy_impl()]
    sizes = [10**3, 10**5, 10**6]
    policy = Policy(min_time_s=0.05, max_time_s=0.3, min_samples=10, max_samples=200)
    lines = [f"scale-out on {os.cpu_count()} cores; {len(kernels)} kernels x {len(impls)} impls x {len(sizes)} sizes; "
             "load = the 1-minute load average when each run ended (other work on the machine)"]
    load = lambda: f"   load {os.getloadavg()[0]:4.1f}"  # noqa: E731
    with tempfile.TemporaryDirectory() as res:
        serial_s, serial = run(None, kernels, impls, sizes, policy, res)
        lines.append(f"serial              wall {serial_s:7.1f} s   gap between points {gaps_ms(serial):6.2f} ms{load()}")
        key = ["kernel", "impl", "size", "dtype"]

        def agreement(df) -> str:
            both = df.merge(serial, on=key, suffixes=("", "_serial"))
            noise = np.maximum(np.maximum(both["time_s_iqr"] / both["time_s_median"],
                                          both["time_s_iqr_serial"] / both["time_s_median_serial"]), 0.05)
            dev = (both["time_s_median"] / both["time_s_median_serial"] - 1).abs()
            return (f"medians within noise {int((dev <= noise).sum())}/{len(both)} (median |diff| "
                    f"{dev.median():.1%}, worst {dev.max():.0%})")

        # the noise to state: a second serial run against the first, in fresh builds as the others are
        again_s, again = run(None, kernels, impls, sizes, policy, res)
        lines.append(f"serial again        wall {again_s:7.1f} s   serial/this {serial_s / again_s:5.2f}x   "
                     f"{agreement(again)}   <- the noise{load()}")
        one_gap = None
        for n in [int(x) for x in a.workers.split(",")]:
            wall, df = run(f"local:{n}", kernels, impls, sizes, policy, res)
            extra = ""
            if n == 1:
                one_gap = gaps_ms(df)
                extra = f"   gap between points {one_gap:6.2f} ms"
            lines.append(f"{n} worker(s)         wall {wall:7.1f} s   serial/this {serial_s / wall:5.2f}x   "
                         f"{agreement(df)}   overlapping timings {len(overlaps(df))}{extra}{load()}")
        if one_gap is not None:
            overhead = one_gap - gaps_ms(serial)
            lines.append(f"the cluster's own cost per point (1 worker's gap - serial gap): {overhead:.2f} ms "
                         f"(target < 5 ms): {'MET' if overhead < 5 else 'NOT MET'}")
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
