"""`-- ==` benchmark datasets: the spec reader and value printer against futhark's own behaviour, runs through the
binding checked against real `futhark bench --json` output of the same program (dataset names, memory, answers),
the JSON importer, the comparison, the report and the CLI."""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from futhark_lab.bench import datasets as ds
from futhark_lab.bench import spec as sp

from .conftest import needs_futhark

# --------------------------------------------------------------------------- the grammar (no compiler needed)

SPEC = '''-- A test program.
-- ==
-- tags { foo no_multicore }
-- entry: a b
-- input { 1 2 } output { 3 }
-- "named" input @ data/x.in.gz
-- compiled random input { [1_000]f32 [10][20]i64 3 }
-- nobench input { [[1,2],[3,4]] [1.5f32] }
-- input { 1 } error: Err.*
-- structure gpu { SegMap 1 }

entry a (x: i32) (y: i32) = x + y

-- ==
-- entry: c
-- input { 5i64 } auto output
'''


def test_spec_cases_and_descriptions():
    s = sp.parse(SPEC, "p.fut")
    assert s.tags == ("foo", "no_multicore")
    assert s.entries() == ["a", "b", "c"]
    a = [r for io in s.cases if io.entry == "a" for r in io.runs]
    assert [r.description for r in a] == ['#0 ("1i32 2i32")', "named", "[1000]f32 [10][20]i64 3i32",
                                          '#3 ("[[1i32, 2i32], [3i32, 4i32]] [1.5f32]")', '#4 ("1i32")']
    assert [r.expected.kind for r in a] == ["values", "none", "none", "none", "error"]
    assert a[2].tags == ("compiled", "random")
    (c,) = [r for io in s.cases if io.entry == "c" for r in io.runs]
    assert c.description == '#0 ("5i64")' and c.expected.kind == "auto"
    # exclusion as futhark bench: program tags, no_<backend>, nobench, error cases, --exclude
    assert sp.excluded(s, a[0], "multicore") == "program tagged no_multicore"
    assert sp.excluded(s, a[0], "c", ("foo",)) == "program tagged foo"
    s2 = sp.parse(SPEC.replace("tags { foo no_multicore }", ""), "p.fut")
    runs = [r for io in s2.cases if io.entry == "a" for r in io.runs]
    assert [sp.excluded(s2, r, "c") for r in runs] == [None, None, None, "dataset tagged nobench",
                                                         "expects a run-time error"]
    assert sp.excluded(s2, runs[2], "c", ("compiled",)) == "dataset tagged compiled"
    assert sp.program_key("p.fut", "main") == "p.fut" and sp.program_key("p.fut", "a") == "p.fut:a"


def test_spec_errors_name_file_and_line():
    with pytest.raises(sp.SpecError, match=r"p.fut:3: .*unclosed"):
        sp.parse("-- ==\n-- entry: f\n-- input { [1, 2\nentry f (x: []i32) = x\n", "p.fut")
    with pytest.raises(sp.SpecError, match="multiple datasets with name"):
        sp.parse('-- ==\n-- "x" input { 1 }\n-- "x" input { 2 }\n', "p.fut")
    with pytest.raises(sp.SpecError, match=r"p.fut:2: expected 'input' after banana"):
        sp.parse("-- ==\n-- input { 1 } banana\n", "p.fut")
    assert sp.parse("-- ==\n-- error: type error\nentry f = 1\n", "p.fut").compile_error == "type error"


@pytest.mark.parametrize("text,printed", [
    ("0.1 1e7 1234567.0 0.01 1.5e-3 -2.5", "0.1f64 1.0e7f64 1234567.0f64 1.0e-2f64 1.5e-3f64 -2.5f64"),
    ("123.456f32 3f32 0.1f32 -0.0", "123.456f32 3.0f32 0.1f32 -0.0f64"),
    ("f32.nan -f64.inf [1.5f32, f32.inf]", "f32.nan -f64.inf [1.5f32, f32.inf]"),
    ("[1i64, 2, 3] 300u8 -3i8 0x10 true", "[1i64, 2i64, 3i64] 44u8 -3i8 16i32 true"),
    ("empty([0]i32) empty([2][0]f32)", "empty([0]i32) empty([2][0]f32)"),
    ('"ab"', "[97u8, 98u8]"),
])
def test_values_print_as_futhark(text, printed):
    assert " ".join(ds.value_text(v) for v in ds.parse_values(text)) == printed


@pytest.mark.parametrize("bad", ["[1, 2.0]", "[1, 2", "[[1], [2, 3]]", "1.0i32", "[true, 1]"])
def test_bad_values_are_errors(bad):
    with pytest.raises(sp.SpecError):
        ds.parse_values(bad)


def test_compare_values_is_futharks_tolerance():
    f = np.float64
    assert ds.compare_values([np.array([1000.0, 1.0])], [np.array([1001.9, 1.0])]) == []     # 0.002 · max
    assert ds.compare_values([np.array([1.0])], [np.array([1.003])]) == \
        ["Value #0 index [0]: expected 1.003, got 1.0"]
    assert ds.compare_values([f(np.nan)], [f(np.nan)]) == []
    assert ds.compare_values([f(-np.inf)], [f(np.inf)])
    # futhark scales the tolerance by the largest expected value, not the largest magnitude
    assert ds.compare_values([np.array([-1000.5])], [np.array([-1000.0])])
    assert ds.compare_values([np.array([1, 2], dtype=np.int32)], [np.array([1, 3], dtype=np.int32)]) == \
        ["Value #0 index [1]: expected 3, got 2"]
    assert ds.compare_values([np.zeros(2)], [np.zeros(3)]) == ["Value #0: expected array of shape [3], got [2]"]
    assert ds.compare_values([np.zeros(2, np.float32)], [np.zeros(2)])[0].startswith("Value #0: expected value of type f64")


def test_data_files_binary_text_gzip_mixed(tmp_path):
    import futhark_data

    a, b = np.arange(5, dtype=np.float32), np.array([[1, 2], [3, 4]], dtype=np.int64)
    (tmp_path / "x.in").write_bytes(futhark_data.dumpb(a) + b"\n-- a comment\n [1, 2]\n" + futhark_data.dumpb(b))
    (tmp_path / "x.in.gz").write_bytes(gzip.compress((tmp_path / "x.in").read_bytes()))
    for name in ("x.in", "x.in.gz"):
        got = ds.read_file(tmp_path / name)
        assert [ds.value_text(v) for v in got] == [ds.value_text(a), "[1i32, 2i32]", ds.value_text(b)]
    (tmp_path / "bad.in").write_bytes(futhark_data.dumpb(a)[:-3])
    with pytest.raises(sp.SpecError, match="truncated"):
        ds.read_file(tmp_path / "bad.in")
    with pytest.raises(sp.SpecError, match="does not exist"):
        ds.read_file(tmp_path / "missing.in")


def test_numpy_random_uses_futharks_ranges():
    x = ds.numpy_random([10000], "f32")
    assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    y = ds.numpy_random([10000], "i8")
    assert y.min() < -100 and y.max() > 100            # the whole type, as futhark dataset draws integers
    assert ds.numpy_random([3], "bool").dtype == np.bool_


# --------------------------------------------------------------------------- against the real futhark

PROGRAM = '''-- ==
-- entry: sum_sq
-- tiny input { [1.0, 2.0, 3.0] } output { 14.0 }
-- "big" random input { [1000000]f64 }
-- input @ data/xs.in
-- input @ data/ys.in.gz
-- nobench input { [1.0] }

entry sum_sq (xs: []f64): f64 = f64.sum (map (\\x -> x*x) xs)

-- ==
-- entry: scale
-- random input { [2000000]f32 2f32 }
-- tiny input { [1f32, 2f32] 3f32 } output { [3f32, 6f32] }
-- tiny input { [1f32, 2f32] 3f32 } output { [3f32, 7f32] }
entry scale (xs: []f32) (a: f32): []f32 = map (*a) xs

-- ==
-- entry: inc
-- tiny input { [1i32, 2i32, 3i32] } output { [2, 3, 4] }
entry inc (xs: *[]i32): []i32 = map (+1) xs
'''
# futhark bench runs datasets of a few µs tens of thousands of times (and bootstraps over them): the real
# futhark bench below leaves the `tiny` ones out (--exclude-case), futhark-lab runs all of them.


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    import futhark_data

    d = tmp_path_factory.mktemp("benchprog")
    (d / "data").mkdir()
    (d / "prog.fut").write_text(PROGRAM)
    (d / "data" / "xs.in").write_bytes(futhark_data.dumpb(np.arange(1_000_000, dtype=np.float64)))
    (d / "data" / "ys.in.gz").write_bytes(gzip.compress(futhark_data.dumpb(np.ones(500_000))))
    return d


def _futhark_bench(futhark: str, d: Path, backend: str, out: str, program: str = "prog.fut") -> dict:
    proc = subprocess.run([futhark, "bench", f"--backend={backend}", "--json", out, "-r", "3",
                           "--no-convergence-phase", "--exclude-case=tiny", program], cwd=d, capture_output=True, text=True, timeout=600)
    assert (d / out).exists(), proc.stdout + proc.stderr
    return json.loads((d / out).read_text())


@pytest.fixture(scope="module")
def real_json(program):
    from futhark_lab.builder.toolchain import find_futhark
    return _futhark_bench(find_futhark().path, program, "c", "fb-c.json")


@pytest.fixture(scope="module")
def lab_run(program, tmp_path_factory):
    from futhark_lab.bench import bench
    from futhark_lab.measure.timing import Policy

    cwd = os.getcwd()
    os.chdir(program)
    try:
        return bench("prog.fut", ["c", "multicore"], results=tmp_path_factory.mktemp("res"), run_id="r1",
                     policy=Policy(min_samples=5, min_time_s=0.02, max_time_s=0.2), progress=False)
    finally:
        os.chdir(cwd)


@needs_futhark
def test_json_shape_of_real_futhark_bench(real_json):
    assert set(real_json) == {"prog.fut:sum_sq", "prog.fut:scale", "prog.fut:inc"}
    assert real_json["prog.fut:inc"]["datasets"] == {}            # every dataset excluded
    # names of inline datasets were compared with futhark bench's by hand (test_spec_cases_and_descriptions)
    assert set(real_json["prog.fut:sum_sq"]["datasets"]) == {"big", "data/xs.in", "data/ys.in"}
    ok = real_json["prog.fut:sum_sq"]["datasets"]["big"]
    assert isinstance(ok["runtimes"], list) and all(isinstance(x, int) for x in ok["runtimes"])
    assert ok["bytes"] == {"default space": 1_000_000 * 8}


@needs_futhark
def test_bench_runs_the_datasets_futhark_bench_runs(real_json, lab_run):
    df = lab_run
    theirs = {(k, d) for k, v in real_json.items() for d in v["datasets"]}
    ours = {(k, d) for k, d, t in zip(df["kernel"], df["dataset"], df["tags"]) if "tiny" not in t}
    assert ours == theirs                              # same names, same skipped (nobench) dataset
    assert len(df) == 2 * (len(theirs) + 4)
    assert set(df["impl"]) == {"futhark-c", "futhark-multicore"}
    ok = df[df["error"].isna()]
    assert len(ok) == len(df)
    r = df.set_index(["kernel", "dataset", "backend"])
    wrong = r.loc[("prog.fut:scale", '#2 ("[1.0f32, 2.0f32] 3.0f32")', "c")]
    assert wrong["correct"] is False or wrong["correct"] == False  # noqa: E712
    assert "expected 7.0, got 6.0" in wrong["mismatch"]
    assert r.loc[("prog.fut:sum_sq", '#0 ("[1.0f64, 2.0f64, 3.0f64]")', "multicore")]["correct"] == True  # noqa
    assert r.loc[("prog.fut:inc", '#0 ("[1i32, 2i32, 3i32]")', "c")]["correct"] == True  # noqa: E712 (consumed)
    # peak memory as futhark bench measures it, for every dataset it ran
    for k, v in real_json.items():
        for d, res in v["datasets"].items():
            if isinstance(res, dict):
                assert r.loc[(k, d, "c")]["memory"] == res["bytes"], (k, d)
    big = r.loc[("prog.fut:sum_sq", "big", "c")]
    assert big["size"] == 1_000_000 and big["dtype"] == "f64" and big["bytes"] == 1_000_000 * 8 + 8
    assert big["n"] >= 5 and big["first_call_s"] > 0 and big["h2d_s"] > 0 and big["time_s_median"] > 0
    fb = np.median(real_json["prog.fut:sum_sq"]["datasets"]["big"]["runtimes"]) / 1e6
    assert 0.3 < big["time_s_median"] / fb < 3         # the same work (the agreement itself: benchmarks/)


@needs_futhark
def test_bench_resumes(program, lab_run, tmp_path):
    from futhark_lab.bench import bench

    rows = lab_run.to_dict("records")
    # a run that already has every point measures nothing again
    results = tmp_path / "res"
    (results / "again").mkdir(parents=True)
    with open(results / "again" / "points.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps({k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))},
                               default=str) + "\n")
    cwd = os.getcwd()
    os.chdir(program)
    try:
        df = bench("prog.fut", ["c", "multicore"], results=results, run_id="again", progress=False)
    finally:
        os.chdir(cwd)
    assert len(df) == len(rows)


@needs_futhark
def test_import_and_compare(real_json, lab_run, tmp_path):
    from futhark_lab.bench import compare, import_json, load_json

    a = tmp_path / "a.json"
    real_json = json.loads(json.dumps(real_json))
    # a failed dataset is a string in futhark bench's JSON (as 0.25.27 writes a mismatch)
    real_json["prog.fut:scale"]["datasets"]["broken"] = "prog.fut.actual and prog.fut.expected do not match"
    a.write_text(json.dumps(real_json))
    slower = json.loads(json.dumps(real_json))
    for v in slower.values():
        for res in v["datasets"].values():
            if isinstance(res, dict):
                res["runtimes"] = [int(x * 1.5) + 5 for x in res["runtimes"]]
    b = tmp_path / "b.json"
    b.write_text(json.dumps(slower))
    df = load_json([a], backend="c")
    assert set(df["impl"]) == {"futhark-c"} and len(df) == 5 and df["error"].notna().sum() == 1
    big = df[df["dataset"] == "big"].iloc[0]
    assert big["memory_bytes"] == 8_000_000 and big["n"] == len(real_json["prog.fut:sum_sq"]["datasets"]["big"]
                                                                  ["runtimes"])
    run = import_json([a, b], run_id="imp", results=tmp_path / "res")
    assert len(run) == 2 * len(df) and set(run["impl"]) == {"a", "b"}
    cmp = compare(a, b)
    assert (cmp["verdict"].iloc[0] == "slower") and (cmp["ratio_b_over_a"].iloc[0] > 1.4)
    measured = cmp[cmp["ratio_b_over_a"].notna()]
    assert (measured["ratio_b_over_a"] > 1).all()
    # a futhark-lab run against the JSON, one implementation selected
    c = compare(a, lab_run[lab_run["impl"] == "futhark-c"])
    assert "big" in set(c["dataset"]) and c["impl"].iloc[0] == "a → futhark-c"
    with pytest.raises(ValueError, match="several implementations"):
        compare(a, lab_run)


@needs_futhark
def test_report_has_the_1861_plots(lab_run, tmp_path):
    from futhark_lab.view import report

    path = report.report(lab_run, tmp_path / "r.html")
    html = path.read_text()
    assert "Runs per dataset" in html and "± % of mean" in html
    n_datasets = lab_run.groupby(["kernel", "dataset"]).ngroups
    assert html.count("<img") >= n_datasets
    assert 'alt="prog.fut:sum_sq · big"' in html and "throughput" in html
    from futhark_lab.view import benchplots
    st = benchplots.stats_frame(lab_run)
    row = st[(st["dataset"] == "big") & (st["impl"] == "futhark-c")].iloc[0]
    assert row["ci95_low_us"] <= row["mean_us"] <= row["ci95_high_us"] and row["ci95_pct_of_mean"] >= 0


@needs_futhark
def test_cli_bench_import_compare(program, real_json, tmp_path):
    env = {**os.environ, "FUTHARK_LAB_RESULTS": str(tmp_path / "res")}
    cli = [sys.executable, "-m", "futhark_lab.cli"]
    p = subprocess.run([*cli, "bench", "prog.fut", "--backends", "c", "--entry", "scale", "--max-time", "0.1",
                        "--min-time", "0.01", "--run-id", "b1", "-q"], cwd=program, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 1, p.stderr              # a dataset's output does not match: exit status says so
    assert "[2000000]f32 2.0f32" in p.stdout and (tmp_path / "res" / "b1" / "report.html").exists()
    (tmp_path / "fb.json").write_text(json.dumps(real_json))
    p = subprocess.run([*cli, "import", str(tmp_path / "fb.json"), "--backend", "c", "--run-id", "i1"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "imported 4" in p.stdout, p.stdout + p.stderr
    p = subprocess.run([*cli, "compare", "i1", "b1", "--report", str(tmp_path / "cmp.html")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "[2000000]f32 2.0f32" in p.stdout and "verdict" in p.stdout
    assert "Regressions" in (tmp_path / "cmp.html").read_text()
    p = subprocess.run([*cli, "bench", "prog.fut", "--backends", "c", "--entry", "nope"], cwd=program, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "no datasets for entry point 'nope'" in p.stderr


@needs_futhark
def test_bad_datasets_are_reported_per_dataset(tmp_path):
    from futhark_lab.bench import bench

    (tmp_path / "p.fut").write_text('''-- ==
-- input { [1, 2] }
-- input @ missing.in
-- input { [1.0, 2.0] }
entry main (xs: []f64): f64 = f64.sum xs
''')
    df = bench(tmp_path / "p.fut", ["c"], results=tmp_path / "res", progress=False)
    errs = dict(zip(df["dataset"], df["error"]))
    assert "expected input of types: []f64; provided input of types: []i32" in errs['#0 ("[1i32, 2i32]")']
    assert "does not exist" in errs["missing.in"]
    assert not isinstance(errs['#2 ("[1.0f64, 2.0f64]")'], str)
    assert df.set_index("dataset").loc['#2 ("[1.0f64, 2.0f64]")', "time_s_median"] > 0


HOW_TO_RUN_0271 = ("needs futhark 0.27.1, which the set-up does not install: run it with "
                   "FUTHARK_LAB_FUTHARK_0271=/path/to/futhark-0.27.1 .venv/bin/python -m pytest tests/test_bench.py "
                   "-k 0271 (it also runs when the compiler in use is 0.27.1, as under scripts/compat.sh)")


def futhark_0271() -> str | None:
    """The futhark 0.27.1 to compare with: $FUTHARK_LAB_FUTHARK_0271, else the compiler in use when it is 0.27.1."""
    if os.environ.get("FUTHARK_LAB_FUTHARK_0271"):
        return os.environ["FUTHARK_LAB_FUTHARK_0271"]
    from futhark_lab.builder.toolchain import find_futhark
    try:
        found = find_futhark()
    except Exception:  # noqa: BLE001 - no compiler at all: nothing to compare
        return None
    return found.path if found.version == (0, 27, 1) else None


@pytest.mark.slow
@pytest.mark.other_futhark
def test_futhark_0271_json_and_bench(tmp_path):
    """futhark 0.27.1 writes the same JSON shape; futhark-lab bench under it names and measures memory alike."""
    futhark = futhark_0271()
    if futhark is None:
        pytest.skip(HOW_TO_RUN_0271)
    # a wrong path or version named by the variable is an error, not a skip
    version = subprocess.run([futhark, "--version"], capture_output=True, text=True, timeout=60).stdout
    assert version.startswith("Futhark 0.27.1"), f"{futhark} is not futhark 0.27.1: {version[:80]!r}"
    (tmp_path / "p.fut").write_text('''-- ==
-- entry: pair
-- random input { [1000000]f32 }
entry pair (xs: []f32): (f32, []f32) = (f32.sum xs, map (+1) xs)
''')
    theirs = _futhark_bench(futhark, tmp_path, "c", "j.json", "p.fut")
    mem = theirs["p.fut:pair"]["datasets"]["[1000000]f32"]["bytes"]
    assert set(mem) == {"default space"} and mem["default space"] >= 8_000_000
    code = ("import os, json; os.chdir(os.environ['D'])\n"
            "from futhark_lab.bench import bench\nfrom futhark_lab.measure import Policy\n"
            "df = bench('p.fut', ['c'], results='res', progress=False, policy=Policy(min_samples=5, "
            "min_time_s=0.02, max_time_s=0.2))\n"
            "print(json.dumps([df.kernel[0], df.dataset[0], df.memory[0], df.error[0]]))")
    env = {**os.environ, "FUTHARK": futhark, "D": str(tmp_path)}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.splitlines()[-1]) == ["p.fut:pair", "[1000000]f32", mem, None]


@needs_futhark
def test_bench_samples_are_the_calls_own_c_timing(lab_run):
    """futhark bench's runtime is entry + sync timed in C by the server; bench samples are the same quantity (the call
    helper's clock), with the host clock's time of the same calls beside them."""
    ok = lab_run[lab_run["error"].isna()]
    assert (ok["timer"].str.startswith("inside the call")).all()
    big = ok[(ok["kernel"] == "prog.fut:sum_sq") & (ok["dataset"] == "big")]
    for _, row in big.iterrows():
        assert 0 < row["time_s_median"] <= row["host_time_s_median"]
        assert row["time_s_median"] > 0.5 * row["host_time_s_median"]   # 1e6 elements: the work, not the clock


@needs_futhark
def test_server_reference_drives_futhark_server_as_futhark_bench(program, tmp_path):
    """benchmarks/futhark_server_ref.py (the reference on machines without futhark): a real server built by
    `futhark c --server`, a text data file, and an entry point that consumes its input (reloaded per run)."""

    from futhark_lab.builder.toolchain import find_futhark

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from futhark_server_ref import server_runtimes

    exe = tmp_path / "prog"
    proc = subprocess.run([find_futhark().path, "c", "--server", str(program / "prog.fut"), "-o", str(exe)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    t = server_runtimes(exe, "sum_sq", program / "data" / "xs.in", runs=7, min_time_s=0.0)
    assert len(t) == 7 and (t > 0).all()
    text = tmp_path / "ints.in"
    text.write_text("[" + ", ".join(f"{i}i32" for i in range(10)) + "]\n")          # the textual format
    t = server_runtimes(exe, "inc", text, runs=4, min_time_s=0.0)          # *[]i32: restored again after each
    assert len(t) == 4


@pytest.mark.parametrize("idle", [-1, float("nan"), "5", 11])
def test_bench_refuses_a_bad_idle_time_before_reading_anything(idle, tmp_path):
    from futhark_lab.bench import bench

    with pytest.raises(ValueError, match="idle_s must be seconds between 0 and 10"):
        bench(tmp_path / "absent.fut", ["c"], idle_s=idle)


@pytest.mark.parametrize("seconds", [30e-6, 400e-6, 3e-3])
def test_idle_never_returns_early(seconds):
    """The gap reproduced before each run is at least what was asked (the sleep part leaves room for the machine's
    wake-up latency; the rest is spun to the deadline)."""
    import time

    from futhark_lab.bench.case import idle
    for _ in range(20):
        t = time.perf_counter()
        idle(seconds)
        assert time.perf_counter() - t >= seconds
