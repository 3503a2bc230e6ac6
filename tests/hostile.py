"""Hostile-input suite: inputs and misuse that used to kill the process or answer wrongly, run per backend in
child processes and classified.

Each case ends as one of
  clean    a correct answer, or an exception of the binding's kinds (FutharkLabError, TypeError, ValueError,
           KeyError, ConsumedError) whose message names what it must (entry point, parameter, cause)
  unclear  an exception, but a raw one (OverflowError, JSONDecodeError, ...) or one that does not say what failed
  wrong    an answer where an error was due, or a wrong answer
  crash    the process died (a signal, exit(), abort)
  hang     no answer within the case's time limit

Runner: one child process per backend runs the cases in order and prints a line per case; when a child dies or
stops answering, that case is recorded as crash/hang and a new child goes on with the next case, so one crash
hides nothing.  Likewise when a case leaves the shared module retired (a sticky GPU error) or the backend poisoned
in the child: that case's result says so and a fresh child goes on with the next case.  Cases that need a process of their own (fork, interpreter exit, first OpenCL use) start it
themselves.

    python -m tests.hostile                      # every CPU backend that exists here
    python -m tests.hostile --backends cuda      # on a GPU machine (FUTHARK_LAB_GENERATED for code made elsewhere)
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = Path(__file__).resolve().parent / "programs" / "hostile.fut"
KINDS = ("crash", "hang", "wrong", "unclear", "clean")
CPU_BACKENDS = ("c", "multicore", "opencl", "python", "pyopencl")
GPU_LIKE = ("opencl", "pyopencl", "cuda", "hip")


# --------------------------------------------------------------------------- outcomes (in the child)

class Outcome(Exception):
    def __init__(self, kind: str, detail: str = ""):
        super().__init__(kind, detail)
        self.kind, self.detail = kind, detail


def ok_error_types():
    from futhark_lab.errors import FutharkLabError
    from futhark_lab.runtime.values import ConsumedError
    return (FutharkLabError, TypeError, ValueError, KeyError, ConsumedError)


def require_futhark() -> None:
    """Cases that compile new source need futhark (a GPU machine may run code generated elsewhere)."""
    from futhark_lab.builder.toolchain import futhark_available
    if not futhark_available():
        raise Outcome("skip", "needs the futhark compiler (absent here)")


def require_hypothesis() -> None:
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        raise Outcome("skip", "needs hypothesis (pip install hypothesis)") from None


def expect_error(fn: Callable[[], Any], *must: str) -> str:
    """clean if ``fn`` raises one of the binding's exceptions whose message names every string in ``must``."""
    try:
        got = fn()
    except ok_error_types() as exc:
        text = str(exc)
        missing = [m for m in must if m.lower() not in text.lower()]
        if missing or not text.strip() or text.strip() in ("''", '""'):
            raise Outcome("unclear", f"{type(exc).__name__} without {missing}: {text[:300]!r}")
        if "/.tmp-" in text:
            raise Outcome("unclear", f"names a temporary build directory: {text[:300]!r}")
        return f"{type(exc).__name__}: {text.splitlines()[0][:160]}"
    except Exception as exc:  # noqa: BLE001 - a raw exception is the finding
        raise Outcome("unclear", f"raw {type(exc).__name__}: {str(exc)[:300]!r}")
    raise Outcome("wrong", f"accepted, returned {_show(got)}")


def expect_value(got: Any, want: Any) -> str:
    import numpy as np
    g = got.numpy() if hasattr(got, "numpy") else got
    if not np.array_equal(np.asarray(g), np.asarray(want)):
        raise Outcome("wrong", f"got {_show(g)}, want {_show(want)}")
    return f"= {_show(want)}"


def _show(v: Any) -> str:
    if hasattr(v, "numpy") and hasattr(v, "shape"):
        try:
            return f"{type(v).__name__} of shape {v.shape}"
        except Exception:  # noqa: BLE001
            return type(v).__name__
    return repr(v)[:120]


def run_script(code: str, timeout: float = 180, expect_rc: int = 0, must: tuple[str, ...] = ()) -> str:
    """A case in a process of its own (the runner's env is inherited): classify its exit and its output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                             timeout=timeout, env=env, cwd=ROOT, errors="replace")
    except subprocess.TimeoutExpired:
        raise Outcome("hang", f"no exit within {timeout:g} s") from None
    out = (res.stdout + res.stderr).strip()
    if res.returncode < 0 or res.returncode not in (expect_rc, 0, 1):
        raise Outcome("crash", f"exit status {res.returncode}: {out[-400:]}")
    if res.returncode != expect_rc:
        raise Outcome("unclear" if "Traceback" in out else "wrong", f"exit status {res.returncode}: {out[-400:]}")
    if "WRONG" in out:
        raise Outcome("wrong", out[-400:])
    missing = [m for m in must if m not in out]
    if missing:
        raise Outcome("unclear", f"output lacks {missing}: {out[-400:]}")
    return out.splitlines()[-1][:160] if out else "exit 0"


# --------------------------------------------------------------------------- cases

CASES: list[tuple[str, Callable, tuple[str, ...] | None]] = []


def case(backends: tuple[str, ...] | None = None):
    def deco(fn):
        CASES.append((fn.__name__, fn, backends))
        return fn
    return deco


I64_MIN, I64_MAX, I32_MIN = -2**63, 2**63 - 1, -2**31


# sizes ------------------------------------------------------------------------------------------------------------
@case()
def rep_negative(m, b):
    return expect_error(lambda: m.rep(-1), "rep", "size")


@case()
def rep_i64_max(m, b):
    return expect_error(lambda: m.rep(I64_MAX), "rep", "size")


@case()
def rep_2_61_wraps_to_zero_bytes(m, b):
    return expect_error(lambda: m.rep(2**61), "rep")


@case()
def rep_2_62(m, b):
    return expect_error(lambda: m.rep(2**62), "rep")


@case()
def rep2_product_wraps(m, b):
    return expect_error(lambda: m.rep2(2**32, 2**32), "rep2")


@case()
def rep2_both_negative(m, b):
    return expect_error(lambda: m.rep2(-2, -3), "rep2")


@case()
def rep2_one_negative(m, b):
    return expect_error(lambda: m.rep2(-1, 5), "rep2")


@case()
def tuple_with_negative_array(m, b):
    return expect_error(lambda: m.rec_rep(-7), "rec_rep")


@case()
def record_with_negative_array(m, b):
    return expect_error(lambda: m.mk(-3), "mk")


@case()
def out_of_memory_is_futhark_out_of_memory(m, b):
    """8 TiB: more than any machine here has; FutharkOutOfMemory (also a MemoryError) on every backend."""
    from futhark_lab.errors import FutharkOutOfMemory
    try:
        m.rep(2**40)
    except FutharkOutOfMemory as exc:
        return f"FutharkOutOfMemory: {str(exc).splitlines()[0][:150]}"
    except Exception as exc:  # noqa: BLE001
        raise Outcome("unclear", f"{type(exc).__name__} instead of FutharkOutOfMemory: {str(exc)[:300]}") from None
    raise Outcome("wrong", "an 8 TiB array was accepted")


@case()
def unflatten_wrapping_product(m, b):
    import numpy as np
    return expect_error(lambda: m.unfl(2**32, 2**32, np.zeros(0, np.int32)), "unfl")


@case()
def unflatten_negative(m, b):
    import numpy as np
    return expect_error(lambda: m.unfl(-1, -1, np.zeros(1, np.int32)), "unfl")


@case()
def after_out_of_memory_module_still_works(m, b):
    """A refused huge allocation must leave nothing behind: futhark 0.25's GPU runtime took the refusal for success
    and kept a NULL block on its free list, which the next input copy or kernel then used (cuda, H100)."""
    import numpy as np
    for _ in range(2):
        try:
            m.rep(2**40)
        except MemoryError:
            pass
        except Exception as exc:  # noqa: BLE001
            raise Outcome("unclear", f"{type(exc).__name__} instead of an out-of-memory error: {str(exc)[:300]}")
        else:
            raise Outcome("wrong", "an 8 TiB array was accepted")
        got = m.array(np.arange(5, dtype=np.int32))
        expect_value(m.unfl(1, 5, got), [[0, 1, 2, 3, 4]])
        expect_value(m.rep(3), [1.0, 1.0, 1.0])
    return "small arrays and calls right after two refused 8 TiB allocations"


@case()
def iota_negative(m, b):
    return expect_error(lambda: m.iota_sum(-5), "iota_sum", "invalid")


@case()
def index_out_of_bounds_names_source(m, b):
    import numpy as np
    return expect_error(lambda: m.idx(np.arange(3), 7), "idx", "out of bounds", "hostile.fut")


@case()
def rep_zero_and_small_ok(m, b):
    import numpy as np
    expect_value(m.rep(0), np.ones(0))
    return expect_value(m.rep2(2, 0).numpy().shape, (2, 0))


# division ---------------------------------------------------------------------------------------------------------
@case()
def div64_min_by_minus_one_wraps(m, b):
    return expect_value(m.div64(I64_MIN, -1), I64_MIN)


@case()
def mod64_min_by_minus_one(m, b):
    return expect_value(m.mod64(I64_MIN, -1), 0)


@case()
def quot64_min_by_minus_one(m, b):
    return expect_value(m.quot64(I64_MIN, -1), I64_MIN)


@case()
def rem64_min_by_minus_one(m, b):
    return expect_value(m.rem64(I64_MIN, -1), 0)


@case()
def div32_and_quot32_min_by_minus_one(m, b):
    expect_value(m.div32(I32_MIN, -1), I32_MIN)
    return expect_value(m.quot32(I32_MIN, -1), I32_MIN)


@case()
def div8_min_by_minus_one(m, b):
    return expect_value(m.div8(-128, -1), -128)


@case()
def map_div_min_by_minus_one(m, b):
    import numpy as np
    expect_value(m.map_mod(np.array([I32_MIN, 7], np.int32), -1), [0, 0])
    return expect_value(m.map_div(np.array([I64_MIN, 5]), -1), [I64_MIN, -5])


@case()
def divide_by_zero(m, b):
    return expect_error(lambda: m.div64(1, 0), "div64", "division by zero")


@case()
def division_property(m, b):
    """Hypothesis: floor/trunc division and remainders of edge values agree with Python's wrap-around result."""
    require_hypothesis()
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    edges = st.sampled_from([I64_MIN, I64_MIN + 1, -2**32, -3, -2, -1, 1, 2, 3, 2**32, I64_MAX - 1, I64_MAX])
    ints = st.one_of(edges, st.integers(I64_MIN, I64_MAX))

    def wrap(v):
        return (v + 2**63) % 2**64 - 2**63

    def trunc(a, d):
        q = abs(a) // abs(d)
        return q if (a < 0) == (d < 0) else -q

    @settings(max_examples=int(os.environ.get("FUTHARK_LAB_HOSTILE_EXAMPLES", "150")), deadline=None,
              derandomize=True, suppress_health_check=list(HealthCheck), database=None)
    @given(a=ints, d=ints)
    def prop(a, d):
        if d == 0:
            return
        assert m.div64(a, d) == wrap(a // d), ("div64", a, d)
        assert m.mod64(a, d) == wrap(a % d), ("mod64", a, d)
        assert m.quot64(a, d) == wrap(trunc(a, d)), ("quot64", a, d)
        assert m.rem64(a, d) == wrap(a - d * trunc(a, d)), ("rem64", a, d)

    try:
        prop()
    except AssertionError as exc:
        raise Outcome("wrong", f"falsified: {exc}") from None
    return "all examples agree"


@case()
def size_property(m, b):
    """Hypothesis: replicate of edge sizes either answers exactly or fails cleanly, naming the entry point."""
    require_hypothesis()
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    # no valid size between 2**20 and 2**40 elements: a machine with that much memory would really fill it
    sizes = st.one_of(st.sampled_from([I64_MIN, -2**32, -1, 0, 1, 2**40, 2**60, 2**61, 2**62, I64_MAX]),
                      st.integers(-50, 50))

    @settings(max_examples=int(os.environ.get("FUTHARK_LAB_HOSTILE_EXAMPLES", "150")) // 3, deadline=None,
              derandomize=True, suppress_health_check=list(HealthCheck), database=None)
    @given(n=sizes, k=sizes)
    def prop(n, k):
        if b in ("python", "pyopencl") and 0 in (n, k) and max(n, k) > 2**20:
            return  # valid and empty, but futhark's python code loops over every (empty) row: slow, not wrong
        try:
            r = m.rep2(n, k)
        except ok_error_types() as exc:
            assert "rep2" in str(exc), f"unclear: {exc}"
            assert n < 0 or k < 0 or n * k * 8 >= 2**40, f"refused a valid size {(n, k)}: {exc}"
            return
        assert n >= 0 and k >= 0, f"accepted negative sizes {(n, k)}"
        got = r.numpy()
        assert got.shape == (n, k) and (got == 1).all(), f"wrong result for {(n, k)}"
    try:
        prop()
    except AssertionError as exc:
        raise Outcome("unclear" if "unclear" in str(exc) else "wrong", str(exc)[:300]) from None
    return "all examples exact or refused"


# conversions ------------------------------------------------------------------------------------------------------
@case()
def int64_beyond_2_53_into_f64_array(m, b):
    import numpy as np
    return expect_error(lambda: m.sum_f64(np.array([2**53 + 1])), "sum_f64", "xs")


@case()
def int64_scalar_beyond_2_53_into_f64(m, b):
    import numpy as np
    return expect_error(lambda: m.id_f64(np.int64(2**53 + 1)), "id_f64", "x")


@case()
def int64_exact_into_f64_ok(m, b):
    import numpy as np
    return expect_value(m.sum_f64(np.array([2**52, 3])), 2.0**52 + 3)


@case()
def python_int_inexact_into_f32(m, b):
    return expect_error(lambda: m.id_f32(2**24 + 1), "id_f32", "x")


@case()
def python_float_overflow_into_f32(m, b):
    return expect_error(lambda: m.id_f32(1e300), "id_f32", "x")


@case()
def python_int_overflow_into_f16(m, b):
    return expect_error(lambda: m.id_f16(70000), "id_f16", "x")


@case()
def huge_python_int_into_f64(m, b):
    return expect_error(lambda: m.id_f64(2**1100), "id_f64", "x")


@case()
def huge_python_int_into_i64(m, b):
    return expect_error(lambda: m.id_i64(2**64), "id_i64", "x")


@case()
def string_none_dict_into_scalar(m, b):
    for v in ("3", None, {}, [1], 1j):
        expect_error(lambda: m.id_i64(v), "id_i64")
    return "all refused"


@case()
def ragged_and_object_arrays(m, b):
    import numpy as np
    expect_error(lambda: m.sum_f64([[1.0], [2.0, 3.0]]), "sum_f64")
    expect_error(lambda: m.sum_f64(np.array([object()])), "sum_f64")
    return expect_error(lambda: m.sum_f64("abc"), "sum_f64")


@case()
def masked_array_not_silently_unmasked(m, b):
    import numpy as np
    expect_value(m.sum_f64(np.ma.array([1.0, 2.0], mask=[0, 0])), 3.0)
    return expect_error(lambda: m.sum_f64(np.ma.array([1.0, 2.0], mask=[0, 1])), "sum_f64", "xs", "mask")


@case()
def pickle_and_copy_refused_clearly(m, b):
    import copy
    import pickle
    expect_error(lambda: pickle.dumps(m.rep(2)), "pickle", ".numpy()")
    expect_error(lambda: copy.deepcopy(m.rep(2)), "copied")
    return expect_error(lambda: pickle.dumps(m), "compile")


@case()
def deeply_nested_list(m, b):
    v: Any = [1.0]
    for _ in range(5000):
        v = [v]
    return expect_error(lambda: m.sum_f64(v), "sum_f64")


@case()
def wrong_argument_count(m, b):
    return expect_error(lambda: m.rep(1, 2), "rep")


@case()
def unknown_entry_point(m, b):
    return expect_error(lambda: m["nope"], "nope", "rep")


# uniqueness -------------------------------------------------------------------------------------------------------
@case()
def same_array_to_unique_and_other_param(m, b):
    import numpy as np
    a = m.array(np.arange(4))
    return expect_error(lambda: m.inc_into(a, a), "inc_into", "unique")


@case()
def consumed_value_unusable(m, b):
    import numpy as np
    a = m.array(np.arange(3))
    r1 = m.inc(a)
    before = r1.numpy().copy()
    expect_error(lambda: m.inc(a), "consumed")
    expect_value(r1, before)
    return expect_error(lambda: a.numpy(), "consumed")


@case()
def array_owns_its_data(m, b):
    import numpy as np
    orig = np.arange(5)
    a = m.array(orig)
    m.bump(a)
    return expect_value(orig, np.arange(5))


@case()
def numpy_to_unique_param_not_modified(m, b):
    import numpy as np
    orig = np.arange(5)
    r = m.bump(orig)
    expect_value(r, [100, 1, 2, 3, 4])
    return expect_value(orig, np.arange(5))


# aliasing (issue 25): a nonunique output aliases its nonconsuming inputs; consuming it must not change them ------
@case()
def consuming_an_alias_keeps_the_original(m, b):
    import numpy as np
    x = m.array(np.arange(4))
    y = m.id_i64s(x)
    expect_value(m.bump(y), [100, 1, 2, 3])
    expect_value(x, np.arange(4))
    return expect_error(lambda: y.numpy(), "consumed", "bump", "xs")


@case()
def consuming_a_unique_output_leaves_the_input(m, b):
    import numpy as np
    x = m.array(np.arange(4))
    before = m.context.consume_copies
    expect_value(m.bump(m.fresh_i64s(x)), [100, 1, 2, 3])
    if m.context.consume_copies != before:
        raise Outcome("wrong", "a unique (*) output was copied before being consumed, as if it aliased its input")
    return expect_value(x, np.arange(4))


@case()
def consuming_tuple_component_alias(m, b):
    import numpy as np
    x = m.array(np.arange(4))
    p, q = m.pair_i64s(x)
    expect_value(m.bump(q), [100, 1, 2, 3])
    expect_value(m.bump(p), [100, 1, 2, 3])
    return expect_value(x, np.arange(4))


@case()
def consuming_alias_read_by_same_call(m, b):
    import numpy as np
    x = m.array(np.arange(4))
    expect_value(m.inc_into(m.id_i64s(x), x), [0, 2, 4, 6])
    return expect_value(x, np.arange(4))


@case()
def consuming_record_that_aliases_input(m, b):
    import numpy as np
    x = m.array(np.ones(3))
    expect_value(m.eat_rec(m.wrap_rec(x)), [101.0, 1.0, 1.0])
    return expect_value(x, np.ones(3))


@case()
def consuming_alias_of_numpy_input(m, b):
    import numpy as np
    orig = np.arange(4)
    expect_value(m.bump(m.id_i64s(orig)), [100, 1, 2, 3])
    return expect_value(orig, np.arange(4))


@case()
def torch_tensor_never_consumed_in_place(m, b):
    try:
        import torch
    except ImportError:
        raise Outcome("skip", "needs torch") from None
    for make in (lambda t: t, m.array, m.id_i64s):
        t = torch.arange(4)
        expect_value(m.bump(make(t)), [100, 1, 2, 3])
        expect_value(t.numpy(), [0, 1, 2, 3])
    return "the tensor kept its values"


# store / restore --------------------------------------------------------------------------------------------------
def _stored(m):
    if not hasattr(m.mk(2), "store"):
        raise Outcome("clean", "this backend has no store()")
    return m.mk(3).store()


@case(backends=("c", "multicore", "opencl", "cuda", "hip"))
def restore_roundtrip(m, b):
    return expect_value(m.use(m.restore(_rec_name(m), _stored(m))), 2.0 * 3 + 3)


def _rec_name(m):
    return m.manifest.entry_points["mk"].outputs[0].type   # the record type (0.27 also has opaque tuple types)


@case(backends=("c", "multicore", "opencl", "cuda", "hip"))
def restore_one_byte_short(m, b):
    data = _stored(m)
    return expect_error(lambda: m.restore(_rec_name(m), data[:-1]), "restore", "truncated")


@case(backends=("c", "multicore", "opencl", "cuda", "hip"))
def restore_truncated_header(m, b):
    data = _stored(m)
    return expect_error(lambda: m.restore(_rec_name(m), data[:9]), "restore")


@case(backends=("c", "multicore", "opencl", "cuda", "hip"))
def restore_negative_shape(m, b):
    import struct
    data = bytearray(_stored(m))
    data[7:15] = struct.pack("<q", -5)
    return expect_error(lambda: m.restore(_rec_name(m), bytes(data)), "restore", "negative")


@case(backends=("c", "multicore", "opencl", "cuda", "hip"))
def restore_huge_shape(m, b):
    import struct
    data = bytearray(_stored(m))
    data[7:15] = struct.pack("<q", 2**61)
    return expect_error(lambda: m.restore(_rec_name(m), bytes(data)), "restore")


@case(backends=("c", "multicore", "opencl", "cuda", "hip"))
def restore_garbage_and_wrong_types(m, b):
    expect_error(lambda: m.restore(_rec_name(m), b""), "restore")
    expect_error(lambda: m.restore(_rec_name(m), b"\xff" * 64), "restore")
    expect_error(lambda: m.restore(_rec_name(m), "text"), "restore")
    return expect_error(lambda: m.restore("no_such_type", b"b\x02"), "restore", "no_such_type")


# context options --------------------------------------------------------------------------------------------------
@case(backends=("multicore",))
def num_threads_beyond_os_limit(m, b):
    import futhark_lab
    expect_error(lambda: futhark_lab.compile(PROGRAM, backend=b, num_threads=10**7), "num_threads")
    return expect_error(lambda: futhark_lab.compile(PROGRAM, backend=b, num_threads=-1), "num_threads")


@case(backends=GPU_LIKE)
def probe_false_bad_platform(m, b):
    import futhark_lab
    return expect_error(lambda: futhark_lab.compile(PROGRAM, backend=b, platform="NoSuchPlatform", probe=False),
                        "platform")


@case(backends=GPU_LIKE)
def probe_false_bad_device(m, b):
    import futhark_lab
    return expect_error(lambda: futhark_lab.compile(PROGRAM, backend=b, device="NoSuchDevice", probe=False),
                        "device")


@case(backends=("opencl", "pyopencl"))
def probe_false_bad_build_option(m, b):
    import futhark_lab

    def go():
        mod = futhark_lab.compile(PROGRAM, backend=b, build_options=["-cl-no-such-option"], probe=False)
        return mod.rep(3)
    return expect_error(go, "")


@case()
def managed_compiler_options_refused(m, b):
    import futhark_lab
    for opt in ("--server", "--executable", "-o", "--library"):
        expect_error(lambda: futhark_lab.compile(PROGRAM, backend=b, options=[opt]), opt)
    return "all refused"


@case()
def corrupted_cache_entry_rebuilt(m, b):
    require_futhark()
    return run_script(f"""
        import json, os, time, warnings, futhark_lab
        from futhark_lab.builder.compiler import compile_program
        src = "entry f (x: i64) : i64 = x + {{}}".format(time.time_ns())   # a build of its own
        build = compile_program(src, {b!r})
        lib = build.python_module if {b!r} in ("python", "pyopencl") else build.library
        data = lib.read_bytes()
        lib.write_bytes(data[:len(data) // 2])
        if build.manifest.exists():
            build.manifest.write_text("{{ not json")
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            m2 = futhark_lab.compile(src, backend={b!r})
        print("rebuilt" if any("damaged" in str(x.message) for x in w) else "WRONG: not noticed", m2.f(1) > 0)
    """, must=("rebuilt True",))


@case()
def compile_time_limit_and_bad_sources(m, b):
    import tempfile

    import futhark_lab
    from futhark_lab.builder.toolchain import futhark_available
    if futhark_available():
        expect_error(lambda: futhark_lab.compile("entry g (x: i32) : i32 = x + 7 -- %d" % time.time_ns(),
                                                 backend=b, timeout=0.001), "time limit")
    with tempfile.NamedTemporaryFile(suffix=".fut", delete=False) as f:
        f.write(b"entry h (x: i32) : i32 = x \xff\xfe")
    expect_error(lambda: futhark_lab.compile(f.name, backend=b), "UTF-8")
    return expect_error(lambda: futhark_lab.compile(b"entry k = 1", backend=b), "source")


# lifetime and threads ---------------------------------------------------------------------------------------------
@case()
def close_while_other_thread_calls(m, b):
    return run_script(f"""
        import threading, futhark_lab
        m = futhark_lab.compile({str(PROGRAM)!r}, backend={b!r})
        errors, done = [], threading.Event()
        def worker():
            for _ in range(200):
                try:
                    m.spin(20000); m.rep(1000).numpy()
                except ValueError as e:
                    errors.append(str(e)); break
            done.set()
        ts = [threading.Thread(target=worker) for _ in range(3)]
        [t.start() for t in ts]
        import time; time.sleep(0.2)
        m.close()
        [t.join(120) for t in ts]
        print("closed; worker errors:", errors[:1])
    """, must=("closed",))


@case(backends=("c", "multicore", "opencl", "cuda"))
def frees_and_close_race_resident_calls(m, b):
    """The lock-free fast path: 4 threads call entry points on resident arrays (and NumPy ones) while the main
    thread frees them, drops others to their finalisers, then closes the module; no crash, no wrong sum, nothing
    left queued."""
    return run_script(f"""
        import random, threading, time, numpy as np, futhark_lab
        src = ("entry s (xs: []f64): f64 = f64.sum xs\\n"
               "entry twice (xs: []f64): []f64 = map (*2) xs\\n")
        m = futhark_lab.compile(src, backend={b!r})
        arrays = [m.array(np.full(1000, float(i))) for i in range(40)]
        bad, stop = [], threading.Event()
        def caller(seed):
            rng = random.Random(seed)
            while not stop.is_set():
                a = rng.choice(arrays)
                try:
                    if float(m.s(a)) % 1000 != 0:
                        bad.append("sum")
                    if float(m.s(np.full(1000, 5.0))) != 5000:   # a NumPy argument: a temporary copy
                        bad.append("numpy sum")
                    m.twice(a).numpy()
                except ValueError as e:
                    if "closed" in str(e):
                        return
                    if "freed" not in str(e):
                        bad.append(str(e))
        ts = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
        [t.start() for t in ts]
        for a in random.sample(arrays, 30):
            time.sleep(0.002)
            a.free()
        del a
        arrays[:] = arrays[:5] + [m.array(np.full(1000, 7.0)) for _ in range(5)]
        time.sleep(0.05)
        m.close()
        stop.set()
        [t.join(60) for t in ts]
        left = len(getattr(m.context, "_inflight", ())) + len(getattr(m.context, "_deferred", ()))
        print("WRONG:" if bad or left else "raced:", bad[:2], left)
    """, must=("raced:",))


@case()
def daemon_thread_calling_at_exit(m, b):
    return run_script(f"""
        import threading, futhark_lab
        m = futhark_lab.compile({str(PROGRAM)!r}, backend={b!r})
        def worker():
            while True:
                try:
                    m.spin(20000); m.rep(100)
                except ValueError:
                    return
        threading.Thread(target=worker, daemon=True).start()
        import time; time.sleep(0.3)
        print("exiting")
    """, must=("exiting",))


@case()
def fork_then_call(m, b):
    """A call, a parent's array and a new array in a fork()ed child: they work where the backend allows (c, python)
    or raise an error naming fork and the fix; the child reports through a pipe and exits with os._exit, and the
    parent sees exactly what it said."""
    return run_script(f"""
        import os, sys, numpy as np, futhark_lab
        m = futhark_lab.compile({str(PROGRAM)!r}, backend={b!r})
        a = m.rep(3)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            said = []
            for what, fn in (("call", lambda: m.rep(3).numpy().tolist()),
                             ("parent's array", lambda: a.numpy().tolist()),
                             ("new array", lambda: m.sum_f64(m.array(np.ones(3))))):
                try:
                    said.append(f"{{what}}: answered {{fn()}}")
                except BaseException as e:
                    said.append(f"{{what}}: {{type(e).__name__}}: {{e}}")
            os.write(w, "\\n".join(said).encode())
            os._exit(0)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        said = b"".join(iter(lambda: os.read(r, 65536), b"")).decode().splitlines()
        works = {b!r} in ("c", "python")
        for line in said:
            what, _, rest = line.partition(": ")
            good = (rest in ("answered [1.0, 1.0, 1.0]", "answered 3.0") if works else
                    rest.startswith("ValueError: ") and "forked process" in rest and "'spawn'" in rest
                    and "again in the child" in rest)
            print("child said" if good else "WRONG: child said", line[:200])
        if len(said) != 3 or status != 0:
            print("WRONG: child status", status, "said", said)
        print("parent still works:", m.rep(2).numpy().tolist(), a.numpy().tolist())
    """, must=("child said call", "child said parent's array", "child said new array",
               "parent still works: [1.0, 1.0] [1.0, 1.0, 1.0]"), timeout=120)


@case()
def fork_pool_error_reaches_the_parent(m, b):
    """multiprocessing's fork start method with a module made in the parent: the child's error comes back to the
    parent as the exception, naming fork and the 'spawn' fix (c and python simply answer)."""
    return run_script(f"""
        import multiprocessing as mp, futhark_lab
        m = futhark_lab.compile({str(PROGRAM)!r}, backend={b!r})
        m.rep(1)
        def work(n):
            return m.rep(n).numpy().tolist()
        if __name__ == "__main__":
            with mp.get_context("fork").Pool(1) as pool:
                try:
                    print("pool answered", pool.apply(work, (2,), ) == [1.0, 1.0] and {b!r} in ("c", "python"))
                except ValueError as e:
                    ok = "forked process" in str(e) and "spawn" in str(e) and {b!r} not in ("c", "python")
                    print("pool raised" if ok else "WRONG: pool raised", str(e)[:200])
    """, must=("pool",), timeout=120)


@case()
def tuning_values_checked(m, b):
    """Every tuning value is checked before any C call, on every backend: negative, too large, bool, float, text,
    a name that is not text, an unknown name; 0 (futhark's "default") works."""
    import numpy as np

    import futhark_lab
    names = m.tuning_parameters()
    name = names[0] if names else "no_such_parameter"
    for bad in (-1, 2**63, 2**64, True, 1.5, "8"):
        expect_error(lambda: futhark_lab.compile(PROGRAM, backend=b, tuning={name: bad}), name, repr(bad),
                     "integers from 0")
    expect_error(lambda: futhark_lab.compile(PROGRAM, backend=b, tuning={3: 8}), "names are strings")
    expect_error(lambda: futhark_lab.compile(PROGRAM, backend=b, tuning={"no_such": 8}), "no_such",
                 "this program has")
    expect_error(lambda: futhark_lab.compile(PROGRAM, backend=b, tuning={"bad\ud800": 8}), "unknown tuning")
    if not names:
        return "all refused; this backend has no tuning parameters"
    with futhark_lab.compile(PROGRAM, backend=b, tuning={n: 0 for n in names}) as m0:
        expect_value(m0.rep(2), [1.0, 1.0])
        expect_value(m0.sum_f64(np.arange(100.0)), 4950.0)
    with futhark_lab.compile(PROGRAM, backend=b, tuning={name: 2**63 - 1}) as m1:
        return expect_value(m1.sum_f64(np.arange(100.0)), 4950.0)


@case(backends=("opencl", "pyopencl"))
def eight_threads_first_opencl_use(m, b):
    return run_script(f"""
        import threading, futhark_lab
        out, errs = [], []
        def go():
            try:
                out.append(futhark_lab.compile({str(PROGRAM)!r}, backend={b!r}).rep(2).numpy().tolist())
            except Exception as e:
                errs.append(repr(e))
        ts = [threading.Thread(target=go) for _ in range(8)]
        [t.start() for t in ts]; [t.join(300) for t in ts]
        print("WRONG" if errs or len(out) != 8 else "eight modules", errs[:1])
    """, timeout=400)


@case()
def use_after_close(m, b):
    import futhark_lab
    m2 = futhark_lab.compile(PROGRAM, backend=b)
    a = m2.rep(3)
    m2.close()
    expect_error(lambda: m2.rep(3), "rep", "closed")
    return expect_error(lambda: a.numpy(), "closed")


# --------------------------------------------------------------------------- child side

def child(backend: str, start: int) -> None:
    import warnings
    warnings.simplefilter("ignore")
    import futhark_lab
    m = futhark_lab.compile(PROGRAM, backend=backend)
    print("READY", flush=True)
    for i, (name, fn, backends) in enumerate(CASES):
        if i < start:
            continue
        if backends is not None and backend not in backends:
            print("RESULT " + json.dumps({"i": i, "kind": "skip", "detail": f"not for {backend}"}), flush=True)
            continue
        print(f"START {i}", flush=True)
        try:
            kind, detail = "clean", fn(m, backend) or ""
        except Outcome as o:
            kind, detail = o.kind, o.detail
        except Exception as exc:  # noqa: BLE001 - the case itself failed to classify: report it, don't hide it
            kind, detail = "unclear", f"case raised {type(exc).__name__}: {exc}\n{traceback.format_exc()[-600:]}"
        retired = _module_unusable(m, backend)
        if retired:
            detail = f"{detail} [{retired}: the next cases run in a fresh process]"
        print("RESULT " + json.dumps({"i": i, "kind": kind, "detail": str(detail)}), flush=True)
        if retired:
            print("RESTART", flush=True)  # one sticky case must not turn every later case into "unclear"
            return
    print("DONE", flush=True)


def _module_unusable(m: Any, backend: str) -> str | None:
    """Why the shared module can no longer run cases (a sticky GPU error retired it or poisoned the backend for
    this process), or None."""
    from futhark_lab.runtime.poisoned import poisoned_reason
    if poisoned_reason(backend) is not None:
        return "the backend is poisoned in this process"
    ctx = getattr(m, "context", None)
    if ctx is not None and not getattr(ctx, "alive", True):
        return "the case left the module closed/retired"
    return None


# --------------------------------------------------------------------------- parent side

def _reader(stream, q):
    for line in stream:
        q.put(line.rstrip("\n"))
    q.put(None)


def run_backend(backend: str, case_timeout: float = 240, ready_timeout: float = 900,
                child_cmd: list[str] | None = None) -> dict[str, tuple[str, str]]:
    """{case name: (kind, detail)} for one backend, restarting the child after each crash or hang."""
    child_cmd = child_cmd or [sys.executable, "-m", "tests.hostile"]
    results: dict[str, tuple[str, str]] = {}
    start = 0
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONFAULTHANDLER="1")
    while start < len(CASES):
        proc = subprocess.Popen([*child_cmd, "--child", backend, "--start", str(start)],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace")
        q: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
        err_lines: list[str] = []
        threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True).start()
        current, limit = None, ready_timeout
        finished = restart = False
        while True:
            try:
                line = q.get(timeout=limit)
            except queue.Empty:
                proc.kill()
                proc.wait()
                if current is None:
                    raise RuntimeError(f"{backend}: the child did not start within {limit:g} s") from None
                results[CASES[current][0]] = ("hang", f"no answer within {limit:g} s")
                start = current + 1
                break
            if line is None:  # the child's stdout closed: it exited
                rc = proc.wait()
                if restart:  # the child retired its module after case `restart_at`: go on in a fresh child
                    start = restart_at + 1
                    break
                if current is None and not finished:
                    if start == 0 and not results:
                        raise RuntimeError(f"{backend}: the child failed before any case (exit {rc}):\n"
                                           + "".join(err_lines)[-3000:])
                    start = len(CASES)
                    break
                if finished:
                    start = len(CASES)
                    break
                results[CASES[current][0]] = ("crash", f"exit status {rc}: {''.join(err_lines)[-600:].strip()}")
                start = current + 1
                break
            if line == "READY":
                limit = case_timeout
            elif line.startswith("START "):
                current = int(line.split()[1])
            elif line.startswith("RESULT "):
                r = json.loads(line[7:])
                results[CASES[r["i"]][0]] = (r["kind"], r["detail"])
                current, last = None, r["i"]
            elif line == "DONE":
                finished = True
            elif line == "RESTART":
                restart, restart_at = True, last
                current = None
        if finished:
            proc.wait()
            break
    return results


def summary(backend: str, results: dict[str, tuple[str, str]]) -> str:
    counts = {k: sum(1 for v in results.values() if v[0] == k) for k in KINDS}
    skipped = sum(1 for v in results.values() if v[0] == "skip")
    return (f"hostile[{backend}]: {len(results) - skipped} cases: "
            + ", ".join(f"{counts[k]} {k}" for k in KINDS) + (f" ({skipped} not applicable)" if skipped else ""))


def available_cpu_backends() -> list[str]:
    out = ["c", "multicore", "python"]
    try:
        import pyopencl as cl
        if cl.get_platforms():
            out += ["opencl", "pyopencl"]
    except Exception:  # noqa: BLE001
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default=None, help="comma-separated (default: the CPU backends that exist here)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case")
    ap.add_argument("--json", default=None, help="write all results to this file")
    a = ap.parse_args(argv)
    if a.child:
        child(a.child, a.start)
        return 0
    backends = a.backends.split(",") if a.backends else available_cpu_backends()
    bad, everything = 0, {}
    for b in backends:
        t0 = time.time()
        res = run_backend(b)
        everything[b] = res
        for name, (kind, detail) in res.items():
            if a.verbose or kind in ("crash", "hang", "wrong", "unclear"):
                print(f"  {b:10s} {kind:8s} {name}: {detail.splitlines()[0] if detail else ''}"[:300])
        print(summary(b, res) + f" [{time.time() - t0:.0f} s]", flush=True)
        bad += sum(1 for k, _ in res.values() if k in ("crash", "hang", "wrong"))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(everything, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
