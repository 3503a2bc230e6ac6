"""`futhark-lab doctor`: which backends and peer libraries work here, and why the others don't."""

from __future__ import annotations

import json


def main(a) -> int:
    from ..builder.toolchain import ALL_BACKENDS
    from ..runtime.doctor import doctor, format_table
    from ..sweep.impls import peer_status

    backends = a.backends.split(",") if a.backends else list(ALL_BACKENDS)
    statuses = doctor(backends, as_frame=False)
    peers = [] if a.no_peers else peer_status()
    if a.json:
        print(json.dumps({"backends": [{"backend": s.backend, "works": s.works, "on_gpu": s.on_gpu,
                                        "device": s.device, "cause": s.cause, "fix": s.fix, "checks": s.checks}
                                       for s in statuses],
                          "peers": [{"peer": p["peer"], "device": p["device"], "works": p["works"],
                                     "detail": p["detail"]} for p in peers]}, indent=2))
    else:
        print(format_table(statuses))
        if peers:
            print("\npeers (--peers of run/demo; docs/peers.md):")
            for p in peers:
                print(f"  {p['peer']:14} {p['device']:5} {'ok' if p['works'] else 'no'}  {p['detail']}")
        print("\nDetails and fixes: environment.md (troubleshooting).")
    return 0 if any(s.works for s in statuses) else 1


def add(sub) -> None:
    p = sub.add_parser("doctor", help="which backends work here, and why the others don't")
    p.add_argument("--backends", help="comma-separated subset")
    p.add_argument("--json", action="store_true",
                   help='machine-readable output: {"backends": [...], "peers": [...]}')
    p.add_argument("--no-peers", action="store_true", help="leave out the peer libraries' table")
    p.set_defaults(func=main)
