"""What a sweep does when implementations fail (``on_error``): warn per implementation, or raise ``SweepFailed``
(with every row) when one failed at every point of a kernel.  A peer whose package is missing (``PeerUnavailable``)
is skipped with its install line, never counted as a failure.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import FutharkLabError

ON_ERROR = ("raise-if-all", "warn", "record", "raise")


class SweepFailed(FutharkLabError):
    """An implementation failed at every point of a kernel (``on_error="raise-if-all"``).  ``df`` holds every
    row of the run, the failed ones with their ``error``."""

    def __init__(self, message: str, df: Any):
        super().__init__(message)
        self.df = df


def _report_failures(outcome: dict[tuple[str, str], list[str | None]], on_error: str, df: Any) -> None:
    if on_error in ("record", "raise"):
        return
    dead = []
    for (kernel, impl), errs in outcome.items():
        failed = [e for e in errs if e]
        if not failed:
            continue
        if all(e.startswith("PeerUnavailable") for e in failed):  # a missing package: skipped, never a failure
            warnings.warn(f"sweep: {impl} on {kernel}: {failed[0].split(': ', 1)[1]}", stacklevel=3)
            continue
        line = f"{impl} on {kernel}: failed at {len(failed)} of {len(errs)} point(s); first error: {failed[0]}"
        if len(failed) == len(errs) and on_error == "raise-if-all":
            dead.append(line)
        else:
            warnings.warn(f"sweep: {line}", stacklevel=3)
    if dead:
        raise SweepFailed("sweep: every point failed for\n  " + "\n  ".join(dead) +
                          "\n(the rows, with their errors, are in this exception's .df and in results/"
                          f"{df.attrs.get('run_id', '')}; on_error='warn' returns them instead)", df)
