"""The runtime's profiling report (``futhark_context_report``) as a pandas DataFrame."""

from __future__ import annotations

import json
import re


def report_frame(text: str):
    """One row per recorded event (JSON reports, futhark >= 0.25) or per kernel line (older text reports)."""
    import pandas as pd

    text = text or ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and "events" in data:
        rows = []
        for ev in data["events"]:
            start, end = ev.get("start"), ev.get("end")
            rows.append({"name": ev.get("name"), "description": ev.get("description", ""),
                         "time_s": (end - start) / 1e6 if start is not None and end is not None else None,
                         **{k: v for k, v in ev.items() if k not in ("name", "description", "start", "end")}})
        df = pd.DataFrame(rows, columns=None if rows else ["name", "description", "time_s"])
        df.attrs["memory"] = data.get("memory", {})
        return df
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*(\S+)\s+ran\s+(\d+)\s+times; avg\s+([\d.]+)us; total:\s+([\d.]+)us", line)
        if m:
            rows.append({"name": m.group(1), "runs": int(m.group(2)), "time_s_mean": float(m.group(3)) / 1e6,
                         "time_s": float(m.group(4)) / 1e6})
    df = pd.DataFrame(rows, columns=["name", "runs", "time_s_mean", "time_s"])
    df.attrs["raw"] = text
    return df
