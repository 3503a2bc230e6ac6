"""What futhark-lab reads from Futhark source itself: imported files (for the cache key), doc comments and
parameter names of entry points (for compilers whose manifest lacks them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import FutharkCompileError

# --------------------------------------------------------------------------- sources and the cache key

_IMPORT_RE = re.compile(r'^\s*(?:open\s+)?import\s+"([^"]+)"', re.MULTILINE)


def imported_files(source: str, base_dir: Path, _seen: set[Path] | None = None) -> list[Path]:
    """Files reached through ``import "x"`` (relative to the importing file), depth first in import order, for the
    cache key.  Iterative: a chain of thousands of imports is fine (recursion would hit Python's limit)."""
    seen = _seen if _seen is not None else set()
    found: list[Path] = []
    stack = [(iter(_IMPORT_RE.findall(source)), base_dir, None)]  # (imports left, their directory, importer)
    while stack:
        rels, base, importer = stack[-1]
        rel = next(rels, None)
        if rel is None:
            stack.pop()
            continue
        target = base / (rel if rel.endswith(".fut") else rel + ".fut")
        try:
            path = target.resolve()
        except (RuntimeError, OSError) as exc:  # RuntimeError: Python < 3.13's "Symlink loop"
            where = f"in {importer}" if importer is not None else "in the program"
            raise FutharkCompileError(
                f'import "{rel}" {where}: {target} cannot be resolved ({exc}); it is probably a symbolic link that '
                "points (through others) back at itself: make it point at a real .fut file", stage="imports") \
                from None
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        found.append(path)
        stack.append((iter(_IMPORT_RE.findall(path.read_text(errors="replace"))), path.parent, path))
    return found


_DOC_RE = re.compile(r"((?:^[ \t]*-- \|.*\n)(?:^[ \t]*--(?! \|).*\n)*)^[ \t]*entry\s+([A-Za-z_][A-Za-z0-9_']*)",
                     re.MULTILINE)


def source_docs(source: str) -> dict[str, str]:
    """Doc comments (``-- | ...``) of entry points, read from the source (manifests carry them only from 0.26)."""
    docs = {}
    for block, name in _DOC_RE.findall(source):
        lines = [re.sub(r"^[ \t]*--\s?\|?\s?", "", ln) for ln in block.splitlines()]
        docs[name] = "\n".join(lines).strip()
    return docs


_ENTRY_RE = re.compile(r"^[ \t]*entry\s+([A-Za-z_][A-Za-z0-9_']*)", re.MULTILINE)
_PARAM_RE = re.compile(r"\s*\(\s*([A-Za-z_][A-Za-z0-9_']*)\s*:")


def source_param_names(source: str) -> dict[str, list[str]]:
    """Parameter names of entry points written ``entry f (x: t) (y: u)``, for the python backends (which have no
    manifest), so their errors name parameters as the C backends' do.  Other parameter forms: left out."""
    out: dict[str, list[str]] = {}
    for m in _ENTRY_RE.finditer(source):
        pos, names = m.end(), []
        while True:
            while pos < len(source) and source[pos].isspace():
                pos += 1
            if source.startswith("[", pos) or source.startswith("'", pos):  # size/type parameters
                end = source.find("]", pos) if source[pos] == "[" else pos + 1
                while end < len(source) and not source[end].isspace() and source[pos] == "'":
                    end += 1
                pos = end + 1
                continue
            pm = _PARAM_RE.match(source, pos)
            if not pm:
                break
            depth, i = 0, pos
            while i < len(source):  # skip to the matching ")"
                depth += {"(": 1, ")": -1}.get(source[i], 0)
                i += 1
                if depth == 0:
                    break
            names.append(pm.group(1))
            pos = i
        out[m.group(1)] = names
    return out


def _read_source(source: str | os.PathLike) -> tuple[str, Path | None]:
    """Source text and, if it came from a file, that file's path."""
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and source.endswith(".fut") and len(source) < 4096
    ):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no Futhark source file at {path}")
        try:
            return path.read_text(encoding="utf-8"), path.resolve()
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); Futhark sources are "
                             "UTF-8") from None
    if not isinstance(source, str):
        raise TypeError(f"source must be Futhark text or a path to a .fut file, not {type(source).__name__}")
    try:
        source.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: futhark reads UTF-8, which cannot hold one
        line = source.count("\n", 0, exc.start) + 1
        raise ValueError(f"the Futhark source has a character UTF-8 cannot encode, {source[exc.start]!r} (a lone "
                         f"surrogate) on line {line}, character {exc.start}; remove it (it often comes from text "
                         "decoded with errors='surrogateescape' or a broken copy and paste)") from None
    return source, None
