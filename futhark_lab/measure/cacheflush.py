"""Cold samples: a buffer the size of the last-level cache (read from sysfs) written before each sample.
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------- cache flushing

class CacheFlusher:
    """Evict caches between cold samples: write a buffer twice the cache size (nvbench's l2flush)."""

    def __init__(self, device: str = "cpu", nbytes: int | None = None):
        self.device = device
        if device.startswith("cuda"):
            import torch
            props = torch.cuda.get_device_properties(torch.cuda.current_device())
            l2 = getattr(props, "L2_cache_size", 0) or 50 * 2**20
            self.buf = torch.empty(int(nbytes or 2 * l2), dtype=torch.uint8, device="cuda")

            def flush() -> None:
                self.buf.zero_()
                # wait for it: the measured work may run on another stream or context (futhark's), which would
                # otherwise overlap the flush and be charged for it
                torch.cuda.synchronize()
            self._flush = flush
        else:
            self.buf = np.empty(int(nbytes or 2 * _llc_bytes()), dtype=np.uint8)
            self._flush = lambda: self.buf.fill(1)

    def __call__(self) -> None:
        self._flush()


def sysfs_caches() -> list[tuple[int, str, int]]:
    """cpu0's caches from sysfs as (level, type, bytes); empty where sysfs says nothing."""
    import glob

    out = []
    for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            text = open(f"{d}/size").read().strip()
            size = int(text.rstrip("KMG")) * {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1], 1)
            out.append((int(open(f"{d}/level").read()), open(f"{d}/type").read().strip(), size))
        except (OSError, ValueError):
            continue
    return out


def _llc_bytes() -> int:
    """Last-level cache size from sysfs (default 32 MiB)."""
    return max((size for _, _, size in sysfs_caches()), default=0) or 32 * 2**20
