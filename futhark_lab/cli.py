"""The ``futhark-lab`` command: headless sweeps, reports, comparisons and the doctor.

    futhark-lab doctor                         which backends work here, and why the others don't
    futhark-lab run kernels/sum_squares.fut --backends c,multicore --sizes 1e3:1e7 --report out.html
    futhark-lab demo                           the kernel suite on every working backend, with a report
    futhark-lab report results/<run-id>        (re)write a run's HTML report
    futhark-lab compare results/<a> results/<b>
    futhark-lab bench prog.fut --backends c,multicore   a program's `-- ==` datasets, as futhark bench runs them
    futhark-lab import bench.json …            futhark bench --json files into results/<run-id>
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _suite():
    from .suite import load
    try:
        return load()
    except FileNotFoundError as exc:
        raise SystemExit(f"error: {exc}") from None


def _parse_sizes(text: str | None) -> list[int] | None:
    """'1e3:1e8' (decades), '1e3:1e8:2' (2 per decade), or '1000,5000,1e6'."""
    if not text:
        return None
    from .sweep.run import sizes_between
    if ":" in text:
        parts = text.split(":")
        try:
            lo, hi = float(parts[0]), float(parts[1])
            per = int(parts[2]) if len(parts) > 2 else 1
        except ValueError:
            raise SystemExit(f"error: --sizes {text!r}: expected LO:HI[:PER_DECADE], e.g. 1e3:1e8") from None
        if not 0 < lo <= hi:
            raise SystemExit(f"error: --sizes {text!r}: need 0 < LO <= HI")
        return sizes_between(lo, hi, per)
    try:
        return [int(float(s)) for s in text.split(",") if s]
    except ValueError:
        raise SystemExit(f"error: --sizes {text!r}: expected numbers separated by commas") from None


def _impls(backends: list[str], torch_devices: list[str], numpy: bool, copy: bool, kernel,
           pinned: bool = False) -> list:
    from .builder.toolchain import ALL_BACKENDS
    from .sweep.impls.futhark import futhark
    from .sweep.impls.numpy_cpu import numpy_impl
    from .sweep.impls.torch_eager import torch

    impls = []
    for b in backends:
        if b not in ALL_BACKENDS:
            raise SystemExit(f"error: unknown backend {b!r}; choose from {', '.join(ALL_BACKENDS)}")
        impls.append(futhark(b))
        if copy:
            impls.append(futhark(b, resident=False))
        if copy and pinned and b == "cuda":  # what a careful user pays: the copy from page-locked memory
            impls.append(futhark(b, resident=False, pinned=True))
    for dev in torch_devices:
        for variant in kernel.torch:
            impls.append(torch(dev, None if variant == "default" else variant))
    if numpy:
        impls.append(numpy_impl())
    return impls


def _working_backends(candidates: tuple[str, ...], quiet: bool) -> list[str]:
    from .runtime.doctor import check_backend

    ok = []
    for b in candidates:
        s = check_backend(b)
        if not quiet:
            print(f"  {b:10} {'ok: ' + s.device if s.works else 'skipped: ' + s.cause}", file=sys.stderr)
        if s.works:
            ok.append(b)
    return ok


def _torch_devices(want: str | None) -> list[str]:
    if want is not None:
        return [d for d in want.split(",") if d]
    try:
        import torch
    except ImportError:
        return []
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _cluster(a):
    """(cluster for sweep(), closer) from --workers / --scheduler: None when neither is given."""
    workers, scheduler = getattr(a, "workers", None), getattr(a, "scheduler", None)
    if workers is None and scheduler is None:
        return None, lambda: None
    if workers is not None and scheduler is not None:
        raise SystemExit("error: give --workers N (a local Dask cluster) or --scheduler ADDRESS, not both")
    if workers is not None and workers != "gpus" and not (workers.isdigit() and int(workers) >= 1):
        raise SystemExit(f"error: --workers {workers}: give a number of workers (at least 1), or 'gpus'")
    try:
        from .measure.cluster import connect
    except ImportError as exc:
        raise SystemExit(f"error: {exc}") from None
    from .errors import FutharkLabError
    try:
        return connect(f"local:{workers}" if workers is not None else scheduler)
    except FutharkLabError as exc:
        raise SystemExit(f"error: {exc}") from None


def cmd_run(a) -> int:
    from .measure.timing import Policy
    from .sweep.run import sweep
    from .view import report as rep

    suite = _suite()
    kernel = suite.for_source(a.source) if a.source.endswith(".fut") else suite.KERNELS.get(a.source)
    if kernel is None:
        raise SystemExit(f"error: {a.source} is not a kernel of the suite ({', '.join(suite.KERNELS)}); "
                         "use the Python API (futhark_lab.sweep with a Kernel) for other programs")
    backends = [b for b in a.backends.split(",") if b] if a.backends else _working_backends(
        ("c", "multicore", "opencl", "cuda"), a.quiet)
    impls = _impls(backends, _torch_devices(a.torch), not a.no_numpy, a.copy, kernel, a.pinned)
    policy = Policy(max_time_s=a.max_time, min_time_s=min(a.min_time, a.max_time), max_noise=a.noise, cold=a.cold)
    cluster, close = _cluster(a)
    try:
        df = sweep(kernel, impls, sizes=_parse_sizes(a.sizes), dtypes=a.dtypes.split(",") if a.dtypes else None,
                   run_id=a.run_id, results=a.results, policy=policy, progress=not a.quiet, on_error="warn",
                   cluster=cluster, exclusive=a.exclusive)
    finally:
        close()
    _summary(df)
    path = rep.report(df, a.report)
    print(f"report: {path}\nresults: {Path(path).parent if a.report is None else df.attrs.get('run_id')}")
    return 0 if df.get("correct", True).pipe(lambda s: (s != False).all()) else 1  # noqa: E712


#: The python backend interprets Futhark's code: the demo shows it only up to this size.
PYTHON_BACKEND_MAX_SIZE = 10_000


def cmd_demo(a) -> int:
    from .measure.store import new_run_id
    from .measure.timing import Policy
    from .view import report as rep

    suite = _suite()
    print("checking backends (futhark-lab doctor):", file=sys.stderr)
    backends = _working_backends(("c", "multicore", "opencl", "cuda", "pyopencl", "python"), False)
    if not backends:
        print("no futhark backend works here (see above); the demo measures NumPy and PyTorch only",
              file=sys.stderr)
    run_id = a.run_id or new_run_id("demo")
    sizes_cap = int(float(a.max_size))
    policy = Policy(max_time_s=a.max_time, min_time_s=min(0.1, a.max_time), max_noise=0.02)
    frames = []
    cluster, close = _cluster(a)
    try:
        _demo_sweeps(a, suite, backends, run_id, sizes_cap, policy, frames, cluster)
    finally:
        close()
    df = frames[-1]  # each sweep returns the whole run so far
    _summary(df)
    path = rep.report(df, a.report, title="futhark-lab demo: the kernel suite")
    print(f"report: {path}")
    return 0


def _demo_sweeps(a, suite, backends, run_id, sizes_cap, policy, frames, cluster) -> None:
    from .sweep.run import sweep

    for name in (a.kernels.split(",") if a.kernels else suite.KERNELS):
        kernel = suite.get(name)
        # pyopencl's generated host code is slow at tiny sizes but fine as a demo of a working path
        impls = _impls([b for b in backends if b != "python"], _torch_devices(None), True, False, kernel)
        sizes = [n for n in kernel.sizes if n <= sizes_cap]
        frames.append(sweep(kernel, impls, sizes=sizes, dtypes=kernel.dtypes[:1], run_id=run_id,
                            results=a.results, policy=policy, rounds=2, progress=not a.quiet,
                            on_error="warn", cluster=cluster, exclusive=a.exclusive))
        if "python" in backends:  # interpreted: shown at the small sizes only, where it finishes in seconds
            small = [n for n in sizes if n <= PYTHON_BACKEND_MAX_SIZE] or sizes[:1]
            frames.append(sweep(kernel, _impls(["python"], [], False, False, kernel), sizes=small,
                                dtypes=kernel.dtypes[:1], run_id=run_id, results=a.results, policy=policy,
                                rounds=2, progress=not a.quiet, on_error="warn", cluster=cluster,
                                exclusive=a.exclusive))


def _summary(df) -> None:
    cols = [c for c in ("kernel", "impl", "size", "dtype", "time_s_median", "gbps", "correct", "error") if c in df]
    if len(df):
        import pandas as pd
        shown = df[cols].copy()
        if "error" in shown:  # the first line of an error is enough here; the report has it whole
            shown["error"] = shown["error"].map(lambda e: "" if not isinstance(e, str) else e.splitlines()[0][:70])
        with pd.option_context("display.width", 200, "display.max_rows", 80):
            print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def cmd_generate(a) -> int:
    from .builder.generated import export_generated
    from .runtime.doctor import TINY

    for b in a.backends.split(","):
        for src in a.sources:
            print(export_generated(src, b, a.out))
        # doctor's test program too, so `doctor` and `demo` find this backend working on the other machine
        export_generated(TINY, b, a.out)
    return 0


def cmd_report(a) -> int:
    from .view import report as rep
    path = rep.report(a.run, a.out)
    print(path)
    if a.export:
        for p in rep.export(a.run, a.export):
            print(p)
    return 0


def _is_bench(x: str) -> bool:
    """A futhark bench JSON file, or a run made by `bench`/`import` (rows with a dataset)."""
    if x.endswith(".json"):
        return True
    from .measure.store import load_run
    try:
        return "dataset" in load_run(x)
    except FileNotFoundError:
        return False


def cmd_compare(a) -> int:
    if _is_bench(a.run_a) or _is_bench(a.run_b):
        from .bench.comparison import compare as bcompare
        from .bench.comparison import format_table, frame
        sides = [frame(a.run_a), frame(a.run_b)]
        if a.impl:
            sides = [d[d["impl"] == a.impl] if a.impl in set(d["impl"]) else d for d in sides]
        df = bcompare(*sides, alpha=a.alpha)
        if a.report:
            from .view import report as rep
            print(f"report: {rep.comparison_report(df, a.report, a=a.run_a, b=a.run_b)}", file=sys.stderr)
        print(df.to_json(orient="records", indent=2) if a.json else format_table(df))
        return 0
    from .measure.compare import compare
    df = compare(a.run_a, a.run_b, alpha=a.alpha)
    if a.json:
        print(df.to_json(orient="records", indent=2))
    else:
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(df) else "no shared points")
    return 0


def cmd_bench(a) -> int:
    import dataclasses

    from .bench.run import DEFAULT_POLICY, bench
    from .builder.toolchain import ALL_BACKENDS
    from .view import report as rep

    backends = [b for b in a.backends.split(",") if b] if a.backends else _working_backends(
        ("c", "multicore", "opencl", "cuda"), a.quiet)
    for b in backends:
        if b not in ALL_BACKENDS:
            raise SystemExit(f"error: unknown backend {b!r}; choose from {', '.join(ALL_BACKENDS)}")
    if not 0 <= a.idle_us < 1e7:
        raise SystemExit(f"error: --idle-us must be microseconds from 0 to 10,000,000, got {a.idle_us}")
    policy = dataclasses.replace(DEFAULT_POLICY, max_time_s=a.max_time, min_time_s=min(a.min_time, a.max_time),
                                 min_samples=a.runs)
    cluster, close = _cluster(a)
    try:
        df = bench(a.program, backends, entry=a.entry, exclude=tuple(a.exclude or ()), run_id=a.run_id,
                   results=a.results, policy=policy, progress=not a.quiet, idle_s=a.idle_us * 1e-6,
                   cluster=cluster, exclusive=a.exclusive)
    finally:
        close()
    cols = [c for c in ("kernel", "dataset", "impl", "time_s_median", "time_s_mean", "n", "memory_bytes", "correct",
                        "error") if c in df]
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
    from .measure.store import results_dir
    path = rep.report(df, a.report or Path(a.results or results_dir()) / df.attrs["run_id"] / "report.html")
    print(f"report: {path}\nrun: {df.attrs.get('run_id')}")
    bad = ("correct" in df and (df["correct"] == False).any()) or ("error" in df and df["error"].notna().any())  # noqa: E712
    return 1 if bad else 0


def cmd_import(a) -> int:
    from .bench.jsonimport import import_json
    from .view import report as rep

    df = import_json(a.files, run_id=a.run_id, results=a.results, backend=a.backend, impl=a.impl)
    print(f"imported {len(df)} program/dataset rows from {len(a.files)} file(s) into run {df.attrs['run_id']}")
    if a.report:
        print(f"report: {rep.report(df, a.report)}")
    return 0


def cmd_doctor(a) -> int:
    from .builder.toolchain import ALL_BACKENDS
    from .runtime.doctor import doctor, format_table

    backends = a.backends.split(",") if a.backends else list(ALL_BACKENDS)
    statuses = doctor(backends, as_frame=False)
    if a.json:
        print(json.dumps([{"backend": s.backend, "works": s.works, "on_gpu": s.on_gpu, "device": s.device,
                           "cause": s.cause, "fix": s.fix, "checks": s.checks} for s in statuses], indent=2))
    else:
        print(format_table(statuses))
        print("\nDetails and fixes: environment.md (troubleshooting).")
    return 0 if any(s.works for s in statuses) else 1


def _cluster_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", metavar="N|gpus",
                   help="measure on a local Dask cluster of N workers (compiles overlap, timings never do), or "
                        "'gpus': one worker per GPU and one for the CPU")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="measure on the Dask cluster at ADDRESS (tcp://host:8786); programs and data files must be "
                        "readable on its workers")
    p.add_argument("--exclusive", choices=("host", "device"), default="host",
                   help="on a cluster: one timing per host at a time (default), or one per device")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="futhark-lab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="sweep one kernel of the suite over backends and sizes",
                       description="Measure a kernel on Futhark backends, PyTorch and NumPy; write DataFrame rows "
                                   "to results/<run-id>/points.jsonl and an HTML report.")
    r.add_argument("source", help="a suite kernel's .fut file (e.g. kernels/sum_squares.fut) or its name")
    r.add_argument("--backends", help="comma-separated futhark backends (default: those that work here)")
    r.add_argument("--sizes", help="LO:HI[:PER_DECADE] (e.g. 1e3:1e8) or a comma list (default: the kernel's)")
    r.add_argument("--dtypes", help="comma-separated dtypes, e.g. f32,f64 (default: the kernel's)")
    r.add_argument("--torch", help="PyTorch devices, e.g. cpu,cuda (default: all available; '' for none)")
    r.add_argument("--no-numpy", action="store_true", help="leave NumPy out")
    r.add_argument("--copy", action="store_true",
                   help="also time Futhark with inputs copied from NumPy on every call (the seeds' trap)")
    r.add_argument("--pinned", action="store_true",
                   help="with --copy on cuda: also copy from page-locked (pinned) host memory, as a careful user does")
    r.add_argument("--report", help="HTML report path (default: results/<run-id>/report.html)")
    r.add_argument("--run-id", help="resume or name a run (default: a new id)")
    r.add_argument("--results", help="results directory (default: ./results)")
    r.add_argument("--max-time", type=float, default=2.0, help="seconds per point at most (default 2)")
    r.add_argument("--min-time", type=float, default=0.1, help="seconds per point at least (default 0.1)")
    r.add_argument("--noise", type=float, default=0.01, help="stop when the median's 95%% CI is within this")
    r.add_argument("--cold", action="store_true",
                   help="also measure cold: flush the L2 (GPU) or last-level cache (CPU) before each sample")
    _cluster_arguments(r)
    r.add_argument("-q", "--quiet", action="store_true")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="the whole kernel suite on every working backend, with an HTML report")
    d.add_argument("--report", help="HTML report path (default: results/<run-id>/report.html)")
    d.add_argument("--kernels", help="comma-separated subset of the suite")
    d.add_argument("--max-size", default="1e6", help="largest problem size (default 1e6)")
    d.add_argument("--max-time", type=float, default=0.6, help="seconds per point at most (default 0.6)")
    d.add_argument("--run-id")
    d.add_argument("--results")
    _cluster_arguments(d)
    d.add_argument("-q", "--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)

    g = sub.add_parser("generate", help="run futhark here for a machine without it ($FUTHARK_LAB_GENERATED there)",
                       description="Store futhark's output (C or Python) for each source and backend under OUT; on "
                                   "a machine without futhark, set FUTHARK_LAB_GENERATED=OUT and compile as usual: "
                                   "only the C compiler runs there.")
    g.add_argument("sources", nargs="+", help=".fut files")
    g.add_argument("--backends", required=True, help="comma-separated, e.g. cuda,opencl,pyopencl")
    g.add_argument("--out", required=True, help="directory to write into")
    g.set_defaults(func=cmd_generate)

    rp = sub.add_parser("report", help="write the HTML report of a finished run")
    rp.add_argument("run", help="results/<run-id> directory or run id")
    rp.add_argument("--out", help="HTML path (default: results/<run-id>/report.html)")
    rp.add_argument("--export", metavar="DIR", help="also write points.csv and each figure as PNG into DIR")
    rp.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="compare two runs point by point (Mann-Whitney U on raw samples)")
    c.add_argument("run_a")
    c.add_argument("run_b")
    c.add_argument("--alpha", type=float, default=0.01)
    c.add_argument("--json", action="store_true")
    c.add_argument("--report", help="benchmark runs/JSON files: also write the comparison as an HTML report here")
    c.add_argument("--impl", help="benchmark runs: use this implementation (e.g. futhark-c) of a run that has several")
    c.set_defaults(func=cmd_compare)

    b = sub.add_parser("bench", help="run a program's `-- ==` datasets (as futhark bench does) on several backends",
                       description="Read the program's `-- ==` blocks (inline, @ file and random inputs), run every "
                                   "dataset through futhark-lab's binding on each backend, check `output` blocks, "
                                   "and store the results like a sweep (results/<run-id>/points.jsonl, resumable) "
                                   "with an HTML report.")
    b.add_argument("program", help="a .fut file with `-- ==` blocks")
    b.add_argument("--backends", help="comma-separated futhark backends (default: those that work here)")
    b.add_argument("-e", "--entry", help="only this entry point (futhark bench --entry-point)")
    b.add_argument("--exclude", action="append", metavar="TAG",
                   help="skip datasets with this tag (repeatable; nobench, disable and no_<backend> always are)")
    b.add_argument("-r", "--runs", type=int, default=10, help="at least this many runs per dataset (default 10)")
    b.add_argument("--min-time", type=float, default=0.5, help="seconds per dataset at least (default 0.5)")
    b.add_argument("--max-time", type=float, default=3.0, help="seconds per dataset at most (default 3)")
    b.add_argument("--idle-us", type=float, default=0.0, metavar="µS",
                   help="leave the device idle this long before each run (futhark bench's server round trips leave "
                        "~30 µs; default 0: back to back)")
    b.add_argument("--report", help="HTML report path (default: results/<run-id>/report.html)")
    b.add_argument("--run-id", help="resume or name a run")
    b.add_argument("--results", help="results directory (default: ./results)")
    _cluster_arguments(b)
    b.add_argument("-q", "--quiet", action="store_true")
    b.set_defaults(func=cmd_bench)

    im = sub.add_parser("import", help="import futhark bench --json files (any machine, any backend) as a run")
    im.add_argument("files", nargs="+", help="JSON files written by futhark bench --json")
    im.add_argument("--backend", help="the backend they were run with (the JSON does not say)")
    im.add_argument("--impl", help="label for their rows (default futhark-<backend>, or the file name)")
    im.add_argument("--run-id")
    im.add_argument("--results")
    im.add_argument("--report", help="also write the HTML report here")
    im.set_defaults(func=cmd_import)

    dr = sub.add_parser("doctor", help="which backends work here, and why the others don't")
    dr.add_argument("--backends", help="comma-separated subset")
    dr.add_argument("--json", action="store_true", help="machine-readable output")
    dr.set_defaults(func=cmd_doctor)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .errors import FutharkLabError
    try:
        return args.func(args)
    except (FutharkLabError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
