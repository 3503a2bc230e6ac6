"""``compile_program``: source to a build in the cache, by running futhark and the C compiler.

Like Cython's ``%%cython``: every build gets a module name derived from its cache key (``builder.cache``), the
compilers' output is captured and shown, and a build is moved into place atomically so concurrent compilations of
the same program both succeed.  The generated code is patched (``builder.cpatch``) and given futhark-lab's call
helpers (``builder.cdef``) before cc sees it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ..errors import BackendUnavailable, FutharkCompileError, FutharkNotFound
from .cache import Build, cache_key, cache_root
from .generated import find_generated
from .source import _IMPORT_RE, _read_source, source_docs, source_param_names
from .toolchain import (
    ALL_BACKENDS,
    C_BACKENDS,
    PY_BACKENDS,
    FutharkCompiler,
    _validate_options,
    c_compiler,
    c_flags,
    find_futhark,
)

# --------------------------------------------------------------------------- compiling

def _run(cmd: list[str], cwd: Path, log: list[str], verbose: bool,
         timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run a compiler.  Ctrl-C (KeyboardInterrupt) kills it (subprocess.run does); ``timeout`` (seconds, or
    $FUTHARK_LAB_COMPILE_TIMEOUT) ends it with FutharkCompileError."""
    log.append("$ " + " ".join(cmd))
    if timeout is None and os.environ.get("FUTHARK_LAB_COMPILE_TIMEOUT"):
        timeout = float(os.environ["FUTHARK_LAB_COMPILE_TIMEOUT"])
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FutharkCompileError(f"{Path(cmd[0]).name} did not finish within {timeout:g} s (the compile time "
                                  "limit); simplify the program or raise the limit (timeout=... or "
                                  "$FUTHARK_LAB_COMPILE_TIMEOUT)", command=cmd, stage="timeout") from None
    if out.stdout:
        log.append(out.stdout.rstrip())
    if out.stderr:
        log.append(out.stderr.rstrip())
    if verbose:
        print("\n".join(log[-3:]), file=sys.stderr)
    return out


def _map_paths(text: str, real: str, shown: str) -> str:
    return text.replace(real, shown)


def compile_program(
    source: str | os.PathLike,
    backend: str = "c",
    *,
    options: list[str] | tuple[str, ...] = (),
    force: bool = False,
    base_dir: str | os.PathLike | None = None,
    source_name: str | None = None,
    verbose: bool = False,
    link: bool = True,
    timeout: float | None = None,
    futhark: str | os.PathLike | None = None,
) -> Build:
    """Compile ``source`` for ``backend`` into the build cache and return the Build (a cache hit if unchanged).

    ``base_dir`` is where relative ``import``s resolve for source text (default: the current directory).
    ``link=False`` stops after compiling the generated C to an object file (to check generated code on a machine
    without the backend's runtime libraries).  ``futhark``: which compiler (a path; default: ``find_futhark``'s
    choice); its version is part of the cache key, so two compilers never share a build.
    """
    if backend not in ALL_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(ALL_BACKENDS)}")
    text, path = _read_source(source)
    options = _validate_options(list(options))
    if path is not None:
        base = path.parent
        shown = source_name or str(source)
    else:
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        shown = source_name or "<futhark source>"
    generated: Path | None = None
    wanted = futhark
    try:
        futhark = find_futhark(wanted)
    except FutharkNotFound:
        if wanted is not None:
            raise
        generated = find_generated(text, base, backend, options)
        if generated is None:
            raise
        meta = json.loads((generated / "generated.json").read_text())
        futhark = FutharkCompiler(f"(pre-generated in {generated})", tuple(meta["futhark_version"]),
                                  meta["futhark_version_text"])
    cc = c_compiler()
    key = cache_key(text, base, backend, options, futhark, cc, extra=f"link={link}")
    module_name = f"_futhark_lab_{backend}_{key[:20]}"
    root = cache_root()
    final = root / module_name
    if final.is_dir() and (final / "BUILD_OK").exists() and not force:
        broken = _broken_build(final, backend, module_name)
        if broken is None:
            log = (final / "build.log").read_text(errors="replace") if (final / "build.log").exists() else ""
            if link and backend in C_BACKENDS:
                from . import fastcall
                if not fastcall.extension_path(final, module_name).exists():  # made in ABI mode, or compiling
                    fastcall.ensure(final, module_name, futhark.version < (0, 25, 14),
                                    [f for f in c_flags(backend, futhark, final)[0] if f.startswith("-I")])
            return Build(final, backend, module_name, futhark, shown, True, log)
        import warnings
        warnings.warn(f"futhark-lab: the cached build {final.name} is damaged ({broken}); rebuilding it", stacklevel=3)
        try:  # moved aside atomically: a concurrent loader of the same build sees it whole or not at all
            os.rename(final, final.with_name(f".damaged-{final.name}-{uuid.uuid4().hex[:8]}"))
        except OSError:
            pass

    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        what = "is a file, not a directory" if root.exists() and not root.is_dir() else f"cannot be made ({exc})"
        raise ValueError(f"the build cache {root} {what}; set $FUTHARK_LAB_CACHE to a directory futhark-lab may "
                         "write (or unset it: ~/.cache/futhark-lab)") from None
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{module_name}-", dir=root))
    log: list[str] = []
    try:
        # The program file must sit where its relative imports resolve: its own directory for a file, base_dir
        # for text that imports something, else the private build directory.
        needs_base = path is None and _IMPORT_RE.search(text) is not None
        if generated is not None:
            for f in generated.iterdir():
                if f.name.startswith("prog."):
                    shutil.copy(f, tmp / (module_name + f.suffix))
            log.append(f"# futhark {futhark.version_str} output taken from {generated} (no futhark on this machine)")
            fut_file, cleanup, res = None, None, None
        elif path is not None:
            fut_file, cleanup = path, None
        elif needs_base:
            fut_file = base / f".futhark_lab_{key[:12]}_{uuid.uuid4().hex[:6]}.fut"
            fut_file.write_text(text)
            cleanup = fut_file
        else:
            fut_file = tmp / "program.fut"
            fut_file.write_text(text)
            cleanup = None
        if generated is None:
            try:
                out_base = tmp / module_name
                cmd = [futhark.path, backend, "--library", *options, "-o", str(out_base), str(fut_file)]
                res = _run(cmd, fut_file.parent, log, verbose, timeout)
            finally:
                if cleanup is not None:
                    cleanup.unlink(missing_ok=True)
        if res is not None and res.returncode != 0:
            msg = (res.stderr or res.stdout).strip()
            if path is None:  # text: show the user's name for the temporary file, not its path
                msg = _map_paths(msg, str(fut_file), shown)
                msg = _map_paths(msg, fut_file.name, shown)
            raise FutharkCompileError(msg, command=cmd, stage="futhark")
        pending = None
        if backend in C_BACKENDS:
            pending = _compile_c(backend, futhark, tmp, module_name, log, verbose, link, timeout)
        elif backend in PY_BACKENDS:
            from .cpatch import patch_python_text
            py = tmp / f"{module_name}.py"
            if py.exists():
                py.write_text(patch_python_text(py.read_text(), log))
        (tmp / "build.log").write_text("\n".join(log))
        (tmp / "docs.json").write_text(json.dumps(source_docs(text)))
        (tmp / "params.json").write_text(json.dumps(source_param_names(text)))
        (tmp / "BUILD_OK").write_text(json.dumps({"backend": backend, "futhark": futhark.version_text,
                                                   "futhark_version": list(futhark.version),
                                                   "source": shown, "options": options,
                                                   # runtime backtraces name this path: mapped back (runtime_paths)
                                                   "compiled_path": str(fut_file) if fut_file else None,
                                                   # sizes, to notice a damaged cache entry (_broken_build)
                                                   "files": {f.name: f.stat().st_size for f in tmp.iterdir()
                                                             if f.is_file()}}))
        if force and final.exists():
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(tmp, final)  # atomic on one filesystem
        except OSError:
            # another process finished the same build first: theirs is identical, keep it
            if not (final / "BUILD_OK").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        if pending is not None:
            from . import fastcall
            fastcall.complete(pending, final / f"{module_name}.so", grace_s=0.1 * (time.perf_counter() - started))
        return Build(final, backend, module_name, futhark, shown, False, "\n".join(log))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _broken_build(final: Path, backend: str, module_name: str) -> str | None:
    """Why a cached build cannot be used (a truncated or edited file), or None.  Cheap: sizes, magic numbers and
    the small JSON files, not the libraries' contents."""
    try:
        ok = json.loads((final / "BUILD_OK").read_text())
        for name, size in (ok.get("files") or {}).items():
            if (final / name).stat().st_size != size:
                return f"{name} has changed size since the build"
        manifest = final / f"{module_name}.json"
        if backend in C_BACKENDS:
            json.loads(manifest.read_text())
            lib = final / f"{module_name}.so"
            with open(lib, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    return f"{lib.name} is not a shared library"
        elif backend in PY_BACKENDS and "entry_points" not in (final / f"{module_name}.py").read_text():
            return f"{module_name}.py is not a generated module"
        docs = final / "docs.json"
        if docs.exists():
            json.loads(docs.read_text())
    except (OSError, ValueError, SyntaxError, RecursionError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def patch_generated_c(src: Path, log: list[str]) -> None:
    """Make the generated C report, instead of ending the process on, conditions an entry call can reach
    (malloc failure, negative or overflowing sizes, INT_MIN / -1): see ``cpatch``."""
    from .cpatch import patch_text
    text = src.read_text()
    patched = patch_text(text, log)
    if patched is not text:
        src.write_text(patched)


def add_call_helpers(build: Path, name: str, log: list[str]) -> None:
    """futhark-lab's call helpers (``cdef.call_helpers``: entry point + sync in one C call, the result as return
    value) go into the library's own translation unit, so they cost no extra compilation."""
    from . import manifest as mf
    from .cdef import call_helpers

    decls, defs = call_helpers(mf.load(build / f"{name}.json"))
    with open(build / f"{name}.c", "a") as f:
        f.write(f"\n/* futhark-lab call helpers */\n{defs}\n")
    with open(build / f"{name}.h", "a") as f:
        f.write(f"\n/* futhark-lab call helpers */\n{decls}\n")
    log.append("# futhark-lab: call helpers appended to the generated C (entry point + sync in one call)")


def _compile_c(backend: str, futhark: FutharkCompiler, build: Path, name: str, log: list[str], verbose: bool,
               link: bool, timeout: float | None = None):
    cc = c_compiler()
    if shutil.which(cc[0]) is None:
        raise BackendUnavailable(backend, f"no C compiler ({cc[0]}) on PATH",
                                 "install gcc (apt-get install build-essential) or set $CC")
    cflags, libs = c_flags(backend, futhark, build)
    cflags += os.environ.get("CFLAGS", "").split()
    src = build / f"{name}.c"
    patch_generated_c(src, log)
    add_call_helpers(build, name, log)
    if link:
        # --no-undefined: a missing runtime library fails here, with its name, not later at load time
        cmd = [*cc, *cflags, "-shared", "-Wl,--no-undefined", "-o", str(build / f"{name}.so"), str(src), *libs]
    else:
        cmd = [*cc, *cflags, "-c", "-o", str(build / f"{name}.o"), str(src)]
    from . import (
        fastcall,  # the binding's extension compiles beside the library (fastcall's docstring)
    )

    def start_extension():
        try:
            if link and fastcall.enabled():
                return fastcall.start(build, name, futhark.version < (0, 25, 14),
                                      [f for f in cflags if f.startswith("-I")], log)
        except Exception as exc:  # noqa: BLE001 - ABI mode is the fallback
            log.append(f"# API-mode extension not built (ABI mode for now): {type(exc).__name__}: {exc}")
        return None
    pending = start_extension() if fastcall.spare_cores() else None  # in parallel with the library
    try:
        res = _run(cmd, build, log, verbose, timeout)
    except BaseException:
        fastcall.abandon(pending)
        raise
    if res.returncode != 0:
        fastcall.abandon(pending)
        pending = None
    elif pending is None and not fastcall.spare_cores():
        pending = start_extension()  # after the library: finishes in the background (fastcall.complete)
    if res.returncode != 0:
        err = res.stderr.strip()
        missing = re.findall(r"cannot find -l([^\s:]+)", err)
        if missing:
            raise BackendUnavailable(
                backend, f"the linker cannot find lib{missing[0]} (needed by the {backend} backend)",
                _LIB_FIXES.get(missing[0], "install the backend's runtime library; see environment.md"))
        header = re.search(r"fatal error: (\S+\.h): No such file", err)
        if header:
            raise BackendUnavailable(
                backend, f"the C compiler cannot find {header.group(1)}",
                _HEADER_FIXES.get(header.group(1), "install the backend's development headers; see environment.md"))
        raise FutharkCompileError(f"C compilation of the {backend} backend's code failed:\n{err[-4000:]}",
                                  command=cmd, stage="cc")
    return pending


_LIB_FIXES = {
    "OpenCL": "apt-get install ocl-icd-opencl-dev (the ICD loader) plus a platform such as pocl-opencl-icd",
    "cuda": "libcuda comes with the NVIDIA driver; this machine has no NVIDIA driver (use backend='c' or 'multicore')",
    "nvrtc": "install the CUDA toolkit's NVRTC (or `pip install nvidia-cuda-nvrtc`) and add its lib dir to LIBRARY_PATH",
}
_HEADER_FIXES = {
    "CL/cl.h": "apt-get install opencl-headers ocl-icd-opencl-dev",
    "cuda.h": "install the CUDA toolkit or set $CUDA_HOME",
    "nvrtc.h": "install the CUDA toolkit's NVRTC headers, or `pip install nvidia-cuda-nvrtc` into this environment",
}
