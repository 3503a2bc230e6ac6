"""``futhark bench --json`` files as the workbench's DataFrame.

The JSON that futhark bench writes (src/Futhark/Bench.hs, checked against futhark 0.25.27 and 0.27.1 output)::

    {"prog.fut:entry": {"datasets": {"<description>": {"runtimes": [µs, …], "bytes": {"<space>": peak bytes},
                                                          "stderr": "…", "profiling": {…}}
                                     "<description>": "error message"}}}

A program's key has ``:entry`` unless the entry point is ``main``; ``runtimes`` are whole microseconds of
entry + sync as the server times them (the warm-up run is not in the list); ``bytes`` is peak memory per memory
space (not bytes moved), kept here as ``memory``/``memory_bytes``.  A dataset that failed is a string.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

from ..measure.stats import Stats


def rows_from_json(data: dict, *, source: str, backend: str | None = None, impl: str | None = None,
                   run_id: str | None = None) -> list[dict]:
    """One sweep-shaped row per program/dataset of a parsed ``futhark bench --json`` document."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: not futhark bench JSON (expected an object of programs, got "
                         f"{type(data).__name__})")
    rows = []
    label = impl or (f"futhark-{backend}" if backend else Path(source).stem)
    for key, prog in data.items():
        if not isinstance(prog, dict) or not isinstance(prog.get("datasets"), dict):
            raise ValueError(f"{source}: {key!r} has no 'datasets' object: not futhark bench JSON")
        program, _, entry = key.partition(":")
        entry = entry or "main"
        for desc, res in prog["datasets"].items():
            row: dict[str, Any] = {"run_id": run_id, "kernel": key, "program": os.path.normpath(program),
                                   "entry": entry, "dataset": desc, "impl": label, "kind": "futhark",
                                   "backend": backend, "source": f"futhark bench: {source}", "size": math.nan,
                                   "dtype": "", "bytes": math.nan, "flops": math.nan, "device": "",
                                   "correct": None}
            if program != os.path.normpath(program):
                row["kernel"] = os.path.normpath(program) + ("" if entry == "main" else f":{entry}")
            if isinstance(res, str):
                row["error"] = res
                rows.append(row)
                continue
            if not isinstance(res, dict) or not isinstance(res.get("runtimes"), list):
                raise ValueError(f"{source}: {key} / {desc}: expected {{'runtimes': [...], 'bytes': ...}}")
            samples = [float(us) / 1e6 for us in res["runtimes"]]
            st = Stats.of(samples)
            mem = res.get("bytes")
            memory = {str(k): int(v) for k, v in mem.items()} if isinstance(mem, dict) else \
                ({"default": int(mem)} if isinstance(mem, (int, float)) else {})
            row.update({"time_s_median": st.median, "time_s_q1": st.q1, "time_s_q3": st.q3, "time_s_iqr": st.iqr,
                        "time_s_mean": st.mean, "time_s_std": st.std, "time_s_min": st.min,
                        "time_s_ci_low": st.ci_low, "time_s_ci_high": st.ci_high, "n": st.n,
                        "rel_noise": st.rel_noise, "samples_s": samples, "first_call_s": math.nan,
                        "memory": memory, "memory_bytes": sum(memory.values()) if memory else None,
                        "error": None, "sync": "futhark server (entry + futhark_context_sync)",
                        "stderr": res.get("stderr")})
            rows.append(row)
    return rows


def load_json(paths: str | os.PathLike | Iterable[str | os.PathLike], *, backend: str | None = None,
              impl: str | None = None):
    """Any number of ``futhark bench --json`` files as one DataFrame (``impl``: the label of each file's rows,
    default ``futhark-<backend>`` or the file's name; ``backend`` where you know it, since the JSON does not say)."""
    import pandas as pd

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows: list[dict] = []
    for p in paths:
        p = Path(p)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file: {p}") from None
        except ValueError as exc:
            raise ValueError(f"{p}: not JSON ({exc})") from None
        rows += rows_from_json(data, source=str(p), backend=backend, impl=impl, run_id=p.stem)
    df = pd.DataFrame(rows)
    df.attrs["run_id"] = "+".join(Path(p).stem for p in paths)
    df.attrs["environment"] = {}
    return df


def import_json(paths, *, run_id: str | None = None, results: str | os.PathLike | None = None,
                backend: str | None = None, impl: str | None = None):
    """Import ``futhark bench --json`` files into ``results/<run-id>/`` (then ``report``/``compare`` take the run
    id like any other run); returns the run's DataFrame."""
    from ..measure.store import RunStore, load_run, new_run_id

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    run_id = run_id or new_run_id("import")
    store = RunStore(run_id, Path(results) if results is not None else None)
    store.write_environment({"imported_from": [str(p) for p in paths],
                             "method": {"source": "futhark bench --json (imported)"}})
    df = load_json(paths, backend=backend, impl=impl)
    for row in df.to_dict("records"):
        store.append({**{k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))},
                      "run_id": run_id, "imported_run": row.get("run_id")})
    return load_run(store.dir)
