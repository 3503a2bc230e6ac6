"""futhark-lab: measure Futhark programs against PyTorch and NumPy, headless, with an HTML report.

    futhark-lab doctor                         which backends work here, and why the others don't
    futhark-lab demo                           the kernel suite on every working backend, with a report
    futhark-lab run sum_squares --backends c,multicore --sizes 1e3:1e7
                                               one kernel of the suite (or its .fut file)
    futhark-lab run my.fut --entry f --inputs "[n]f32 [n]f32" --sizes 1e3:1e7
                                               your own program, n the swept size
    futhark-lab bench prog.fut --backends c,multicore   a program's "-- ==" datasets, as futhark bench runs them
    futhark-lab report results/<run-id>        (re)write a run's HTML report
    futhark-lab compare results/<a> results/<b>
    futhark-lab import bench.json ...          futhark bench --json files into results/<run-id>

Every run ends with a summary: the fastest implementation per kernel and device, how close it runs to the
device's ceiling, its speedup over NumPy and PyTorch, and the points worth a look.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="futhark-lab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .errors import FutharkLabError
    try:
        return args.func(args)
    except (FutharkLabError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
