"""``EntryFunction``: a callable entry point (lossless input conversion, unique parameters, sync before results are
read), and the per-entry-point specialised ``__call__`` that keeps futhark-lab's own cost under a microsecond.
"""

from __future__ import annotations

import inspect
import keyword
import re
from typing import Any, Callable

import numpy as np

from ..builder import manifest as mf
from ..builder.cdef import (
    SYNC_FAILED,
    _ctype,
    helper_name,
    raw_names,
    sentinel_py,
    value_helper_name,
)
from ..builder.manifest import PRIMITIVES, ArrayType, EntryPoint, OpaqueType
from . import aliases, dlpack, guards
from .library import _symbol
from .values import (
    FutharkArray,
    FutharkOpaque,
    FutharkValue,
    as_host_array,
    scalar_converter,
)

# --------------------------------------------------------------------------- entry points

class EntryFunction:
    """A callable entry point.  Arguments: NumPy arrays / scalars, or values of this module (no copy)."""

    def __init__(self, module: Any, entry: EntryPoint):  # module: the FutharkModule that owns it
        self._module = module
        self.entry = entry
        self.__name__ = entry.name
        self.__qualname__ = entry.name
        m = module.manifest
        self._ctypes_out = [_ctype(m, o.type) + " *" for o in entry.outputs]
        self._cfun = getattr(module.context.lib, entry.cfun)
        # the C API documents futhark_context_sync as a no-op returning 0 on the sequential c backend
        self._sync = None if module.backend == "c" else module.context.lib.futhark_context_sync
        # API mode: one C call does entry point + sync (cdef.call_helpers); output slots made once, used under the
        # context's lock, so a call allocates nothing but its result
        self._helper = _symbol(module.context.lib, helper_name(entry.cfun))  # None: a build without helpers
        self._sync_flag = 0 if self._sync is None else 1
        self._last_ns = _symbol(module.context.lib, "futhark_lab_last_ns") if self._helper is not None else None
        self._outs = [module.context.ffi.new(ct) for ct in self._ctypes_out]
        self._nargs = len(entry.inputs)
        self._wraps = [self._wrapper(o.type) for o in entry.outputs]
        self._single = len(entry.outputs) == 1 and not entry.tuple_output
        self._context = module.context
        self._convs = [self._converter(p) for p in entry.inputs]
        self._unique = [i for i, p in enumerate(entry.inputs) if p.unique]
        self._names = [p.name for p in entry.inputs]
        # alias bookkeeping (runtime.aliases): nonunique non-primitive outputs alias nonconsuming non-primitive inputs
        # futhark >= 0.26.1 returns a tuple as one opaque output, marked unique when any component is (0.27.1:
        # `([]f64, *[]f64)` is "unique"), so a tuple output is taken to alias the inputs whatever the mark says
        self._alias_out = [k for k, o in enumerate(entry.outputs)
                           if (not o.unique or entry.tuple_output) and o.type not in PRIMITIVES]
        self._alias_in = [j for j, p in enumerate(entry.inputs) if not p.unique and p.type not in PRIMITIVES]
        self._consuming_calls = 0
        self.__doc__ = self._docstring()
        # by name too where every name is a Python one (Futhark allows xs'); otherwise by position only
        valid = [p.name.isidentifier() and not keyword.iskeyword(p.name) for p in entry.inputs]
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if all(valid) else inspect.Parameter.POSITIONAL_ONLY
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(p.name if ok else f"in{i}", kind) for i, (p, ok) in enumerate(zip(entry.inputs, valid))])
        if self._single and not self._unique:
            self.__class__ = _specialised(self)

    def _free_temps(self, temps: list, handle: Any) -> None:
        """Free a call's temporary inputs with the handle it used: the context outlives the call (the generic path
        holds the lock; a fast call is in flight), unless a sticky error retired it."""
        ctx = self._context
        for t in temps:
            if type(t) is tuple:
                if not ctx._retired:
                    t[0](handle, t[1])
            else:
                t.free()

    def _failure(self, code: int, handle: Any = None) -> Exception:
        if code >= SYNC_FAILED:
            return self._context.error(code - SYNC_FAILED, f"synchronising after entry point {self.entry.name}",
                                       handle)
        return self._context.error(code, f"entry point {self.entry.name}", handle)

    def _wrapper(self, tname: str) -> Callable[[Any], Any]:
        """Result conversion decided once per output: NumPy scalar type, f16 bits, or a device value.  Array
        results get their shape checked (futhark does not check sizes such as ``replicate n`` with n < 0)."""
        ctx = self._module.context
        if tname in PRIMITIVES:
            if tname == "f16":
                return lambda c: np.uint16(c).view(np.float16)
            return PRIMITIVES[tname][1].type
        t = self._module.manifest.types[tname]
        if not isinstance(t, ArrayType):
            return lambda c: ctx.wrap(tname, c)
        shape_fn, rank, itemsize = getattr(ctx.lib, t.ops["shape"]), t.rank, t.dtype.itemsize
        limit = (2**63 - 1) // itemsize
        what = f"entry point {self.entry.name}"

        def wrap_array(c, handle=None):
            arr = FutharkArray(ctx, c, t)
            p = shape_fn(ctx.handle if handle is None else handle, c)
            try:
                if rank == 1:
                    if not 0 <= p[0] <= limit:
                        guards.check_shape(what, (p[0],), itemsize)
                else:
                    guards.check_shape(what, tuple(p[0:rank]), itemsize)
            except BaseException:
                arr.free()  # a refused result is freed now, not whenever the garbage collector gets to it
                raise
            return arr
        return wrap_array

    def _wrap_all(self, outs: list) -> list:
        """Every output wrapped; if one is refused (an impossible shape), all of them are freed before raising."""
        results: list = []
        try:
            for w, out in zip(self._wraps, outs):
                results.append(w(out[0]))
        except BaseException:
            ctx = self._context
            for r in results:
                if isinstance(r, FutharkValue):
                    r.free()
            for o, out in list(zip(self.entry.outputs, outs))[len(results) + 1:]:
                if o.type not in PRIMITIVES:
                    v = ctx.wrap(o.type, out[0])
                    v.free()
            raise
        return results

    def _docstring(self) -> str:
        e = self.entry
        lines = [e.signature(), ""]
        doc = e.doc or self._module.build.docs.get(e.name, "")
        if doc:
            lines += [doc.strip(), ""]
        lines.append(f"Backend: {self._module.backend}.  Arrays come back as FutharkArray (device-resident; "
                     ".numpy() copies to the host).")
        return "\n".join(lines)

    def _converter(self, p: mf.Param) -> Callable[[Any, list], Any]:
        ename = self.entry.name
        module = self._module
        if p.type in PRIMITIVES:
            conv = scalar_converter(ename, p.name, p.type)
            return lambda v, temps: conv(v)
        t = module.manifest.types[p.type]
        ctx = module.context

        if isinstance(t, OpaqueType):
            def conv_opaque(v, temps):
                if isinstance(v, FutharkOpaque) and v._type is t:
                    if v._ctx is not ctx:
                        raise ValueError(f"{ename}(): parameter {p.name!r}: value belongs to another module/context")
                    return v._handle()
                raise TypeError(f"{ename}(): parameter {p.name!r} expects an opaque {p.type} value made by this "
                                f"module, got {type(v).__name__}")
            return conv_opaque

        backend = module.backend
        ffi, lib = ctx.ffi, ctx.lib
        new_fn, free_fn = getattr(lib, t.ops["new"]), getattr(lib, t.ops["free"])
        buf_type = PRIMITIVES[t.elemtype][0] + "[]"
        dtype, rank, null = t.dtype, t.rank, ffi.NULL
        # host backends take a NumPy array's memory as it is (a raw array, docs/dlpack.md); a consuming parameter
        # never does: Futhark would update the caller's array in place (runtime.aliases)
        share = backend in dlpack.HOST_BACKENDS and ctx.has_raw and ctx.raw_aliases and not p.unique
        raw_fn = getattr(lib, raw_names(t)[0]) if share else None
        # DLPack producers: on the host backends, and on cuda where futhark can wrap device memory (older versions
        # keep the __cuda_array_interface__ path, which copies on the device)
        take_dlpack = share or (backend == "cuda" and ctx.has_raw and ctx.raw_aliases)
        where = f"{ename}(): parameter {p.name!r}"

        def wrapped(arr, temps):
            """Another library's memory taken in: never consumed in place (runtime.aliases), a copy is."""
            if p.unique and arr._keepalive is not None:
                host = arr.numpy()
                arr.free()
                arr = ctx.new_array(t, host)
                ctx.sync()
                ctx.consume_copies += 1
            temps.append(arr)
            return arr._ptr

        def conv_array(v, temps):
            if type(v) is FutharkArray and v._ctx is ctx and v._type is t and v._ptr is not None \
                    and not v._consumed:
                return v._ptr  # resident input: the hot path of a timing loop, checked first
            if type(v) is np.ndarray and (v.dtype is dtype or v.dtype == dtype) and v.ndim == rank \
                    and v.flags.c_contiguous:
                host = v  # the common case, checked first and cheaply
                if share and not v.flags.aligned:
                    dlpack.warn_copy(f"{where}: the NumPy array was copied, not shared: it is not aligned to its "
                                     f"{v.dtype.itemsize}-byte elements")
                elif share:
                    handle = ctx.handle
                    if handle is None:
                        raise ctx.closed_error(f"{ename}()")
                    ptr = raw_fn(handle, ffi.from_buffer("char[]", v), *v.shape)
                    if ptr == null:
                        raise ctx.error(1, f"{where}: wrapping an array of shape {v.shape}")
                    temps.append((free_fn, ptr, v, True))   # True: the result may alias v (_keeps)
                    return ptr
            elif isinstance(v, FutharkArray):
                if v._ctx is not ctx:
                    if v._ctx.backend == ctx.backend and v._type.name == t.name:
                        raise ValueError(f"{ename}(): parameter {p.name!r}: this array belongs to another module's "
                                         "context; pass .numpy() to copy it")
                    raise ValueError(f"{ename}(): parameter {p.name!r}: array of another context "
                                     f"({v._ctx.backend}); pass .numpy() to copy it")
                if v._type is not t:
                    raise TypeError(f"{ename}(): parameter {p.name!r} expects {t.name}, got a Futhark {v._type.name}")
                return v._handle()
            elif take_dlpack and dlpack.is_producer(v):
                return wrapped(module.from_dlpack(v, t, ename, p.name), temps)
            elif dlpack.is_producer(v) and not (backend == "cuda" and hasattr(v, "__cuda_array_interface__")):
                # a producer whose memory is not taken as it is (a consuming parameter, a backend that cannot share):
                # its values through DLPack (PyTorch's lazy negation applied), copied in below
                host = as_host_array(ename, p.name, t, dlpack.named(ename, p.name, v, lambda: dlpack.host_view(v)))
            elif backend == "cuda" and hasattr(v, "__cuda_array_interface__") and not isinstance(v, np.ndarray):
                return wrapped(module.from_device(v, t, param=p.name), temps)
            else:
                if share and type(v) is np.ndarray and v.dtype == dtype and v.ndim == rank:
                    dlpack.warn_copy(f"{where}: the NumPy array was copied, not shared: it is not "
                                     f"{'C-contiguous' if not v.flags.c_contiguous else 'aligned'}")
                host = as_host_array(ename, p.name, t, v)
            # a temporary Futhark array, freed right after the call; the host buffer stays referenced until then
            handle = ctx.handle
            if handle is None:   # closed by another thread since the call began
                raise ctx.closed_error(f"{ename}()")
            ptr = new_fn(handle, ffi.from_buffer(buf_type, host), *host.shape)
            if ptr == null:
                raise ctx.error(1, f"{ename}(): copying parameter {p.name!r} of shape {host.shape} in")
            temps.append((free_fn, ptr, host))
            return ptr
        return conv_array

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            args = guards.bind_keywords(self.entry.name, self._names, args, kwargs)
        if len(args) != self._nargs:
            e = self.entry
            raise TypeError(f"{e.name}() takes {self._nargs} argument(s) "
                            f"({', '.join(p.name for p in e.inputs)}), {len(args)} given")
        return self._invoke(args, self._sync_flag)

    def _call_with_gaps(self, values: tuple) -> Any:
        """The fast path's fallback when a parameter was not given: those before the first gap go by position, the
        rest by name, so the generic path's error says what is missing."""
        k = next(i for i, v in enumerate(values) if v is _MISSING)
        kw = {self._names[i]: v for i, v in enumerate(values) if i > k and v is not _MISSING}
        return EntryFunction.__call__(self, *values[:k], **kw)

    def last_runtime_s(self) -> float | None:
        """How long this thread's last call of an entry point of this module took inside C: entry point +
        synchronisation on CLOCK_MONOTONIC, as futhark's server times a `call` for futhark bench (the binding's
        Python work is outside it).  None for a library built without futhark-lab's call helpers."""
        last = self._last_ns
        return None if last is None else last() * 1e-9

    def call_async(self, *args: Any) -> Any:
        """Call without the final synchronisation (GPU backends): the work may still run when this returns.
        For timing k back-to-back launches with one ``module.sync()``; read results only after that sync, and pass
        only device-resident arrays (a NumPy input's temporary copy is freed when the call returns)."""
        if len(args) != self._nargs:
            raise TypeError(f"{self.entry.name}() takes {self._nargs} argument(s), {len(args)} given")
        return self._invoke(args, 0)

    def _consume_copies(self, args: tuple, temps: list) -> tuple:
        """The arguments with a copy in place of each value passed to a consuming parameter whose memory another
        live value or library may see (runtime.aliases): the copy is consumed (and freed after the call), the
        aliases keep their values."""
        ctx = self._context
        out = None
        for i in self._unique:
            v = args[i]
            if not isinstance(v, FutharkValue) or v._ctx is not ctx or v._alias is None:
                continue
            why = aliases.copy_reason(v)
            if why is None:
                continue
            v._handle()   # a consumed, freed or closed value raises its own error, not a copy's
            if isinstance(v, FutharkArray):
                host = v.numpy()
                c = ctx.new_array(v._type, host)
                ctx.sync()   # the copy from `host` is asynchronous on GPUs
            elif "store" in v._type.ops and "restore" in v._type.ops:
                c = ctx.restore(v._type.name, ctx.store(v))
            else:
                raise ValueError(f"{self.entry.name}(): parameter {self._names[i]!r} would consume this "
                                 f"{v._type.name} in place, but {why}, and the type has no store/restore to copy it "
                                 "with; pass a value nothing else refers to")
            ctx.consume_copies += 1
            temps.append(c)
            if out is None:
                out = list(args)
            out[i] = c
        return args if out is None else tuple(out)

    def _alias_results(self, results: list, args: tuple, keeps: list | None) -> None:
        """Nonunique results alias the call's nonconsuming inputs (runtime.aliases), and another library's memory
        that such an input wrapped (a CUDA tensor passed directly)."""
        ctx = self._context
        outs = [results[k] for k in self._alias_out if isinstance(results[k], FutharkValue)]
        if not outs:
            return
        sources = [args[j] for j in self._alias_in
                   if isinstance(args[j], FutharkValue) and args[j]._ctx is ctx and args[j]._ptr is not None]
        shared, read_only = None, False
        held = list(keeps) if keeps else []
        if keeps:
            shared = f"it may share memory with the {type(keeps[-1]).__name__} passed to {self.entry.name}()"
            read_only = _read_only(keeps)
        # a resident input may itself alias another library's memory (a result of an earlier call, a field): the
        # result keeps that alive too, whatever happens to the input
        for s in sources:
            k = s._keepalive
            if k is not None and not any(k is h for h in held):
                held.append(k)
        if held:
            keep = held[0] if len(held) == 1 else tuple(held)
            for o in outs:
                o._keepalive = keep   # the other library's memory stays alive while a result may use it
        aliases.alias_outputs(outs, sources, shared, read_only)

    def _invoke(self, args: tuple, sync: int) -> Any:
        ctx = self._context
        temps: list = []
        if self._unique:
            guards.check_unique_aliasing(self.entry.name, self._names, self._unique, args)
            original = args
            args = self._consume_copies(args, temps)
        with ctx._lock:  # held from conversion to results: close() on another thread waits for this call
            handle = ctx.handle
            if handle is None:
                raise ctx.closed_error(f"{self.entry.name}()")
            try:
                cargs = [conv(a, temps) for conv, a in zip(self._convs, args)]
                outs = self._outs  # made once; used only under the lock
                if self._helper is not None:
                    code = self._helper(handle, sync, *outs, *cargs)
                else:
                    code = self._cfun(handle, *outs, *cargs)
                    if code == 0 and sync:
                        code = self._sync(handle)
                        code = code + SYNC_FAILED if code else 0
                if self._unique:
                    self._consuming_calls += 1
                    for i in self._unique:
                        for v in (original[i], args[i]):
                            if isinstance(v, FutharkValue):
                                v._usable = None
                                v._consumed = (f"entry point {self.entry.name}, parameter {self._names[i]!r} (call "
                                               f"#{self._consuming_calls} of {self.entry.name} in this module)")
                                if v._alias is not None:
                                    aliases.leave(v)
                if code != 0:
                    raise self._failure(code)
                keeps = _keeps(temps)
            finally:
                if temps:
                    self._free_temps(temps, handle)
            if self._single:
                r = self._wraps[0](outs[0][0])
                if self._alias_out:
                    self._alias_results([r], args, keeps)
                return r
            results = self._wrap_all(outs)
            if self._alias_out:
                self._alias_results(results, args, keeps)
        if self.entry.tuple_output:
            tup = results[0]
            try:
                return tup.unpack()
            finally:
                tup.free()
        return tuple(results)

    def __repr__(self) -> str:
        return f"<futhark entry point {self.entry.signature()} [{self._module.backend}]>"


_MISSING = object()


def _keeps(temps: list) -> list:
    """What a call's results may alias besides Futhark memory: the other library's memory that a temporary input
    wraps (a CUDA tensor, a DLPack producer's or a NumPy array's memory on the host backends)."""
    out = []
    for t in temps:
        if type(t) is FutharkArray:
            if t._keepalive is not None:
                out.append(t._keepalive)
        elif type(t) is tuple and len(t) == 4:
            out.append(t[2])
    return out


def _read_only(keeps: list) -> bool:
    """Whether any of a call's wrapped inputs is memory its owner lets no one write (a read-only NumPy array, a
    DLPack capsule flagged read-only): results that may alias it are exported read-only."""
    return any((type(k) is np.ndarray and not k.flags.writeable) or getattr(k, "read_only", False) for k in keeps)


def _alias_lines(fn: EntryFunction, arrays: list[int], wrap: str) -> list[str]:
    """The fast path's return: a nonunique result of array inputs joins their alias group (runtime.aliases).  With
    one array input, all resident, that is inline: take the input's group (made on first use) and count one more
    member; otherwise the generic helper."""
    if not fn._alias_out or not arrays:
        return [f"            return {wrap}"]
    given = ", ".join(f"a{i}" for i in range(fn._nargs)) + ("," if fn._nargs else "")
    keeps = "KEEPS(temps) if temps else None"
    slow = [f"            r = {wrap}",
            f"            self._alias_results([r], ({given}), {keeps})",
            "            return r"]
    if len(arrays) != 1:
        return slow
    a = f"a{arrays[0]}"
    return [f"            r = {wrap}",
            "            if temps is None:   # the input is resident: share its group",
            f"                g = {a}._alias",
            "                if g is None:",
            f"                    g = {a}._alias = GROUP()",
            "                elif g.parent is not None:",
            f"                    g = {a}._alias = g.root()",
            "                r._alias = g",
            "                g.live += 1",
            f"                if {a}._keepalive is not None:   # another library's memory the input may alias",
            f"                    r._keepalive = {a}._keepalive",
            "                return r",
            f"            self._alias_results([r], ({given}), {keeps})",
            "            return r"]


def _specialised(fn: EntryFunction) -> type:
    """A subclass of EntryFunction whose ``__call__`` is written for this entry point's parameters (one output, no
    unique parameters): a resident array is passed as is, anything else converted inline (a NumPy array copied in
    as a temporary, freed after the call), and entry point + sync are one C call (the library's value helper
    returns the result itself, so no output slot is shared).  No lock: the call is registered in the context's
    ``_inflight`` list instead, so a free or close() on another thread waits in the queue rather than pulling memory
    from under it (Context._free_value).  A closed context goes to the generic path, which raises.  This keeps
    futhark-lab's per-call cost within a fraction of a microsecond of calling the C library directly
    (benchmarks/call_overhead.py)."""
    n = fn._nargs
    names = [f"a{i}" for i in range(n)]
    ctx = fn._context
    ns: dict[str, Any] = {"EntryFunction": EntryFunction, "FA": FutharkArray, "CTX": ctx, "WRAP0": fn._wraps[0],
                          "SYNC": fn._sync_flag, "ENTER": ctx._inflight.append, "LEAVE": ctx._inflight.pop,
                          "INFLIGHT": ctx._inflight, "DEFERRED": ctx._deferred}
    # parameters with a sentinel default, named as in Futhark where that is safe: no argument tuple to build, and
    # f(xs=a) works at no cost; a wrong number of arguments goes to the generic path, whose errors name the entry
    # point and its parameters (Python's own, for an unknown name, name it through __qualname__)
    ns["MISSING"] = _MISSING
    ns["GROUP"] = aliases.AliasGroup
    ns["KEEPS"] = _keeps
    futhark_names = [p.name for p in fn.entry.inputs]
    reserved = set(ns) | {"self", "rest", "temps", "handle", "r", "g", "code", "args", "kwargs", "VHELPER", "LAST",
                          "NULL", "SENT"}
    safe = all(x.isidentifier() and not keyword.iskeyword(x) and x not in reserved
               and not re.fullmatch(r"(a|c|K|CONV)\d+", x) for x in futhark_names)
    pnames = futhark_names if safe else names
    params = "".join(f"{a}=MISSING, " for a in pnames)
    missing = " or ".join(f"{a} is MISSING" for a in pnames) or "False"
    given = ", ".join(pnames) + ("," if n else "")
    lines = [f"def __call__(self, {params}*rest{'' if safe else ', **kw'}):",
             "    if rest:",
             f"        return EntryFunction.__call__(self, {given} *rest)"]
    if not safe:   # names Python cannot take as parameters here: by name through the generic path
        lines += ["    if kw:",
                  f"        return EntryFunction.__call__(self, *(x for x in ({given}) if x is not MISSING), **kw)"]
    lines += [f"    if {missing}:",
              f"        return self._call_with_gaps(({given}))"]
    lines += [f"    a{i} = {x}" for i, x in enumerate(pnames) if x != f"a{i}"]
    arrays, scalars = [], []
    for i, p in enumerate(fn.entry.inputs):
        ns[f"CONV{i}"] = fn._convs[i]
        t = fn._module.manifest.types.get(p.type)
        if isinstance(t, ArrayType):
            ns[f"K{i}"] = ctx.value_key(t)
            arrays.append(i)
        elif p.type in PRIMITIVES:
            scalars.append(i)
    vhelper = _symbol(ctx.lib, value_helper_name(fn.entry.cfun))
    if vhelper is not None and len(arrays) + len(scalars) == n:
        otype = fn.entry.outputs[0].type
        ns.update(VHELPER=vhelper, LAST=ctx.lib.futhark_lab_last_code, NULL=ctx.ffi.NULL, SENT=sentinel_py(otype))
        failed = "r != r" if otype in ("f32", "f64") else ("r == NULL" if otype not in PRIMITIVES else "r == SENT")
        lines += ["    temps = None",
                  "    ENTER(None)",
                  "    try:",
                  "        handle = CTX.handle",
                  "        if handle is not None:"]
        for i in arrays:   # resident: passed as is; anything else converted (a NumPy array copied in, freed below)
            lines += [f"            c{i} = a{i}._ptr if type(a{i}) is FA and a{i}._usable is K{i} else None",
                      f"            if c{i} is None:",
                      "                if temps is None:",
                      "                    temps = []",
                      f"                c{i} = CONV{i}(a{i}, temps)"]
        lines += [f"            c{i} = CONV{i}(a{i}, None)" for i in scalars]
        cargs = ", ".join(f"c{i}" for i in range(n))
        wrap = "WRAP0(r)" if otype in PRIMITIVES or not isinstance(fn._module.manifest.types[otype], ArrayType) \
            else "WRAP0(r, handle)"
        lines += [f"            r = VHELPER(handle, SYNC{', ' if n else ''}{cargs})",
                  f"            if {failed}:",
                  "                code = LAST()",
                  "                if code:",
                  "                    raise self._failure(code, handle)",
                  *_alias_lines(fn, arrays, wrap),
                  "    finally:",
                  "        if temps:",
                  "            self._free_temps(temps, handle)",
                  "        LEAVE()",
                  "        if DEFERRED and not INFLIGHT:",
                  "            CTX._run_deferred()",
                  "    # a closed context: the generic path raises the closed error",
                  f"    return self._invoke(({given}), SYNC)"]
    else:   # a build without value helpers: the output slot is shared, so the whole call holds the lock
        lines += ["    return self._invoke((" + given + "), SYNC)"]
    exec("\n".join(lines), ns)  # noqa: S102 - generated from the manifest's parameter list only
    ns["__call__"].__qualname__ = fn.entry.name   # Python's own argument errors then name the entry point
    return type(f"EntryFunction_{fn.entry.name}", (EntryFunction,), {"__call__": ns["__call__"],
                                                                       "__slots__": ()})
