"""Create a first GPU context in a child process.

Futhark's GPU runtimes call exit() on fatal driver errors (CUDA error 222, no device), which would kill the Python
interpreter or Jupyter kernel.  A child process takes that risk instead; its verdict is cached per backend,
device and platform for the life of the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from ..builder.cache import Build
from ..errors import BackendUnavailable
from .diagnose import explain
from .poisoned import FIX as POISON_FIX
from .poisoned import poisoned_reason

_verdicts: dict[tuple, dict] = {}
_lock = threading.Lock()
PROBE_TIMEOUT_S = 300


def probe_key(backend: str, options) -> tuple:
    return (backend, options.device, options.platform, os.environ.get("OCL_ICD_VENDORS"),
            os.environ.get("CUDA_VISIBLE_DEVICES"))


def probe_context(build: Build, options) -> dict:
    """Raise BackendUnavailable (with cause and fix) unless a context can be created; return the child's report."""
    why = poisoned_reason(build.backend)
    if why is not None:
        raise BackendUnavailable(build.backend, f"{why} left the GPU unusable in this process", POISON_FIX)
    key = probe_key(build.backend, options)
    with _lock:
        verdict = _verdicts.get(key)
        if verdict is None:
            verdict = run_probe(build, options)
            _verdicts[key] = verdict
    if not verdict["ok"]:
        cause, fix = explain(verdict["output"])
        raise BackendUnavailable(build.backend, cause + f"\n  runtime said: {verdict['output'].strip()[-600:]}", fix)
    return verdict


def run_probe(build: Build, options) -> dict:
    args = [sys.executable, "-m", "futhark_lab.runtime.probe", str(build.directory), build.module_name, build.backend,
            options.as_json()]
    env = dict(os.environ)
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "output": f"context creation did not finish in {PROBE_TIMEOUT_S} s"}
    text = (out.stdout or "") + (out.stderr or "")
    for line in reversed((out.stdout or "").splitlines()):
        if line.startswith("{") and '"probe"' in line:
            report = json.loads(line)
            report["output"] = report.get("error") or text
            return report
    return {"ok": False, "output": text.strip() or f"probe exited with status {out.returncode} and no output",
            "returncode": out.returncode}


def _child(directory: str, module_name: str, backend: str, options_json: str) -> None:
    from ..builder.cache import load_build

    opts = json.loads(options_json)
    report = {"probe": True, "backend": backend, "ok": False}
    try:
        build = load_build(directory, module_name)
        if backend in ("python", "pyopencl"):
            from .pyloader import PyContext
            PyContext.create(build, opts)
        else:
            from .context import Context, ContextOptions
            from .library import load_library
            ctx = Context(load_library(build), ContextOptions(**opts, probe=False))
            ctx.sync()
            ctx.close()
        report["ok"] = True
    except BaseException as exc:  # noqa: BLE001 - the verdict is the point
        report["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    _child(*sys.argv[1:5])
