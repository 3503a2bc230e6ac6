"""Durable results: ``results/<run_id>/`` holds environment.json once and points.jsonl, one fsync'd line per
finished point, so an interrupted run resumes and a finished point is never lost.

Each line goes out in one ``os.write`` under an exclusive ``flock`` (O_APPEND), so writers in several processes never
interleave; a line torn by a kill is repaired before the next append, so it never swallows the line after it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- durable results

def results_dir() -> Path:
    return Path(os.environ.get("FUTHARK_LAB_RESULTS", "results"))


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


class RunStore:
    """results/<run_id>/: environment.json once, points.jsonl appended and fsync'd per finished point (safe to share
    between processes: see the module docstring)."""

    def __init__(self, run_id: str, root: Path | None = None, create: bool = True):
        self.run_id = run_id
        self.dir = (root or results_dir()) / run_id
        if create:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.points = self.dir / "points.jsonl"

    def write_environment(self, env: dict) -> None:
        path = self.dir / "environment.json"
        if not path.exists():
            tmp = path.with_name(f".environment.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # one per writer
            tmp.write_text(json.dumps(env, indent=2, default=str))
            os.replace(tmp, path)

    def environment(self) -> dict:
        path = self.dir / "environment.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def append(self, row: dict) -> None:
        data = (json.dumps(row, default=_json_default) + "\n").encode()  # json.dumps never emits a raw newline
        fd = os.open(self.points, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            with _locked(fd):
                _repair_tail(fd)
                start = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:  # one write in practice; a short write (full disk, signal) continues under the lock
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                except BaseException:
                    os.ftruncate(fd, start)  # no half line left behind for the next writer to repair
                    raise
        finally:
            os.close(fd)

    def rows(self) -> list[dict]:
        if not self.points.exists():
            return []
        out = []
        for line in self.points.read_bytes().split(b"\n"):
            if line.strip():
                row = _parse_line(line)
                if row is not None:  # a line cut by a kill mid-write: that point is simply measured again
                    out.append(row)
        return out

    def done_keys(self) -> set[tuple]:
        return {point_key(r) for r in self.rows() if all(k in r for k in ("size", "dtype"))}


@contextmanager
def _locked(fd: int):
    try:
        import fcntl
    except ImportError:  # no flock (Windows): O_APPEND alone still keeps each single write whole
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def write_json(path: Path, data: Any) -> None:
    """``data`` as JSON at ``path``, atomically (a name of this writer's own, then a rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _is_point(row: Any) -> bool:
    """A row of a sweep or a benchmark: an object naming its kernel and implementation (anything else in the file,
    a hand-written note say, is skipped like a torn line)."""
    return isinstance(row, dict) and "kernel" in row and "impl" in row


def _parse_line(line: bytes) -> dict | None:
    try:
        row = json.loads(line)
        return row if _is_point(row) else None
    except ValueError:
        pass
    # a fragment glued to a whole line by an older writer: the whole line is the first '{"' from which the rest
    # parses as one object
    start = line.find(b'{"', 1)
    while start != -1:
        try:
            row = json.loads(line[start:])
            if _is_point(row):
                return row
        except ValueError:
            pass
        start = line.find(b'{"', start + 1)
    return None


def _repair_tail(fd: int) -> None:
    """Under the lock: a last line without its newline (a writer killed mid-write) is ended if it is whole JSON,
    else cut back to the previous newline, so the next line starts on a line of its own."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end, chunk = size, 1 << 16
    while end > 0:
        begin = max(0, end - chunk)
        block = os.pread(fd, end - begin, begin)
        nl = block.rfind(b"\n")
        if nl != -1:
            cut = begin + nl + 1
            break
        end = begin
    else:
        cut = 0
    tail = os.pread(fd, size - cut, cut)
    try:
        whole = isinstance(json.loads(tail), dict)
    except ValueError:
        whole = False
    if whole:
        os.write(fd, b"\n")
    else:
        os.ftruncate(fd, cut)
    os.fsync(fd)


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
    rows = store.rows()
    again = {point_key(r) for r in rows if r.get("remeasured") and all(k in r for k in ("size", "dtype"))}
    if again:  # a point measured again (an anomaly, sweep.anomalies): its last row holds both figures
        last = {point_key(r): i for i, r in enumerate(rows) if all(k in r for k in ("size", "dtype"))}
        rows = [r for i, r in enumerate(rows) if not ("size" in r and "dtype" in r and point_key(r) in again
                                                       and last[point_key(r)] != i)]
    df = pd.DataFrame(rows)
    df.attrs["run_id"] = p.name
    df.attrs["run_dir"] = str(p)  # where its report goes by default
    if (p / "workers.json").exists():  # a run on a cluster: every worker's host
        df.attrs["workers"] = json.loads((p / "workers.json").read_text())
    df.attrs["environment"] = store.environment()
    return df
