"""``futhark_lab.compile``: the loader's compile, with ``backend="auto"`` resolved by the doctor.

A module of its own because choosing a backend means compiling and running test programs (``doctor``), which itself
goes through ``loader``: the choice sits above both, so neither imports the other.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from . import loader
from .doctor import best_backend


@functools.wraps(loader.compile)
def compile(source: str | os.PathLike, backend: str = "c", **kwargs: Any) -> Any:
    if backend == "auto":
        backend = best_backend(verbose=True)
    return loader.compile(source, backend, **kwargs)
