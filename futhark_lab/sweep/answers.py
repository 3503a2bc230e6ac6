"""Checking answers: the NumPy reference per point and a dtype-aware tolerance for sums taken in another order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .kernel import DEFAULT_RTOL, Kernel, _with_context

# --------------------------------------------------------------------------- correctness

def check_answer(kernel: Kernel, got: Any, want: Any, dtype: str) -> tuple[bool, float]:
    """(passes, max relative error) with a dtype-aware tolerance."""
    if kernel.check is not None:
        return kernel.check(got, want, dtype)
    g = np.asarray(got, dtype=np.float64) if not isinstance(got, tuple) else np.concatenate(
        [np.ravel(np.asarray(x, dtype=np.float64)) for x in got])
    w = np.asarray(want, dtype=np.float64) if not isinstance(want, tuple) else np.concatenate(
        [np.ravel(np.asarray(x, dtype=np.float64)) for x in want])
    if g.shape != w.shape and not (g.size == 1 == w.size):  # a reduction's scalar as a one-element array is fine
        return False, math.inf
    g, w = (g.ravel(), w.ravel()) if g.shape != w.shape else (g, w)
    if g.size == 0:
        return True, 0.0
    scale = max(float(np.max(np.abs(w))), 1e-300)
    err = float(np.max(np.abs(g - w))) / scale
    rtol = kernel.rtol.get(dtype, DEFAULT_RTOL.get(dtype, 0.0))
    return err <= rtol, err


def _reference(kernel: Kernel, inputs: tuple) -> Any:
    if kernel.numpy is None:
        return None
    try:
        return kernel.numpy(*inputs)
    except Exception as exc:
        raise _with_context(exc, f"kernel {kernel.name!r}: the NumPy reference failed on these inputs") from exc
