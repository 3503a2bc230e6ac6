"""Per-call overhead of an entry point on a 1-element array, measured side by side in one run:
futhark-lab's c binding (NumPy input, and a device-resident input), the compiler's generated pyopencl module, and
futhark-ffi (where it installs).  Target: <= 10 us per call and no slower than futhark-ffi.

    python benchmarks/binding_overhead.py
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import futhark_lab  # noqa: E402
from futhark_lab.compiler import find_futhark  # noqa: E402

SRC = "entry first (xs: []f64): f64 = xs[0]\n"
N = 20000


def per_call_us(fn, n: int = N, repeats: int = 7) -> float:
    """Best-of-repeats mean over n back-to-back calls (each call synchronises inside the binding)."""
    for _ in range(n // 10):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def futhark_ffi_call(workdir: Path):
    """Build the same program with futhark-ffi (cffi API mode) and return a zero-argument call, or a reason."""
    try:
        from futhark_ffi import Futhark
    except ImportError:
        return None, "futhark-ffi not installed (pip install futhark-ffi)"
    fut = find_futhark()
    (workdir / "ovh.fut").write_text(SRC)
    subprocess.run([fut.path, "c", "--library", "ovh.fut"], cwd=workdir, check=True, capture_output=True)
    r = subprocess.run([sys.executable, "-c", "import sys; from futhark_ffi.build import main; "
                        "sys.argv = ['build_futhark_ffi', 'ovh']; main()"],
                       cwd=workdir, capture_output=True, text=True)
    if r.returncode != 0:
        return None, f"futhark-ffi build failed: {r.stderr.strip()[-300:]}"
    sys.path.insert(0, str(workdir))
    mod = importlib.import_module("_ovh")
    f = Futhark(mod)
    x = np.ones(1)
    return (lambda: f.first(x)), ""


def main() -> None:
    fut = find_futhark()
    print(f"futhark {fut.version_str}; {N} calls per repeat, best of 7; each call on a 1-element f64 array\n")
    rows = []
    with futhark_lab.compile(SRC, backend="c") as m:
        x = np.ones(1)
        xd = m.array(x)
        assert m.first(x) == 1.0
        print(f"futhark-lab binding mode: {m.library.mode} (api: a cffi extension built per program; abi: libffi)\n")
        rows.append(("futhark-lab c, NumPy input (checks + new + call + free)", per_call_us(lambda: m.first(x))))
        rows.append(("futhark-lab c, device-resident input (call)", per_call_us(lambda: m.first(xd))))
    try:
        import pyopencl  # noqa: F401
        with futhark_lab.compile(SRC, backend="pyopencl") as p:
            assert p.first(x) == 1.0
            rows.append((f"generated pyopencl module via futhark-lab ({p.context.platform_name()})",
                         per_call_us(lambda: p.first(x), n=2000)))
            raw = p.context.instance
            rows.append(("generated pyopencl module called directly", per_call_us(lambda: raw.first(x), n=2000)))
    except Exception as exc:  # noqa: BLE001
        print(f"(pyopencl skipped: {exc})")
    work = Path(tempfile.mkdtemp(prefix="ovh-"))
    try:
        call, why = futhark_ffi_call(work)
        if call is not None:
            assert call() == 1.0
            rows.append(("futhark-ffi (cffi API mode), NumPy input", per_call_us(call)))
        else:
            print(f"(futhark-ffi skipped: {why})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    for name, us in rows:
        print(f"{name:<{width}}  {us:8.2f} us/call")
    ours = rows[0][1]
    ffi = next((us for name, us in rows if name.startswith("futhark-ffi")), None)
    print(f"\ntarget <= 10 us/call: {'MET' if ours <= 10 else 'MISSED'} ({ours:.2f} us)")
    if ffi is not None:
        print(f"futhark-lab / futhark-ffi = {ours / ffi:.2f}x  "
              f"({'no slower' if ours <= ffi * 1.0 else 'SLOWER'} than futhark-ffi)")
        print("note: per call futhark-lab also checks the input's dtype/rank, synchronises the context before the "
              "result is read, and frees the temporary input at once; futhark-ffi does none of these (its scalar "
              "results are read before a sync, which is unsafe on GPU backends)")


if __name__ == "__main__":
    main()
