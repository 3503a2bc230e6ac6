"""Debian's chromium driven through Playwright's sync API, for the tests that look at rendered pages.  Playwright
launches the system's browser (``executable_path``); nothing is downloaded (no ``playwright install``)."""

from __future__ import annotations

import shutil
import socket
from contextlib import contextmanager

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def page(width: int = 1280, height: int = 1600):
    """A fresh headless page of the given viewport; the browser closes on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def wait_until(pg, expression: str, timeout_s: float) -> bool:
    """Whether a JavaScript condition became true within the time (polled every 0.5 s), instead of raising: the
    tests read the page after a timeout too, to say what it shows."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        pg.wait_for_function(expression, timeout=timeout_s * 1000, polling=500)
        return True
    except PlaywrightTimeout:
        return False
