"""%%futhark through a real IPython shell."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import needs_futhark

pytestmark = needs_futhark

CELL = "-- | Sum of squares.\nentry sum_squares (xs: []f64): f64 = f64.sum (map (\\x -> x * x) xs)\n"


@pytest.fixture(scope="module")
def ip():
    from IPython.testing.globalipapp import start_ipython
    shell = start_ipython()
    shell.run_line_magic("load_ext", "futhark_lab")
    yield shell
    shell.run_line_magic("futhark_config", "reset")


def run(ip, line, cell):
    """Run a %%futhark cell as Jupyter does: (success, printed output)."""
    import io
    from contextlib import redirect_stdout
    buf = io.StringIO()
    with redirect_stdout(buf):
        res = ip.run_cell(f"%%futhark {line}\n{cell}")
    return res.success, buf.getvalue(), res


def test_cell_binds_a_working_module(ip):
    ok, out, _ = run(ip, "--backend multicore --name stats", CELL)
    assert ok, out
    stats = ip.user_ns["stats"]
    x = np.arange(5.0)
    assert stats.sum_squares(x) == 30.0
    assert "stats = futhark multicore module" in out


def test_default_name_and_defaults_from_line_magic(ip):
    ip.run_line_magic("futhark_config", "backend=c")
    ok, out, _ = run(ip, "", CELL)
    assert ok and ip.user_ns["fut"].backend == "c"
    ip.run_line_magic("futhark_config", "reset")


def test_rerun_is_a_cache_hit_and_change_binds_fresh_module(ip):
    run(ip, "--name m1", CELL)
    first = ip.user_ns["m1"]
    ok, out, _ = run(ip, "--name m1", CELL)
    assert ok and "cache hit" in out
    ok, out, _ = run(ip, "--name m1", CELL.replace("x * x", "x * x * 2"))
    assert ok
    second = ip.user_ns["m1"]
    assert second.build.module_name != first.build.module_name
    assert second.sum_squares(np.array([1.0, 2.0])) == 10.0
    assert first.sum_squares(np.array([1.0, 2.0])) == 5.0, "the old module object still works"


def test_compile_error_is_clean_fails_cell_and_keeps_previous_module(ip, capsys):
    run(ip, "--name keep", CELL)
    good = ip.user_ns["keep"]
    ok, _, res = run(ip, "--name keep", "entry f (x: i32): i32 =\n  x + true\n")
    assert not ok, "a compile error must fail the cell so Run All stops"
    err = res.error_in_exec
    lines = err._render_traceback_()
    text = "\n".join(lines)
    # line:column as the user sees them in the cell: the %%futhark line is line 1, `true` starts in column 7
    assert "<cell keep>:3:7-" in text, text
    assert "Traceback" not in text
    assert ip.user_ns["keep"] is good


def test_signature_and_doc_under_question_mark_and_tab_completion(ip):
    run(ip, "--name docs", CELL)
    mod = ip.user_ns["docs"]
    import inspect
    doc = inspect.getdoc(mod.sum_squares)
    assert "entry sum_squares (xs: []f64) : f64" in doc and "Sum of squares." in doc
    assert "sum_squares" in dir(mod)
    from IPython.core.completer import provisionalcompleter
    with provisionalcompleter():  # the API Jupyter's Tab uses (jedi on)
        completions = [c.text for c in ip.Completer.completions("docs.sum_", len("docs.sum_"))]
    assert "sum_squares" in completions


def test_relative_imports_from_notebook_directory(ip, tmp_path, monkeypatch):
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "lib.fut").write_text("def sq (x: f64): f64 = x * x\n")
    monkeypatch.chdir(tmp_path)
    ok, out, res = run(ip, "--name imp", 'import "kernels/lib"\nentry f (x: f64): f64 = sq x\n')
    assert ok, (out, res.error_in_exec)
    assert ip.user_ns["imp"].f(3.0) == 9.0


def test_futhark_pkg_libraries_in_the_notebook_directory(ip, tmp_path, monkeypatch):
    """`futhark pkg sync` puts packages under lib/<host>/<owner>/<repo>/ next to futhark.pkg; cells import them
    by that path (the layout made by hand here: this machine cannot reach the package hosts)."""
    pkg = tmp_path / "lib" / "github.com" / "example" / "stats"
    pkg.mkdir(parents=True)
    (pkg / "stats.fut").write_text("def mean [n] (xs: [n]f64): f64 = f64.sum xs / f64.i64 n\n")
    (tmp_path / "futhark.pkg").write_text("require {\n  github.com/example/stats 0.1.0 #0000000\n}\n")
    monkeypatch.chdir(tmp_path)
    ok, out, res = run(ip, "--name pkgmod", 'import "lib/github.com/example/stats/stats"\n'
                                            'entry m (xs: []f64): f64 = mean xs\n')
    assert ok, (out, res.error_in_exec)
    assert ip.user_ns["pkgmod"].m(np.array([1.0, 2.0, 6.0])) == 3.0


@pytest.mark.parametrize("line", ["--name 'a; rm -rf /'", "--backend 'c; echo pwned'", "--name $(whoami)",
                                  "-O '--safe; touch /tmp/pwned'"])
def test_shell_metacharacters_never_reach_a_shell(ip, line, tmp_path):
    ok, out, res = run(ip, line, CELL)
    assert not ok
    import os
    assert not os.path.exists("/tmp/pwned")


def test_bad_config_is_a_clear_error(ip):
    res = ip.run_cell("%futhark_config backend=nonsense")
    assert not res.success
    assert "unknown backend" in "\n".join(res.error_in_exec._render_traceback_())
