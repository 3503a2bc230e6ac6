"""Declarative sweeps (in the spirit of ``triton.testing.perf_report``) into tidy, durable DataFrames.

``from futhark_lab import sweep as sw``: describe a ``Kernel``, pick implementations (``sw.futhark``, ``sw.torch``,
``sw.numpy_impl``, ``sw.custom``, and the peers ``sw.jax``, ``sw.torch_compile``, ``sw.numba``, ``sw.cupy``,
``sw.triton``, ``sw.pycuda``) and call ``sw.sweep``.  The parts live in this package's modules, one concern each.
"""

from ..measure.compare import compare
from ..measure.store import RunStore, load_run, new_run_id, point_key, results_dir
from .answers import check_answer
from .failures import ON_ERROR, SweepFailed
from .impl import Impl, Prepared
from .impls import prepare
from .impls.cupy_gpu import cupy
from .impls.custom import custom
from .impls.futhark import futhark
from .impls.jax_jit import jax
from .impls.numba_jit import numba
from .impls.numpy_cpu import numpy_impl
from .impls.pycuda_gpu import pycuda
from .impls.torch_compile import torch_compile
from .impls.torch_eager import torch
from .impls.triton_kernel import triton
from .kernel import DEFAULT_RTOL, DTYPES, PEERS, Kernel
from .run import sizes_between, sweep

__all__ = ["Kernel", "Impl", "Prepared", "futhark", "torch", "numpy_impl", "custom", "jax", "torch_compile", "numba",
           "cupy", "triton", "pycuda", "PEERS", "prepare", "sweep",
           "sizes_between", "SweepFailed", "ON_ERROR", "check_answer", "DTYPES", "DEFAULT_RTOL", "compare", "load_run",
           "new_run_id", "point_key", "results_dir", "RunStore"]
