"""Integration tests against the real futhark compiler: one shared program, NumPy-identical answers on every backend
that runs on this machine."""

from __future__ import annotations

import numpy as np
import pytest

import futhark_lab
from futhark_lab import FutharkCompileError, FutharkError

from .conftest import PROGRAMS, cpu_backends, needs_futhark

pytestmark = needs_futhark


@pytest.fixture(scope="module", params=cpu_backends())
def prog(request):
    backend = request.param
    with futhark_lab.compile(PROGRAMS / "types.fut", backend=backend) as m:
        yield m


def host(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def test_scalars(prog):
    assert prog.add_i32(2, 40) == 42
    assert isinstance(prog.add_i32(1, 2), (int, np.integer))
    got = prog.widen(-3, 300, 65535, 4_000_000_000, 2**63, 0.5, -7)
    want = np.float64(-3) + 300 + 65535 + 4_000_000_000 + 2.0**63 + 0.5 - 7
    assert got == want


def test_rank1_rank2_rank3(prog):
    rng = np.random.default_rng(1)
    xs = rng.random(1000).astype(np.float32)
    np.testing.assert_array_equal(host(prog.scale_f32(np.float32(3), xs)), xs * np.float32(3))
    m = rng.integers(-10**12, 10**12, size=(7, 5))
    np.testing.assert_array_equal(host(prog.transpose_i64(m)), m.T)
    a = rng.random((3, 4, 5)).astype(np.float32)
    r = prog.double3(a)
    assert r.shape == (3, 4, 5) and r.dtype == np.float32
    np.testing.assert_array_equal(host(r), a * 2)


def test_sum_squares_matches_numpy(prog):
    xs = np.random.default_rng(2).random(10_001)
    assert prog.sum_squares(xs) == pytest.approx(np.sum(xs * xs), rel=1e-12)


def test_last_runtime_is_the_calls_own_time(prog):
    """Every entry call times itself in C (entry + sync, as futhark's server does for futhark bench): positive,
    per entry point of the calling thread, and never longer than the call seen from Python."""
    import time

    if prog.backend in ("python", "pyopencl"):
        assert not hasattr(prog.sum_squares, "last_runtime_s")
        return
    xs = prog.array(np.random.default_rng(3).random(200_000))
    for fn, args in ((prog.sum_squares, (xs,)), (prog.min_max, (np.array([5, -3], dtype=np.int32),))):
        t = time.perf_counter()
        fn(*args)
        wall = time.perf_counter() - t
        inner = fn.last_runtime_s()
        assert 0 < inner <= wall


def test_arguments_by_name(prog):
    """Entry points take their Futhark parameter names as keywords (fast path and generic path alike); wrong names,
    a name given twice, or a missing parameter are errors that name the entry point."""
    import inspect

    xs = np.array([1.0, 2.0], dtype=np.float32)
    np.testing.assert_array_equal(host(prog.scale_f32(xs=xs, x=np.float32(3))), [3.0, 6.0])
    np.testing.assert_array_equal(host(prog.scale_f32(np.float32(3), xs=xs)), [3.0, 6.0])
    assert tuple(prog.min_max(xs=np.array([4, -1], dtype=np.int32))) == (-1, 4)
    assert list(inspect.signature(prog.scale_f32).parameters) == ["x", "xs"]
    for call, msg in ((lambda: prog.scale_f32(np.float32(3), x=np.float32(3)), "scale_f32() got multiple values "
                       "for argument 'x'"),
                      (lambda: prog.scale_f32(ys=xs, x=np.float32(1)), "scale_f32() got an unexpected keyword "
                       "argument 'ys'"),
                      (lambda: prog.scale_f32(xs=xs), "scale_f32() is missing parameter(s) 'x'"),
                      (lambda: prog.min_max(ys=xs), "min_max() got an unexpected keyword argument 'ys'"),
                      (lambda: prog.min_max(xs, xs=xs), "min_max() got multiple values for argument 'xs'")):
        with pytest.raises(TypeError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            call()


def test_parameter_names_that_the_fast_path_uses_itself():
    """Futhark parameters named like the specialised call's own globals (LAST, NULL) or temporaries (c0) neither
    shadow them nor lose keyword calls: those entry points take names through the generic path."""
    src = ("entry f (LAST: []f64) (c0: i64): f64 = LAST[c0]\n"
           "entry g (NULL: f64): f64 = NULL + 1\n")
    with futhark_lab.compile(src, backend="c") as m:
        xs = np.array([1.0, 2.5])
        assert m.f(xs, 1) == 2.5 and m.f(LAST=xs, c0=0) == 1.0 and m.f(xs, c0=1) == 2.5
        assert m.g(2.0) == 3.0 and m.g(NULL=2.0) == 3.0
        with pytest.raises(TypeError, match=r"f\(\) got an unexpected keyword argument 'ys'"):
            m.f(ys=xs, c0=0)
        with pytest.raises(TypeError, match=r"f\(\) is missing parameter\(s\) 'LAST'"):
            m.f(c0=1)


def test_tuple_results(prog):
    xs = np.array([5, -3, 9, 0], dtype=np.int32)
    assert tuple(prog.min_max(xs)) == (-3, 9)
    pos, neg = prog.partition_signs(np.array([1.0, -2.0, 3.0, -4.0]))
    np.testing.assert_array_equal(host(pos), [1.0, 3.0])
    np.testing.assert_array_equal(host(neg), [-2.0, -4.0])


def test_bool_f16_u8_u64_i16(prog):
    bs = np.array([True, False, True])
    np.testing.assert_array_equal(host(prog.negate_all(bs)), ~bs)
    assert prog.any_true(bs) and not prog.any_true(np.zeros(4, dtype=bool))
    h = np.array([0.5, 1.5, -2.25, 65504 / 4], dtype=np.float16)
    r = prog.double_f16(h)
    assert r.dtype == np.float16
    np.testing.assert_array_equal(host(r), h * np.float16(2))
    assert prog.half_scalar(np.float16(3.0)) == np.float16(1.5)
    u = np.arange(256, dtype=np.uint8)
    assert prog.u8_sum(u) == u.astype(np.uint32).sum()
    np.testing.assert_array_equal(host(prog.u8_invert(u)), 255 - u)
    big = np.array([1, 2**64 - 1, 7], dtype=np.uint64)
    assert prog.u64_max(big) == 2**64 - 1
    np.testing.assert_array_equal(host(prog.i16_neg(np.array([1, -5, 32767], dtype=np.int16))), [-1, 5, -32767])


def test_unique_parameter_consumes_device_value(prog):
    xs = np.array([1, 2, 3], dtype=np.int32)
    out = prog.bump_first(xs)  # from NumPy: the user's array is untouched
    np.testing.assert_array_equal(host(out), [2, 2, 3])
    np.testing.assert_array_equal(xs, [1, 2, 3])
    if prog.backend not in ("python", "pyopencl"):
        dev = prog.array(xs)
        out2 = prog.bump_first(dev)
        np.testing.assert_array_equal(out2.numpy(), [2, 2, 3])
        with pytest.raises(RuntimeError, match="consumed"):
            dev.numpy()


def test_device_resident_results_round_trip(prog):
    r = prog.iota_f64(5)
    assert r.shape == (5,) and r.dtype == np.float64
    assert prog.sum_squares(r) == 0 + 1 + 4 + 9 + 16  # passed back without a host copy
    np.testing.assert_array_equal(np.asarray(r), np.arange(5.0))


def test_records(prog):
    s = prog.mk_stats(np.array([1.0, 2.0, 6.0]))
    assert prog.stats_mean(s) == 3.0
    if prog.backend not in ("python", "pyopencl"):
        assert set(s.fields) == {"count", "mean"}
        assert s.mean == 3.0 and s["count"] == 3
        blob = s.store()
        s2 = prog.restore(s.futhark_type, blob)
        assert prog.stats_mean(s2) == 3.0


@pytest.mark.parametrize("call, pattern", [
    (lambda p: p.get(np.arange(3), 7), r"(?i)index \[7\] out of bounds|out of bounds"),
    (lambda p: p.checked(-1), r"(?i)assert"),
    (lambda p: p.idiv(1, 0), r"(?i)division by zero"),
])
def test_runtime_errors_raise_and_module_stays_usable(prog, call, pattern):
    with pytest.raises(FutharkError, match=pattern):
        call(prog)
    assert prog.add_i32(1, 1) == 2
    assert prog.sum_squares(np.array([3.0])) == 9.0


@pytest.mark.parametrize("args, pattern", [
    ((np.arange(4, dtype=np.float64),), r"parameter 'xs' expects \[\]i32"),       # lossy cast refused
    ((np.zeros((2, 2), dtype=np.int32),), r"rank-2"),                             # wrong rank
    ((None,), r"None"),
])
def test_bad_inputs_name_entry_parameter_and_types(args, pattern):
    with futhark_lab.compile(PROGRAMS / "types.fut", backend="c") as p:
        with pytest.raises(TypeError, match=pattern) as exc:
            p.min_max(*args)
        assert "min_max()" in str(exc.value)
        with pytest.raises(TypeError, match="expects a i32 scalar"):
            p.add_i32(1.5, 2)
        with pytest.raises(TypeError, match="out of range"):
            p.add_i32(2**40, 1)
        with pytest.raises(TypeError, match="takes 2 argument"):
            p.add_i32(1)
        # lossless casts are accepted: int16 -> i32, and Python ints
        assert tuple(p.min_max(np.array([3, 1], dtype=np.int16))) == (1, 3)
        assert tuple(p.min_max([4, 2])) == (2, 4)


def test_compile_error_has_compiler_message_and_cell_lines():
    src = "entry f (x: i32): i32 =\n  x + true\n"
    with pytest.raises(FutharkCompileError) as exc:
        futhark_lab.compile(src, backend="c", name="<cell>")
    text = str(exc.value)
    assert "<cell>:2:" in text, text
    assert "program.fut" not in text


def test_build_cache_hits_and_force_rebuilds():
    from futhark_lab.builder.compiler import compile_program
    src = "entry g (x: f64): f64 = x * 2\n"
    b1 = compile_program(src, "c")
    b2 = compile_program(src, "c")
    assert b2.cache_hit and b2.directory == b1.directory
    b3 = compile_program(src, "c", force=True)
    assert not b3.cache_hit and b3.directory == b1.directory
    b4 = compile_program(src, "multicore")
    assert b4.module_name != b1.module_name


def test_imports_resolve_relative_to_base_dir_and_enter_cache_key(tmp_path):
    lib = tmp_path / "lib.fut"
    lib.write_text("def twice (x: i32): i32 = 2 * x\n")
    src = 'import "lib"\nentry h (x: i32): i32 = twice x\n'
    with futhark_lab.compile(src, backend="c", base_dir=tmp_path) as m:
        assert m.h(21) == 42
    lib.write_text("def twice (x: i32): i32 = 3 * x\n")
    with futhark_lab.compile(src, backend="c", base_dir=tmp_path) as m:
        assert m.h(21) == 63, "a change in an imported file must invalidate the cache"
    assert not list(tmp_path.glob(".futhark_lab_*")), "temporary source files must be cleaned up"


def test_context_options_multicore_threads_and_profiling():
    with futhark_lab.compile(PROGRAMS / "types.fut", backend="multicore", num_threads=2, profiling=True) as m:
        xs = np.random.default_rng(0).random(100_000)
        assert m.sum_squares(xs) == pytest.approx(np.sum(xs * xs))
        df = m.report()
        assert len(df) > 0 and "name" in df.columns


def test_unknown_tuning_parameter_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown tuning parameter"):
        futhark_lab.compile(PROGRAMS / "types.fut", backend="c", tuning={"no_such_param": 3})


def test_values_from_another_context_are_refused():
    with futhark_lab.compile(PROGRAMS / "types.fut", backend="c") as a, \
            futhark_lab.compile(PROGRAMS / "types.fut", backend="c") as b:
        x = a.iota_f64(3)
        with pytest.raises(ValueError, match="another"):
            b.sum_squares(x)


def test_closing_frees_values_and_later_use_is_an_error():
    m = futhark_lab.compile(PROGRAMS / "types.fut", backend="c")
    x = m.iota_f64(3)
    m.close()
    with pytest.raises(ValueError, match="closed"):
        x.numpy()
    with pytest.raises(ValueError, match="closed"):
        m.sum_squares(np.ones(3))


def test_cuda_generated_code_compiles_here():
    """The cuda backend's C compiles on a CPU machine (cuda.h from the toolkit, nvrtc.h from PyPI where missing);
    running it is the GPU tests' job."""
    from futhark_lab.builder.toolchain import _cuda_home, _nvrtc_include_dirs
    from futhark_lab.builder.compiler import compile_program
    if _cuda_home() is None:
        pytest.skip("no CUDA toolkit headers (cuda.h) on this machine")
    if not _nvrtc_include_dirs():
        pytest.skip("no nvrtc.h (pip install nvidia-cuda-nvrtc)")
    b = compile_program(PROGRAMS / "types.fut", "cuda", link=False)
    assert (b.directory / f"{b.module_name}.o").stat().st_size > 0
