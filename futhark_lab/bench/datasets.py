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

from .spec import GenValues, InFile, ScriptValues, Values
from .textformat import (  # noqa: F401 - re-exported: ds.type_text, ds.value_text, ...
    FLOATS,
    NAME,
    PRIM,
    SpecError,
    _hs_float,
    _prim_text,
    _show,
    _split_type,
    gen_type_text,
    parse_values,
    type_text,
    value_text,
)

TOLERANCE = 0.002        # futhark test's (Futhark.Test.checkResult)


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
        from ..builder.toolchain import find_futhark
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
