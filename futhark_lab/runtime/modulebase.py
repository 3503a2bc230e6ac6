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

    def __getitem__(self, name: str) -> Any:
        try:
            return self.entry_points[name]
        except (KeyError, TypeError):
            raise KeyError(f"no entry point {name!r}; this program has: "
                           f"{', '.join(self.entry_points) or 'none'}") from None

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.entry_points))
