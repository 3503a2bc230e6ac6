"""Finding futhark, running it, compiling its C, and the content-addressed build cache.

Like Cython's ``%%cython``: the cache key hashes everything that changes the built artefact (source and imported
files, backend, options, compiler versions, C flags), every build gets a module name derived from that hash, and a
build is moved into place atomically so concurrent compilations of the same program both succeed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

from .errors import BackendUnavailable, FutharkCompileError, FutharkNotFound

#: Backends whose output is a C library bound through the manifest.
C_BACKENDS = ("c", "multicore", "opencl", "cuda", "hip", "ispc")
#: Backends whose output is a generated Python module.
PY_BACKENDS = ("python", "pyopencl")
ALL_BACKENDS = C_BACKENDS + PY_BACKENDS
GPU_BACKENDS = ("opencl", "cuda", "hip", "pyopencl")

#: Bump when the binding or build recipe changes in a way that invalidates cached builds.
BUILD_FORMAT = 14

#: Minimum compiler we support, and features that need newer ones.
MIN_FUTHARK = (0, 25, 27)
FEATURE_VERSIONS = {
    "raw pointer API in the manifest (new_raw/values_raw; zero-copy with PyTorch/CuPy)": (0, 25, 14),
    "CUDA 13 headers without the cuCtxCreate shim": (0, 25, 34),
    "single opaque `output` in the manifest (tuples as opaque records)": (0, 26, 1),
}

INSTALL_HINT = (
    "Install the futhark compiler: `bash scripts/setup.sh` (as root) installs Debian's package into .venv; or put "
    "one on PATH (or set $FUTHARK to its path): `nix develop` in this repository gives a shell with it, or download a release from "
    "https://futhark-lang.org/releases/ (futhark-<version>-linux-x86_64.tar.xz, then `make install`). "
    "See environment.md."
)


# --------------------------------------------------------------------------- the compiler itself

@dataclasses.dataclass(frozen=True)
class FutharkCompiler:
    path: str
    version: tuple[int, int, int]
    version_text: str

    @property
    def version_str(self) -> str:
        return ".".join(map(str, self.version))

    def supports(self, feature_version: tuple[int, int, int]) -> bool:
        return self.version >= feature_version


def find_futhark() -> FutharkCompiler:
    """Locate futhark ($FUTHARK, then PATH, then the environment's own bin/ where scripts/setup.sh links the one it
    installed, so an unactivated venv finds it too) and read its version; raise FutharkNotFound with the fix."""
    explicit = os.environ.get("FUTHARK")
    if explicit:
        path = shutil.which(explicit)
    else:
        path = shutil.which("futhark") or shutil.which("futhark", path=_environment_bin())
    if path:
        path = os.path.abspath(path)  # futhark runs with the source's directory as its cwd
    if not path:
        where = (f"$FUTHARK={explicit!r} is not an executable" if explicit
                 else f"no `futhark` on PATH nor in {_environment_bin()}")
        raise FutharkNotFound(f"futhark compiler not found ({where}). {INSTALL_HINT}")
    st = os.stat(path)
    return _read_version(path, st.st_mtime_ns, st.st_size)


def _environment_bin() -> str:
    return sysconfig.get_path("scripts")


@functools.lru_cache(maxsize=8)
def _read_version(path: str, _mtime: int, _size: int) -> FutharkCompiler:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60, errors="replace")
    except OSError as exc:
        raise FutharkNotFound(f"could not run {path}: {exc}. {INSTALL_HINT}") from exc
    except subprocess.TimeoutExpired:
        raise FutharkNotFound(f"{path} --version did not answer within 60 s; is it really futhark? "
                              f"{INSTALL_HINT}") from None
    text = (out.stdout + out.stderr).strip()
    m = re.search(r"Futhark (\d+)\.(\d+)\.(\d+)", text)
    if not m:
        raise FutharkNotFound(f"{path} --version printed no Futhark version: {text[:200]!r}. {INSTALL_HINT}")
    version = tuple(int(g) for g in m.groups())
    if version < MIN_FUTHARK:
        import warnings
        warnings.warn(f"futhark {'.'.join(map(str, version))} is older than the oldest tested version "
                      f"({'.'.join(map(str, MIN_FUTHARK))}); see environment.md#supported-futhark-versions",
                      stacklevel=3)
    return FutharkCompiler(path, version, text.splitlines()[0])  # type: ignore[arg-type]


def futhark_available() -> bool:
    try:
        find_futhark()
        return True
    except FutharkNotFound:
        return False


# --------------------------------------------------------------------------- C toolchain per backend

def _cuda_home() -> Path | None:
    for cand in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda", "/usr"):
        if cand and (Path(cand) / "include" / "cuda.h").exists():
            return Path(cand)
    return None


def _nvrtc_include_dirs() -> list[str]:
    """nvrtc.h from the toolkit, or from PyPI's nvidia-cuda-nvrtc wheels where the toolkit lacks it."""
    dirs = []
    home = _cuda_home()
    if home and (home / "include" / "nvrtc.h").exists():
        return [str(home / "include")]
    for sp in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *sys.path}:
        base = Path(sp) / "nvidia"
        if base.is_dir():
            dirs += sorted(str(p.parent) for p in base.glob("*/include/nvrtc.h"))
    return dirs


def _cuda_version_from_header(home: Path) -> int:
    try:
        m = re.search(r"#define CUDA_VERSION (\d+)", (home / "include" / "cuda.h").read_text(errors="replace"))
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


CUDA13_SHIM = """\
/* futhark-lab: futhark < 0.25.34 calls the 3-argument cuCtxCreate, which CUDA 13's cuda.h maps to
   cuCtxCreate_v4 (4 arguments).  The driver still exports cuCtxCreate_v2 with the old signature.
   _GNU_SOURCE first, as the generated file itself does before any include (strdup and friends). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cuda.h>
#undef cuCtxCreate
CUresult CUDAAPI cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev);
#define cuCtxCreate cuCtxCreate_v2
"""


def c_compiler() -> list[str]:
    return (os.environ.get("CC") or "cc").split()


@functools.lru_cache(maxsize=4)
def c_compiler_identity(cc: tuple[str, ...]) -> str:
    try:
        out = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=30, errors="replace")
        return out.stdout.splitlines()[0] if out.stdout else "unknown"
    except OSError:
        return "missing"
    except subprocess.TimeoutExpired:
        return "unresponsive"


def c_flags(backend: str, futhark: FutharkCompiler, build_dir: Path) -> tuple[list[str], list[str]]:
    """(compile flags, link flags) for a backend's generated C."""
    cflags = ["-O3", "-std=c99", "-fPIC", "-Wno-unused", "-Wno-unused-parameter"]
    libs = ["-lm"]
    if backend in ("multicore", "ispc"):
        cflags.append("-pthread")
        libs.append("-pthread")
    elif backend == "opencl":
        libs.append("-lOpenCL")
        for inc in ("/usr/include", "/usr/local/include"):
            if Path(inc, "CL", "cl.h").exists():
                break
        else:
            # Khronos headers from pyopencl-free setups; the loader itself is libOpenCL.so.1
            pass
    elif backend == "cuda":
        home = _cuda_home()
        if home:
            cflags.append(f"-I{home / 'include'}")
            for lib in ("lib64", "lib", "lib64/stubs", "lib/stubs"):
                if (home / lib).is_dir():
                    libs.append(f"-L{home / lib}")
        cflags += [f"-I{d}" for d in _nvrtc_include_dirs()]
        libs += ["-lcuda", "-lcudart", "-lnvrtc"]
        if home and _cuda_version_from_header(home) >= 13000 and futhark.version < (0, 25, 34):
            shim = build_dir / "futhark_lab_cuda13_shim.h"
            shim.write_text(CUDA13_SHIM)
            cflags += ["-include", str(shim)]
    elif backend == "hip":
        libs += ["-lamdhip64", "-lhiprtc"]
        cflags.append("-D__HIP_PLATFORM_AMD__")
    return cflags, libs


# --------------------------------------------------------------------------- sources and the cache key

_IMPORT_RE = re.compile(r'^\s*(?:open\s+)?import\s+"([^"]+)"', re.MULTILINE)


def imported_files(source: str, base_dir: Path, _seen: set[Path] | None = None) -> list[Path]:
    """Files reached through ``import "x"`` (relative to the importing file), recursively, for the cache key."""
    seen = _seen if _seen is not None else set()
    found: list[Path] = []
    for rel in _IMPORT_RE.findall(source):
        path = (base_dir / (rel if rel.endswith(".fut") else rel + ".fut")).resolve()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        found.append(path)
        found += imported_files(path.read_text(errors="replace"), path.parent, seen)
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
    return source, None


#: options that change what futhark writes (or make it write nothing), which the build relies on
_MANAGED_OPTIONS = {"-o", "--library", "--executable", "--server", "--help", "-h", "--version", "-V",
                    "--entry-point", "-e"}


def _validate_options(options: list[str]) -> list[str]:
    """Compiler options go into an argument vector, never a shell; reject what could not be an option."""
    clean = []
    for opt in options:
        if not isinstance(opt, str) or not opt.startswith("-") or "\x00" in opt or "\n" in opt:
            raise ValueError(f"invalid futhark compiler option {opt!r}: options must be strings starting with '-'")
        if opt.split("=")[0] in _MANAGED_OPTIONS or opt.startswith("-o"):
            raise ValueError(f"option {opt!r} is managed by futhark-lab and cannot be passed through "
                             "(futhark-lab always builds a --library; choose the backend with backend=...)")
        clean.append(opt)
    return clean


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
) -> Build:
    """Compile ``source`` for ``backend`` into the build cache and return the Build (a cache hit if unchanged).

    ``base_dir`` is where relative ``import``s resolve for source text (default: the current directory).
    ``link=False`` stops after compiling the generated C to an object file (to check generated code on a machine
    without the backend's runtime libraries).
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
    try:
        futhark = find_futhark()
    except FutharkNotFound:
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

    root.mkdir(parents=True, exist_ok=True)
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
    from . import fastcall  # the binding's extension compiles beside the library (fastcall's docstring)

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
