"""One self-contained HTML file per run: figures embedded as PNG data URIs, sortable tables, the environment, the
method, and warnings (noisy points, >100% of a peak, failed correctness checks, errors).  No network needed."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..version import __version__
from . import summary

NOISY = 0.05
COLUMNS = [("kernel", "kernel"), ("impl", "implementation"), ("backend", "backend"), ("device", "device"),
           ("size", "size"), ("dtype", "dtype"), ("time_s_median", "median (s)"), ("time_s_iqr", "IQR (s)"),
           ("n", "n"), ("rel_noise", "noise"), ("first_call_s", "first call (s)"), ("recompiles", "recompiles"),
           ("device_time_s_median", "device span (s)"), ("batch_s_per_call", "batch, per call (s)"),
           ("gbps", "GB/s"), ("gflops", "GFLOP/s"),
           ("pct_peak_attr", "% attr peak"), ("ceiling", "ceiling"), ("pct_ceiling", "% measured ceiling"),
           ("correct", "correct"), ("flag", "flagged because"), ("error", "error")]
SUMMARY_COLUMNS = [("kernel", "kernel"), ("dtype", "dtype"), ("device", "device"), ("size", "largest size"),
                   ("fastest", "fastest"), ("time_s", "median (s)"), ("gbps", "GB/s"), ("gflops", "GFLOP/s"),
                   ("pct_ceiling", "% of ceiling"), ("ceiling", "ceiling that applies"),
                   ("vs_numpy", "× NumPy"), ("vs_torch", "× PyTorch"), ("runner_up", "runner-up")]


BENCH_COLUMNS = [("kernel", "program"), ("dataset", "dataset"), ("impl", "implementation"), ("device", "device"),
                 ("time_s_median", "median (s)"), ("time_s_iqr", "IQR (s)"), ("time_s_mean", "mean (s)"), ("n", "n"),
                 ("rel_noise", "noise"), ("bytes", "bytes in+out"), ("gbps", "GB/s"), ("memory_bytes", "peak memory (B)"),
                 ("correct", "correct"), ("mismatch", "mismatch"), ("error", "error")]
BENCH_STATS = [("kernel", "program"), ("dataset", "dataset"), ("impl", "implementation"), ("n", "runs"),
               ("mean_us", "mean (µs)"), ("ci95_low_us", "95% CI low (µs)"), ("ci95_high_us", "95% CI high (µs)"),
               ("ci95_pct_of_mean", "± % of mean"), ("median_us", "median (µs)"), ("min_us", "min (µs)"),
               ("memory", "memory (peak per space)")]
COMPARE_COLUMNS = [("kernel", "program"), ("dataset", "dataset"), ("impl", "implementation"),
                   ("time_s_median_a", "median a (s)"), ("time_s_median_b", "median b (s)"),
                   ("ratio_b_over_a", "b / a"), ("change_pct", "change (%)"), ("p_value", "p (Mann-Whitney U)"),
                   ("verdict", "verdict")]


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, cols: list[tuple[str, str]], right: tuple[str, ...] = ()) -> str:
    """A sortable table; a row is highlighted only with its reason (the ``flag`` column): red for a failure or a
    wrong answer, yellow for a point that cannot be right (above the ceiling) or breaks the size trend."""
    cols = [(c, h) for c, h in cols if c in df]
    left = {c for c, _ in cols if (df[c].dtype == object or pd.api.types.is_string_dtype(df[c])) and c not in right}
    head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(h)}</th>' for c, h in cols)
    body = []
    for _, r in df.iterrows():
        flag = r.get("flag") if isinstance(r.get("flag"), str) else ""
        cls = "bad" if (r.get("correct") is False or isinstance(r.get("error"), str)) else ("sus" if flag else "")
        cells = "".join(f'<td class="{"l" if c in left else ""}" data-v="{_raw(r[c])}">{_fmt(r[c])}</td>'
                        for c, _ in cols)
        title = f' title="{html.escape(flag)}"' if flag else ""
        body.append(f'<tr class="{cls}"{title}>{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _raw(v) -> str:
    if isinstance(v, float) and not math.isnan(v):
        return repr(v)
    return html.escape("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def warnings_for(df: pd.DataFrame) -> list[str]:
    out = []
    if "dataset" in df:    # benchmark datasets: named by program and dataset, not size
        for _, r in df[df["error"].notna()].iterrows() if "error" in df else ():
            out.append(f"{r['impl']} on {r['kernel']}, dataset {r['dataset']}, failed: {r['error']}")
        for _, r in df[df["correct"] == False].iterrows() if "correct" in df else ():  # noqa: E712
            out.append(f"{r['impl']} on {r['kernel']}, dataset {r['dataset']}: the result does not match the expected "
                       f"output (futhark test's tolerance): {r.get('mismatch') or ''}")
        df = df.iloc[0:0]
    if "error" in df:
        failed = df[df["error"].notna()]
        skipped = failed["error"].astype(str).str.startswith("PeerUnavailable")
        for impl, first in failed[skipped].groupby("impl")["error"].first().items():   # a missing package: once
            out.append(f"{impl}: {first.split(': ', 1)[-1]}")
        for _, r in failed[~skipped].iterrows():
            out.append(f"{r['impl']} on {r['kernel']} at size {r['size']:,} failed: {r['error']}")
    if "first_call_compiles" in df and "kind" in df:
        tc = df[(df["kind"] == "torch-compile") & df["first_call_compiles"].notna()]
        for (impl, kernel), g in tc.groupby(["impl", "kernel"]):
            if (g["first_call_compiles"] == 0).all() and (g["recompiles"].fillna(0) == 0).all():
                out.append(f"{impl} on {kernel} compiled no graph in this run: Dynamo ran the function eagerly "
                           "(an unsupported construct, e.g. a data-dependent branch on .any()), so these rows time "
                           "eager PyTorch")
    if "recompiles" in df:
        again = df[df["recompiles"].fillna(0) > 0]
        for _, r in again.iterrows():
            out.append(f"{r['impl']} on {r['kernel']} at size {r['size']:,} ({r['dtype']}) recompiled "
                       f"{int(r['recompiles'])} time(s) during its warm-up and samples: those samples include "
                       "compile time (a guard or cache key that changes between calls)")
    if "correct" in df:
        for _, r in df[df["correct"] == False].iterrows():  # noqa: E712
            out.append(f"{r['impl']} on {r['kernel']} at size {r['size']:,} ({r['dtype']}) gave a wrong answer "
                       f"(max relative error {r.get('max_rel_err', float('nan')):.3g})")
    for n in summary.notes(df):
        if "breaks the size trend" in n:
            out.append(n)
    if "over_peak" in df:
        for _, r in df[df["over_peak"].map(lambda v: v is True or isinstance(v, np.bool_) and bool(v))].iterrows():
            out.append(f"{r['impl']} on {r['kernel']} at size {r['size']:,}: {r['gbps']:,.0f} GB/s is above "
                       f"{_over_what(r)} — a measurement bug (a result not waited for, or miscounted bytes), "
                       "not a result")
    if "above_cache_copy" in df:
        above = df[df["above_cache_copy"].fillna(False).astype(bool)]
        if len(above):
            out.append(f"{len(above)} cache-resident point(s) run above the measured in-cache copy bandwidth ("
                       + ", ".join(f"{r['kernel']} · {r['impl']} · {r['size']:,}"
                                   for _, r in above.head(8).iterrows())
                       + (" …" if len(above) > 8 else "") + "): reads from cache outrun a copy, so this is no "
                       "ceiling for them; their % shows how far above it they run")
    if "rel_noise" in df:
        noisy = df[df["rel_noise"] > NOISY]
        if len(noisy):
            out.append(f"{len(noisy)} point(s) are noisy (95% CI of the median wider than ±{NOISY:.0%}): "
                       + ", ".join(f"{r['kernel']} · {r['impl']} · {r['size']:,}"
                                   for _, r in noisy.head(12).iterrows())
                       + (" …" if len(noisy) > 12 else ""))
    return out


def _pct(v) -> str | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0f}%"


def _over_what(r) -> str:
    """Which ceiling a point exceeds, naming only figures that exist (a CPU has no attribute peak)."""
    parts = []
    ceiling = r.get("ceiling")
    if isinstance(ceiling, str) and _pct(r.get("pct_ceiling")):
        what = "the measured in-cache bandwidth (its working set fits the cache)" if ceiling == "cache" else \
            "the measured memory bandwidth"
        parts.append(f"{what}: {_pct(r.get('pct_ceiling'))}")
    elif _pct(r.get("pct_peak_measured")):
        parts.append(f"the measured bandwidth: {_pct(r.get('pct_peak_measured'))}")
    if _pct(r.get("pct_peak_attr")) and not bool(r.get("cache_resident")):
        parts.append(f"the attribute peak: {_pct(r.get('pct_peak_attr'))}")
    return "; ".join(parts) or "a peak"


def figures_for(df: pd.DataFrame) -> list[tuple[str, object]]:
    from . import plots

    figs = []
    ok = df[df["time_s_median"].notna()] if "time_s_median" in df else df.iloc[0:0]
    order = summary.kernel_order(ok["kernel"]) if len(ok) else []
    for kernel in order:  # headline kernels first (the suite's order), not alphabetical
        g = ok[ok["kernel"] == kernel]
        figs.append((f"{kernel}: throughput", plots.throughput(g)))
        figs.append((f"{kernel}: time", plots.time_vs_size(g)))
        if "numpy" in set(g["impl"]):
            figs.append((f"{kernel}: speedup over NumPy", plots.speedup(g, "numpy")))
    if len(ok) and ok["kernel"].nunique() >= 1:
        figs.append(("roofline", plots.roofline(ok[ok["size"] == ok.groupby("kernel")["size"].transform("max")])))
        for kernel in order:
            g = ok[ok["kernel"] == kernel]
            if "h2d_s" in g and g["h2d_s"].notna().any():
                figs.append((f"{kernel}: where the time goes", plots.breakdown(g)))
    return figs


def _method(env: dict) -> dict:
    from ..measure.timing import Policy
    m = {**vars(Policy()), "rounds": 3, **(env.get("method") or {})}
    return {k: m[k] for k in ("max_noise", "min_samples", "min_time_s", "max_time_s", "rounds")}


PLACEMENT = [("host", "host"), ("worker", "worker"), ("device", "device"), ("device_uuid", "device UUID"),
             ("driver", "driver (CUDA)"), ("futhark_version", "futhark"), ("points", "points")]


def placement(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Where a run's points were measured (one row per host, worker and device) and, when several devices measured
    the same (kernel, size, dtype), the fastest implementation on each side by side: never pooled across devices."""
    if "worker" not in df or df["worker"].isna().all():
        return pd.DataFrame(), pd.DataFrame()
    ok = df[df["error"].isna()] if "error" in df else df
    keys = [c for c in ("host", "worker", "device", "device_uuid", "driver", "futhark_version") if c in df]
    where = df.assign(**{c: df[c].fillna("") for c in keys}).groupby(keys, dropna=False).size() \
        .reset_index(name="points")
    dev = ok.assign(where=ok["device"].fillna("") + ok.get("device_uuid", pd.Series("", index=ok.index))
                    .fillna("").map(lambda u: f" ({u[:12]})" if u else ""))
    if dev["where"].nunique() < 2:
        return where, pd.DataFrame()
    best = dev.loc[dev.groupby(["kernel", "size", "dtype", "where"])["time_s_median"].idxmin()]
    side = best.pivot_table(index=["kernel", "size", "dtype"], columns="where", values="time_s_median",
                            aggfunc="first")
    who = best.pivot_table(index=["kernel", "size", "dtype"], columns="where", values="impl", aggfunc="first")
    out = side.copy()
    for c in side.columns:
        out[c] = [f"{v:.3g} s ({w})" if isinstance(w, str) else "" for v, w in zip(side[c], who[c])]
    return where, out.reset_index()


TUNING_COLUMNS = [("impl", "implementation"), ("backend", "backend"), ("futhark_version", "futhark"),
                  ("tuning", "tuning"), ("params", "tuning parameters")]
TUNE_COLUMNS = [("kernel", "program"), ("dataset", "dataset"), ("size", "input elements"),
                ("default_s", "default median (s)"), ("tuned_s", "tuned median (s)"), ("speedup", "speed-up"),
                ("verdict", "verdict"), ("default_error", "default error"), ("tuned_error", "tuned error")]


def tuning_used(df: pd.DataFrame) -> pd.DataFrame:
    """One row per implementation: its compiler version, tuning file and the parameters it set (empty when the
    run has no Futhark rows that record them)."""
    if "tuning" not in df or df["tuning"].isna().all():
        return pd.DataFrame()
    fut = df[df["tuning"].notna()]
    rows = []
    for impl, g in fut.groupby("impl", sort=False):
        r = g.iloc[0]
        params = r.get("tuning_params") if "tuning_params" in g else None
        rows.append({"impl": impl, "backend": r.get("backend"), "futhark_version": r.get("futhark_version"),
                     "tuning": r.get("tuning"),
                     "params": ", ".join(f"{k}={v}" for k, v in params.items()) if isinstance(params, dict) else ""})
    return pd.DataFrame(rows)


def report(run_or_df, path: str | os.PathLike | None = None, *, title: str | None = None,
           tuning_comparison: pd.DataFrame | None = None) -> Path:
    """Write the self-contained HTML report of a run (DataFrame, run id, or results/<run_id> path); return its path.
    ``tuning_comparison``: ``bench.tune``'s default-against-tuned table, shown first with its speed-up figure."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    from ..measure.store import load_run, results_dir

    df = run_or_df if isinstance(run_or_df, pd.DataFrame) else load_run(run_or_df)
    run_id = df.attrs.get("run_id") or (df["run_id"].iloc[0] if "run_id" in df and len(df) else "unsaved")
    env = df.attrs.get("environment") or {}
    if path is None:    # next to the run's points.jsonl when given its directory, else under results/
        given = None if isinstance(run_or_df, pd.DataFrame) else Path(run_or_df)
        run_dir = Path(df.attrs["run_dir"]) if df.attrs.get("run_dir") else results_dir() / run_id
        path = (given if given is not None and given.is_dir() else run_dir) / "report.html"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bench = "dataset" in df
    if bench:
        from . import benchplots
    figs = [(name, _png(fig)) for name, fig in (benchplots.figures_for(df) if bench else figures_for(df))]
    if tuning_comparison is not None and len(tuning_comparison):
        from .benchplots import tuning_figure
        figs.insert(0, ("speed-up of the tuned program per dataset", _png(tuning_figure(tuning_comparison))))
    used = tuning_used(df)
    bd_cols = [("kernel", "kernel")] + ([("dataset", "dataset")] if bench else []) + [
               ("impl", "implementation"), ("size", "size"),
               ("setup_s", "build + context (s)"), ("first_call_s", "first call (s)"),
               ("h2d_s", "host→device (s)"), ("time_s_median", "compute (s)"), ("d2h_s", "device→host (s)")]
    has_bd = "h2d_s" in df and df["h2d_s"].notna().any()
    if title is None and str(run_id).startswith("demo-"):  # `futhark-lab report` of a demo keeps its title
        title = "The kernel suite (futhark-lab demo)"
    where, side = placement(df)
    if not bench and len(df):
        df = df.assign(flag=summary.row_flags(df))
        head = summary.headline(df)
        order = {k: i for i, k in enumerate(summary.kernel_order(df["kernel"]))}
        df = df.sort_values(["kernel", "dtype", "impl", "size"], kind="stable",
                            key=lambda s: s.map(order) if s.name == "kernel" else s)
    else:
        head = pd.DataFrame()
    jenv = Environment(loader=PackageLoader("futhark_lab.view", "templates"), autoescape=select_autoescape(["html"]))
    text = jenv.get_template("report.html.j2").render(
        title=title or (", ".join(summary.kernel_order(df["kernel"].unique())) if "kernel" in df and len(df)
                        else "empty run"),
        headline=_table(summary.display(head), [(c, c) for c in summary.display(head).columns],
                        right=("size", "time", "GB/s", "vs NumPy", "vs PyTorch")) if len(head) else "",
        notes=summary.notes(df) if not bench else [],
        run_id=run_id, env=env, n_points=len(df), warnings=warnings_for(df), figures=figs,
        table=_table(df, BENCH_COLUMNS if bench else COLUMNS), breakdown=_table(df, bd_cols) if has_bd else "",
        bench_table=_table(benchplots.stats_frame(df), BENCH_STATS) if bench else "", comparison=False,
        placement=_table(where, PLACEMENT) if len(where) else "",
        tuning=_table(used, TUNING_COLUMNS) if len(used) else "",
        tune_table=_table(tuning_comparison, TUNE_COLUMNS) if tuning_comparison is not None else "",
        devices=_table(side, [(c, str(c)) for c in side.columns]) if len(side) else "",
        env_json=json.dumps(env, indent=2, default=str), version=__version__, noisy=NOISY,
        workers_json=json.dumps(df.attrs["workers"], indent=2, default=str) if df.attrs.get("workers") else "",
        **_method(env))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def comparison_report(cmp: pd.DataFrame, path: str | os.PathLike, *, a: str = "a", b: str = "b") -> Path:
    """The comparison of two benchmark runs (``bench.compare``) as one self-contained HTML page."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    from . import benchplots

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figs = [("change per program/dataset", _png(benchplots.comparison_figure(cmp)))] if len(cmp) else []
    slower = cmp[cmp["verdict"] == "slower"]
    warnings = [f"{r['kernel']} · {r['dataset']} [{r['impl']}]: {r['change_pct']:+.1f}% (p = {r['p_value']:.2g})"
                for _, r in slower.iterrows()]
    jenv = Environment(loader=PackageLoader("futhark_lab.view", "templates"), autoescape=select_autoescape(["html"]))
    text = jenv.get_template("report.html.j2").render(
        title=f"comparison: {a} → {b}", run_id=f"{a} → {b}", env={}, n_points=len(cmp), warnings=warnings,
        figures=figs, table=_table(cmp, COMPARE_COLUMNS), breakdown="", bench_table="", comparison=True,
        env_json="{}", version=__version__, noisy=NOISY, **_method({}))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def export(run_or_df, directory: str | os.PathLike, *, figures: bool = True) -> list[Path]:
    """Write the tidy DataFrame as CSV (raw samples stay in points.jsonl) and each figure as a PNG."""
    from ..measure.store import load_run

    df = run_or_df if isinstance(run_or_df, pd.DataFrame) else load_run(run_or_df)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = [d / "points.csv"]
    df.drop(columns=[c for c in ("samples_s",) if c in df]).to_csv(out[0], index=False)
    if figures:
        if "dataset" in df:
            from . import benchplots
        for name, fig in (benchplots.figures_for(df) if "dataset" in df else figures_for(df)):
            slug = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").lower()
            p = d / f"{slug}.png"
            fig.savefig(p, dpi=110, bbox_inches="tight")
            out.append(p)
    return out
