"""GPU paths: cuda, opencl and pyopencl on an NVIDIA GPU; zero-copy with PyTorch and CuPy; failures and memory.
They run where an NVIDIA GPU exists and skip, saying why, elsewhere.  Futhark's output may come from another
machine ($FUTHARK_LAB_GENERATED), since GPU machines need not have the compiler."""

from __future__ import annotations

import os

import numpy as np
import pytest

import futhark_lab
from futhark_lab import FutharkError, FutharkOutOfMemory

from .conftest import PROGRAMS, have_futhark


def _gpu_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    if not have_futhark() and not os.environ.get("FUTHARK_LAB_GENERATED"):
        return "neither futhark nor pre-generated code ($FUTHARK_LAB_GENERATED)"
    return None


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_gpu_reason() is not None, reason=_gpu_reason() or "")]


@pytest.fixture(scope="module")
def cuda():
    with futhark_lab.compile(PROGRAMS / "types.fut", backend="cuda") as m:
        yield m


def test_cuda_answers_match_numpy(cuda):
    rng = np.random.default_rng(0)
    x = rng.random(1_000_003)
    assert cuda.sum_squares(x) == pytest.approx(np.sum(x * x), rel=1e-12)
    m = rng.integers(-9, 9, (33, 17))
    np.testing.assert_array_equal(cuda.transpose_i64(m).numpy(), m.T)
    h = np.array([1.5, -2.0], dtype=np.float16)
    np.testing.assert_array_equal(cuda.double_f16(h).numpy(), h * 2)
    assert tuple(cuda.min_max(np.array([3, -1, 7], dtype=np.int32))) == (-1, 7)


def test_torch_tensors_go_in_without_copies(cuda):
    import torch
    t = torch.arange(10, dtype=torch.float64, device="cuda")
    arr = cuda.array(t)
    assert arr.data_ptr() == t.data_ptr(), "the Futhark array must alias the tensor's memory"
    assert cuda.sum_squares(t) == float((t * t).sum())
    assert cuda.sum_squares(arr) == 285.0


def test_results_come_out_as_tensors_without_copies(cuda):
    import torch
    r = cuda.iota_f64(1000)
    t = r.torch()
    assert t.is_cuda and t.data_ptr() == r.data_ptr()
    assert torch.equal(t, torch.arange(1000, dtype=torch.float64, device="cuda"))
    t2 = torch.as_tensor(r, device="cuda")
    assert t2.data_ptr() == r.data_ptr()


def test_cupy_arrays_go_in(cuda):
    cp = pytest.importorskip("cupy")
    x = cp.arange(5, dtype=cp.float64)
    assert cuda.sum_squares(x) == 30.0
    assert cuda.array(x).data_ptr() == x.data.ptr


def test_runtime_errors_on_the_gpu(cuda):
    with pytest.raises(FutharkError, match="(?i)out of bounds"):
        cuda.get(np.arange(3), 5)
    assert cuda.add_i32(2, 3) == 5


def test_out_of_memory_is_an_error_and_the_session_continues(cuda):
    with pytest.raises((FutharkOutOfMemory, FutharkError)):
        cuda.iota_f64(2**40)  # 8 TiB
    assert cuda.sum_squares(np.ones(10)) == 10.0


def test_device_memory_stays_flat_over_many_calls(cuda):
    import torch
    x = cuda.array(np.ones(1 << 20))
    for _ in range(200):
        cuda.scale_f32(np.float32(2), np.ones(1000, dtype=np.float32))
    torch.cuda.synchronize()
    free0 = torch.cuda.mem_get_info()[0]
    for _ in range(3000):
        r = cuda.scale_f32(np.float32(2), np.ones(1000, dtype=np.float32))
        cuda.sum_squares(x)
        del r
    free1 = torch.cuda.mem_get_info()[0]
    assert abs(free1 - free0) < 64 * 2**20, (free0, free1)


def test_opencl_runs_on_the_nvidia_platform(capsys):
    from futhark_lab.opencl_info import gpu_platform
    if gpu_platform() is None:
        pytest.skip("no OpenCL GPU platform (NVIDIA's ICD file is missing; see environment.md#missing-icd)")
    with futhark_lab.compile(PROGRAMS / "types.fut", backend="opencl") as m:
        assert "NVIDIA" in (m.options.platform or "")
        x = np.random.default_rng(1).random(100_000)
        assert m.sum_squares(x) == pytest.approx(np.sum(x * x), rel=1e-12)


def test_pyopencl_runs_on_the_nvidia_platform():
    pytest.importorskip("pyopencl")
    from futhark_lab.opencl_info import gpu_platform
    if gpu_platform() is None:
        pytest.skip("no OpenCL GPU platform")
    with futhark_lab.compile(PROGRAMS / "types.fut", backend="pyopencl") as m:
        assert "NVIDIA" in m.context.platform_name()
        x = np.random.default_rng(2).random(100_000)
        assert m.sum_squares(x) == pytest.approx(np.sum(x * x), rel=1e-12)
