"""Plots and the self-contained HTML report, from a real (NumPy/PyTorch) sweep."""

from __future__ import annotations

import re

import numpy as np
import pytest

from futhark_lab.view import plots
from futhark_lab import sweep as sw
from futhark_lab.measure.hardware import HardwareModel
from futhark_lab.view.report import report, warnings_for
from futhark_lab.measure.timing import Policy


QUICK = Policy(warmup_s=0.005, min_samples=6, min_time_s=0.01, max_time_s=0.1, max_noise=0.05)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from futhark_lab import suite
    # a hardware model with a deliberately tiny "peak" so that the >100% flag is exercised on real numbers
    hw = {"cpu": HardwareModel("test cpu", "cpu", peak_bw_attr_gbps=1e9, peak_bw_measured_gbps=0.001,
                               peak_gflops_measured={"f64": 10.0})}
    impls = [sw.numpy_impl(), sw.custom("numpy-einsum", lambda x, y: np.einsum("i,i->", x, y))]
    return sw.sweep(suite.get("dot"), impls, sizes=[1000, 100000], dtypes=["f64"],
                    results=tmp_path_factory.mktemp("res"), policy=QUICK, progress=False, hardware=hw)


def test_over_peak_points_are_flagged(run):
    assert run["over_peak"].all()
    assert any("measurement bug" in w and "nan" not in w for w in warnings_for(run))


@pytest.mark.parametrize("name, fn", [("throughput", plots.throughput), ("roofline", plots.roofline),
                                      ("time", plots.time_vs_size), ("speedup", lambda d: plots.speedup(d, "numpy")),
                                      ("breakdown", plots.breakdown)])
def test_figures_have_units_and_legends(run, name, fn):
    fig = fn(run)
    ax = fig.axes[0]
    assert re.search(r"\(.+\)", ax.get_ylabel()), f"{name}: y axis needs a unit: {ax.get_ylabel()!r}"
    assert ax.get_xlabel() or name == "breakdown"
    assert ax.get_legend() is not None
    if name == "throughput":
        texts = " ".join(t.get_text() for t in ax.texts)
        assert "attribute peak" in texts and "measured copy" in texts
        assert any(l.get_label().startswith("> 100%") for l in ax.collections)


@pytest.mark.parametrize("fn", [plots.throughput, plots.time_vs_size, plots.breakdown,
                                lambda d, **kw: plots.speedup(d, "numpy", **kw)])
def test_several_kernels_get_one_panel_each_never_mixed_lines(run, fn):
    import pandas as pd
    slower = {c: run[c] * 3 for c in ("time_s_median", "time_s_q1", "time_s_q3")}
    two = pd.concat([run, run.assign(kernel="other", **slower)], ignore_index=True)
    fig = fn(two)
    assert len(fig.axes) == 2
    assert ["dot" in fig.axes[0].get_title(), "other" in fig.axes[1].get_title()] == [True, True]
    for ax in fig.axes:  # a line never visits a size twice: it belongs to one kernel
        for line in ax.get_lines():
            x = [v for v in line.get_xdata() if v == v]
            if len(x) > 1:
                assert len(set(x)) == len(x), line.get_label()
    with pytest.raises(ValueError, match="2 kernels"):
        fn(two, ax=fig.axes[0])


def test_figures_show_in_jupyter_without_matplotlib_inline(run):
    from IPython.core.formatters import DisplayFormatter
    data, _ = DisplayFormatter().format(plots.throughput(run))  # a fresh formatter: no inline backend registered
    assert data.get("image/png", b"")[:4] == b"\x89PNG"


def test_speedup_needs_its_baseline(run):
    with pytest.raises(ValueError, match="baseline"):
        plots.speedup(run, "nonexistent")


def test_report_is_self_contained(run, tmp_path):
    path = report(run, tmp_path / "r.html")
    text = path.read_text()
    assert text.count("data:image/png;base64,") >= 4
    assert not re.search(r"""(src|href)=["']https?://""", text), "no network needed to view the report"
    assert "<table>" in text and "numpy-einsum" in text
    assert "Environment" in text and "Method" in text and "measurement bug" in text
    assert text.index("<h2>Results</h2>") < text.index("<h2>Checks</h2>")  # results first, then the checks


def _chromium():
    import shutil
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(html_path, png_path, size=(1280, 2400)):
    """Render a page in headless Chromium (no network, as root) and save a PNG."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}", "--hide-scrollbars",
               f"--screenshot={png_path}", f"file://{html_path}"]
        subprocess.run(cmd, capture_output=True, timeout=120)
    return png_path


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium; "
                                                "scripts/setup.sh does)")
def test_report_renders_in_headless_chromium(run, tmp_path):
    from PIL import Image
    html = report(run, tmp_path / "r.html")
    png = screenshot(html, tmp_path / "r.png")
    img = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert img.shape[0] > 1000
    # a rendered page with figures and tables has structure, not a blank canvas
    assert img.std() > 20, "the screenshot is blank"
    dark_rows = (img < 128).mean(axis=1)
    assert (dark_rows > 0.01).sum() > 200, "too little drawn content"
