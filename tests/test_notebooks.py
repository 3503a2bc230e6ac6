"""The notebooks run top to bottom headless (nbclient), and their outputs are checked."""

from __future__ import annotations

import json

import pytest

from .conftest import ROOT, needs_futhark

pytestmark = [needs_futhark, pytest.mark.slow]
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def execute(name: str, timeout: int = 900):
    """Execute a notebook with nbclient in a fresh interpreter (isolated from state other tests leave in this
    process, e.g. IPython's test shell) and return the executed notebook."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    out = Path(tempfile.mkdtemp()) / name
    code = (
        "import sys, nbformat, nbclient\n"
        "src, dst, path = sys.argv[1:4]\n"
        "nb = nbformat.read(src, as_version=4)\n"
        "try:\n"
        "    nbclient.NotebookClient(nb, timeout=600, kernel_name='python3',\n"
        "                            resources={'metadata': {'path': path}}).execute()\n"
        "finally:\n"
        "    nbformat.write(nb, dst)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "notebooks" / name), str(out),
                           str(ROOT / "notebooks")], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stderr[-3000:]}"
    return nbformat.read(out, as_version=4)


def outputs(nb) -> str:
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            parts.append(o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_quickstart():
    nb = execute("01-quickstart.ipynb")
    text = outputs(nb)
    assert "stats = futhark multicore module" in text
    assert "futhark" in text and "numpy" in text and "fastest:" in text
    assert "Sum of squares of an array" in text


def test_sweeps():
    nb = execute("02-sweeps.ipynb")
    assert images(nb) >= 4
    assert "gbps" in outputs(nb)


def test_roofline():
    nb = execute("03-roofline.ipynb")
    assert images(nb) >= 1


def test_explorer():
    nb = execute("04-explorer.ipynb")
    assert images(nb) >= 1


def test_own_kernel():
    nb = execute("06-own-kernel.ipynb")
    text = outputs(nb)
    assert "mine = futhark multicore module" in text and "dot, logsumexp" in text
    assert images(nb) >= 2, "figures show without %matplotlib inline"
    assert "<Figure" not in text


def test_no_notebook_patches_sys_path():
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        assert "sys.path" not in path.read_text(), f"{path.name} patches sys.path"


def test_executed_notebook_exports_to_html(tmp_path):
    nbconvert = pytest.importorskip("nbconvert")
    nb = execute("01-quickstart.ipynb")
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    out = tmp_path / "quickstart.html"
    out.write_text(body)
    assert "stats = futhark multicore module" in body and "fastest:" in body


def test_futhark_bench_notebook():
    nb = execute("07-futhark-bench.ipynb")
    text = outputs(nb)
    assert images(nb) >= 1
    assert "2M normal (file)" in text and "1M uniform" in text and "verdict" in text
    assert "report.html" in text and "compare.html" in text


def test_cluster():
    pytest.importorskip("distributed", reason="Dask's distributed is installed by scripts/setup.sh")
    nb = execute("08-cluster.ipynb")
    text = outputs(nb)
    assert "overlapping timings: []" in text
    assert text.count("tcp://") >= 2, "the points ran on the cluster's workers"
    assert "False" not in text.split("overlapping timings")[0].split("correct")[-1], "every answer correct"
    assert images(nb) >= 1
