"""futhark-lab's time for a Futhark entry point versus `futhark bench --json` on the same program, backend and
dataset size, measured side by side in one run.  Target: within 5%.

    python benchmarks/timing_truth.py [--backend c] [--sizes 1000000,10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import futhark_lab  # noqa: E402
from futhark_lab.builder.toolchain import find_futhark  # noqa: E402
from futhark_lab.measure.timing import Policy, measure  # noqa: E402

PROGRAM = """\
-- ==
-- entry: sum_squares
{datasets}
entry sum_squares (xs: []f64): f64 = f64.sum (map (\\x -> x * x) xs)
"""


def futhark_bench(backend: str, sizes: list[int], runs: int) -> dict[int, float]:
    fut = find_futhark()
    work = Path(tempfile.mkdtemp(prefix="truth-"))
    datasets = "\n".join(f"-- random input {{ [{n}]f64 }}" for n in sizes)
    (work / "prog.fut").write_text(PROGRAM.format(datasets=datasets))
    cmd = [fut.path, "bench", f"--backend={backend}", f"--runs={runs}", "--json", "bench.json", "prog.fut"]
    subprocess.run(cmd, cwd=work, check=True, capture_output=True, text=True)
    data = json.loads((work / "bench.json").read_text())
    out = {}
    for _, prog in data.items():
        for name, ds in prog["datasets"].items():
            n = int(name.split("]")[0].split("[")[-1])
            out[n] = float(np.median(ds["runtimes"])) / 1e6  # microseconds -> seconds
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", default="c")
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--runs", type=int, default=50)
    a = ap.parse_args()
    sizes = [int(float(s)) for s in a.sizes.split(",")]
    src = PROGRAM.format(datasets="")
    ours = {}
    with futhark_lab.compile(src, backend=a.backend) as m:
        for n in sizes:
            x = m.array(np.random.default_rng(n).random(n))
            ours[n] = measure(lambda: m.sum_squares(x), policy=Policy(max_time_s=3, max_noise=0.005)).stats.median
    bench = futhark_bench(a.backend, sizes, a.runs)
    # futhark-lab's again, so drift in the machine's speed during the run shows up as disagreement between our two
    with futhark_lab.compile(src, backend=a.backend) as m:
        ours2 = {}
        for n in sizes:
            x = m.array(np.random.default_rng(n).random(n))
            ours2[n] = measure(lambda: m.sum_squares(x), policy=Policy(max_time_s=3, max_noise=0.005)).stats.median
    print(f"backend {a.backend}, futhark {find_futhark().version_str}")
    print(f"{'size':>10} {'futhark bench':>14} {'futhark-lab':>12} {'(again)':>10} {'ratio':>7}  within 5%?")
    for n in sizes:
        lab = (ours[n] + ours2[n]) / 2
        r = lab / bench[n]
        print(f"{n:>10} {bench[n] * 1e3:>11.3f} ms {ours[n] * 1e3:>9.3f} ms {ours2[n] * 1e3:>7.3f} ms {r:>7.3f}  "
              f"{'yes' if abs(r - 1) <= 0.05 else 'NO'}")


if __name__ == "__main__":
    main()
