"""DLPack both ways on the CPU backends (issue 23, item 4): Futhark results into NumPy, PyTorch and JAX, and their
arrays into entry points and module.array(), sharing memory (same addresses, writes seen through both views);
lifetimes beyond free()/close() (hostile cases in a child process, so a crash fails the test); refusals; copies
that warn.  The GPU side is tests/test_gpu_dlpack.py."""

from __future__ import annotations

import gc
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


def _jax():
    """JAX, imported only by the tests that use it: once loaded, its threads make every later fork in the session
    (the compiler's subprocesses) warn."""
    pytest.importorskip("jax")
    import jax.dlpack
    import jax.numpy as jnp
    return jax, jnp

SRC = """
entry id1 (xs: []f64) : []f64 = xs
entry idf (xs: []f32) : []f32 = xs
entry fresh (xs: []f64) : *[]f64 = copy xs
entry freshf (n: i64) : *[]f32 = map f32.i64 (iota n)
entry inc (xs: *[]f64) : []f64 = xs with [0] = xs[0] + 1
entry total (xs: []f64) : f64 = f64.sum xs
entry mat (n: i64) : [][]i32 = tabulate_2d n 3 (\\i j -> i32.i64 (i * 3 + j))
type~ rec = {a: []f64, b: i64}
entry mk (xs: []f64) : rec = {a = xs, b = length xs}
"""


@pytest.fixture(scope="module", params=["c", "multicore"])
def m(request):
    with futhark_lab.compile(SRC, backend=request.param) as mod:
        yield mod


def aligned(n: int, dtype=np.float32, align: int = 64) -> np.ndarray:
    """A C-contiguous array whose data is ``align``-byte aligned (JAX shares CPU memory only when 64-aligned)."""
    dt = np.dtype(dtype)
    buf = np.zeros(n * dt.itemsize + align, dtype=np.uint8)
    off = -buf.ctypes.data % align
    return buf[off:off + n * dt.itemsize].view(dt)


# --------------------------------------------------------------------------- Futhark -> others

def test_numpy_shares_a_result(m):
    x = m.fresh(np.arange(5.0))
    assert x.__dlpack_device__() == (dlpack.kDLCPU, 0)
    a = np.from_dlpack(x)
    assert a.ctypes.data == x.data_ptr()
    a[0] = 42.0                                   # written through NumPy, read through Futhark
    assert x.numpy().tolist() == [42.0, 1.0, 2.0, 3.0, 4.0]
    assert m.total(x) == 52.0


def test_torch_shares_a_result(m):
    x = m.mat(4)
    t = torch.from_dlpack(x)
    assert t.data_ptr() == x.data_ptr() and t.shape == (4, 3) and t.dtype == torch.int32
    assert t.is_contiguous()
    t[1, 1] = -7
    assert x.numpy()[1, 1] == -7
    np.testing.assert_array_equal(t.numpy(), x.numpy())


def test_jax_shares_a_result(m):
    jax, jnp = _jax()
    # a Futhark array whose memory is 64-byte aligned (futhark's own allocations need not be: JAX copies those)
    src = aligned(1000)
    src[:] = np.arange(1000)
    x = m.idf(src)
    assert x.data_ptr() == src.ctypes.data
    j = jax.dlpack.from_dlpack(x, copy=False)    # copy=False: JAX raises rather than copying
    assert j.unsafe_buffer_pointer() == x.data_ptr()
    src[3] = -1.0                                 # JAX arrays are immutable; the memory is not
    assert float(j[3]) == -1.0
    y = m.freshf(1000)                            # futhark's own allocation: shared iff JAX's alignment holds
    jy = jnp.from_dlpack(y)
    assert (jy.unsafe_buffer_pointer() == y.data_ptr()) == (y.data_ptr() % 64 == 0)
    np.testing.assert_array_equal(np.asarray(jy), np.arange(1000, dtype=np.float32))


def test_versioned_and_legacy_capsules(m):
    x = m.fresh(np.arange(3.0))
    legacy = x.__dlpack__()
    versioned = x.__dlpack__(max_version=(1, 0))
    assert "dltensor" in repr(legacy) and "dltensor_versioned" not in repr(legacy)
    assert "dltensor_versioned" in repr(versioned)
    assert dlpack.live_exports() >= 2
    before = dlpack.live_exports()
    del legacy, versioned                         # never consumed: the capsules' destructors release them
    gc.collect()
    assert dlpack.live_exports() == before - 2


def test_stream_device_and_copy_arguments(m):
    x = m.fresh(np.arange(3.0))
    with pytest.raises(ValueError, match="CPU array takes stream=None"):
        x.__dlpack__(stream=1)
    with pytest.raises(BufferError, match=r"dl_device=\(2, 0\)\): this array is on CPU"):
        x.__dlpack__(dl_device=(dlpack.kDLCUDA, 0))
    c = np.from_dlpack(x, copy=True)             # a copy when asked for one
    assert c.ctypes.data != x.data_ptr() and c.tolist() == [0.0, 1.0, 2.0]
    s = np.from_dlpack(x, copy=False, device="cpu")
    assert s.ctypes.data == x.data_ptr()


def test_export_marks_the_array_shared(m):
    """A consuming entry point never updates exported memory in place (runtime.aliases)."""
    x = m.fresh(np.arange(3.0))
    a = np.from_dlpack(x)
    before = m.context.consume_copies
    assert m.inc(x).numpy().tolist() == [1.0, 1.0, 2.0]
    assert m.context.consume_copies == before + 1
    assert a.tolist() == [0.0, 1.0, 2.0]


# --------------------------------------------------------------------------- others -> Futhark

def test_numpy_torch_jax_go_in_without_copies(m):
    jax, jnp = _jax()
    a = np.arange(6.0)
    r = m.id1(a)
    assert r.data_ptr() == a.ctypes.data          # the result is the input's memory: nothing was copied
    assert m.array(a).data_ptr() == a.ctypes.data
    t = torch.arange(6, dtype=torch.float64)
    assert m.id1(t).data_ptr() == t.data_ptr()
    assert m.array(t).data_ptr() == t.data_ptr()
    src = aligned(16)
    j = jax.dlpack.from_dlpack(src, copy=False)  # a JAX array in memory JAX shares (64-byte aligned)
    jp = j.unsafe_buffer_pointer()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DLPackCopyWarning)
        assert m.idf(j).data_ptr() == jp
        assert m.array(j).data_ptr() == jp
        assert m.total(t) == 15.0 and m.total(a) == 15.0


def test_array_copy_argument(m):
    a = np.arange(4.0)
    own = m.array(a, copy=True)
    assert m.context.raw_pointer(own) != a.ctypes.data   # (data_ptr() would mark it shared)
    a[0] = 9.0
    assert own.numpy().tolist() == [0.0, 1.0, 2.0, 3.0]
    before = m.context.consume_copies
    m.inc(own)                                    # its memory is its own: consumed in place
    assert m.context.consume_copies == before
    assert m.array(a, copy=False).data_ptr() == a.ctypes.data
    with pytest.raises(BufferError, match="copy=False"), pytest.warns(DLPackCopyWarning):
        m.array(a[::2], copy=False)


def test_writes_through_the_producer_are_seen(m):
    t = torch.zeros(4, dtype=torch.float64)
    x = m.array(t)
    t[2] = 5.0
    assert m.total(x) == 5.0
    assert x.numpy().tolist() == [0.0, 0.0, 5.0, 0.0]


def test_consuming_parameter_never_updates_the_producer(m):
    for src in (np.arange(3.0), torch.arange(3, dtype=torch.float64)):
        assert m.inc(src).numpy().tolist() == [1.0, 1.0, 2.0]
        assert src.tolist() == [0.0, 1.0, 2.0]
        x = m.array(src)
        assert m.inc(x).numpy().tolist() == [1.0, 1.0, 2.0]
        assert src.tolist() == [0.0, 1.0, 2.0]


def test_result_keeps_the_producer_alive(m):
    t = torch.arange(1000, dtype=torch.float64)
    r = m.id1(t)                                  # aliases the tensor's memory
    ptr = t.data_ptr()
    del t
    gc.collect()
    torch.ones(1000, dtype=torch.float64) * 3     # memory that would reuse a freed block
    assert r.data_ptr() == ptr and r.numpy()[999] == 999.0


def test_record_of_shared_memory(m):
    """A record built from shared memory: its field is that memory (futhark's generated field projection
    dereferenced the missing reference count of a wrapped array until builder.cpatch)."""
    src = np.arange(4.0)
    r = m.mk(src)
    del src
    gc.collect()
    f = r.a
    assert f.numpy().tolist() == [0.0, 1.0, 2.0, 3.0] and r.b == 4
    t = torch.arange(3, dtype=torch.float64)
    g = m.mk(m.array(t)).a
    assert g.data_ptr() == t.data_ptr()


def test_non_contiguous_and_misaligned_copy_with_a_warning(m):
    t = torch.arange(10, dtype=torch.float64)[::2]
    with pytest.warns(DLPackCopyWarning, match=r"id1\(\): parameter 'xs'.*torch.Tensor.*not C-contiguous"):
        r = m.id1(t)
    assert r.numpy().tolist() == [0.0, 2.0, 4.0, 6.0, 8.0] and r.data_ptr() != t.data_ptr()
    with pytest.warns(DLPackCopyWarning, match="NumPy array.*not C-contiguous"):
        assert m.id1(np.arange(10.0)[::2]).numpy().tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    raw = np.zeros(8 * 8 + 1, dtype=np.uint8)
    odd = raw[1:].view(np.float64)                # data at an odd address
    odd[:] = np.arange(8.0)
    assert not odd.flags.aligned
    with pytest.warns(DLPackCopyWarning, match="not aligned"):
        np.testing.assert_array_equal(m.array(odd).numpy(), odd)


def test_wrong_dtype_is_refused_or_converted_with_a_warning(m):
    with pytest.raises(TypeError, match=r"id1\(\): parameter 'xs' expects \[\]f64.*int64.*not exactly representable"):
        m.id1(torch.tensor([2**60 + 1], dtype=torch.int64))
    with pytest.raises(TypeError, match=r"idf\(\): parameter 'xs' expects \[\]f32.*float64"):
        m.idf(torch.arange(3, dtype=torch.float64))
    with pytest.warns(DLPackCopyWarning, match=r"id1\(\): parameter 'xs'.*dtype is float32, not float64"):
        assert m.id1(torch.arange(3, dtype=torch.float32)).numpy().tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(TypeError, match=r"id1\(\): parameter 'xs' expects a rank-1"):
        m.id1(torch.zeros((2, 2), dtype=torch.float64))
    with pytest.raises(TypeError, match="bfloat16"):
        m.id1(torch.zeros(2, dtype=torch.bfloat16))


# --------------------------------------------------------------------------- lifetimes (child processes)

def _child(code: str, backend: str) -> str:
    prelude = (f"import sys, gc\nsys.path.insert(0, {str(ROOT)!r})\nimport numpy as np, torch, futhark_lab\n"
               f"import jax, jax.numpy as jnp\nSRC = {SRC!r}\nB = {backend!r}\n")
    p = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, f"child died (rc {p.returncode}):\n{p.stdout}\n{p.stderr[-3000:]}"
    return p.stdout


@pytest.mark.parametrize("backend", ["c", "multicore"])
def test_exports_outlive_free_close_and_the_module(backend):
    out = _child("""
        from futhark_lab.runtime import dlpack
        m = futhark_lab.compile(SRC, backend=B)
        x = m.fresh(np.arange(100000.0))
        a = np.from_dlpack(x)
        t = torch.from_dlpack(m.fresh(np.arange(50000.0)))
        y = m.freshf(4096)
        j = jnp.from_dlpack(y)
        x.free()                                  # the handle is gone, the memory is not
        del y
        m.close()                                 # nor does close() free exported memory
        del m
        gc.collect()
        junk = [np.full(100000, 7.0) for _ in range(20)]   # reuse of freed blocks would show
        print(a.sum() == np.arange(100000.0).sum(), float(t.sum()) == np.arange(50000.0).sum(),
              float(j.sum()) == np.arange(4096, dtype=np.float32).sum())
        a[5] = 1.0
        del a, t, j
        gc.collect()
        print("live", dlpack.live_exports())
    """, backend)
    assert out.split() == ["True", "True", "True", "live", "0"], out


@pytest.mark.parametrize("backend", ["c", "multicore"])
def test_imports_outlive_the_producer(backend):
    out = _child("""
        m = futhark_lab.compile(SRC, backend=B)
        t = torch.arange(100000, dtype=torch.float64)
        x = m.array(t)                            # the tensor's memory
        r = m.id1(torch.arange(100000, dtype=torch.float64))   # a result aliasing a temporary tensor
        src = np.arange(100000.0)
        y = m.array(src)
        del t, src
        gc.collect()
        junk = [torch.full((100000,), 7.0, dtype=torch.float64) for _ in range(20)]
        s = float(np.arange(100000.0).sum())
        print(m.total(x) == s, m.total(r) == s, m.total(y) == s)
        m.close()
        print("closed")
    """, backend)
    assert out.split() == ["True", "True", "True", "closed"], out


# --------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("backend", [p for p in cpu_backends() if p.values[0] in ("python", "opencl", "pyopencl")])
def test_other_backends_refuse_with_the_reason(backend):
    jax, jnp = _jax()
    with futhark_lab.compile(SRC, backend=backend) as mod:
        x = mod.fresh(np.arange(3.0))
        with pytest.raises((BufferError, AttributeError, TypeError),
                           match=r"(?s)DLPack export is offered for the c, multicore and cuda backends, not "
                                 f"{backend}.*numpy"):
            np.from_dlpack(x)
        # their inputs still take DLPack producers (a copy: they have no shared memory with them)
        assert mod.total(torch.arange(4, dtype=torch.float64)) == 6.0
        assert mod.total(jnp.arange(4.0)) == 6.0
