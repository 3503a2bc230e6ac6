"""Declarative sweeps (in the spirit of ``triton.testing.perf_report``) into tidy, durable DataFrames.

``from futhark_lab import sweep as sw``: describe a ``Kernel``, pick implementations (``sw.futhark``, ``sw.torch``,
``sw.numpy_impl``, ``sw.custom``) and call ``sw.sweep``.  The parts live in this package's modules, one concern each.
"""

from ..measure.compare import compare
from ..measure.store import RunStore, load_run, new_run_id, point_key, results_dir
from .answers import check_answer
from .failures import ON_ERROR, SweepFailed
from .impl import Impl, Prepared
from .impls import prepare
from .impls.custom import custom
from .impls.futhark import futhark
from .impls.numpy_cpu import numpy_impl
from .impls.torch_eager import torch
from .kernel import DEFAULT_RTOL, DTYPES, Kernel
from .run import sizes_between, sweep

__all__ = ["Kernel", "Impl", "Prepared", "futhark", "torch", "numpy_impl", "custom", "prepare", "sweep",
           "sizes_between", "SweepFailed", "ON_ERROR", "check_answer", "DTYPES", "DEFAULT_RTOL", "compare", "load_run",
           "new_run_id", "point_key", "results_dir", "RunStore"]
