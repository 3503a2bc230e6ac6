"""DLPack on the cuda backend (issue 23, item 4): Futhark arrays into PyTorch, CuPy, JAX and PyCUDA and theirs into
entry points, sharing device memory; the consumer's stream honoured (futhark's context synchronised before export);
lifetimes.  Skipped, saying why, without an NVIDIA GPU (benchmarks/gpu_dlpack.sh runs it on the H200)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import futhark_lab
from futhark_lab.runtime import dlpack

from .test_gpu import _gpu_reason

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_gpu_reason() is not None, reason=_gpu_reason() or "")]

SRC = """
entry id1 (xs: []f64) : []f64 = xs
entry idf (xs: []f32) : []f32 = xs
entry fresh (xs: []f64) : *[]f64 = copy xs
entry inc (xs: *[]f64) : []f64 = xs with [0] = xs[0] + 1
entry total (xs: []f64) : f64 = f64.sum xs
entry slow (n: i64) : []f64 = map (\\i -> f64.sum (map (\\j -> f64.i64 ((i * j) % 7)) (iota 2000))) (iota n)
"""


@pytest.fixture(scope="module")
def cuda():
    with futhark_lab.compile(SRC, backend="cuda") as m:
        yield m


def test_device_is_cuda(cuda):
    import torch
    x = cuda.fresh(np.arange(4.0))
    assert x.__dlpack_device__() == (dlpack.kDLCUDA, torch.cuda.current_device())


def test_torch_both_ways(cuda):
    import torch
    x = cuda.fresh(np.arange(1000.0))
    t = torch.from_dlpack(x)
    assert t.is_cuda and t.data_ptr() == x.data_ptr()
    t[0] = 7.0
    torch.cuda.synchronize()
    assert x.numpy()[0] == 7.0
    u = torch.arange(1000, dtype=torch.float64, device="cuda")
    assert cuda.id1(u).data_ptr() == u.data_ptr()
    assert cuda.array(u).data_ptr() == u.data_ptr()
    assert cuda.total(u) == float(u.sum())


def test_producer_stream_work_is_finished_before_futhark_reads(cuda):
    """The tensor is written on a side stream; DLPack import asks for stream 1 and waits on it."""
    import torch
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        u = torch.empty(1 << 24, dtype=torch.float64, device="cuda")
        torch.cuda._sleep(50_000_000)    # ~ tens of ms of GPU time before the fill
        u.fill_(1.0)
        x = cuda.array(u)                  # __dlpack__(stream=1) inside, then a host wait
    assert cuda.total(x) == float(1 << 24)


def test_consumer_stream_sees_finished_futhark_work(cuda):
    """A long futhark call launched asynchronously: export synchronises futhark's context first."""
    import torch
    r = cuda.slow.call_async(20000)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        t = torch.from_dlpack(r)           # PyTorch passes its current stream (s)
        total = float(t.sum())
    expected = float(cuda.slow(20000).numpy().sum())
    assert total == expected


def test_cupy_both_ways(cuda):
    cp = pytest.importorskip("cupy")
    x = cuda.fresh(np.arange(100.0))
    c = cp.from_dlpack(x)
    assert c.data.ptr == x.data_ptr()
    c[1] = -1.0
    cp.cuda.runtime.deviceSynchronize()
    assert x.numpy()[1] == -1.0
    y = cp.arange(100, dtype=cp.float64)
    assert cuda.id1(y).data_ptr() == y.data.ptr
    assert cuda.total(y) == float(y.sum())


def test_jax_both_ways(cuda):
    jax = pytest.importorskip("jax")
    if not any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("JAX has no GPU backend here")
    x = cuda.array(np.arange(256, dtype=np.float32))
    j = jax.dlpack.from_dlpack(x)
    assert j.unsafe_buffer_pointer() == x.data_ptr()
    np.testing.assert_array_equal(np.asarray(j), np.arange(256, dtype=np.float32))
    k = jax.numpy.arange(256, dtype=jax.numpy.float32) * 2
    r = cuda.idf(k)
    assert r.data_ptr() == k.unsafe_buffer_pointer()
    np.testing.assert_array_equal(r.numpy(), np.arange(256, dtype=np.float32) * 2)


def test_pycuda_gpuarray_both_ways(cuda):
    """PyCUDA's GPUArray has __cuda_array_interface__ and (in every release so far) no __dlpack__."""
    pytest.importorskip("pycuda")
    import pycuda.autoprimaryctx  # noqa: F401 - the primary context, shared with futhark's memory's device
    import pycuda.gpuarray as ga
    g = ga.to_gpu(np.arange(50.0))
    assert cuda.total(g) == float(np.arange(50.0).sum())
    assert cuda.array(g).data_ptr() == int(g.gpudata)
    x = cuda.fresh(np.arange(50.0))
    out = ga.GPUArray((50,), np.float64, gpudata=x.data_ptr())   # Futhark memory as a GPUArray
    np.testing.assert_array_equal(out.get(), np.arange(50.0))


def test_export_outlives_free_and_close():
    import torch
    m = futhark_lab.compile(SRC, backend="cuda")
    x = m.fresh(np.arange(1 << 20, dtype=np.float64))
    t = torch.from_dlpack(x)
    x.free()
    m.close()
    del m, x
    gc.collect()
    junk = [torch.full((1 << 20,), 3.0, dtype=torch.float64, device="cuda") for _ in range(8)]  # noqa: F841
    assert float(t.sum()) == float(np.arange(1 << 20, dtype=np.float64).sum())
    del t
    gc.collect()
    assert dlpack.live_exports() == 0


def test_consuming_parameter_never_updates_a_tensor(cuda):
    import torch
    u = torch.arange(3, dtype=torch.float64, device="cuda")
    assert cuda.inc(u).numpy().tolist() == [1.0, 1.0, 2.0]
    assert u.tolist() == [0.0, 1.0, 2.0]


def test_cpu_tensor_to_cuda_is_copied_quietly_and_cuda_tensor_to_c_with_a_warning(cuda):
    import warnings

    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("error", dlpack.DLPackCopyWarning)
        assert cuda.total(torch.arange(4, dtype=torch.float64)) == 6.0
    with futhark_lab.compile(SRC, backend="c") as c, \
            pytest.warns(dlpack.DLPackCopyWarning, match="CUDA device 0.*CPU"):
            assert c.total(torch.arange(4, dtype=torch.float64, device="cuda")) == 6.0


def test_values_derived_from_results_keep_the_tensor_alive():
    """A result of a result of a CUDA tensor keeps that tensor's memory (as on the CPU: tests/test_dlpack_hostile),
    and an export of it outlives free() and close(): run in a child, so a use after free fails the test."""
    import subprocess
    import sys
    import textwrap

    from .conftest import ROOT
    code = textwrap.dedent(f"""
        import sys, gc
        sys.path.insert(0, {str(ROOT)!r})
        import numpy as np, torch, futhark_lab
        m = futhark_lab.compile({SRC!r}, backend="cuda")
        n = 1 << 22
        ref = (np.arange(n) % 4).astype(np.float64)
        t = torch.from_numpy(ref.copy()).cuda()
        r1 = m.id1(t); del t
        r2 = m.id1(r1); del r1
        fa = m.array(torch.from_numpy(ref.copy()).cuda())
        view = torch.from_dlpack(m.id1(fa)); del fa
        gc.collect(); torch.cuda.empty_cache()
        junk = [torch.full((n,), 7.0, dtype=torch.float64, device="cuda") for _ in range(8)]
        print(np.array_equal(r2.numpy(), ref), m.total(r2) == 1.5 * n)
        m.close()
        junk += [torch.full((n,), 7.0, dtype=torch.float64, device="cuda") for _ in range(8)]
        print(np.array_equal(view.cpu().numpy(), ref))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"child died (rc {p.returncode}):\n{p.stdout}\n{p.stderr[-3000:]}"
    assert p.stdout.split() == ["True", "True", "True"], p.stdout
