"""CI's strict mode (FUTHARK_LAB_STRICT=1, set by .ci/run): a skip of a test that needs no GPU fails the run, a GPU
skip does not, and a missing compiler stops the run at once.  Run in child pytest processes on a tiny test file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from .conftest import ROOT

TESTS = '''
import pytest
def test_fine(): assert 1 + 1 == 2
@pytest.mark.gpu
@pytest.mark.skip(reason="no CUDA GPU")
def test_gpu_skipped(): pass
'''
NON_GPU_SKIP = '''
@pytest.mark.skip(reason="some other reason")
def test_other_skip(): pass
'''


def _pytest(tmp_path, text: str, **env) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_tiny.py").write_text(text)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
                           "markers=gpu: x\nother_futhark: y",
                           str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_strict_mode_fails_on_a_skip_that_is_not_for_a_gpu(tmp_path):
    out = _pytest(tmp_path, TESTS + NON_GPU_SKIP, FUTHARK_LAB_STRICT="1")
    assert out.returncode == 1, out.stdout
    assert "test_other_skip: Skipped: some other reason" in out.stdout


def test_strict_mode_allows_gpu_skips(tmp_path):
    out = _pytest(tmp_path, TESTS, FUTHARK_LAB_STRICT="1")
    assert out.returncode == 0, out.stdout + out.stderr


def test_strict_mode_allows_skips_for_a_second_futhark_version(tmp_path):
    other = '\n@pytest.mark.other_futhark\n@pytest.mark.skip(reason="needs futhark 0.27.1")\ndef test_other(): pass\n'
    out = _pytest(tmp_path, TESTS + other, FUTHARK_LAB_STRICT="1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 skipped" in out.stdout


def test_without_strict_mode_any_skip_is_allowed(tmp_path):
    assert _pytest(tmp_path, TESTS + NON_GPU_SKIP, FUTHARK_LAB_STRICT="0").returncode == 0


def test_strict_mode_stops_when_no_compiler_is_usable(tmp_path):
    out = _pytest(tmp_path, TESTS, FUTHARK_LAB_STRICT="1", FUTHARK="/nonexistent")
    assert out.returncode == 3
    assert "no usable futhark compiler" in out.stdout + out.stderr
