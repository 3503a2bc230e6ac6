"""Typed view of the manifest JSON that ``futhark <backend> --library`` writes (docs/manifest.schema.json).

Two shapes exist.  Before futhark 0.26.1 an entry point lists its results in ``outputs``; from 0.26.1 it has a single
``output``, and several results arrive as one opaque tuple (a record with fields "0", "1", ...), which the binding
unpacks with the tuple's project functions.  Both shapes become the same ``EntryPoint`` here, whose
``tuple_output`` says whether the single output is to be unpacked.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

PRIMITIVES: dict[str, tuple[str, np.dtype]] = {
    # futhark type: (C type, NumPy dtype)   -- f16 is uint16_t in C, float16 in NumPy
    "i8": ("int8_t", np.dtype(np.int8)),
    "i16": ("int16_t", np.dtype(np.int16)),
    "i32": ("int32_t", np.dtype(np.int32)),
    "i64": ("int64_t", np.dtype(np.int64)),
    "u8": ("uint8_t", np.dtype(np.uint8)),
    "u16": ("uint16_t", np.dtype(np.uint16)),
    "u32": ("uint32_t", np.dtype(np.uint32)),
    "u64": ("uint64_t", np.dtype(np.uint64)),
    "f16": ("uint16_t", np.dtype(np.float16)),
    "f32": ("float", np.dtype(np.float32)),
    "f64": ("double", np.dtype(np.float64)),
    "bool": ("_Bool", np.dtype(np.bool_)),
}


class ManifestError(ValueError):
    """The manifest does not have a shape this binding understands."""


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    type: str
    unique: bool = False


@dataclasses.dataclass(frozen=True)
class Output:
    type: str
    unique: bool = False


@dataclasses.dataclass(frozen=True)
class EntryPoint:
    name: str
    cfun: str
    inputs: tuple[Param, ...]
    outputs: tuple[Output, ...]          # what the C function writes (one per out-pointer)
    tuple_output: bool = False            # new shape: the one output is an opaque tuple to unpack
    tuning_params: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    doc: str = ""

    def signature(self) -> str:
        ins = " ".join(f"({p.name}: {'*' if p.unique else ''}{p.type})" for p in self.inputs)
        return f"entry {self.name} {ins}".rstrip() + f" : {self.result_text}"

    @property
    def result_text(self) -> str:
        return ", ".join(("*" if o.unique else "") + o.type for o in self.outputs) if len(self.outputs) != 1 \
            else ("*" if self.outputs[0].unique else "") + self.outputs[0].type


@dataclasses.dataclass(frozen=True)
class ArrayType:
    name: str
    ctype: str           # e.g. "struct futhark_f64_1d *"
    rank: int
    elemtype: str
    ops: dict[str, str]

    @property
    def struct(self) -> str:
        return self.ctype.replace("*", "").strip()

    @property
    def dtype(self) -> np.dtype:
        return PRIMITIVES[self.elemtype][1]


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    type: str
    project: str


@dataclasses.dataclass(frozen=True)
class OpaqueType:
    name: str
    ctype: str
    ops: dict[str, str]
    record_new: str | None = None
    fields: tuple[Field, ...] = ()
    kind_detail: str = "opaque"       # "record", "sum", "record_array", "opaque_array" or "opaque"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def struct(self) -> str:
        return self.ctype.replace("*", "").strip()

    @property
    def is_tuple(self) -> bool:
        names = [f.name for f in self.fields]
        return bool(names) and names == [str(i) for i in range(len(names))]


@dataclasses.dataclass(frozen=True)
class Manifest:
    backend: str
    version: str
    entry_points: dict[str, EntryPoint]
    types: dict[str, ArrayType | OpaqueType]
    shape: str  # "outputs" (futhark < 0.26.1) or "output" (>= 0.26.1)

    def type_of(self, name: str) -> ArrayType | OpaqueType | None:
        """None for primitives."""
        if name in PRIMITIVES:
            return None
        try:
            return self.types[name]
        except KeyError:
            raise ManifestError(f"manifest mentions type {name!r} but does not describe it") from None


def load(path: str | Path) -> Manifest:
    return parse(json.loads(Path(path).read_text()))


def parse(data: dict[str, Any]) -> Manifest:
    """Parse a manifest of either shape; raise ManifestError naming what is off."""
    for key in ("backend", "entry_points", "types"):
        if key not in data:
            raise ManifestError(f"manifest lacks required key {key!r}")
    types: dict[str, ArrayType | OpaqueType] = {}
    for tname, t in data["types"].items():
        kind = t.get("kind")
        if kind == "array":
            if t.get("elemtype") not in PRIMITIVES:
                raise ManifestError(f"array type {tname!r} has unknown element type {t.get('elemtype')!r}")
            types[tname] = ArrayType(tname, t["ctype"], int(t["rank"]), t["elemtype"], dict(t.get("ops", {})))
        elif kind == "opaque":
            detail = next((k for k in ("record", "sum", "record_array", "opaque_array") if k in t), "opaque")
            rec = t.get("record") or t.get("record_array") or {}
            fields = tuple(Field(f["name"], f["type"], f["project"]) for f in rec.get("fields", []))
            extra = {k: v for k, v in t.items() if k in ("sum", "record_array", "opaque_array")}
            types[tname] = OpaqueType(tname, t["ctype"], dict(t.get("ops", {})),
                                      (t.get("record") or {}).get("new"), fields, detail, extra)
        else:
            raise ManifestError(f"type {tname!r} has unknown kind {kind!r}")

    shapes = set()
    eps: dict[str, EntryPoint] = {}
    for ename, e in data["entry_points"].items():
        inputs = tuple(Param(i.get("name", f"in{k}"), i["type"], bool(i.get("unique", False)))
                       for k, i in enumerate(e.get("inputs", [])))
        tuple_output = False
        if "outputs" in e:
            shapes.add("outputs")
            outputs = tuple(Output(o["type"], bool(o.get("unique", False))) for o in e["outputs"])
        elif "output" in e:
            shapes.add("output")
            o = e["output"]
            outputs = (Output(o["type"], bool(o.get("unique", False))),)
            t = types.get(o["type"])
            tuple_output = isinstance(t, OpaqueType) and t.kind_detail == "record" and t.is_tuple \
                and _is_anonymous_tuple(o["type"])
        else:
            raise ManifestError(f"entry point {ename!r} has neither 'outputs' nor 'output'")
        for p in inputs:
            if p.type not in PRIMITIVES and p.type not in types:
                raise ManifestError(f"entry point {ename!r} input {p.name!r} has undescribed type {p.type!r}")
        eps[ename] = EntryPoint(ename, e["cfun"], inputs, outputs, tuple_output,
                                tuple(e.get("tuning_params", [])), tuple(e.get("attributes", [])), e.get("doc", ""))
    if len(shapes) > 1:
        raise ManifestError("manifest mixes 'outputs' and 'output' entry points")
    return Manifest(data["backend"], data.get("version", ""), eps, types, shapes.pop() if shapes else "outputs")


def _is_anonymous_tuple(type_name: str) -> bool:
    """A tuple result of an entry point (as opposed to a named record type the user returns on purpose)."""
    return type_name.startswith("(") and type_name.endswith(")")
