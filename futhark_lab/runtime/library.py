"""One loaded library per build: its API-mode extension where ``builder.fastcall`` made one, cffi's ABI mode otherwise.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Any

import cffi

from ..builder import fastcall
from ..builder import manifest as mf
from ..builder.cache import Build
from ..builder.cdef import call_helpers, generate_cdef
from ..builder.manifest import Manifest

# --------------------------------------------------------------------------- loaded libraries (one per build)

@dataclasses.dataclass
class Library:
    build: Build
    manifest: Manifest
    ffi: cffi.FFI
    lib: Any
    libc: Any
    raw_offset: bool
    mode: str = "abi"   # "api" where fastcall built an extension module


_libraries: dict[Path, Library] = {}
_lib_lock = threading.Lock()


def load_library(build: Build) -> Library:
    """The build's library, once per process: through its API-mode extension where ``compile_program`` built one
    (no declarations to parse at load time), in cffi's ABI mode otherwise."""
    with _lib_lock:
        cached = _libraries.get(build.library)
        if cached is not None and (cached.mode == "api" or not fastcall.extension_path(
                Path(build.directory), build.module_name).exists()):
            return cached
        # else: the extension finished compiling since (in the background): new modules use it
        m = mf.load(build.manifest)
        raw_offset = build.futhark.version < (0, 25, 14)
        api = None
        if os.environ.get("FUTHARK_LAB_BINDING", "").lower() != "abi":
            try:
                api = fastcall.load(Path(build.directory), build.module_name)
            except Exception:  # noqa: BLE001 - the ABI-mode binding below works everywhere
                api = None
        if api is not None:
            ffi, lib = api
            library = Library(build, m, ffi, lib, lib, raw_offset, "api")
        else:
            ffi = cffi.FFI()
            ffi.cdef(generate_cdef(m, raw_offset) + "\n" + call_helpers(m)[0] + "\nvoid free(void *p);")
            lib = ffi.dlopen(str(build.library))
            library = Library(build, m, ffi, lib, ffi.dlopen(None), raw_offset, "abi")
        _libraries[build.library] = library
        return library


def _symbol(lib: Any, name: str) -> Any | None:
    try:
        return getattr(lib, name)
    except (AttributeError, NotImplementedError):
        return None
