"""Every kernel of the suite: Futhark (on each backend that runs here), PyTorch and NumPy agree."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import futhark_lab
from futhark_lab.sweep.impl import _host
from futhark_lab.sweep.answers import check_answer

from .conftest import ROOT, cpu_backends, needs_futhark

sys.path.insert(0, str(ROOT))
import kernels.suite as suite  # noqa: E402

KERNELS = list(suite.KERNELS.values())


def _small(k) -> int:
    return int(k.sizes[0])


@pytest.mark.parametrize("kernel", KERNELS, ids=[k.name for k in KERNELS])
def test_torch_agrees_with_numpy(kernel):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for dtype in kernel.dtypes:
        inputs = kernel.make_inputs(_small(kernel), dtype, rng)
        want = kernel.numpy(*inputs)
        tin = [torch.from_numpy(v) if isinstance(v, np.ndarray) else v for v in inputs]
        for label, fn in kernel.torch.items():
            ok, err = check_answer(kernel, _host(fn(*tin)), want, dtype)
            assert ok, f"{kernel.name}/{label}/{dtype}: error {err}"


def test_models_count_bytes_and_flops():
    for k in KERNELS:
        n = _small(k)
        for d in k.dtypes:
            assert k.bytes_moved(n, d) > 0 and k.flops(n, d) > 0, k.name
    # spot checks against hand counts
    assert suite.get("saxpy").bytes_moved(1000, "f32") == 3 * 1000 * 4
    assert suite.get("matmul").flops(64**2, "f32") == 2 * 64**3
    assert suite.get("sum_squares").bytes_moved(10, "f64") == 80


@needs_futhark
@pytest.mark.parametrize("backend", cpu_backends())
@pytest.mark.parametrize("kernel", KERNELS, ids=[k.name for k in KERNELS])
def test_futhark_agrees_with_numpy(kernel, backend):
    if backend == "python" and kernel.name in ("matmul", "mandelbrot", "stencil"):
        n = 16 * 16  # the pure-Python backend is slow: a smaller problem, same code path
    else:
        n = _small(kernel)
    rng = np.random.default_rng(11)
    with futhark_lab.compile(kernel.source, backend=backend) as m:
        for dtype in kernel.dtypes:
            inputs = kernel.make_inputs(n, dtype, rng)
            got = _host(m.entry_points[kernel.entry_for(dtype)](*inputs))
            ok, err = check_answer(kernel, got, kernel.numpy(*inputs), dtype)
            assert ok, f"{kernel.name} on {backend} ({dtype}): error {err}"
