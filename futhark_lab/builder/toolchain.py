"""The tools a build needs: the futhark compiler (found, version read, the supported range), the C compiler and its
flags per backend, CUDA's headers and NVRTC, and the options futhark-lab manages itself.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from ..errors import FutharkNotFound

#: Backends whose output is a C library bound through the manifest.
C_BACKENDS = ("c", "multicore", "opencl", "cuda", "hip", "ispc")
#: Backends whose output is a generated Python module.
PY_BACKENDS = ("python", "pyopencl")
ALL_BACKENDS = C_BACKENDS + PY_BACKENDS
GPU_BACKENDS = ("opencl", "cuda", "hip", "pyopencl")

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


def find_futhark(explicit: str | os.PathLike | None = None) -> FutharkCompiler:
    """Locate futhark (``explicit``: a path or command name given by the caller, e.g. to compare two compilers;
    else $FUTHARK, then PATH, then the environment's own bin/ where scripts/setup.sh links the one it installed, so
    an unactivated venv finds it too) and read its version; raise FutharkNotFound with the fix."""
    given = explicit is not None
    explicit = os.fspath(explicit) if given else os.environ.get("FUTHARK")
    if explicit:
        path = shutil.which(explicit)
    else:
        path = shutil.which("futhark") or shutil.which("futhark", path=_environment_bin())
    if path:
        path = os.path.abspath(path)  # futhark runs with the source's directory as its cwd
    if not path:
        where = (f"futhark={explicit!r} is not an executable" if given else
                 f"$FUTHARK={explicit!r} is not an executable" if explicit
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
