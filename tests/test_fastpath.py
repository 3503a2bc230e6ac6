"""The specialised call path (issue 15): results, sentinels and errors through the value helpers, ABI mode alike,
threads, and the extension built beside the library at compile time."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import futhark_lab
from futhark_lab import FutharkError

from .conftest import ROOT, needs_futhark

pytestmark = needs_futhark

SRC = """
entry get_i64 (xs: []i64) (i: i64): i64 = xs[i]
entry get_f64 (xs: []f64) (i: i64): f64 = xs[i]
entry get_bool (xs: []bool) (i: i64): bool = xs[i]
entry get_u8 (xs: []u8) (i: i64): u8 = xs[i]
entry twice (xs: []f64): []f64 = map (*2) xs
entry slow_sum (xs: []f64) (k: i64): f64 = loop acc = 0 for i < k do acc + f64.sum (map (* f64.i64 i) xs)
"""


@pytest.fixture(scope="module", params=["c", "multicore"])
def prog(request):
    with futhark_lab.compile(SRC, backend=request.param) as m:
        yield m


def test_api_mode_and_specialised(prog):
    from futhark_lab.builder import fastcall
    fastcall.wait()  # the extension may still be compiling in the background on a busy machine
    if prog.library.mode != "api":
        with futhark_lab.compile(SRC, backend=prog.backend) as again:
            assert again.library.mode == "api"  # this machine has cc and Python.h
    assert type(prog.get_i64).__name__ == "EntryFunction_get_i64"
    assert "call helpers" in (prog.build.directory / "build.log").read_text()
    assert prog.get_i64._helper is not None  # entry + sync in one C call, in either mode


def test_sentinel_values_are_results(prog):
    ints = np.array([np.iinfo(np.int64).min, 5], dtype=np.int64)
    assert prog.get_i64(ints, 0) == np.iinfo(np.int64).min
    assert prog.get_i64(prog.array(ints), 1) == 5
    f = np.array([np.nan, 2.5])
    assert np.isnan(prog.get_f64(f, 0)) and prog.get_f64(f, 1) == 2.5
    assert prog.get_bool(np.array([False, True]), 0) is np.False_ or prog.get_bool(np.array([False, True]), 0) == 0
    assert prog.get_u8(np.array([255, 1], dtype=np.uint8), 0) == 255
    assert isinstance(prog.get_f64(f, 1), np.float64)


def test_failure_through_value_helper(prog):
    for fn, xs in ((prog.get_i64, np.arange(3)), (prog.get_f64, np.ones(3)), (prog.get_bool, np.ones(3, bool))):
        with pytest.raises(FutharkError, match="out of bounds|Index"):
            fn(xs, 7)
        assert fn(xs, 1) == xs[1]  # the context is fine afterwards


def test_array_result_and_threads(prog):
    xd = prog.array(np.arange(1000.0))
    np.testing.assert_array_equal(prog.twice(xd).numpy(), np.arange(1000.0) * 2)
    errors = []

    def work(k):
        try:
            ys = np.arange(100, dtype=np.int64) * k
            for i in range(200):
                assert prog.get_i64(ys, i % 100) == (i % 100) * k
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_abi_mode_same_answers(tmp_path):
    code = ("import numpy as np, futhark_lab as fl\n"
            f"m = fl.compile({SRC!r}, backend='c')\n"
            "assert m.library.mode == 'abi', m.library.mode\n"
            "assert m.get_i64(np.arange(4), 3) == 3\n"
            "try:\n    m.get_f64(np.ones(2), 5)\nexcept fl.FutharkError:\n    print('raised')\n")
    env = {**os.environ, "FUTHARK_LAB_BINDING": "abi", "FUTHARK_LAB_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "raised" in out.stdout


def test_extension_built_later_for_a_build_without_one(tmp_path):
    """A build made in ABI mode gets its extension when first loaded where extensions can be built."""
    code = ("import numpy as np, futhark_lab as fl\n"
            f"m = fl.compile({SRC!r}, backend='c')\n"
            "import futhark_lab.builder.fastcall; futhark_lab.builder.fastcall.wait()\n"
            f"m = fl.compile({SRC!r}, backend='c')\n"
            "print(m.library.mode, m.get_i64(np.arange(4), 2))\n")
    env = {**os.environ, "FUTHARK_LAB_CACHE": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", code], env={**env, "FUTHARK_LAB_BINDING": "abi"},
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert first.stdout.split() == ["abi", "2"], first.stderr
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT,
                            timeout=300)
    assert second.stdout.split() == ["api", "2"], second.stderr


def test_building_runs_no_python_in_a_forked_child(tmp_path):
    """A build forks no child that runs Python before exec (a ``preexec_fn``): in a process with threads (a Jupyter
    kernel with JAX or PyTorch loaded) such a child can deadlock, and JAX warns of it on every fork.  Python runs
    the ``os.register_at_fork`` hooks exactly for those forks, so counting them catches one."""
    code = ("import os, numpy as np, futhark_lab as fl\n"
            "forks = []\n"
            "os.register_at_fork(before=lambda: forks.append(1))\n"
            f"m = fl.compile({SRC!r}, backend='c')\n"
            "import futhark_lab.builder.fastcall; futhark_lab.builder.fastcall.wait()\n"
            f"m = fl.compile({SRC!r}, backend='c')\n"
            "print(m.library.mode, m.get_i64(np.arange(4), 2), len(forks))\n")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "FUTHARK_LAB_CACHE": str(tmp_path)},
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.stdout.split() == ["api", "2", "0"], (out.stdout, out.stderr)


SLOW_K = 3000   # ~0.1-1 s of work over 10^5 elements: long enough to act while the call runs


def _call_in_flight(m, xs):
    """slow_sum(xs) started on another thread and registered in the context as a fast call (the test skips if the
    call finished first): (the resident array, the thread, the list its answer goes to)."""
    xd, out = m.array(xs), []
    t = threading.Thread(target=lambda: out.append(m.slow_sum(xd, SLOW_K)))
    t.start()
    for _ in range(5000):
        if m.context._inflight:
            return xd, t, out
        if not t.is_alive():
            break
        threading.Event().wait(0.001)
    t.join()
    pytest.skip("the call finished before the test could race it")


def test_free_during_fast_call_waits_for_it(prog):
    """The fast path holds no lock: a free on another thread is queued until the call that uses the array returns
    (freed at once, the call would read freed memory)."""
    xs = np.ones(100_000)
    xd, t, out = _call_in_flight(prog, xs)
    ctx = prog.context
    xd.free()
    queued = len(ctx._deferred)
    t.join()
    assert queued == 1, "the free should wait for the call in flight"
    assert out == [xs.sum() * SLOW_K * (SLOW_K - 1) / 2]
    assert not ctx._deferred and not ctx._inflight  # run by the call on its way out
    with pytest.raises(ValueError, match="freed"):
        prog.slow_sum(xd, 1)


def test_close_during_fast_call(prog):
    """close() on another thread: new calls fail at once, the call in flight finishes with the right answer, and
    the context is freed when it returns."""
    m = futhark_lab.compile(SRC, backend=prog.backend)
    xs = np.arange(100_000.0)
    _, t, out = _call_in_flight(m, xs)
    ctx = m.context
    m.close()
    assert ctx.handle is None
    with pytest.raises(ValueError, match="closed"):
        m.slow_sum(np.ones(3), 1)
    still_alive = ctx._finalizer.alive
    t.join()
    assert still_alive, "the context must not be freed under the call in flight"
    assert out == [xs.sum() * SLOW_K * (SLOW_K - 1) / 2]
    assert not ctx._finalizer.alive and not ctx._deferred  # freed by the call on its way out
