"""`futhark-lab run`: sweep one kernel over backends, peers and sizes."""

from __future__ import annotations

from pathlib import Path

from .common import (
    add_cluster_arguments,
    cluster_from_args,
    implementations,
    load_suite,
    parse_peers,
    parse_sizes,
    peer_implementations,
    print_summary,
    torch_devices,
    working_backends,
)


def main(a) -> int:
    from ..measure.timing import Policy
    from ..sweep.run import sweep
    from ..view import report as rep

    suite = load_suite()
    kernel = suite.for_source(a.source) if a.source.endswith(".fut") else suite.KERNELS.get(a.source)
    if kernel is None:
        raise SystemExit(f"error: {a.source} is not a kernel of the suite ({', '.join(suite.KERNELS)}); "
                         "use the Python API (futhark_lab.sweep with a Kernel) for other programs")
    backends = [b for b in a.backends.split(",") if b] if a.backends else working_backends(
        ("c", "multicore", "opencl", "cuda"), a.quiet)
    impls = implementations(backends, torch_devices(a.torch), not a.no_numpy, a.copy, kernel, a.pinned)
    impls += peer_implementations(parse_peers(a.peers), torch_devices(a.torch), kernel, a.quiet)
    policy = Policy(max_time_s=a.max_time, min_time_s=min(a.min_time, a.max_time), max_noise=a.noise, cold=a.cold)
    cluster, close = cluster_from_args(a)
    try:
        df = sweep(kernel, impls, sizes=parse_sizes(a.sizes), dtypes=a.dtypes.split(",") if a.dtypes else None,
                   run_id=a.run_id, results=a.results, policy=policy, progress=not a.quiet, on_error="warn",
                   cluster=cluster, exclusive=a.exclusive)
    finally:
        close()
    print_summary(df)
    path = rep.report(df, a.report)
    print(f"report: {path}\nresults: {Path(path).parent if a.report is None else df.attrs.get('run_id')}")
    return 0 if df.get("correct", True).pipe(lambda s: (s != False).all()) else 1  # noqa: E712


def add(sub) -> None:
    p = sub.add_parser("run", help="sweep one kernel of the suite over backends and sizes",
                       description="Measure a kernel on Futhark backends, PyTorch, NumPy and peers; write DataFrame "
                                   "rows "
                                   "to results/<run-id>/points.jsonl and an HTML report.")
    p.add_argument("source", help="a suite kernel's .fut file (e.g. kernels/sum_squares.fut) or its name")
    p.add_argument("--backends", help="comma-separated futhark backends (default: those that work here)")
    p.add_argument("--sizes", help="LO:HI[:PER_DECADE] (e.g. 1e3:1e8) or a comma list (default: the kernel's)")
    p.add_argument("--dtypes", help="comma-separated dtypes, e.g. f32,f64 (default: the kernel's)")
    p.add_argument("--torch", help="PyTorch devices, e.g. cpu,cuda (default: all available; '' for none)")
    p.add_argument("--no-numpy", action="store_true", help="leave NumPy out")
    p.add_argument("--peers", default="",
                   help="peer libraries too, comma-separated: jax,torch-compile,numba,cupy,triton,pycuda or 'all' "
                        "(each on every device it works on here; one that cannot run is skipped with its install "
                        "line)")
    p.add_argument("--copy", action="store_true",
                   help="also time Futhark with inputs copied from NumPy on every call (the seeds' trap)")
    p.add_argument("--pinned", action="store_true",
                   help="with --copy on cuda: also copy from page-locked (pinned) host memory, as a careful user does")
    p.add_argument("--report", help="HTML report path (default: results/<run-id>/report.html)")
    p.add_argument("--run-id", help="resume or name a run (default: a new id)")
    p.add_argument("--results", help="results directory (default: ./results)")
    p.add_argument("--max-time", type=float, default=2.0, help="seconds per point at most (default 2)")
    p.add_argument("--min-time", type=float, default=0.1, help="seconds per point at least (default 0.1)")
    p.add_argument("--noise", type=float, default=0.01, help="stop when the median's 95%% CI is within this")
    p.add_argument("--cold", action="store_true",
                   help="also measure cold: flush the L2 (GPU) or last-level cache (CPU) before each sample")
    add_cluster_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=main)
