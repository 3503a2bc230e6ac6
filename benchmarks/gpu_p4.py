"""P4 on the GPU: futhark-lab's median for sum_squares_f64 (input resident on the device, call + sync) against the
same program's own executable (`futhark cuda` without --library, run with `-r N -t FILE`: it times entry point +
futhark_context_sync in C, after a warm-up run, as `futhark bench` runs it).  Target: within 5% at 10⁶–10⁸.

The GPU machine has no futhark, so the executable's C is generated here first:

    python benchmarks/gpu_p4.py --generate gen-exe            # here (futhark present): writes gen-exe/
    python benchmarks/gpu_p4.py --exe gen-exe [--sizes 1e6,1e7,1e8] [--runs 200]   # there (FUTHARK_LAB_GENERATED set)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROGRAM = ROOT / "kernels" / "sum_squares.fut"
ENTRY = "sum_squares_f64"


def generate(dest: Path) -> None:
    from futhark_lab.compiler import find_futhark

    fut = find_futhark()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROGRAM, dest / "prog.fut")
    # futhark writes prog.c, then runs the C compiler, which fails here without libcuda: the C is what we carry
    subprocess.run([fut.path, "cuda", "-o", "prog", "prog.fut"], cwd=dest, capture_output=True, text=True)
    if not (dest / "prog.c").exists():
        raise SystemExit("futhark cuda wrote no prog.c")
    (dest / "prog.fut").unlink()
    (dest / "generated.json").write_text(json.dumps({"futhark_version": list(fut.version),
                                                     "futhark_version_text": fut.version_text}))
    print(f"wrote {dest}/prog.c (futhark {fut.version_str} cuda executable source)")


def build_executable(src: Path, work: Path) -> Path:
    from futhark_lab.compiler import FutharkCompiler, c_compiler, c_flags

    meta = json.loads((src / "generated.json").read_text())
    fut = FutharkCompiler("(generated)", tuple(meta["futhark_version"]), meta["futhark_version_text"])
    shutil.copy(src / "prog.c", work / "prog.c")
    cflags, libs = c_flags("cuda", fut, work)  # the same flags (and CUDA 13 shim) as futhark-lab's libraries
    cflags = [f for f in cflags if f != "-fPIC"]
    cmd = [*c_compiler(), *cflags, "-o", str(work / "prog"), str(work / "prog.c"), *libs]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return work / "prog"


def write_futhark_binary(path: Path, x: np.ndarray) -> None:
    """futhark's binary data format: 'b', version 2, rank, type name (4 bytes), dims (int64), data (LE)."""
    with open(path, "wb") as f:
        f.write(b"b" + bytes([2, x.ndim]) + b" f64")
        f.write(np.asarray(x.shape, dtype="<i8").tobytes())
        f.write(np.ascontiguousarray(x, dtype="<f8").tobytes())


def run_executable(exe: Path, data: Path, runs: int, work: Path) -> np.ndarray:
    times = work / "times.txt"
    with open(data, "rb") as stdin:
        subprocess.run([str(exe), "-e", ENTRY, "-r", str(runs), "-t", str(times), "-b"], stdin=stdin,
                       stdout=subprocess.DEVNULL, check=True)
    return np.loadtxt(times, ndmin=1) * 1e-6  # microseconds -> seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generate", type=Path)
    ap.add_argument("--exe", type=Path, help="directory written by --generate")
    ap.add_argument("--sizes", default="1e6,1e7,1e8")
    ap.add_argument("--runs", type=int, default=200)
    a = ap.parse_args()
    if a.generate:
        generate(a.generate)
        return
    if not a.exe:
        ap.error("--generate DIR or --exe DIR")
    import futhark_lab
    from futhark_lab.timing import Policy, measure

    sizes = [int(float(s)) for s in a.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="p4-"))
    exe = build_executable(a.exe, work)
    policy = Policy(max_time_s=3, min_time_s=0.5, max_noise=0.005)
    rows = []
    with futhark_lab.compile(PROGRAM, backend="cuda") as m:
        fn = m[ENTRY]
        for n in sizes:
            x = np.random.default_rng(n).random(n)
            data = work / f"x{n}.bin"
            write_futhark_binary(data, x)
            xd = m.array(x)
            assert abs(float(fn(xd)) - float(np.sum(x * x))) <= 1e-9 * float(np.sum(x * x))
            lab1 = measure(lambda: fn(xd), policy=policy).stats.median
            exe_t = run_executable(exe, data, a.runs, work)
            lab2 = measure(lambda: fn(xd), policy=policy).stats.median
            exe2 = run_executable(exe, data, a.runs, work)
            rows.append((n, float(np.median(np.concatenate([exe_t, exe2]))), lab1, lab2))
            xd.free()
    print(f"sum_squares_f64 on cuda ({m.build.futhark.version_str} output), resident input; executable: "
          f"`{exe.name} -e {ENTRY} -r {a.runs} -t` (entry + sync timed in C, 2 runs of it interleaved with 2 of "
          "futhark-lab's)")
    print(f"{'n':>11} {'executable':>12} {'futhark-lab':>12} {'(again)':>10} {'ratio':>7}  within 5%?")
    ok = True
    for n, ex, l1, l2 in rows:
        r = (l1 + l2) / 2 / ex
        ok &= abs(r - 1) <= 0.05
        print(f"{n:>11,} {ex * 1e6:>9.1f} us {l1 * 1e6:>9.1f} us {l2 * 1e6:>7.1f} us {r:>7.3f}  "
              f"{'yes' if abs(r - 1) <= 0.05 else 'NO'}")
    print(f"P4 on the GPU (within 5% at every size): {'MET' if ok else 'NOT MET'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
