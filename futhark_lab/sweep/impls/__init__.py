"""The kinds of implementation a sweep can time, one module each: a new peer is one new module listed here."""

from __future__ import annotations

from ..impl import Impl, Prepared
from ..kernel import Kernel
from ..modules import _ModuleCache
from . import custom, futhark, numpy_cpu, torch_eager

KINDS = {m.KIND: m for m in (futhark, torch_eager, numpy_cpu, custom)}


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    """``impl`` made ready to be called on ``inputs`` (on its device, its synchronisation and timers found)."""
    kind = KINDS.get(impl.kind)
    if kind is None:
        raise ValueError(f"unknown implementation kind {impl.kind!r}")
    return kind.prepare(impl, kernel, dtype, inputs, modules)
