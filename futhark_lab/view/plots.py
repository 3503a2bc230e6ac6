"""Figures from a run's DataFrame: throughput against size with labelled peak lines, a roofline, time against size
with IQR error bars, and speedup against a baseline.  Each takes a DataFrame (fresh or loaded from results/) and
returns a matplotlib Figure; points above 100% of a peak are marked as suspect (a measurement bug, not a result).
Figures show themselves in Jupyter (no ``%matplotlib inline`` needed), and rows of several kernels are drawn as one
panel per kernel: sizes and throughputs of different kernels never share a line."""

from __future__ import annotations

import functools
import io
import math

import numpy as np
import pandas as pd
from matplotlib.figure import (
    Figure,  # Figures without pyplot: no global state, safe in threads and headless
)


class LabFigure(Figure):
    """A Figure that Jupyter shows as a PNG by itself: not made by pyplot, it needs no ``%matplotlib inline``."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def per_kernel(draw):
    """Rows of several kernels: one panel per kernel (with ``ax`` given, only one kernel's rows make sense)."""

    @functools.wraps(draw)
    def wrapper(df: pd.DataFrame, *args, ax=None, **kwargs) -> Figure:
        kernels = sorted(df["kernel"].dropna().unique()) if "kernel" in df else []
        if len(kernels) <= 1:
            return draw(df, *args, ax=ax, **kwargs)
        if ax is not None:
            raise ValueError(f"{draw.__name__}: the rows hold {len(kernels)} kernels ({', '.join(kernels)}); pass "
                             "one kernel's rows with ax=..., or no ax for one panel per kernel")
        cols = min(2, len(kernels))
        rows = math.ceil(len(kernels) / cols)
        fig = LabFigure(figsize=(6.4 * cols, 4.2 * rows), dpi=100)
        for i, kernel in enumerate(kernels):
            draw(df[df["kernel"] == kernel], *args, ax=fig.add_subplot(rows, cols, i + 1), **kwargs)
        fig.tight_layout()
        return fig
    return wrapper


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    if "time_s_median" not in df:
        return df.iloc[0:0]
    d = df[df["time_s_median"].notna()]
    if "error" in d:
        d = d[d["error"].isna()]
    return _by_device(d)


def _by_device(d: pd.DataFrame) -> pd.DataFrame:
    """An implementation measured on several devices or hosts (a cluster's) is drawn once per device, its label
    naming the device: timings of different devices are never pooled into one line."""
    if d.empty or not ({"device_uuid", "host"} & set(d.columns)):
        return d
    where = d.get("device_uuid", pd.Series(index=d.index, dtype=object))
    where = where.where(where.notna(), d.get("host", pd.Series(index=d.index, dtype=object)))
    n = where.groupby(d["impl"]).nunique()
    multi = n[n > 1].index
    if not len(multi):
        return d
    d = d.copy()
    m = d["impl"].isin(multi)
    d.loc[m, "impl"] = d.loc[m, "impl"] + " @ " + where[m].astype(str).str[:12]
    return d


def _series(df: pd.DataFrame):
    for (impl, dtype), g in df.groupby(["impl", "dtype"], sort=True):
        yield f"{impl} [{dtype}]" if df["dtype"].nunique() > 1 else impl, g.sort_values("size")


def _title(df: pd.DataFrame, what: str) -> str:
    kernels = ", ".join(sorted(df["kernel"].unique())) if "kernel" in df and len(df) else ""
    return f"{kernels}: {what}" if kernels else what


def _peak_lines(ax, df: pd.DataFrame) -> None:
    """One dashed line per distinct attribute peak and one dotted line per distinct measured copy bandwidth
    (implementations on the same GPU report it under different device names; their peaks are one line)."""
    styles = {"peak_bw_attr_gbps": ("attribute peak", "--", 0.99, "right", "bottom"),
              "peak_bw_measured_gbps": ("measured copy", ":", 0.01, "left", "top")}
    if "device" not in df:
        return
    for col, (label, ls, x, ha, va) in styles.items():
        if col not in df:
            continue
        seen: dict[float, list[str]] = {}
        for dev, v in df.groupby("device")[col].first().items():
            if isinstance(v, (float, int)) and v > 0 and not math.isnan(v):
                seen.setdefault(round(float(v), 3), []).append(_short_device(str(dev)))
        for v, devs in seen.items():
            ax.axhline(v, color="gray", ls=ls, lw=1)
            named = [d for d in devs if "default device" not in d] or devs
            ax.annotate(f"{label} ({max(named, key=len)}): {v:,.0f} GB/s", xy=(x, v),
                        xycoords=("axes fraction", "data"), ha=ha, va=va, fontsize=7, color="dimgray")


def _short_device(name: str) -> str:
    """'NVIDIA CUDA: NVIDIA H100 80GB HBM3' -> 'NVIDIA H100 80GB HBM3' (the OpenCL platform prefix dropped)."""
    return name.split(": ", 1)[-1]


def _mark_suspect(ax, g: pd.DataFrame, y: str) -> bool:
    if "over_peak" not in g:
        return False
    s = g[g["over_peak"].fillna(False).astype(bool)]
    if len(s):
        ax.scatter(s["size"], s[y], marker="x", s=80, color="red", zorder=5)
        return True
    return False


@per_kernel
def throughput(df: pd.DataFrame, *, ax=None) -> Figure:
    """GB/s against problem size, one line per implementation, with the attribute and measured peaks."""
    d = _ok(df)
    fig, ax = _axes(ax)
    suspect = False
    for label, g in _series(d):
        ax.plot(g["size"], g["gbps"], marker="o", label=label)
        suspect |= _mark_suspect(ax, g, "gbps")
    _peak_lines(ax, d)
    if suspect:
        ax.scatter([], [], marker="x", color="red", label="> 100% of a peak: suspect")
    return _finish(fig, ax, "problem size (elements)", "throughput (GB/s of minimum memory traffic)",
                   _title(d, "throughput against memory bandwidth"))


def roofline(df: pd.DataFrame, *, ax=None) -> Figure:
    """Arithmetic intensity (flop/byte) against GFLOP/s, with bandwidth and compute ceilings per device."""
    d = _ok(df)
    if "gflops" in d:  # kernels without a flop count have no place on a roofline
        d = d[d["gflops"].notna() & (d["gflops"] > 0)]
    fig, ax = _axes(ax)
    ai_all = d["intensity_flop_per_byte"] if len(d) else pd.Series([0.1, 10])
    xs = np.logspace(math.log10(max(ai_all.min() / 4, 1e-3)), math.log10(max(ai_all.max() * 4, 10)), 200)
    if "device" in d:
        for dev, g in d.groupby("device"):
            for kind, ls in (("measured", ":"), ("attr", "--")):
                bw = g.get(f"peak_bw_{kind}_gbps", pd.Series(dtype=float)).dropna()
                fl = g.get(f"peak_gflops_{kind}", pd.Series(dtype=float)).dropna()
                if len(bw) and bw.iloc[0] > 0:
                    roof = xs * bw.iloc[0]
                    if len(fl) and fl.max() > 0:
                        roof = np.minimum(roof, fl.max())
                    ax.plot(xs, roof, ls=ls, color="gray", lw=1)
                    ax.annotate(f"{dev} ({'attribute' if kind == 'attr' else 'measured'}): "
                                f"{bw.iloc[0]:,.0f} GB/s" + (f", {fl.max():,.0f} GFLOP/s" if len(fl) else ""),
                                xy=(xs[-1], roof[-1]), ha="right", va="bottom", fontsize=7, color="dimgray")
    markers = "osD^v<>PX*hp"
    kernels = sorted(d["kernel"].unique()) if len(d) else []
    colours = {impl: f"C{i % 10}" for i, impl in enumerate(sorted(d["impl"].unique()))} if len(d) else {}
    for (impl, kernel), g in d.groupby(["impl", "kernel"]):
        ax.scatter(g["intensity_flop_per_byte"], g["gflops"], color=colours[impl],
                   marker=markers[kernels.index(kernel) % len(markers)], s=36, alpha=0.85)
    from matplotlib.lines import Line2D
    impl_handles = [Line2D([], [], ls="", marker="o", color=c, label=i) for i, c in colours.items()]
    kernel_handles = [Line2D([], [], ls="", marker=markers[j % len(markers)], color="gray", label=k)
                      for j, k in enumerate(kernels)]
    # a figure legend, not ax.add_artist(ax.legend(...)): bbox_inches="tight" counts it, so long names are not cut
    fig.legend(handles=impl_handles, title="implementation", fontsize=7, title_fontsize=7, loc="upper left",
               bbox_to_anchor=(1.01, 1.0), bbox_transform=ax.transAxes)
    ax.legend(handles=kernel_handles, title="kernel", fontsize=7, title_fontsize=7, loc="lower left",
              bbox_to_anchor=(1.01, 0.0))
    return _finish(fig, ax, "arithmetic intensity (flop/byte)", "performance (GFLOP/s)",
                   "roofline (largest size of each kernel)", legend=False)


@per_kernel
def time_vs_size(df: pd.DataFrame, *, ax=None, device_time: bool = True) -> Figure:
    """Median time against size (log-log) with the interquartile range as error bars; where GPU points recorded
    it (and ``device_time``), the device-side span as a dashed line in the same colour."""
    d = _ok(df)
    fig, ax = _axes(ax)
    for label, g in _series(d):
        err = np.vstack([g["time_s_median"] - g["time_s_q1"], g["time_s_q3"] - g["time_s_median"]])
        line = ax.errorbar(g["size"], g["time_s_median"], yerr=err, marker="o", capsize=3, label=label)
        if device_time and "device_time_s_median" in g and g["device_time_s_median"].notna().any():
            dv = g[g["device_time_s_median"].notna()]
            ax.plot(dv["size"], dv["device_time_s_median"], ls="--", marker=".", color=line[0].get_color(),
                    label=f"{label}: device span")
    return _finish(fig, ax, "problem size (elements)", "time per call (s), median with IQR",
                   _title(d, "time against size"))


@per_kernel
def speedup(df: pd.DataFrame, baseline: str = "numpy", *, ax=None) -> Figure:
    """Baseline time / implementation time against size (>1: faster than the baseline)."""
    d = _ok(df)
    fig, ax = _axes(ax)
    base = d[d["impl"] == baseline].set_index(["kernel", "size", "dtype"])["time_s_median"]
    if base.empty:
        raise ValueError(f"no rows for baseline {baseline!r}; implementations: {', '.join(d['impl'].unique())}")
    for label, g in _series(d[d["impl"] != baseline]):
        b = base.reindex(list(zip(g["kernel"], g["size"], g["dtype"]))).to_numpy()
        ax.plot(g["size"], b / g["time_s_median"].to_numpy(), marker="o", label=label)
    ax.axhline(1.0, color="gray", lw=1, ls="--")
    return _finish(fig, ax, "problem size (elements)", f"speedup over {baseline} (×)",
                   _title(d, f"speedup over {baseline}"))


@per_kernel
def breakdown(df: pd.DataFrame, size: int | None = None, *, ax=None) -> Figure:
    """First call, host→device, compute and device→host per implementation at one size: the trap made visible."""
    d = _ok(df)
    if size is None and len(d):
        size = int(d["size"].max())
    d = d[d["size"] == size]
    fig, ax = _axes(ax)
    parts = [("first_call_s", "first call"), ("h2d_s", "host→device"), ("time_s_median", "compute"),
             ("d2h_s", "device→host")]
    several = "dtype" in d and d["dtype"].nunique() > 1  # f32 and f64 bars of one implementation told apart
    labels = [f"{i} [{t}]" for i, t in zip(d["impl"], d["dtype"])] if several else list(d["impl"])
    x = np.arange(len(labels))
    w = 0.2
    for i, (col, name) in enumerate(parts):
        vals = d[col].to_numpy(dtype=float) if col in d else np.full(len(d), np.nan)
        ax.bar(x + (i - 1.5) * w, np.nan_to_num(vals, nan=0.0), w, label=name)
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("time (s)")
    ax.set_title(_title(d, f"where the time goes at size {size:,}" if size else "where the time goes"))
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _finish(fig: Figure, ax, xlabel: str, ylabel: str, title: str, legend: bool = True) -> Figure:
    """Log-log axes with units, title, legend and grid: the common finish of every figure here."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def _axes(ax):
    if ax is not None:
        return ax.figure, ax
    fig = LabFigure(figsize=(7.5, 4.6), dpi=110)
    return fig, fig.add_subplot(1, 1, 1)
