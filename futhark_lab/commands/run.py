"""`futhark-lab run`: sweep a kernel of the suite, or an entry point of your own .fut file, over backends, peers
and sizes."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import (
    add_cluster_arguments,
    cluster_from_args,
    implementations,
    load_suite,
    parse_futharks,
    parse_peers,
    parse_sizes,
    peer_implementations,
    print_failures,
    print_summary,
    sweep_on_devices,
    torch_devices,
    working_backends,
)


def _user_kernel(a, sizes):
    """The Kernel of the user's program: compiled on c first (the reference answer, and the place a compile error
    is shown whole), the entry point and --inputs checked against its signature."""
    from ..errors import FutharkCompileError
    from ..runtime.loader import compile as fcompile
    from ..sweep.userkernel import (
        InputSpecError,
        c_reference,
        check_against_entry,
        inputs_from_entry,
        parse_inputs,
        user_kernel,
    )

    path = Path(a.source)
    try:
        ref = fcompile(path, "c")
    except FutharkCompileError as exc:
        print(f"error: futhark could not compile {path}:\n{exc.message.rstrip()}", file=sys.stderr)
        raise SystemExit(2) from None
    entries = ref.entry_points
    entry = a.entry
    if entry is None:
        if len(entries) != 1:
            raise SystemExit(f"error: {path} has {len(entries)} entry points ({', '.join(entries) or 'none'}); "
                             "say which to sweep with --entry NAME")
        entry = next(iter(entries))
    if entry not in entries:
        raise SystemExit(f"error: {path} has no entry point {entry!r}; it has {', '.join(entries) or 'none'}")
    params = ref.manifest.entry_points[entry].inputs
    try:
        types = parse_inputs(a.inputs) if a.inputs else inputs_from_entry([p.type for p in params])
        check_against_entry(str(path), entry, types, params)
    except InputSpecError as exc:
        raise SystemExit(f"error: {exc}") from None
    if not a.inputs and not a.quiet:
        print(f"--inputs not given: using {' '.join(t.text for t in types)} (every dimension the swept size n)",
              file=sys.stderr)
    return user_kernel(path, entry, types, reference=c_reference(ref, entry, path), sizes=sizes), types


def main(a) -> int:
    from ..measure.timing import Policy
    from ..sweep.devicesizes import gpu_sizes
    from ..view import report as rep

    suite = load_suite()
    sizes = parse_sizes(a.sizes)
    source = a.source
    is_file = source.endswith(".fut") or "/" in source or Path(source).exists()
    kernel = suite.KERNELS.get(source) if not is_file else None
    types = None
    if is_file:
        if not source.endswith(".fut"):
            raise SystemExit(f"error: {source}: give a Futhark program (a .fut file) or a suite kernel's name "
                             f"({', '.join(suite.KERNELS)})")
        if not Path(source).is_file():
            raise SystemExit(f"error: {source} does not exist" + ("" if not Path(source).exists() else
                                                                   " as a file"))
        kernel = suite.for_source(source) if a.entry is None and a.inputs is None else None
        if kernel is None:
            kernel, types = _user_kernel(a, sizes)
    elif kernel is None:
        raise SystemExit(f"error: {source!r} is neither a kernel of the suite ({', '.join(suite.KERNELS)}) nor a "
                         ".fut file")
    backends = [b for b in a.backends.split(",") if b] if a.backends else working_backends(
        ("c", "multicore", "opencl", "cuda"), a.quiet)
    peers = types is None  # PyTorch and NumPy know the suite's kernels, not a user's program
    impls = implementations(backends, torch_devices(a.torch) if peers else [], peers and not a.no_numpy, a.copy,
                            kernel, a.pinned, parse_futharks(a.futhark))
    dtypes = a.dtypes.split(",") if a.dtypes else None
    if types is not None and dtypes:
        raise SystemExit("error: --dtypes is for the suite's kernels; your program's types come from --inputs")
    if sizes is None:  # the kernel's sizes, and on a GPU the larger ones where its bandwidth shows
        cpu_sizes = list(kernel.sizes)
        extra = gpu_sizes(kernel, dtypes or kernel.dtypes, above=max(cpu_sizes))
    else:
        cpu_sizes, extra = sizes, []
    if types is not None:
        _check_memory(types, cpu_sizes + extra)
    if not peers and a.peers:
        raise SystemExit("error: --peers is for the suite's kernels (they carry each peer's version); for your "
                         "program, write a Kernel with peers= in Python (docs/peers.md)")
    if peers:
        impls += peer_implementations(parse_peers(a.peers), torch_devices(a.torch), kernel, a.quiet)
    policy = Policy(max_time_s=a.max_time, min_time_s=min(a.min_time, a.max_time), max_noise=a.noise, cold=a.cold)
    from ..measure.store import new_run_id
    run_id = a.run_id or new_run_id()  # one run, however many sweeps it takes
    cluster, close = cluster_from_args(a)
    try:
        df = sweep_on_devices(kernel, impls, cpu_sizes, extra, dtypes=dtypes, run_id=run_id, results=a.results,
                              policy=policy, progress=not a.quiet, on_error="record", cluster=cluster,
                              exclusive=a.exclusive)
    finally:
        close()
    failed = print_failures(df)
    print_summary(df)
    path = rep.report(df, a.report)
    print(f"report: {path}\nresults: {Path(path).parent if a.report is None else df.attrs.get('run_id')}")
    wrong = "correct" in df and (df["correct"] == False).any()  # noqa: E712
    return 1 if failed or wrong else 0


def _check_memory(types, sizes) -> None:
    """Refuse sizes whose inputs cannot fit this machine's memory, naming the size and the input types."""
    from ..sweep.devicesizes import host_memory
    from ..sweep.userkernel import input_bytes

    mem = host_memory()
    if not mem or not sizes:
        return
    n = max(sizes)
    need = 3 * input_bytes(types, n)  # inputs, a device copy, and as much for results
    if need > mem:
        raise SystemExit(f"error: at n = {n:,} the inputs {' '.join(t.text for t in types)} take "
                         f"{input_bytes(types, n) / 2**30:.3g} GiB ({need / 2**30:.3g} GiB with copies and results), "
                         f"more than this machine's {mem / 2**30:.3g} GiB; give smaller --sizes")


def add(sub) -> None:
    p = sub.add_parser("run", help="sweep a kernel of the suite, or an entry point of your own .fut file",
                       description="Measure a kernel on Futhark backends (and, for the suite's kernels, PyTorch and "
                                   "NumPy); write DataFrame rows to results/<run-id>/points.jsonl and an HTML "
                                   "report. Your own program: futhark-lab run my.fut --entry NAME --inputs "
                                   "\"[n]f32 [n]f32\" --sizes 1e3:1e7 (futhark's type syntax, n the swept size).")
    p.add_argument("source", help="a .fut file (yours, or a suite kernel's such as kernels/sum_squares.fut) or the "
                                  "name of a suite kernel")
    p.add_argument("--entry", help="your program's entry point (default: its only one)")
    p.add_argument("--inputs", metavar="TYPES",
                   help="your entry point's parameters in futhark's type syntax, n the swept size, e.g. "
                        "\"[n]f32 [n]f32\", \"[n][n]f64\", \"[n]i32 i64\"; a constant (2.5f32) or n itself also "
                        "work. Random: floats in [0,1), integers in [0,100). Default: the entry's types, every "
                        "dimension n")
    p.add_argument("--backends", help="comma-separated futhark backends (default: those that work here)")
    p.add_argument("--futhark", metavar="PATH,...",
                   help="futhark compilers to compare (e.g. default,/opt/futhark-0.27.1/bin/futhark): one "
                        "implementation per backend and compiler, labelled @<version>")
    p.add_argument("--sizes", help="LO:HI[:PER_DECADE] (e.g. 1e3:1e8) or a comma list (default: the kernel's; on a "
                                   "GPU also larger ones that fit its memory)")
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
