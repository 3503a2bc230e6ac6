"""The ``-- ==`` test/benchmark blocks of a Futhark program, read as ``futhark test`` and ``futhark bench`` read them.

Follows futhark's own parser (src/Futhark/Test/Spec.hs, v0.25.27) and its manual (futhark-test.rst): a block starts
at a line that begins with ``-- ==`` and goes on while lines begin with ``--``; the first block may carry
``tags { … }``; each block may name entry points (``entry: a b``, default ``main``) and holds run cases::

    ["name"] [tags…] input ({ values } | @ file)  [output ({ values } | @ file) | auto output | error: regex]

where ``random`` among the tags makes the braces hold types (``[1000]f32``) and constants, and ``script`` makes
them a FutharkScript expression.  Dataset descriptions are made exactly as futhark does (the name, the file path
without ``.gz``, ``#i ("values…")`` or the generated types), so they match the keys of ``futhark bench --json``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from .textformat import SpecError, gen_type_text, parse_values, value_text


@dataclasses.dataclass(frozen=True)
class Values:
    """Inline values: the raw text between the braces (parsed by :mod:`.datasets`)."""
    text: str


@dataclasses.dataclass(frozen=True)
class InFile:
    path: str                      # as written, relative to the program's directory


@dataclasses.dataclass(frozen=True)
class GenValues:
    """``random input { [1000]f32 10i64 }``: one item per value, each a type or a constant (as written)."""
    items: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ScriptValues:
    text: str                      # FutharkScript expression (or, with ``file``, a file holding one)
    file: str | None = None


Input = Values | InFile | GenValues | ScriptValues


@dataclasses.dataclass(frozen=True)
class Expected:
    """What a run is expected to produce: ``kind`` is ``none`` (just succeed), ``values``, ``auto`` (reference
    output from the ``c`` backend) or ``error`` (a run-time failure: benchmarks skip these, as futhark bench does)."""
    kind: str = "none"
    values: Values | InFile | None = None
    error: str = ""


@dataclasses.dataclass(frozen=True)
class TestRun:
    tags: tuple[str, ...]
    input: Input
    expected: Expected
    index: int
    description: str
    line: int = 0


@dataclasses.dataclass(frozen=True)
class InputOutputs:
    entry: str
    runs: tuple[TestRun, ...]


@dataclasses.dataclass(frozen=True)
class ProgramSpec:
    path: Path
    tags: tuple[str, ...]
    cases: tuple[InputOutputs, ...]
    compile_error: str | None = None      # a test that expects a type error: nothing to run

    def entries(self) -> list[str]:
        return list(dict.fromkeys(c.entry for c in self.cases))


# --------------------------------------------------------------------------- blocks

def blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, content) of each ``-- ==`` block, the ``--`` prefixes removed."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith("-- =="):
            start, body = i + 1, []
            while i < len(lines) and lines[i].startswith("--"):
                body.append(lines[i][2:])
                i += 1
            out.append((start, "\n".join(body)))
        else:
            i += 1
    return out


_TAG = re.compile(r"[A-Za-z0-9_\-]+")


class _Scanner:
    def __init__(self, text: str, path: str, line0: int):
        self.s, self.i, self.path, self.line0 = text, 0, path, line0

    def line(self) -> int:
        return self.line0 + self.s.count("\n", 0, self.i)

    def error(self, what: str) -> SpecError:
        return SpecError(f"{self.path}:{self.line()}: {what}")

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def hspace(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r":
            self.i += 1

    def eof(self) -> bool:
        self.ws()
        return self.i >= len(self.s)

    def peek_word(self) -> str:
        self.ws()
        m = re.compile(r"[^\s{}]+").match(self.s, self.i)
        return m.group(0) if m else ""

    def take(self, word: str) -> bool:
        self.ws()
        if self.s.startswith(word, self.i):
            end = self.i + len(word)
            if word[-1].isalnum() and end < len(self.s) and (self.s[end].isalnum() or self.s[end] in "_-"):
                return False
            self.i = end
            return True
        return False

    def rest_of_line(self) -> str:
        self.hspace()
        j = self.s.find("\n", self.i)
        j = len(self.s) if j < 0 else j
        text, self.i = self.s[self.i:j].strip(), j
        return text

    def word(self) -> str:
        self.ws()
        m = re.compile(r"\S+").match(self.s, self.i)
        if not m:
            raise self.error("expected a file name after '@'")
        self.i = m.end()
        return m.group(0)

    def braces(self) -> str:
        self.ws()
        if not self.s.startswith("{", self.i):
            raise self.error(f"expected '{{' or '@ file', found {self.peek_word()!r}")
        depth, j, in_str = 0, self.i, False
        while j < len(self.s):
            c = self.s[j]
            if in_str:
                if c == "\\":
                    j += 1
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    text, self.i = self.s[self.i + 1:j], j + 1
                    return text
            j += 1
        raise self.error("unclosed '{'")

    def string(self) -> str | None:
        self.ws()
        if not self.s.startswith('"', self.i):
            return None
        j = self.i + 1
        out = []
        while j < len(self.s) and self.s[j] != '"':
            if self.s[j] == "\\" and j + 1 < len(self.s):
                j += 1
                out.append({"n": "\n", "t": "\t"}.get(self.s[j], self.s[j]))
            else:
                out.append(self.s[j])
            j += 1
        if j >= len(self.s):
            raise self.error("unclosed string literal")
        self.i = j + 1
        return "".join(out)


# --------------------------------------------------------------------------- run cases

def _values_or_file(sc: _Scanner) -> Values | InFile:
    if sc.take("@"):
        return InFile(sc.word())
    return Values(sc.braces())


def _run_cases(sc: _Scanner) -> list[TestRun]:
    runs: list[TestRun] = []
    while True:
        save = sc.i
        line = sc.line() if not sc.eof() else sc.line()
        name = sc.string()
        tags: list[str] = []
        while True:
            w = sc.peek_word()
            m = _TAG.fullmatch(w) if w else None
            if not m or w in ("input", "structure", "warning"):
                break
            sc.take(w)
            tags.append(w)
        if not sc.take("input"):
            sc.i = save                      # not a run case: the cases of this block are over
            if name is not None or tags:
                raise sc.error(f"expected 'input' after {(repr(name) + ' ') if name else ''}{' '.join(tags)}")
            return runs
        if "random" in tags:
            inp: Input = GenValues(tuple(sc.braces().split()))
        elif "script" in tags:
            inp = ScriptValues("", sc.word()) if sc.take("@") else ScriptValues(sc.braces().strip())
        else:
            inp = _values_or_file(sc)
        if sc.take("auto"):
            if not sc.take("output"):
                raise sc.error("expected 'output' after 'auto'")
            exp = Expected("auto")
        elif sc.take("output"):
            exp = Expected("values", _values_or_file(sc))
        elif sc.take("error:"):
            exp = Expected("error", error=sc.rest_of_line())
        else:
            exp = Expected()
        i = len(runs)
        runs.append(TestRun(tuple(tags), inp, exp, i, name if name is not None else _describe(i, inp), line))


def _describe(i: int, inp: Input) -> str:
    """The dataset name futhark gives an unnamed run (Spec.hs ``desc``)."""
    if isinstance(inp, InFile):
        return inp.path[:-3] if inp.path.endswith(".gz") else inp.path
    if isinstance(inp, Values):
        text = " ".join(value_text(v) for v in parse_values(inp.text))
        if len(text) > 50:
            text = text[:50] + "..."
        return f'#{i} ("{" ".join(_haskell_lines(text))}")'
    if isinstance(inp, GenValues):
        return " ".join(gen_type_text(g) for g in inp.items)
    return inp.file if inp.file is not None else " ".join(inp.text.split())


def _haskell_lines(s: str) -> list[str]:
    parts = s.split("\n")
    return parts[:-1] if parts and parts[-1] == "" else parts


# --------------------------------------------------------------------------- programs

def parse(text: str, path: str | Path = "<program>") -> ProgramSpec:
    """The benchmark specification of a program's text."""
    path = Path(path)
    tags: tuple[str, ...] = ()
    cases: list[InputOutputs] = []
    for n, (line0, body) in enumerate(blocks(text)):
        sc = _Scanner(body, str(path), line0)
        sc.take("==")
        if n == 0 and sc.take("tags"):
            tags = tuple(sc.braces().split())
            bad = [t for t in tags if not _TAG.fullmatch(t)]
            if bad:
                raise sc.error(f"tags may hold letters, digits, '_' and '-' only: {bad[0]!r}")
        if sc.take("error:"):
            if n == 0:
                return ProgramSpec(path, tags, (), compile_error=sc.rest_of_line())
            raise sc.error("'error:' (an expected compile error) is only allowed in the first block")
        entries = ["main"]
        if sc.take("entry:"):
            entries = sc.rest_of_line().split()
            if not entries:
                raise sc.error("'entry:' names no entry point")
        runs = _run_cases(sc)
        while not sc.eof():       # structure and warning tests: not ours, skipped as futhark bench does
            if sc.take("structure"):
                sc.ws()
                if not sc.s.startswith("{", sc.i):
                    sc.word()            # the pipeline: gpu, mc, seq-mem, …
                sc.braces()
            elif sc.take("warning:"):
                sc.rest_of_line()
            else:
                raise sc.error(f"cannot read {sc.peek_word()!r} here (expected a run case: "
                               "[\"name\"] [tags] input {…} or input @ file)")
        seen: set[str] = set()
        for r in runs:
            if r.description in seen:
                raise SpecError(f"{path}: multiple datasets with name {r.description!r}")
            seen.add(r.description)
        if runs:
            cases += [InputOutputs(e, tuple(runs)) for e in entries]
    return ProgramSpec(path, tags, tuple(cases))


def read(path: str | Path) -> ProgramSpec:
    """The benchmark specification of a ``.fut`` file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read {p}: {exc.strerror or exc}") from None
    return parse(text, p)


def program_key(program: str, entry: str) -> str:
    """How ``futhark bench`` names a benchmark in its JSON: the program path, with ``:entry`` unless ``main``."""
    return program if entry == "main" else f"{program}:{entry}"


def excluded(spec: ProgramSpec, run: TestRun, backend: str, exclude: tuple[str, ...] = ()) -> str | None:
    """Why ``futhark bench --backend=backend --exclude-case=…`` would skip this run (None: it would run it)."""
    tags = set(exclude) | {"nobench", "disable", f"no_{backend}"}
    if hit := sorted(tags & set(spec.tags)):
        return f"program tagged {hit[0]}"
    if run.expected.kind == "error":
        return "expects a run-time error"
    if hit := sorted(tags & set(run.tags)):
        return f"dataset tagged {hit[0]}"
    return None
