"""Every snippet in the README runs as written: the notebook cells in a real IPython shell (``%%futhark`` compiled by the
real compiler), the Python block in a fresh interpreter, the command lines through the CLI's own parser.  And the
README stays the front door: short, naming every notebook, and naming only futhark versions with a clean record."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest

from .conftest import ROOT, needs_futhark

README = (ROOT / "README.md").read_text()

# Sampling budget for the README's sweeps here: the snippets keep their own sizes and implementations, and only the
# measuring policy's defaults are made short (each point still measured, checked against NumPy and stored).
SHORT_POLICY = """
import dataclasses
from futhark_lab.measure import timing as _timing
_short = {"warmup_s": 0.005, "min_samples": 3, "min_time_s": 0.005, "max_time_s": 0.03}
_timing.Policy.__init__.__defaults__ = tuple(_short.get(f.name, f.default) for f in dataclasses.fields(_timing.Policy))
"""


def section(title: str) -> str:
    """The README's text under the ``## title`` heading, up to the next ``## ``."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def fenced(text: str) -> list[tuple[str, str]]:
    """(info string, code) of each ``` block, in order."""
    return [(m.group(1).strip(), m.group(2)) for m in re.finditer(r"^```([^\n]*)\n(.*?)^```", text, re.S | re.M)]


def command_lines(text: str) -> list[str]:
    """The indented (four-space) command lines, without their trailing comments."""
    return [line[4:].split("  #")[0].strip() for line in text.splitlines()
            if line.startswith("    ") and line.strip() and not line.startswith("     ")]


def _run(code: str, tmp_path, timeout: int = 600) -> subprocess.CompletedProcess:
    (tmp_path / "kernels").symlink_to(ROOT / "kernels")  # the README's paths are relative to a checkout
    script = tmp_path / "snippet.py"
    script.write_text(code)
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout, env={"PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg",
                                                **{k: v for k, v in __import__("os").environ.items()
                                                   if k != "PYTHONPATH"}})


def test_readme_fits_on_a_screen_or_two():
    assert len(README.splitlines()) <= 150


def test_the_two_commands_are_the_ones_ci_runs():
    cmds = command_lines(section("The two commands"))
    assert cmds == ["bash scripts/main.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    for cmd in cmds:
        assert (ROOT / cmd.split()[1]).is_file()


def test_every_notebook_is_listed_with_what_it_needs():
    table = section("The notebooks")
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    listed = re.findall(r"^\| `([^`]+)` \|.*\| (CPU|an NVIDIA GPU) \|$", table, re.M)
    assert sorted(n for n, _ in listed) == names
    gpu = {n for n, need in listed if need != "CPU"}
    assert gpu == {n for n in names if "gpu" in n}, "the GPU notebooks are the ones marked as needing one"


def test_supported_versions_are_those_with_a_clean_whole_suite_record():
    named = re.search(r"\*\*Supported versions: ([^*]+)\*\*", README).group(1)
    versions = set(re.findall(r"\d+\.\d+\.\d+", named))
    assert versions
    clean = set()
    for path in (ROOT / "results" / "compat").glob("*.json"):
        rec = json.loads(path.read_text())
        whole_suite = "any" in rec["counts"] and rec["counts"]["any"]["passed"] > 0  # not only tests/test_gpu.py
        if whole_suite and all(c["failed"] == 0 for c in rec["counts"].values()):
            clean.add(rec["futhark"])
    assert versions <= clean, f"named without a clean whole-suite record: {versions - clean}"


def test_command_lines_parse():
    from futhark_lab.cli import build_parser

    parser = build_parser()
    lines = [c for c in command_lines(README) if c.startswith("futhark-lab ")]
    assert len(lines) >= 5
    for line in lines:
        args = parser.parse_args(shlex.split(line)[1:])
        assert args.command == shlex.split(line)[1], line
    jl = [c for c in command_lines(README) if "jupyter lab" in c]
    assert jl and all((ROOT / c.split()[0]).name == "jupyter" and (ROOT / c.split()[2]).is_dir() for c in jl)


@needs_futhark
@pytest.mark.slow
def test_python_snippet_runs(tmp_path):
    blocks = [code for info, code in fenced(section("In Python")) if info == "python"]
    assert len(blocks) == 1
    code = blocks[0]
    # the snippet ends on expressions a notebook would show; print the ones that carry an answer
    check = ("\nimport numpy as _np\n"
             "assert _np.allclose(r.numpy(), 2.5 * x + y) and r.shape == (1000,)\n"
             "assert df['correct'].all() and len(df) == 15, df\n"
             "import pathlib; assert pathlib.Path('report.html').stat().st_size > 10_000\n"
             "print('README python snippet ok', len(df))\n")
    out = _run(SHORT_POLICY + code + check, tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "README python snippet ok" in out.stdout


@needs_futhark
@pytest.mark.slow
def test_notebook_cells_run_in_ipython(tmp_path):
    cells = [code for _, code in fenced(section("Your own kernel against NumPy and PyTorch"))]
    assert cells[0].strip() == "%load_ext futhark_lab" and cells[1].startswith("%%futhark")
    driver = SHORT_POLICY + f"""
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
for cell in {cells!r}:
    result = shell.run_cell(cell)
    if not result.success:
        raise SystemExit(f"cell failed: {{cell[:60]!r}}: {{result.error_before_exec or result.error_in_exec!r}}")
ns = shell.user_ns
import numpy as np
assert abs(float(ns["mine"].dot(ns["x"], ns["x"])) - float(np.dot(ns["x"], ns["x"]))) < 1e-6 * float(np.dot(ns["x"], ns["x"]))
df = ns["df"]
assert df["correct"].all() and set(df["impl"]) == {{"futhark-multicore", "numpy", "torch-cpu"}}, df
print("README notebook cells ok", len(df))
"""
    out = _run(driver, tmp_path)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert "README notebook cells ok 15" in out.stdout
