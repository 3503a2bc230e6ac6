"""Sizes that fit the device: on a CPU a kernel's own ``sizes``; on a GPU also its ``large_sizes``, up to where
the GPU's bandwidth shows rather than its launch latency (10^8 elements for the streaming kernels), as far as the
GPU's and the host's memory allow (the host makes the inputs and NumPy's reference answer)."""

from __future__ import annotations

import os
from typing import Sequence

from .impl import Impl
from .kernel import Kernel

#: A point may use at most this share of the device's (and the host's) memory for inputs, outputs and copies.
MEMORY_SHARE = 0.25


def gpu_memory() -> int | None:
    """Total memory of the first CUDA device in bytes, or None where there is none (or no driver)."""
    try:
        from ..runtime.cudadrv import CudaUnavailable, device_memory
    except ImportError:
        return None
    try:
        return device_memory(0)
    except (CudaUnavailable, OSError):
        return None


def host_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def point_bytes(kernel: Kernel, n: int, dtype: str) -> int:
    """What one point holds at once, roughly: the bytes one call moves (inputs and outputs), twice over for
    copies (host inputs, device inputs, results)."""
    if kernel.bytes_moved is not None:
        return 2 * int(kernel.bytes_moved(int(n), dtype))
    return 0


def gpu_sizes(kernel: Kernel, dtypes: Sequence[str], memory: int | None = None, above: int = 0) -> list[int]:
    """The kernel's sizes above ``above`` and its ``large_sizes`` that fit ``MEMORY_SHARE`` of the GPU's
    ``memory`` and of the host's (every dtype asked for); [] without a GPU."""
    memory = gpu_memory() if memory is None else memory
    if not memory:
        return []
    budget = MEMORY_SHARE * min(memory, host_memory() or memory)
    cands = sorted({int(n) for n in (*kernel.sizes, *kernel.large_sizes) if int(n) > above})
    return [n for n in cands if all(point_bytes(kernel, n, d) <= budget for d in dtypes)]


def on_gpu(impl: Impl) -> bool:
    return impl.device.startswith("cuda")
