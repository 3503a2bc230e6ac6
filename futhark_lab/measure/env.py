"""The environment record written once per run: what produced these numbers."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path

from ..runtime.devices import cpu_model


def _run(cmd: list[str], cwd: str | None = None) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=cwd).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def opencl_platforms() -> list[dict]:
    try:
        import pyopencl as cl
        return [{"platform": p.name.strip(), "version": p.version.strip(),
                 "devices": [d.name.strip() for d in p.get_devices()]} for p in cl.get_platforms()]
    except Exception as exc:  # noqa: BLE001
        return [{"error": f"{type(exc).__name__}: {exc}"}]


def gpu_info() -> dict:
    info: dict = {}
    smi = shutil.which("nvidia-smi")
    if smi:
        out = _run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
        if out:
            info["nvidia_smi"] = out.splitlines()
        head = _run([smi])
        for line in head.splitlines():
            if "CUDA Version" in line:
                info["driver_cuda_version"] = line.split("CUDA Version:")[1].split()[0]
    try:
        import torch
        if torch.cuda.is_available():
            info["torch_cuda"] = torch.version.cuda
            info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001
        pass
    return info


def library_versions() -> dict:
    out = {}
    for pkg in ("numpy", "pandas", "scipy", "torch", "cupy", "cupy-cuda12x", "cupy-cuda13x", "pyopencl", "cffi",
                "matplotlib", "futhark-lab"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def git_commit(path: str | os.PathLike = ".") -> dict:
    head = _run(["git", "rev-parse", "HEAD"], cwd=str(path))
    dirty = _run(["git", "status", "--porcelain", "--", "kernels", "futhark_lab/suite"], cwd=str(path))
    return {"commit": head or None, "kernels_dirty": bool(dirty)}


def environment() -> dict:
    from ..builder.toolchain import find_futhark
    from ..errors import FutharkNotFound

    try:
        fut = find_futhark()
        futhark = {"path": fut.path, "version": fut.version_str, "text": fut.version_text}
    except FutharkNotFound as exc:
        futhark = {"error": str(exc).split(". ")[0]}
        gen = os.environ.get("FUTHARK_LAB_GENERATED")
        if gen:
            import json
            versions = sorted({json.loads(p.read_text())["futhark_version_text"]
                               for p in Path(gen).glob("*/generated.json")})
            futhark.update({"generated_elsewhere": gen, "version": ", ".join(v.split()[-1] for v in versions)})
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": {"model": cpu_model(), "logical_cores": os.cpu_count(),
                "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None},
        "futhark": futhark,
        "c_compiler": _run([os.environ.get("CC", "cc"), "--version"]).split("\n")[0],
        "gpu": gpu_info(),
        "opencl": opencl_platforms(),
        "libraries": library_versions(),
        "git": git_commit(Path(__file__).resolve().parents[2]),
    }
