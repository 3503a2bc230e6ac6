"""The front door (issue 24): the summary first (fastest per kernel and device, % of the ceiling, speedup over
NumPy/PyTorch), rows flagged only with a reason, anomalies measured again, a user's own .fut from the command line,
whole compiler messages in the terminal, non-zero exits with the cause."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from futhark_lab import sweep as sw
from futhark_lab.measure.hardware import HardwareModel
from futhark_lab.measure.timing import Policy

from .conftest import ROOT, needs_futhark

QUICK = Policy(warmup_s=0.0, min_samples=5, min_time_s=0.01, max_time_s=0.05, max_noise=0.05)
#: A CPU model with round figures, so % of the ceiling can be checked by hand.
MODEL = HardwareModel("test CPU", "cpu", math.nan, 10.0, {}, {"f32": 50.0, "f64": 25.0},
                      cache_bw_measured_gbps=20.0, cache_bytes=1 << 20)
CLI = [sys.executable, "-m", "futhark_lab.cli"]

USER_PROGRAM = """
entry axpy (a: f32) (x: []f32) (y: []f32) : []f32 = map2 (\\xi yi -> a * xi + yi) x y
entry total (x: []f64) : f64 = reduce (+) 0 x
"""

TYPE_ERROR = """-- ==
-- input { [1f32, 2f32] }
-- output { 3f32 }
entry main (x: []f32) : f32 =
  let y = map (+1) x
  in reduce (+) 0i32 y
"""


def _cli(*args, cwd=None, env=None, timeout=600):
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd or ROOT, env=e, timeout=timeout)


# --------------------------------------------------------------------------- the summary

@needs_futhark
def test_summary_names_fastest_ceiling_and_speedup_from_a_real_sweep(tmp_path):
    from futhark_lab import suite
    from futhark_lab.view import report, summary

    df = sw.sweep(suite.get("dot"), [sw.futhark("c"), sw.numpy_impl()], sizes=[1000, 10000], dtypes=["f64"],
                  results=tmp_path, policy=QUICK, progress=False, hardware={"cpu": MODEL})
    h = summary.headline(df)
    assert len(h) == 1
    row = h.iloc[0]
    at = df[df["size"] == 10000].set_index("impl")
    fastest = at["time_s_median"].idxmin()
    assert (row["kernel"], row["device"], row["size"], row["fastest"]) == ("dot", "CPU", 10000, fastest)
    # 10,000 f64 pairs = 160 kB fits the model's 1 MiB cache: the in-cache copy (20 GB/s) is the ceiling
    gbps = 2 * 10000 * 8 / at.loc[fastest, "time_s_median"] / 1e9
    assert row["gbps"] == pytest.approx(gbps)
    assert row["pct_ceiling"] == pytest.approx(100 * gbps / 20.0)
    assert row["ceiling"] == "measured in-cache bandwidth"
    assert row["vs_numpy"] == pytest.approx(at.loc["numpy", "time_s_median"] / at.loc[fastest, "time_s_median"]) \
        if fastest != "numpy" else row["vs_numpy"] == 1.0
    text = summary.text(df)
    assert text.splitlines()[1].startswith("SUMMARY") and fastest in text and f"{row['pct_ceiling']:.0f}%" in text
    html = report.report(df, tmp_path / "r.html").read_text()
    assert html.index("<h2>Summary</h2>") < html.index("<h2>Figures</h2>") < html.index("<h2>Results</h2>")
    summary_part = html[html.index("<h2>Summary</h2>"):html.index("<h2>Figures</h2>")]
    assert fastest in summary_part and f"{row['pct_ceiling']:.0f}% of measured in-cache bandwidth" in summary_part


def test_nan_over_peak_is_not_suspicious_and_flags_carry_reasons():
    """opencl/pyopencl rows have no ceiling (over_peak NaN): bool(nan) is True, so they were all highlighted."""
    from futhark_lab.view import report, summary

    base = dict(kernel="dot", dtype="f32", device="host CPU", time_s_iqr=1e-7, error=None, correct=True, gbps=1.0)
    df = pd.DataFrame([
        {**base, "impl": "futhark-opencl", "size": 1000, "time_s_median": 1e-5, "over_peak": math.nan},
        {**base, "impl": "futhark-pyopencl", "size": 1000, "time_s_median": 2e-5, "over_peak": math.nan},
        {**base, "impl": "futhark-c", "size": 1000, "time_s_median": 1e-5, "over_peak": False},
        {**base, "impl": "futhark-multicore", "size": 1000, "time_s_median": 1e-6, "over_peak": True,
         "pct_ceiling": 250.0},
    ])
    flags = summary.row_flags(df)
    assert list(flags[:3]) == ["", "", ""]
    assert "250% of the ceiling" in flags[3] and "measurement bug" in flags[3]
    html = report._table(df.assign(flag=flags), report.COLUMNS)
    rows = html.split("<tr")[2:]
    assert [('class="sus"' in r) for r in rows] == [False, False, False, True]
    assert 'title="250% of the ceiling' in rows[3]


# --------------------------------------------------------------------------- anomalies

def _dot_slow_at_1000(always: bool):
    seen_large = []

    def f(x, y):
        if len(x) == 10000:
            seen_large.append(True)
        if len(x) == 1000 and (always or not seen_large):  # slow only until the larger size has run
            time.sleep(0.05)
        return np.dot(x, y)
    return f


@pytest.mark.parametrize("always", [False, True])
def test_an_anomalous_point_is_measured_again_and_keeps_both_figures(tmp_path, always):
    from futhark_lab import suite
    from futhark_lab.view import summary

    df = sw.sweep(suite.get("dot"), [sw.custom("odd", _dot_slow_at_1000(always))], sizes=[1000, 10000],
                  dtypes=["f64"], results=tmp_path, policy=QUICK, progress=False, hardware=None)
    assert len(df) == 2, "the point measured again replaces its first row"
    small = df.set_index("size").loc[1000]
    assert small["remeasured"] is True or small["remeasured"] == True  # noqa: E712
    assert small["first_time_s_median"] >= 0.05
    assert "at 1,000 but" in small["anomaly_first"] and "larger problem" in small["anomaly_first"]
    notes = summary.notes(df)
    if always:  # stays slow: flagged with both figures
        assert small["time_s_median"] >= 0.05 and isinstance(small["anomaly"], str)
        assert any(n.startswith("dot · odd · 1,000 (f64)") and "measured twice" in n for n in notes), notes
        assert "measured twice" in summary.row_flags(df)[df["size"] == 1000].iloc[0]
    else:  # the second measurement fits the trend: no flag, the first figure kept beside it
        assert small["time_s_median"] < 0.01 and not isinstance(small["anomaly"], str)
        assert not notes, notes
    raw = [json.loads(line) for line in (Path(df.attrs["run_dir"]) / "points.jsonl").read_text().splitlines()]
    assert len(raw) == 3, "the first measurement stays on disk"


# --------------------------------------------------------------------------- the command line

@needs_futhark
def test_run_sweeps_a_users_own_program(tmp_path):
    (tmp_path / "my.fut").write_text(USER_PROGRAM)
    out = _cli("run", "my.fut", "--entry", "axpy", "--inputs", "2.5f32 [n]f32 [n]f32", "--sizes", "1000,20000",
               "--backends", "c,multicore", "--max-time", "0.05", "--min-time", "0.01", "--results", "res", "-q",
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "SUMMARY" in out.stdout and "my.axpy [f32]" in out.stdout
    (run,) = (tmp_path / "res").iterdir()
    rows = [json.loads(line) for line in (run / "points.jsonl").read_text().splitlines()]
    assert {(r["impl"], r["size"]) for r in rows} == {(i, n) for i in ("futhark-c", "futhark-multicore")
                                                      for n in (1000, 20000)}
    for r in rows:
        assert r["error"] is None and r["correct"] is True, r
        assert r["bytes"] == 4 + 3 * 4 * r["size"]  # the scalar, two inputs read, one output written
        assert r["time_s_median"] > 0 and r["kernel"] == "my.axpy"
    # the inputs and the reference are what they say: futhark's c answer is a*x + y of the generated inputs
    from futhark_lab.runtime.loader import compile as fcompile
    from futhark_lab.sweep.userkernel import c_reference, parse_inputs, user_kernel
    types = parse_inputs("2.5f32 [n]f32 [n]f32")
    m = fcompile(tmp_path / "my.fut", "c")
    k = user_kernel(tmp_path / "my.fut", "axpy", types, reference=c_reference(m, "axpy"))
    a, x, y = k.inputs(1000, "f32", np.random.default_rng(0))
    assert a == np.float32(2.5) and x.dtype == np.float32 and 0 <= x.min() and x.max() < 1
    np.testing.assert_allclose(k.numpy(a, x, y), a * x + y, rtol=1e-6)


@needs_futhark
def test_run_refuses_wrong_inputs_naming_the_parameter(tmp_path):
    (tmp_path / "my.fut").write_text(USER_PROGRAM)
    out = _cli("run", "my.fut", "--entry", "total", "--inputs", "[n]f32", "--backends", "c", cwd=tmp_path)
    assert out.returncode != 0
    assert "entry total, parameter x: it is []f64" in out.stderr and "[n]f64" in out.stderr


def test_run_on_a_missing_file_says_it_does_not_exist(tmp_path):
    out = _cli("run", "nothere.fut", "--entry", "f", "--inputs", "[n]f32", "--backends", "c", cwd=tmp_path)
    assert out.returncode != 0 and "nothere.fut does not exist" in out.stderr
    assert "not a kernel of the suite" not in out.stderr and "Traceback" not in out.stderr


@needs_futhark
def test_run_shows_the_compilers_whole_message(tmp_path):
    import futhark_lab
    from futhark_lab.errors import FutharkCompileError

    (tmp_path / "bad.fut").write_text(TYPE_ERROR)
    with pytest.raises(FutharkCompileError) as err:
        futhark_lab.compile(tmp_path / "bad.fut", backend="c")
    message = err.value.message.strip()
    assert len(message.splitlines()) >= 3
    out = _cli("run", "bad.fut", "--sizes", "1000", "--backends", "c", cwd=tmp_path)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr


@needs_futhark
def test_run_with_a_backend_that_fails_everywhere_exits_nonzero_with_the_cause(tmp_path):
    (tmp_path / "my.fut").write_text(USER_PROGRAM)
    out = _cli("run", "my.fut", "--entry", "total", "--sizes", "1000", "--backends", "cuda", "--results", "res",
               "-q", cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})  # no GPU, even on a machine with one
    assert out.returncode != 0
    assert "futhark-cuda failed at every size of my.total" in out.stderr
    cause = out.stderr.split("failed at every size of my.total:", 1)[1]
    assert "cuda" in cause.lower() and len(cause.strip()) > 40, cause


@needs_futhark
def test_bench_prints_the_compilers_whole_message(tmp_path):
    import futhark_lab
    from futhark_lab.errors import FutharkCompileError

    (tmp_path / "bad.fut").write_text(TYPE_ERROR)
    with pytest.raises(FutharkCompileError) as err:
        futhark_lab.compile(tmp_path / "bad.fut", backend="c")
    out = _cli("bench", "bad.fut", "--backends", "c", "--results", "res", "-q", cwd=tmp_path)
    assert out.returncode != 0
    assert err.value.message.strip() in out.stderr, out.stderr


def test_help_has_no_rest_markup():
    out = _cli("--help")
    assert out.returncode == 0 and "`" not in out.stdout and "run my.fut --entry" in out.stdout


# --------------------------------------------------------------------------- input types and sizes

def test_input_types_in_futharks_syntax():
    from futhark_lab.sweep.userkernel import InputSpecError, parse_inputs

    a, b, c, d, e = parse_inputs("[n]f32 [n][n]f64 [n][3]i32 2.5f32 n")
    rng = np.random.default_rng(1)
    assert a.make(7, rng).shape == (7,) and a.make(7, rng).dtype == np.float32
    m = b.make(5, rng)
    assert m.shape == (5, 5) and m.dtype == np.float64 and 0 <= m.min() and m.max() < 1
    ints = c.make(1000, rng)
    assert ints.shape == (1000, 3) and ints.dtype == np.int32 and 0 <= ints.min() and ints.max() < 100
    assert d.make(9, rng) == np.float32(2.5) and e.make(9, rng) == 9
    assert [t.futhark_type() for t in (a, b, c, d, e)] == ["[]f32", "[][]f64", "[][]i32", "f32", "i64"]
    assert b.nbytes(10) == 800
    for bad in ("[m]f32", "[n]f31", "f32x", ""):
        with pytest.raises(InputSpecError):
            parse_inputs(bad)


def test_gpu_sizes_reach_1e8_where_memory_allows_and_none_without_a_gpu(monkeypatch):
    from futhark_lab import suite
    from futhark_lab.sweep import devicesizes
    from futhark_lab.sweep.devicesizes import gpu_sizes

    monkeypatch.setattr(devicesizes, "host_memory", lambda: 128 * 2**30)  # the H200 host's
    k = suite.get("sum_squares")
    assert gpu_sizes(k, ["f64"], memory=0) == []
    assert gpu_sizes(k, ["f64"], memory=140 * 2**30, above=10**6) == [10**7, 10**8]
    assert gpu_sizes(k, ["f64"], memory=2**30, above=10**6) == [10**7]  # 1.6 GB at 10^8 does not fit 1/4 GiB
    assert max(gpu_sizes(suite.get("matmul"), ["f32"], memory=140 * 2**30)) == 4096**2


# --------------------------------------------------------------------------- small things

def test_doctor_names_pocl_as_the_cpu_and_python_without_a_stray_colon():
    from futhark_lab.runtime.doctor import BackendStatus, describe, format_table

    pocl = BackendStatus("opencl", True, "Portable Computing Language: pthread-haswell-AMD EPYC")
    gpu = BackendStatus("opencl", True, "NVIDIA CUDA: NVIDIA H200")
    py = BackendStatus("python", True, "")
    assert "OpenCL on the CPU" in describe(pocl) and "slower than the c and multicore" in describe(pocl)
    assert "CPU" not in describe(gpu)
    assert ": " not in describe(py).split("ok", 1)[1] and "host" in describe(py)
    assert describe(pocl) in format_table([pocl, py])


def test_breakdown_tells_f32_and_f64_bars_apart():
    from futhark_lab.view import plots

    rows = [dict(kernel="dot", impl=i, dtype=d, size=1000, time_s_median=1e-5, first_call_s=1e-3, h2d_s=1e-5,
                 d2h_s=1e-6, error=None) for i in ("futhark-c", "numpy") for d in ("f32", "f64")]
    fig = plots.breakdown(pd.DataFrame(rows))
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(set(labels)) == 4 and "futhark-c [f32]" in labels and "futhark-c [f64]" in labels


def test_report_title_and_no_empty_figures_heading(tmp_path):
    from futhark_lab.view import report

    df = pd.DataFrame([dict(kernel="prog.fut", dataset="#0", impl="futhark-c", error="FutharkCompileError: x",
                            correct=None, run_id="r")])
    html = report.report(df, tmp_path / "r.html", title="The kernel suite (futhark-lab demo)").read_text()
    assert "<h2>Figures</h2>" not in html
    assert "<h1>The kernel suite (futhark-lab demo)</h1>" in html and "futhark-lab report: futhark-lab" not in html
