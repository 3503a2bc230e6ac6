"""C declarations of a built program, generated from the manifest alone (no header parsing), for cffi.

Also the per-entry call helpers compiled into the API-mode extension (``fastcall``): one C function per entry point
that calls it and, where the backend needs it, ``futhark_context_sync``, so a synchronised call is one crossing from
Python into C (one GIL release) instead of two.
"""

from __future__ import annotations

from .manifest import PRIMITIVES, ArrayType, Manifest

_CONTEXT_API = """
struct futhark_context_config;
struct futhark_context;
struct futhark_context_config *futhark_context_config_new(void);
void futhark_context_config_free(struct futhark_context_config *cfg);
void futhark_context_config_set_debugging(struct futhark_context_config *cfg, int flag);
void futhark_context_config_set_profiling(struct futhark_context_config *cfg, int flag);
void futhark_context_config_set_logging(struct futhark_context_config *cfg, int flag);
int futhark_context_config_set_tuning_param(struct futhark_context_config *cfg, const char *name, size_t value);
void futhark_context_config_set_cache_file(struct futhark_context_config *cfg, const char *fname);
void futhark_context_config_set_device(struct futhark_context_config *cfg, const char *s);
void futhark_context_config_set_platform(struct futhark_context_config *cfg, const char *s);
void futhark_context_config_set_unified_memory(struct futhark_context_config *cfg, int flag);
void futhark_context_config_set_num_threads(struct futhark_context_config *cfg, int n);
void futhark_context_config_add_build_option(struct futhark_context_config *cfg, const char *opt);
void futhark_context_config_set_default_group_size(struct futhark_context_config *cfg, int size);
void futhark_context_config_set_default_num_groups(struct futhark_context_config *cfg, int num);
struct futhark_context *futhark_context_new(struct futhark_context_config *cfg);
void futhark_context_free(struct futhark_context *ctx);
int futhark_context_sync(struct futhark_context *ctx);
char *futhark_context_get_error(struct futhark_context *ctx);
char *futhark_context_report(struct futhark_context *ctx);
int futhark_context_clear_caches(struct futhark_context *ctx);
void futhark_context_pause_profiling(struct futhark_context *ctx);
void futhark_context_unpause_profiling(struct futhark_context *ctx);
int futhark_get_tuning_param_count(void);
const char *futhark_get_tuning_param_name(int i);
const char *futhark_get_tuning_param_class(int i);
"""


def _ctype(m: Manifest, tname: str) -> str:
    if tname in PRIMITIVES:
        return PRIMITIVES[tname][0]
    return m.types[tname].ctype


def generate_cdef(m: Manifest, raw_offset: bool) -> str:
    """C declarations for cffi, from the manifest alone (and the documented per-type API shapes)."""
    out = [_CONTEXT_API]
    ctx = "struct futhark_context *ctx"
    for t in m.types.values():
        out.append(f"{t.struct};")
    for t in m.types.values():
        ops = t.ops
        if isinstance(t, ArrayType):
            el = PRIMITIVES[t.elemtype][0]
            dims = ", ".join(f"int64_t dim{i}" for i in range(t.rank))
            out.append(f"{t.ctype} {ops['new']}({ctx}, const {el} *data, {dims});")
            out.append(f"int {ops['free']}({ctx}, {t.ctype} arr);")
            out.append(f"int {ops['values']}({ctx}, {t.ctype} arr, {el} *data);")
            out.append(f"const int64_t *{ops['shape']}({ctx}, {t.ctype} arr);")
            new_raw, values_raw = raw_names(t)
            off = "int64_t offset, " if raw_offset else ""
            out.append(f"{t.ctype} {new_raw}({ctx}, void *data, {off}{dims});")
            out.append(f"void *{values_raw}({ctx}, {t.ctype} arr);")
            if "index" in ops:
                idx = ", ".join(f"int64_t i{i}" for i in range(t.rank))
                out.append(f"int {ops['index']}({ctx}, {el} *out, {t.ctype} arr, {idx});")
        else:
            out.append(f"int {ops['free']}({ctx}, {t.ctype} obj);")
            if "store" in ops:
                out.append(f"int {ops['store']}({ctx}, const {t.ctype} obj, void **p, size_t *n);")
            if "restore" in ops:
                out.append(f"{t.ctype} {ops['restore']}({ctx}, const void *p);")
            if t.kind_detail == "record":
                for f in t.fields:
                    out.append(f"int {f.project}({ctx}, {_ctype(m, f.type)} *out, const {t.ctype} obj);")
                if t.record_new:
                    # the documented order of new's parameters is the manifest's field order
                    params = ", ".join(
                        (f"const {_ctype(m, f.type)} f{i}" if f.type not in PRIMITIVES else
                         f"{_ctype(m, f.type)} f{i}") for i, f in enumerate(t.fields))
                    out.append(f"int {t.record_new}({ctx}, {t.ctype} *out, {params});")
    for e in m.entry_points.values():
        outs = [f"{_ctype(m, o.type)} *out{i}" for i, o in enumerate(e.outputs)]
        ins = [(f"const {_ctype(m, p.type)} in{i}" if p.type not in PRIMITIVES else f"{_ctype(m, p.type)} in{i}")
               for i, p in enumerate(e.inputs)]
        out.append(f"int {e.cfun}({', '.join([ctx] + outs + ins)});")
    return "\n".join(dict.fromkeys(out))  # distinct types never share functions; drop exact repeats anyway


def raw_names(t: ArrayType) -> tuple[str, str]:
    """Names of the raw-pointer functions: from the manifest (>= 0.25.14) or by futhark's naming rule (older)."""
    new_raw = t.ops.get("new_raw") or t.ops["new"].replace("futhark_new_", "futhark_new_raw_", 1)
    values_raw = t.ops.get("values_raw") or t.ops["values"].replace("futhark_values_", "futhark_values_raw_", 1)
    return new_raw, values_raw


#: Return code a call helper adds to futhark_context_sync's code when the entry point itself succeeded.
SYNC_FAILED = 1 << 16


def helper_name(cfun: str) -> str:
    return f"futhark_lab_call_{cfun}"


def _entry_params(m: Manifest, e) -> tuple[list[str], list[str]]:
    outs = [f"{_ctype(m, o.type)} *out{i}" for i, o in enumerate(e.outputs)]
    ins = [(f"const {_ctype(m, p.type)} in{i}" if p.type not in PRIMITIVES else f"{_ctype(m, p.type)} in{i}")
           for i, p in enumerate(e.inputs)]
    return outs, ins


def call_helpers(m: Manifest) -> tuple[str, str]:
    """(declarations, C definitions) of one call helper per entry point, compiled into the library itself (so the
    ABI-mode binding has them too; ``compiler`` appends them to futhark's C and their prototypes to its header):
    ``int futhark_lab_call_<cfun>(ctx, int sync, outs..., ins...)`` = the entry point, then (if ``sync`` and the
    call succeeded) ``futhark_context_sync``; a failed sync returns its code plus SYNC_FAILED.  Each helper also
    times itself on CLOCK_MONOTONIC, as futhark's server times a `call` (entry point + sync, nothing of Python's):
    ``futhark_lab_last_ns()`` reads the calling thread's last duration."""
    decls, defs = [], []
    for e in m.entry_points.values():
        outs, ins = _entry_params(m, e)
        params = ", ".join(["struct futhark_context *ctx", "int sync"] + outs + ins)
        args = ", ".join(["ctx"] + [f"out{i}" for i in range(len(outs))] + [f"in{i}" for i in range(len(ins))])
        decls.append(f"int {helper_name(e.cfun)}({params});")
        defs.append(f"int {helper_name(e.cfun)}({params}) {{\n"
                    f"  int64_t t0 = futhark_lab_now();\n"
                    f"  int r = {e.cfun}({args});\n"
                    f"  if (r == 0 && sync) {{ r = futhark_context_sync(ctx); if (r != 0) r += {SYNC_FAILED}; }}\n"
                    f"  futhark_lab_ns = futhark_lab_now() - t0;\n"
                    f"  return r;\n}}")
    # single-output entry points: the result comes back as the return value (no output slot to share between
    # threads, so no lock on the hot path); on failure a sentinel is returned and the code is kept per thread
    defs.insert(0, "#include <math.h>\n#include <stdint.h>\n#include <time.h>\n"
                   "static __thread int futhark_lab_code;\nstatic __thread int64_t futhark_lab_ns;\n"
                   "int futhark_lab_last_code(void) { return futhark_lab_code; }\n"
                   "int64_t futhark_lab_last_ns(void) { return futhark_lab_ns; }\n"
                   "static inline int64_t futhark_lab_now(void) {\n"
                   "  struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);\n"
                   "  return (int64_t) t.tv_sec * 1000000000 + t.tv_nsec;\n}")
    decls.insert(0, "int futhark_lab_last_code(void);\nint64_t futhark_lab_last_ns(void);")
    for e in m.entry_points.values():
        if len(e.outputs) != 1:
            continue
        outs, ins = _entry_params(m, e)
        rtype = _ctype(m, e.outputs[0].type)
        params = ", ".join(["struct futhark_context *ctx", "int sync"] + ins)
        args = ", ".join(["ctx", "&out"] + [f"in{i}" for i in range(len(ins))])
        decls.append(f"{rtype} {value_helper_name(e.cfun)}({params});")
        defs.append(f"{rtype} {value_helper_name(e.cfun)}({params}) {{\n"
                    f"  {rtype} out;\n"
                    f"  int64_t t0 = futhark_lab_now();\n"
                    f"  int r = {e.cfun}({args});\n"
                    f"  if (r == 0 && sync) {{ r = futhark_context_sync(ctx); if (r != 0) r += {SYNC_FAILED}; }}\n"
                    f"  futhark_lab_ns = futhark_lab_now() - t0;\n"
                    f"  futhark_lab_code = r;\n"
                    f"  return r == 0 ? out : ({rtype}) {sentinel_c(e.outputs[0].type)};\n}}")
    return "\n".join(decls), "\n".join(defs)


def value_helper_name(cfun: str) -> str:
    return f"futhark_lab_value_{cfun}"


_SENTINELS = {"i8": ("INT8_MIN", -2**7), "i16": ("INT16_MIN", -2**15), "i32": ("INT32_MIN", -2**31),
              "i64": ("INT64_MIN", -2**63), "u8": ("UINT8_MAX", 2**8 - 1), "u16": ("UINT16_MAX", 2**16 - 1),
              "u32": ("UINT32_MAX", 2**32 - 1), "u64": ("UINT64_MAX", 2**64 - 1), "f16": ("0xFFFF", 0xFFFF),
              "bool": ("0", False)}


def sentinel_c(tname: str) -> str:
    """What a value helper returns on failure: NaN for floats, NULL for values, an extreme value otherwise (a
    legitimate result equal to it only costs a call to futhark_lab_last_code)."""
    if tname in ("f32", "f64"):
        return "NAN"
    if tname in _SENTINELS:
        return _SENTINELS[tname][0]
    return "NULL"


def sentinel_py(tname: str):
    """The Python value of ``sentinel_c`` (None: NaN or NULL, tested otherwise)."""
    return _SENTINELS[tname][1] if tname in _SENTINELS else None
