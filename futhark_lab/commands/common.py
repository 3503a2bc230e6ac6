"""What several subcommands share: sizes, implementations, working backends, a cluster, the summary."""

from __future__ import annotations

import argparse
import sys


def load_suite():
    from ..suite import load
    try:
        return load()
    except FileNotFoundError as exc:
        raise SystemExit(f"error: {exc}") from None


def parse_sizes(text: str | None) -> list[int] | None:
    """'1e3:1e8' (decades), '1e3:1e8:2' (2 per decade), or '1000,5000,1e6'."""
    if not text:
        return None
    from ..sweep.run import sizes_between
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


def parse_futharks(text: str | None) -> list[str | None]:
    """``--futhark PATH,...``: compilers to compare; ``default`` is the one found as usual ($FUTHARK, then PATH)."""
    if not text:
        return [None]
    out: list[str | None] = []
    for w in text.split(","):
        w = w.strip()
        if not w:
            continue
        out.append(None if w == "default" else w)
    if not out:
        raise SystemExit(f"error: --futhark {text!r}: give compiler paths separated by commas ('default' for "
                         "the usual one)")
    from ..builder.toolchain import find_futhark
    from ..errors import FutharkNotFound
    try:
        for f in out:
            if f is not None:
                find_futhark(f)
        if len(out) > 1:   # compared: every implementation's label names its compiler's version
            out = [f if f is not None else find_futhark().path for f in out]
    except FutharkNotFound as exc:
        raise SystemExit(f"error: --futhark: {exc}") from None
    return out


def implementations(backends: list[str], torch_devices: list[str], numpy: bool, copy: bool, kernel,
           pinned: bool = False, futharks: list[str | None] = (None,)) -> list:
    from ..builder.toolchain import ALL_BACKENDS
    from ..sweep.impls.futhark import futhark
    from ..sweep.impls.numpy_cpu import numpy_impl
    from ..sweep.impls.torch_eager import torch

    impls = []
    for b in backends:
        if b not in ALL_BACKENDS:
            raise SystemExit(f"error: unknown backend {b!r}; choose from {', '.join(ALL_BACKENDS)}")
        for f in futharks:
            impls.append(futhark(b, futhark=f))
            if copy:
                impls.append(futhark(b, resident=False, futhark=f))
            if copy and pinned and b == "cuda":  # what a careful user pays: the copy from page-locked memory
                impls.append(futhark(b, resident=False, pinned=True, futhark=f))
    for dev in torch_devices:
        for variant in kernel.torch:
            impls.append(torch(dev, None if variant == "default" else variant))
    if numpy:
        impls.append(numpy_impl())
    return impls


#: The doctor's verdicts of this process, by backend (``working_backends`` fills it).
STATUS: dict = {}


PEER_NAMES = ("jax", "torch-compile", "numba", "cupy", "triton", "pycuda")


def parse_peers(text: str | None) -> list[str]:
    """'jax,numba' → the names; 'all' → every peer; '' or None → none."""
    if not text:
        return []
    names = [p.strip() for p in text.split(",") if p.strip()]
    if names == ["all"]:
        return list(PEER_NAMES)
    bad = [n for n in names if n not in PEER_NAMES]
    if bad:
        raise SystemExit(f"error: --peers: unknown peer(s) {', '.join(bad)}; choose from {', '.join(PEER_NAMES)} "
                         "or 'all'")
    return names


_AVAILABLE: dict = {}
_SAID: set = set()


def _say(quiet: bool, line: str) -> None:
    if not quiet and line not in _SAID:
        _SAID.add(line)
        print(line, file=sys.stderr)


def peer_implementations(names: list[str], torch_devs: list[str], kernel, quiet: bool) -> list:
    """The peers' implementations for ``kernel``: every device a peer works on here (torch.compile: the PyTorch
    devices asked for) and every variant the kernel has; the others are skipped with the reason and install line."""
    from ..sweep.impls import PEER_DEVICES
    from ..sweep.impls import peer as peermod

    impls = []
    for name, module, devices in PEER_DEVICES:
        if name not in names:
            continue
        for dev in devices:
            if name == "torch-compile" and dev not in torch_devs:
                continue
            key = "numba-cuda" if (name, dev) == ("numba", "cuda") else name
            if key == "torch-compile":
                variants = [None if v == "default" else v for v in kernel.torch] if "torch-compile" not in \
                    kernel.peers else peermod.variants(kernel, key)
            else:
                variants = peermod.variants(kernel, key)
            if not variants:
                _say(quiet, f"  {key + '-' + dev:18} skipped: kernel {kernel.name!r} has no {key} version")
                continue
            if (name, dev) not in _AVAILABLE:
                _AVAILABLE[name, dev] = module.available(dev)
            works, why = _AVAILABLE[name, dev]
            if not works:
                _say(quiet, f"  {key + '-' + dev:18} skipped: {why}")
                continue
            for v in variants:
                if name == "torch-compile":
                    impls.append(module.torch_compile(dev, v))
                elif dev == "cuda" and name in ("cupy", "triton", "pycuda"):
                    impls.append(getattr(module, name)(v))
                else:
                    impls.append(getattr(module, name)(dev, v))
    return impls


def working_backends(candidates: tuple[str, ...], quiet: bool) -> list[str]:
    """The backends that work here, each checked by the doctor (its words: ok with the device, or FAILS with
    the cause; an OpenCL platform on the CPU is named as such)."""
    from ..runtime.doctor import check_backend, describe

    ok = []
    for b in candidates:
        s = STATUS[b] = check_backend(b)
        if not quiet:
            print(f"  {describe(s)}", file=sys.stderr)
        if s.works:
            ok.append(b)
    return ok


def gpu_impls(impls: list) -> list:
    """The implementations that run on a GPU here (a backend the doctor found on a CPU platform is not one)."""
    from ..sweep.devicesizes import on_gpu
    return [i for i in impls if on_gpu(i) and (i.kind != "futhark" or i.backend not in STATUS
                                               or STATUS[i.backend].on_gpu)]


def sweep_on_devices(kernel, impls: list, sizes: list[int], gpu_sizes: list[int], *, numpy_too: bool = True,
                     **kw):
    """Every implementation at ``sizes``; then the GPU's implementations (and NumPy, the baseline of the summary)
    at ``gpu_sizes`` too, where a GPU shows its bandwidth and a CPU implementation would take minutes."""
    from ..sweep.run import sweep

    df = sweep(kernel, impls, sizes=sizes, **kw) if sizes else None
    gpus = gpu_impls(impls)
    if gpu_sizes and gpus:
        extra = gpus + ([i for i in impls if i.kind == "numpy"] if numpy_too else [])
        df = sweep(kernel, extra, sizes=gpu_sizes, **kw)
    if df is None:
        df = sweep(kernel, impls, sizes=sizes, **kw)
    return df


def torch_devices(want: str | None) -> list[str]:
    if want is not None:
        return [d for d in want.split(",") if d]
    try:
        import torch
    except ImportError:
        return []
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def cluster_from_args(a):
    """(cluster for sweep(), closer) from --workers / --scheduler: None when neither is given."""
    workers, scheduler = getattr(a, "workers", None), getattr(a, "scheduler", None)
    if workers is None and scheduler is None:
        return None, lambda: None
    if workers is not None and scheduler is not None:
        raise SystemExit("error: give --workers N (a local Dask cluster) or --scheduler ADDRESS, not both")
    if workers is not None and workers != "gpus" and not (workers.isdigit() and int(workers) >= 1):
        raise SystemExit(f"error: --workers {workers}: give a number of workers (at least 1), or 'gpus'")
    try:
        from ..measure.cluster import connect
    except ImportError as exc:
        raise SystemExit(f"error: {exc}") from None
    from ..errors import FutharkLabError
    try:
        return connect(f"local:{workers}" if workers is not None else scheduler)
    except FutharkLabError as exc:
        raise SystemExit(f"error: {exc}") from None


#: The per-point table is printed when a run has at most this many rows (the report always has it whole).
TABLE_ROWS = 60


def print_summary(df) -> None:
    """The per-point table (for runs small enough to read), then the summary: the answer is the last thing shown."""
    from ..view.summary import text

    cols = [c for c in ("kernel", "impl", "size", "dtype", "time_s_median", "gbps", "correct", "error") if c in df]
    if 0 < len(df) <= TABLE_ROWS:
        import pandas as pd
        shown = df[cols].copy()
        if "error" in shown:  # the first line of an error is enough here; failures are printed whole below
            shown["error"] = shown["error"].map(lambda e: "" if not isinstance(e, str) else e.splitlines()[0][:70])
        with pd.option_context("display.width", 200, "display.max_rows", TABLE_ROWS):
            print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    elif len(df):
        print(f"({len(df)} points: the per-point table is in the report)")
    print(text(df))


def print_failures(df, what: str = "size") -> bool:
    """Print to stderr, whole, the error of every (kernel, implementation) that failed at every point (a compile
    error, a backend that does not work here); return whether there was one."""
    if "error" not in df or not len(df):
        return False
    failed = False
    for (kernel, impl), g in df.groupby(["kernel", "impl"], sort=False):
        errs = g["error"]
        if errs.map(lambda e: isinstance(e, str)).all():
            failed = True
            print(f"\nerror: {impl} failed at every {what} of {kernel}:\n{str(errs.iloc[0]).rstrip()}",
                  file=sys.stderr)
    return failed


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", metavar="N|gpus",
                   help="measure on a local Dask cluster of N workers (compiles overlap, timings never do), or "
                        "'gpus': one worker per GPU and one for the CPU")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="measure on the Dask cluster at ADDRESS (tcp://host:8786); programs and data files must be "
                        "readable on its workers")
    p.add_argument("--exclusive", choices=("host", "device"), default="host",
                   help="on a cluster: one timing per host at a time (default), or one per device")


def failed(df) -> bool:
    """Whether a run's rows hold a wrong answer or an error: such a run exits 1 (bench, tune)."""
    return bool(("correct" in df and (df["correct"] == False).any())  # noqa: E712
                or ("error" in df and df["error"].notna().any()))
