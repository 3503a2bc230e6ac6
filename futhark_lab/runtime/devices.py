"""What a device is called: the host CPU's model, a CUDA device's name from the driver, the device a loaded
module runs on.  Labels for rows and diagnoses; looking one up never fails a run."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any


def futhark_device_name(module: Any) -> str:
    ctx = module.context
    if module.backend in ("c", "multicore", "ispc", "python"):
        return "host CPU"  # one name for every implementation on the host, so they share its ceilings
    if hasattr(ctx, "device_name"):
        return f"{ctx.platform_name()}: {ctx.device_name()}".strip(": ")
    if module.backend in ("c", "multicore", "ispc"):
        return "host CPU"
    try:
        if module.backend == "cuda":
            return cuda_device_name()
        if module.backend == "opencl":
            from .opencl_info import describe
            return describe(module.options.platform)
    except Exception:  # noqa: BLE001 - a name is a label, never a reason to fail a sweep
        pass
    return module.options.device or f"{module.backend} default device"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cuda_device_name(device: int = 0) -> str:
    """The device's name from the driver API (no PyTorch needed)."""
    from .cudadrv import device_names
    return device_names()[device]
