"""The suite's PyCUDA kernels with their launchers (functions of ``gpuarray`` arrays), imported only when the
PyCUDA peer runs them: PyCUDA's own ``ReductionKernel`` and ``ElementwiseKernel``, and a ``SourceModule`` tiled
matmul.  Kernels are built (nvcc) at their first call per dtype, so compilation lands in the first-call column."""

from __future__ import annotations

import numpy as np
import pycuda.gpuarray as gpuarray
from pycuda.compiler import SourceModule
from pycuda.elementwise import ElementwiseKernel
from pycuda.reduction import ReductionKernel

_CTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_BUILT: dict = {}


def _built(key, make):
    k = _BUILT.get(key)
    if k is None:
        k = _BUILT[key] = make()
    return k


def sum_squares(x):
    t = _CTYPE[x.dtype]
    return _built(("sumsq", t), lambda: ReductionKernel(
        x.dtype, neutral="0", reduce_expr="a+b", map_expr="x[i]*x[i]", arguments=f"const {t} *x"))(x)


def dot(x, y):
    t = _CTYPE[x.dtype]
    return _built(("dot", t), lambda: ReductionKernel(
        x.dtype, neutral="0", reduce_expr="a+b", map_expr="x[i]*y[i]", arguments=f"const {t} *x, const {t} *y"))(x, y)


def saxpy(a, x, y):
    t = _CTYPE[x.dtype]
    k = _built(("saxpy", t), lambda: ElementwiseKernel(f"{t} a, const {t} *x, const {t} *y, {t} *z",
                                                       "z[i] = a * x[i] + y[i]", "futhark_lab_saxpy"))
    z = gpuarray.empty_like(x)
    k(x.dtype.type(a), x, y, z)
    return z


TILE = 16
_MATMUL_SRC = """
__global__ void matmul(const T *a, const T *b, T *c, int m, int k, int n) {
    __shared__ T sa[TILE][TILE];
    __shared__ T sb[TILE][TILE];
    int tx = threadIdx.x, ty = threadIdx.y;
    int col = blockIdx.x * TILE + tx, row = blockIdx.y * TILE + ty;
    T acc = 0;
    for (int i = 0; i < (k + TILE - 1) / TILE; i++) {
        sa[ty][tx] = (row < m && i * TILE + tx < k) ? a[(long)row * k + i * TILE + tx] : 0;
        sb[ty][tx] = (col < n && i * TILE + ty < k) ? b[(long)(i * TILE + ty) * n + col] : 0;
        __syncthreads();
        for (int j = 0; j < TILE; j++) acc += sa[ty][j] * sb[j][tx];
        __syncthreads();
    }
    if (row < m && col < n) c[(long)row * n + col] = acc;
}
"""


def matmul(a, b):
    t = _CTYPE[a.dtype]
    fn = _built(("matmul", t), lambda: SourceModule(
        f"#define T {t}\n#define TILE {TILE}\n" + _MATMUL_SRC, no_extern_c=False).get_function("matmul"))
    m, k = a.shape
    n = b.shape[1]
    c = gpuarray.empty((m, n), a.dtype)
    fn(a.gpudata, b.gpudata, c.gpudata, np.int32(m), np.int32(k), np.int32(n), block=(TILE, TILE, 1),
       grid=((n + TILE - 1) // TILE, (m + TILE - 1) // TILE))
    return c


