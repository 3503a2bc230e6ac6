"""`futhark-lab compare`: two runs point by point."""

from __future__ import annotations

import sys


def _is_bench(x: str) -> bool:
    """A futhark bench JSON file, or a run made by `bench`/`import` (rows with a dataset)."""
    if x.endswith(".json"):
        return True
    from ..measure.store import load_run
    try:
        return "dataset" in load_run(x)
    except FileNotFoundError:
        return False


def main(a) -> int:
    if _is_bench(a.run_a) or _is_bench(a.run_b):
        from ..bench.comparison import compare as bcompare
        from ..bench.comparison import format_table, frame
        sides = [frame(a.run_a), frame(a.run_b)]
        if a.impl:
            sides = [d[d["impl"] == a.impl] if a.impl in set(d["impl"]) else d for d in sides]
        df = bcompare(*sides, alpha=a.alpha)
        if a.report:
            from ..view import report as rep
            print(f"report: {rep.comparison_report(df, a.report, a=a.run_a, b=a.run_b)}", file=sys.stderr)
        print(df.to_json(orient="records", indent=2) if a.json else format_table(df))
        return 0
    from ..measure.compare import compare
    df = compare(a.run_a, a.run_b, alpha=a.alpha)
    if a.json:
        print(df.to_json(orient="records", indent=2))
    else:
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(df) else "no shared points")
    return 0


def add(sub) -> None:
    p = sub.add_parser("compare", help="compare two runs point by point (Mann-Whitney U on raw samples)")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--json", action="store_true")
    p.add_argument("--report", help="benchmark runs/JSON files: also write the comparison as an HTML report here")
    p.add_argument("--impl", help="benchmark runs: use this implementation (e.g. futhark-c) of a run that has several")
    p.set_defaults(func=main)
