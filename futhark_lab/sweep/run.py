"""Declarative sweeps (in the spirit of ``triton.testing.perf_report``) into tidy, durable DataFrames.

A ``Kernel`` says what to compute (Futhark source + entry, NumPy reference, PyTorch equivalent), how to make seeded
inputs for a size, and how many bytes and flops one call moves and does.  ``Impl``s say who computes it (Futhark on a
backend, PyTorch on a device, NumPy, any callable).  ``sweep`` measures every implementation at every size and
dtype, interleaving implementations within rounds, checking each answer against the reference, and appending every
finished point to ``results/<run_id>/points.jsonl`` at once, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..measure.store import RunStore, load_run, new_run_id
from ..measure.timing import Policy
from . import anomalies
from .failures import ON_ERROR, _report_failures
from .impl import Impl
from .kernel import Kernel
from .point import PointRunner

# --------------------------------------------------------------------------- the sweep

def sizes_between(lo: float, hi: float, per_decade: int = 1) -> list[int]:
    """Log-spaced sizes from lo to hi inclusive (``1e3:1e8`` on the command line)."""
    n = int(round(math.log10(hi / lo) * per_decade))
    return sorted({int(round(v)) for v in np.logspace(math.log10(lo), math.log10(hi), n + 1)})


def sweep(
    kernels: Kernel | Iterable[Kernel],
    impls: Sequence[Impl],
    *,
    sizes: Sequence[int] | None = None,
    dtypes: Sequence[str] | None = None,
    run_id: str | None = None,
    results: str | os.PathLike | None = None,
    policy: Policy | None = None,
    rounds: int = 3,
    seed: int = 0,
    progress: bool = True,
    hardware: Any = "auto",
    on_error: str = "raise-if-all",
    on_point: Callable[[int, int], None] | None = None,
    cluster: Any = None,
    exclusive: str = "host",
    remeasure: bool = True,
):
    """Measure ``impls`` on ``kernels`` over ``sizes`` × ``dtypes``; return a tidy DataFrame (one row per point).

    Re-running with the same ``run_id`` resumes: points already in results/<run_id>/points.jsonl are not measured
    again.  ``on_point(done, total)`` is called after each finished point (progress for a GUI).
    A failing point keeps its error in the row's ``error`` column.  ``on_error`` says what else happens:
    ``"raise-if-all"`` (default) warns with the first error of each implementation that failed somewhere and raises
    ``SweepFailed`` (the rows are in its ``.df`` and on disk) when an implementation failed at every point of a
    kernel; ``"warn"`` only warns; ``"record"`` says nothing; ``"raise"`` stops at the first failure.

    ``cluster``: run the points on a Dask cluster (a ``distributed.Client``, a scheduler address, or ``"local:N"``
    for a ``LocalCluster`` of N workers), each timed alone on its device; see ``futhark_lab.measure.cluster``.
    ``exclusive``: on a cluster, ``"host"`` (default) times one point per host at a time, ``"device"`` one per
    device (several GPUs of a host, and a GPU beside the host's CPU, then time at once).
    Without a cluster, points run one after another in this process.

    ``remeasure``: a point far slower than a larger size of the same implementation (beyond both points' noise,
    ``sweep.anomalies``) is measured once more at the end; its row then holds both figures (``first_time_s_median``
    beside the new ``time_s_median``, ``remeasured=True``) and ``anomaly`` says why if it stays.
    """
    from tqdm.auto import tqdm

    from ..measure.env import environment

    if on_error not in ON_ERROR:
        raise ValueError(f"on_error={on_error!r}: choose one of {', '.join(map(repr, ON_ERROR))}")
    kernels = [kernels] if isinstance(kernels, Kernel) else list(kernels)
    unchecked = [k.name for k in kernels if k.numpy is None and k.check is None]
    if unchecked:
        warnings.warn(f"no NumPy reference for {', '.join(map(repr, unchecked))}: answers are not checked (the "
                      "'correct' column stays empty); pass Kernel(numpy=...) to check them", stacklevel=2)
    run_id = run_id or new_run_id()
    store = RunStore(run_id, Path(results) if results is not None else None)
    policy = policy or Policy()
    store.write_environment({**environment(), "method": {**dataclasses.asdict(policy), "rounds": rounds,
                                                          "seed": seed}})
    done = store.done_keys()
    plan = [(k, n, d) for k in kernels for d in (dtypes or k.dtypes) if d in k.dtypes or dtypes is None
            for n in (sizes or k.sizes)]
    todo = [(k, int(n), d, [i for i in impls if (k.name, i.name, int(n), d) not in done]) for k, n, d in plan]
    todo = [t for t in todo if t[3]]
    total = sum(len(t[3]) for t in todo)
    bar = tqdm(total=total, desc=f"sweep {run_id}", disable=not progress, unit="point")
    outcome: dict[tuple[str, str], list[str | None]] = {}  # (kernel, impl) -> each point's error (None: fine)
    finished = 0

    def record(rows: list[dict]) -> None:
        nonlocal finished
        for row in rows:
            store.append(row)
            outcome.setdefault((row["kernel"], row["impl"]), []).append(row.get("error"))
            bar.update(1)
            finished += 1
            if on_point is not None:
                on_point(finished, total)

    settings = dict(policy=policy, rounds=rounds, seed=seed, hardware=hardware, on_error=on_error, run_id=run_id)
    runner = None
    try:
        if cluster is not None:
            from .distributed import (
                run_distributed,  # Dask: its own module, with the install hint
            )

            def measure_points(points, rec):
                run_distributed(cluster, points, impls, settings, rec, bar, exclusive=exclusive, run_dir=store.dir)
        else:
            runner = PointRunner(impls, **settings)
            host = socket.gethostname()

            def measure_points(points, rec):
                for kernel, size, dtype, point_impls in points:
                    rows = runner.measure(kernel, size, dtype, point_impls)
                    for row in rows:
                        row["host"] = host
                    rec(rows)
        measure_points(todo, record)
        if remeasure:
            _remeasure(store, kernels, impls, measure_points, bar,
                       {(k.name, i.name, n, d) for k, n, d, group in todo for i in group})
    finally:
        if runner is not None:
            runner.close()
        bar.close()
    df = load_run(store.dir)
    _report_failures(outcome, on_error, df)
    return df


def _remeasure(store: RunStore, kernels: list[Kernel], impls: Sequence[Impl], measure_points, bar,
               measured_now: set) -> None:
    """Measure every anomalous point this call measured once more (points of a resumed run measured before, and a
    point already measured again, are left as they are: the report still names them)."""
    latest = {}
    for r in store.rows():
        if all(k in r for k in ("kernel", "impl", "size", "dtype")):
            latest[(r["kernel"], r["impl"], int(r["size"]), r["dtype"])] = r
    found = {k: why for k, why in anomalies.find(latest.values()).items()
             if not latest[k].get("remeasured") and k in measured_now}
    by_kernel, by_impl = {k.name: k for k in kernels}, {i.name: i for i in impls}
    todo = [(by_kernel[k], size, d, [by_impl[i]]) for (k, i, size, d) in found
            if k in by_kernel and i in by_impl]
    if not todo:
        return
    if not bar.disable:
        bar.total = (bar.total or 0) + len(todo)
        bar.set_postfix_str(f"measuring {len(todo)} anomalous point(s) again")
    fresh: list[dict] = []
    measure_points(todo, fresh.extend)
    for row in fresh:
        key = (row["kernel"], row["impl"], int(row["size"]), row["dtype"])
        latest_now = {**latest, key: row}
        if isinstance(row.get("error"), str):  # the second try failed: the first figures stay, flagged
            store.append({**latest[key], "remeasured": True, "anomaly": found[key], "anomaly_first": found[key],
                          "remeasure_error": row["error"]})
        else:
            now = anomalies.find(latest_now.values()).get(key)
            store.append(anomalies.remeasured_row(row, latest[key], now, found[key]))
        bar.update(1)
