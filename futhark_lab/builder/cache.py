"""The content-addressed build cache (like Cython's ``%%cython``): the key hashes everything that changes the built
artefact, and ``Build`` is a finished entry in it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path

from .source import imported_files
from .toolchain import FutharkCompiler, c_compiler_identity

#: Bump when the binding or build recipe changes in a way that invalidates cached builds.
BUILD_FORMAT = 15


def cache_root() -> Path:
    root = os.environ.get("FUTHARK_LAB_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "futhark-lab"


@dataclasses.dataclass
class Build:
    """A finished build in the cache: everything needed to load the program."""

    directory: Path
    backend: str
    module_name: str
    futhark: FutharkCompiler
    source_name: str
    cache_hit: bool
    log: str

    @property
    def docs(self) -> dict[str, str]:
        p = self.directory / "docs.json"
        return json.loads(p.read_text()) if p.exists() else {}

    @property
    def library(self) -> Path:
        return self.directory / f"{self.module_name}.so"

    @property
    def param_names(self) -> dict[str, list[str]]:
        """Entry-point parameter names read from the source (see source_param_names)."""
        try:
            return json.loads((self.directory / "params.json").read_text())
        except (OSError, ValueError):
            return {}

    def map_runtime_message(self, text: str) -> str:
        """A runtime error's backtrace names the file futhark compiled (for a cell or source text: a temporary
        file, gone by now); show the user's name (``<cell NAME>``, the source_name given, or their file)."""
        compiled = getattr(self, "_compiled_path", False)
        if compiled is False:
            try:
                compiled = json.loads((self.directory / "BUILD_OK").read_text()).get("compiled_path")
            except (OSError, ValueError, AttributeError):
                compiled = None
            object.__setattr__(self, "_compiled_path", compiled)
        if compiled and compiled != self.source_name:
            text = text.replace(compiled, self.source_name)
        # the C was compiled in a temporary directory renamed to the build directory afterwards: the runtime's
        # __FILE__ (in CUDA/OpenCL call failures) names the temporary one, which no longer exists
        if ".tmp-" in text:
            text = re.sub(rf"[^\s\"'`]*/\.tmp-{re.escape(self.module_name)}-[A-Za-z0-9_]+/",
                          lambda _: f"{self.directory}/", text)
        return text

    @property
    def manifest(self) -> Path:
        return self.directory / f"{self.module_name}.json"

    @property
    def header(self) -> Path:
        return self.directory / f"{self.module_name}.h"

    @property
    def python_module(self) -> Path:
        return self.directory / f"{self.module_name}.py"

    @property
    def c_source(self) -> Path:
        return self.directory / f"{self.module_name}.c"


def load_build(directory: str | os.PathLike, module_name: str) -> Build:
    """A finished build from its directory alone (no futhark needed): for child processes and other machines."""
    d = Path(directory)
    meta = json.loads((d / "BUILD_OK").read_text())
    fut = FutharkCompiler("(recorded)", tuple(meta.get("futhark_version", (0, 0, 0))), meta.get("futhark", ""))
    return Build(d, meta["backend"], module_name, fut, meta.get("source", module_name), True, "")


def cache_key(
    source: str,
    base_dir: Path,
    backend: str,
    options: list[str],
    futhark: FutharkCompiler,
    cc: list[str],
    extra: str = "",
) -> str:
    h = hashlib.sha256()
    parts = [
        f"format={BUILD_FORMAT}",
        f"backend={backend}",
        f"options={json.dumps(options)}",
        f"futhark={futhark.version_text}",
        f"cc={' '.join(cc)}|{c_compiler_identity(tuple(cc))}",
        f"cflags_env={os.environ.get('CFLAGS', '')}",
        f"extra={extra}",
    ]
    for p in parts:
        h.update(p.encode() + b"\0")
    h.update(source.encode() + b"\0")
    for f in imported_files(source, base_dir):
        h.update(str(f).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()
