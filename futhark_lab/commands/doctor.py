"""`futhark-lab doctor`: which backends work here, and why the others don't."""

from __future__ import annotations

import json


def main(a) -> int:
    from ..builder.toolchain import ALL_BACKENDS
    from ..runtime.doctor import doctor, format_table

    backends = a.backends.split(",") if a.backends else list(ALL_BACKENDS)
    statuses = doctor(backends, as_frame=False)
    if a.json:
        print(json.dumps([{"backend": s.backend, "works": s.works, "on_gpu": s.on_gpu, "device": s.device,
                           "cause": s.cause, "fix": s.fix, "checks": s.checks} for s in statuses], indent=2))
    else:
        print(format_table(statuses))
        print("\nDetails and fixes: environment.md (troubleshooting).")
    return 0 if any(s.works for s in statuses) else 1


def add(sub) -> None:
    p = sub.add_parser("doctor", help="which backends work here, and why the others don't")
    p.add_argument("--backends", help="comma-separated subset")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=main)
