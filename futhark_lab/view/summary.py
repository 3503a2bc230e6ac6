"""The answer first: per kernel, dtype and device, the fastest implementation at the largest size measured, its
throughput, how close it runs to the ceiling that applies, and its speedup over NumPy and PyTorch; then the few
points worth a look (anomalies, failures, wrong answers, impossible throughput), each naming kernel,
implementation and size.  The report shows it above everything else and every CLI run ends with it."""

from __future__ import annotations

import math

import pandas as pd

from ..sweep import anomalies as _anomalies

#: Kernels shown first, in this order (the suite's, memory-bound to compute-bound; ``sum_squares`` is the headline).
HEADLINE_ORDER = ("sum_squares", "saxpy", "dot", "stencil", "scan", "histogram", "matmul", "mandelbrot")


def kernel_order(kernels) -> list[str]:
    """The suite's kernels in headline order, then any others alphabetically."""
    ks = list(dict.fromkeys(k for k in kernels if isinstance(k, str)))
    return [k for k in HEADLINE_ORDER if k in ks] + sorted(k for k in ks if k not in HEADLINE_ORDER)


def device_group(device, impl: str = "") -> str:
    """Which device a row ran on, as the summary groups them: every implementation on the host's CPU (futhark c and
    multicore, NumPy, PyTorch on the CPU, PoCL's OpenCL) is "CPU"; a GPU is its name without the OpenCL platform."""
    name = device if isinstance(device, str) else ""
    if not name:
        return "CPU" if impl in ("numpy",) or impl.startswith("torch-cpu") else ""
    low = name.lower()
    if name.startswith("host") or "portable computing language" in low or "pthread" in low or low == "cpu":
        return "CPU"
    return name.split(": ", 1)[-1]


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    if "time_s_median" not in df or df.empty:
        return df.iloc[0:0]
    d = df[pd.to_numeric(df["time_s_median"], errors="coerce") > 0]
    if "error" in d:
        d = d[d["error"].isna()]
    if "correct" in d:  # a wrong answer is no contender for fastest
        d = d[d["correct"].map(lambda c: c is not False)]
    return d


def _ceiling(r) -> tuple[float, str]:
    """% of the ceiling that applies and its name: for a kernel with a flop count, the roofline's bound at its
    arithmetic intensity (the measured bandwidth × intensity, or the measured FLOP/s if lower); otherwise the
    measured bandwidth that applies (in-cache for cache-resident points, memory otherwise)."""
    bw_name = "in-cache bandwidth" if r.get("ceiling") == "cache" else "memory bandwidth"
    bw = _num(r.get("ceiling_gbps"))
    flops_peak, gflops, ai = _num(r.get("peak_gflops_measured")), _num(r.get("gflops")), \
        _num(r.get("intensity_flop_per_byte"))
    if gflops > 0 and ai > 0 and flops_peak > 0 and bw > 0 and ai * bw > flops_peak:
        return 100 * gflops / flops_peak, "measured FLOP/s"
    return _num(r.get("pct_ceiling")), f"measured {bw_name}"


def headline(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (kernel, dtype, device): the fastest implementation at the largest size measured there."""
    d = _ok(df)
    cols = ["kernel", "dtype", "device", "size", "fastest", "time_s", "gbps", "gflops", "pct_ceiling", "ceiling",
            "vs_numpy", "vs_torch", "runner_up"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    d = d.assign(_dev=[device_group(dv, im) for dv, im in zip(d.get("device", pd.Series("", index=d.index)),
                                                              d["impl"])])
    out = []
    for (kernel, dtype, dev), g in d.groupby(["kernel", "dtype", "_dev"], sort=False):
        size = int(g["size"].max())
        at = g[g["size"] == size].sort_values("time_s_median")
        best = at.iloc[0]
        pct, ceiling = _ceiling(best)
        t = float(best["time_s_median"])

        def over(prefix: str) -> float:
            # NumPy is the CPU's baseline wherever it ran; PyTorch's best variant on the same device
            rows = d[(d["kernel"] == kernel) & (d["dtype"] == dtype) & (d["size"] == size)
                     & d["impl"].str.startswith(prefix)]
            if prefix == "torch":
                rows = rows[rows["_dev"] == dev]
            if str(best["impl"]).startswith(prefix):  # the fastest is this baseline itself
                return 1.0
            return float(rows["time_s_median"].min()) / t if len(rows) else math.nan
        out.append({"kernel": kernel, "dtype": dtype, "device": dev or "?", "size": size, "fastest": best["impl"],
                    "time_s": t, "gbps": _num(best.get("gbps")), "gflops": _num(best.get("gflops")),
                    "pct_ceiling": pct, "ceiling": ceiling if not math.isnan(pct) else "",
                    "vs_numpy": over("numpy"), "vs_torch": over("torch"),
                    "runner_up": f"{at.iloc[1]['impl']} ({float(at.iloc[1]['time_s_median']) / t:.3g}× the time)"
                    if len(at) > 1 else ""})
    h = pd.DataFrame(out, columns=cols)
    order = {k: i for i, k in enumerate(kernel_order(h["kernel"]))}
    return h.sort_values(["kernel", "dtype", "device"], key=lambda s: s.map(order) if s.name == "kernel" else s,
                         kind="stable").reset_index(drop=True)


def _where(r) -> str:
    return f"{r['kernel']} · {r['impl']} · {int(r['size']):,}" + (f" ({r['dtype']})" if "dtype" in r else "")


def row_flags(df: pd.DataFrame) -> pd.Series:
    """Why a row is highlighted ("" when it is not): every flag carries its reason."""
    reasons = pd.Series("", index=df.index, dtype=object)
    if df.empty:
        return reasons
    found = _found_anomalies(df)
    for i, r in df.iterrows():
        why = []
        if isinstance(r.get("error"), str):
            why.append("failed: " + r["error"].strip().splitlines()[0][:120])
        if r.get("correct") is False:
            why.append(f"wrong answer (max relative error {_num(r.get('max_rel_err')):.3g})")
        if r.get("over_peak") is True or (type(r.get("over_peak")).__name__ == "bool_" and bool(r["over_peak"])):
            why.append(f"{_num(r.get('pct_ceiling')):.0f}% of the ceiling: above what the device can move, a "
                       "measurement bug (result not waited for, or bytes miscounted)")
        a = found.get((r.get("kernel"), r.get("impl"), _int(r.get("size")), r.get("dtype")))
        if a:
            why.append(a)
        reasons.at[i] = "; ".join(why)
    return reasons


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _found_anomalies(df: pd.DataFrame) -> dict[tuple, str]:
    """Anomalies of a run: those the sweep measured again and that stayed (both figures named), and any the
    figures show that were not measured again (older runs, resumed points)."""
    if "size" not in df or "time_s_median" not in df:
        return {}
    out = {}
    if "anomaly" in df:
        for _, r in df[df["anomaly"].map(lambda a: isinstance(a, str))].iterrows():
            first = _num(r.get("first_time_s_median"))
            out[(r["kernel"], r["impl"], int(r["size"]), r["dtype"])] = (
                f"breaks the size trend, measured twice: first {_anomalies._time(first)}, again "
                f"{_anomalies._time(_num(r['time_s_median']))} ({r['anomaly']})")
    seen = df[df["remeasured"].map(lambda v: v is not True)] if "remeasured" in df else df
    for k, why in _anomalies.find(seen.to_dict("records")).items():
        out.setdefault(k, f"breaks the size trend: {why}")
    return out


def notes(df: pd.DataFrame) -> list[str]:
    """The points worth a look, each naming kernel · implementation · size (anomalies first)."""
    if "size" not in df or df.empty:
        return []
    out = [f"{k[0]} · {k[1]} · {k[2]:,} ({k[3]}): {why}" for k, why in _found_anomalies(df).items()]
    if "error" in df:
        failed = df[df["error"].map(lambda e: isinstance(e, str))]
        for (kernel, impl), g in failed.groupby(["kernel", "impl"], sort=False):
            sizes = sorted(int(s) for s in g["size"])
            total = int(((df["kernel"] == kernel) & (df["impl"] == impl)).sum())
            first = str(g["error"].iloc[0]).strip().splitlines()[0][:160]
            where = "every size" if len(sizes) == total else ", ".join(f"{s:,}" for s in sizes)
            out.append(f"{kernel} · {impl} · {where}: failed: {first}")
    if "correct" in df:
        for _, r in df[df["correct"].map(lambda c: c is False)].iterrows():
            out.append(f"{_where(r)}: wrong answer (max relative error {_num(r.get('max_rel_err')):.3g})")
    if "over_peak" in df:
        for _, r in df[df["over_peak"].map(lambda v: v is True or (hasattr(v, "dtype") and bool(v)))].iterrows():
            out.append(f"{_where(r)}: {_num(r.get('gbps')):,.0f} GB/s, above the ceiling — a measurement bug")
    return out


def _fmt_time(t: float) -> str:
    return "" if math.isnan(t) else _anomalies._time(t)


def _x(v: float, itself: bool = False) -> str:
    """A speedup; "(it)" where the fastest is that baseline, "—" where the baseline was not measured."""
    return "(it)" if itself else "—" if math.isnan(v) else f"{v:.3g}×"


def display(h: pd.DataFrame) -> pd.DataFrame:
    """``headline``'s rows as strings for people: units, % with the ceiling it is of, speedups as ×."""
    return pd.DataFrame({
        "kernel": h["kernel"] + h["dtype"].map(lambda d: f" [{d}]"),
        "device": h["device"],
        "size": h["size"].map(lambda s: f"{s:,}"),
        "fastest": h["fastest"],
        "time": h["time_s"].map(_fmt_time),
        "GB/s": h["gbps"].map(lambda v: "" if math.isnan(v) else f"{v:,.3g}"),
        "% ceiling": [("" if math.isnan(p) else f"{p:.0f}% of {c}" + (" (reads from cache outrun a copy: no bound)"
                                                                     if p > 100 and "in-cache" in c else ""))
                      for p, c in zip(h["pct_ceiling"], h["ceiling"])],
        "vs NumPy": [_x(v, f.startswith("numpy")) for v, f in zip(h["vs_numpy"], h["fastest"])],
        "vs PyTorch": [_x(v, f.startswith("torch")) for v, f in zip(h["vs_torch"], h["fastest"])],
        "runner-up": h["runner_up"]})


def text(df: pd.DataFrame, max_notes: int = 8) -> str:
    """The summary as plain text for the terminal."""
    h = headline(df)
    lines = ["", "SUMMARY: fastest at the largest size measured, per kernel and device"]
    if h.empty:
        lines.append("  no point was measured successfully")
    else:
        t = display(h)
        t["device"] = t["device"].map(lambda v: v[:24])
        t["% ceiling"] = t["% ceiling"].str.replace("measured ", "")
        lines += ["  " + line for line in t.to_string(index=False).splitlines()]
    ns = notes(df)
    if ns:
        lines.append(f"WORTH A LOOK ({len(ns)}):")
        lines += [f"  - {n}" for n in ns[:max_notes]]
        if len(ns) > max_notes:
            lines.append(f"  … {len(ns) - max_notes} more in the report's Checks")
    return "\n".join(lines)
