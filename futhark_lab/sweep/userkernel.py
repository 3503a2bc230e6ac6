"""A ``Kernel`` from a user's own ``.fut`` file, an entry point and its input types in Futhark's syntax
(``futhark-lab run my.fut --entry NAME --inputs "[n]f32 [n]f32"``), where ``n`` stands for the swept size.

Inputs are drawn per point from the sweep's seeded generator with ``futhark dataset``'s distributions where they
are safe to use: floats uniform in [0, 1), booleans uniform; integers are drawn small and non-negative (0 to 99),
not over the whole type as ``futhark dataset`` does, so they can serve as counts and indices without overflowing
or going out of bounds.  A token can also be a constant (``2.5f32``, ``64i32``) or ``n`` itself (the size, i64).
Bytes counted: every input read and every output written once.  Answers are compared with the program's own
answer on futhark's sequential ``c`` backend (there is no independent reference for a user's program, so that row
agrees with itself by construction; every other backend is checked against it).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .kernel import Kernel

PRIMS = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "i8": np.int8, "i16": np.int16, "i32": np.int32,
         "i64": np.int64, "u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "u64": np.uint64, "bool": np.bool_}
#: Integers are drawn from [0, INT_HIGH): small and non-negative, safe as counts and indices.
INT_HIGH = 100

_TOKEN = re.compile(r"^((?:\[[^\[\]]*\])*)([a-z][a-z0-9]*)$")
_CONST = re.compile(r"^(-?[0-9][0-9_]*(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)(f16|f32|f64|i8|i16|i32|i64|u8|u16|u32|u64)$")


class InputSpecError(ValueError):
    """``--inputs`` that cannot be read, or that does not match the entry point."""


@dataclasses.dataclass(frozen=True)
class InputType:
    """One parameter: dimensions (``"n"`` or a number), element type; or a constant; or the size itself."""

    text: str
    dims: tuple[str | int, ...] = ()
    prim: str = "f32"
    const: Any = None            # a constant scalar
    is_size: bool = False        # the token ``n``: the size as i64

    def shape(self, n: int) -> tuple[int, ...]:
        return tuple(n if d == "n" else int(d) for d in self.dims)

    def make(self, n: int, rng: np.random.Generator) -> Any:
        if self.is_size:
            return np.int64(n)
        if self.const is not None:
            return self.const
        shape = self.shape(n)
        t = PRIMS[self.prim]
        if self.prim == "bool":
            a = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif self.prim.startswith("f"):
            a = rng.random(size=shape, dtype=np.float64 if self.prim == "f64" else np.float32).astype(t)
        else:
            a = rng.integers(0, INT_HIGH, size=shape).astype(t)
        return a if shape else t(a[()])

    def nbytes(self, n: int) -> int:
        if self.is_size or self.const is not None:
            return 8 if self.is_size else np.asarray(self.const).nbytes
        return int(np.prod(self.shape(n), dtype=np.float64)) * np.dtype(PRIMS[self.prim]).itemsize

    def futhark_type(self) -> str:
        """How the manifest writes this parameter's type (``[][]f32``; ``i64`` for ``n``)."""
        if self.is_size:
            return "i64"
        if self.const is not None:
            return str(np.asarray(self.const).dtype).replace("float", "f").replace("int", "i") \
                .replace("ui", "u").replace("bool", "bool")
        return "[]" * len(self.dims) + self.prim


def parse_inputs(text: str) -> list[InputType]:
    """``"[n]f32 [n][n]f64 i64 2.5f32 n"`` → one ``InputType`` per parameter (futhark's type syntax)."""
    out = []
    for tok in text.replace(",", " ").split():
        if tok == "n":
            out.append(InputType(tok, is_size=True))
            continue
        m = _CONST.match(tok)
        if m:
            value, prim = m.groups()
            out.append(InputType(tok, (), prim, const=PRIMS[prim](float(value.replace("_", "")) if prim[0] == "f"
                                                                else int(value.replace("_", "")))))
            continue
        m = _TOKEN.match(tok)
        if not m or m.group(2) not in PRIMS:
            raise InputSpecError(
                f"--inputs: cannot read {tok!r}; write each parameter in futhark's type syntax with n for the size, "
                f"e.g. \"[n]f32 [n][n]f64 i32\" (element types: {', '.join(PRIMS)}), a constant such as 2.5f32, or n")
        dims = []
        for d in re.findall(r"\[([^\[\]]*)\]", m.group(1)):
            d = d.strip()
            if d == "n":
                dims.append("n")
            elif d.isdigit():
                dims.append(int(d))
            else:
                raise InputSpecError(f"--inputs: dimension [{d}] in {tok!r}: use n (the swept size) or a number")
        out.append(InputType(tok, tuple(dims), m.group(2)))
    if not out:
        raise InputSpecError("--inputs is empty; give one type per parameter, e.g. \"[n]f32 [n]f32\"")
    return out


def inputs_from_entry(types: Sequence[str]) -> list[InputType]:
    """Default ``--inputs`` from the entry point's parameter types: every dimension is ``n``."""
    out = []
    for t in types:
        t = t.lstrip("*")
        rank = t.count("[]")
        prim = t.replace("[]", "")
        if prim not in PRIMS:
            raise InputSpecError(f"a parameter of type {t} (an opaque or record type) cannot be generated; the "
                                 "sweep needs arrays and scalars of primitive types")
        out.append(InputType("[n]" * rank + prim, ("n",) * rank, prim))
    return out


def check_against_entry(name: str, entry: str, given: Sequence[InputType], params: Sequence[Any]) -> None:
    """``given`` matches the entry point's parameters in number and type, or an error says which does not."""
    want = [(p.name, p.type.lstrip("*")) for p in params]
    sig = " ".join(f"({n}: {t})" for n, t in want)
    if len(given) != len(want):
        raise InputSpecError(f"{name}: entry {entry} takes {len(want)} parameter(s) {sig}, but --inputs gives "
                             f"{len(given)}: {' '.join(g.text for g in given)}")
    for g, (pname, ptype) in zip(given, want):
        if g.futhark_type() != ptype:
            raise InputSpecError(f"{name}: entry {entry}, parameter {pname}: it is {ptype}, but --inputs gives "
                                 f"{g.text} ({g.futhark_type()}); write it as e.g. "
                                 f"{'[n]' * ptype.count('[]') + ptype.replace('[]', '')}")


def user_kernel(path: str | Path, entry: str, inputs: Sequence[InputType], *, reference: Any = None,
                sizes: Sequence[int] | None = None) -> Kernel:
    """A Kernel for ``entry`` of the program at ``path`` with generated ``inputs``.  ``reference``: a callable
    giving the expected answer for one call's inputs (the c backend's answer, see ``c_reference``)."""
    path = Path(path)
    inputs = list(inputs)
    arrays = [t for t in inputs if t.dims]
    dtype = arrays[0].prim if arrays else (inputs[0].prim if inputs else "f32")

    def make(n, _dtype, rng):
        return tuple(t.make(int(n), rng) for t in inputs)

    kw: dict[str, Any] = {"sizes": tuple(sizes)} if sizes else {}
    if not sizes and all(len(t.dims) <= 1 for t in inputs):
        kw["large_sizes"] = (10**8,)  # on a GPU, where memory allows (sweep.devicesizes): where bandwidth shows
    return Kernel(f"{path.stem}.{entry}", path, entry, make_inputs=make, numpy=reference, dtypes=(dtype,),
                  description=f"{entry}({' '.join(t.text for t in inputs)}) from {path.name}; inputs: floats in "
                              f"[0, 1), integers in [0, {INT_HIGH}); answers compared with futhark's c backend",
                  **kw)


class CReference:
    """The expected answer of a call: the program itself on futhark's sequential c backend, as host values.
    Compiled on first use where it runs (so it travels to a Dask worker as a path and an entry name)."""

    def __init__(self, path: str | Path, entry: str, module: Any = None):
        self.path, self.entry, self._module = str(path), entry, module

    def __getstate__(self):
        return {"path": self.path, "entry": self.entry, "_module": None}

    def __call__(self, *args):
        from .impl import _host
        if self._module is None:
            from ..runtime.loader import compile as fcompile
            self._module = fcompile(Path(self.path), "c")
        return _host(self._module.entry_points[self.entry](*args))


def c_reference(module: Any, entry: str, path: str | Path | None = None) -> CReference:
    """``CReference`` of an already compiled c module (``path``: its source, for a worker that compiles again)."""
    src = path if path is not None else getattr(getattr(module, "_lab_program", None), "source", "")
    return CReference(src, entry, module)


def input_bytes(inputs: Sequence[InputType], n: int) -> int:
    return sum(t.nbytes(n) for t in inputs)
