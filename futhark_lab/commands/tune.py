"""`futhark-lab tune`: futhark autotune on a program's `-- ==` datasets, then default against tuned, side by side."""

from __future__ import annotations

import shutil
from pathlib import Path


def main(a) -> int:
    import dataclasses

    from ..bench.run import DEFAULT_POLICY
    from ..bench.spec import SpecError
    from ..bench.tune import AutotuneError, tune
    from ..builder.toolchain import ALL_BACKENDS
    from ..measure.store import results_dir
    from ..view import report as rep

    if a.backend not in ALL_BACKENDS:
        raise SystemExit(f"error: unknown backend {a.backend!r}; choose from {', '.join(ALL_BACKENDS)}")
    policy = dataclasses.replace(DEFAULT_POLICY, max_time_s=a.max_time, min_time_s=min(a.min_time, a.max_time),
                                 min_samples=a.min_runs)
    try:
        r = tune(a.program, a.backend, futhark=a.futhark, runs=a.runs, timeout_s=a.timeout,
                 pass_options=tuple(a.pass_option or ()), limit_s=a.limit, skip_autotune=a.skip_autotune,
                 policy=policy, results=a.results, run_id=a.run_id, progress=not a.quiet)
    except (AutotuneError, SpecError, FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    run_dir = Path(r.df.attrs.get("run_dir") or Path(a.results or results_dir()) / r.df.attrs["run_id"])
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(r.tuning_file, run_dir / r.tuning_file.name)
    (run_dir / "autotune.log").write_text(r.autotune_log + "\n")
    r.table.to_csv(run_dir / "tuning_table.csv", index=False)
    import pandas as pd
    print(f"tuning file: {r.tuning_file} (autotune took {r.autotune_s:.1f} s)")
    for k, v in r.params.items():
        print(f"  {k}={v}")
    shown = r.table.copy()
    for c in ("default_s", "tuned_s"):
        shown[c.replace("_s", " (µs)")] = shown.pop(c) * 1e6
    cols = [c for c in ("dataset", "default (µs)", "tuned (µs)", "speedup", "verdict", "default_error",
                        "tuned_error") if c in shown]
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(shown[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    path = rep.report(r.df, a.report or run_dir / "report.html",
                      title=f"{Path(a.program).name}: default against tuned ({a.backend})",
                      tuning_comparison=r.table)
    print(f"report: {path}\ntable: {run_dir / 'tuning_table.csv'}\nrun: {r.df.attrs.get('run_id')}")
    from .common import failed
    return 1 if failed(r.df) else 0


def add(sub) -> None:
    p = sub.add_parser("tune", help="futhark autotune a program, then measure default against tuned",
                       description="Run futhark's own `futhark autotune` on the program's `-- ==` datasets (it "
                                   "writes prog.fut.tuning), then measure every dataset with the compiler's default "
                                   "tuning parameters and with the tuning file, interleaved, and show the speed-up "
                                   "per dataset (table, figure, HTML report).")
    p.add_argument("program", help="a .fut file with `-- ==` blocks")
    p.add_argument("--backend", default="opencl", help="the backend to tune for (default opencl, as futhark "
                                                       "autotune; cuda on NVIDIA GPUs)")
    p.add_argument("--futhark", metavar="PATH", help="the futhark compiler (default: $FUTHARK, then PATH)")
    p.add_argument("--runs", type=int, default=None, help="futhark autotune --runs (default: its own, 10)")
    p.add_argument("--timeout", type=int, default=None, metavar="S",
                   help="futhark autotune --timeout: initial seconds per dataset (default: its own, 600)")
    p.add_argument("--limit", type=float, default=None, metavar="S",
                   help="stop futhark autotune after S seconds in all (an error, no tuning file)")
    p.add_argument("--pass-option", action="append", metavar="OPT",
                   help="futhark autotune --pass-option: an option for the program (repeatable)")
    p.add_argument("--skip-autotune", action="store_true",
                   help="measure the existing prog.fut.tuning against the defaults without tuning again")
    p.add_argument("--min-runs", type=int, default=10, help="at least this many measured runs per dataset and "
                                                            "variant (default 10)")
    p.add_argument("--min-time", type=float, default=0.5, help="seconds per dataset at least (default 0.5)")
    p.add_argument("--max-time", type=float, default=3.0, help="seconds per dataset at most (default 3)")
    p.add_argument("--report", help="HTML report path (default: results/<run-id>/report.html)")
    p.add_argument("--run-id", help="name the measuring run")
    p.add_argument("--results", help="results directory (default: ./results)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=main)
