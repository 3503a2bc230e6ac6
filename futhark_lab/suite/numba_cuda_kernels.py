"""The suite's ``numba.cuda`` kernels with their launchers (functions of device arrays), imported only when the
numba-cuda peer runs them; written as Numba's documentation writes them (grid-stride loops, shared-memory tree
reduction, the tiled shared-memory matmul)."""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda

TPB = 256          # threads per block for the 1-D kernels
TILE = 16          # matmul tile


def _reduce_kernel(pair):
    """A block-wise sum of ``pair(x, y, i)`` (grid-stride), per-block results in ``partial``; f64 accumulation."""
    @cuda.jit
    def kernel(x, y, partial):
        sm = cuda.shared.array(TPB, numba.float64)
        t = cuda.threadIdx.x
        acc = 0.0
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            acc += pair(x, y, i)
        sm[t] = acc
        cuda.syncthreads()
        s = TPB // 2
        while s > 0:
            if t < s:
                sm[t] += sm[t + s]
            cuda.syncthreads()
            s //= 2
        if t == 0:
            partial[cuda.blockIdx.x] = sm[0]
    return kernel


@cuda.jit(device=True)
def _sq(x, y, i):
    return x[i] * x[i]


@cuda.jit(device=True)
def _mul(x, y, i):
    return x[i] * y[i]


_sum_squares_kernel = _reduce_kernel(_sq)
_dot_kernel = _reduce_kernel(_mul)


@cuda.jit(device=True)
def _first(x, y, i):
    return x[i]


_final = _reduce_kernel(_first)


def _blocks(n: int) -> int:
    return max(1, min((n + TPB - 1) // TPB, 2048))


def _two_pass(kernel, x, y):
    blocks = _blocks(x.size)
    partial = cuda.device_array(blocks, np.float64)
    kernel[blocks, TPB](x, y, partial)
    out = cuda.device_array(1, np.float64)
    _final[1, TPB](partial, partial, out)
    return out


def sum_squares(x):
    return _two_pass(_sum_squares_kernel, x, x)


def dot(x, y):
    return _two_pass(_dot_kernel, x, y)


@cuda.jit
def _saxpy_kernel(a, x, y, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = a * x[i] + y[i]


def saxpy(a, x, y):
    out = cuda.device_array_like(x)
    _saxpy_kernel[_blocks(x.size) * 4, TPB](x.dtype.type(a), x, y, out)
    return out


def _matmul_kernel(nb_dtype):
    @cuda.jit
    def kernel(a, b, c):
        sa = cuda.shared.array((TILE, TILE), nb_dtype)
        sb = cuda.shared.array((TILE, TILE), nb_dtype)
        x, y = cuda.grid(2)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        acc = nb_dtype(0)
        for i in range((a.shape[1] + TILE - 1) // TILE):
            sa[ty, tx] = a[y, tx + i * TILE] if y < a.shape[0] and tx + i * TILE < a.shape[1] else 0
            sb[ty, tx] = b[ty + i * TILE, x] if x < b.shape[1] and ty + i * TILE < b.shape[0] else 0
            cuda.syncthreads()
            for j in range(TILE):
                acc += sa[ty, j] * sb[j, tx]
            cuda.syncthreads()
        if y < c.shape[0] and x < c.shape[1]:
            c[y, x] = acc
    return kernel


_MATMUL = {np.dtype(np.float32): _matmul_kernel(numba.float32), np.dtype(np.float64): _matmul_kernel(numba.float64)}


def matmul(a, b):
    c = cuda.device_array((a.shape[0], b.shape[1]), a.dtype)
    grid = ((b.shape[1] + TILE - 1) // TILE, (a.shape[0] + TILE - 1) // TILE)
    _MATMUL[np.dtype(a.dtype)][grid, (TILE, TILE)](a, b, c)
    return c


sum_squares.kernels = (_sum_squares_kernel, _final)
dot.kernels = (_dot_kernel, _final)
saxpy.kernels = (_saxpy_kernel,)
matmul.kernels = tuple(_MATMUL.values())
