"""DLPack against hostile use on the CPU backends: lifetimes that run through several values (a result of a result,
a field, a pair, an export of one), read-only memory, PyTorch's lazy negation, producers that break the protocol,
consuming parameters fed by producers NumPy cannot read.  Each case was a crash (use after free), a silently wrong
value or an error naming nothing before it was fixed; the crashes run in child processes, so a crash fails the
test instead of the run."""

from __future__ import annotations

import ctypes
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import futhark_lab
from futhark_lab.runtime import dlpack
from futhark_lab.runtime.dlpack import DLPackCopyWarning

from .conftest import ROOT, cpu_backends, needs_futhark

pytestmark = needs_futhark

torch = pytest.importorskip("torch")   # installed by scripts/setup.sh (CI never skips these)

SRC = """
entry idf (xs: []f32) : []f32 = xs
entry sumf (xs: []f32) : f32 = f32.sum xs
entry sum2 (xs: [][]f32) : f32 = f32.sum (flatten xs)
entry cons (xs: *[]f32) : []f32 = xs with [0] = 100
entry pair (xs: []f32) : ([]f32, []f32) = (xs, map (+1) xs)
entry add (xs: []f32) (ys: []f32) : []f32 = map2 (+) xs ys
type~ rec = {a: []f32, b: i64}
entry mk (xs: []f32) : rec = {a = xs, b = length xs}
entry geta (r: rec) : []f32 = r.a
"""


@pytest.fixture(scope="module", params=["c", "multicore"])
def m(request):
    with futhark_lab.compile(SRC, backend=request.param) as mod:
        yield mod


def _child(code: str, backend: str) -> str:
    prelude = (f"import sys, gc\nsys.path.insert(0, {str(ROOT)!r})\nimport numpy as np, torch, futhark_lab\n"
               f"SRC = {SRC!r}\nB = {backend!r}\nN = 1 << 22\n"
               "REF = (np.arange(N) % 4).astype(np.float32)   # sums exact in f32\n"
               "def reuse():   # allocations that would land in freed blocks\n"
               "    gc.collect()\n"
               "    return [np.full(N, 7, np.float32) for _ in range(8)]\n")
    p = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, f"child died (rc {p.returncode}):\n{p.stdout}\n{p.stderr[-3000:]}"
    return p.stdout


class _Producer:
    """A DLPack producer NumPy cannot read otherwise (no ``__array__``), handing out what its test asks for."""

    def __init__(self, array: np.ndarray, device=(1, 0), capsule=None, once: bool = False):
        self.array, self.device, self.capsule, self.once, self.taken = array, device, capsule, once, 0

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, **kwargs):
        self.taken += 1
        if self.once and self.taken > 1:
            raise BufferError("this producer hands out one capsule only")
        if self.capsule is not None:
            return self.capsule(self.array, kwargs)
        return self.array.__dlpack__(**kwargs)


# --------------------------------------------------------------------------- lifetimes through several values

@pytest.mark.parametrize("backend", ["c", "multicore"])
def test_values_derived_from_results_keep_the_callers_memory(backend):
    """A result of a resident value that itself aliases caller memory (a result, a field, a pair element) keeps
    that memory alive after the intermediate value and the caller's array are gone (it read freed memory or
    crashed)."""
    out = _child("""
        m = futhark_lab.compile(SRC, backend=B)
        def check(name, r2):
            junk = reuse()
            v = r2.numpy() if hasattr(r2, "numpy") else np.asarray(r2)
            print(name, np.array_equal(v, REF), float(m.sumf(r2)) == 1.5 * N, flush=True)
        x = REF.copy(); r1 = m.idf(x); del x; r2 = m.idf(r1); del r1
        check("result-of-result", r2)
        x = REF.copy(); rec = m.mk(x); del x; f = rec.a; r2 = m.idf(f); del rec, f
        check("field", r2)
        x = REF.copy(); rec = m.mk(x); del x; r2 = m.geta(rec); del rec
        check("record-to-entry", r2)
        t = torch.from_numpy(REF.copy()); a, b = m.pair(t); del t; r2 = m.idf(a); del a, b
        check("pair", r2)
        x = REF.copy(); r1 = m.idf(x); del x; r2 = m.add(r1, np.zeros(N, np.float32)); del r1
        check("two-inputs", r2)
        x = REF.copy(); r1 = m.idf(x); del x; e = torch.from_dlpack(m.idf(r1)); del r1
        junk = reuse()
        print("export", np.array_equal(e.numpy(), REF), flush=True)
    """, backend)
    lines = out.split("\n")
    assert [ln for ln in lines if ln] == [f"{name} True True" for name in (
        "result-of-result", "field", "record-to-entry", "pair", "two-inputs")] + ["export True"], out


@pytest.mark.parametrize("backend", ["c", "multicore"])
def test_an_export_keeps_what_the_array_aliases_through_its_group(backend):
    """An exported result whose caller memory was held by its alias group (``idf(m.array(x))``) stays valid after
    ``free()`` and ``close()`` (the view read freed memory)."""
    out = _child("""
        for how in ("free", "close"):
            m = futhark_lab.compile(SRC, backend=B)
            x = torch.from_numpy(REF.copy()) if how == "close" else REF.copy()
            fa = m.array(x)
            r = m.idf(fa)
            view = np.from_dlpack(r)
            del fa, x
            r.free() if how == "free" else m.close()
            junk = reuse()
            print(how, np.array_equal(view, REF), flush=True)
    """, backend)
    assert out.split() == ["free", "True", "close", "True"], out


# --------------------------------------------------------------------------- read-only memory

def test_results_of_read_only_memory_are_exported_read_only(m):
    x = np.arange(4, dtype=np.float32)
    x.flags.writeable = False
    for r in (m.idf(x), m.array(x), m.idf(m.array(x)), m.mk(x).a):
        view = np.from_dlpack(r)
        assert np.shares_memory(view, x) and not view.flags.writeable
        with pytest.raises(BufferError, match="read-only.*legacy DLPack capsule.*copy=True"):
            r.__dlpack__()                        # an unversioned capsule cannot say read-only
        assert np.from_dlpack(r, copy=True).flags.writeable
    w = np.arange(4, dtype=np.float32)            # a writable array stays writable
    assert np.from_dlpack(m.idf(w)).flags.writeable


def test_a_capsule_flagged_read_only_stays_read_only(m):
    ro = np.arange(4, dtype=np.float32)
    ro.flags.writeable = False
    r = m.idf(_Producer(ro))                      # NumPy's versioned capsule carries the read-only flag
    view = np.from_dlpack(r)
    assert view.tolist() == [0.0, 1.0, 2.0, 3.0] and not view.flags.writeable
    assert m.cons(_Producer(ro)).numpy().tolist() == [100.0, 1.0, 2.0, 3.0] and ro[0] == 0.0


# --------------------------------------------------------------------------- values the memory does not hold

def test_torch_lazy_negation_is_applied_not_ignored(m):
    c = torch.tensor([1 + 2j, 3 + 4j, 5 + 6j], dtype=torch.complex64)
    im = c.conj().imag                            # a view with the negative bit: memory holds +2, +4, +6
    assert im.is_neg()
    with pytest.warns(DLPackCopyWarning, match=r"sumf\(\): parameter 'xs'.*lazy negation bit"):
        assert float(m.sumf(im)) == -12.0
    with pytest.warns(DLPackCopyWarning, match=r"array\(\): parameter 'data'.*lazy negation bit"):
        assert m.array(im).numpy().tolist() == [-2.0, -4.0, -6.0]
    assert m.array(im, copy=True).numpy().tolist() == [-2.0, -4.0, -6.0]
    assert m.cons(im).numpy().tolist() == [100.0, -4.0, -6.0]


# --------------------------------------------------------------------------- producers NumPy cannot read

def test_consuming_parameter_takes_a_dlpack_only_producer_by_copy(m):
    src = np.arange(4, dtype=np.float32)
    assert m.cons(_Producer(src)).numpy().tolist() == [100.0, 1.0, 2.0, 3.0]
    assert src.tolist() == [0.0, 1.0, 2.0, 3.0]   # the producer's memory was not consumed in place


def test_a_one_shot_producer_is_asked_once_by_array(m):
    p = _Producer(np.arange(4, dtype=np.float32), once=True)
    assert m.array(p).numpy().tolist() == [0.0, 1.0, 2.0, 3.0] and p.taken == 1


def _fake_capsule(shape=None, data_none=False):
    """A capsule from NumPy with its shape (or data pointer) rewritten, as a broken producer would make it."""
    def make(array, kwargs):
        cap = array.__dlpack__()
        ctypes.pythonapi.PyCapsule_GetPointer.restype = ctypes.c_void_p
        ctypes.pythonapi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        t = dlpack.DLManagedTensor.from_address(ctypes.pythonapi.PyCapsule_GetPointer(cap, b"dltensor")).dl_tensor
        if shape is not None:
            for i, d in enumerate(shape):
                t.shape[i] = d
        if data_none:
            t.data = None
        return cap
    return make


@pytest.mark.parametrize("entry, shape, match", [
    ("sumf", (-1,), r"negative shape \(-1,\)"),
    ("sum2", (-2, 2), r"negative shape \(-2, 2\)"),
    ("array", (-3,), r"negative shape \(-3,\)"),
])
def test_negative_shapes_in_a_capsule_are_refused(m, entry, shape, match):
    p = _Producer(np.zeros(shape and (4,) * len(shape), np.float32), capsule=_fake_capsule(shape))
    name = "array()" if entry == "array" else f"{entry}()"
    param = "data" if entry == "array" else "xs"
    with pytest.raises(BufferError, match=rf"{re.escape(name)}: parameter '{param}'.*{match}"):
        getattr(m, entry)(p)


def test_a_capsule_without_data_is_refused(m):
    with pytest.raises(BufferError, match=r"sumf\(\): parameter 'xs'.*no data for shape \(4,\)"):
        m.sumf(_Producer(np.zeros(4, np.float32), capsule=_fake_capsule(data_none=True)))


@pytest.mark.parametrize("device, capsule, match", [
    (("cpu", 0), None, r"__dlpack_device__\(\) returned \('cpu', 0\), not a \(device type, device id\) pair"),
    ((1,), None, r"__dlpack_device__\(\) returned \(1,\)"),
    ((1, 0), lambda a, kw: "not a capsule", r"__dlpack__\(\) returned a str, not an unused DLPack capsule"),
])
def test_broken_producers_get_errors_naming_entry_and_parameter(m, device, capsule, match):
    for call, where in ((m.sumf, r"sumf\(\): parameter 'xs'"), (m.array, r"array\(\): parameter 'data'")):
        with pytest.raises(TypeError, match=f"{where}.*{match}"):
            call(_Producer(np.zeros(4, np.float32), device=device, capsule=capsule))


def test_a_used_capsule_is_named_as_such(m):
    def used(array, kwargs):
        cap = array.__dlpack__()
        np.from_dlpack(_Wrapped(cap))             # a consumer takes it (and renames it "used_dltensor")
        return cap
    with pytest.raises(TypeError, match=r"sumf\(\): parameter 'xs'.*a used DLPack capsule"):
        m.sumf(_Producer(np.zeros(4, np.float32), capsule=used))


class _Wrapped:
    def __init__(self, cap):
        self.cap = cap

    def __dlpack__(self, **kwargs):
        return self.cap

    def __dlpack_device__(self):
        return (1, 0)


@pytest.mark.parametrize("make, match", [
    (lambda: torch.zeros(3, dtype=torch.bfloat16), r"bfloat16 has no Futhark equivalent.*convert it first"),
    (lambda: torch.zeros(3, dtype=torch.complex64), r"complex64 has no Futhark equivalent"),
    (lambda: torch.zeros(3, requires_grad=True), r"require gradient.*pass \.detach\(\)"),
    (lambda: torch.zeros(3).to_sparse(), r"layout other than torch.strided.*pass \.to_dense\(\)"),
    (lambda: torch.zeros(3, device="meta"), r"meta.*a meta tensor has no data"),
])
def test_what_pytorch_refuses_to_export_is_named(m, make, match):
    where = r"add\(\): parameter 'ys': the torch.Tensor"
    with pytest.raises((TypeError, ValueError, BufferError), match=f"{where}.*{match}"):
        m.add(np.zeros(3, np.float32), make())


# --------------------------------------------------------------------------- copies that say so

def test_a_misaligned_numpy_input_is_copied_with_a_warning(m):
    raw = np.zeros(4 * 4 + 1, dtype=np.uint8)
    odd = raw[1:].view(np.float32)
    odd[:] = np.arange(4.0)
    assert not odd.flags.aligned and odd.flags.c_contiguous
    with pytest.warns(DLPackCopyWarning, match=r"sumf\(\): parameter 'xs'.*not aligned to its 4-byte elements"):
        assert float(m.sumf(odd)) == 6.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(m.sumf(np.arange(4, dtype=np.float32))) == 6.0   # an aligned one shares without a word


def test_array_takes_big_endian_data_as_entry_points_do(m):
    be = np.arange(4, dtype=">f4")
    assert m.array(be).numpy().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert float(m.sumf(be)) == 6.0


@pytest.mark.parametrize("backend", cpu_backends())
def test_every_backend_reads_producers_numpy_cannot(backend):
    """Where memory is copied rather than shared (python, pyopencl, opencl, consuming parameters), a DLPack-only
    producer still gives its values (it gave an object array) and a negated PyTorch view its negated ones."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # copies warn on c/multicore; OpenCL on a CPU warns too
        with futhark_lab.compile(SRC, backend=backend) as mod:
            src = np.arange(4, dtype=np.float32)
            assert float(mod.sumf(_Producer(src))) == 6.0
            assert np.asarray(mod.cons(_Producer(src))).tolist() == [100.0, 1.0, 2.0, 3.0]
            assert np.asarray(mod.array(_Producer(src))).tolist() == [0.0, 1.0, 2.0, 3.0]
            im = torch.tensor([1 + 2j, 3 + 4j], dtype=torch.complex64).conj().imag
            assert float(mod.sumf(im)) == -6.0 and np.asarray(mod.array(im)).tolist() == [-2.0, -4.0]
            assert src.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_a_deleted_jax_array_is_named_as_deleted(m):
    pytest.importorskip("jax")
    import jax.numpy as jnp
    j = jnp.arange(4, dtype=jnp.float32)
    j.delete()
    for call, where in ((m.sumf, r"sumf\(\): parameter 'xs'"), (m.array, r"array\(\): parameter 'data'"),
                        (m.cons, r"cons\(\): parameter 'xs'")):
        with pytest.raises((TypeError, ValueError, BufferError), match=f"{where}.*jaxlib.*has been deleted"):
            call(j)
