"""Shared fixtures: the real futhark compiler (tests skip, saying why, only where it is absent), the backends that
run on this machine, and an isolated build cache per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = Path(__file__).resolve().parent / "programs"
NO_FUTHARK = ("the futhark compiler is not installed (not on PATH, or $FUTHARK does not name it); "
              "see README.md 'Getting the futhark compiler'")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    if "FUTHARK_LAB_CACHE" not in os.environ:
        os.environ["FUTHARK_LAB_CACHE"] = str(tmp_path_factory.mktemp("futhark-lab-cache"))
    yield


def have_futhark() -> bool:
    from futhark_lab.compiler import futhark_available
    return futhark_available()


needs_futhark = pytest.mark.skipif(not have_futhark(), reason=NO_FUTHARK)


def opencl_platforms() -> list[str]:
    try:
        import pyopencl as cl
        return [p.name for p in cl.get_platforms()]
    except Exception:
        return []


def cpu_backends() -> list:
    """Backends that must work on a CPU-only machine, each skipped with the reason it cannot run here."""
    out = [pytest.param("c", id="c"), pytest.param("multicore", id="multicore"),
           pytest.param("python", id="python")]
    plats = opencl_platforms()
    why = "no OpenCL platform (apt-get install pocl-opencl-icd ocl-icd-opencl-dev)"
    out.append(pytest.param("opencl", id="opencl", marks=pytest.mark.skipif(not plats or shutil.which("cc") is None,
                                                                             reason=why)))
    out.append(pytest.param("pyopencl", id="pyopencl", marks=pytest.mark.skipif(not plats, reason=why)))
    return out
