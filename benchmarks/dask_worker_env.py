"""NumPy's sum of squares timed serially, in a serial process started with MALLOC_TRIM_THRESHOLD_=65536, on a worker
of a cluster futhark-lab makes (``cluster="local:1"``), on a worker started with Dask's defaults
(OMP/MKL/OPENBLAS_NUM_THREADS=1, MALLOC_TRIM_THRESHOLD_=65536), and on a futhark-lab worker started *after* that
default cluster (whose nanny left those variables in this process's os.environ): the ratios to the serial median,
side by side in one run.  (environment.md#dask-workers)

    .venv/bin/python benchmarks/dask_worker_env.py [--out results/benchmarks/dask_worker_env.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

SIZES = [10**4, 10**6]
CHILD = """
import json, sys, tempfile
from futhark_lab import suite, sweep as sw
from futhark_lab.measure import Policy
df = sw.sweep(suite.get("sum_squares"), [sw.numpy_impl()], sizes=%r, dtypes=["f64"], results=tempfile.mkdtemp(),
              policy=Policy(min_time_s=0.1, max_time_s=0.5), progress=False, hardware=None)
print(json.dumps({int(k): v for k, v in df.set_index("size")["time_s_median"].items()}))
"""

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    a = ap.parse_args()
    import distributed

    from futhark_lab import suite
    from futhark_lab import sweep as sw
    from futhark_lab.measure import Policy
    from futhark_lab.measure.cluster import THREAD_ENV, connect, describe_worker

    k = suite.get("sum_squares")
    pol = Policy(min_time_s=0.1, max_time_s=0.5)
    res = tempfile.mkdtemp()
    run = lambda cluster: sw.sweep(k, [sw.numpy_impl()], sizes=SIZES, dtypes=["f64"], results=res, policy=pol,  # noqa: E731
                                   progress=False, hardware=None, cluster=cluster).set_index("size")["time_s_median"]
    serial = run(None)
    out, envs = {}, {}
    env = {kk: v for kk, v in os.environ.items() if kk not in THREAD_ENV}
    child = subprocess.run([sys.executable, "-c", CHILD % SIZES], env={**env, "MALLOC_TRIM_THRESHOLD_": "65536"},
                           capture_output=True, text=True, check=True)
    out["serial, MALLOC_TRIM_THRESHOLD_=65536"] = {int(n): t for n, t in json.loads(child.stdout).items()}

    def on(name, client):
        envs[name] = next(iter(client.run(describe_worker).values()))["thread_env"]
        out[name] = run(client)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client, close = connect("local:1")
        try:
            on("futhark-lab worker", client)
        finally:
            close()
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as c, \
                distributed.Client(c) as client:
            on("Dask-default worker", client)
        client, close = connect("local:1")  # os.environ here now holds what the default nanny wrote
        try:
            on("futhark-lab worker after it", client)
        finally:
            close()
    lines = ["NumPy sum of squares (f64): median time / serial median, one process, one run",
             *(f"  {name}: worker environment {envs[name] or '{} (none of ' + ', '.join(THREAD_ENV) + ')'}"
               for name in envs)]
    for n in SIZES:
        lines.append(f"n={n:>8}  serial {serial[n] * 1e6:8.1f} us   " + "   ".join(
            f"{name}: {out[name][n] / serial[n]:4.2f}x" for name in out))
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    sys.exit(0)
