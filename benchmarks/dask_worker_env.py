"""NumPy's sum of squares timed serially, on a Dask worker started with Dask's defaults (OMP/MKL/OPENBLAS_NUM_THREADS=1,
MALLOC_TRIM_THRESHOLD_=65536), and on one started with futhark-lab's CLUSTER_CONFIG: the ratios to the serial median,
side by side in one run.  (environment.md#dask-workers)

    .venv/bin/python benchmarks/dask_worker_env.py [--out results/benchmarks/dask_worker_env.txt]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    a = ap.parse_args()
    import dask
    import distributed

    from futhark_lab import suite
    from futhark_lab import sweep as sw
    from futhark_lab.measure import Policy
    from futhark_lab.measure.cluster import CLUSTER_CONFIG

    k, sizes = suite.get("sum_squares"), [10**4, 10**6]
    pol = Policy(min_time_s=0.1, max_time_s=0.5)
    res = tempfile.mkdtemp()
    run = lambda cluster: sw.sweep(k, [sw.numpy_impl()], sizes=sizes, dtypes=["f64"], results=res, policy=pol,  # noqa: E731
                                   progress=False, hardware=None, cluster=cluster).set_index("size")["time_s_median"]
    serial = run(None)
    out = {}
    for name, config in (("Dask defaults", {}), ("CLUSTER_CONFIG", CLUSTER_CONFIG)):
        with dask.config.set(config), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as c, \
                    distributed.Client(c) as client:
                out[name] = run(client)
    lines = ["NumPy sum of squares (f64), median time on a Dask worker / serial median, one process, one run"]
    for n in sizes:
        lines.append(f"n={n:>8}  serial {serial[n] * 1e6:9.1f} us   " + "   ".join(
            f"{name}: {out[name][n] / serial[n]:5.2f}x" for name in out))
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    sys.exit(0)
