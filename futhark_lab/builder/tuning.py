"""Tuning files as futhark reads and writes them: ``name=value`` lines (``--`` comments and blank lines allowed), as
``futhark autotune`` writes ``prog.fut.tuning`` and ``futhark bench`` and the generated programs' ``--tuning`` read
it.  A leaf of ``builder``: names and values are checked against a program by the runtime (``runtime.guards``,
the context), this module only says which line of which file is malformed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Union

#: What a user may pass as ``tuning=``: a file, or parameter name -> value.
TuningLike = Union[str, os.PathLike, Mapping[str, int], None]

#: The label futhark bench prints when a program has no tuning file.
NO_TUNING = "(no tuning file)"

_LINE = re.compile(r"^\s*([^=\s][^=]*?)\s*=\s*(\S*)\s*$")


class TuningFileError(ValueError):
    """A tuning file futhark itself would refuse (futhark's message: "Invalid line N (must be of form
    'name=int')")."""


def tuning_file_for(program: str | os.PathLike) -> Path | None:
    """``prog.fut.tuning`` beside ``prog.fut`` if it exists: the file futhark bench applies without being asked."""
    p = Path(os.fspath(program) + ".tuning")
    return p if p.is_file() else None


def read_tuning_file(path: str | os.PathLike) -> dict[str, int]:
    """``name=value`` lines into a dict; a malformed line or value raises ``TuningFileError`` naming the file, the
    line and the parameter."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise TuningFileError(f"cannot read tuning file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TuningFileError(f"tuning file {p} is not text (expected `name=value` lines)") from None
    out: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("--"):
            continue
        m = _LINE.match(line)
        if not m:
            raise TuningFileError(f"{p}, line {n}: {line.strip()[:80]!r} is not of the form name=value (an integer)")
        name, value = m.group(1), m.group(2)
        try:
            v = int(value, 10)
        except ValueError:
            raise TuningFileError(f"{p}, line {n}: tuning parameter {name!r} = {value!r} is not an integer "
                                  "(values are integers from 0 to 2**63-1)") from None
        if v < 0:
            raise TuningFileError(f"{p}, line {n}: tuning parameter {name!r} = {v} is negative (values are "
                                  "integers from 0 to 2**63-1)")
        if name in out and out[name] != v:
            raise TuningFileError(f"{p}, line {n}: tuning parameter {name!r} is set twice ({out[name]}, then {v})")
        out[name] = v
    return out


def write_tuning_file(path: str | os.PathLike, tuning: Mapping[str, int]) -> Path:
    """Write ``tuning`` as futhark autotune does (one ``name=value`` per line, sorted by name)."""
    p = Path(path)
    lines = []
    for name in sorted(tuning):
        v = tuning[name]
        if not isinstance(name, str) or "=" in name or not name.strip() or "\n" in name:
            raise TuningFileError(f"tuning parameter name {name!r} cannot be written as `name=value`")
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise TuningFileError(f"tuning parameter {name!r} = {v!r}: values are integers from 0 to 2**63-1")
        lines.append(f"{name}={v}\n")
    p.write_text("".join(lines))
    return p


def resolve(tuning: TuningLike) -> tuple[dict[str, int], str | None]:
    """(parameters, where they came from) for a ``tuning=`` argument: a path is read (its absolute path is the
    label), a dict is taken as given (label ``"(dict)"``), ``None`` is no tuning (label ``None``)."""
    if tuning is None:
        return {}, None
    if isinstance(tuning, (str, os.PathLike)):
        p = Path(tuning)
        if not p.is_file():
            raise TuningFileError(f"tuning file {p} does not exist (futhark autotune writes prog.fut.tuning; "
                                  "`futhark-lab tune prog.fut` runs it)")
        return read_tuning_file(p), str(p.resolve())
    if isinstance(tuning, Mapping):
        return dict(tuning), "(dict)"
    try:                                  # (name, value) pairs, as dict() takes them
        return dict(tuning), "(dict)"
    except (TypeError, ValueError):
        pass
    raise TypeError(f"tuning must be a tuning file's path or a dict of parameter name -> integer, got "
                    f"{type(tuning).__name__}")


def label(tuning: TuningLike) -> str:
    """What a row says about its tuning, in futhark bench's words: ``(using prog.fut.tuning)``, ``(no tuning
    file)``, or ``(dict)`` for parameters given in code."""
    if tuning is None or (isinstance(tuning, Mapping) and not tuning):
        return NO_TUNING
    if isinstance(tuning, (str, os.PathLike)):
        return f"(using {Path(tuning).name})"
    return "(dict)"
