"""futhark-lab's `bench` against futhark's own timing on the same programs, datasets and backend: the ratio of
medians per dataset, MET when within 5%.

Here (futhark installed; CPU backends):

    python benchmarks/bench_agreement.py --backends c,multicore

  runs, per backend, real `futhark bench --json --backend=X`, then futhark-lab's bench, then futhark bench again
  (so drift of the machine's speed shows), and compares futhark-lab's median with the median of futhark bench's
  runs (the median of its two invocations' medians).

A GPU machine without futhark (CUDA): prepare here, carry the directory, run there:

    python benchmarks/bench_agreement.py --prepare-gpu gpu-agreement      # here: programs, data, generated code
    python benchmarks/bench_agreement.py --gpu gpu-agreement              # there (FUTHARK_LAB_GENERATED is set)

  There the reference is what futhark bench measures: the program built by `futhark cuda --server` (its C generated
  here, compiled there), driven by benchmarks/futhark_server_ref.py exactly as futhark bench drives it (inputs
  restored once, one warm-up call, then `call`s; the server times entry + sync in C, whole µs).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PROGRAMS = {
    "sum_squares.fut": """\
-- Sum of squares.
-- ==
-- "1M f64" input @ data/f64_1m.in
-- "8M f64" input @ data/f64_8m.in
entry main (xs: []f64): f64 = f64.sum (map (\\x -> x * x) xs)
""",
    "prefix_sum.fut": """\
-- Inclusive prefix sum (a gzipped data file).
-- ==
-- entry: prefix_sum
-- input @ data/i32_2m.in.gz
entry prefix_sum (xs: []i32): []i32 = scan (+) 0 xs
""",
    "matmul.fut": """\
-- Dense matrix product.
-- ==
-- entry: matmul
-- "256x256 f32" input @ data/mm_256.in
entry matmul [n][m][p] (a: [n][m]f32) (b: [m][p]f32): [n][p]f32 =
  map (\\row -> map (\\col -> f32.sum (map2 (*) row col)) (transpose b)) a
""",
}

THRESHOLD = 0.05


def write_programs(work: Path, data: bool = True) -> None:
    """The programs and their data files (seeded: the same bytes wherever they are made)."""
    import futhark_data

    work.mkdir(parents=True, exist_ok=True)
    for name, text in PROGRAMS.items():
        (work / name).write_text(text)
    if not data:
        return
    (work / "data").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    (work / "data" / "f64_1m.in").write_bytes(futhark_data.dumpb(rng.random(1_000_000)))
    (work / "data" / "f64_8m.in").write_bytes(futhark_data.dumpb(rng.random(8_000_000)))
    (work / "data" / "i32_2m.in.gz").write_bytes(gzip.compress(
        futhark_data.dumpb(rng.integers(-100, 100, 2_000_000, dtype=np.int32)), compresslevel=1))
    (work / "data" / "mm_256.in").write_bytes(
        futhark_data.dumpb(rng.random((256, 256), dtype=np.float32))
        + futhark_data.dumpb(rng.random((256, 256), dtype=np.float32)))


def futhark_bench(work: Path, backend: str, out: str, programs=None, skip_compilation: bool = False,
                  cflags: str = "") -> dict:
    from futhark_lab.builder.toolchain import find_futhark

    env = dict(os.environ)
    if cflags:   # futhark's C compiler flags: $CFLAGS replaces its default -O3 -std=c99
        env["CFLAGS"] = f"-O3 -std=c99 {cflags}"
    cmd = [find_futhark().path, "bench", f"--backend={backend}", "--json", out, "--convergence-max-seconds=1",
           *(["--skip-compilation"] if skip_compilation else []), *(programs or PROGRAMS)]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=1800, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads((work / out).read_text())


def lab_bench(work: Path, backend: str, results: Path, run_id: str | None = None, programs=None, policy=None,
              idle_s: float = 0.0, compile_options: dict | None = None):
    from futhark_lab.bench import bench

    frames = []
    cwd = os.getcwd()
    os.chdir(work)   # program names as futhark bench prints them: relative to where it runs
    try:
        for name in programs or PROGRAMS:
            frames.append(bench(name, [backend], results=results, run_id=run_id or f"lab-{backend}",
                                progress=False, policy=policy, idle_s=idle_s, compile_options=compile_options))
    finally:
        os.chdir(cwd)
    return frames[-1]


def paired(lab: list[float], ref: list[float]) -> float:
    """Median over rounds of each round's ratio: the two sides of a round ran minutes apart at most, so a drift of
    the machine's speed between rounds (this VM's shared 260 MB L3 moves 8-16 MB streams by up to 30% within
    minutes) cancels instead of landing on whichever side it hit."""
    return float(np.median(np.asarray(lab, float) / np.asarray(ref, float)))


def table(rows: list[dict], ref_name: str) -> str:
    lines = [f"{'program':<26} {'dataset':<15} {'backend':<9} {ref_name + ' (µs)':>20} {'futhark-lab (µs)':>17} "
             f"{'ratio':>6} {'paired':>6}  within 5%   {'ratio of minima':>15}  {ref_name} spread"]
    for r in rows:
        lines.append(f"{r['kernel']:<26} {r['dataset'][:15]:<15} {r['backend']:<9} {r['ref_us']:>20.1f} "
                     f"{r['lab_us']:>17.1f} {r['ratio']:>6.3f} {r['paired']:>6.3f}  "
                     f"{'MET    ' if abs(r['paired'] - 1) <= THRESHOLD else 'NOT MET'}"
                     f"   {r.get('min_ratio', float('nan')):>15.3f}  {r.get('spread', '')}")
    return "\n".join(lines)


def cpu(backends: list[str], rounds: int, cflags: str = "") -> None:
    from futhark_lab.bench import load_json
    from futhark_lab.builder.toolchain import find_futhark

    work = Path(tempfile.mkdtemp(prefix="bench-agreement-"))
    write_programs(work)
    if cflags:
        os.environ["CFLAGS"] = cflags   # futhark-lab adds $CFLAGS after its own flags (and keys its cache on it)
    rows = []
    for b in backends:
        fb_files, labs = [], []
        from futhark_lab.measure.timing import Policy
        policy = Policy(min_samples=10, min_time_s=0.5, max_time_s=1.0, max_noise=0.01)   # futhark bench's floor
        for name in PROGRAMS:
            for r in range(rounds):    # alternated per program, so changes in the machine's load hit both alike
                fb_files.append(work / f"fb{r}-{b}-{Path(name).stem}.json")
                futhark_bench(work, b, fb_files[-1].name, [name], skip_compilation=r > 0, cflags=cflags)
                labs.append(lab_bench(work, b, work / "results", run_id=f"lab{r}-{b}-{Path(name).stem}",
                                      programs=[name], policy=policy))
        fb = load_json(fb_files, backend=b)
        import pandas as pd
        lab = pd.concat(labs, ignore_index=True)
        for (kernel, dataset), g in fb.groupby(["kernel", "dataset"]):
            mine = lab[(lab["kernel"] == kernel) & (lab["dataset"] == dataset)]
            if not len(mine) or not (g["time_s_median"] > 0).all():
                continue
            ref, lab_s = float(np.median(g["time_s_median"])), float(np.median(mine["time_s_median"]))
            rows.append({"kernel": kernel, "dataset": dataset, "backend": b, "ref_us": ref * 1e6,
                         "lab_us": lab_s * 1e6, "ratio": lab_s / ref,
                         "paired": paired(mine["time_s_median"], g["time_s_median"]),
                         "min_ratio": float(mine["time_s_min"].min() / g["time_s_min"].min()),
                         "spread": "/".join(f"{x * 1e6:.0f}" for x in g["time_s_median"]) + " µs; lab: " +
                                   "/".join(f"{x * 1e6:.0f}" for x in mine["time_s_median"])})
    fut = find_futhark()
    if cflags:
        print(f"Both sides compiled with {cflags} added to their C flags (futhark bench: CFLAGS='-O3 -std=c99 "
              f"{cflags}'; futhark-lab: CFLAGS='{cflags}' after its own), so neither binary's speed depends on where "
              "the C compiler happened to place a hot loop (benchmarks/code_placement.py).")
    print(f"futhark {fut.version_str}; {rounds} alternating rounds per program and backend of real `futhark bench "
          f"--json --backend=X --convergence-max-seconds=1` and futhark-lab bench (at least 10 runs and 0.5 s, as futhark bench) on the same programs, data files and backend; ratio = median over "
          f"rounds of futhark-lab's medians / median over rounds of futhark bench's medians (its runtimes are whole "
          f"µs of entry + sync in its server); ratio of minima = fastest run against fastest run; spread = each "
          f"round's median; paired = median over rounds of each round's ratio (the verdict: drift between rounds "
          f"cancels). Machine: {os.cpu_count()} cores, load average at the end "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}.")
    print(table(rows, "futhark bench"))
    met = sum(abs(r["paired"] - 1) <= THRESHOLD for r in rows)
    print(f"{met} of {len(rows)} datasets within 5% (paired: median of the rounds' ratios); "
          f"{sum(abs(r['ratio'] - 1) <= THRESHOLD for r in rows)} of {len(rows)} by the ratio of medians; "
          f"{sum(abs(r['min_ratio'] - 1) <= THRESHOLD for r in rows)} of {len(rows)} by fastest runs")
    shutil.rmtree(work, ignore_errors=True)


def prepare_gpu(out: Path, backend: str = "cuda") -> None:
    from futhark_lab.builder.generated import export_generated
    from futhark_lab.builder.toolchain import find_futhark

    fut = find_futhark()
    write_programs(out, data=False)        # the data is made where it runs (seeded), so it need not be carried
    (out / "server").mkdir(exist_ok=True)
    for name in PROGRAMS:
        export_generated(out / name, backend, out / "gen")
        exe = out / "server" / Path(name).stem
        # the C of futhark's own server executable (what futhark bench runs); linking fails here for cuda (no
        # libcuda/NVRTC), the .c stays
        subprocess.run([fut.path, backend, "--server", str(out / name), "-o", str(exe)], capture_output=True,
                       text=True)
        if not exe.with_suffix(".c").exists():
            raise SystemExit(f"futhark {backend} --server {name} wrote no C file")
    (out / "meta.json").write_text(json.dumps({"futhark_version": list(fut.version), "backend": backend,
                                               "futhark_version_text": fut.version_text}))
    print(f"prepared {out}; on the GPU machine, from a checkout of futhark-lab with this directory next to it:\n"
          f"  python benchmarks/bench_agreement.py --gpu {out.name}   (it sets FUTHARK_LAB_GENERATED={out.name}/gen)")


def gpu(work: Path, seconds: float, rounds: int) -> None:
    from futhark_lab.bench.spec import program_key, read
    from futhark_lab.measure.timing import Policy
    from futhark_server_ref import build_executable, server_runtimes

    work = work.resolve()
    os.environ.setdefault("FUTHARK_LAB_GENERATED", str(work / "gen"))
    meta = json.loads((work / "meta.json").read_text())
    backend = meta.get("backend", "cuda")
    build = work / "server"
    if not (work / "data").is_dir():
        write_programs(work)
    servers = {}
    for name in PROGRAMS:
        exe = build / Path(name).stem
        servers[name] = build_executable(exe.with_suffix(".c"), exe, backend, meta["futhark_version"],
                                         meta["futhark_version_text"])

    from futhark_lab.measure.store import new_run_id
    policy = Policy(min_samples=10, min_time_s=seconds, max_time_s=seconds, max_noise=0.0, max_samples=10**6)
    # the runtime configuration futhark bench uses: its default, managed memory where the GPU has it (futhark-lab's
    # own default is plain device memory; on the H100 that made 20-50 µs calls 2-4 µs slower: gpu_p4.py)
    same_runtime = {"unified_memory": True} if backend in ("cuda", "hip") else None
    ref: dict = {}
    labs: dict = {"back to back": {}, "same idle": {}}
    gap_us: list[float] = []
    for r in range(rounds):          # alternating: futhark's server, then futhark-lab, per program
        for name, exe in servers.items():
            gaps: list[float] = []
            for io in read(work / name).cases:
                for run in io.runs:
                    us = server_runtimes(exe, io.entry, work / run.input.path, min_time_s=seconds, gaps=gaps) * 1e6
                    ref.setdefault((program_key(name, io.entry), run.description), []).append(us)
            gap = float(np.median(gaps))
            gap_us.append(gap * 1e6)
            for mode, idle in (("back to back", 0.0), ("same idle", gap)):
                lab = lab_bench(work, backend, work / "results", run_id=new_run_id(f"lab-{backend}"),
                                programs=[name], policy=policy, idle_s=idle, compile_options=same_runtime)
                for _, row in lab.iterrows():
                    labs[mode].setdefault((row["kernel"], row["dataset"]), []).append(row)
    print(f"{backend} on {lab['device'].iloc[0]}; futhark {meta['futhark_version_text'].splitlines()[0]} (code "
          f"generated elsewhere); futhark's server driven as futhark bench drives it (benchmarks/futhark_server_ref.py: "
          f"inputs restored once, a warm-up call, then calls whose `runtime:` the server prints) against futhark-lab "
          f"bench (entry + sync timed inside the call{', unified_memory=True as futhark bench' if same_runtime else ''}); {rounds} alternating rounds of {seconds:g} s each side; "
          f"medians of the rounds' medians; paired = median of the rounds' ratios (the verdict). futhark bench's pipe round trips leave the device idle "
          f"{np.median(gap_us):.0f} µs (range {min(gap_us):.0f}-{max(gap_us):.0f}) between runs.")
    verdicts = {}
    for mode, got in labs.items():
        rows = []
        for key, runs in ref.items():
            mine = got[key]
            ref_us = float(np.median([np.median(u) for u in runs]))
            lab_us = float(np.median([m["time_s_median"] for m in mine])) * 1e6
            host_us = float(np.median([m.get("host_time_s_median", np.nan) for m in mine])) * 1e6
            rows.append({"kernel": key[0], "dataset": key[1], "backend": backend, "ref_us": ref_us, "lab_us": lab_us,
                         "ratio": lab_us / ref_us if ref_us > 0 else float("nan"),
                         "paired": paired([m["time_s_median"] * 1e6 for m in mine], [np.median(u) for u in runs]),
                         "min_ratio": min(m["time_s_min"] for m in mine) * 1e6 / min(u.min() for u in runs),
                         "spread": "/".join(f"{np.median(u):.0f}" for u in runs) + " µs; lab: " +
                                   "/".join(f"{m['time_s_median'] * 1e6:.1f}" for m in mine) +
                                   f"; lab's host clock {host_us:.1f}"})
        print(f"\nfuthark-lab {mode}" + (" (the same idle time before each run as futhark bench leaves)"
                                         if mode == "same idle" else " (nothing between runs)"))
        print(table(rows, "futhark bench"))
        verdicts[mode] = sum(abs(r["paired"] - 1) <= THRESHOLD for r in rows), len(rows)
    print("\nfuthark bench against itself (its rounds' medians vs their median, largest deviation): " + "; ".join(
        f"{k[0]} {k[1][:15]} {max(abs(np.median(u) / np.median([np.median(v) for v in runs]) - 1) for u in runs):.0%}"
        for k, runs in ref.items()))
    for mode, (met, n) in verdicts.items():
        print(f"{mode}: {met} of {n} datasets within 5%")
    met, n = verdicts["same idle"]
    print(f"target (same conditions as futhark bench): {'MET' if met == n else 'NOT MET'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="c,multicore")
    ap.add_argument("--prepare-gpu", type=Path, metavar="DIR")
    ap.add_argument("--gpu", type=Path, metavar="DIR")
    ap.add_argument("--backend", default="cuda", help="--prepare-gpu: the backend (cuda; c to try the path here)")
    ap.add_argument("--seconds", type=float, default=1.0, help="--gpu: seconds of runs per measurement, each side")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 5 on CPUs, 3 in --gpu)")
    ap.add_argument("--cflags", default="", help="CPU mode: C flags added on both sides, e.g. -falign-loops=64 "
                                                 "(code placement: benchmarks/code_placement.py)")
    a = ap.parse_args()
    if a.prepare_gpu:
        prepare_gpu(a.prepare_gpu, a.backend)
    elif a.gpu:
        gpu(a.gpu, a.seconds, a.rounds or 3)
    else:
        cpu([b for b in a.backends.split(",") if b], a.rounds or 5, a.cflags)


if __name__ == "__main__":
    main()
