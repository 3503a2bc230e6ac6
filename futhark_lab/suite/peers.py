"""The suite's kernels in the peer libraries: JAX and CuPy for every kernel, Numba (``njit``) for every kernel,
Triton, ``numba.cuda`` and PyCUDA where they are natural (sum of squares, saxpy, dot, matmul).  ``torch.compile``
compiles the kernels' PyTorch functions and needs nothing here.

Nothing is imported at module level: JAX/CuPy functions import their library when traced or called, Numba's are
plain Python that ``njit`` compiles, and the GPU kernels' modules (``triton_kernels``, ``numba_cuda_kernels``,
``pycuda_kernels``) are named by ``Lazy`` and imported by the sweep only when that peer runs.
"""

from __future__ import annotations

import numpy as np

from ..sweep.kernel import Lazy

# --------------------------------------------------------------------------- JAX (jitted by the sweep)


def _jnp():
    import jax.numpy as jnp
    return jnp


def jax_sum_squares(x):
    return _jnp().sum(x * x)


def jax_saxpy(a, x, y):
    return a * x + y


def jax_dot(x, y):
    return _jnp().dot(x, y, precision="highest")          # no TF32 on GPUs: the reference's precision


def jax_stencil(g):
    jnp = _jnp()
    p = jnp.pad(g, 1, mode="edge")
    c = jnp.asarray(0.2, g.dtype)
    return c * ((p[1:-1, 1:-1] + p[:-2, 1:-1]) + ((p[2:, 1:-1] + p[1:-1, :-2]) + p[1:-1, 2:]))


def jax_scan(x):
    return _jnp().cumsum(x, dtype=x.dtype)


def jax_histogram(x):
    jnp = _jnp()
    return jnp.bincount(x, length=256).astype(jnp.int32)


def jax_matmul(a, b):
    return _jnp().matmul(a, b, precision="highest")


# --------------------------------------------------------------------------- CuPy (plain, and user kernels)


def _cp():
    import cupy
    return cupy


def cupy_sum_squares(x):
    return _cp().sum(x * x)


_CUPY_KERNELS: dict = {}


def _cupy_kernel(name: str, make):
    k = _CUPY_KERNELS.get(name)
    if k is None:
        k = _CUPY_KERNELS[name] = make(_cp())
    return k


def cupy_sum_squares_kernel(x):
    """A user ``ReductionKernel``: one pass, no x*x temporary."""
    return _cupy_kernel("sumsq", lambda cp: cp.ReductionKernel(
        "T x", "T y", "x * x", "a + b", "y = a", "0", "futhark_lab_sum_squares"))(x)


def cupy_saxpy(a, x, y):
    return a * x + y


def cupy_saxpy_kernel(a, x, y):
    """A user ``ElementwiseKernel``: one pass."""
    return _cupy_kernel("saxpy", lambda cp: cp.ElementwiseKernel(
        "T a, T x, T y", "T z", "z = a * x + y", "futhark_lab_saxpy"))(x.dtype.type(a), x, y)


def cupy_dot(x, y):
    return _cp().dot(x, y)


def cupy_stencil(g):
    cp = _cp()
    p = cp.pad(g, 1, mode="edge")
    c = g.dtype.type(0.2)
    return c * ((p[1:-1, 1:-1] + p[:-2, 1:-1]) + ((p[2:, 1:-1] + p[1:-1, :-2]) + p[1:-1, 2:]))


def cupy_scan(x):
    return _cp().cumsum(x, dtype=x.dtype)


def cupy_histogram(x):
    cp = _cp()
    return cp.bincount(x, minlength=256).astype(cp.int32)


def cupy_matmul(a, b):
    return a @ b


def mandelbrot_xp(xp, n: int, limit: int):
    """The NumPy reference's algorithm on any array module (CuPy here): same operations, same order, f32."""
    f = xp.float32
    j = xp.arange(n, dtype=f)
    cx = xp.broadcast_to(f(-2) + f(3) * j / f(n), (n, n))
    cy = xp.broadcast_to((f(-1.5) + f(3) * j / f(n))[:, None], (n, n))
    x = xp.zeros((n, n), f)
    y = xp.zeros((n, n), f)
    k = xp.zeros((n, n), xp.int32)
    for _ in range(limit):
        live = x * x + y * y <= 4
        if not bool(live.any()):
            break
        x, y = xp.where(live, x * x - y * y + cx, x), xp.where(live, f(2) * x * y + cy, y)
        k += live
    return k


def cupy_mandelbrot(n, limit):
    return mandelbrot_xp(_cp(), int(n), int(limit))


# --------------------------------------------------------------------------- Numba njit (compiled by the sweep)


def numba_sum_squares(x):
    s = 0.0
    for i in range(x.size):
        s += x[i] * x[i]
    return s


def numba_saxpy(a, x, y):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = a * x[i] + y[i]
    return out


def numba_dot(x, y):
    s = 0.0
    for i in range(x.size):
        s += x[i] * y[i]
    return s


def numba_stencil(g):
    n, m = g.shape
    out = np.empty_like(g)
    c = g.dtype.type(0.2)
    for i in range(n):
        up, down = max(i - 1, 0), min(i + 1, n - 1)
        for j in range(m):
            left, right = max(j - 1, 0), min(j + 1, m - 1)
            out[i, j] = c * ((g[i, j] + g[up, j]) + ((g[down, j] + g[i, left]) + g[i, right]))
    return out


def numba_scan(x):
    out = np.empty_like(x)
    s = x.dtype.type(0)
    for i in range(x.size):
        s += x[i]
        out[i] = s
    return out


def numba_histogram(x):
    h = np.zeros(256, np.int32)
    for v in x:
        h[v] += 1
    return h


def numba_matmul(a, b):
    return np.dot(a, b)          # Numba's np.dot calls BLAS (through SciPy), as a Numba user writes it


def numba_mandelbrot(n, limit):
    k = np.zeros((n, n), np.int32)
    three, fn = np.float32(3), np.float32(n)
    for r in range(n):
        cy = np.float32(-1.5) + three * np.float32(r) / fn
        for c in range(n):
            cx = np.float32(-2) + three * np.float32(c) / fn
            x = np.float32(0)
            y = np.float32(0)
            it = 0
            while it < limit and x * x + y * y <= np.float32(4):
                x, y = x * x - y * y + cx, np.float32(2) * x * y + cy
                it += 1
            k[r, c] = it
    return k


# --------------------------------------------------------------------------- the table the suite reads

_T = "futhark_lab.suite.triton_kernels"
_N = "futhark_lab.suite.numba_cuda_kernels"
_P = "futhark_lab.suite.pycuda_kernels"

PEERS: dict[str, dict] = {
    "sum_squares": {"jax": jax_sum_squares, "numba": numba_sum_squares,
                    "cupy": {"default": cupy_sum_squares, "kernel": cupy_sum_squares_kernel},
                    "triton": Lazy(_T, "sum_squares"), "numba-cuda": Lazy(_N, "sum_squares"),
                    "pycuda": Lazy(_P, "sum_squares")},
    "saxpy": {"jax": jax_saxpy, "numba": numba_saxpy,
              "cupy": {"default": cupy_saxpy, "kernel": cupy_saxpy_kernel},
              "triton": Lazy(_T, "saxpy"), "numba-cuda": Lazy(_N, "saxpy"), "pycuda": Lazy(_P, "saxpy")},
    "dot": {"jax": jax_dot, "numba": numba_dot, "cupy": cupy_dot, "triton": Lazy(_T, "dot"),
            "numba-cuda": Lazy(_N, "dot"), "pycuda": Lazy(_P, "dot")},
    "stencil": {"jax": jax_stencil, "numba": numba_stencil, "cupy": cupy_stencil},
    "scan": {"jax": jax_scan, "numba": numba_scan, "cupy": cupy_scan},
    "histogram": {"jax": jax_histogram, "numba": numba_histogram, "cupy": cupy_histogram},
    "matmul": {"jax": jax_matmul, "numba": numba_matmul, "cupy": cupy_matmul, "triton": Lazy(_T, "matmul"),
               "numba-cuda": Lazy(_N, "matmul"), "pycuda": Lazy(_P, "matmul")},
    "mandelbrot": {"jax": Lazy("futhark_lab.suite.jax_kernels", "mandelbrot"), "numba": numba_mandelbrot,
                   "cupy": cupy_mandelbrot},
}
