"""Tuning (issue 27): tuning files read and applied as futhark reads them, `futhark autotune` run by `tune` with
default against tuned measured side by side, tuning and compiler versions as sweep and bench dimensions.

Everything runs on the real compiler and OpenCL (PoCL on CPU machines and CI).  Compiler versions: the mechanism is
tested with two paths to the same compiler (always; the rows must name each build's version), and with two
different versions where a second compiler exists: $FUTHARK_LAB_SECOND_FUTHARK, else /opt/futhark-0.27.1/bin/futhark
(else the environment's own futhark when $FUTHARK names another version).
That test is only *defined* where the second compiler exists, so a strict CI run without it neither skips nor fakes
it; on the development machine (both compilers) it runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from futhark_lab.builder.tuning import NO_TUNING, TuningFileError, read_tuning_file, resolve, write_tuning_file
from futhark_lab.measure.timing import Policy

from .conftest import needs_futhark, opencl_platforms

ROOT = Path(__file__).resolve().parent.parent
FAST = Policy(min_samples=3, min_time_s=0.01, max_time_s=0.05)

# Row sums of an [n][m] array: nested parallelism, so futhark's GPU backends build versions chosen at run time by a
# threshold (suff_outer_par): one thread per row when n is large enough, a segmented reduction otherwise.
ROWSUM = """-- Row sums.
-- ==
-- entry: main
-- random input { [2][4000]f32 }
-- random input { [4000][2]f32 }
entry main (xss: [][]f32) : []f32 = map (\\xs -> f32.sum (map (*2) xs)) xss
"""

needs_opencl = pytest.mark.skipif(not opencl_platforms() or shutil.which("cc") is None,
                                  reason="no OpenCL platform (apt-get install pocl-opencl-icd ocl-icd-opencl-dev)")
pytestmark = pytest.mark.filterwarnings("ignore:opencl. no OpenCL GPU platform:UserWarning")


def _program(d: Path) -> Path:
    p = d / "rowsum.fut"
    p.write_text(ROWSUM)
    return p


def _threshold(module) -> str:
    names = [n for n in module.tuning_parameters() if "suff_outer_par" in n]
    assert names, module.tuning_parameters()
    return names[0]


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    return _program(tmp_path_factory.mktemp("tuning"))


@pytest.fixture(scope="module")
def threshold(prog):
    from futhark_lab.runtime.loader import compile
    with compile(prog, "opencl") as m:
        return _threshold(m)


# --------------------------------------------------------------------------- the file format (no compiler)

def test_tuning_file_round_trip_comments_and_errors(tmp_path):
    f = tmp_path / "p.fut.tuning"
    f.write_text("-- written by hand\n\nmain.suff_outer_par_0=20000\n  main.tblock = 128 \n")
    assert read_tuning_file(f) == {"main.suff_outer_par_0": 20000, "main.tblock": 128}
    write_tuning_file(tmp_path / "w.tuning", {"b": 2, "a": 1})
    assert (tmp_path / "w.tuning").read_text() == "a=1\nb=2\n"      # as futhark autotune writes: sorted
    assert resolve(f)[1] == str(f.resolve()) and resolve({"x": 1}) == ({"x": 1}, "(dict)")
    for text, words in [("main.t=abc\n", ["line 1", "'main.t'", "not an integer"]),
                        ("x=1\nmain.t=-5\n", ["line 2", "'main.t'", "negative"]),
                        ("just words\n", ["line 1", "name=value"]),
                        ("a=1\na=2\n", ["'a'", "twice"])]:
        f.write_text(text)
        with pytest.raises(TuningFileError) as e:
            read_tuning_file(f)
        assert all(w in str(e.value) for w in words), (text, str(e.value))
    with pytest.raises(TuningFileError, match="does not exist"):
        resolve(tmp_path / "absent.tuning")
    with pytest.raises(TypeError, match="tuning must be"):
        resolve(42)


# --------------------------------------------------------------------------- compile, %%futhark, the knobs

@needs_futhark
@needs_opencl
def test_compile_with_a_tuning_file_sets_and_lists_the_knob(prog, threshold, tmp_path):
    from futhark_lab.runtime.loader import compile
    f = write_tuning_file(tmp_path / "t.tuning", {threshold: 20000})
    x = np.random.default_rng(0).random((3, 50), dtype=np.float32)
    with compile(prog, "opencl") as plain:
        knobs = plain.tuning()
        assert plain.tuning_source is None
        assert list(knobs.columns) == ["name", "class", "value", "default", "source"]
        row = knobs.set_index("name").loc[threshold]
        assert row["class"].startswith("threshold") and pd.isna(row["value"])
        assert "runtime's choice for threshold" in row["default"]
        want = plain.main(x).numpy()
    with compile(prog, "opencl", tuning=f) as tuned:
        assert tuned.tuning_source == str(f.resolve())
        row = tuned.tuning().set_index("name").loc[threshold]
        assert row["value"] == 20000 and row["source"] == str(f.resolve())
        np.testing.assert_allclose(tuned.main(x).numpy(), want, rtol=1e-5)
    with compile(prog, "opencl", tuning={threshold: 1}) as d:
        assert d.tuning().set_index("name").loc[threshold, "value"] == 1 and d.tuning_source == "(dict)"


@needs_futhark
@needs_opencl
def test_unknown_names_and_bad_values_are_clear_errors(prog, threshold, tmp_path):
    from futhark_lab.runtime.loader import compile
    with pytest.raises(ValueError, match=r"unknown tuning parameter 'main.nope'; this program has: .*suff_outer"):
        compile(prog, "opencl", tuning={"main.nope": 3})
    bad = tmp_path / "bad.tuning"
    bad.write_text("main.nope=4\n")
    with pytest.raises(ValueError, match=r"'main.nope'.*from the tuning file .*bad.tuning"):
        compile(prog, "opencl", tuning=bad)
    bad.write_text(f"{threshold}=lots\n")
    with pytest.raises(TuningFileError, match=rf"line 1: tuning parameter '{threshold}' = 'lots'"):
        compile(prog, "opencl", tuning=bad)
    with pytest.raises(TypeError, match=rf"'{threshold}' = 1.5"):
        compile(prog, "opencl", tuning={threshold: 1.5})
    with pytest.raises(ValueError, match=rf"'{threshold}' = -1"):
        compile(prog, "opencl", tuning={threshold: -1})
    with pytest.raises(ValueError, match=r"unknown tuning parameter .*this program has: none"):
        compile(prog, "c", tuning={threshold: 5})       # the c backend has no thresholds


@needs_futhark
@needs_opencl
def test_magic_tuning_option(threshold, tmp_path):
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython
    ip = start_ipython() or get_ipython()  # None when another test module started the shared shell already
    ip.run_line_magic("load_ext", "futhark_lab")
    f = write_tuning_file(tmp_path / "cell.tuning", {threshold: 777})
    import io
    from contextlib import redirect_stdout
    buf = io.StringIO()
    with redirect_stdout(buf):
        res = ip.run_cell(f"%%futhark --backend opencl --name tuned --tuning {f}\n" + ROWSUM)
    assert res.success, buf.getvalue()
    assert f"tuning: {f.resolve()}" in buf.getvalue()
    m = ip.user_ns["tuned"]
    assert m.tuning().set_index("name").loc[threshold, "value"] == 777
    f.write_text("main.nope=1\n")
    with redirect_stdout(io.StringIO()):
        res = ip.run_cell(f"%%futhark --backend opencl --name t2 --tuning {f}\n" + ROWSUM)
    assert not res.success and "main.nope" in str(res.error_in_exec)
    m.close()


# --------------------------------------------------------------------------- bench: which tuning file each row used

@needs_futhark
@needs_opencl
def test_bench_uses_prog_fut_tuning_and_says_so(tmp_path, threshold, capsys):
    from futhark_lab.bench.run import bench
    p = _program(tmp_path)
    df = bench(p, ["opencl"], policy=FAST, results=tmp_path / "r", progress=True)
    assert set(df["tuning"]) == {NO_TUNING} and len(df) == 2
    assert "(no tuning file)" in capsys.readouterr().out
    write_tuning_file(str(p) + ".tuning", {threshold: 3000})
    df = bench(p, ["opencl"], policy=FAST, results=tmp_path / "r", progress=True)
    assert set(df["tuning"]) == {"(using rowsum.fut.tuning)"}
    assert all(tp == {threshold: 3000} for tp in df["tuning_params"])
    assert df["error"].isna().all() and (df["time_s_median"] > 0).all()
    assert "(using rowsum.fut.tuning)" in capsys.readouterr().out
    df = bench(p, ["opencl"], tuning=None, policy=FAST, results=tmp_path / "r", progress=False)
    assert set(df["tuning"]) == {NO_TUNING}
    # default against tuned in one run: two implementations, interleaved
    df = bench(p, ["opencl"], tuning=[None, "auto"], policy=FAST, results=tmp_path / "r", progress=False)
    assert sorted(set(df["impl"])) == ["futhark-opencl+default", "futhark-opencl+tuned"]
    assert len(df) == 4
    # the report records the tuning used
    from futhark_lab.view.report import report
    html = report(df, tmp_path / "rep.html").read_text()
    assert "Compilers and tuning" in html and f"{threshold}=3000" in html and "(using rowsum.fut.tuning)" in html


# --------------------------------------------------------------------------- tune: futhark autotune, then both

@needs_futhark
@needs_opencl
def test_cli_tune_writes_a_tuning_file_and_a_default_vs_tuned_table(tmp_path, threshold):
    p = _program(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "futhark_lab.cli", "tune", str(p), "--backend", "opencl",
                          "--runs", "2", "--min-runs", "3", "--min-time", "0.01", "--max-time", "0.05",
                          "--results", str(tmp_path / "res"), "--run-id", "t1"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    tuning = read_tuning_file(str(p) + ".tuning")           # written by futhark autotune itself
    assert threshold in tuning and tuning[threshold] > 0
    assert "autotune: Compiling rowsum.fut" in out.stderr    # its progress, streamed
    table = pd.read_csv(tmp_path / "res" / "t1" / "tuning_table.csv")
    assert len(table) == 2 and {"default_s", "tuned_s", "speedup", "verdict"} <= set(table.columns)
    assert (table["default_s"] > 0).all() and (table["tuned_s"] > 0).all()
    np.testing.assert_allclose(table["speedup"], table["default_s"] / table["tuned_s"])
    html = (tmp_path / "res" / "t1" / "report.html").read_text()
    assert "Default against tuned" in html and "speed-up" in html
    assert (tmp_path / "res" / "t1" / "rowsum.fut.tuning").read_text() == Path(str(p) + ".tuning").read_text()
    assert "speedup" in out.stdout and str(tuning[threshold]) in out.stdout


@needs_futhark
@needs_opencl
def test_fl_tune_api_and_autotune_errors(tmp_path):
    import futhark_lab as fl
    from futhark_lab.bench.tune import AutotuneError
    p = _program(tmp_path)
    r = fl.tune(p, "opencl", runs=2, policy=FAST, results=tmp_path / "res", progress=False)
    assert r.tuning_file == Path(str(p) + ".tuning") and r.params == read_tuning_file(r.tuning_file)
    assert set(r.df["impl"]) == {"futhark-opencl+default", "futhark-opencl+tuned"}
    assert set(r.df["tuning"]) == {NO_TUNING, "(using rowsum.fut.tuning)"}
    assert list(r.table["dataset"]) == ["[2][4000]f32", "[4000][2]f32"] and r.table["speedup"].notna().all()
    assert "speedup" in r._repr_html_()
    from futhark_lab.view.benchplots import tuning_figure
    assert tuning_figure(r.table).axes[0].get_ylabel().startswith("speed-up")
    # a time limit autotune cannot meet: stopped, with its last lines, and no claim of a tuning file
    with pytest.raises(AutotuneError, match="ran past 0.01 s"):
        fl.tune(p, "opencl", limit_s=0.01, progress=False)
    nodata = tmp_path / "nodata.fut"
    nodata.write_text("entry main (x: i32) = x\n")
    from futhark_lab.bench.spec import SpecError
    with pytest.raises(SpecError, match="no `-- ==` block"):
        fl.tune(nodata, "opencl", progress=False)


# --------------------------------------------------------------------------- sweeps: tuning and compiler dimensions

def _kernel(prog):
    from futhark_lab import sweep as sw
    return sw.Kernel("rowsum", str(prog), make_inputs=lambda n, dt, rng: rng.random((2, n // 2), dtype=np.float32),
                     numpy=lambda x: (2 * x).sum(axis=1), dtypes=["f32"], sizes=[200, 20000])


@needs_futhark
@needs_opencl
def test_sweep_tuning_dimension(tmp_path, threshold):
    from futhark_lab import sweep as sw
    p = _program(tmp_path)
    f = write_tuning_file(tmp_path / "t.tuning", {threshold: 5})
    with pytest.raises(TuningFileError, match="does not exist"):
        sw.futhark("opencl", tuning=tmp_path / "absent.tuning")
    df = sw.sweep(_kernel(p), [sw.futhark("opencl"), sw.futhark("opencl", tuning=f)], policy=FAST,
                  results=tmp_path / "r", progress=False)
    assert sorted(set(df["impl"])) == ["futhark-opencl", "futhark-opencl+tuned"]
    assert len(df) == 4 and df["correct"].all()
    by = df.set_index(["impl", "size"])["tuning"]
    assert by[("futhark-opencl", 200)] == NO_TUNING and by[("futhark-opencl+tuned", 20000)] == "(using t.tuning)"
    tuned = df[df["impl"] == "futhark-opencl+tuned"]
    assert all(tp == {threshold: 5} for tp in tuned["tuning_params"])
    from futhark_lab.view.report import report
    html = report(df, tmp_path / "rep.html").read_text()
    assert "Compilers and tuning" in html and f"{threshold}=5" in html


@needs_futhark
def test_compiler_dimension_two_paths_to_one_compiler(tmp_path):
    """The mechanism on any machine: two paths (the found compiler and a link to it) are two variants, each row
    naming its build's version; the build cache keys on the version, so they share one build."""
    from futhark_lab import sweep as sw
    from futhark_lab.bench.run import bench
    from futhark_lab.builder.toolchain import find_futhark
    fut = find_futhark()
    link = tmp_path / "futhark-link"
    link.symlink_to(fut.path)
    p = _program(tmp_path)
    df = bench(p, ["c"], futhark=[fut.path, str(link)], policy=FAST, results=tmp_path / "r", progress=False)
    v = fut.version_str
    assert sorted(set(df["impl"])) == [f"futhark-c@{v}(1)", f"futhark-c@{v}(2)"]
    assert set(df["futhark_version"]) == {v} and df["error"].isna().all()
    impls = [sw.futhark("c"), sw.futhark("c", futhark=link)]
    assert impls[1].name == f"futhark-c@{v}"
    s = sw.sweep(_kernel(p), impls, policy=FAST, results=tmp_path / "r", progress=False)
    assert set(s["futhark_version"]) == {v} and s["correct"].all() and len(s) == 4
    with pytest.raises(Exception, match="not an executable"):
        sw.futhark("c", futhark=tmp_path / "no-such-futhark")


def _second_futhark() -> Path | None:
    """A compiler of another version than the one found: $FUTHARK_LAB_SECOND_FUTHARK, /opt/futhark-0.27.1, or (when
    $FUTHARK names 0.27.1, as in the compatibility runs) the environment's own futhark."""
    import sysconfig

    from futhark_lab.builder.toolchain import find_futhark
    try:
        first = find_futhark().version
    except Exception:  # noqa: BLE001 - no compiler: needs_futhark says so
        return None
    for cand in (os.environ.get("FUTHARK_LAB_SECOND_FUTHARK"), "/opt/futhark-0.27.1/bin/futhark",
                 os.path.join(sysconfig.get_path("scripts"), "futhark")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            try:
                if find_futhark(cand).version != first:
                    return Path(cand)
            except Exception:  # noqa: BLE001
                continue
    return None


if _second_futhark() is not None:       # defined only where a second compiler exists: see the module docstring
    @needs_futhark
    def test_two_compiler_versions_side_by_side(tmp_path):
        from futhark_lab import sweep as sw
        from futhark_lab.bench.run import bench
        from futhark_lab.builder.toolchain import find_futhark
        first, second = find_futhark(), find_futhark(_second_futhark())
        assert first.version != second.version, "the second compiler must be another version"
        p = _program(tmp_path)
        df = bench(p, ["c"], futhark=[None, str(second.path)], policy=FAST, results=tmp_path / "r", progress=False)
        assert sorted(set(df["impl"])) == sorted([f"futhark-c@{first.version_str}", f"futhark-c@{second.version_str}"])
        for _, r in df.iterrows():
            assert r["impl"].endswith("@" + r["futhark_version"])
        s = sw.sweep(_kernel(p), [sw.futhark("c"), sw.futhark("c", futhark=second.path)], policy=FAST,
                     results=tmp_path / "r", progress=False)
        assert set(s["futhark_version"]) == {first.version_str, second.version_str} and s["correct"].all()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-m", "futhark_lab.cli", "bench", str(p), "--backends", "c",
                              "--futhark", f"default,{second.path}", "--runs", "3", "--min-time", "0.01",
                              "--max-time", "0.05", "--results", str(tmp_path / "cli"), "-q"],
                             capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        assert second.version_str in out.stdout and first.version_str in out.stdout
