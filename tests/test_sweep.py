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
from pathlib import Path

import numpy as np
import pytest

from futhark_lab import sweep as sw
from futhark_lab.measure.timing import Policy

from .conftest import ROOT, needs_futhark

QUICK = Policy(warmup_s=0.005, min_samples=6, min_time_s=0.01, max_time_s=0.1, max_noise=0.05)


def _suite():
    from futhark_lab import suite
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


def _boom(x, y):
    raise RuntimeError("kaput")


def test_an_implementation_failing_everywhere_raises_with_its_first_error(tmp_path):
    k = _suite().get("dot")
    with pytest.raises(sw.SweepFailed, match="boom on dot: failed at 2 of 2 point.*kaput") as info:
        sw.sweep(k, [sw.custom("boom", _boom), sw.numpy_impl()], sizes=[100, 200], dtypes=["f64"],
                 results=tmp_path, policy=QUICK, progress=False, hardware=None)
    df = info.value.df  # the rows are not lost
    assert df.set_index("impl").loc["numpy", "correct"].all()
    assert df[df["impl"] == "boom"]["error"].str.contains("kaput").all()


def test_on_error_warn_record_and_raise(tmp_path):
    k = _suite().get("dot")
    impls = [sw.custom("boom", _boom), sw.numpy_impl()]
    kw = dict(sizes=[100], dtypes=["f64"], results=tmp_path, policy=QUICK, progress=False, hardware=None)
    with pytest.warns(UserWarning, match="boom on dot: failed at 1 of 1 point.*kaput"):
        df = sw.sweep(k, impls, on_error="warn", **kw)
    assert "kaput" in df.set_index("impl").loc["boom", "error"]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sw.sweep(k, impls, on_error="record", **kw)
    with pytest.raises(RuntimeError, match="kaput"):
        sw.sweep(k, impls, on_error="raise", **kw)
    with pytest.raises(ValueError, match="on_error"):
        sw.sweep(k, impls, on_error="ignore", **kw)


def test_an_implementation_failing_at_some_points_warns(tmp_path):
    k = _suite().get("dot")

    def big_fails(x, y):
        if len(x) > 100:
            raise MemoryError("too big")
        return np.dot(x, y)
    with pytest.warns(UserWarning, match="picky on dot: failed at 1 of 2 point.*too big"):
        df = sw.sweep(k, [sw.custom("picky", big_fails)], sizes=[100, 1000], dtypes=["f64"], results=tmp_path,
                      policy=QUICK, progress=False, hardware=None)
    assert df.set_index("size").loc[100, "correct"]


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
        import numpy as np
        from futhark_lab import sweep as sw, suite
        from futhark_lab.measure import Policy
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


# --------------------------------------------------------------------------- your own kernels

OWN = """
-- | Dot product: it's the user's own.
entry dot (xs: []f64) (ys: []f64): f64 = f64.sum (map2 (*) xs ys)
entry scale (a: f32) (xs: []f32): []f32 = map (* a) xs
"""


def _two(n, dtype, rng):
    return rng.random(n), rng.random(n)


@needs_futhark
def test_own_kernel_from_a_module_its_entry_points_text_or_path(tmp_path):
    import futhark_lab as fl
    m = fl.compile(OWN, backend="c", name="<cell mine>")
    (tmp_path / "own.fut").write_text(OWN)
    kernels = [sw.Kernel("from-entry", m.dot, make_inputs=_two, numpy=np.dot),
               sw.Kernel("from-module", m, entry="dot", make_inputs=_two, numpy=np.dot),
               sw.Kernel("from-text", OWN, entry="dot", make_inputs=_two, numpy=np.dot),
               sw.Kernel("from-path", tmp_path / "own.fut", entry="dot", make_inputs=_two, numpy=np.dot)]
    assert all(k.entry == "dot" and list(k.dtypes) == ["f64"] for k in kernels)
    df = sw.sweep(kernels, [sw.futhark("c"), sw.futhark("multicore")], sizes=[1000, 5000], results=tmp_path,
                  policy=QUICK, progress=False, hardware=None)
    assert len(df) == 16 and df["error"].isna().all(), df["error"].dropna().tolist()
    assert df["correct"].all()
    # inputs resident, with setup/h2d/compute/d2h apart, as for suite kernels
    assert df["h2d_s"].notna().all() and df["d2h_s"].notna().all() and (df["setup_s"] > 0).all()
    # bytes default to what the inputs and the output occupy: two f64 vectors in, one f64 out
    assert (df["bytes"] == 2 * 8 * df["size"] + 8).all() and set(df["bytes_counted"]) == {"inputs+outputs"}
    assert df["flops"].isna().all() and df["gflops"].isna().all() and df["gbps"].notna().all()
    # one build and context per program and backend, shared by the kernels made from the module
    mod = df[df["kernel"].isin(["from-entry", "from-module"])]
    assert mod.groupby("impl")["setup_s"].nunique().eq(1).all()
    m.close()


@needs_futhark
def test_several_entry_points_of_one_cell_and_no_reference(tmp_path):
    import futhark_lab as fl
    m = fl.compile(OWN, backend="c")
    scale = sw.Kernel("scale", m.scale, make_inputs=lambda n, dtype, rng: (np.float32(2), rng.random(n, np.float32)))
    assert list(scale.dtypes) == ["f32"], "dtype read from the entry point's signature"
    dot = sw.Kernel("dot", m.dot, make_inputs=_two, numpy=np.dot, flops=lambda n, dtype: 2 * n)
    with pytest.warns(UserWarning, match="no NumPy reference for 'scale'"):
        df = sw.sweep([dot, scale], [sw.futhark("c")], sizes=[1000], results=tmp_path, policy=QUICK,
                      progress=False, hardware=None)
    rows = df.set_index("kernel")
    assert rows.loc["dot", "correct"] == True and rows.loc["dot", "gflops"] > 0  # noqa: E712
    assert rows.loc["scale", "correct"] is None or np.isnan(rows.loc["scale", "correct"])
    assert rows.loc["scale", "bytes"] == 4 + 4 * 1000 + 4 * 1000, "a scalar and a vector in, a vector out"
    m.close()


def test_kernel_descriptions_fail_early_and_say_the_contract(tmp_path):
    with pytest.raises(ValueError, match="which entry point.*dot, scale"):
        sw.Kernel("k", OWN, make_inputs=_two)
    with pytest.raises(TypeError, match=r"make_inputs must take \(n, dtype, rng\)"):
        sw.Kernel("k", OWN, entry="dot", make_inputs=lambda n: n)
    with pytest.raises(TypeError, match="needs make_inputs"):
        sw.Kernel("k", OWN, entry="dot")
    with pytest.raises(TypeError, match="not FakeModule"):
        sw.Kernel("k", type("FakeModule", (), {})(), entry="dot", make_inputs=_two)
    with pytest.raises(FileNotFoundError, match="no Futhark source file"):
        sw.Kernel("k", tmp_path / "missing.fut", entry="dot", make_inputs=_two)
    bad = sw.Kernel("bad", OWN, entry="dot", make_inputs=lambda n, dtype, rng: 1 / 0)
    with pytest.raises(ZeroDivisionError, match=r"kernel 'bad': make_inputs\(10, 'f64', rng\) failed"):
        sw.sweep(bad, [sw.custom("c", np.dot)], sizes=[10], results=tmp_path, policy=QUICK, progress=False,
                 hardware=None)
    k = sw.Kernel("k", OWN, entry="dot", make_inputs=lambda n, d, rng: rng.random(n))
    with pytest.raises(sw.SweepFailed, match="numpy on k.*no NumPy implementation"):
        sw.sweep(k, [sw.numpy_impl()], sizes=[10], results=tmp_path, policy=QUICK, progress=False, hardware=None)


@needs_futhark
def test_a_wrong_entry_name_is_loud(tmp_path):
    k = sw.Kernel("k", OWN, entry="dott", make_inputs=_two, numpy=np.dot)
    with pytest.raises(sw.SweepFailed, match="no entry point 'dott'; it has dot, scale"):
        sw.sweep(k, [sw.futhark("c")], sizes=[10], results=tmp_path, policy=QUICK, progress=False, hardware=None)


def test_suite_ships_in_the_package_and_kernels_dir_links_to_it():
    from futhark_lab import suite
    k = suite.get("dot")
    assert Path(k.source).is_file() and Path(k.source).parent == Path(suite.__file__).parent
    assert (ROOT / "kernels" / "dot.fut").resolve() == Path(k.source).resolve()
    assert suite.for_source(ROOT / "kernels" / "dot.fut") is k
