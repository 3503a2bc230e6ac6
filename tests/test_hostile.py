"""The hostile-input suite (tests/hostile.py) on every CPU backend, and one notebook-level check: a cell that used
to kill the Jupyter kernel now shows an error and the next cell still runs."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from . import hostile
from .conftest import ROOT, cpu_backends, needs_futhark

pytestmark = needs_futhark


@pytest.mark.parametrize("backend", cpu_backends())
def test_hostile_suite(backend, capsys):
    results = hostile.run_backend(backend)
    line = hostile.summary(backend, results)
    with capsys.disabled():
        print("\n" + line)
    bad = {name: r for name, r in results.items() if r[0] in ("crash", "hang", "wrong")}
    unclear = {name: r for name, r in results.items() if r[0] == "unclear"}
    assert not bad, line + "\n" + "\n".join(f"{k}: {v[0]}: {v[1][:500]}" for k, v in bad.items())
    # an unclear message is a finding too: every failure must say what failed
    assert not unclear, line + "\n" + "\n".join(f"{k}: {v[1][:500]}" for k, v in unclear.items())
    assert sum(1 for k, _ in results.values() if k == "clean") >= 40, line


_KILLER = """
import os, sys
sys.path.insert(0, {root!r})
from tests import hostile


def killer(m, b):
    os.kill(os.getpid(), 11)


hostile.CASES[:] = hostile.CASES[:2] + [("killer", killer, None)] + hostile.CASES[2:4]
hostile.main(sys.argv[1:])
"""


def test_runner_reports_a_crash_and_goes_on(tmp_path, monkeypatch):
    """The runner itself: a case that kills its process is a crash, and the cases after it still run."""
    script = tmp_path / "killer.py"
    script.write_text(_KILLER.format(root=str(ROOT)))
    cases = hostile.CASES[:2] + [("killer", None, None)] + hostile.CASES[2:4]
    monkeypatch.setattr(hostile, "CASES", cases)
    res = hostile.run_backend("c", child_cmd=[sys.executable, str(script)])
    assert res["killer"][0] == "crash", res
    assert [res[n][0] for n, _, _ in cases if n != "killer"] == ["clean"] * 4, res


def test_notebook_cell_that_killed_the_kernel_now_fails_and_the_next_runs():
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    cells = [
        "%load_ext futhark_lab",
        "%%futhark --backend multicore --name m\n"
        "entry rep (n: i64) : []f64 = replicate n 1.0\n"
        "entry divi (a: i64) (b: i64) : i64 = a / b",
        "m.rep(-1)",                          # futhark's runtime called exit(1) here
        "m.divi(-2**63, -1)",                 # SIGFPE here
        "%%futhark --name __builtins__\nentry f (x: i32) : i32 = x",
        "print('still alive', m.rep(2).numpy().tolist(), m.divi(-2**63, -1))",
    ]
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    src = Path(tempfile.mkdtemp()) / "hostile.ipynb"
    nbformat.write(nb, src)
    code = ("import sys, nbformat, nbclient\n"
            "nb = nbformat.read(sys.argv[1], as_version=4)\n"
            "nbclient.NotebookClient(nb, timeout=600, kernel_name='python3', allow_errors=True).execute()\n"
            "nbformat.write(nb, sys.argv[1])\n")
    proc = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True, timeout=900,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]   # a dead kernel raises DeadKernelError here
    done = nbformat.read(src, as_version=4)

    def text(i):
        return "\n".join(o.get("text", "") + o.get("evalue", "") + "".join(o.get("traceback", []))
                         + str(o.get("data", {}).get("text/plain", "")) for o in done.cells[i].outputs)

    assert any(o.output_type == "error" for o in done.cells[2].outputs), text(2)
    assert "Invalid array size" in text(2) and "rep" in text(2), text(2)
    assert "-9223372036854775808" in text(3), text(3)
    assert "__builtins__" in text(4) and "choose another" in text(4), text(4)
    assert "still alive [1.0, 1.0] -9223372036854775808" in text(5), text(5)
