"""Do CPU implementations slow each other down when a sweep interleaves them?  Each implementation's median in a
mixed sweep (futhark multicore, PyTorch CPU, NumPy: three thread pools) against the same sweep with that
implementation alone, in a fresh process: the mixed sweep as futhark-lab runs it (each implementation's samples a
block per round).
Target (issue 15): mixed no slower than alone beyond noise: ratio of medians over rounds <= 1 + max(10%, the spread
of the same implementation's own rounds alone).  Alone and mixed sweeps alternate, each in a fresh process: on the
16-core GPU host NumPy's 10⁴-element dot alone drifted from 4.1 to 3.0 µs within one process (results/
h100-measurement-truth/probe_cpu.txt), more than the effect being measured.

    python benchmarks/cpu_interplay.py [--sizes 10000,1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMPLS = ["futhark-multicore", "torch-cpu-dot", "numpy"]


def run(names: list[str], sizes: list[int]) -> dict:
    """Medians (and CI half-widths) per (impl, size) of one sweep in a fresh process."""
    code = f"""
import json, sys, tempfile
sys.path.insert(0, {str(ROOT)!r})
import kernels.suite as suite
from futhark_lab import sweep as sw
from futhark_lab.measure import Policy
every = {{"futhark-multicore": sw.futhark("multicore"), "torch-cpu-dot": sw.torch("cpu", "dot"),
          "numpy": sw.numpy_impl()}}
df = sw.sweep(suite.get("dot"), [every[n] for n in {names!r}], sizes={sizes!r}, dtypes=["f64"],
              results=tempfile.mkdtemp(), policy=Policy(max_time_s=1.5, min_time_s=0.3), progress=False,
              hardware=None)
print(json.dumps([[r.impl, int(r.size), r.time_s_median, (r.time_s_ci_high - r.time_s_ci_low) / 2 / r.time_s_median]
                  for r in df.itertuples()]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return {(i, n): (t, ci) for i, n, t, ci in json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,1000000")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of (each alone, mixed), fresh processes")
    a = ap.parse_args()
    sizes = [int(float(s)) for s in a.sizes.split(",")]
    import numpy as np
    import torch
    from threadpoolctl import threadpool_info
    np.dot(np.ones(2), np.ones(2))  # load both pools before asking threadpoolctl about them
    torch.dot(torch.ones(2), torch.ones(2))
    pools = ", ".join(f"{p['internal_api']} ({p['num_threads']} threads)" for p in threadpool_info())
    print(f"dot (f64), sweep of 3 rounds per point; thread pools: {pools}; futhark multicore: its own scheduler; "
          f"{a.rounds} alternating rounds of (each implementation alone, then all three mixed as sweeps run them), "
          f"each sweep in a fresh process, so drift of the machine's speed over the minutes hits both alike")
    alone: dict = {}
    mixed: dict = {}
    for _ in range(a.rounds):
        for name in IMPLS:
            for k, v in run([name], sizes).items():
                alone.setdefault(k, []).append(v[0])
        for k, v in run(IMPLS, sizes).items():
            mixed.setdefault(k, []).append(v[0])
    ok = True
    print(f"{'impl':<18} {'n':>9} {'alone':>11} {'mixed':>11} {'ratio':>6}  {'alone: spread of rounds':>24}  verdict")
    for name in IMPLS:
        for n in sizes:
            ta, tm = np.asarray(alone[(name, n)]), np.asarray(mixed[(name, n)])
            ratio = float(np.median(tm) / np.median(ta))
            spread = float((ta.max() - ta.min()) / np.median(ta))   # how much "alone" differs from itself
            tol = max(0.10, spread)
            good = ratio - 1 <= tol  # slowed down by the others: slower than alone beyond the noise
            ok &= good
            print(f"{name:<18} {n:>9,} {np.median(ta) * 1e6:>8.2f} us {np.median(tm) * 1e6:>8.2f} us {ratio:>6.2f}  "
                  f"{spread:>23.0%}   {'within noise' if good else 'SLOWED'} (tolerance {tol:.0%}; rounds alone "
                  f"{'/'.join(f'{x * 1e6:.1f}' for x in ta)}, mixed {'/'.join(f'{x * 1e6:.1f}' for x in tm)} µs)")
    print(f"target: every implementation's mixed time within noise of its time alone: {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
