"""Peer libraries on the CPU (JAX, torch.compile, Numba's njit) as first-class implementations: correct, timed rows
beside NumPy and PyTorch; compilation in the first call, recompilations counted; x64 for JAX f64; a missing
package skipped with its install line; the command line's --peers; the doctor's peer table.  JAX and Numba come
with scripts/setup.sh (the `peers` extra), so none of this skips on CI."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

from futhark_lab import suite
from futhark_lab import sweep as sw
from futhark_lab.measure.timing import Policy

from .conftest import ROOT, needs_futhark

SHORT = Policy(min_time_s=0.01, max_time_s=0.05, warmup_s=0.01, min_samples=6)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def cpu_sweep(tmp_path_factory):
    pytest.importorskip("jax")
    pytest.importorskip("numba")
    pytest.importorskip("torch")
    impls = [sw.numpy_impl(), sw.torch("cpu", "sum"), sw.torch_compile("cpu", "sum"), sw.jax("cpu"),
             sw.numba("cpu")]
    return sw.sweep(suite.get("sum_squares"), impls, sizes=[1000, 30000], dtypes=["f64"], policy=SHORT, rounds=2,
                    results=tmp_path_factory.mktemp("peers"), progress=False, hardware=None)


def test_every_cpu_peer_gives_correct_timed_rows(cpu_sweep):
    df = cpu_sweep
    assert set(df["impl"]) == {"numpy", "torch-cpu-sum", "torch-compile-cpu-sum", "jax-cpu", "numba-cpu"}
    assert len(df) == 10
    assert df["error"].isna().all(), df[df["error"].notna()][["impl", "error"]]
    assert (df["correct"] == True).all()  # noqa: E712
    for _, r in df.iterrows():
        assert r["n"] >= 6 and len(r["samples_s"]) == r["n"]
        assert 0 < r["time_s_median"] < 0.05, (r["impl"], r["time_s_median"])
    jax_rows = df[df["impl"] == "jax-cpu"]
    assert (jax_rows["sync"] == "inside the call: block_until_ready").all()
    assert (jax_rows["h2d_s"] > 0).all()       # device_put timed apart, as for Futhark


def test_compilation_is_in_the_first_call_never_in_the_samples(cpu_sweep):
    df = cpu_sweep
    for impl in ("torch-compile-cpu-sum", "jax-cpu", "numba-cpu"):
        first = df[(df["impl"] == impl) & (df["size"] == 1000)].iloc[0]
        assert first["first_call_compiles"] >= 1, impl            # the first shape/dtype compiled at the first call
        assert first["first_call_s"] > 10 * first["time_s_median"], impl
        assert max(first["samples_s"]) < first["first_call_s"], impl
        assert (df[df["impl"] == impl]["recompiles"] == 0).all(), impl
    # numba's signature does not depend on the length: the second size reuses the first compilation
    nb = df[(df["impl"] == "numba-cpu") & (df["size"] == 30000)].iloc[0]
    assert nb["first_call_compiles"] == 0
    # JAX compiles each new shape: at its first call, counted there
    jx = df[(df["impl"] == "jax-cpu") & (df["size"] == 30000)].iloc[0]
    assert jx["first_call_compiles"] == 1


def test_recompiles_during_the_samples_are_counted_and_flagged(tmp_path):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from futhark_lab.view.report import warnings_for

    inner = jax.jit(lambda x, k: jnp.sum(x * x) * k, static_argnums=1)
    calls = itertools.count()

    def shifting(x):  # a static argument that changes between calls: a recompile on each new value
        return inner(x, next(calls) % 3 + 1)

    shifting._cache_size, shifting.lower = inner._cache_size, inner.lower   # counted as the jitted function
    k = sw.Kernel("shifting", suite.get("sum_squares").source, "sum_squares_f64",
                  make_inputs=lambda n, dt, rng: rng.random(n), numpy=lambda x: (x * x).sum(),
                  peers={"jax": shifting})
    df = sw.sweep(k, [sw.jax("cpu")], sizes=[500], dtypes=["f64"], policy=SHORT, rounds=1, results=tmp_path,
                  progress=False, hardware=None, on_error="record")
    r = df.iloc[0]
    assert r["first_call_compiles"] == 1
    assert r["recompiles"] >= 1
    assert any("recompiled" in line for line in warnings_for(df))


def test_jax_f64_switches_x64_on_and_computes_in_f64():
    pytest.importorskip("jax")
    code = textwrap.dedent("""
        import numpy as np, jax
        from futhark_lab import suite, sweep as sw
        from futhark_lab.sweep.impls import prepare
        from futhark_lab.sweep.modules import _ModuleCache
        assert not jax.config.jax_enable_x64
        k = suite.get("sum_squares")
        x = np.random.default_rng(1).standard_normal(10_001) * 1e-3 + 1.0   # f32 would lose digits here
        p = prepare(sw.jax("cpu"), k, "f64", (x,), _ModuleCache())
        out = p.call()
        want = np.sum(x * x)
        print(jax.config.jax_enable_x64, out.dtype, abs(float(out) - want) / want)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=ROOT,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    on, dtype, err = res.stdout.split()
    assert on == "True" and dtype == "float64" and float(err) < 1e-12


def test_a_missing_package_is_skipped_with_its_install_line(tmp_path):
    """An import hook makes jax and numba unimportable in a child process (a real install cannot provoke this)."""
    code = textwrap.dedent(f"""
        import sys, warnings
        sys.modules["jax"] = None
        sys.modules["numba"] = None
        from futhark_lab import suite, sweep as sw
        from futhark_lab.measure.timing import Policy
        from futhark_lab.commands.common import peer_implementations
        k = suite.get("sum_squares")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = sw.sweep(k, [sw.numpy_impl(), sw.jax("cpu"), sw.numba("cpu")], sizes=[100], dtypes=["f64"],
                          policy=Policy(min_time_s=0.01, max_time_s=0.02), rounds=1, results={str(tmp_path)!r},
                          progress=False, hardware=None)
        for _, r in df.iterrows():
            print("ROW", r["impl"], r["correct"], r["error"])
        for w in caught:
            print("WARN", w.message)
        print("CLI", [i.name for i in peer_implementations(["jax", "numba"], ["cpu"], k, False)])
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=ROOT,
                         timeout=300)
    assert res.returncode == 0, res.stderr                       # never crashes, never SweepFailed
    rows = {line.split()[1]: line for line in res.stdout.splitlines() if line.startswith("ROW")}
    assert rows["numpy"].split()[2] == "True"
    assert "PeerUnavailable" in rows["jax-cpu"] and "pip install jax" in rows["jax-cpu"]
    assert "pip install numba" in rows["numba-cpu"]
    assert any(line.startswith("WARN") and "skipped" in line for line in res.stdout.splitlines())
    assert "CLI []" in res.stdout
    assert "jax-cpu" in res.stderr and "skipped" in res.stderr and "pip install jax" in res.stderr


def test_kernel_peers_are_checked_when_described():
    k = suite.get("sum_squares")
    with pytest.raises(ValueError, match="peers are jax"):
        sw.Kernel("x", k.source, "sum_squares_f64", make_inputs=lambda n, dt, rng: rng.random(n),
                  peers={"jaxx": lambda x: x})
    with pytest.raises(TypeError, match="must be a function"):
        sw.Kernel("x", k.source, "sum_squares_f64", make_inputs=lambda n, dt, rng: rng.random(n),
                  peers={"jax": 3})


def test_every_suite_kernel_has_jax_cupy_numba_and_torch_versions():
    for name, k in suite.KERNELS.items():
        assert {"jax", "cupy", "numba"} <= set(k.peers), name
        assert k.torch, name                                      # what torch.compile compiles
    for name in ("sum_squares", "saxpy", "matmul"):
        assert {"triton", "numba-cuda", "pycuda"} <= set(suite.get(name).peers), name


@pytest.mark.parametrize("name", ["saxpy", "dot", "stencil", "scan", "histogram", "matmul", "mandelbrot"])
def test_suite_jax_and_numba_versions_match_numpy(name, tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("numba")
    k = suite.get(name)
    size = {"matmul": 64 ** 2, "mandelbrot": 48 ** 2, "stencil": 40 ** 2}.get(name, 3000)
    df = sw.sweep(k, [sw.jax("cpu"), sw.numba("cpu")], sizes=[size], dtypes=list(k.dtypes), policy=SHORT,
                  rounds=1, results=tmp_path, progress=False, hardware=None)
    assert df["error"].isna().all(), df[["impl", "dtype", "error"]]
    assert (df["correct"] == True).all(), df[["impl", "dtype", "max_rel_err"]]  # noqa: E712


def test_doctor_lists_the_peers_and_why_not():
    pytest.importorskip("jax")
    pytest.importorskip("numba")
    from futhark_lab.sweep.impls import peer_status

    rows = {(r["peer"], r["device"]): r for r in peer_status()}
    for key in (("jax", "cpu"), ("numba", "cpu"), ("torch-compile", "cpu")):
        assert rows[key]["works"], rows[key]
    assert {("cupy", "cuda"), ("triton", "cuda"), ("pycuda", "cuda"), ("numba-cuda", "cuda")} <= set(rows)
    for key, r in rows.items():
        if not r["works"]:
            assert "skipped" in r["detail"] and ("install" in r["detail"] or "driver" in r["detail"]), r


@needs_futhark
def test_cli_run_with_peers(tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("numba")
    res = subprocess.run([sys.executable, "-m", "futhark_lab.cli", "run", "kernels/sum_squares.fut", "--backends",
                          "c", "--peers", "jax,numba,torch-compile", "--torch", "cpu", "--sizes", "2000",
                          "--dtypes", "f64", "--max-time", "0.05", "--min-time", "0.01", "--results", str(tmp_path),
                          "--run-id", "peers-cli", "-q"], capture_output=True, text=True, cwd=ROOT, env=_env(),
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [json.loads(line) for line in (tmp_path / "peers-cli" / "points.jsonl").read_text().splitlines()]
    by = {r["impl"]: r for r in rows}
    assert {"futhark-c", "jax-cpu", "numba-cpu", "torch-compile-cpu-sum", "torch-compile-cpu-dot"} <= set(by)
    for name in ("jax-cpu", "numba-cpu", "torch-compile-cpu-sum"):
        assert by[name]["correct"] is True and not by[name].get("error")
        assert math.isfinite(by[name]["time_s_median"]) and by[name]["first_call_s"] > by[name]["time_s_median"]
    assert (tmp_path / "peers-cli" / "report.html").is_file()


def test_numba_cuda_peer_and_the_suite_kernels_on_numbas_cuda_simulator(tmp_path):
    """The numba.cuda peer's whole path (to_device, launchers, synchronize, events, answers) and the suite's
    numba.cuda kernels, on Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1: Python threads, no GPU): correctness
    only, the GPU's numbers come from tests/test_gpu_peers.py and benchmarks/gpu_peers.sh."""
    pytest.importorskip("numba")
    code = textwrap.dedent(f"""
        from futhark_lab import suite, sweep as sw
        from futhark_lab.measure.timing import Policy
        for name, size in (("sum_squares", 100), ("matmul", 9 ** 2)):
            df = sw.sweep(suite.get(name), [sw.numba("cuda")], sizes=[size], dtypes=["f32"], rounds=1,
                          policy=Policy(warmup_s=0.0, min_samples=3, min_time_s=0.0, max_time_s=0.01),
                          results={str(tmp_path)!r}, progress=False, hardware=None, on_error="record")
            r = df.iloc[0]
            print("ROW", name, r["impl"], r["correct"], r["error"], r["n"], r["sync"])
    """)
    env = _env()
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if line.startswith("ROW")]
    assert [r[1] for r in rows] == ["sum_squares", "matmul"]
    for r in rows:
        assert r[2] == "numba-cuda" and r[3] == "True" and r[4] == "None", r
        assert int(float(r[5])) >= 3 and r[6] == "synchronize"


def test_torch_compile_that_compiles_nothing_is_said(tmp_path):
    """The suite's mandelbrot breaks on a data-dependent `.any()` in its loop: Dynamo gives up on the frame and
    runs it eagerly; the rows say nothing was compiled and the report says what that means."""
    pytest.importorskip("torch")
    from futhark_lab.view.report import warnings_for

    df = sw.sweep(suite.get("mandelbrot"), [sw.torch_compile("cpu")], sizes=[32 ** 2], policy=SHORT, rounds=1,
                  results=tmp_path, progress=False, hardware=None)
    assert (df["correct"] == True).all()  # noqa: E712
    assert (df["first_call_compiles"] == 0).all()
    assert any("compiled no graph" in w for w in warnings_for(df))


def test_peers_on_the_command_line_are_checked():
    from futhark_lab.commands.common import PEER_NAMES, parse_peers

    assert parse_peers("all") == list(PEER_NAMES)
    assert parse_peers("") == []
    assert parse_peers("jax, numba") == ["jax", "numba"]
    with pytest.raises(SystemExit, match="unknown peer.*jaxx.*choose from jax"):
        parse_peers("jaxx")
