"""Two benchmark runs compared per program and dataset (futhark issue #748's job), regressions first.

Either side may be a futhark-lab run (id, directory or DataFrame) or ``futhark bench --json`` file(s).  The test is
the one ``futhark-lab compare`` uses for sweeps (``sweep.compare``: ratio of medians, Mann-Whitney U on the raw
samples, a verdict); here keyed by program, dataset and implementation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..measure.compare import compare as compare_points
from ..measure.store import load_run

ORDER = {"slower": 0, "ambiguous": 1, "same": 2, "faster": 3, "under 1 µs (not comparable)": 4}


def frame(x: Any) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a run id/directory, a .json file or a list of .json files."""
    from .jsonimport import load_json

    if isinstance(x, pd.DataFrame):
        return x
    if isinstance(x, (list, tuple)):
        return load_json(x)
    if str(x).endswith(".json") and Path(x).is_file():
        return load_json(x)
    return load_run(x)


def compare(a: Any, b: Any, *, alpha: float = 0.01, same_within: float = 0.02) -> pd.DataFrame:
    """Per program/dataset: medians, ``ratio_b_over_a`` (> 1: b is slower), ``change_pct``, p-value and verdict
    (``slower``/``faster``/``same``/``ambiguous``), regressions (slower) first, largest slowdown first.

    Points are matched on kernel, dataset and implementation; if the two sides share no implementation (say, a
    JSON file from one machine against one from another) and each has one per dataset, on kernel and dataset.
    """
    da, db = frame(a), frame(b)
    for name, d in (("a", da), ("b", db)):
        if "dataset" not in d:
            raise ValueError(f"run {name} has no 'dataset' column: it is not a benchmark run (use sweep.compare "
                             "for sweeps)")
    keys = ["kernel", "dataset", "impl"]
    if not set(da["impl"]) & set(db["impl"]):
        for name, d in (("a", da), ("b", db)):
            if d.groupby(["kernel", "dataset"])["impl"].nunique().max() > 1:
                raise ValueError(f"run {name} has several implementations per dataset and none in common with the "
                                 "other run; select one, e.g. df[df.impl == 'futhark-c']")
        keys = ["kernel", "dataset"]
    # futhark bench records whole microseconds: a dataset that runs in under 1 µs has a median of 0, no ratio
    zero_a = da[da["time_s_median"].fillna(1) <= 0] if "time_s_median" in da else da.iloc[0:0]
    zero_b = db[db["time_s_median"].fillna(1) <= 0] if "time_s_median" in db else db.iloc[0:0]
    out = compare_points(da.drop(zero_a.index), db.drop(zero_b.index), alpha=alpha, same_within=same_within,
                         keys=keys)
    both = da.merge(db, on=keys, suffixes=("_a", "_b"))
    both = both[(both["time_s_median_a"] <= 0) | (both["time_s_median_b"] <= 0)]
    if len(both):
        extra = both[keys + ["time_s_median_a", "time_s_median_b"]].assign(
            ratio_b_over_a=float("nan"), p_value=float("nan"), verdict="under 1 µs (not comparable)")
        out = pd.concat([out, extra], ignore_index=True) if len(out) else extra
    if "impl" not in keys:
        impl_a = da.groupby(["kernel", "dataset"])["impl"].first()
        impl_b = db.groupby(["kernel", "dataset"])["impl"].first()
        out.insert(2, "impl", [f"{impl_a.get((k, d), '?')} → {impl_b.get((k, d), '?')}"
                               for k, d in zip(out["kernel"], out["dataset"])])
    out["change_pct"] = (out["ratio_b_over_a"] - 1) * 100
    out["_o"] = out["verdict"].map(ORDER)
    out = out.sort_values(["_o", "ratio_b_over_a"], ascending=[True, False]).drop(columns="_o")
    return out.reset_index(drop=True)


def format_table(df: pd.DataFrame) -> str:
    """The comparison as a terminal table (times in ms)."""
    if not len(df):
        return "no program/dataset in common"
    t = pd.DataFrame({"program": df["kernel"], "dataset": df["dataset"].map(lambda s: s if len(s) <= 40 else
                                                                          s[:37] + "..."),
                      "impl": df["impl"], "a (ms)": df["time_s_median_a"] * 1e3, "b (ms)": df["time_s_median_b"] * 1e3,
                      "b/a": df["ratio_b_over_a"], "change": df["change_pct"].map(lambda v: "" if v != v else f"{v:+.1f}%"),
                      "p": df["p_value"], "verdict": df["verdict"]})
    with pd.option_context("display.width", 220, "display.max_colwidth", 60, "display.max_rows", 500):
        return t.to_string(index=False, float_format=lambda v: f"{v:.4g}")


__all__ = ["compare", "format_table", "frame"]
