"""Sweeps on a Dask cluster (``sweep(..., cluster=...)``): one task per point (kernel, size, dtype) and device
kind, measured on a worker by the same ``PointRunner`` a serial sweep uses, under the host's lock
(``measure.cluster``, which also says how placement, generated code and failures work)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Sequence

from ..measure.cluster import Session, export_archives, timed_here
from .impl import Impl
from .kernel import Kernel
from .point import PointRunner
from .rows import _hw_key

def run_distributed(cluster: Any, todo: Sequence[tuple[Kernel, int, str, list[Impl]]], impls: Sequence[Impl],
                    settings: dict, record: Callable[[list[dict]], None], bar: Any,
                    exclusive: str = "host", run_dir: Any = None) -> None:
    """Measure ``todo``'s points on ``cluster``; ``record`` each point's rows as they arrive (in this process)."""
    jobs = [(k._program.source, k._program.base_dir, i.backend, tuple(i.options.get("options", ())))
            for k, _, _, group in todo for i in group if i.kind == "futhark"]
    session = Session(cluster, export_archives(jobs), settings["run_id"], exclusive,
                      cpu_work=any(_hw_key(i) == "cpu" for i in impls), run_dir=run_dir)
    try:
        for kernel, size, dtype, point_impls in todo:
            portable = _portable(kernel)
            for kind in sorted({_hw_key(i) for i in point_impls}):
                group = [i for i in point_impls if _hw_key(i) == kind]
                session.submit(measure_point, session.key, settings, list(impls), portable, size, dtype, group,
                               exclusive, gpu=kind == "cuda", name=f"point-{kernel.name}-{size}-{dtype}-{kind}",
                               meta=(kernel, size, dtype, group))
        for (kernel, size, dtype, group), rows in session.results():
            if isinstance(rows, Exception):
                if settings["on_error"] == "raise":
                    raise rows
                why = f"{type(rows).__name__}: {rows}"
                rows = [_error_row(settings["run_id"], kernel, i, size, dtype, why) for i in group]
            record(rows)
    finally:
        session.close(close_runners)


def _portable(kernel: Kernel) -> Kernel:
    """The kernel without the user's live module (cffi handles do not travel): its program's source instead."""
    k = copy.copy(kernel)
    k._program = dataclasses.replace(kernel._program, module=None)
    k.source = kernel._program.source
    return k


def _error_row(run_id: str, kernel: Kernel, impl: Impl, size: int, dtype: str, error: str) -> dict:
    return {"run_id": run_id, "kernel": kernel.name, "impl": impl.name, "kind": impl.kind, "backend": impl.backend,
            "size": int(size), "dtype": dtype, "resident": impl.resident, "pinned": impl.pinned, "device": "",
            "error": error, "correct": None}


# --------------------------------------------------------------------------- the worker's side

_RUNNERS: dict[str, PointRunner] = {}


def measure_point(run_key: str, settings: dict, impls: list[Impl], kernel: Kernel, size: int, dtype: str,
                  group: list[Impl], exclusive: str) -> list[dict]:
    """One point on this worker: setup, then the timed section under the lock its device calls for."""
    runner = _RUNNERS.get(run_key)
    if runner is None:
        runner = _RUNNERS[run_key] = PointRunner(impls, **settings)
    lock, where = timed_here(_hw_key(group[0]) == "cuda", exclusive)
    rows = runner.measure(kernel, size, dtype, group, exclusive=lock)
    for row in rows:
        row.update(where)
    return rows


def close_runners(run_key: str) -> None:
    runner = _RUNNERS.pop(run_key, None)
    if runner is not None:
        runner.close()
