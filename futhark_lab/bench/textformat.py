"""Futhark's textual value format, read and printed as futhark does (futhark-data-haskell's ``Futhark.Data.Parser``
and ``valueText``): the values inside ``input { … }`` blocks and text data files, and the names futhark gives
datasets.  A leaf of the bench subpackage (spec and datasets both use it)."""

from __future__ import annotations

import re

import numpy as np


class SpecError(ValueError):
    """A ``-- ==`` block or data futhark itself would reject (or futhark-lab cannot read), saying where."""


PRIM = {"i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64, "u8": np.uint8, "u16": np.uint16,
        "u32": np.uint32, "u64": np.uint64, "f16": np.float16, "f32": np.float32, "f64": np.float64,
        "bool": np.bool_}
NAME = {np.dtype(v): k for k, v in PRIM.items()}
INTS = ("i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64")
FLOATS = ("f16", "f32", "f64")


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
