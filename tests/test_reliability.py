"""Reliability: fuzzed inputs, failing kernels, concurrent compilation, leaks, and hostile arguments."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import futhark_lab
from futhark_lab import FutharkError
from futhark_lab.runtime.values import ConsumedError

from .conftest import PROGRAMS, ROOT, needs_futhark

pytestmark = needs_futhark

FUZZ_BACKENDS = ["c", "multicore"]
CASES = int(os.environ.get("FUTHARK_LAB_FUZZ_CASES", "2500"))  # per (backend, target): 4 targets x 2 backends


@pytest.fixture(scope="module", params=FUZZ_BACKENDS)
def mod(request):
    with futhark_lab.compile(PROGRAMS / "types.fut", backend=request.param) as m:
        yield m


dtypes = st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.uint64, np.float16,
                          np.float32, np.float64, np.bool_])
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))  # NaN/inf included
anything = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.text(max_size=3),
                     arrays, st.lists(st.integers(-10, 10), max_size=5),
                     st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5),
                     arrays.map(lambda a: a[::-1] if a.ndim else a), arrays.map(lambda a: a.T))

OK_ERRORS = (TypeError, ValueError, FutharkError, ConsumedError, OverflowError)
fuzz = settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@fuzz
@given(x=anything)
def test_fuzz_array_parameter(mod, x):
    """[]f64: a correct answer for anything NumPy converts losslessly, a clear exception otherwise."""
    try:
        got = mod.sum_squares(x)
    except OK_ERRORS as exc:
        assert "sum_squares" in str(exc) or isinstance(exc, FutharkError), str(exc)
        return
    a = np.asarray(x, dtype=np.float64)
    want = np.sum(a * a)
    assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=1e-12, nan_ok=True)


@fuzz
@given(a=anything, b=anything)
def test_fuzz_scalar_parameters(mod, a, b):
    try:
        got = mod.add_i32(a, b)
    except OK_ERRORS as exc:
        assert "add_i32" in str(exc), str(exc)
        return
    want = (int(a) + int(b) + 2**31) % 2**32 - 2**31
    assert got == want


@fuzz
@given(m=hnp.arrays(np.int64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=9)).flatmap(
    lambda a: st.sampled_from([a, a.T, a[::-1, ::2], np.asfortranarray(a)])))
def test_fuzz_views_and_layouts(mod, m):
    np.testing.assert_array_equal(mod.transpose_i64(m).numpy(), m.T)


@fuzz
@given(xs=hnp.arrays(np.int64, st.integers(0, 8)), i=st.integers(-2**63, 2**63 - 1))
def test_fuzz_index_out_of_bounds_never_crashes(mod, xs, i):
    try:
        got = mod.get(xs, i)
    except FutharkError as exc:
        assert "out of bounds" in str(exc).lower() or "index" in str(exc).lower()
        assert not (0 <= i < len(xs))
        return
    assert 0 <= i < len(xs) and got == xs[i]


def test_values_from_another_context_are_rejected():
    with futhark_lab.compile(PROGRAMS / "types.fut", backend="c") as a, \
            futhark_lab.compile(PROGRAMS / "types.fut", backend="multicore") as b:
        with pytest.raises(ValueError, match="another"):
            b.sum_squares(a.iota_f64(4))


@pytest.mark.parametrize("backend", FUZZ_BACKENDS)
def test_allocation_larger_than_memory_is_a_clear_error(backend):
    """8 TiB: more than this machine has (2**62 elements would overflow futhark's 64-bit byte count instead)."""
    with futhark_lab.compile(PROGRAMS / "types.fut", backend=backend) as m:
        with pytest.raises((FutharkError, MemoryError)) as exc:
            m.iota_f64(2**40)
        assert "memory" in str(exc.value).lower() or "alloc" in str(exc.value).lower(), str(exc.value)
        assert m.add_i32(1, 2) == 3


def test_two_processes_compiling_the_same_program_at_once(tmp_path):
    cache = tmp_path / "cache"
    src = f"entry f (x: i64): i64 = x * {os.getpid()} + 7\n"
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        os.environ["FUTHARK_LAB_CACHE"] = {str(cache)!r}
        import futhark_lab
        with futhark_lab.compile({src!r}, backend="c") as m:
            print(m.f(1), m.build.module_name)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.split()[0] == str(os.getpid() + 7)
    assert outs[0][0].split()[1] == outs[1][0].split()[1]
    entries = [d for d in cache.iterdir() if not d.name.startswith(".tmp")]
    assert len(entries) == 1 and (entries[0] / "BUILD_OK").exists()
    assert not [d for d in cache.iterdir() if d.name.startswith(".tmp")], "no half-built leftovers"


def test_rss_stays_flat_over_10000_calls():
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    with futhark_lab.compile(PROGRAMS / "types.fut", backend="c") as m:
        x = np.ones(4096, dtype=np.float32)
        for _ in range(1000):
            m.scale_f32(np.float32(2), x).numpy()
        before = proc.memory_info().rss
        for _ in range(10_000):
            r = m.scale_f32(np.float32(2), x)
            r.numpy()
            m.min_max(np.arange(10, dtype=np.int32))
        after = proc.memory_info().rss
    # 10,000 leaked 16 KiB arrays would be 160 MiB
    assert after - before < 8 * 2**20, f"RSS grew by {(after - before) / 2**20:.1f} MiB"


@pytest.mark.parametrize("args", [
    ["run", "kernels/sum_squares.fut; touch /tmp/futhark_lab_pwned", "--backends", "c"],
    ["run", "../../etc/passwd", "--backends", "c"],
    ["run", "kernels/sum_squares.fut", "--backends", "c;touch /tmp/futhark_lab_pwned"],
    ["run", "kernels/sum_squares.fut", "--sizes", "$(touch /tmp/futhark_lab_pwned)"],
    ["report", "`touch /tmp/futhark_lab_pwned`"],
])
def test_cli_arguments_never_reach_a_shell(args):
    out = subprocess.run([sys.executable, "-m", "futhark_lab.cli", *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode != 0
    assert not os.path.exists("/tmp/futhark_lab_pwned")
    assert "Traceback" not in out.stderr, out.stderr


def test_compiler_options_are_validated():
    with pytest.raises(ValueError, match="options must be"):
        futhark_lab.compile("entry f (x: i32): i32 = x", backend="c", options=["; rm -rf /"])
    with pytest.raises(ValueError, match="managed by futhark-lab"):
        futhark_lab.compile("entry f (x: i32): i32 = x", backend="c", options=["-o/tmp/x"])
