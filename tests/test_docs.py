"""The documentation site builds with warnings as errors (scripts/docs.sh: Sphinx, MyST pages, the notebooks executed
on the CPU by myst-nb, the API reference from the docstrings), and its front page renders in a real browser."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from .chromium import needs_chromium, page
from .conftest import ROOT, needs_futhark

pytestmark = [needs_futhark, pytest.mark.slow]
# looked up, not imported: a "sphinx" in sys.modules changes other libraries (scipy.stats builds its docstrings
# through sphinx.ext.autodoc when it sees one, and fails where Sphinx is incomplete, as on the GPU machine)
for _name, _what in (("sphinx", "Sphinx"), ("myst_nb", "myst-nb")):
    if importlib.util.find_spec(_name) is None:
        pytest.skip(f"{_what} is not installed (pip install -e .[docs]; scripts/setup.sh does)", allow_module_level=True)

HTML = ROOT / "docs" / "_build" / "html"


@pytest.fixture(scope="module")
def built():
    """One build per test session, by the script users run; -W makes any warning fail it."""
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "docs.sh")], cwd=ROOT, capture_output=True, text=True,
                          timeout=1800, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, f"docs build failed:\n{(proc.stdout + proc.stderr)[-6000:]}"
    return HTML


def test_docs_build_with_warnings_as_errors(built):
    index = (built / "index.html").read_text()
    assert "<title>" in index and "futhark-lab" in index
    for page_name in ("getting-started", "getting-futhark", "method", "bench", "troubleshooting", "results",
                      "architecture", "api", "environment", "notebooks"):
        assert (built / f"{page_name}.html").is_file(), page_name
        assert f'href="{page_name}.html"' in index, f"{page_name} is not in the front page's contents"
    for md in (ROOT / "docs").glob("*.md"):  # every page under docs/ lands in the site (the toctree's glob)
        assert (built / f"{md.stem}.html").is_file(), md.name
    api = (built / "api.html").read_text()
    for name in ("futhark_lab.compile", "futhark_lab.sweep.Kernel", "futhark_lab.measure.Policy",
                 "futhark_lab.bench.run.bench", "futhark_lab.view.plots.throughput"):
        assert f'id="{name}"' in api, f"{name} is not in the API reference"


def test_notebooks_are_rendered_executed(built):
    quick = (built / "notebooks" / "01-quickstart.html").read_text()
    assert "stats = futhark multicore module" in quick and "fastest:" in quick, "01 was not executed at build time"
    assert "data:image/png" in (built / "notebooks" / "02-sweeps.html").read_text() or \
        list((built / "_images").glob("*.png")), "no figure in the executed sweeps notebook"
    gpu = (built / "results" / "h200-notebook05" / "05-gpu-sum-squares.executed.html").read_text()
    assert "NVIDIA H200" in gpu and "futhark cuda, resident" in gpu, "the GPU notebook's stored outputs are shown"


@needs_chromium
def test_front_page_renders_in_chromium(built, tmp_path):
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")
    from PIL import Image

    png = tmp_path / "docs_front_page.png"
    with page(1280, 1000) as b:
        b.goto((built / "index.html").as_uri())
        title = b.title()
        nav = [t.strip() for t in b.locator("header a").all_inner_texts()]  # the theme's top navigation
        heading = b.locator("h1").first.inner_text()
        b.screenshot(path=str(png), full_page=True)
    assert title.startswith("futhark-lab"), title
    assert heading.startswith("futhark-lab"), heading
    assert "Getting started" in nav and "Getting futhark" in nav and len(nav) >= 8, nav
    img = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert img.shape[1] == 1280 and img.std() > 20, "blank screenshot"
