"""Faster calls into a built library: a small cffi API-mode extension module per build, compiled alongside it.

The binding's declarations (generated from the manifest, ``cdef``) load in cffi's ABI mode anywhere, with no
compiler.  Where this machine can build CPython extensions (a C compiler and Python.h), the same declarations, kept
to the functions the program's header declares, plus one call helper per entry point (entry point + sync in one C
call), are compiled into an extension that links the library; a call through it skips libffi's argument
marshalling and crosses into C once.

The call helpers themselves (entry point + sync in one C call, the result as return value) are compiled into the
library (``compiler.add_call_helpers``), so the ABI-mode binding uses them too.  The extension's C comes from cffi's
``make_c_source`` and goes straight to the C compiler (no setuptools): in parallel with the library's compilation
where 4+ cores are usable, after it otherwise.  ``compile()`` waits for it only briefly; if it is not done, the new
module binds in ABI mode (with the same helpers) and the extension finishes in the background for the next
``compile()``, so a new program costs about what futhark + cc cost.  Anything that goes wrong here leaves the
ABI-mode binding in use.
Set FUTHARK_LAB_BINDING=abi to never build one.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib.util
import os
import re
import shutil
import subprocess
import sysconfig
import threading
from pathlib import Path
from typing import Any

from . import cdef as cd
from . import manifest as mf

_NAME = re.compile(r"(\w+)\s*\(")
_HEADER_NAMES = re.compile(r"\b(futhark_\w+)\s*\(")  # futhark_lab_* helpers included


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


def spare_cores() -> bool:
    """Whether the extension may compile in parallel with the library without slowing it: 4+ usable cores."""
    try:
        return len(os.sched_getaffinity(0)) >= 4
    except AttributeError:
        return (os.cpu_count() or 1) >= 4


def _niced(cmd: list[str]) -> list[str]:
    """``cmd`` at a lower priority (nice -n 10) where nice(1) exists, else as it is."""
    nice = shutil.which("nice")
    return [nice, "-n", "10", *cmd] if nice else cmd


@dataclasses.dataclass(eq=False)
class Pending:
    """An extension whose object file is being compiled (a running C compiler) in a side directory."""

    process: subprocess.Popen
    work: Path
    obj: Path
    name: str
    command: list[str]


_inflight: dict[str, threading.Thread] = {}
_inflight_lock = threading.Lock()
_pending: set = set()  # compilers still running in the background: stopped and cleaned up at exit


def _stop_background() -> None:
    for pending in list(_pending):
        abandon(pending)


atexit.register(_stop_background)


def start(directory: Path, module_name: str, raw_offset: bool, include_flags: list[str],
          log: list[str]) -> Pending | None:
    """Write the extension's C (from the manifest and the names the header declares) and start compiling it to an
    object file in the background, in a side directory of the cache (the build directory itself is renamed into
    place meanwhile); None where no extension can be built here."""
    import tempfile

    import cffi
    from cffi.recompiler import (
        make_c_source,  # what ffi.emit_c_code does, without its "generating" print
    )

    directory = Path(directory)
    include = _python_include()
    if include is None:
        return None
    work = Path(tempfile.mkdtemp(prefix=f".api-{module_name}-", dir=directory.parent))
    try:
        header = directory / f"{module_name}.h"
        shutil.copy(header, work / header.name)
        m = mf.load(directory / f"{module_name}.json")
        declared = set(_HEADER_NAMES.findall(header.read_text(errors="replace")))
        decls, _ = cd.call_helpers(m)  # defined in the library (compiler.add_call_helpers)
        text = declared_only(cd.generate_cdef(m, raw_offset) + "\n" + decls, declared) + "\nvoid free(void *p);\n"
        name = extension_name(module_name)
        ffi = cffi.FFI()
        ffi.cdef(text)
        source = work / f"{name}.c"
        make_c_source(ffi, name, f'#include <stdlib.h>\n#include "{header.name}"\n', str(source), verbose=False)
        obj = work / f"{name}.o"
        # -O0: the extension is argument-conversion glue; the library's helpers do the work
        cmd = [*_cc(), "-O0", "-fPIC", "-w", f"-I{include}", f"-I{work}", *include_flags, "-c", "-o", str(obj),
               str(source)]
        log.append("$ " + " ".join(cmd) + "   # cffi API-mode extension, in parallel with the library")
        # niced: where cores are scarce the library's own compilation comes first (compile latency), and the
        # extension finishes afterwards in the background (see ``complete``).  Through nice(1), not a preexec_fn:
        # that runs Python in the forked child, which can deadlock a process with threads (a Jupyter kernel with
        # JAX or PyTorch loaded; JAX warns of it on every such fork)
        proc = subprocess.Popen(_niced(cmd), cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Pending(proc, work, obj, name, cmd)


def finish(pending: Pending, library: Path) -> Path | None:
    """Wait for the object file, link it against the (finished, in place) library and move the extension beside
    it; its path, or None."""
    try:
        _, err = pending.process.communicate()
        if pending.process.returncode != 0:
            return None
        library = Path(library)
        built = pending.work / f"{pending.name}.so"
        cmd = [*_cc(), "-shared", "-o", str(built), str(pending.obj), f"-L{library.parent}", f"-l:{library.name}",
               "-Wl,-rpath,$ORIGIN"]  # beside the library, wherever the cache is
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
        target = extension_path(library.parent, library.stem)
        os.replace(built, target)  # atomic: a concurrent builder's identical file is simply replaced
        return target
    finally:
        shutil.rmtree(pending.work, ignore_errors=True)


def abandon(pending: Pending | None) -> None:
    if pending is not None:
        if pending.process.poll() is None:
            pending.process.kill()
        pending.process.wait()
        shutil.rmtree(pending.work, ignore_errors=True)


def complete(pending: Pending, library: Path, grace_s: float) -> None:
    """Finish now if the compiler is done within ``grace_s`` (the module then loads in API mode); otherwise finish
    in a background thread, and this process's module uses the ABI-mode binding (with the same C call helpers)."""
    try:
        pending.process.wait(timeout=max(grace_s, 0.0))
    except subprocess.TimeoutExpired:
        _pending.add(pending)

        def work():
            try:
                finish(pending, library)
            finally:
                _pending.discard(pending)
        _background(Path(library).stem, work)
        return
    finish(pending, library)


def _background(key: str, work) -> None:
    with _inflight_lock:
        if key in _inflight and _inflight[key].is_alive():
            return
        t = threading.Thread(target=work, name=f"futhark-lab extension {key}", daemon=True)
        _inflight[key] = t
        t.start()


def ensure(directory: Path, module_name: str, raw_offset: bool, include_flags: list[str]) -> None:
    """A cached build without an extension (made in ABI mode, or whose extension was still compiling when its
    process ended) gets one, in the background."""
    if not enabled() or extension_path(directory, module_name).exists():
        return
    with _inflight_lock:
        if module_name in _inflight and _inflight[module_name].is_alive():
            return

    def work():
        pending = None
        try:
            pending = start(directory, module_name, raw_offset, include_flags, [])
            if pending is not None:
                _pending.add(pending)
                finish(pending, Path(directory) / f"{module_name}.so")
        except Exception:  # noqa: BLE001 - ABI mode stays
            pass
        finally:
            _pending.discard(pending)
    _background(module_name, work)


def wait(timeout: float | None = None) -> None:
    """Wait for extensions still compiling in the background (tests, benchmarks)."""
    with _inflight_lock:
        threads = list(_inflight.values())
    for t in threads:
        t.join(timeout)


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

