"""`futhark-lab demo`: the whole kernel suite on every working backend, with a report."""

from __future__ import annotations

import sys

from .common import (
    add_cluster_arguments,
    cluster_from_args,
    implementations,
    load_suite,
    print_failures,
    parse_peers,
    peer_implementations,
    print_summary,
    sweep_on_devices,
    torch_devices,
    working_backends,
)

#: The python backend interprets Futhark's code: the demo shows it only up to this size.
PYTHON_BACKEND_MAX_SIZE = 10_000


def main(a) -> int:
    from ..measure.store import new_run_id
    from ..measure.timing import Policy
    from ..view import report as rep

    suite = load_suite()
    print("checking backends (futhark-lab doctor):", file=sys.stderr)
    backends = working_backends(("c", "multicore", "opencl", "cuda", "pyopencl", "python"), False)
    if not backends:
        print("no futhark backend works here (see above); the demo measures NumPy and PyTorch only",
              file=sys.stderr)
    run_id = a.run_id or new_run_id("demo")
    try:
        sizes_cap = None if a.max_size == "auto" else int(float(a.max_size))
    except ValueError:
        raise SystemExit(f"error: --max-size {a.max_size!r}: give a number such as 1e6, or auto") from None
    policy = Policy(max_time_s=a.max_time, min_time_s=min(0.1, a.max_time), max_noise=0.02)
    frames = []
    cluster, close = cluster_from_args(a)
    try:
        _demo_sweeps(a, suite, backends, run_id, sizes_cap, policy, frames, cluster)
    finally:
        close()
    df = frames[-1]  # each sweep returns the whole run so far
    print_failures(df)
    print_summary(df)
    path = rep.report(df, a.report, title="The kernel suite (futhark-lab demo)")  # also what `report` calls it
    print(f"report: {path}")
    return 0


#: Without --max-size: every implementation up to this size (CPU implementations take seconds per point beyond);
#: a GPU's implementations (with NumPy, the summary's baseline) also at the larger sizes that fit its memory.
CPU_MAX_SIZE = 10**6


def _demo_sweeps(a, suite, backends, run_id, sizes_cap, policy, frames, cluster) -> None:
    from ..sweep.devicesizes import gpu_sizes
    from ..sweep.run import sweep

    for name in (a.kernels.split(",") if a.kernels else suite.KERNELS):
        kernel = suite.get(name)
        # pyopencl's generated host code is slow at tiny sizes but fine as a demo of a working path
        impls = implementations([b for b in backends if b != "python"], torch_devices(None), True, False, kernel)
        impls += peer_implementations(parse_peers(a.peers), torch_devices(None), kernel, a.quiet)
        cap = CPU_MAX_SIZE if sizes_cap is None else sizes_cap
        sizes = [n for n in kernel.sizes if n <= cap]
        large = gpu_sizes(kernel, kernel.dtypes[:1], above=cap) if sizes_cap is None else []
        frames.append(sweep_on_devices(kernel, impls, sizes, large, dtypes=kernel.dtypes[:1], run_id=run_id,
                                       results=a.results, policy=policy, rounds=2, progress=not a.quiet,
                                       on_error="record", cluster=cluster, exclusive=a.exclusive))
        if "python" in backends:  # interpreted: shown at the small sizes only, where it finishes in seconds
            small = [n for n in sizes if n <= PYTHON_BACKEND_MAX_SIZE] or sizes[:1]
            frames.append(sweep(kernel, implementations(["python"], [], False, False, kernel), sizes=small,
                                dtypes=kernel.dtypes[:1], run_id=run_id, results=a.results, policy=policy,
                                rounds=2, progress=not a.quiet, on_error="record", cluster=cluster,
                                exclusive=a.exclusive))


def add(sub) -> None:
    p = sub.add_parser("demo", help="the whole kernel suite on every working backend, with an HTML report")
    p.add_argument("--report", help="HTML report path (default: results/<run-id>/report.html)")
    p.add_argument("--kernels", help="comma-separated subset of the suite")
    p.add_argument("--max-size", default="auto",
                   help="largest problem size (default auto: 1e6 for every implementation, and on a GPU its "
                        "implementations and NumPy also at larger sizes that fit its memory, up to 1e8 elements)")
    p.add_argument("--max-time", type=float, default=0.6, help="seconds per point at most (default 0.6)")
    p.add_argument("--peers", default="all",
                   help="peer libraries, comma-separated (jax,torch-compile,numba,cupy,triton,pycuda); default "
                        "'all': every one that works here, the others skipped with their install line; '' for none")
    p.add_argument("--run-id")
    p.add_argument("--results")
    add_cluster_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=main)
