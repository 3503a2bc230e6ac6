"""`futhark-lab report`: (re)write a finished run's HTML report."""

from __future__ import annotations


def main(a) -> int:
    from ..measure.store import load_run
    from ..view import report as rep
    from ..view.summary import text
    df = load_run(a.run)
    path = rep.report(df, a.out)
    if "dataset" not in df:  # a sweep: the answer in the terminal too
        print(text(df))
    print(path)
    if a.export:
        for p in rep.export(a.run, a.export):
            print(p)
    return 0


def add(sub) -> None:
    p = sub.add_parser("report", help="write the HTML report of a finished run")
    p.add_argument("run", help="results/<run-id> directory or run id")
    p.add_argument("--out", help="HTML path (default: results/<run-id>/report.html)")
    p.add_argument("--export", metavar="DIR", help="also write points.csv and each figure as PNG into DIR")
    p.set_defaults(func=main)
