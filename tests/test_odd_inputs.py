"""Odd inputs that used to surface as raw Python errors (UnicodeEncodeError, RecursionError, RuntimeError,
FileExistsError) now fail with errors that say what is wrong and how to fix it; deep import chains just work."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import futhark_lab
from futhark_lab.builder.source import _IMPORT_RE, imported_files
from futhark_lab.errors import FutharkCompileError

from .conftest import ROOT, needs_futhark

pytestmark = needs_futhark


def test_a_lone_surrogate_in_the_source_is_named_with_its_line():
    src = "entry f (x: i32) : i32 = x\n-- a comment \ud800 here\n"
    with pytest.raises(ValueError, match=r"lone surrogate.*line 2") as info:
        futhark_lab.compile(src, backend="c")
    assert not isinstance(info.value, UnicodeError), "a raw UnicodeEncodeError"
    assert "remove it" in str(info.value)


def _chain(d: Path, n: int) -> None:
    for i in range(n):
        (d / f"m{i}.fut").write_text(f'import "m{i + 1}"\n' if i + 1 < n else "def one : i32 = 1\n")


def test_a_chain_of_1500_imports_compiles(tmp_path):
    _chain(tmp_path, 1500)
    found = imported_files('import "m0"', tmp_path)
    assert found == [(tmp_path / f"m{i}.fut").resolve() for i in range(1500)]
    m = futhark_lab.compile('import "m0"\nimport "m1499"\nentry f (x: i32) : i32 = x + one', backend="c",
                            base_dir=tmp_path)
    assert m.f(41) == 42


def _imported_files_recursive(source, base_dir, seen=None):  # the former recursive definition, as the reference
    seen = seen if seen is not None else set()
    found = []
    for rel in _IMPORT_RE.findall(source):
        path = (base_dir / (rel if rel.endswith(".fut") else rel + ".fut")).resolve()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        found.append(path)
        found += _imported_files_recursive(path.read_text(errors="replace"), path.parent, seen)
    return found


def test_imported_files_keeps_its_order_on_diamonds_cycles_and_subdirectories(tmp_path):
    (tmp_path / "lib").mkdir()
    files = {
        "a.fut": 'import "b"\nimport "lib/c"\nimport "missing"\n',
        "b.fut": 'import "lib/c"\nopen import "d"\n',
        "lib/c.fut": 'import "../a"\nimport "e.fut"\n',
        "lib/e.fut": 'import "../d"\n',
        "d.fut": "def d = 1\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    src = 'import "a"\nimport "d"\nimport "lib/e"\n'
    got = imported_files(src, tmp_path)
    assert got == _imported_files_recursive(src, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in got] == ["a.fut", "b.fut", "lib/c.fut", "lib/e.fut",
                                                                   "d.fut"]


def test_an_import_symlink_loop_is_a_clear_compile_error(tmp_path):
    os.symlink(tmp_path / "b.fut", tmp_path / "a.fut")
    os.symlink(tmp_path / "a.fut", tmp_path / "b.fut")
    with pytest.raises(FutharkCompileError, match=r'import "a" in the program.*symbolic link') as info:
        futhark_lab.compile('import "a"\nentry f (x: i32) : i32 = x', backend="c", base_dir=tmp_path)
    assert "a.fut" in str(info.value)
    (tmp_path / "real.fut").write_text('import "a"\n')  # the loop reached through a real file names that file
    with pytest.raises(FutharkCompileError, match=r'import "a" in .*real\.fut'):
        futhark_lab.compile('import "real"\nentry f (x: i32) : i32 = x', backend="c", base_dir=tmp_path)


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_a_cache_directory_that_is_a_file_is_named(tmp_path, where):
    f = tmp_path / "cache"
    f.write_text("not a directory")
    cache = f if where == "file" else f / "sub"
    code = textwrap.dedent("""
        import futhark_lab
        try:
            futhark_lab.compile("entry f (x: i32) : i32 = x + 17", backend="c")
            print("NO ERROR")
        except Exception as e:
            print(type(e).__name__, "|", e)
    """)
    env = {**os.environ, "FUTHARK_LAB_CACHE": str(cache),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    name, _, text = out.stdout.strip().partition(" | ")
    assert name == "ValueError", out.stdout + out.stderr
    assert str(cache) in text and "$FUTHARK_LAB_CACHE" in text
    assert ("is a file" in text) if where == "file" else ("cannot be made" in text)

