"""Why `futhark bench` and futhark-lab can disagree by 1.7x on a CPU: where gcc places one hot loop.

The inclusive prefix sum of benchmarks/bench_agreement.py (2M i32, c backend) ran at ~1,170 µs under `futhark bench`
and ~660 µs in futhark-lab, every round.  Both run the same generated C.  The difference is the machine code's
layout. In futhark's server binary, built as futhark builds it (`cc -O3 -std=c99`), the scan's 16-byte inner loop
straddles a 32-byte boundary of the instruction stream; built with `-fPIC` (as futhark-lab builds its libraries) or
`-falign-loops=64` it lies within one.  This script shows that directly, with nothing of futhark-lab in the
measurement.  It builds futhark's own server executable (`futhark c --server`) twice from one program: with futhark's
default flags, then with the loop-aligning flag added.  It prints where the inner loop lies in each binary and times
both in fresh processes, in alternating rounds, as futhark bench drives them (benchmarks/futhark_server_ref.py).

    python benchmarks/code_placement.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ALIGNED = "-falign-loops=64"


def inner_loop(exe: Path, function: str) -> tuple[int, int] | None:
    """(first, last byte) of the shortest backward conditional jump's loop in ``function`` of ``exe`` (objdump)."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(exe)], capture_output=True, text=True).stdout
    body = re.search(rf"<{re.escape(function)}>:\n(.*?)\n\n", out, re.S)
    if body is None:
        return None
    lines = [ln for ln in body.group(1).splitlines() if re.match(r"\s*[0-9a-f]+:", ln)]
    addrs = [int(ln.split(":")[0], 16) for ln in lines]
    best = None
    for i, ln in enumerate(lines):
        m = re.search(r"\sj(?!mp)[a-z]+\s+([0-9a-f]+)\s<", ln)
        if m and int(m.group(1), 16) < addrs[i]:
            end = (addrs[i + 1] if i + 1 < len(addrs) else addrs[i] + 2) - 1
            span = (int(m.group(1), 16), end)
            if best is None or span[1] - span[0] < best[1] - best[0]:
                best = span
    return best


def describe(span: tuple[int, int] | None) -> str:
    if span is None:
        return "inner loop not found (objdump missing?)"
    a, b = span
    crosses = [k for k in (32, 64) if a // k != b // k]
    where = f"crosses a {'/'.join(map(str, crosses))}-byte boundary" if crosses else "within one 32-byte block"
    return f"inner loop 0x{a:x}-0x{b:x} ({b - a + 1} bytes): {where}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds of runs per measurement")
    a = ap.parse_args()

    from bench_agreement import write_programs
    from futhark_server_ref import server_runtimes

    from futhark_lab.builder.toolchain import find_futhark

    fut = find_futhark()
    work = Path(tempfile.mkdtemp(prefix="code-placement-"))
    write_programs(work)
    variants = {"futhark's flags (-O3 -std=c99)": None, f"-O3 -std=c99 {ALIGNED}": f"-O3 -std=c99 {ALIGNED}"}
    exes = {}
    for i, (name, cflags) in enumerate(variants.items()):
        exe = work / f"prefix_sum_{i}"
        env = dict(os.environ)
        env.pop("CFLAGS", None)
        if cflags:
            env["CFLAGS"] = cflags
        subprocess.run([fut.path, "c", "--server", "prefix_sum.fut", "-o", exe.name], cwd=work, env=env, check=True,
                       capture_output=True)
        exes[name] = exe
    print(f"futhark {fut.version_str}, c backend, `prefix_sum` (scan (+) 0 over 2M i32), futhark's own server binary "
          f"built twice from the same C; {a.rounds} alternating rounds, each a fresh server process timed as futhark "
          f"bench times it (entry + sync in C, µs); medians per round.")
    times: dict[str, list[float]] = {k: [] for k in exes}
    data = work / "data" / "i32_2m.in.gz"
    for _ in range(a.rounds):
        for name, exe in exes.items():
            t = server_runtimes(exe, "prefix_sum", data, min_time_s=a.seconds)
            times[name].append(float(np.median(t)) * 1e6)
    for name, exe in exes.items():
        print(f"  {name:<34} {describe(inner_loop(exe, 'futhark_entry_prefix_sum'))}")
        print(f"  {'':<34} rounds: {' / '.join(f'{x:.0f}' for x in times[name])} µs; median "
              f"{np.median(times[name]):.0f} µs")
    import futhark_lab
    with futhark_lab.compile(work / "prefix_sum.fut", backend="c") as m:
        loop = inner_loop(m.build.library, "futhark_entry_prefix_sum")
        print(f"  {'futhark-lab library (-fPIC)':<34} {describe(loop)}")
    base, aligned = (np.median(v) for v in times.values())
    print(f"default layout / aligned loops: {base / aligned:.2f}x")


if __name__ == "__main__":
    main()
