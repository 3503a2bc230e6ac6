"""Time to re-run an unchanged %%futhark cell (a build-cache hit plus a fresh context).  Target: <= 50 ms.

    python benchmarks/magic_cache.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from IPython.testing.globalipapp import start_ipython  # noqa: E402

CELL = "entry sum_squares (xs: []f64): f64 = f64.sum (map (\\x -> x * x) xs)\n"


def main() -> None:
    ip = start_ipython()
    ip.run_line_magic("load_ext", "futhark_lab")
    t = time.perf_counter()
    ip.run_cell_magic("futhark", "--backend c --name stats", CELL)
    first = time.perf_counter() - t
    times = []
    for _ in range(30):
        t = time.perf_counter()
        ip.run_cell_magic("futhark", "--backend c --name stats", CELL)
        times.append(time.perf_counter() - t)
    med = statistics.median(times) * 1e3
    print(f"\nfirst run (compile or cache hit from an earlier process): {first * 1e3:.0f} ms")
    print(f"re-run of the unchanged cell: median {med:.1f} ms, min {min(times) * 1e3:.1f} ms, "
          f"max {max(times) * 1e3:.1f} ms over {len(times)} runs")
    print(f"target <= 50 ms: {'MET' if med <= 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
