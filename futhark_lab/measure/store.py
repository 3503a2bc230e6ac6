"""Durable results: ``results/<run_id>/`` holds environment.json once and points.jsonl, one fsync'd line per
finished point, so an interrupted run resumes and a finished point is never lost.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import uuid
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- durable results

def results_dir() -> Path:
    return Path(os.environ.get("FUTHARK_LAB_RESULTS", "results"))


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


class RunStore:
    """results/<run_id>/: environment.json once, points.jsonl appended and fsync'd per finished point."""

    def __init__(self, run_id: str, root: Path | None = None, create: bool = True):
        self.run_id = run_id
        self.dir = (root or results_dir()) / run_id
        if create:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.points = self.dir / "points.jsonl"

    def write_environment(self, env: dict) -> None:
        path = self.dir / "environment.json"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(env, indent=2, default=str))
            os.replace(tmp, path)

    def environment(self) -> dict:
        path = self.dir / "environment.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def append(self, row: dict) -> None:
        line = json.dumps(row, default=_json_default) + "\n"
        with open(self.points, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def rows(self) -> list[dict]:
        if not self.points.exists():
            return []
        out = []
        for line in self.points.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut by a kill mid-write: that point is simply measured again
                continue
        return out

    def done_keys(self) -> set[tuple]:
        return {point_key(r) for r in self.rows()}


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def point_key(r: dict) -> tuple:
    return (r["kernel"], r["impl"], r["size"], r["dtype"])


def load_run(run_or_path: str | os.PathLike):
    """A finished (or partial) run as a DataFrame, with the environment in ``df.attrs``."""
    import pandas as pd

    p = Path(run_or_path)
    if not p.exists():
        p = results_dir() / str(run_or_path)
    if p.is_file():
        p = p.parent
    if not (p / "points.jsonl").exists():
        raise FileNotFoundError(f"no run at {p} (expected {p / 'points.jsonl'})")
    store = RunStore(p.name, p.parent, create=False)
    df = pd.DataFrame(store.rows())
    df.attrs["run_id"] = p.name
    df.attrs["run_dir"] = str(p)  # where its report goes by default
    df.attrs["environment"] = store.environment()
    return df
