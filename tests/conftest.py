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
    from futhark_lab.builder.toolchain import futhark_available
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


# --------------------------------------------------------------------------- CI strictness
# .ci/run sets FUTHARK_LAB_STRICT=1: there a missing compiler is an error, not a reason to skip, and the only skips
# allowed are those of tests that need a GPU (marked `gpu`) or a second futhark version (marked `other_futhark`), so a
# broken install step can never look green.

STRICT = os.environ.get("FUTHARK_LAB_STRICT") == "1"
# gpu: needs an NVIDIA GPU.  other_futhark: compares with a second futhark version that the set-up does not install
# (named by an environment variable, its skip message says which); everything the set-up installs must be there.
ALLOWED_SKIP_MARKERS = ("gpu", "other_futhark")
_unexpected_skips: list[str] = []


def pytest_sessionstart(session):
    if STRICT and not have_futhark():
        from futhark_lab.builder.toolchain import find_futhark
        try:
            find_futhark()
        except Exception as exc:  # the reason, as a user would see it
            reason = str(exc)
        else:
            reason = "futhark runs but futhark_available() is False"
        pytest.exit(f"FUTHARK_LAB_STRICT=1 and no usable futhark compiler: {reason}", returncode=3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not any(item.get_closest_marker(m) for m in ALLOWED_SKIP_MARKERS):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _unexpected_skips.append(f"{item.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _unexpected_skips:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if _unexpected_skips:
        terminalreporter.section("FUTHARK_LAB_STRICT: skips of tests that do not need a GPU", red=True)
        for line in _unexpected_skips:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"{len(_unexpected_skips)} unexpected skip(s): failing the run")
