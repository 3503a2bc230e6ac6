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


def implementations(backends: list[str], torch_devices: list[str], numpy: bool, copy: bool, kernel,
           pinned: bool = False) -> list:
    from ..builder.toolchain import ALL_BACKENDS
    from ..sweep.impls.futhark import futhark
    from ..sweep.impls.numpy_cpu import numpy_impl
    from ..sweep.impls.torch_eager import torch

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
    from ..runtime.doctor import check_backend

    ok = []
    for b in candidates:
        s = check_backend(b)
        if not quiet:
            print(f"  {b:10} {'ok: ' + s.device if s.works else 'skipped: ' + s.cause}", file=sys.stderr)
        if s.works:
            ok.append(b)
    return ok


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


def print_summary(df) -> None:
    cols = [c for c in ("kernel", "impl", "size", "dtype", "time_s_median", "gbps", "correct", "error") if c in df]
    if len(df):
        import pandas as pd
        shown = df[cols].copy()
        if "error" in shown:  # the first line of an error is enough here; the report has it whole
            shown["error"] = shown["error"].map(lambda e: "" if not isinstance(e, str) else e.splitlines()[0][:70])
        with pd.option_context("display.width", 200, "display.max_rows", 80):
            print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", metavar="N|gpus",
                   help="measure on a local Dask cluster of N workers (compiles overlap, timings never do), or "
                        "'gpus': one worker per GPU and one for the CPU")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="measure on the Dask cluster at ADDRESS (tcp://host:8786); programs and data files must be "
                        "readable on its workers")
    p.add_argument("--exclusive", choices=("host", "device"), default="host",
                   help="on a cluster: one timing per host at a time (default), or one per device")
