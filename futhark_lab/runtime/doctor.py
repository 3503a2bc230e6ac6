"""``futhark-lab doctor``: which backends work here, and for each one that does not, why and how to fix it.

For every backend: the compiler and its version, the C toolchain, runtime libraries, devices and platforms, and a
tiny program compiled and run in a child process (GPU runtimes may exit() the process on driver failures).
``best_backend`` turns the diagnosis into ``backend="auto"``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..builder.toolchain import (
    ALL_BACKENDS,
    _cuda_home,
    _nvrtc_include_dirs,
    find_futhark,
)
from ..errors import FutharkNotFound
from .diagnose import explain

TINY = "entry main (xs: []f64): f64 = f64.sum (map (\\x -> x * x) xs)\n"
#: Preference for backend="auto": GPUs first, then parallel CPU, then the rest.
PREFERENCE = ("cuda", "hip", "opencl", "multicore", "ispc", "c", "pyopencl", "python")


@dataclasses.dataclass
class BackendStatus:
    backend: str
    works: bool
    device: str = ""
    cause: str = ""
    fix: str = ""
    checks: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    @property
    def on_gpu(self) -> bool:
        d = self.device.lower()
        return self.works and self.backend in ("cuda", "hip", "opencl", "pyopencl") and "cpu" not in d and \
            "pthread" not in d and "portable computing" not in d


def _loadable(name: str) -> tuple[bool, str]:
    for cand in filter(None, [ctypes.util.find_library(name), f"lib{name}.so.1", f"lib{name}.so"]):
        try:
            ctypes.CDLL(cand)
            return True, cand
        except OSError as exc:
            last = str(exc)
    return False, locals().get("last", f"lib{name} not found")


def static_checks(backend: str) -> tuple[dict, str, str]:
    """Checks that need no compilation: (checks, cause, fix); cause empty if nothing is missing."""
    checks: dict = {}
    if backend in ("c", "multicore", "opencl", "cuda", "hip", "ispc"):
        cc = os.environ.get("CC", "cc").split()[0]
        checks["c_compiler"] = shutil.which(cc) or "missing"
        if checks["c_compiler"] == "missing":
            return checks, f"no C compiler ({cc})", "apt-get install gcc (or set $CC)"
    if backend in ("opencl", "pyopencl"):
        ok, where = _loadable("OpenCL")
        checks["libOpenCL"] = where
        if not ok:
            return checks, "the OpenCL ICD loader (libOpenCL.so) is missing", \
                "apt-get install ocl-icd-libopencl1 ocl-icd-opencl-dev (see environment.md#missing-icd)"
        from .opencl_info import platforms
        plats = platforms()
        checks["platforms"] = [f"#{p.index} {p.name}: " + ", ".join(f"{d.name} ({d.type})" for d in p.devices)
                               for p in plats]
        if not plats:
            vendors = os.environ.get("OCL_ICD_VENDORS", "/etc/OpenCL/vendors")
            return checks, f"the OpenCL loader finds no platform (no ICD file in {vendors})", \
                "apt-get install pocl-opencl-icd for CPUs; for NVIDIA, an ICD file naming libnvidia-opencl.so.1 " \
                "(see environment.md#missing-icd)"
        if backend == "opencl" and not Path("/usr/include/CL/cl.h").exists() and \
                not any(Path(d, "CL/cl.h").exists() for d in os.environ.get("CPATH", "").split(":") if d):
            return checks, "OpenCL headers (CL/cl.h) are missing", "apt-get install opencl-headers"
    if backend == "pyopencl":
        try:
            import pyopencl  # noqa: F401
            checks["pyopencl"] = pyopencl.VERSION_TEXT
        except ImportError:
            return checks, "the pyopencl Python package is not installed", "pip install pyopencl"
    if backend == "cuda":
        home = _cuda_home()
        checks["cuda.h"] = str(home / "include" / "cuda.h") if home else "missing"
        checks["nvrtc.h"] = (_nvrtc_include_dirs() or ["missing"])[0]
        ok, where = _loadable("cuda")
        checks["libcuda"] = where
        if not ok:
            return checks, "the NVIDIA driver library libcuda.so is missing (no NVIDIA driver on this machine)", \
                "run on a machine with an NVIDIA GPU and driver (see environment.md#no-driver)"
        ok, where = _loadable("nvrtc")
        checks["libnvrtc"] = where
        if not ok:
            return checks, "NVRTC (libnvrtc.so) is missing", \
                "install the CUDA toolkit's NVRTC matching the driver (see environment.md#nvrtc)"
        if not home:
            return checks, "CUDA headers (cuda.h) are missing", "install the CUDA toolkit or set $CUDA_HOME"
    if backend == "hip":
        ok, where = _loadable("amdhip64")
        checks["libamdhip64"] = where
        if not ok:
            return checks, "the ROCm runtime (libamdhip64.so) is missing", "install ROCm (AMD GPUs only)"
    if backend == "ispc":
        checks["ispc"] = shutil.which("ispc") or "missing"
        if checks["ispc"] == "missing":
            return checks, "the ispc compiler is not on PATH", "install ispc from https://ispc.github.io"
    return checks, "", ""


def check_backend(backend: str, timeout: float = 600) -> BackendStatus:
    import time

    t0 = time.perf_counter()
    checks, cause, fix = static_checks(backend)
    try:
        checks["futhark"] = find_futhark().version_str
    except FutharkNotFound as exc:
        checks["futhark"] = "absent"
        if not cause and not os.environ.get("FUTHARK_LAB_GENERATED"):  # else: code generated elsewhere may do
            cause, fix = "the futhark compiler is not installed", str(exc)
    if cause:
        return BackendStatus(backend, False, cause=cause, fix=fix, checks=checks, seconds=time.perf_counter() - t0)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    try:
        out = subprocess.run([sys.executable, "-m", "futhark_lab.runtime.doctor", "--child", backend], capture_output=True,
                             text=True, timeout=timeout, env=env)
        text = out.stdout + out.stderr
    except subprocess.TimeoutExpired:
        text, out = f"the test program did not finish in {timeout:.0f} s", None
    report = None
    for line in reversed(text.splitlines()):
        if line.startswith("{") and '"doctor"' in line:
            report = json.loads(line)
            break
    secs = time.perf_counter() - t0
    if report and report.get("ok"):
        return BackendStatus(backend, True, device=report.get("device", ""), checks=checks, seconds=secs)
    detail = (report or {}).get("error") or text or f"child exited with status {getattr(out, 'returncode', '?')}"
    cause, fix = explain(detail)
    checks["output"] = detail.strip()[-1500:]
    return BackendStatus(backend, False, cause=cause, fix=fix, checks=checks, seconds=secs)


def _child(backend: str) -> None:
    """Compile and run the tiny program; print one JSON line (the parent survives whatever happens here)."""
    import numpy as np

    report = {"doctor": True, "backend": backend, "ok": False}
    try:
        from .loader import compile as fcompile
        with fcompile(TINY, backend=backend, probe=False) as m:
            got = float(m.main(np.array([1.0, 2.0, 3.0])))
            report["ok"] = got == 14.0
            if not report["ok"]:
                report["error"] = f"wrong answer: {got} instead of 14.0"
            ctx = m.context
            if hasattr(ctx, "device_name"):
                report["device"] = ": ".join(p for p in (ctx.platform_name(), ctx.device_name()) if p)
            elif backend in ("c", "multicore", "ispc"):
                from .devices import cpu_model
                report["device"] = cpu_model()
            elif backend == "opencl":
                from .opencl_info import describe
                report["device"] = describe(m.options.platform)
            elif backend == "cuda":
                from .devices import cuda_device_name
                report["device"] = cuda_device_name()
    except BaseException as exc:  # noqa: BLE001
        report["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(report), flush=True)


def doctor(backends: list[str] | None = None, *, as_frame: bool = True, verbose: bool = False):
    """Diagnose every backend (or those given); a DataFrame (or list of BackendStatus) of what works and why not."""
    statuses = [check_backend(b) for b in (backends or ALL_BACKENDS)]
    if verbose:
        print(format_table(statuses))
    if not as_frame:
        return statuses
    import pandas as pd
    return pd.DataFrame([{"backend": s.backend, "works": s.works, "on_gpu": s.on_gpu, "device": s.device,
                          "cause": s.cause, "fix": s.fix, "seconds": round(s.seconds, 2)} for s in statuses])


def cpu_platform_note(s: BackendStatus) -> str:
    """For an OpenCL backend that works on the CPU (PoCL): what that means for its timings."""
    if s.works and s.backend in ("opencl", "pyopencl") and not s.on_gpu:
        return " (OpenCL on the CPU: typically 10-100x slower than the c and multicore backends; not a GPU)"
    return ""


def describe(s: BackendStatus) -> str:
    """One line, the same words everywhere (doctor, demo, run, setup): ok with its device, or FAILS with why."""
    if s.works:
        where = s.device or ("the host's CPU (interpreted Python)" if s.backend == "python" else "the host's CPU")
        return f"{s.backend:10} ok       {where}{cpu_platform_note(s)}"
    return f"{s.backend:10} FAILS    {s.cause}"


def format_table(statuses: list[BackendStatus]) -> str:
    """A plain-text table; a fix shared by several backends is printed once, as a numbered note."""
    lines = [f"{'backend':10} {'status':8} device / cause"]
    counts: dict[str, int] = {}
    for s in statuses:
        if not s.works:
            counts[s.fix] = counts.get(s.fix, 0) + 1
    notes = [fix for fix, n in counts.items() if n > 1]
    for s in statuses:
        if s.works:
            lines.append(describe(s))
            continue
        lines.append(f"{s.backend:10} {'FAILS':8} {s.cause}")
        if s.fix in notes:
            lines.append(f"{'':19}fix: see note [{notes.index(s.fix) + 1}]")
        elif s.fix:
            lines.append(f"{'':19}fix: {s.fix}")
    for i, fix in enumerate(notes, 1):
        lines.append(f"\n[{i}] {fix}")
    return "\n".join(lines)


_best: str | None = None


def best_backend(verbose: bool = False, statuses: list[BackendStatus] | None = None) -> str:
    """The preferred working backend (GPU first, never an OpenCL CPU platform ahead of multicore)."""
    global _best
    given = statuses is not None
    if not given and _best is not None:
        return _best
    statuses = statuses if given else [check_backend(b) for b in PREFERENCE]
    by = {s.backend: s for s in statuses}

    def rank(s: BackendStatus) -> tuple:
        gpu_first = 0 if s.on_gpu else 1
        gpu_backend_on_cpu = int(not s.on_gpu and s.backend in ("cuda", "hip", "opencl", "pyopencl"))
        return (gpu_first, gpu_backend_on_cpu, PREFERENCE.index(s.backend) if s.backend in PREFERENCE else 99)

    working = sorted((s for s in by.values() if s.works), key=rank)
    if not working:
        raise RuntimeError("no futhark backend works here:\n" + format_table(statuses))
    choice = working[0]
    if verbose:
        print(f"futhark-lab: backend='auto' chose {choice.backend} ({choice.device})", file=sys.stderr)
    if not given:  # only a diagnosis of this machine is worth remembering
        _best = choice.backend
    return choice.backend


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
