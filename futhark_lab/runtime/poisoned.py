"""Backends whose GPU state a sticky driver error has ruined for the rest of this process.

After such an error (e.g. CUDA's illegal address, 700) creating any new context of that backend would make futhark's
runtime exit() the process.  A leaf module, so the binding that detects the error and the probe and loader that
refuse new contexts share one record without importing each other.
"""

from __future__ import annotations

_poisoned: dict[str, str] = {}


def poison(backend: str, why: str) -> None:
    """Record that no new context of ``backend`` may be created in this process, and why."""
    _poisoned[backend] = why


def poisoned_reason(backend: str) -> str | None:
    """Why ``backend`` is unusable in this process, or None if it is fine."""
    return _poisoned.get(backend)


FIX = "restart the Python process (Jupyter: Kernel > Restart); other backends still work"
