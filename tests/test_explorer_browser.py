"""The explorer rendered in a real browser: Voilà serves notebooks/04-explorer.ipynb, headless Chromium (driven by Playwright) opens it,
and the screenshot must show the widgets and the plot the sweep produced."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import socket

import numpy as np
import pytest

from .chromium import free_port, needs_chromium, page, wait_until
from .conftest import ROOT, needs_futhark

pytestmark = [needs_futhark, pytest.mark.slow, needs_chromium]
voila = pytest.importorskip("voila", reason="voila is not installed (pip install voila)")
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")


@pytest.fixture
def voila_server():
    # Build the programs the notebook uses first: Voilà's page gives up on widgets whose first output takes long
    # (a cold build cache: futhark + cc + the call extension for two kernels and backends).
    import futhark_lab
    for kernel in ("sum_squares", "saxpy", "stencil"):
        for backend in ("c", "multicore"):
            futhark_lab.compile(ROOT / "kernels" / f"{kernel}.fut", backend=backend).close()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "voila", "--no-browser", f"--port={port}",
                             "--Voila.ip=127.0.0.1", "--VoilaConfiguration.file_allowlist=['.*']",
                             str(ROOT / "notebooks" / "04-explorer.ipynb")],
                            cwd=ROOT / "notebooks", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # wait for the port, not the page: each GET of the page makes Voilà start a kernel and run the notebook
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.5)
    yield f"http://127.0.0.1:{port}/"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_explorer_renders_with_its_plot(voila_server, tmp_path):
    from PIL import Image
    with page(1280, 1400) as b:
        # Voilà streams the page while it runs the notebook server-side: do not wait for its load event
        b.goto(voila_server, wait_until="commit", timeout=60_000)
        # the plot arrives as an <img> inside the widget's output area
        ok = wait_until(b, "Array.from(document.querySelectorAll('img')).some(i => i.naturalWidth > 300) && "
                           "document.querySelectorAll('select').length >= 3", timeout_s=240)
        has_widgets = b.evaluate("document.querySelectorAll('select, .widget-dropdown, .widget-select-multiple')"
                                 ".length")
        classes = b.evaluate("Array.from(new Set(Array.from(document.querySelectorAll('[class*=widget]'))"
                             ".map(e => e.className))).slice(0, 15).join(' | ')")
        text = b.evaluate("document.body ? document.body.innerText : ''") or ""
        png = tmp_path / "explorer.png"
        b.screenshot(path=str(png), full_page=True)
    import os
    if os.environ.get("FUTHARK_LAB_SCREENSHOTS"):  # keep the picture (results/ has the committed one)
        shutil.copy(png, os.path.join(os.environ["FUTHARK_LAB_SCREENSHOTS"], "explorer_voila.png"))
    assert ok, f"no rendered plot image appeared; the page says: {text[-2000:]}"
    assert has_widgets and has_widgets >= 3, f"widgets not rendered ({has_widgets}); classes: {classes}; " \
                                             f"the page says: {text[-2000:]}"
    img = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert img.std() > 20, "blank screenshot"
