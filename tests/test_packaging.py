"""The wheel carries what a user outside a checkout needs: the kernel suite (.fut files as package data) and the
prebuilt JupyterLab extension, where JupyterLab looks for it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("setuptools")
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next(out.glob("futhark_lab-*.whl"))


def test_wheel_has_the_suite_and_the_labextension(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for fut in (ROOT / "kernels").glob("*.fut"):
        assert f"futhark_lab/suite/{fut.name}" in names, fut.name
    # every layer's subpackage and the report's template (package data beside view/)
    for init in (ROOT / "futhark_lab").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names, init
    assert "futhark_lab/view/templates/report.html.j2" in names
    data = "futhark_lab-0.1.0.data/data/share/jupyter/labextensions/futhark-lab-jupyterlab/"
    meta = json.loads(zipfile.ZipFile(wheel).read(data + "package.json"))
    assert data + meta["jupyterlab"]["_build"]["load"] in names, "the entry the extension's package.json names"


def test_suite_imports_and_runs_from_an_installed_wheel(wheel, tmp_path):
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:  # what pip puts in site-packages
        z.extractall(target)
    code = ("import futhark_lab.suite as s, pathlib; k = s.get('saxpy'); "
            "print(pathlib.Path(k.source).read_text()[:200]); print(s.__file__)")
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "entry saxpy_f32" in proc.stdout and str(target) in proc.stdout
