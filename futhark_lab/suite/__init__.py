"""The kernel suite, from memory-bound to compute-bound: each kernel's Futhark source, NumPy reference, PyTorch
equivalents, its versions in the peer libraries (``suite.peers``), seeded inputs, and the bytes and flops one call
must move and do (counted explicitly, minimum traffic: every input read once, every output written once).

Shipped in the package (the .fut files are package data), so ``from futhark_lab import suite`` works wherever
futhark-lab is installed; a checkout's top-level ``kernels/`` links to the same files for the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..sweep.kernel import Kernel
from .peers import PEERS

HERE = Path(__file__).resolve().parent
NP = {"f32": np.float32, "f64": np.float64}


def _itemsize(dtype: str) -> int:
    return np.dtype(NP.get(dtype, np.int32)).itemsize


def _vec(n, dtype, rng, k=1):
    return tuple(rng.standard_normal(n).astype(NP[dtype]) for _ in range(k))


# PyTorch versions import torch in their body (torch stays optional here, and Dynamo traces an import statement;
# ``__import__("torch")`` would be a graph break under torch.compile)
def _torch_sum_squares(x):
    import torch
    return torch.sum(x * x)


def _torch_dot_self(x):
    import torch
    return torch.dot(x, x)


def _torch_dot(x, y):
    import torch
    return torch.dot(x, y)


def _torch_cumsum(x):
    import torch
    return torch.cumsum(x, 0)


def _torch_bincount(x):
    import torch
    return torch.bincount(x, minlength=256).to(torch.int32)


def _torch_mandelbrot(n: int, limit: int):
    import torch
    j = torch.arange(n, dtype=torch.float32)
    cx = (-2 + 3 * j / n).expand(n, n)
    cy = (-1.5 + 3 * j / n)[:, None].expand(n, n)
    x = torch.zeros((n, n)); y = torch.zeros((n, n)); k = torch.zeros((n, n), dtype=torch.int32)
    for _ in range(limit):
        live = (x * x + y * y <= 4)
        if not bool(live.any()):
            break
        x, y = torch.where(live, x * x - y * y + cx, x), torch.where(live, 2 * x * y + cy, y)
        k += live.to(torch.int32)
    return k


def _numpy_mandelbrot(n: int, limit: int) -> np.ndarray:
    j = np.arange(n, dtype=np.float32)
    cx = np.broadcast_to(np.float32(-2) + np.float32(3) * j / np.float32(n), (n, n))
    cy = np.broadcast_to((np.float32(-1.5) + np.float32(3) * j / np.float32(n))[:, None], (n, n))
    x = np.zeros((n, n), np.float32); y = np.zeros((n, n), np.float32); k = np.zeros((n, n), np.int32)
    for _ in range(limit):
        live = x * x + y * y <= 4
        if not live.any():
            break
        x, y = np.where(live, x * x - y * y + cx, x), np.where(live, np.float32(2) * x * y + cy, y)
        k += live
    return k


def _mandelbrot_check(got, want, dtype):
    """Escape counts may differ at the set's boundary when a compiler fuses a*b+c (FMA): allow 0.5% of pixels."""
    got = np.asarray(got)
    bad = float(np.mean(got != want))
    return bad <= 0.005, bad


def _stencil_numpy(g):
    p = np.pad(g, 1, mode="edge")
    c = g.dtype.type(0.2)
    return c * ((p[1:-1, 1:-1] + p[:-2, 1:-1]) + ((p[2:, 1:-1] + p[1:-1, :-2]) + p[1:-1, 2:]))


def _stencil_torch(g):
    import torch
    p = torch.nn.functional.pad(g[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    return 0.2 * ((p[1:-1, 1:-1] + p[:-2, 1:-1]) + ((p[2:, 1:-1] + p[1:-1, :-2]) + p[1:-1, 2:]))


MEM_SIZES = (10**3, 10**4, 10**5, 10**6, 10**7)
#: On a GPU: up to where its bandwidth shows (10^8 elements: 0.4-1.2 GB per call, well past launch latency).
GPU_MEM_SIZES = (10**8,)

KERNELS: dict[str, Kernel] = {}


def _add(k: Kernel) -> Kernel:
    KERNELS[k.name] = k
    return k


_add(Kernel(
    "sum_squares", HERE / "sum_squares.fut", "sum_squares_{dtype}",
    make_inputs=lambda n, dt, rng: _vec(n, dt, rng),
    numpy=lambda x: np.sum(x * x),
    torch={"sum": _torch_sum_squares, "dot": _torch_dot_self},
    bytes_moved=lambda n, dt: n * _itemsize(dt), flops=lambda n, dt: 2 * n,
    sizes=MEM_SIZES, dtypes=("f64", "f32"), rtol={"f32": 1e-3, "f64": 1e-9}, large_sizes=GPU_MEM_SIZES,
    peers=PEERS["sum_squares"],
    description="sum of x*x; reads n elements"))

_add(Kernel(
    "saxpy", HERE / "saxpy.fut", "saxpy_{dtype}",
    make_inputs=lambda n, dt, rng: (NP[dt](2.5),) + _vec(n, dt, rng, 2),
    numpy=lambda a, x, y: a * x + y,
    torch={"default": lambda a, x, y: a * x + y},
    bytes_moved=lambda n, dt: 3 * n * _itemsize(dt), flops=lambda n, dt: 2 * n,
    sizes=MEM_SIZES, dtypes=("f32", "f64"), rtol={"f32": 1e-6, "f64": 1e-15}, large_sizes=GPU_MEM_SIZES,
    peers=PEERS["saxpy"],
    description="a*x + y; reads 2n, writes n"))

_add(Kernel(
    "dot", HERE / "dot.fut", "dot_{dtype}",
    make_inputs=lambda n, dt, rng: _vec(n, dt, rng, 2),
    numpy=lambda x, y: np.dot(x, y),
    torch={"default": _torch_dot},
    bytes_moved=lambda n, dt: 2 * n * _itemsize(dt), flops=lambda n, dt: 2 * n,
    sizes=MEM_SIZES, dtypes=("f32", "f64"), rtol={"f32": 1e-2, "f64": 1e-9}, large_sizes=GPU_MEM_SIZES,
    peers=PEERS["dot"],
    description="x . y; reads 2n"))

_add(Kernel(
    "stencil", HERE / "stencil.fut", "stencil_{dtype}",
    make_inputs=lambda n, dt, rng: (rng.standard_normal((int(round(n ** 0.5)),) * 2).astype(NP[dt]),),
    numpy=_stencil_numpy, torch={"default": _stencil_torch},
    bytes_moved=lambda n, dt: 2 * int(round(n ** 0.5)) ** 2 * _itemsize(dt),
    flops=lambda n, dt: 5 * int(round(n ** 0.5)) ** 2,
    sizes=(10**4, 10**5, 10**6, 10**7), dtypes=("f32", "f64"), rtol={"f32": 1e-6, "f64": 1e-14},
    large_sizes=GPU_MEM_SIZES,
    peers=PEERS["stencil"],
    description="one Jacobi step of the 5-point stencil on a sqrt(n) x sqrt(n) grid; reads and writes n",
    size_label="grid points"))

_add(Kernel(
    "scan", HERE / "scan.fut", "scan_{dtype}",
    make_inputs=lambda n, dt, rng: (rng.random(n).astype(NP[dt]),),
    numpy=lambda x: np.cumsum(x, dtype=x.dtype),
    torch={"default": _torch_cumsum},
    bytes_moved=lambda n, dt: 2 * n * _itemsize(dt), flops=lambda n, dt: n,
    sizes=MEM_SIZES, dtypes=("f64", "f32"), rtol={"f32": 1e-3, "f64": 1e-10}, large_sizes=GPU_MEM_SIZES,
    peers=PEERS["scan"],
    description="inclusive prefix sum; reads n, writes n"))

_add(Kernel(
    "histogram", HERE / "histogram.fut", "histogram_i32",
    make_inputs=lambda n, dt, rng: (rng.integers(0, 256, n, dtype=np.int32),),
    numpy=lambda x: np.bincount(x, minlength=256).astype(np.int32),
    torch={"default": _torch_bincount},
    bytes_moved=lambda n, dt: 4 * n + 4 * 256, flops=lambda n, dt: n,
    sizes=MEM_SIZES, dtypes=("i32",), large_sizes=GPU_MEM_SIZES,
    peers=PEERS["histogram"],
    description="256-bin histogram of n i32 values; reads n"))

_add(Kernel(
    "matmul", HERE / "matmul.fut", "matmul_{dtype}",
    make_inputs=lambda n, dt, rng: tuple(rng.standard_normal((int(round(n ** 0.5)),) * 2).astype(NP[dt])
                                         for _ in range(2)),
    numpy=lambda a, b: a @ b,
    torch={"default": lambda a, b: a @ b},
    bytes_moved=lambda n, dt: 3 * int(round(n ** 0.5)) ** 2 * _itemsize(dt),
    flops=lambda n, dt: 2 * int(round(n ** 0.5)) ** 3,
    sizes=(64**2, 128**2, 256**2, 512**2, 1024**2), dtypes=("f32", "f64"), rtol={"f32": 1e-4, "f64": 1e-12},
    large_sizes=(2048**2, 4096**2),  # 4096^2: 0.14 TFLOP per call; NumPy's reference still takes well under a second
    peers=PEERS["matmul"],
    description="dense sqrt(n) x sqrt(n) matrix multiply; 2 m^3 flops", size_label="matrix elements"))

_MANDEL_LIMIT = 64
_add(Kernel(
    "mandelbrot", HERE / "mandelbrot.fut", "mandelbrot",
    make_inputs=lambda n, dt, rng: (int(round(n ** 0.5)), _MANDEL_LIMIT),
    numpy=_numpy_mandelbrot, torch={"default": _torch_mandelbrot},
    bytes_moved=lambda n, dt: 4 * int(round(n ** 0.5)) ** 2,
    # upper bound on work: every pixel iterating to the limit, 7 flops per iteration (3 mul, 3 add, 1 cmp-add)
    flops=lambda n, dt: 7 * _MANDEL_LIMIT * int(round(n ** 0.5)) ** 2,
    sizes=(64**2, 256**2, 1024**2), dtypes=("f32",), check=_mandelbrot_check,
    large_sizes=(2048**2,),  # 4.2 M pixels x 64 iterations; NumPy's reference (on the host) takes seconds beyond
    peers=PEERS["mandelbrot"],
    description=f"escape counts on a sqrt(n) x sqrt(n) grid, {_MANDEL_LIMIT} iterations at most (flops: upper "
                "bound)", size_label="pixels"))


def get(name: str) -> Kernel:
    try:
        return KERNELS[name]
    except KeyError:
        raise KeyError(f"no kernel {name!r} in the suite; kernels: {', '.join(KERNELS)}") from None


def for_source(path: str | Path) -> Kernel | None:
    """The suite kernel whose source is ``path`` (for `futhark-lab run kernels/x.fut`)."""
    p = Path(path).resolve()
    return next((k for k in KERNELS.values() if Path(k.source).resolve() == p), None)


def load():
    """The suite to sweep: this one, or the ``suite.py`` in the directory named by $FUTHARK_LAB_KERNELS (a suite
    of your own with the same ``KERNELS``/``get``)."""
    import importlib.util
    import os
    import sys

    root = os.environ.get("FUTHARK_LAB_KERNELS")
    if not root:
        return sys.modules[__name__]
    path = Path(root) / "suite.py"
    if not path.is_file():
        raise FileNotFoundError(f"$FUTHARK_LAB_KERNELS={root} has no suite.py; unset it to use the built-in suite")
    spec = importlib.util.spec_from_file_location(f"_futhark_lab_user_suite_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
