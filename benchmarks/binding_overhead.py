"""Per-call overhead of an entry point on a 1-element array, measured side by side in one run:
futhark-lab's c binding (NumPy input, and a device-resident input), the compiler's generated pyopencl module, and
futhark-ffi (where it installs).  Target: <= 10 us per call and no slower than futhark-ffi.

    python benchmarks/binding_overhead.py
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import futhark_lab  # noqa: E402
from futhark_lab.builder.toolchain import find_futhark  # noqa: E402

SRC = "entry first (xs: []f64): f64 = xs[0]\n"
N = 20000


def per_call_us(calls: dict, n: int = N, rounds: int = 9) -> dict:
    """Median over interleaved rounds of the mean time of n back-to-back calls, for each callable: every
    implementation is measured in every round, so drift in the machine's speed hits all of them alike."""
    for fn in calls.values():
        for _ in range(n // 10):
            fn()
    times: dict = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            t = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t) / n)
    return {name: float(np.median(ts)) * 1e6 for name, ts in times.items()}


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
    print(f"futhark {fut.version_str}; median of 9 interleaved rounds of {N} calls; each call on a 1-element f64 "
          "array\n")
    x = np.ones(1)
    work = Path(tempfile.mkdtemp(prefix="ovh-"))
    m = futhark_lab.compile(SRC, backend="c")
    if m.library.mode != "api":  # first build on a machine with few cores: its extension finishes in the background
        from futhark_lab.builder import fastcall
        fastcall.wait()
        m.close()
        m = futhark_lab.compile(SRC, backend="c")
    xd = m.array(x)
    assert m.first(x) == 1.0
    print(f"futhark-lab binding mode: {m.library.mode} (api: a cffi extension built per program; abi: libffi)\n")
    calls = {"futhark-lab c, NumPy input (checks + new + call + free)": lambda: m.first(x),
             "futhark-lab c, device-resident input (call)": lambda: m.first(xd)}
    try:
        call, why = futhark_ffi_call(work)
        if call is not None:
            assert call() == 1.0
            calls["futhark-ffi (cffi API mode), NumPy input"] = call
        else:
            print(f"(futhark-ffi skipped: {why})")
        rows = per_call_us(calls)
        try:
            import pyopencl  # noqa: F401
            with futhark_lab.compile(SRC, backend="pyopencl") as p:
                assert p.first(x) == 1.0
                raw = p.context.instance
                rows.update(per_call_us({
                    f"generated pyopencl module via futhark-lab ({p.context.platform_name()})": lambda: p.first(x),
                    "generated pyopencl module called directly": lambda: raw.first(x)}, n=1000, rounds=3))
        except Exception as exc:  # noqa: BLE001
            print(f"(pyopencl skipped: {exc})")
    finally:
        m.close()
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(r) for r in rows)
    for name, us in rows.items():
        print(f"{name:<{width}}  {us:8.2f} us/call")
    ours = rows["futhark-lab c, NumPy input (checks + new + call + free)"]
    ffi = next((us for name, us in rows.items() if name.startswith("futhark-ffi")), None)
    print(f"\ntarget <= 10 us/call: {'MET' if ours <= 10 else 'MISSED'} ({ours:.2f} us)")
    if ffi is not None:
        print(f"futhark-lab / futhark-ffi = {ours / ffi:.2f}x  "
              f"({'no slower' if ours <= ffi * 1.0 else 'SLOWER'} than futhark-ffi)")
        print("note: per call futhark-lab also checks the input's dtype/rank and frees the temporary input at once "
              "(and synchronises before reading results on the backends that need it); futhark-ffi does not")


if __name__ == "__main__":
    main()
