"""Is the workbench's device span the kernels' time?  Checked against Nsight Compute, independently of CUDA events.

For each implementation of the suite's sum of squares (f32, --size elements, default 1e8 = 400 MB):

1. the workbench's device span (``measure.devicetime.device_times`` with the implementation's own event timer, behind
   the lead kernel), median of up to 200 samples, in this process;
2. the same call under ``ncu --metrics gpu__time_duration.sum --cache-control none --clock-control none`` in a
   child process: every kernel's duration as the profiler measures it.  The child makes three warm calls, launches
   the lead kernel once with a zero duration as a marker, then makes --calls calls each followed by its
   synchronisation; the kernels after the marker, summed and divided by --calls, are the kernels' time per call.

Printed per implementation: both figures and their ratio (span / kernels).  Above 1: the span also holds gaps
between a call's kernels (launches the lead does not cover, allocations); below 1 is impossible for a span that
holds the kernels.

    python benchmarks/ncu_device_time.py [--size 1e8] [--impls futhark-cuda,triton,...]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from futhark_lab import suite  # noqa: E402
from futhark_lab import sweep as sw  # noqa: E402

KERNEL = suite.get("sum_squares")
IMPLS = {"futhark-cuda": lambda: sw.futhark("cuda"), "torch-cuda": lambda: sw.torch("cuda", "sum"),
         "torch-compile": lambda: sw.torch_compile("cuda", "sum"), "triton": lambda: sw.triton(),
         "cupy": lambda: sw.cupy(), "numba-cuda": lambda: sw.numba("cuda"), "pycuda": lambda: sw.pycuda()}
MARKER = "futhark_lab_spin"


def _prepared(name: str, n: int):
    import torch
    torch.cuda.init()      # a current context on this thread for the marker (the primary one, which all but
    torch.zeros(1, device="cuda")          # futhark share)
    from futhark_lab.sweep.impls import prepare
    from futhark_lab.sweep.modules import _ModuleCache
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    p = prepare(IMPLS[name](), KERNEL, "f32", (x,), _ModuleCache())
    p.call()
    return p


def _sync(p):
    from futhark_lab.measure.sync import entry_synchronised
    return entry_synchronised if p.call_syncs or p.sync is None else p.sync


def profile_child(name: str, n: int, calls: int) -> None:
    """Run under ncu: warm calls, the marker, then ``calls`` synchronised calls."""
    from futhark_lab.runtime import cudadrv
    p = _prepared(name, n)
    sync = _sync(p)
    for _ in range(3):
        p.call()
        sync()
    cudadrv.spin(0.0)
    cudadrv._lib().cuCtxSynchronize()
    for _ in range(calls):
        p.call()
        sync()


def kernels_per_call(log: str, calls: int) -> tuple[float, int, list[str]]:
    rows = list(csv.DictReader(io.StringIO(log[log.index('"ID"'):])))
    rows = [r for r in rows if r.get("Metric Name") == "gpu__time_duration.sum"]
    last = max(i for i, r in enumerate(rows) if MARKER in r["Kernel Name"])
    after = rows[last + 1:]
    scale = {"nsecond": 1e-9, "ns": 1e-9, "usecond": 1e-6, "us": 1e-6, "msecond": 1e-3, "ms": 1e-3, "second": 1.0,
             "s": 1.0}
    total = sum(float(r["Metric Value"].replace(",", "")) * scale[r["Metric Unit"]] for r in after)
    names = sorted({r["Kernel Name"][:60] for r in after})
    return total / calls, len(after) // calls, names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=float, default=1e8)
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--ncu", default=shutil.which("ncu") or "/usr/local/cuda/bin/ncu")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    n = int(a.size)
    if a.child:
        profile_child(a.child, n, a.calls)
        return 0
    from futhark_lab.errors import PeerUnavailable
    from futhark_lab.measure.devicetime import device_times
    print(f"ncu_device_time: sum of squares, f32, n = {n:,}; the workbench's device span (median) against the "
          f"kernels' time per call under {a.ncu} (gpu__time_duration.sum, --cache-control none --clock-control none)")
    for name in a.impls.split(","):
        try:
            p = _prepared(name, n)
        except PeerUnavailable as exc:
            print(f"{name:14} skipped: {exc}")
            continue
        if p.device_timer is None:
            print(f"{name:14} has no device timer")
            continue
        span = device_times(p.launch or p.call, p.device_timer, max_time_s=2.0).median   # as sweep.point does
        lead = getattr(getattr(p.device_timer, "lead", None), "off", "") or "on"
        cmd = [a.ncu, "--csv", "--metrics", "gpu__time_duration.sum", "--cache-control", "none", "--clock-control",
               "none", "--target-processes", "all", sys.executable, __file__, "--child", name, "--size", str(n),
               "--calls", str(a.calls)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=os.environ)
        try:
            per_call, k, names = kernels_per_call(out.stdout, a.calls)
        except (ValueError, KeyError) as exc:
            print(f"{name:14} span {span * 1e6:9.2f} us; ncu output not understood ({exc}): "
                  f"{(out.stdout + out.stderr)[-800:]}")
            continue
        print(f"{name:14} span {span * 1e6:9.2f} us  kernels {per_call * 1e6:9.2f} us ({k} per call)  "
              f"span/kernels {span / per_call:6.3f}  lead: {lead}  kernels: {'; '.join(names)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
