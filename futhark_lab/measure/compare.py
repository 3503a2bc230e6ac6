"""Comparing two runs point by point: ratio of medians and a Mann-Whitney U test on the raw samples.
"""

from __future__ import annotations

from typing import Sequence

from .store import load_run

# --------------------------------------------------------------------------- comparing runs

def compare(run_a, run_b, *, alpha: float = 0.01, same_within: float = 0.02, keys: Sequence[str] | None = None):
    """Ratio (b/a) of median times per shared point, with a Mann-Whitney U test on the raw samples.
    ``keys``: the columns that identify a point (default kernel, impl, size, dtype).

    Verdict: ``faster``/``slower`` (b relative to a) when significant and beyond ``same_within``; ``same`` when
    not significant and the medians' CIs overlap; otherwise ``ambiguous``.
    """
    import pandas as pd
    from scipy import stats

    a = run_a if isinstance(run_a, pd.DataFrame) else load_run(run_a)
    b = run_b if isinstance(run_b, pd.DataFrame) else load_run(run_b)
    keys = list(keys) if keys else ["kernel", "impl", "size", "dtype"]
    merged = a.merge(b, on=keys, suffixes=("_a", "_b"))
    rows = []
    for _, r in merged.iterrows():
        sa, sb = r.get("samples_s_a"), r.get("samples_s_b")
        if not isinstance(sa, list) or not isinstance(sb, list) or not sa or not sb:
            continue
        ratio = r["time_s_median_b"] / r["time_s_median_a"]
        p = float(stats.mannwhitneyu(sa, sb, alternative="two-sided").pvalue)
        overlap = r["time_s_ci_low_b"] <= r["time_s_ci_high_a"] and r["time_s_ci_low_a"] <= r["time_s_ci_high_b"]
        if p < alpha and abs(ratio - 1) > same_within:
            verdict = "faster" if ratio < 1 else "slower"
        elif p >= alpha and overlap:
            verdict = "same"
        else:
            verdict = "ambiguous"
        rows.append({**{k: r[k] for k in keys}, "time_s_median_a": r["time_s_median_a"],
                     "time_s_median_b": r["time_s_median_b"], "ratio_b_over_a": ratio, "p_value": p,
                     "verdict": verdict})
    return pd.DataFrame(rows, columns=keys + ["time_s_median_a", "time_s_median_b", "ratio_b_over_a", "p_value",
                                              "verdict"])
