"""What a bench run compares: backend × compiler × tuning, each a ``Variant`` with its own row label.

futhark bench runs one compiler and one tuning file (``prog.fut.tuning`` when present, "(no tuning file)"
otherwise); a workbench question is often "default against tuned" or "did upgrading futhark help": both are more
variants of the same datasets, measured interleaved in the same rounds, so their rows compare fairly.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

from ..builder.toolchain import find_futhark
from ..builder.tuning import NO_TUNING, TuningLike, resolve, tuning_file_for

#: ``tuning="auto"``: as futhark bench, ``prog.fut.tuning`` when it exists.
AUTO = "auto"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of building and running the program: ``key`` is its ``impl`` label, unique within a run."""

    key: str
    backend: str
    tuning: tuple[tuple[str, int], ...] = ()
    tuning_label: str = NO_TUNING
    futhark: str | None = None
    futhark_version: str = ""
    tuning_file: str | None = None

    def compile_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.tuning_file is not None:     # the file itself: an unknown name's error then names it
            kw["tuning"] = self.tuning_file
        elif self.tuning:
            kw["tuning"] = dict(self.tuning)
        if self.futhark is not None:
            kw["futhark"] = self.futhark
        return kw

    def row(self) -> dict[str, Any]:
        return {"impl": self.key, "backend": self.backend, "tuning": self.tuning_label,
                "tuning_params": dict(self.tuning) or None, "futhark_version": self.futhark_version}

    @property
    def plain(self) -> bool:
        return not self.tuning and self.futhark is None


def _as_list(x: Any) -> list:
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _tuning_entry(program: Path, t: TuningLike | str | bool) -> tuple[dict[str, int], str, str, str | None]:
    """(parameters, row label, short name for the impl label, the file)."""
    if t is False or t is None:
        return {}, NO_TUNING, "default", None
    if isinstance(t, str) and t == AUTO:
        f = tuning_file_for(program)
        if f is None:
            return {}, NO_TUNING, "default", None
        t = f
    values, where = resolve(t)
    if where == "(dict)":
        return values, "(dict)", "tuned", None
    return values, f"(using {Path(where).name})", "tuned", where


def make_variants(program: str | os.PathLike, backends: Sequence[str], tuning: Any = AUTO,
                  futhark: Any = None) -> list[Variant]:
    """Every backend × compiler × tuning; labels carry ``@<futhark version>`` when compilers are compared and
    ``+default``/``+tuned`` (or the file's name) when tunings are."""
    program = Path(program)
    futharks = _as_list(futhark) or [None]
    tunings = _as_list(tuning) if not isinstance(tuning, dict) else [tuning]
    if not tunings:
        tunings = [None]
    compilers = []
    for f in futharks:
        fc = find_futhark(f) if f is not None else find_futhark()
        compilers.append((f if f is None else fc.path, fc.version_str))
    versions = [v for _, v in compilers]
    comp_labels = []
    for i, (_, v) in enumerate(compilers):
        same = [j for j, w in enumerate(versions) if w == v]
        comp_labels.append(f"@{v}" + (f"({same.index(i) + 1})" if len(same) > 1 else ""))
    entries = [_tuning_entry(program, t) for t in tunings]
    shorts = [e[2] for e in entries]
    tun_labels = []
    for i, (values, label, short, _) in enumerate(entries):
        if shorts.count(short) > 1:
            short = label.removeprefix("(using ").removesuffix(")") if label.startswith("(using") else f"{short}{i}"
        tun_labels.append(f"+{short}")
    out = []
    for b in backends:
        for (path, ver), cl in zip(compilers, comp_labels):
            for (values, label, _, file), tl in zip(entries, tun_labels):
                key = f"futhark-{b}" + (cl if len(compilers) > 1 else "") + (tl if len(entries) > 1 else "")
                out.append(Variant(key, b, tuple(sorted(values.items())), label, path, ver, file))
    keys = [v.key for v in out]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise ValueError(f"two variants would share the label {sorted(dup)[0]!r}: give different backends, "
                         "compilers or tuning files")
    return out
