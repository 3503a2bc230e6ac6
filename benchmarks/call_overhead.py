"""What futhark-lab's entry call costs over calling the generated C library directly, in one process, interleaved.

Same library, same context, same device-resident input (kernels/sum_squares.fut, `sum_squares_f64`); each
implementation does entry point + futhark_context_sync per call:

- raw ctypes: the entry point and futhark_context_sync through ctypes (what a C-level user of the library pays),
- raw cffi: the same two functions of the build's own cffi module, called directly (no futhark-lab code),
- futhark-lab: ``module.sum_squares_f64(x)``.

Each round times a batch of back-to-back calls of every implementation, in a shuffled order; per-call time =
batch time / calls.  Printed: medians, and the median over rounds of the paired difference futhark-lab − raw with
its 95% CI.  Target (issue 15): median difference ≤ 0.5 µs on c and ≤ 1 µs on cuda at n = 1, against the faster raw
call; ``--runs 3`` repeats the measurement in 3 fresh processes and says whether all met it.

    python benchmarks/call_overhead.py --backend c --sizes 1,10000000 [--runs 3]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_US = {"c": 0.5, "cuda": 1.0}


def measure(backend: str, n: int, rounds: int, budget_s: float) -> dict:
    import futhark_lab
    from futhark_lab.measure.stats import median_ci

    from futhark_lab.builder import fastcall
    m = futhark_lab.compile(ROOT / "kernels" / "sum_squares.fut", backend=backend)
    if m.library.mode != "api":  # a first build on a machine with few cores binds before its extension is done
        fastcall.wait()
        m.close()
        m = futhark_lab.compile(ROOT / "kernels" / "sum_squares.fut", backend=backend)
    x = np.random.default_rng(n).random(n)
    xd = m.array(x)
    m.sync()
    ffi, lib = m.context.ffi, m.context.lib
    handle, arr = m.context.handle, xd._ptr
    entry = m.sum_squares_f64

    cdll = ctypes.CDLL(str(m.build.library))
    c_entry = cdll.futhark_entry_sum_squares_f64
    c_entry.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_double), ctypes.c_void_p]
    c_entry.restype = ctypes.c_int
    c_sync = cdll.futhark_context_sync
    c_sync.argtypes = [ctypes.c_void_p]
    c_sync.restype = ctypes.c_int
    c_ctx = ctypes.c_void_p(int(ffi.cast("uintptr_t", handle)))
    c_arr = ctypes.c_void_p(int(ffi.cast("uintptr_t", arr)))
    c_out = ctypes.c_double()
    c_out_p = ctypes.byref(c_out)

    def raw_ctypes():
        if c_entry(c_ctx, c_out_p, c_arr) != 0 or c_sync(c_ctx) != 0:
            raise RuntimeError("raw call failed")
        return c_out.value

    f_entry, f_sync = lib.futhark_entry_sum_squares_f64, lib.futhark_context_sync
    f_out = ffi.new("double *")

    def raw_cffi():
        if f_entry(handle, f_out, arr) != 0 or f_sync(handle) != 0:
            raise RuntimeError("raw call failed")
        return f_out[0]

    def lab():
        return entry(xd)

    impls = {"raw ctypes": raw_ctypes, f"raw cffi ({m.library.mode} mode)": raw_cffi, "futhark-lab": lab}
    want = float(np.sum(x * x))
    for name, fn in impls.items():
        got = float(fn())
        if abs(got - want) > 1e-9 * max(abs(want), 1):
            raise AssertionError(f"{name} returned {got}, expected {want}")
    # calls per batch: ~2 ms of work, so the clock's own cost is negligible
    t = time.perf_counter()
    for _ in range(20):
        lab()
    per = (time.perf_counter() - t) / 20
    batch = max(1, min(2000, int(2e-3 / max(per, 1e-9))))
    rounds = max(10, min(rounds, int(budget_s / (3 * batch * per))))
    times: dict[str, list[float]] = {k: [] for k in impls}
    order = list(impls)
    rng = random.Random(0)
    for fn in impls.values():  # warm-up
        for _ in range(batch):
            fn()
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            fn = impls[name]
            t = time.perf_counter()
            for _ in range(batch):
                fn()
            times[name].append((time.perf_counter() - t) / batch)
    res = {"backend": backend, "n": n, "batch": batch, "rounds": rounds, "mode": m.library.mode,
           "median_us": {k: float(np.median(v)) * 1e6 for k, v in times.items()}}
    lab_t = np.array(times["futhark-lab"])
    res["diff_us"] = {}
    for k in impls:
        if k == "futhark-lab":
            continue
        d = (lab_t - np.array(times[k])) * 1e6
        lo, hi = median_ci(d)
        res["diff_us"][k] = {"median": float(np.median(d)), "ci": [lo, hi]}
    m.close()
    return res


def report(res: dict) -> bool:
    b, n = res["backend"], res["n"]
    print(f"\n{b}, n={n:,}: {res['rounds']} interleaved rounds of {res['batch']} calls each "
          f"(futhark-lab binding: {res['mode']} mode)")
    for k, v in res["median_us"].items():
        print(f"  {k:<24} {v:10.3f} us/call")
    best = min((k for k in res["diff_us"]), key=lambda k: res["median_us"][k])
    target = TARGET_US.get(b, 1.0)
    for k, d in res["diff_us"].items():
        ratio = res["median_us"]["futhark-lab"] / res["median_us"][k]
        print(f"  futhark-lab - {k:<22} {d['median']:+8.3f} us (95% CI {d['ci'][0]:+.3f} .. {d['ci'][1]:+.3f}); "
              f"ratio {ratio:.3f}")
    d = res["diff_us"][best]["median"]
    met = d <= target
    if n == 1:
        print(f"  target: difference to the faster raw call ({best}) <= {target} us at n=1: "
              f"{'MET' if met else 'NOT MET'} ({d:+.3f} us)")
    else:
        print(f"  difference to {best} at n={n:,}: {d:+.3f} us on {res['median_us'][best]:.1f} us "
              f"({d / res['median_us'][best]:+.2%})")
    return met


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="c")
    ap.add_argument("--sizes", default="1,10000000")
    ap.add_argument("--rounds", type=int, default=400)
    ap.add_argument("--budget", type=float, default=6.0, help="seconds of timing per size (caps the rounds)")
    ap.add_argument("--runs", type=int, default=1, help="repeat in this many fresh processes")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    sizes = [int(float(s)) for s in a.sizes.split(",")]
    if a.runs > 1:
        verdicts = []
        for r in range(a.runs):
            out = subprocess.run([sys.executable, __file__, "--backend", a.backend, "--sizes", a.sizes, "--rounds",
                                  str(a.rounds), "--budget", str(a.budget), "--json"], capture_output=True,
                                 text=True, check=True)
            results = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"=== run {r + 1} of {a.runs} (fresh process)")
            verdicts += [report(res) for res in results if res["n"] == 1]
            for res in results:
                if res["n"] != 1:
                    report(res)
        print(f"\n{a.backend}: n=1 target met in {sum(verdicts)} of {len(verdicts)} runs: "
              f"{'MET' if verdicts and all(verdicts) else 'NOT MET'}")
        return
    results = [measure(a.backend, n, a.rounds, a.budget) for n in sizes]
    if a.json:
        print(json.dumps(results))
        return
    for res in results:
        report(res)


if __name__ == "__main__":
    main()
