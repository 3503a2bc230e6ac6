"""What every compiled module offers beside its entry points, whichever backend made it (a C library bound by
``runtime.module``, a generated Python module by ``runtime.pyloader``): lookup by name, tab completion, no pickling."""

from __future__ import annotations

from typing import Any


class ModuleBase:
    entry_points: dict[str, Any]

    def _expose(self, name: str, fn: Any) -> None:
        """``fn`` as ``module[name]`` and, where ``name`` is a free identifier, ``module.name``."""
        self.entry_points[name] = fn
        if name.isidentifier() and not hasattr(type(self), name):
            setattr(self, name, fn)

    def __reduce__(self):
        raise TypeError("a compiled Futhark module holds a live context and cannot be pickled or copied; compile "
                        "the program again in the other process (the build cache makes that fast)")

    #: where this module's tuning came from: a tuning file's path, ``"(dict)"``, or None (the compiler's defaults)
    tuning_source: str | None = None

    def tuning_parameters(self) -> list[str]:  # pragma: no cover - both kinds of module define it
        raise NotImplementedError

    def _tuning_class(self, name: str) -> str:
        return ""

    def tuning(self):
        """This program's tuning parameters (incremental flattening's thresholds, block and grid sizes, ...) as a
        DataFrame: ``name``, ``class`` (futhark's: threshold(...), thread_block_size, grid_size, ...), ``value``
        (what this module's context was given, or None), ``default`` (what the runtime uses when none is given:
        0 means "the runtime's choice for this class on this device", which futhark picks when the context starts)
        and ``source`` (the tuning file or dict the value came from)."""
        import pandas as pd
        given = dict(getattr(self.options, "tuning", None) or {})
        rows = []
        for name in self.tuning_parameters():
            cls = self._tuning_class(name)
            rows.append({"name": name, "class": cls, "value": given.get(name),
                         "default": f"runtime's choice for {cls.split('(')[0] or 'this parameter'} on this device",
                         "source": self.tuning_source if name in given else None})
        df = pd.DataFrame(rows, columns=["name", "class", "value", "default", "source"])
        df["value"] = df["value"].astype("Int64")
        return df

    def __getitem__(self, name: str) -> Any:
        try:
            return self.entry_points[name]
        except (KeyError, TypeError):
            raise KeyError(f"no entry point {name!r}; this program has: "
                           f"{', '.join(self.entry_points) or 'none'}") from None

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.entry_points))
