"""Values of Futhark's data format for benchmark datasets: inline text, ``@`` files (binary or text, gzipped or not),
``random`` inputs, and the comparison of results with expected outputs.

- Binary files are read with the maintainers' ``futhark_data`` package.  Its text reader does not accept all of
  futhark's textual grammar (``f32.nan``/``f32.inf``, array elements after the first taking the first's type, as in
  ``[1i64, 2, 3]``, and ``empty(…)`` under NumPy 2 fail there), so inline values and text files are read here,
  following futhark-data-haskell's ``Futhark.Data.Parser``.
- ``random input`` runs ``futhark dataset -b -g TYPE`` (seed 1, one call per value: the same bytes ``futhark test``
  and ``futhark bench`` put in ``data/``) where futhark exists; elsewhere NumPy draws with futhark's ranges
  (integers over the whole type, floats in [0, 1], booleans uniform): same shapes and distribution, other values.
- ``value_text`` prints values as futhark's ``valueText`` does (Haskell's ``show`` for numbers), so dataset names
  match ``futhark bench --json`` keys; ``compare_values`` is futhark-data's ``compareValues`` with ``futhark test``'s
  tolerance (0.002).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .spec import GenValues, InFile, ScriptValues, SpecError, Values

PRIM = {"i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64, "u8": np.uint8, "u16": np.uint16,
        "u32": np.uint32, "u64": np.uint64, "f16": np.float16, "f32": np.float32, "f64": np.float64,
        "bool": np.bool_}
NAME = {np.dtype(v): k for k, v in PRIM.items()}
INTS = ("i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64")
FLOATS = ("f16", "f32", "f64")
TOLERANCE = 0.002        # futhark test's (Futhark.Test.checkResult)


# --------------------------------------------------------------------------- the textual value format

_TOKEN = re.compile(r'\s+|--[^\n]*|empty\(|[\[\](),]|"(?:\\.|[^"\\])*"|[^\s\[\](),"]+')
_INT = re.compile(r"([+-]?)(0[xX][0-9a-fA-F][0-9a-fA-F_]*|0[bB][01][01_]*|[0-9][0-9_]*)(i8|i16|i32|i64|u8|u16|u32|u64)?")
_FLOAT = re.compile(r"([+-]?)([0-9][0-9_]*(?:\.[0-9][0-9_]*)?(?:[eE][+-]?[0-9][0-9_]*)?)(f16|f32|f64)?")
_SPECIAL = re.compile(r"(-?)(f16|f32|f64)\.(nan|inf)")


def _wrap_int(x: int, t: str):
    info = np.iinfo(PRIM[t])
    bits = info.bits
    x &= (1 << bits) - 1
    if info.min < 0 and x >= 1 << (bits - 1):
        x -= 1 << bits
    return PRIM[t](x)


class _ValueParser:
    def __init__(self, text: str):
        self.toks = [t for t in _TOKEN.findall(text) if t.strip() and not t.startswith("--")]
        self.text, self.i = text, 0

    def error(self, what: str) -> SpecError:
        near = " ".join(self.toks[max(0, self.i - 3):self.i + 3])
        return SpecError(f"invalid Futhark value text ({what}) near: {near[:80]!r}")

    def next(self) -> str:
        if self.i >= len(self.toks):
            raise self.error("unexpected end")
        self.i += 1
        return self.toks[self.i - 1]

    def values(self) -> list:
        out = []
        while self.i < len(self.toks):
            out.append(self.value(None))
        return out

    def value(self, t: str | None):
        tok = self.next()
        if tok == "[":
            first = self.value(t)
            et = _elem_type(first)
            items = [first]
            while True:
                tok = self.next()
                if tok == "]":
                    break
                if tok != ",":
                    raise self.error(f"expected ',' or ']', found {tok!r}")
                if self.toks[self.i:self.i + 1] == ["]"]:      # trailing comma (sepEndBy)
                    continue
                items.append(self.value(et))
            shapes = {np.shape(v) for v in items}
            if len(shapes) != 1:
                raise self.error("array is irregular")
            return np.array(items, dtype=PRIM[et])
        if tok == "empty(":
            parts = []
            while (tok := self.next()) != ")":
                parts.append(tok)
            dims, rest = _split_type("".join(parts))
            if rest not in PRIM or not dims or np.prod(dims) != 0:
                raise self.error("empty(…) needs a type with a zero dimension, as in empty([0]i32)")
            return np.zeros(dims, dtype=PRIM[rest])
        if tok.startswith('"'):
            data = bytes(tok[1:-1], "utf-8").decode("unicode_escape").encode("utf-8")
            return np.frombuffer(data, dtype=np.uint8).copy()
        return self.prim(tok, t)

    def prim(self, tok: str, t: str | None):
        if tok in ("true", "false"):
            if t not in (None, "bool"):
                raise self.error(f"{tok} in an array of {t}")
            return np.bool_(tok == "true")
        if m := _SPECIAL.fullmatch(tok):
            sign, ft, what = m.groups()
            if t not in (None, ft):
                raise self.error(f"{tok} in an array of {t}")
            v = np.inf if what == "inf" else np.nan
            if what == "nan" and sign:
                raise self.error(tok)
            return PRIM[ft](-v if sign else v)
        mi, mf = _INT.fullmatch(tok), _FLOAT.fullmatch(tok)
        if t is None and mi:
            sign, digits, suffix = mi.groups()
            return _wrap_int(int(digits.replace("_", ""), 0) * (-1 if sign == "-" else 1), suffix or "i32")
        if t in INTS and mi and mi.group(3) in (None, t):
            sign, digits, _ = mi.groups()
            return _wrap_int(int(digits.replace("_", ""), 0) * (-1 if sign == "-" else 1), t)
        if t in (None, *FLOATS) and mf and mf.group(3) in (None, t) or (t is None and mf):
            sign, num, suffix = mf.groups()
            return PRIM[t or suffix or "f64"](float(sign + num.replace("_", "")))
        if t is None:
            raise self.error(f"not a value: {tok!r}")
        raise self.error(f"{tok} in an array of {t}")


def parse_values(text: str) -> list:
    """Values in Futhark's textual data format (inline ``input { … }`` blocks and text files)."""
    return _ValueParser(text).values()


def _split_type(text: str) -> tuple[list[int], str]:
    dims = []
    rest = text
    while rest.startswith("["):
        j = rest.find("]")
        if j < 0:
            raise SpecError(f"invalid type {text!r}")
        try:
            dims.append(int(rest[1:j].replace("_", ""), 0))
        except ValueError:
            raise SpecError(f"invalid dimension in {text!r}: sizes must be integer constants") from None
        rest = rest[j + 1:]
    return dims, rest


def _elem_type(v) -> str:
    return NAME[np.asarray(v).dtype]


# --------------------------------------------------------------------------- printing as futhark does

def _hs_float(x: float, f32: bool) -> str:
    """Haskell's ``show`` for Float/Double: shortest round-trip digits, fixed for 0.1 <= |x| < 10^7."""
    if x == 0:
        return "-0.0" if np.signbit(x) else "0.0"
    sign = "-" if x < 0 else ""
    sci = np.format_float_scientific(np.float32(abs(x)) if f32 else np.float64(abs(x)), unique=True, trim="-")
    mant, exp = sci.split("e")
    ds = mant.replace(".", "").rstrip("0") or "0"
    e = int(exp) + 1
    if e < 0 or e > 7:
        return f"{sign}{ds[0]}.{ds[1:] or '0'}e{e - 1}"
    if e <= 0:
        return f"{sign}0.{'0' * -e}{ds}"
    ip = ds[:e].ljust(e, "0")
    return f"{sign}{ip}.{ds[e:] or '0'}"


def _prim_text(v, t: str) -> str:
    if t == "bool":
        return "true" if bool(v) else "false"
    if t in FLOATS:
        f = float(v)
        if np.isnan(f):
            return f"{t}.nan"
        if np.isinf(f):
            return f"{t}.inf" if f > 0 else f"-{t}.inf"
        return _hs_float(f, t != "f64") + t
    return f"{int(v)}{t}"


def _show(x) -> str:
    """Haskell's ``show`` of one element (how futhark test prints a mismatch)."""
    t = NAME[np.asarray(x).dtype]
    if t == "bool":
        return "True" if bool(x) else "False"
    if t in FLOATS:
        f = float(x)
        return "NaN" if np.isnan(f) else ("Infinity" if f > 0 else "-Infinity") if np.isinf(f) else \
            _hs_float(f, t != "f64")
    return str(int(x))


def value_text(v) -> str:
    """A value as futhark's ``valueText`` prints it (``[1i32, 2i32]``, ``3.0f64``, ``empty([0]i32)``)."""
    a = np.asarray(v)
    t = NAME[a.dtype]
    if a.ndim and a.size == 0:
        return "empty(" + "".join(f"[{d}]" for d in a.shape) + t + ")"

    def go(x) -> str:
        if x.ndim == 0:
            return _prim_text(x[()], t)
        sep = ", " if x.ndim == 1 else ",\n"
        return "[" + sep.join(go(s) for s in x) + "]"
    return go(a)


def type_text(v, dims: bool = False) -> str:
    """``[]f32`` (as entry point parameters are typed), or with ``dims`` ``[1000]f32``."""
    a = np.asarray(v)
    return "".join(f"[{d}]" if dims else "[]" for d in a.shape) + NAME[a.dtype]


def gen_type_text(item: str) -> str:
    """A ``random input`` item as futhark names it in the dataset description (``[1000]f32``, ``10i64``)."""
    dims, rest = _split_type(item)
    if rest in PRIM:
        return "".join(f"[{d}]" for d in dims) + rest
    if dims:
        raise SpecError(f"random input: unknown element type in {item!r}")
    vals = parse_values(item)
    if len(vals) != 1 or np.ndim(vals[0]) != 0:
        raise SpecError(f"random input: {item!r} is neither a type nor a scalar constant")
    return value_text(vals[0])


# --------------------------------------------------------------------------- files and generated data

def read_file(path: Path) -> list:
    """All values in a data file: binary (futhark_data) or text, gzipped when the name ends in .gz."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"data file {path} does not exist") from None
    except (OSError, EOFError) as exc:
        raise SpecError(f"cannot read data file {path}: {exc}") from None
    return decode(data, str(path))


def decode(data: bytes, what: str) -> list:
    """Values from bytes that may mix binary and textual values (as futhark's reader allows)."""
    import futhark_data

    out, i, n = [], 0, len(data)
    ws = re.compile(rb"(\s+|--[^\n]*)*")
    while True:
        i = ws.match(data, i).end()
        if i >= n:
            return out
        if data[i:i + 1] == b"b" and i + 1 < n and data[i + 1] == 2:
            rank = data[i + 2]
            dims = np.frombuffer(data, dtype="<i8", count=rank, offset=i + 7) if rank else np.zeros(0, np.int64)
            tname = data[i + 3:i + 7].decode("latin1").strip()
            if tname not in PRIM:
                raise SpecError(f"{what}: unknown element type {tname!r} in binary data")
            size = 1 + 1 + 1 + 4 + 8 * rank + int(np.prod(dims)) * np.dtype(PRIM[tname]).itemsize
            if i + size > n:
                raise SpecError(f"{what}: binary value truncated ({n - i} of {size} bytes)")
            try:
                (v,) = list(futhark_data.loadb(data if (i, size) == (0, n) else data[i:i + size]))
            except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file, named here
                raise SpecError(f"{what}: cannot read binary value: {exc}") from None
            out.append(np.asarray(v) if np.ndim(v) else PRIM[tname](v))    # read-only views: inputs are copied in
            i += size
        else:
            j = data.find(b"b\x02", i)
            chunk = data[i:] if j < 0 else data[i:j]
            try:
                out += parse_values(chunk.decode("utf-8"))
            except (SpecError, UnicodeDecodeError) as exc:
                raise SpecError(f"{what}: {exc}") from None
            if j < 0:
                return out
            i = j


def _cache_dir() -> Path:
    root = Path(os.environ.get("FUTHARK_LAB_CACHE", Path.home() / ".cache" / "futhark-lab"))
    return root / "datasets"


def random_value(item: str) -> Any:
    """One ``random input`` item: ``futhark dataset``'s bytes where futhark exists, NumPy's draw otherwise."""
    text = gen_type_text(item)
    dims, rest = _split_type(text)
    if rest not in PRIM:            # a constant
        return parse_values(text)[0]
    try:
        from ..compiler import find_futhark
        fut = find_futhark()
    except Exception:  # noqa: BLE001 - no futhark: NumPy with futhark's ranges
        fut = None
    if fut is not None:
        key = hashlib.sha256(f"{fut.version_text}\0{text}".encode()).hexdigest()[:16]
        path = _cache_dir() / f"{key}.in"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run([fut.path, "dataset", "-b", "-g", text], capture_output=True, timeout=3600)
            if proc.returncode != 0:
                raise SpecError(f"futhark dataset -g {text} failed: {proc.stderr.decode(errors='replace')}")
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(proc.stdout)
            os.replace(tmp, path)
        (v,) = read_file(path)
        return v
    return numpy_random(dims, rest)


def numpy_random(dims: Sequence[int], t: str, seed: int = 1):
    """futhark dataset's distribution without futhark: integers over the whole type, floats in [0, 1]."""
    rng = np.random.default_rng(seed)
    shape = tuple(dims)
    if t == "bool":
        a = rng.integers(0, 2, size=shape).astype(np.bool_)
    elif t in FLOATS:
        a = rng.random(size=shape, dtype=np.float64 if t == "f64" else np.float32).astype(PRIM[t])
    else:
        info = np.iinfo(PRIM[t])
        a = rng.integers(info.min, info.max, size=shape, dtype=PRIM[t], endpoint=True)
    return a if shape else PRIM[t](a[()])


def load(inp, directory: Path) -> list:
    """The values of a run's input (or expected output) specification."""
    if isinstance(inp, Values):
        return parse_values(inp.text)
    if isinstance(inp, InFile):
        return read_file(directory / inp.path)
    if isinstance(inp, GenValues):
        return [random_value(item) for item in inp.items]
    if isinstance(inp, ScriptValues):
        raise SpecError("script input (a FutharkScript expression) is not supported by futhark-lab bench; "
                        "write the data to a file (futhark script … or futhark_data.dump) and use input @ file")
    raise TypeError(f"unknown input {inp!r}")


# --------------------------------------------------------------------------- comparing results

def compare_values(got: Sequence, expected: Sequence, tolerance: float = TOLERANCE) -> list[str]:
    """Mismatches as futhark test reports them (empty: equal).  Floats: |got − expected| <= max(tol, tol · max
    finite expected) per value (futhark-data's ``compareValues``); NaN equals NaN; infinities of one sign agree."""
    if len(got) != len(expected):
        return [f"Expected {len(expected)} values, got {len(got)}"]
    out = []
    for i, (g, e) in enumerate(zip(got, expected)):
        g, e = np.asarray(g), np.asarray(e)
        if g.shape != e.shape:
            out.append(f"Value #{i}: expected array of shape {list(e.shape)}, got {list(g.shape)}")
            continue
        if g.dtype != e.dtype:
            out.append(f"Value #{i}: expected value of type {NAME.get(e.dtype, e.dtype)}, got "
                       f"{NAME.get(g.dtype, g.dtype)}")
            continue
        if e.dtype.kind == "f":
            finite = e[np.isfinite(e)]
            tol = e.dtype.type(tolerance)
            abstol = max(tol, tol * finite.max()) if finite.size else tol
            with np.errstate(invalid="ignore", over="ignore"):
                ok = (np.isnan(g) & np.isnan(e)) | (np.isinf(g) & np.isinf(e) & (np.sign(g) == np.sign(e))) | \
                     (np.abs(g - e) <= abstol)
        else:
            ok = g == e
        bad = np.argwhere(~np.asarray(ok))
        for idx in bad[:3]:
            where = f" index [{','.join(map(str, idx))}]" if e.ndim else ""
            out.append(f"Value #{i}{where}: expected {_show(e[tuple(idx)])}, got {_show(g[tuple(idx)])}")
        if len(bad) > 3:
            out.append(f"…and {len(bad) - 3} other mismatches in value #{i}")
    return out
