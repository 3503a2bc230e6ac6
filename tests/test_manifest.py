"""Manifest handling for both shapes, from hand-written manifests (no compiler needed)."""

from __future__ import annotations

import pytest

from futhark_lab.builder import manifest as mf
from futhark_lab.builder.cdef import generate_cdef

ARRAY = {"kind": "array", "ctype": "struct futhark_f64_1d *", "rank": 1, "elemtype": "f64",
         "ops": {"free": "futhark_free_f64_1d", "shape": "futhark_shape_f64_1d", "values": "futhark_values_f64_1d",
                 "new": "futhark_new_f64_1d"}}

OLD = {  # futhark < 0.26.1: a list of outputs
    "backend": "c", "version": "0.25.8",
    "entry_points": {
        "min_max": {"cfun": "futhark_entry_min_max", "tuning_params": [],
                    "inputs": [{"name": "xs", "type": "[]f64", "unique": False}],
                    "outputs": [{"type": "f64", "unique": False}, {"type": "f64", "unique": False}]},
        "bump": {"cfun": "futhark_entry_bump", "tuning_params": [],
                 "inputs": [{"name": "xs", "type": "[]f64", "unique": True}],
                 "outputs": [{"type": "[]f64", "unique": True}]},
    },
    "types": {"[]f64": ARRAY},
}

TUPLE = {"kind": "opaque", "ctype": "struct futhark_opaque_tup2_f64_f64 *",
         "ops": {"free": "futhark_free_opaque_tup2_f64_f64", "store": "futhark_store_opaque_tup2_f64_f64",
                 "restore": "futhark_restore_opaque_tup2_f64_f64"},
         "record": {"new": "futhark_new_opaque_tup2_f64_f64",
                    "fields": [{"name": "0", "type": "f64", "project": "futhark_project_opaque_tup2_f64_f64_0"},
                               {"name": "1", "type": "f64", "project": "futhark_project_opaque_tup2_f64_f64_1"}]}}

def _renamed(t: dict, old: str, new: str) -> dict:
    import json
    return json.loads(json.dumps(t).replace(old, new))


NEW = {  # futhark >= 0.26.1: one output; tuples are opaque records with fields "0", "1"
    "backend": "cuda", "version": "0.26.1",
    "entry_points": {
        "min_max": {"cfun": "futhark_entry_min_max", "tuning_params": ["x"], "attributes": [], "doc": "lo and hi",
                    "inputs": [{"name": "xs", "type": "[]f64", "unique": False}],
                    "output": {"type": "(f64, f64)", "unique": False}},
        "total": {"cfun": "futhark_entry_total", "tuning_params": [], "attributes": [],
                  "inputs": [{"name": "xs", "type": "[]f64", "unique": False}],
                  "output": {"type": "f64", "unique": False}},
        "pair": {"cfun": "futhark_entry_pair", "tuning_params": [], "attributes": [],
                 "inputs": [], "output": {"type": "pair", "unique": False}},
    },
    "types": {"[]f64": dict(ARRAY, ops=dict(ARRAY["ops"], new_raw="futhark_new_raw_f64_1d",
                                            values_raw="futhark_values_raw_f64_1d")),
              "(f64, f64)": TUPLE, "pair": _renamed(TUPLE, "tup2_f64_f64", "pair")},
}


def test_old_shape_lists_outputs():
    m = mf.parse(OLD)
    assert m.shape == "outputs"
    e = m.entry_points["min_max"]
    assert [o.type for o in e.outputs] == ["f64", "f64"]
    assert not e.tuple_output
    assert m.entry_points["bump"].inputs[0].unique
    assert m.entry_points["bump"].outputs[0].unique
    assert isinstance(m.types["[]f64"], mf.ArrayType) and m.types["[]f64"].dtype.name == "float64"


def test_new_shape_single_output_tuple_is_unpacked():
    m = mf.parse(NEW)
    assert m.shape == "output"
    e = m.entry_points["min_max"]
    assert len(e.outputs) == 1 and e.outputs[0].type == "(f64, f64)"
    assert e.tuple_output, "an anonymous tuple result must be unpacked into a Python tuple"
    assert not m.entry_points["total"].tuple_output
    # a named record type is returned as the opaque value the user asked for, not unpacked
    assert not m.entry_points["pair"].tuple_output
    assert e.doc == "lo and hi" and e.tuning_params == ("x",)
    t = m.types["(f64, f64)"]
    assert t.is_tuple and [f.project for f in t.fields][0].endswith("_0")


def test_cdef_from_both_shapes_declares_every_function():
    old = generate_cdef(mf.parse(OLD), raw_offset=True)
    assert "int futhark_entry_min_max(struct futhark_context *ctx, double *out0, double *out1, " \
           "const struct futhark_f64_1d * in0);" in old
    assert "futhark_new_raw_f64_1d(struct futhark_context *ctx, void *data, int64_t offset, int64_t dim0)" in old
    new = generate_cdef(mf.parse(NEW), raw_offset=False)
    assert "struct futhark_opaque_tup2_f64_f64 * *out0" in new
    assert "int futhark_project_opaque_tup2_f64_f64_1(struct futhark_context *ctx, double *out" in new
    assert "futhark_new_raw_f64_1d(struct futhark_context *ctx, void *data, int64_t dim0)" in new
    import cffi
    for text in (old, new):
        cffi.FFI().cdef(text)  # cffi accepts the declarations


@pytest.mark.parametrize("broken, message", [
    ({"backend": "c", "entry_points": {}}, "types"),
    ({"backend": "c", "types": {}, "entry_points": {"f": {"cfun": "f", "inputs": []}}}, "neither"),
    ({"backend": "c", "types": {}, "entry_points": {"f": {"cfun": "f", "inputs": [{"name": "x", "type": "[]f64"}],
                                                          "outputs": []}}}, "undescribed"),
    ({"backend": "c", "types": {"t": {"kind": "weird", "ctype": "x"}}, "entry_points": {}}, "unknown kind"),
])
def test_malformed_manifests_are_rejected_with_a_reason(broken, message):
    with pytest.raises(mf.ManifestError, match=message):
        mf.parse(broken)
