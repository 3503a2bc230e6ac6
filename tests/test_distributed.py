"""Sweeps on a real Dask cluster (LocalCluster worker processes on this machine): the serial run's points, where
each ran, no two timings overlapping on one host, workers that build from the client's generated code, and a
worker killed mid-point that loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from .conftest import ROOT, needs_futhark

distributed = pytest.importorskip("distributed", reason="Dask's distributed is installed by scripts/setup.sh")

from futhark_lab import suite  # noqa: E402
from futhark_lab import sweep as sw  # noqa: E402
from futhark_lab.measure import Policy  # noqa: E402
from futhark_lab.measure.cluster import CLUSTER_CONFIG, ClusterUnavailable, overlaps  # noqa: E402

QUICK = Policy(min_time_s=0.02, max_time_s=0.1, min_samples=5, max_samples=40, warmup_s=0.01)


@pytest.fixture(scope="module")
def client():
    """Two worker processes that have no futhark: $FUTHARK names nothing there."""
    import dask

    # a dead worker's lock is freed when its lease runs out: seconds here, 30 s by default
    with dask.config.set({**CLUSTER_CONFIG, "distributed.scheduler.locks.lease-timeout": "5s",
                          "distributed.scheduler.locks.lease-validation-interval": "1s"}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", env={"FUTHARK": "/nonexistent/futhark"})
        c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@needs_futhark
def test_cluster_gives_the_serial_points_with_where_they_ran_and_no_overlap(client, tmp_path):
    kernel = suite.get("sum_squares")
    impls = [sw.futhark("c"), sw.futhark("multicore"), sw.numpy_impl()]
    sizes = [1000, 10_000, 100_000, 1_000_000]
    serial = sw.sweep(kernel, impls, sizes=sizes, dtypes=["f64"], results=tmp_path, policy=QUICK,
                      progress=False, hardware=None)
    df = sw.sweep(kernel, impls, sizes=sizes, dtypes=["f64"], results=tmp_path, policy=QUICK, progress=False,
                  hardware=None, cluster=client)
    key = ["kernel", "impl", "size", "dtype"]
    assert sorted(map(tuple, df[key].values)) == sorted(map(tuple, serial[key].values))
    assert df["error"].isna().all(), df["error"].dropna().tolist()
    assert df["correct"].all()
    # where: every row names its host and worker; futhark rows their compiler version
    assert df["host"].notna().all() and df["worker"].str.startswith("tcp://").all()
    assert df["worker"].nunique() == 2, "both workers measured"
    assert df[df["kind"] == "futhark"]["futhark_version"].notna().all()
    # placement: timed sections on one host never overlap, though the workers ran at once
    assert overlaps(df) == []
    # the environment of every worker's host is kept with the run and shown in its report
    assert set(df.attrs["workers"]) == set(df["worker"]) and all("python" in str(e) for e in df.attrs["workers"].values())
    from futhark_lab.view.report import report
    html = report(df, tmp_path / "r.html").read_text()
    assert "Environment of every worker" in html and "Where it ran" in html
    spans = df.drop_duplicates(subset=["size"])[["t_start", "t_end"]].sort_values("t_start").values
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))
    # timed like the serial run (agreement of the medians is benchmarks/scale_out.py's: timing is noisy here)
    assert (df["time_s_median"] > 0).all() and (df["n"] >= QUICK.min_samples).all()


@needs_futhark
def test_overlap_check_can_fail(client, tmp_path):
    """The overlap check finds overlapping sections when they exist (rows moved onto each other by hand)."""
    kernel = suite.get("sum_squares")
    df = sw.sweep(kernel, [sw.numpy_impl()], sizes=[1000, 2000], dtypes=["f64"], results=tmp_path, policy=QUICK,
                  progress=False, hardware=None, cluster=client)
    assert overlaps(df) == []
    forged = df.copy()
    forged.loc[forged.index[1], "t_start"] = forged.loc[forged.index[0], "t_start"]
    forged.loc[forged.index[1], "t_end"] = forged.loc[forged.index[0], "t_end"] + 1
    assert len(overlaps(forged)) == 1


def test_a_worker_killed_mid_point_costs_one_retry_then_an_error_row(client, tmp_path):
    marker = tmp_path / "died-once"

    def dies_once(x):
        if x.size == 1000 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies in the middle of the point
        return float(np.dot(x, x))

    def always_dies(x):
        if x.size == 2000:
            os._exit(1)
        return float(np.dot(x, x))

    kernel = sw.Kernel("sumsq", "entry f (xs: []f64): f64 = f64.sum (map (\\x -> x*x) xs)",
                       make_inputs=lambda n, dtype, rng: rng.random(n), numpy=lambda x: float(np.dot(x, x)))
    impls = [sw.custom("dies-once", dies_once), sw.custom("always-dies", always_dies)]
    df = sw.sweep(kernel, impls, sizes=[1000, 2000, 3000], results=tmp_path, policy=QUICK, progress=False,
                  hardware=None, cluster=client, on_error="record")
    assert marker.exists(), "the worker did die"
    got = {(r.impl, r.size): (r.error if isinstance(r.error, str) else None) for r in df.itertuples()}
    assert len(got) == 6, "every point has its row"
    assert got[("dies-once", 1000)] is None, "retried on another worker, and measured"
    # the point whose worker died on every attempt: an error row, the sweep went on
    assert "KilledWorker" in str(got[("always-dies", 2000)])
    assert got[("always-dies", 3000)] is None and got[("dies-once", 3000)] is None
    # waits for the scheduler to replace the dead workers before the next test
    client.wait_for_workers(2, timeout=60)


def test_unreachable_scheduler_is_a_clear_error_before_anything_runs(tmp_path):
    kernel = suite.get("sum_squares")
    t = time.perf_counter()
    with pytest.raises(ClusterUnavailable, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        sw.sweep(kernel, [sw.numpy_impl()], sizes=[1000], results=tmp_path, progress=False, hardware=None,
                 cluster="tcp://127.0.0.1:9", run_id="never")
    assert time.perf_counter() - t < 60
    assert not (tmp_path / "never" / "points.jsonl").exists()
    with pytest.raises(ValueError, match="local:N"):
        sw.sweep(kernel, [sw.numpy_impl()], sizes=[1000], results=tmp_path, progress=False, cluster="local:0")


@needs_futhark
def test_cli_run_with_workers(tmp_path):
    out = subprocess.run([sys.executable, "-m", "futhark_lab.cli", "run", "kernels/sum_squares.fut",
                          "--backends", "c,multicore", "--torch", "", "--sizes", "1e3,1e5", "--dtypes", "f64",
                          "--workers", "2", "--max-time", "0.1", "--min-time", "0.02", "--results", str(tmp_path),
                          "--run-id", "w2", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Dask worker(s); dashboard http" in out.stderr
    from futhark_lab.measure import load_run
    df = load_run(tmp_path / "w2")
    assert len(df) == 6 and df["error"].isna().all() and overlaps(df) == []
    assert df["worker"].notna().all()
    both = subprocess.run([sys.executable, "-m", "futhark_lab.cli", "run", "kernels/sum_squares.fut",
                           "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert both.returncode != 0 and "not both" in both.stderr


@needs_futhark
def test_ctrl_c_on_the_client_cancels_the_workers_and_the_run_resumes(tmp_path):
    """Ctrl-C (SIGINT) on a cluster run: the client stops, the finished points stay in the store, and the same
    --run-id measures only what is missing."""
    import signal

    args = [sys.executable, "-m", "futhark_lab.cli", "run", "kernels/sum_squares.fut", "--backends", "c",
            "--torch", "", "--sizes", "1e3,2e3,3e3,4e3,5e3,6e3,7e3,8e3", "--dtypes", "f64", "--workers", "1",
            "--max-time", "0.15", "--min-time", "0.15", "--results", str(tmp_path), "--run-id", "ctrlc", "-q"]
    points = tmp_path / "ctrlc" / "points.jsonl"
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not (
            points.exists() and len(points.read_text().splitlines()) >= 2):
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be interrupted: " + proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, "an interrupted run does not exit 0"
    done = len(points.read_text().splitlines())
    assert 2 <= done < 16, f"{done} of 16 points stored when interrupted"
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    from futhark_lab.measure import load_run
    df = load_run(tmp_path / "ctrlc")
    assert len(df) == 16 and not df.duplicated(["impl", "size", "dtype"]).any()
    assert df["error"].isna().all()

def test_workers_time_with_a_serial_run_environment(client, tmp_path, monkeypatch):
    """Dask's nannies set OMP/MKL/OPENBLAS_NUM_THREADS=1 and MALLOC_TRIM_THRESHOLD_ by default: workers made with
    CLUSTER_CONFIG have none of them."""
    from futhark_lab.measure.cluster import THREAD_ENV, describe_worker

    for k in THREAD_ENV:  # what Dask's nanny writes into os.environ below is taken back after the test
        monkeypatch.delenv(k, raising=False)
    envs = client.run(describe_worker)
    assert envs and all(d["thread_env"] == {} for d in envs.values()), envs
    assert set(THREAD_ENV) >= {"OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_"}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as dflt:
        with distributed.Client(dflt) as c:  # Dask's defaults: the sweep says what they change
            assert next(iter(c.run(describe_worker).values()))["thread_env"].get("OMP_NUM_THREADS") == "1"
            with pytest.warns(UserWarning, match="time single-threaded or with other allocations"):
                sw.sweep(suite.get("sum_squares"), [sw.numpy_impl()], sizes=[1000], results=tmp_path, policy=QUICK,
                         progress=False, hardware=None, cluster=c)
    # Dask's nanny wrote those variables into this process's os.environ and left them there; a cluster made by
    # futhark-lab afterwards still starts its workers without them, and puts this process's environment back
    leaked = {k: os.environ.get(k) for k in THREAD_ENV}
    assert leaked["MALLOC_TRIM_THRESHOLD_"] == "65536", leaked  # the trap is real in this Dask
    from futhark_lab.measure.cluster import connect
    fresh, close = connect("local:1")
    try:
        assert next(iter(fresh.run(describe_worker).values()))["thread_env"] == {}
    finally:
        close()
    assert {k: os.environ.get(k) for k in THREAD_ENV} == leaked


BENCHED = """\
-- Sum of squares.
-- ==
-- input { [1.0, 2.0, 3.0] } output { 14.0 }
-- input { [0.5, 0.5, 0.5, 0.5] } output { 1.0 }
-- compiled input @ data.in
entry main (xs: []f64): f64 = f64.sum (map (\\x -> x*x) xs)
"""


@needs_futhark
def test_bench_on_the_cluster_gives_the_serial_rows(client, tmp_path):
    """bench(cluster=...): every dataset × backend measured on workers without futhark, answers checked there,
    one timing per host at a time; the same rows a serial run gives."""
    from futhark_lab.bench import bench

    prog = tmp_path / "prog.fut"
    prog.write_text(BENCHED)
    import futhark_data
    with open(tmp_path / "data.in", "wb") as f:
        futhark_data.dump(np.arange(100_000, dtype=np.float64) / 1e5, f, binary=True)
    policy = Policy(min_time_s=0.02, max_time_s=0.1, min_samples=5, max_samples=40)
    serial = bench(prog, ["c", "multicore"], results=tmp_path, policy=policy, progress=False)
    df = bench(prog, ["c", "multicore"], results=tmp_path, policy=policy, progress=False, cluster=client)
    key = ["kernel", "dataset", "impl"]
    assert sorted(map(tuple, df[key].values)) == sorted(map(tuple, serial[key].values)) and len(df) == 6
    assert df["error"].isna().all(), df["error"].dropna().tolist()
    assert (df["correct"] != False).all() and df["correct"].sum() == 4  # noqa: E712 - the data file has no output
    assert df["worker"].str.startswith("tcp://").all() and overlaps(df.assign(size=0, dtype="")) == []
