"""P4 on the GPU: futhark-lab's median for sum_squares_f64 (input resident on the device, call + sync) against the
same program's own timing as `futhark bench` takes it: the program built with `--server`, driven as futhark bench
drives it (benchmarks/futhark_server_ref.py: inputs restored once, a warm-up call, then `call`s whose `runtime:` the
server measures in C around entry point + futhark_context_sync).  Target: within 5% at 10⁶–10⁸.

Both sides run with the same runtime configuration, once with plain device memory (futhark-lab's default,
`--unified-memory 0` for the server) and once with the runtime's default (managed memory where the GPU supports it,
which futhark bench uses); rounds alternate between futhark-lab and the server in one process.  The older
`prog -r N -t` loop is shown beside them for reference: it re-copies the input from the host before every run.

The GPU machine has no futhark, so the C of both executables is generated here first:

    python benchmarks/gpu_p4.py --generate gen-exe            # here (futhark present): writes gen-exe/
    python benchmarks/gpu_p4.py --exe gen-exe [--sizes 1e6,1e7,1e8]   # there (FUTHARK_LAB_GENERATED set)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PROGRAM = ROOT / "kernels" / "sum_squares.fut"
ENTRY = "sum_squares_f64"
BACKEND = os.environ.get("P4_BACKEND", "cuda")   # c: try the script where there is no GPU


def generate(dest: Path) -> None:
    from futhark_lab.builder.toolchain import find_futhark

    fut = find_futhark()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROGRAM, dest / "prog.fut")
    # futhark writes the C, then runs the C compiler, which fails here without libcuda: the C is what we carry
    for name, extra in (("prog", []), ("server", ["--server"])):
        subprocess.run([fut.path, BACKEND, *extra, "-o", name, "prog.fut"], cwd=dest, capture_output=True, text=True)
        if not (dest / f"{name}.c").exists():
            raise SystemExit(f"futhark cuda {' '.join(extra)} wrote no {name}.c")
    (dest / "prog.fut").unlink()
    (dest / "generated.json").write_text(json.dumps({"futhark_version": list(fut.version),
                                                     "futhark_version_text": fut.version_text}))
    print(f"wrote {dest}/prog.c and server.c (futhark {fut.version_str} {BACKEND} executables' source)")


def build_executable(src: Path, work: Path, name: str = "prog") -> Path:
    from futhark_server_ref import build_executable as build

    meta = json.loads((src / "generated.json").read_text())
    shutil.copy(src / f"{name}.c", work / f"{name}.c")
    return build(work / f"{name}.c", work / name, BACKEND, meta["futhark_version"], meta["futhark_version_text"])


def run_executable(exe: Path, data: Path, runs: int, work: Path) -> np.ndarray:
    """The CLI loop: `prog -r N -t FILE`, whose runs each follow a fresh host->device copy of the input."""
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
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (futhark-lab, server) per size")
    ap.add_argument("--time", type=float, default=1.0, help="seconds of runs per measurement, each side")
    a = ap.parse_args()
    if a.generate:
        generate(a.generate)
        return
    if not a.exe:
        ap.error("--generate DIR or --exe DIR")
    import futhark_data

    import futhark_lab
    from futhark_lab.bench.case import idle as precise_idle
    from futhark_lab.measure.timing import Policy, measure
    from futhark_server_ref import server_runtimes

    sizes = [int(float(s)) for s in a.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="p4-"))
    exe = build_executable(a.exe, work)
    server = build_executable(a.exe, work, "server")
    policy = Policy(max_time_s=a.time, min_time_s=a.time, max_noise=0.0, max_samples=10**6)
    configs = {"device memory": (False, ("--unified-memory", "0")), "runtime default": (True, ())}
    if BACKEND != "cuda":                 # trying the script on a machine without a GPU: no memory kinds
        configs = {"host memory": (False, ())}
    mods = {c: futhark_lab.compile(PROGRAM, backend=BACKEND, **({"unified_memory": um} if BACKEND == "cuda" else {}))
            for c, (um, _) in configs.items()}
    rows = []
    gap_us: list[float] = []
    t0 = time.time()
    for n in sizes:
        x = np.random.default_rng(n).random(n)
        data = work / f"x{n}.bin"
        with open(data, "wb") as f:
            futhark_data.dump(x, f, binary=True)
        for c, (um, opts) in configs.items():
            m = mods[c]
            fn = m[ENTRY]
            xd = m.array(x)
            assert abs(float(fn(xd)) - float(np.sum(x * x))) <= 1e-9 * float(np.sum(x * x))
            lab, host, srv, gapped = [], [], [], []
            for _ in range(a.rounds):
                got = measure(lambda: fn(xd), policy=policy, runtime=fn.last_runtime_s)
                lab.append(got.stats.median)
                host.append(float(np.median(got.host_samples_s)))
                gaps: list[float] = []
                srv.append(float(np.median(server_runtimes(server, ENTRY, data, min_time_s=a.time, options=opts,
                                                           gaps=gaps))))
                gap = float(np.median(gaps))     # the server idles this long between runs; futhark-lab likewise:
                gapped.append(measure(lambda: fn(xd), policy=policy, runtime=fn.last_runtime_s,
                                      setup=lambda: precise_idle(gap)).stats.median)
                gap_us.append(gap * 1e6)
            xd.free()
            rows.append((n, c, lab, host, srv, gapped))
        cli = float(np.median(run_executable(exe, data, 100, work)))
        rows.append((n, "prog -r 100 -t", [], [], [cli], []))
    for m in mods.values():
        m.close()
    print(f"sum_squares_f64 on {BACKEND} ({next(iter(mods.values())).build.futhark.version_str} output), input resident on the "
          f"device; futhark-lab's median against futhark's server run as futhark bench runs it; {a.rounds} alternating "
          f"rounds of {a.time:g} s each side per size and memory kind; medians of the rounds' medians "
          f"({time.time() - t0:.0f} s)")
    print("futhark-lab = entry + sync timed inside the call (bench's samples, the quantity futhark's server times), "
          "calls back to back; host clock = the same calls timed from Python (a sweep's samples); same idle = "
          "futhark-lab with the idle time futhark bench leaves between runs (its pipe round trips to the server, "
          f"median {np.median(gap_us):.0f} µs, range {min(gap_us):.0f}-{max(gap_us):.0f}) waited before each call (slept, then spun to the deadline: futhark_lab.bench.case.idle)")
    print(f"{'n':>11}  {'memory':<16} {'futhark bench':>13} {'futhark-lab':>12} {'ratio':>7}  within 5%?  "
          f"{'host clock':>10} {'ratio':>6}  {'same idle':>10} {'ratio':>6}  rounds (server | futhark-lab, µs)")
    ok = host_ok = idle_ok = True
    for n, c, lab, host, srv, gapped in rows:
        ref = float(np.median(srv))
        if not lab:
            print(f"{n:>11,}  {'(' + c + ')':<16} {ref * 1e6:>10.1f} us  {'':>12} {'':>7}  (the CLI loop: each run "
                  "after a fresh host->device copy of the input; not futhark bench's method)")
            continue
        mine, wall, idle = float(np.median(lab)), float(np.median(host)), float(np.median(gapped))
        r, rh, ri = mine / ref, wall / ref, idle / ref
        ok &= abs(r - 1) <= 0.05
        host_ok &= abs(rh - 1) <= 0.05
        idle_ok &= abs(ri - 1) <= 0.05
        detail = " ".join(f"{v * 1e6:.1f}" for v in srv) + " | " + " ".join(f"{v * 1e6:.1f}" for v in lab)
        print(f"{n:>11,}  {c:<16} {ref * 1e6:>10.1f} us {mine * 1e6:>9.1f} us {r:>7.3f}  "
              f"{'yes' if abs(r - 1) <= 0.05 else 'NO':<10} {wall * 1e6:>8.1f} us {rh:>6.3f}  "
              f"{idle * 1e6:>7.1f} us {ri:>6.3f}  {detail}")
    print("futhark bench against itself (its rounds' medians vs their median, largest deviation): " + "; ".join(
        f"{n:,} {c}: {max(abs(v / np.median(srv) - 1) for v in srv):.0%}" for n, c, lab, _, srv, _ in rows if lab))
    print(f"P4 on the GPU, futhark-lab under futhark bench's conditions (its idle time between runs), within 5% at "
          f"every size and memory kind: {'MET' if idle_ok else 'NOT MET'}; back to back: "
          f"{'within 5%' if ok else 'not within 5% everywhere'}; timed from Python as sweeps do: "
          f"{'within 5%' if host_ok else 'not within 5% everywhere'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
