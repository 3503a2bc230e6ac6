"""`futhark-lab import`: futhark bench --json files as a run."""

from __future__ import annotations


def main(a) -> int:
    from ..bench.jsonimport import import_json
    from ..view import report as rep

    df = import_json(a.files, run_id=a.run_id, results=a.results, backend=a.backend, impl=a.impl)
    print(f"imported {len(df)} program/dataset rows from {len(a.files)} file(s) into run {df.attrs['run_id']}")
    if a.report:
        print(f"report: {rep.report(df, a.report)}")
    return 0


def add(sub) -> None:
    p = sub.add_parser("import", help="import futhark bench --json files (any machine, any backend) as a run")
    p.add_argument("files", nargs="+", help="JSON files written by futhark bench --json")
    p.add_argument("--backend", help="the backend they were run with (the JSON does not say)")
    p.add_argument("--impl", help="label for their rows (default futhark-<backend>, or the file name)")
    p.add_argument("--run-id")
    p.add_argument("--results")
    p.add_argument("--report", help="also write the HTML report here")
    p.set_defaults(func=main)
