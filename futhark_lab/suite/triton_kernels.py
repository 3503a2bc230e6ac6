"""The suite's Triton kernels with their launchers (functions of CUDA tensors), imported only when the Triton peer
runs them.  Each launcher lists its kernels as ``.kernels`` so the sweep can count compilations."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 4096


@triton.jit
def _sum_squares_kernel(x_ptr, partial_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n, other=0.0)
    tl.store(partial_ptr + pid, tl.sum(x * x, axis=0))


@triton.jit
def _dot_kernel(x_ptr, y_ptr, partial_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n, other=0.0)
    y = tl.load(y_ptr + offs, mask=offs < n, other=0.0)
    tl.store(partial_ptr + pid, tl.sum(x * y, axis=0))


@triton.jit
def _sum_kernel(partial_ptr, out_ptr, n, BLOCK: tl.constexpr):
    acc = tl.zeros((BLOCK,), dtype=partial_ptr.dtype.element_ty)
    for i in range(0, tl.cdiv(n, BLOCK)):
        offs = i * BLOCK + tl.arange(0, BLOCK)
        acc += tl.load(partial_ptr + offs, mask=offs < n, other=0.0)
    tl.store(out_ptr, tl.sum(acc, axis=0))


def _reduce(partial: torch.Tensor) -> torch.Tensor:
    out = torch.empty((), dtype=partial.dtype, device=partial.device)
    _sum_kernel[(1,)](partial, out, partial.numel(), BLOCK=1024)
    return out


def sum_squares(x: torch.Tensor) -> torch.Tensor:
    """Two deterministic passes: per-block sums of x*x, then one block sums those."""
    n = x.numel()
    blocks = triton.cdiv(n, BLOCK)
    partial = torch.empty(blocks, dtype=x.dtype, device=x.device)
    _sum_squares_kernel[(blocks,)](x, partial, n, BLOCK=BLOCK)
    return _reduce(partial)


def dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    n = x.numel()
    blocks = triton.cdiv(n, BLOCK)
    partial = torch.empty(blocks, dtype=x.dtype, device=x.device)
    _dot_kernel[(blocks,)](x, y, partial, n, BLOCK=BLOCK)
    return _reduce(partial)


@triton.jit
def _saxpy_kernel(a_ptr, x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(a_ptr)
    tl.store(out_ptr + offs, a * tl.load(x_ptr + offs, mask=mask) + tl.load(y_ptr + offs, mask=mask), mask=mask)


_A: dict = {}


def saxpy(a, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``a`` lives on the device in x's dtype (a Python float would reach the kernel as fp32), made once per
    value and dtype."""
    key = (float(a), x.dtype, x.device)
    a_dev = _A.get(key)
    if a_dev is None:
        a_dev = _A[key] = torch.full((1,), float(a), dtype=x.dtype, device=x.device)
    out = torch.empty_like(x)
    n = x.numel()
    _saxpy_kernel[(triton.cdiv(n, 1024),)](a_dev, x, y, out, n, BLOCK=1024)
    return out


@triton.jit
def _matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, sam, sak, sbk, sbn, scm, scn,
                   BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=c_ptr.dtype.element_ty)
    for i in range(0, tl.cdiv(K, BK)):
        kk = i * BK + rk
        a = tl.load(a_ptr + rm[:, None] * sam + kk[None, :] * sak, mask=(rm[:, None] < M) & (kk[None, :] < K),
                    other=0.0)
        b = tl.load(b_ptr + kk[:, None] * sbk + rn[None, :] * sbn, mask=(kk[:, None] < K) & (rn[None, :] < N),
                    other=0.0)
        acc = tl.dot(a, b, acc, input_precision="ieee", out_dtype=c_ptr.dtype.element_ty)  # no TF32, f64 stays f64
    tl.store(c_ptr + rm[:, None] * scm + rn[None, :] * scn, acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The tiled matmul of Triton's tutorial without autotuning: 64x64 tiles, 32-wide k steps."""
    M, K = a.shape
    _, N = b.shape
    c = torch.empty((M, N), dtype=a.dtype, device=a.device)
    grid = (triton.cdiv(M, 64), triton.cdiv(N, 64))
    _matmul_kernel[grid](a, b, c, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0),
                         c.stride(1), BM=64, BN=64, BK=32)
    return c


sum_squares.kernels = (_sum_squares_kernel, _sum_kernel)
dot.kernels = (_dot_kernel, _sum_kernel)
saxpy.kernels = (_saxpy_kernel,)
matmul.kernels = (_matmul_kernel,)
