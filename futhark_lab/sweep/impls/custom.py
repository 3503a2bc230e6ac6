"""Any callable the user brings, on the device they name; results are synchronised by what they return."""

from __future__ import annotations

from typing import Any, Callable

from ..impl import Impl, Prepared, _host
from ..kernel import Kernel
from ..modules import _ModuleCache

KIND = "custom"


def custom(name: str, fn: Callable[..., Any], device: str = "cpu", backend: str = "custom") -> Impl:
    return Impl(name, "custom", backend, device, fn=fn)


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    return Prepared(lambda: impl.fn(*inputs), _host, impl.device, measure_device=impl.device)
