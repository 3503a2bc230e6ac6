"""NumPy on the host: the kernel's own reference function, timed like every other implementation."""

from __future__ import annotations

from ..impl import Impl, Prepared, _host
from ..kernel import Kernel
from ..modules import _ModuleCache

KIND = "numpy"


def numpy_impl(name: str = "numpy") -> Impl:
    return Impl(name, "numpy", "numpy", "cpu")


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    if kernel.numpy is None:
        raise LookupError(f"kernel {kernel.name!r} has no NumPy implementation (Kernel(numpy=...))")
    return Prepared(lambda: kernel.numpy(*inputs), _host, "host CPU")
