"""A new user's path in a real JupyterLab in a real browser: JupyterLab (from this environment, with futhark-lab's
prebuilt extension) on loopback, headless Chromium (driven by Playwright) opens a notebook, runs a ``%%futhark`` cell
with two entry points and a sweep of both against NumPy and PyTorch, and the outputs, the figure (no
``%matplotlib inline``) and the cell's Futhark highlighting are checked on the rendered page."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from .chromium import free_port, needs_chromium, page, wait_until
from .conftest import needs_futhark

pytestmark = [needs_futhark, pytest.mark.slow, needs_chromium]
pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pip install -e .[notebook])")
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")

FUTHARK_CELL = """%%futhark --backend c --name mine
-- | Dot product: the user's own kernel.
entry dot (xs: []f64) (ys: []f64): f64 =
  f64.sum (map2 (*) xs ys)

-- | Scale every element by 2.5.
entry scale (xs: []f64): []f64 = map (* 2.5f64) xs"""

SWEEP_CELL = """import numpy as np, torch
from futhark_lab import sweep as sw, plots
from futhark_lab.measure import Policy
two = lambda n, dtype, rng: (rng.random(n), rng.random(n))
kernels = [sw.Kernel("dot", mine.dot, make_inputs=two, numpy=np.dot, torch=torch.dot),
           sw.Kernel("scale", mine.scale, make_inputs=lambda n, dtype, rng: rng.random(n),
                     numpy=lambda x: x * 2.5, torch=lambda x: x * 2.5)]
df = sw.sweep(kernels, [sw.futhark("c"), sw.numpy_impl(), sw.torch("cpu")], sizes=[1000, 100000],
              policy=Policy(max_time_s=0.05, min_time_s=0.01), results="results", progress=False)
print("checked:", int(df["correct"].sum()), "of", len(df))
df[["kernel", "impl", "size", "time_s_median", "gbps", "correct"]]"""

PLOT_CELL = "plots.throughput(df)"


def _notebook(path) -> None:
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (futhark-lab)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("%load_ext futhark_lab"), nbformat.v4.new_code_cell(FUTHARK_CELL),
                nbformat.v4.new_code_cell(SWEEP_CELL), nbformat.v4.new_code_cell(PLOT_CELL)]
    nbformat.write(nb, str(path))


@pytest.fixture
def jupyterlab(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    _notebook(work / "own-kernel.ipynb")
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # no news or update checks: nothing may reach the network
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"checkForUpdates": False,
                                                                            "fetchNews": "false"}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "PYTHONPATH": ""}
    port, token = free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
                             f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
                             "--LabApp.extension_manager=readonly"] + (["--allow-root"] if os.geteuid() == 0 else []),
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5)
            break
        except Exception:  # noqa: BLE001 - not up yet
            if proc.poll() is not None or time.time() > deadline:
                log.close()
                raise RuntimeError("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
    yield f"http://127.0.0.1:{port}/lab/tree/own-kernel.ipynb?token={token}&reset", work, tmp_path / "jupyterlab.log"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    log.close()


# the notebook panel (headless, the page has no focus, so shell.currentWidget may stay empty)
NB = "Array.from(jupyterapp.shell.widgets('main')).find(w => w.sessionContext && w.content)"
JS_STATE = f"""(() => {{
  const nb = {NB}.content;
  const cells = nb.widgets.map(c => ({{
    mime: c.model.mimeType,
    out: c.outputArea ? c.outputArea.node.innerText : '',
    imgs: c.outputArea ? Array.from(c.outputArea.node.querySelectorAll('img')).map(i => i.naturalWidth) : [],
    tokens: Array.from(c.node.querySelectorAll('.cm-content span')).map(s => [s.className, s.textContent]),
    exec: c.model.executionCount }}));
  return JSON.stringify(cells);
}})()"""


def test_own_kernel_in_jupyterlab(jupyterlab, tmp_path):
    from PIL import Image
    url, work, log = jupyterlab
    with page(1400, 2600) as b:
        b.goto(url, wait_until="commit", timeout=60_000)
        ready = wait_until(b, f"window.jupyterapp && {NB} && {NB}.content.widgets.length === 4 && "
                           f"{NB}.sessionContext.session && {NB}.sessionContext.session.kernel && "
                           f"{NB}.sessionContext.session.kernel.status === 'idle'", timeout_s=120)
        assert ready, "JupyterLab did not open the notebook with an idle kernel:\n" + log.read_text()[-3000:]
        b.evaluate(f"jupyterapp.shell.activateById({NB}.id)")
        # `void`: do not wait on the command's promise here; the condition below says when the cells have run
        b.evaluate("void jupyterapp.commands.execute('notebook:run-all-cells')")
        done = wait_until(b, f"{NB}.content.widgets.every(c => c.model.executionCount) && "
                          f"{NB}.sessionContext.session.kernel.status === 'idle'", timeout_s=240)
        b.evaluate(f"{NB}.content.activeCellIndex = 1")
        time.sleep(1.0)  # let the editors and the image finish painting
        state = json.loads(b.evaluate(JS_STATE))
        png = tmp_path / "jupyterlab_futhark.png"
        b.screenshot(path=str(png), full_page=True)
    if os.environ.get("FUTHARK_LAB_SCREENSHOTS"):  # keep the picture (results/screenshots has the committed one)
        shutil.copy(png, os.path.join(os.environ["FUTHARK_LAB_SCREENSHOTS"], "jupyterlab_futhark.png"))
    outs = "\n---\n".join(c["out"] for c in state)
    assert done, f"the cells did not all run; outputs:\n{outs[-3000:]}"
    magic, fut, sweep_cell, plot = state
    assert "mine = futhark c module" in fut["out"] and "dot, scale" in fut["out"], fut["out"]
    assert "checked: 12 of 12" in sweep_cell["out"], sweep_cell["out"]
    for name in ("futhark-c", "numpy", "torch-cpu", "dot", "scale"):
        assert name in sweep_cell["out"], (name, sweep_cell["out"])
    assert "Error" not in outs and "Traceback" not in outs, outs
    assert plot["imgs"] and max(plot["imgs"]) > 600, f"no figure shown without %matplotlib inline: {plot}"
    assert "<Figure" not in plot["out"]

    # the %%futhark cell is Futhark, the others stay Python
    assert fut["mime"] == "text/x-futhark", fut["mime"]
    assert sweep_cell["mime"] != "text/x-futhark" and "python" in sweep_cell["mime"], sweep_cell["mime"]
    tokens = fut["tokens"]

    def classes_of(text):
        return [cls for cls, t in tokens if t.strip() == text]
    assert any("tok-keyword" in c for c in classes_of("entry")), tokens
    assert any("tok-typeName" in c for c in classes_of("f64")), tokens
    assert any("tok-number" in c for c in classes_of("2.5f64")), tokens
    assert any("tok-operator" in c for c in classes_of("->") + classes_of("*")), tokens
    doc = [c for c, t in tokens if "the user's own kernel" in t]
    assert doc and "tok-comment" in doc[0], f"the doc comment is not one comment token: {tokens}"
    assert not any("tok-string" in c for c, _ in tokens), f"an apostrophe started a string: {tokens}"
    assert any("tok-meta" in c and "%%futhark" in t for c, t in tokens), tokens

    img = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert img.std() > 20, "blank screenshot"
