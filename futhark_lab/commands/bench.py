"""`futhark-lab bench`: a program's '-- ==' datasets, as futhark bench runs them, on several backends."""

from __future__ import annotations

from pathlib import Path

from .common import add_cluster_arguments, cluster_from_args, parse_futharks, working_backends


def main(a) -> int:
    import dataclasses

    from ..bench.run import DEFAULT_POLICY, bench
    from ..builder.toolchain import ALL_BACKENDS
    from ..view import report as rep

    backends = [b for b in a.backends.split(",") if b] if a.backends else working_backends(
        ("c", "multicore", "opencl", "cuda"), a.quiet)
    for b in backends:
        if b not in ALL_BACKENDS:
            raise SystemExit(f"error: unknown backend {b!r}; choose from {', '.join(ALL_BACKENDS)}")
    if not 0 <= a.idle_us < 1e7:
        raise SystemExit(f"error: --idle-us must be microseconds from 0 to 10,000,000, got {a.idle_us}")
    policy = dataclasses.replace(DEFAULT_POLICY, max_time_s=a.max_time, min_time_s=min(a.min_time, a.max_time),
                                 min_samples=a.runs)
    futharks = parse_futharks(a.futhark)
    if a.no_tuning and a.tuning:
        raise SystemExit("error: give --tuning FILE,... or --no-tuning, not both")
    tuning = None if a.no_tuning else "auto" if not a.tuning else [
        None if t == "none" else "auto" if t == "auto" else t for t in a.tuning.split(",") if t]
    from ..builder.tuning import TuningFileError
    cluster, close = cluster_from_args(a)
    try:
        df = bench(a.program, backends, entry=a.entry, exclude=tuple(a.exclude or ()), run_id=a.run_id,
                   results=a.results, policy=policy, progress=not a.quiet, idle_s=a.idle_us * 1e-6,
                   cluster=cluster, exclusive=a.exclusive, tuning=tuning,
                   futhark=futharks if len(futharks) > 1 else futharks[0])
    except (TuningFileError, TypeError) as exc:
        raise SystemExit(f"error: {exc}") from None
    finally:
        close()
    cols = [c for c in ("kernel", "dataset", "impl", "futhark_version", "tuning", "time_s_median", "time_s_mean",
                        "n", "memory_bytes", "correct", "error") if c in df]
    if len(df):
        import pandas as pd
        shown = df[cols].copy()
        for c in ("time_s_median", "time_s_mean"):
            if c in shown:
                shown[c.replace("time_s_", "") + " (µs)"] = shown.pop(c) * 1e6
        if "error" in shown:
            shown["error"] = shown["error"].map(lambda e: "" if not isinstance(e, str) else e.splitlines()[0][:70])
        with pd.option_context("display.width", 220, "display.max_rows", 500):
            print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    from .common import print_failures
    print_failures(df, what="dataset")  # a compile error or a backend that does not work: its whole message
    from ..measure.store import results_dir
    path = rep.report(df, a.report or Path(a.results or results_dir()) / df.attrs["run_id"] / "report.html")
    print(f"report: {path}\nrun: {df.attrs.get('run_id')}")
    from .common import failed
    return 1 if failed(df) else 0


def add(sub) -> None:
    p = sub.add_parser("bench", help="run a program's '-- ==' datasets (as futhark bench does) on several backends",
                       description="Read the program's '-- ==' blocks (inline, @ file and random inputs), run every "
                                   "dataset through futhark-lab's binding on each backend, check 'output' blocks, "
                                   "and store the results like a sweep (results/<run-id>/points.jsonl, resumable) "
                                   "with an HTML report.")
    p.add_argument("program", help="a .fut file with '-- ==' blocks")
    p.add_argument("--backends", help="comma-separated futhark backends (default: those that work here)")
    p.add_argument("--tuning", metavar="FILE,...",
                   help="tuning file(s) to use; several (and 'none' for the defaults, 'auto' for prog.fut.tuning) are "
                        "compared side by side (default: prog.fut.tuning when it exists, as futhark bench)")
    p.add_argument("--no-tuning", action="store_true", help="use no tuning file (futhark bench --no-tuning)")
    p.add_argument("--futhark", metavar="PATH,...",
                   help="futhark compilers to compare ('default' for the usual one): each row names its version")
    p.add_argument("-e", "--entry", help="only this entry point (futhark bench --entry-point)")
    p.add_argument("--exclude", action="append", metavar="TAG",
                   help="skip datasets with this tag (repeatable; nobench, disable and no_<backend> always are)")
    p.add_argument("-r", "--runs", type=int, default=10, help="at least this many runs per dataset (default 10)")
    p.add_argument("--min-time", type=float, default=0.5, help="seconds per dataset at least (default 0.5)")
    p.add_argument("--max-time", type=float, default=3.0, help="seconds per dataset at most (default 3)")
    p.add_argument("--idle-us", type=float, default=0.0, metavar="µS",
                   help="leave the device idle this long before each run (futhark bench's server round trips leave "
                        "~30 µs; default 0: back to back)")
    p.add_argument("--report", help="HTML report path (default: results/<run-id>/report.html)")
    p.add_argument("--run-id", help="resume or name a run")
    p.add_argument("--results", help="results directory (default: ./results)")
    add_cluster_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=main)
