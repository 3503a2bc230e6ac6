"""futhark-lab: compile Futhark from notebooks and measure it honestly against PyTorch and NumPy."""

from __future__ import annotations

from .errors import (
    BackendUnavailable,
    FutharkCompileError,
    FutharkError,
    FutharkLabError,
    FutharkNotFound,
    FutharkOutOfMemory,
)
from .runtime.frontdoor import compile
from .version import __version__

__all__ = ["compile", "sweep", "compare", "report", "explore", "doctor", "tune", "FutharkError", "FutharkCompileError",
           "FutharkNotFound", "FutharkOutOfMemory", "BackendUnavailable", "FutharkLabError", "__version__"]


def __getattr__(name: str):
    # heavier front doors load on first use, so `import futhark_lab` stays fast
    if name == "sweep":
        from .sweep.run import sweep
        return sweep
    if name == "compare":
        from .measure.compare import compare
        return compare
    if name == "report":
        from .view.report import report
        return report
    if name == "explore":
        from .view.widgets import explore
        return explore
    if name == "tune":   # futhark autotune, then default against tuned (bench.tune)
        from .bench.tune import tune
        return tune
    if name == "doctor":
        from .runtime.doctor import doctor
        return doctor
    if name in ("plots", "benchplots"):  # `from futhark_lab import plots`: the figures live in the view layer
        import importlib
        return importlib.import_module(f".view.{name}", __name__)
    raise AttributeError(f"module 'futhark_lab' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    """`%load_ext futhark_lab` registers the %%futhark cell magic and %futhark_config line magic."""
    from .magic import FutharkMagics
    ipython.register_magics(FutharkMagics(ipython))


def _jupyter_labextension_paths() -> list[dict]:
    """The prebuilt JupyterLab extension (Futhark highlighting), for ``jupyter labextension develop``."""
    return [{"src": "labextension", "dest": "futhark-lab-jupyterlab"}]
