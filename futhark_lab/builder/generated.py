"""Code generated elsewhere: ``export_generated`` stores futhark's output on a machine that has futhark; a machine
without it (``$FUTHARK_LAB_GENERATED``) finds the matching output and runs only its C compiler.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from ..errors import FutharkCompileError
from .source import _read_source, imported_files, source_docs
from .toolchain import _validate_options, find_futhark

# --------------------------------------------------------------------------- code generated on another machine

def generated_key(source: str, base_dir: Path, backend: str, options: list[str]) -> str:
    """Key of futhark's output alone (no C compiler in it): what a machine without futhark looks up."""
    h = hashlib.sha256(f"{backend}\0{json.dumps(options)}\0".encode() + source.encode())
    for f in imported_files(source, base_dir):
        h.update(f.read_bytes())
    return h.hexdigest()[:24]


def find_generated(source: str, base_dir: Path, backend: str, options: list[str]) -> Path | None:
    """A pre-generated build in $FUTHARK_LAB_GENERATED (made by ``export_generated`` where futhark exists)."""
    root = os.environ.get("FUTHARK_LAB_GENERATED")
    if not root:
        return None
    d = Path(root) / f"{backend}-{generated_key(source, base_dir, backend, options)}"
    return d if (d / "generated.json").exists() else None


def export_generated(source: str | os.PathLike, backend: str, dest: str | os.PathLike, *,
                     options: list[str] | tuple[str, ...] = ()) -> Path:
    """Run futhark here and store its output where a machine without futhark finds it (set
    $FUTHARK_LAB_GENERATED there); the C compilation and everything after happen on that machine."""
    futhark = find_futhark()
    text, path = _read_source(source)
    options = _validate_options(list(options))
    base = path.parent if path is not None else Path.cwd()
    out = Path(dest).resolve() / f"{backend}-{generated_key(text, base, backend, options)}"
    out.mkdir(parents=True, exist_ok=True)
    fut_file = path if path is not None else out / "program.fut"
    if path is None:
        fut_file.write_text(text)
    cmd = [futhark.path, backend, "--library", *options, "-o", str(out / "prog"), str(fut_file)]
    res = subprocess.run(cmd, cwd=fut_file.parent, capture_output=True, text=True)
    if res.returncode != 0:
        raise FutharkCompileError(res.stderr.strip(), command=cmd)
    (out / "generated.json").write_text(json.dumps({"futhark_version": list(futhark.version),
                                                    "futhark_version_text": futhark.version_text,
                                                    "backend": backend, "source": str(source)[:200]}))
    (out / "docs.json").write_text(json.dumps(source_docs(text)))
    return out
