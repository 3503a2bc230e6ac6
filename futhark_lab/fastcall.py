"""Faster calls into a built library: a small cffi API-mode extension module per build, compiled alongside it.

The binding's declarations (generated from the manifest, ``cdef``) load in cffi's ABI mode anywhere, with no
compiler.  Where this machine can build CPython extensions (a C compiler and Python.h), the same declarations, kept
to the functions the program's header declares, plus one call helper per entry point (entry point + sync in one C
call), are compiled into an extension that links the library; a call through it skips libffi's argument
marshalling and crosses into C once.

The extension is built during ``compile_program``, in parallel with the library's own C compilation (its C comes
from cffi's ``emit_c_code`` and goes straight to the C compiler, without setuptools), so a new program costs about
what futhark + cc cost.  Anything that goes wrong here leaves the ABI-mode binding in use.
Set FUTHARK_LAB_BINDING=abi to never build one.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

from . import cdef as cd
from . import manifest as mf

_NAME = re.compile(r"(\w+)\s*\(")
_HEADER_NAMES = re.compile(r"\b(futhark_\w+)\s*\(")


def enabled() -> bool:
    if os.environ.get("FUTHARK_LAB_BINDING", "").lower() == "abi":
        return False
    return _python_include() is not None and shutil.which(_cc()[0]) is not None


def _cc() -> list[str]:
    return (os.environ.get("CC") or "cc").split()


def _python_include() -> str | None:
    include = sysconfig.get_paths().get("include") or ""
    return include if include and Path(include, "Python.h").exists() else None


def extension_name(module_name: str) -> str:
    return f"{module_name}_api"


def extension_path(directory: Path, module_name: str) -> Path:
    return Path(directory) / f"{extension_name(module_name)}{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"


def declared_only(cdef: str, declared: set[str]) -> str:
    """The declarations whose functions are in ``declared`` (struct declarations always stay)."""
    keep = []
    for line in cdef.splitlines():
        m = _NAME.search(line)
        if m is None or m.group(1) in declared:
            keep.append(line)
    return "\n".join(keep)


def exported_only(cdef: str, abi_lib: Any) -> str:
    """The declarations whose functions an ABI-mode library exports (struct declarations always stay)."""
    names = set()
    for line in cdef.splitlines():
        m = _NAME.search(line)
        if m is None:
            continue
        try:
            getattr(abi_lib, m.group(1))
            names.add(m.group(1))
        except (AttributeError, NotImplementedError):
            continue
    return declared_only(cdef, names)


@dataclasses.dataclass
class Pending:
    """An extension whose object file is being compiled (a running C compiler)."""

    process: subprocess.Popen
    source: Path
    obj: Path
    target: Path
    command: list[str]


def start(directory: Path, module_name: str, raw_offset: bool, include_flags: list[str],
          log: list[str]) -> Pending | None:
    """Write the extension's C (from the manifest and the names the header declares) and start compiling it to an
    object file in the background; None where no extension can be built here."""
    import cffi

    directory = Path(directory)
    include = _python_include()
    if include is None:
        return None
    m = mf.load(directory / f"{module_name}.json")
    declared = set(_HEADER_NAMES.findall((directory / f"{module_name}.h").read_text(errors="replace")))
    decls, defs = cd.call_helpers(m)
    text = declared_only(cd.generate_cdef(m, raw_offset), declared) + "\nvoid free(void *p);\n" + decls
    name = extension_name(module_name)
    ffi = cffi.FFI()
    ffi.cdef(text)
    source = directory / f"{name}.c"
    from cffi.recompiler import make_c_source  # what ffi.emit_c_code does, without its "generating" print
    preamble = f'#include <stdlib.h>\n#include <stdint.h>\n#include <math.h>\n#include "{module_name}.h"\n{defs}\n'
    make_c_source(ffi, name, preamble, str(source), verbose=False)
    obj = directory / f"{name}.o"
    # -O1: glue code (argument conversion); -O2 costs more compile time than it saves per call
    cmd = [*_cc(), "-O1", "-fPIC", "-w", f"-I{include}", f"-I{directory}", *include_flags, "-c", "-o", str(obj),
           str(source)]
    log.append("$ " + " ".join(cmd) + "   # cffi API-mode extension, in parallel with the library")
    proc = subprocess.Popen(cmd, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Pending(proc, source, obj, extension_path(directory, module_name), cmd)


def finish(pending: Pending, library: Path, log: list[str]) -> Path | None:
    """Wait for the object file and link it against the library; the extension's path, or None (logged)."""
    _, err = pending.process.communicate()
    if pending.process.returncode != 0:
        log.append(f"# API-mode extension not built (ABI mode will be used): {err.strip()[-500:]}")
        return None
    library = Path(library)
    cmd = [*_cc(), "-shared", "-o", str(pending.target), str(pending.obj), f"-L{library.parent}",
           f"-l:{library.name}", "-Wl,-rpath,$ORIGIN"]  # beside the library, wherever the build dir moves
    res = subprocess.run(cmd, cwd=library.parent, capture_output=True, text=True)
    log.append("$ " + " ".join(cmd))
    pending.obj.unlink(missing_ok=True)
    if res.returncode != 0:
        log.append(f"# API-mode extension not linked (ABI mode will be used): {res.stderr.strip()[-500:]}")
        pending.target.unlink(missing_ok=True)
        return None
    return pending.target


def abandon(pending: Pending | None) -> None:
    if pending is not None and pending.process.poll() is None:
        pending.process.kill()
        pending.process.wait()


def load(directory: Path, module_name: str) -> tuple[Any, Any] | None:
    """(ffi, lib) of the build's API-mode extension, or None where none was built."""
    target = extension_path(directory, module_name)
    if not target.exists():
        return None
    name = extension_name(module_name)
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ffi, module.lib


def build_late(directory: Path, module_name: str, raw_offset: bool, include_flags: list[str]) -> bool:
    """Build the extension of a finished build that has none (made with FUTHARK_LAB_BINDING=abi, or by an older
    futhark-lab): compiled in a private directory and moved into place atomically."""
    import tempfile

    directory = Path(directory)
    tmp = Path(tempfile.mkdtemp(prefix=".api-", dir=directory))
    try:
        for suffix in (".json", ".h"):
            shutil.copy(directory / f"{module_name}{suffix}", tmp / f"{module_name}{suffix}")
        log: list[str] = []
        pending = start(tmp, module_name, raw_offset, include_flags, log)
        if pending is None:
            return False
        # link against the real library (beside the extension once moved: rpath $ORIGIN)
        built = finish(pending, directory / f"{module_name}.so", log)
        if built is None:
            return False
        os.replace(built, extension_path(directory, module_name))
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
