"""Sweeps into tidy DataFrames: real NumPy, real PyTorch (CPU), real Futhark backends; durability under SIGKILL;
resume; compare."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from futhark_lab import sweep as sw
from futhark_lab.timing import Policy

from .conftest import ROOT, needs_futhark

QUICK = Policy(warmup_s=0.005, min_samples=6, min_time_s=0.01, max_time_s=0.1, max_noise=0.05)


def _suite():
    sys.path.insert(0, str(ROOT))
    import kernels.suite as suite
    return suite


def test_numpy_and_torch_sweep_is_tidy(tmp_path):
    pytest.importorskip("torch")
    k = _suite().get("saxpy")
    impls = [sw.numpy_impl(), sw.torch("cpu")]
    df = sw.sweep(k, impls, sizes=[1000, 10000], dtypes=["f32"], results=tmp_path, policy=QUICK,
                  progress=False, hardware=None, rounds=2)
    assert len(df) == 4
    assert set(df["impl"]) == {"numpy", "torch-cpu"}
    assert df.groupby(["impl", "size"]).size().max() == 1, "one row per point"
    for col in ("time_s_median", "time_s_iqr", "time_s_ci_low", "n", "gbps", "gflops", "bytes", "first_call_s",
                "correct", "run_id", "device", "samples_s"):
        assert col in df, col
    assert df["correct"].all()
    assert (df["bytes"] == 3 * df["size"] * 4).all()
    assert np.allclose(df["gbps"], df["bytes"] / df["time_s_median"] / 1e9)
    assert all(len(s) == n for s, n in zip(df["samples_s"], df["n"]))
    env = json.loads((tmp_path / df.attrs["run_id"] / "environment.json").read_text())
    assert env["cpu"]["logical_cores"] and "numpy" in env["libraries"] and "method" in env


def test_wrong_answers_are_caught(tmp_path):
    k = _suite().get("dot")
    bad = sw.custom("off-by-one", lambda x, y: np.dot(x, y) + 1.0)
    df = sw.sweep(k, [bad, sw.numpy_impl()], sizes=[1000], dtypes=["f64"], results=tmp_path, policy=QUICK,
                  progress=False, hardware=None)
    got = df.set_index("impl")["correct"]
    assert got["numpy"] and not got["off-by-one"]


def test_failing_implementation_is_recorded_not_fatal(tmp_path):
    k = _suite().get("dot")

    def boom(x, y):
        raise RuntimeError("kaput")
    df = sw.sweep(k, [sw.custom("boom", boom), sw.numpy_impl()], sizes=[100], dtypes=["f64"], results=tmp_path,
                  policy=QUICK, progress=False, hardware=None)
    row = df.set_index("impl").loc["boom"]
    assert "kaput" in row["error"]
    assert df.set_index("impl").loc["numpy", "correct"]


def test_resume_measures_only_missing_points(tmp_path):
    k = _suite().get("dot")
    calls = []

    def counted(x, y):
        calls.append(len(x))
        return np.dot(x, y)
    impl = sw.custom("counted", counted)
    sw.sweep(k, [impl], sizes=[100], dtypes=["f64"], run_id="r1", results=tmp_path, policy=QUICK, progress=False,
             hardware=None)
    calls.clear()
    df = sw.sweep(k, [impl], sizes=[100, 200], dtypes=["f64"], run_id="r1", results=tmp_path, policy=QUICK,
                  progress=False, hardware=None)
    assert set(calls) == {200}, "size 100 was done and must not be measured again"
    assert sorted(df["size"]) == [100, 200]


def test_sigkill_loses_no_finished_point_and_rerun_resumes(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        import numpy as np
        from futhark_lab import sweep as sw
        from futhark_lab.timing import Policy
        import kernels.suite as suite
        def slow(x, y):
            time.sleep(0.01)
            return np.dot(x, y)
        sw.sweep(suite.get("dot"), [sw.custom("slow", slow)], sizes=[10**i for i in range(1, 9)],
                 dtypes=["f64"], run_id="killed", results={str(tmp_path)!r}, progress=False, hardware=None,
                 policy=Policy(warmup_s=0, min_samples=5, min_time_s=0.2, max_time_s=0.3))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    points = tmp_path / "killed" / "points.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not points.exists() or len(points.read_text().splitlines()) < 2):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [json.loads(line) for line in points.read_text().splitlines()]
    assert len(done) >= 2
    sizes_done = {r["size"] for r in done}
    calls = []

    def counted(x, y):
        calls.append(len(x))
        return np.dot(x, y)
    df = sw.sweep(_suite().get("dot"), [sw.custom("slow", counted)], sizes=[10**i for i in range(1, 5)],
                  dtypes=["f64"], run_id="killed", results=tmp_path, policy=QUICK, progress=False, hardware=None)
    assert not (set(calls) & sizes_done), "finished points were measured again"
    assert sorted(df["size"]) == sorted(set(sizes_done) | {10, 100, 1000, 10000})


def test_compare_finds_faster_slower_and_same(tmp_path):
    k = _suite().get("dot")

    def make(delay):
        def f(x, y):
            time.sleep(delay)
            return np.dot(x, y)
        return f
    policy = Policy(warmup_s=0, min_samples=20, min_time_s=0.05, max_time_s=0.5, max_noise=0.0, max_samples=30)
    a = sw.sweep(k, [sw.custom("f", make(0.004))], sizes=[100], dtypes=["f64"], run_id="a", results=tmp_path,
                 policy=policy, progress=False, hardware=None)
    b = sw.sweep(k, [sw.custom("f", make(0.001))], sizes=[100], dtypes=["f64"], run_id="b", results=tmp_path,
                 policy=policy, progress=False, hardware=None)
    c = sw.compare(a, b)
    assert c.loc[0, "verdict"] == "faster" and c.loc[0, "ratio_b_over_a"] < 0.6
    assert sw.compare(b, a).loc[0, "verdict"] == "slower"
    same = sw.compare(a, a)
    assert same.loc[0, "verdict"] == "same" and same.loc[0, "ratio_b_over_a"] == 1.0


@needs_futhark
def test_futhark_backends_in_a_sweep(tmp_path):
    k = _suite().get("sum_squares")
    impls = [sw.futhark("c"), sw.futhark("multicore"), sw.futhark("c", resident=False), sw.numpy_impl()]
    try:
        import pyopencl as cl
        if cl.get_platforms():
            impls.append(sw.futhark("pyopencl"))
    except Exception:  # noqa: BLE001 - no OpenCL platform here
        pass
    try:
        import torch  # noqa: F401
        impls.append(sw.torch("cpu", "dot"))
    except ImportError:
        pass
    df = sw.sweep(k, impls, sizes=[1000, 100000], dtypes=["f64"], results=tmp_path, policy=QUICK, progress=False,
                  hardware=None)
    assert df["error"].isna().all(), df["error"].dropna().tolist()
    assert df["correct"].all()
    fut = df[df["impl"] == "futhark-c"]
    assert fut["h2d_s"].notna().all() and fut["d2h_s"].notna().all()
    assert (fut["setup_s"] > 0).all(), "building the program and creating its context is timed apart"
    assert (df[df["impl"] == "futhark-c+copy"]["h2d_s"].isna()).all()  # transfer is inside every call there


def test_sizes_between():
    assert sw.sizes_between(1e3, 1e6) == [1000, 10000, 100000, 1000000]
    assert len(sw.sizes_between(1e3, 1e5, 2)) == 5


def test_cold_samples_flush_the_cache_and_are_reported_beside_warm(tmp_path):
    k = _suite().get("dot")
    policy = Policy(warmup_s=0.005, min_samples=6, min_time_s=0.01, max_time_s=0.2, max_noise=0.05, cold=True)
    df = sw.sweep(k, [sw.numpy_impl()], sizes=[200_000], dtypes=["f64"], results=tmp_path, policy=policy,
                  progress=False, hardware=None)
    row = df.iloc[0]
    assert row["cold_n"] >= 5 and row["cold_time_s_median"] > 0
    # 3.2 MB of inputs fit in this CPU's caches when warm; after a flush they come from memory
    assert row["cold_time_s_median"] >= 0.8 * row["time_s_median"]
