"""Faster calls into a built library: a small cffi API-mode extension module per build.

The binding's declarations (generated from the manifest) are first loaded in cffi's ABI mode, which needs no
compiler.  Where this machine can build CPython extensions (a C compiler and Python.h), the same declarations,
kept to the functions the library really exports, are compiled into an extension that links the library; a call
through it skips libffi's argument marshalling.  Anything that goes wrong here leaves the ABI-mode binding in use.
Set FUTHARK_LAB_BINDING=abi to never build one.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

_NAME = re.compile(r"(\w+)\s*\(")


def enabled() -> bool:
    if os.environ.get("FUTHARK_LAB_BINDING", "").lower() == "abi":
        return False
    include = sysconfig.get_paths().get("include") or ""
    return bool(include) and Path(include, "Python.h").exists() and shutil.which(
        (os.environ.get("CC") or "cc").split()[0]) is not None


def exported_only(cdef: str, abi_lib: Any) -> str:
    """The declarations whose functions the library exports (struct declarations always stay)."""
    keep = []
    for line in cdef.splitlines():
        m = _NAME.search(line)
        if m is None:
            keep.append(line)
            continue
        try:
            getattr(abi_lib, m.group(1))
            keep.append(line)
        except (AttributeError, NotImplementedError):
            continue
    return "\n".join(keep)


def api_module(build, cdef: str, include_flags: list[str]) -> tuple[Any, Any] | None:
    """(ffi, lib) of the build's API-mode extension, compiling it once (into the build directory) if needed."""
    import cffi

    name = f"{build.module_name}_api"
    directory = Path(build.directory)
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    target = directory / f"{name}{suffix}"
    if not target.exists():
        ffi = cffi.FFI()
        ffi.cdef(cdef)
        ffi.set_source(
            name, f'#include <stdlib.h>\n#include "{Path(build.header).name}"\n',
            include_dirs=[str(directory)],
            extra_compile_args=["-O2", "-w", *include_flags],
            extra_link_args=[f"-L{directory}", f"-l:{Path(build.library).name}", f"-Wl,-rpath,{directory}"])
        tmp = tempfile.mkdtemp(prefix=".api-", dir=directory)
        try:
            built = ffi.compile(tmpdir=tmp, verbose=False)
            os.replace(built, target)  # atomic: a concurrent builder's identical file is simply replaced
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ffi, module.lib
