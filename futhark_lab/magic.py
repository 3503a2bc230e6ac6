"""``%%futhark``: compile a notebook cell into a live module (after Cython's ``%%cython``).

The cell goes through ``futhark_lab.compile`` (content-hashed build cache, so an unchanged cell is a cache hit and a
changed one gets a fresh module name).  A compile error shows only the compiler's message, with line numbers of the
cell (the ``%%futhark`` line is line 1) and columns, and fails the cell so "Run All" stops; the previous good
module stays bound.  Arguments are parsed into values and passed on as argument vectors; nothing reaches a shell.
"""

from __future__ import annotations

import keyword
import os
import shlex
import time

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .builder.toolchain import ALL_BACKENDS
from .errors import BackendUnavailable, FutharkCompileError, FutharkLabError

DEFAULT_NAME = "fut"
_CONFIG_KEYS = {"backend", "device", "platform", "name", "verbose", "threads", "unified_memory", "profiling",
                "option", "tuning", "futhark"}


class CellFailed(Exception):
    """Fails the cell with a clean message instead of a Python traceback (IPython's _render_traceback_ hook)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def _render_traceback_(self) -> list[str]:
        return self.message.splitlines()


def _bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {v!r}")


@magics_class
class FutharkMagics(Magics):
    def __init__(self, shell):
        super().__init__(shell)
        self.defaults: dict = {"backend": "c"}

    @line_magic
    def futhark_config(self, line: str):
        """Notebook-wide defaults for %%futhark, e.g. ``%futhark_config backend=cuda device=#0``.

        Keys: backend, device, platform, name, verbose, threads, unified_memory, profiling, option (repeatable
        compiler option), tuning (a tuning file), futhark (a compiler path).  With no arguments, show the current defaults; ``reset`` clears them.
        """
        words = shlex.split(line)
        if not words:
            print("futhark defaults: " + ", ".join(f"{k}={v}" for k, v in sorted(self.defaults.items())))
            return dict(self.defaults)
        if words == ["reset"]:
            self.defaults = {"backend": "c"}
            return dict(self.defaults)
        new = dict(self.defaults)
        for w in words:
            key, sep, value = w.partition("=")
            if not sep or key not in _CONFIG_KEYS:
                raise CellFailed(f"%futhark_config: expected key=value with key in {sorted(_CONFIG_KEYS)}, got {w!r}")
            if key == "backend" and value not in ALL_BACKENDS + ("auto",):
                raise CellFailed(f"%futhark_config: unknown backend {value!r}; choose from {', '.join(ALL_BACKENDS)}")
            if key in ("verbose", "unified_memory", "profiling"):
                try:
                    value = _bool(value)
                except ValueError as exc:
                    raise CellFailed(f"%futhark_config: {key}: {exc}") from None
            if key == "threads":
                value = int(value)
            if key == "option":
                new.setdefault("options", []).append(value)
                continue
            new[key] = value
        self.defaults = new
        return dict(new)

    @magic_arguments()
    @argument("-b", "--backend", choices=ALL_BACKENDS + ("auto",), default=None,
              help="Futhark backend (default: c, or %%futhark_config backend=...)")
    @argument("-n", "--name", default=None, help=f"Python name to bind the module to (default: {DEFAULT_NAME})")
    @argument("-f", "--force", action="store_true", help="rebuild even if the build cache has this cell")
    @argument("-d", "--device", default=None, help="GPU device: name substring or #k")
    @argument("-p", "--platform", default=None, help="OpenCL platform: name substring or #k")
    @argument("-t", "--threads", type=int, default=None, help="threads for the multicore backend")
    @argument("--profiling", action="store_true", default=None, help="enable the runtime's profiling report")
    @argument("--tuning", default=None, metavar="FILE",
              help="a tuning file (name=value lines, as futhark autotune writes prog.fut.tuning)")
    @argument("--futhark", default=None, metavar="PATH", help="the futhark compiler to build with (default: $FUTHARK, "
              "then PATH)")
    @argument("-O", "--option", action="append", default=None,
              help="compiler option passed through to futhark (repeatable), e.g. -O=--safe")
    @argument("-v", "--verbose", action="store_true", default=None,
              help="show the compiler commands and their output")
    @cell_magic
    def futhark(self, line: str, cell: str):
        """Compile the cell with the futhark compiler and bind the module in the notebook namespace.

        Example::

            %%futhark --backend multicore --name stats
            entry sum_squares (xs: []f64): f64 = f64.sum (map (\\x -> x*x) xs)
        """
        try:
            args = parse_argstring(self.futhark, line)
        except Exception as exc:  # UsageError from argparse: show it as the cell's failure
            raise CellFailed(f"%%futhark: {exc}") from None
        d = self.defaults
        backend = args.backend or d.get("backend", "c")
        name = args.name or d.get("name", DEFAULT_NAME)
        if not name.isidentifier() or keyword.iskeyword(name):
            raise CellFailed(f"%%futhark: --name must be a Python identifier, got {name!r}")
        if name.startswith("__") and name.endswith("__") or name in ("get_ipython", "exit", "quit"):
            raise CellFailed(f"%%futhark: --name {name!r} would replace a name the notebook itself needs; "
                             "choose another, e.g. --name mod")
        verbose = args.verbose if args.verbose is not None else d.get("verbose", False)
        options = list(d.get("options", [])) + list(args.option or [])
        from .runtime.frontdoor import compile as fcompile

        t0 = time.perf_counter()
        try:
            # a blank first line stands for the %%futhark line, so the compiler's line:column positions (errors,
            # warnings, runtime backtraces) are the cell's own, as JupyterLab numbers its lines
            module = fcompile("\n" + cell, backend=backend, name=f"<cell {name}>", options=options, force=args.force,
                              base_dir=os.getcwd(), verbose=False,
                              device=args.device or d.get("device"), platform=args.platform or d.get("platform"),
                              num_threads=args.threads or d.get("threads"),
                              profiling=bool(args.profiling if args.profiling is not None else d.get("profiling")),
                              unified_memory=bool(d.get("unified_memory", False)),
                              tuning=args.tuning or d.get("tuning"), futhark=args.futhark or d.get("futhark"))
        except FutharkCompileError as exc:
            raise CellFailed(f"Futhark compilation failed ({exc.stage}):\n{exc.message}") from None
        except BackendUnavailable as exc:
            raise CellFailed(str(exc)) from None
        except (FutharkLabError, ValueError, TypeError, OSError) as exc:
            raise CellFailed(f"%%futhark: {exc}") from None
        except KeyboardInterrupt:
            raise CellFailed("%%futhark: compilation interrupted") from None
        except Exception as exc:  # noqa: BLE001 - the cell fails with a message, never a half-bound module
            raise CellFailed(f"%%futhark: {type(exc).__name__}: {exc}\n(an unexpected failure of futhark-lab; "
                             "please report it)") from None
        if verbose:
            print(module.build.log or "(no compiler output)")
        self.shell.user_ns[name] = module
        took = time.perf_counter() - t0
        hit = "cache hit" if module.build.cache_hit else "compiled"
        entries = ", ".join(module.entry_points)
        tuned = f"; tuning: {module.tuning_source}" if module.tuning_source else ""
        print(f"{name} = futhark {backend} module ({hit} in {took * 1e3:.0f} ms); entry points: {entries}{tuned}")
        return None
