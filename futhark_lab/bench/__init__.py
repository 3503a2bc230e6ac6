"""Futhark's own benchmarks in the workbench: a program's ``-- ==`` datasets run through futhark-lab's binding
(:func:`bench`), ``futhark bench --json`` files imported (:func:`load_json`), and runs from either compared
(:func:`compare`), all as the tidy DataFrame of sweeps."""

from .spec import ProgramSpec, SpecError, parse, read

__all__ = ["ProgramSpec", "SpecError", "parse", "read", "bench", "load_json", "import_json", "compare"]


def __getattr__(name):  # the runner and importer pull in compiler/timing/pandas: loaded on first use
    if name == "bench":
        from .run import bench
        return bench
    if name in ("load_json", "import_json"):
        from ..bench import jsonimport
        return getattr(jsonimport, name)
    if name == "compare":
        from .comparison import compare
        return compare
    raise AttributeError(name)
