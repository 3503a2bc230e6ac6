"""Benchmarks on a Dask cluster (``bench(..., cluster=...)``): one task per dataset and device kind, measured on a
worker by the same ``_measure_case`` a serial run uses, under the host's lock (``measure.cluster`` says how
placement, generated code and failures work).  The program and its data files are read on the workers."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..builder.toolchain import GPU_BACKENDS
from ..measure.cluster import Session, export_archives, timed_here
from .case import _measure_case


def run_distributed(cluster: Any, path: Path, name: str, work: Sequence[tuple], settings: dict,
                    record: Callable[[list[dict]], None], exclusive: str = "host", run_dir: Any = None) -> None:
    """Measure ``work`` (entry, dataset, TestRun, program key, backends) on ``cluster``; ``record`` rows as they
    arrive.  The c backend is generated too: it makes the reference of ``auto output`` datasets."""
    options = tuple(settings["compile_options"].get("options", ()))
    backends = sorted({b for *_, todo in work for b in todo} | {"c"})
    session = Session(cluster, export_archives((path, None, b, options) for b in backends), settings["run_id"],
                      exclusive, cpu_work=any(b not in GPU_BACKENDS for b in backends), run_dir=run_dir)
    try:
        for entry, desc, run, key, todo in work:
            for gpu in (False, True):
                group = [b for b in todo if (b in GPU_BACKENDS) == gpu]
                if group:
                    session.submit(measure_dataset, session.key, path, name, key, entry, run, group, settings,
                                   exclusive, gpu=gpu, name=f"dataset-{key}-{desc}-{'gpu' if gpu else 'cpu'}",
                                   meta=(entry, run, key, group))
        for (entry, run, key, group), rows in session.results():
            if isinstance(rows, Exception):
                why = f"{type(rows).__name__}: {rows}"
                rows = [{"run_id": settings["run_id"], "kernel": key, "program": name, "entry": entry,
                         "dataset": run.description, "impl": f"futhark-{b}", "backend": b, "kind": "futhark",
                         "device": "", "error": why, "correct": None, "flops": math.nan} for b in group]
            record(rows)
    finally:
        session.close(close_state)


# --------------------------------------------------------------------------- the worker's side

_STATE: dict[str, dict] = {}


def measure_dataset(run_key: str, path: Path, name: str, key: str, entry: str, run: Any, group: list[str],
                    settings: dict, exclusive: str) -> list[dict]:
    """One dataset on this worker: the backends built (once per worker and run), then timed under the lock."""
    from ..runtime.loader import compile as fcompile

    st = _STATE.setdefault(run_key, {"modules": {}, "setup_s": {}, "reference": {}})
    for b in group:
        if b not in st["modules"]:
            t0 = time.perf_counter()
            try:
                st["modules"][b] = fcompile(path, backend=b, **settings["compile_options"])
            except Exception as exc:  # noqa: BLE001 - recorded per dataset, as a serial run records it
                st["modules"][b] = exc
            st["setup_s"][b] = time.perf_counter() - t0
    lock, where = timed_here(any(b in GPU_BACKENDS for b in group), exclusive)
    with lock:
        t_start = time.time()
        rows = _measure_case(settings["run_id"], name, path, key, entry, run, group, st["modules"], st["setup_s"],
                             st["reference"], settings["per_round"], settings["rounds"], settings["check"],
                             settings["compile_options"], settings["idle_s"])
        t_end = time.time()
    for row in rows:
        row.update(where, t_start=t_start, t_end=t_end)
    return rows


def close_state(run_key: str) -> None:
    for m in list(_STATE.pop(run_key, {}).get("modules", {}).values()):
        if not isinstance(m, Exception) and hasattr(m, "close"):
            try:
                m.close()
            except Exception:  # noqa: BLE001
                pass
