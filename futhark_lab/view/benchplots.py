"""Figures and tables for benchmark runs (``bench`` or imported ``futhark bench --json``), as futhark issue #1861 asks:
per program and dataset the runtime of every run, the cumulative runtime, the runtime density (histogram + KDE), a
lag plot (run i against run i+1: drift and warm-up show as structure), the 95% confidence interval of the mean with
± % of the mean, and memory (peak bytes per space).  Each function takes the run's DataFrame and returns matplotlib
Figures or a DataFrame; the report module lays them out."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

MAX_FIGURES = 60


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    if "samples_s" not in df:
        return df.iloc[0:0]
    d = df[df["samples_s"].map(lambda s: isinstance(s, list) and len(s) > 0)]
    return d[d["error"].isna()] if "error" in d else d


def dataset_figure(g: pd.DataFrame, title: str | None = None) -> Figure:
    """The four #1861 panels for one program/dataset, one colour per implementation (backend or file)."""
    fig = Figure(figsize=(10, 6.2), dpi=100)
    axes = fig.subplots(2, 2)
    (runs, cum), (dens, lag) = axes
    for i, (_, r) in enumerate(g.iterrows()):
        us = np.asarray(r["samples_s"], dtype=float) * 1e6
        c, lab = f"C{i % 10}", str(r["impl"])
        x = np.arange(1, len(us) + 1)
        runs.plot(x, us, lw=0.7, color=c, label=lab)
        cum.plot(x, np.cumsum(us) / 1e6, color=c, label=lab)
        lo, hi = np.percentile(us, [0.5, 99.5]) if len(us) > 20 else (us.min(), us.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        dens.hist(us, bins=40, range=(lo, hi), density=True, alpha=0.35, color=c, label=f"{lab} (histogram)")
        if len(us) >= 3 and np.ptp(us) > 0:
            from scipy.stats import gaussian_kde
            xs = np.linspace(lo, hi, 200)
            try:
                dens.plot(xs, gaussian_kde(us)(xs), color=c, label=f"{lab} (KDE)")
            except (np.linalg.LinAlgError, ValueError):
                pass
        if len(us) >= 2:
            lag.scatter(us[:-1], us[1:], s=4, alpha=0.5, color=c, label=lab)
    runs.set(xlabel="run", ylabel="runtime (µs)", title="runtime per run")
    cum.set(xlabel="run", ylabel="cumulative runtime (s)", title="cumulative runtime")
    dens.set(xlabel="runtime (µs)", ylabel="density", title="runtime density")
    lag.set(xlabel="runtime of run i (µs)", ylabel="runtime of run i+1 (µs)", title="lag plot")
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
    runs.legend(fontsize=7)
    dens.legend(fontsize=6)
    fig.suptitle(title or f"{g['kernel'].iloc[0]} · {g['dataset'].iloc[0]}", fontsize=10)
    fig.tight_layout()
    return fig


def figures_for(df: pd.DataFrame) -> list[tuple[str, Figure]]:
    """One four-panel figure per program/dataset (at most MAX_FIGURES), then throughput where bytes are known."""
    from . import plots

    d = _ok(df)
    figs = []
    for n, ((kernel, dataset), g) in enumerate(d.groupby(["kernel", "dataset"], sort=False)):
        if n >= MAX_FIGURES:
            break
        figs.append((f"{kernel} · {dataset}", dataset_figure(g)))
    if "bytes" in d and "gbps" in d:
        known = d[d["bytes"].notna() & d["gbps"].notna() & (d["size"].fillna(0) > 0)]
        for kernel, g in known.groupby("kernel"):
            if g["size"].nunique() > 1:
                figs.append((f"{kernel}: throughput (inputs + outputs moved once)", plots.throughput(g)))
    return figs


def stats_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Per program/dataset/implementation: n, mean, the 95% CI of the mean (Student t) and ± % of the mean, median
    with its CI, and memory."""
    from scipy import stats

    rows = []
    for _, r in _ok(df).iterrows():
        us = np.asarray(r["samples_s"], dtype=float) * 1e6
        n, mean = len(us), float(us.mean())
        if n > 1 and us.std(ddof=1) > 0:
            lo, hi = stats.t.interval(0.95, n - 1, loc=mean, scale=stats.sem(us))
        else:
            lo = hi = mean
        mem = r.get("memory")
        rows.append({"kernel": r["kernel"], "dataset": r["dataset"], "impl": r["impl"], "n": n,
                     "mean_us": mean, "ci95_low_us": float(lo), "ci95_high_us": float(hi),
                     "ci95_pct_of_mean": (hi - lo) / 2 / mean * 100 if mean > 0 else math.nan,
                     "median_us": float(np.median(us)), "min_us": float(us.min()),
                     "memory": ", ".join(f"{k}: {v:,} B" for k, v in mem.items()) if isinstance(mem, dict) else ""})
    return pd.DataFrame(rows)


def comparison_figure(cmp: pd.DataFrame) -> Figure:
    """Change in median runtime per program/dataset (b against a), regressions red, improvements green."""
    d = cmp[cmp["ratio_b_over_a"].notna()]
    fig = Figure(figsize=(8, max(2.5, 0.28 * len(d) + 1.2)), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    colours = {"slower": "tab:red", "faster": "tab:green", "same": "tab:gray", "ambiguous": "tab:orange"}
    labels = [f"{k} · {s}"[:70] + (f" [{i}]" if "impl" in d else "") for k, s, i in
              zip(d["kernel"], d["dataset"], d.get("impl", [""] * len(d)))]
    y = np.arange(len(d))[::-1]
    ax.barh(y, (d["ratio_b_over_a"] - 1) * 100, color=[colours.get(v, "tab:gray") for v in d["verdict"]])
    ax.set_yticks(y, labels, fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("change of median runtime, b against a (%; > 0: slower)")
    ax.set_title("b against a: red significantly slower, green faster", fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def tuning_figure(table: pd.DataFrame) -> Figure:
    """Speed-up of the tuned program per dataset (``bench.tune``'s table): bars above 1 are faster tuned, below 1
    slower; a setting tuned for some datasets can lose on others, and this shows where."""
    fig = Figure(figsize=(max(5.0, 0.9 * len(table) + 2), 3.6), dpi=100)
    ax = fig.subplots()
    labels = [str(d) for d in table["dataset"]]
    sp = table["speedup"].astype(float).to_numpy()
    colours = ["C2" if v >= 1 else "C3" for v in np.nan_to_num(sp, nan=1.0)]
    ax.bar(range(len(sp)), np.nan_to_num(sp, nan=0.0), color=colours)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(range(len(sp)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("speed-up (default / tuned)")
    ax.set_title("futhark autotune: tuned against default, per dataset")
    fig.tight_layout()
    return fig
