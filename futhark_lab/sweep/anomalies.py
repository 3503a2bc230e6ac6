"""Points that break their implementation's size trend: a smaller problem far slower than a larger one of the same
kernel, implementation and dtype.  The work grows with the size, so such a point is a disturbance (a stall, a
scheduler slice, a cold pool) or a real cliff worth a look; the sweep measures it again once (``sweep.run``) and
the report names it.  Pure functions on rows: the sweep, the report and the CLI share them."""

from __future__ import annotations

import math
from typing import Iterable

#: A point is an anomaly when it takes this many times longer than a larger size of the same series ...
FACTOR = 3.0
#: ... and the gap is this many times wider than the two points' interquartile ranges together (its own noise).
NOISE_WIDTHS = 3.0


def _fnum(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _time(ms: float) -> str:
    return f"{ms * 1e3:.3g} ms" if ms >= 1e-4 else f"{ms * 1e6:.3g} µs"


def find(rows: Iterable[dict]) -> dict[tuple, str]:
    """``{(kernel, impl, size, dtype): reason}`` for every point that takes more than ``FACTOR`` times as long as
    some larger size of its series, by more than ``NOISE_WIDTHS`` times their IQRs together."""
    series: dict[tuple, list[dict]] = {}
    for r in rows:
        t = _fnum(r.get("time_s_median"))
        if isinstance(r.get("error"), str) or not t > 0:
            continue
        series.setdefault((r["kernel"], r["impl"], r["dtype"]), []).append(r)
    out: dict[tuple, str] = {}
    for (kernel, impl, dtype), pts in series.items():
        pts = sorted(pts, key=lambda r: int(r["size"]))
        for i, r in enumerate(pts):
            t = _fnum(r["time_s_median"])
            iqr = _fnum(r.get("time_s_iqr"))
            larger = [q for q in pts[i + 1:] if int(q["size"]) > int(r["size"])]
            if not larger:
                continue
            q = min(larger, key=lambda q: _fnum(q["time_s_median"]))
            tq = _fnum(q["time_s_median"])
            noise = (0.0 if math.isnan(iqr) else iqr) + (0.0 if math.isnan(_fnum(q.get("time_s_iqr")))
                                                         else _fnum(q.get("time_s_iqr")))
            if t > FACTOR * tq and t - tq > NOISE_WIDTHS * noise:
                out[(kernel, impl, int(r["size"]), dtype)] = (
                    f"{_time(t)} at {int(r['size']):,} but {_time(tq)} at {int(q['size']):,}: a "
                    f"{int(q['size']) / int(r['size']):.3g}× larger problem {t / tq:.3g}× faster")
    return out


def remeasured_row(new: dict, old: dict, reason_now: str | None, reason_first: str) -> dict:
    """The row of a point measured again: the new figures, the first ones beside them, and the anomaly if it
    stayed (``anomaly`` names it; None when the second measurement fits the trend)."""
    new = dict(new)
    new.update(remeasured=True, anomaly=reason_now, anomaly_first=reason_first,
               first_time_s_median=old.get("time_s_median"), first_time_s_iqr=old.get("time_s_iqr"),
               first_n=old.get("n"))
    return new
