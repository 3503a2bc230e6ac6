"""Load a built Futhark library and call its entry points, driven entirely by the manifest.

The C declarations handed to cffi are generated from the manifest (names and types of every entry point and value
operation) plus the documented, fixed context API; no header is parsed.  cffi's ABI mode needs no compiler at load
time, so a library built on one machine loads on another with the same ABI.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import keyword
import json
import os
import re
import threading
import weakref
from pathlib import Path
from typing import Any, Callable

import cffi
import numpy as np

from . import fastcall, guards
from . import manifest as mf
from .cdef import (SYNC_FAILED, _ctype, call_helpers, generate_cdef, helper_name, raw_names,  # noqa: F401 - generate_cdef re-exported
                   sentinel_py, value_helper_name)
from .compiler import GPU_BACKENDS, Build
from .errors import BackendUnavailable, FutharkError
from .poisoned import FIX as POISON_FIX
from .poisoned import poison, poisoned_reason
from .manifest import PRIMITIVES, ArrayType, EntryPoint, Manifest, OpaqueType
from .values import (FutharkArray, FutharkOpaque, FutharkValue, as_host_array,
                     check_result_error, scalar_converter)

# --------------------------------------------------------------------------- loaded libraries (one per build)

@dataclasses.dataclass
class Library:
    build: Build
    manifest: Manifest
    ffi: cffi.FFI
    lib: Any
    libc: Any
    raw_offset: bool
    mode: str = "abi"   # "api" where fastcall built an extension module


_libraries: dict[Path, Library] = {}
_lib_lock = threading.Lock()


def load_library(build: Build) -> Library:
    """The build's library, once per process: through its API-mode extension where ``compile_program`` built one
    (no declarations to parse at load time), in cffi's ABI mode otherwise."""
    with _lib_lock:
        cached = _libraries.get(build.library)
        if cached is not None and (cached.mode == "api" or not fastcall.extension_path(
                Path(build.directory), build.module_name).exists()):
            return cached
        # else: the extension finished compiling since (in the background): new modules use it
        m = mf.load(build.manifest)
        raw_offset = build.futhark.version < (0, 25, 14)
        api = None
        if os.environ.get("FUTHARK_LAB_BINDING", "").lower() != "abi":
            try:
                api = fastcall.load(Path(build.directory), build.module_name)
            except Exception:  # noqa: BLE001 - the ABI-mode binding below works everywhere
                api = None
        if api is not None:
            ffi, lib = api
            library = Library(build, m, ffi, lib, lib, raw_offset, "api")
        else:
            ffi = cffi.FFI()
            ffi.cdef(generate_cdef(m, raw_offset) + "\n" + call_helpers(m)[0] + "\nvoid free(void *p);")
            lib = ffi.dlopen(str(build.library))
            library = Library(build, m, ffi, lib, ffi.dlopen(None), raw_offset, "abi")
        _libraries[build.library] = library
        return library


def _symbol(lib: Any, name: str) -> Any | None:
    try:
        return getattr(lib, name)
    except (AttributeError, NotImplementedError):
        return None


# --------------------------------------------------------------------------- context

#: Driver errors after which a CUDA/OpenCL context cannot be used (sticky errors).
_STICKY = re.compile(r"error code (700|701|702|709|710|714|715|716|717|718|719)\b|illegal (memory )?address|"
                     r"illegal instruction|unspecified launch failure|CL_OUT_OF_RESOURCES|-5\b.*clFinish",
                     re.IGNORECASE)

@dataclasses.dataclass
class ContextOptions:
    """How to create a context.  ``unified_memory`` defaults to off so CUDA arrays are plain device memory."""

    device: str | None = None
    platform: str | None = None
    unified_memory: bool = False
    profiling: bool = False
    logging: bool = False
    debugging: bool = False
    tuning: dict[str, int] = dataclasses.field(default_factory=dict)
    cache_file: str | None = None
    num_threads: int | None = None
    build_options: tuple[str, ...] = ()   # OpenCL kernel compiler options
    probe: bool = True

    def as_json(self) -> str:
        d = dataclasses.asdict(self)
        d.pop("probe")
        return json.dumps(d, sort_keys=True)


class Context:
    """One futhark_context; owns every value made in it and frees them before itself."""

    def __init__(self, library: Library, options: ContextOptions):
        self.library = library
        self.ffi = library.ffi
        self.lib = library.lib
        self.backend = library.manifest.backend
        self.options = options
        self.handle = None
        why = poisoned_reason(self.backend)
        if why is not None:
            raise BackendUnavailable(self.backend, f"{why} left the GPU unusable in this process", POISON_FIX)
        self._values: weakref.WeakSet[FutharkValue] = weakref.WeakSet()
        self._lock = threading.RLock()
        # The fast entry path (_specialised) takes no lock: it puts an entry in _inflight while it holds a handle or
        # an array pointer (list.append/pop are atomic under the GIL).  Whoever frees a value or the context first
        # makes it unreachable to new calls (pointer/handle set to None), then frees it at once if no fast call is
        # in flight, or queues the free in _deferred, which the last call out runs (FIFO: arrays before their
        # context).  Nobody waits, so a free from a finaliser on the calling thread cannot deadlock.
        self._inflight: list = []
        self._deferred: collections.deque = collections.deque()
        self._retired = False
        self._value_keys: dict[str, object] = {}
        self._cfg = self._make_config(options)
        previous = _cuda_current_context() if self.backend == "cuda" else None
        if self.backend == "opencl":
            from .opencl_info import icd_lock
            with icd_lock:  # may be the process's first OpenCL call: the ICD loader's start is not thread-safe
                self.handle = self.lib.futhark_context_new(self._cfg)
        else:
            self.handle = self.lib.futhark_context_new(self._cfg)
        #: futhark's own CUcontext (cuda): what cuCtxCreate left current, before it is popped again
        self.cu_context: int | None = None
        if self.backend == "cuda":
            current = _cuda_current_context()
            self.cu_context = current if current and current != previous else None
            _cuda_restore_current(previous)
        err = self._take_error() if self.handle != self.ffi.NULL else "futhark_context_new returned NULL"
        if err is not None:
            # Not freed: futhark_context_free on a context whose creation failed crashes the opencl/cuda runtimes
            # (it frees devices and queues that were never made).  A failed context is leaked, once.
            self.handle = None
            self._cfg = None
            raise FutharkError(f"creating the {self.backend} context failed: {err.strip()}\n"
                               "Check the platform/device/build options (`futhark-lab doctor` lists what exists).")
        # futhark >= 0.25.14's new_raw wraps the given memory; older versions' new_raw copies from it
        self.raw_aliases = library.build.futhark.version >= (0, 25, 14)
        self.has_raw = all(
            _symbol(self.lib, raw_names(t)[0]) is not None for t in library.manifest.types.values()
            if isinstance(t, ArrayType))
        self._closed_reason = "the module's context has been closed"
        self._finalizer = weakref.finalize(self, Context._release, self.lib, self.handle, self._cfg, self._values,
                                           self._lock)
        self._finalizer.atexit = False  # guards closes live contexts at exit, under their lock (see close)
        guards.track_context(self)

    def _make_config(self, o: ContextOptions):
        lib = self.lib
        cfg = lib.futhark_context_config_new()
        if o.profiling:
            lib.futhark_context_config_set_profiling(cfg, 1)
        if o.logging:
            lib.futhark_context_config_set_logging(cfg, 1)
        if o.debugging:
            lib.futhark_context_config_set_debugging(cfg, 1)
        for name, value in o.tuning.items():
            if lib.futhark_context_config_set_tuning_param(cfg, name.encode(), int(value)) != 0:
                known = self.tuning_parameters()
                lib.futhark_context_config_free(cfg)
                raise ValueError(f"unknown tuning parameter {name!r}; this program has: {', '.join(known) or 'none'}")
        if o.device is not None and self.backend == "cuda":
            try:
                guards.check_cuda_device(o.device)
            except ValueError:
                lib.futhark_context_config_free(cfg)
                raise
        setters = [("device", o.device, "futhark_context_config_set_device"),
                   ("platform", o.platform, "futhark_context_config_set_platform"),
                   ("cache_file", o.cache_file, "futhark_context_config_set_cache_file")]
        for what, value, fname in setters:
            if value is None:
                continue
            fn = _symbol(lib, fname)
            if fn is None:
                lib.futhark_context_config_free(cfg)
                raise ValueError(f"the {self.backend} backend has no {what} option")
            fn(cfg, str(value).encode())
        if o.build_options:
            fn = _symbol(lib, "futhark_context_config_add_build_option")
            if fn is None:
                lib.futhark_context_config_free(cfg)
                raise ValueError(f"build_options apply to the opencl backend, not {self.backend}")
            for opt in o.build_options:
                fn(cfg, str(opt).encode())
        if o.num_threads is not None:
            fn = _symbol(lib, "futhark_context_config_set_num_threads")
            if fn is None:
                lib.futhark_context_config_free(cfg)
                raise ValueError(f"num_threads applies to the multicore backend, not {self.backend}")
            fn(cfg, guards.check_num_threads(o.num_threads))
        if not isinstance(o.unified_memory, bool):
            lib.futhark_context_config_free(cfg)
            raise TypeError(f"unified_memory must be True or False, got {o.unified_memory!r}")
        # Set explicitly, before futhark_context_new: the runtime's default (2) means "managed memory wherever the
        # device supports it" (every recent NVIDIA GPU), where asking for more than the card has can stall the
        # machine instead of failing.  0 is cuMemAlloc; managed memory only when the user asks.
        um = _symbol(lib, "futhark_context_config_set_unified_memory")
        if um is not None and self.backend in ("cuda", "hip"):
            um(cfg, 1 if o.unified_memory else 0)
        return cfg

    def tuning_parameters(self) -> list[str]:
        lib = self.lib
        return [self.ffi.string(lib.futhark_get_tuning_param_name(i)).decode()
                for i in range(lib.futhark_get_tuning_param_count())]

    @staticmethod
    def _release(lib, handle, cfg, values, lock) -> None:
        with lock:
            for v in list(values):   # freed with the context's own handle: close() has already cleared self.handle
                v._usable = None
                ptr, v._ptr = v._ptr, None
                if ptr is not None and handle is not None:
                    try:
                        getattr(lib, v._type.ops["free"])(handle, ptr)
                    except Exception:  # noqa: BLE001
                        pass
                v._keepalive = None
            if handle is not None:
                lib.futhark_context_sync(handle)
                lib.futhark_context_free(handle)
            if cfg is not None:
                lib.futhark_context_config_free(cfg)

    # -- lifetime
    @property
    def alive(self) -> bool:
        return self.handle is not None

    def close(self) -> None:
        """Free the context and its values.  New calls fail at once; a call in flight on another thread finishes
        first (the generic path holds the lock; a fast call frees the context when it returns, see _inflight)."""
        with self._lock:
            if self.handle is None:
                return
            values = list(self._values)
            for v in values:   # values first, while the handle is still set
                try:
                    v.free()
                except Exception:  # noqa: BLE001
                    pass
            self.handle = None
            self._cfg = None
            self._deferred.append(self._finalizer)
            self._run_deferred()

    def _run_deferred(self) -> None:
        """Run queued frees, unless a fast call is (still or again) in flight: it runs them when it returns."""
        with self._lock:
            while not self._inflight:
                try:
                    action = self._deferred.popleft()
                except IndexError:
                    return
                try:
                    action()
                except Exception:  # noqa: BLE001 - a failed free has no one to report to
                    pass

    def _forked(self) -> None:
        """In a forked child: the runtime's threads and device state are the parent's; never touch them."""
        self._finalizer.detach()
        self.handle = None
        self._retired = True
        self._deferred.clear()
        self._closed_reason = guards.FORKED

    def closed_error(self, what: str) -> ValueError:
        return ValueError(f"{what}: {self._closed_reason}")

    def live_handle(self, what: str):
        """The context's handle, or the clean closed/retired error (never a NULL/None handle into the C API)."""
        handle = self.handle
        if handle is None:
            raise self.closed_error(what)
        return handle

    def value_key(self, t: Any) -> object:
        """One object per (context, type): what a usable value of that type holds in ``_usable``."""
        key = self._value_keys.get(t.name)
        if key is None:
            key = self._value_keys.setdefault(t.name, object())
        return key

    def _track(self, value: FutharkValue) -> None:
        self._values.add(value)

    def _free_value(self, free_fn: str, ptr, keepalive: Any = None) -> None:
        """Free a value's pointer (already cleared in the value, so no new call can take it); queued while a fast
        call may still be using it (with what keeps its memory alive, e.g. a PyTorch tensor)."""
        with self._lock:
            handle = self.handle
            if handle is None:
                return
            fn = getattr(self.lib, free_fn)

            def free(fn=fn, handle=handle, ptr=ptr, keepalive=keepalive) -> None:
                if not self._retired:
                    fn(handle, ptr)
            self._deferred.append(free)
            self._run_deferred()

    # -- errors and sync
    def _take_error(self, handle: Any = None) -> str | None:
        p = self.lib.futhark_context_get_error(self.handle if handle is None else handle)
        if p == self.ffi.NULL:
            return None
        try:
            return self.library.build.map_runtime_message(self.ffi.string(p).decode(errors="replace"))
        finally:
            self.library.libc.free(p)

    def error(self, code: int, what: str, handle: Any = None) -> Exception:
        """The exception for a failed call; a sticky GPU error also retires this context (see _retire).  ``handle``:
        the one the call used (a fast call in flight keeps its context alive even if close() cleared self.handle)."""
        message = self._take_error(handle)
        exc = check_result_error(code, message, what)
        if message and _STICKY.search(message):
            self._retire()
            exc = type(exc)(f"{exc}\nThe GPU context is unusable after this error, so this module is closed "
                            "(without freeing the context: the runtime would exit the process). Compile again "
                            "for a fresh module.", code)
        return exc

    def _retire(self) -> None:
        """Drop a context that the driver has poisoned: freeing it would make futhark's runtime call exit().
        A sticky CUDA error poisons the whole process: no new context may be created either (poisoned.poison)."""
        self._finalizer.detach()
        self.handle = None
        self._retired = True
        self._deferred.clear()
        self._closed_reason = "the GPU context was retired after a sticky error; compile again for a fresh module"
        poison(self.backend, "an earlier sticky GPU error (e.g. an illegal memory access) in this process")

    def check(self, code: int, what: str) -> None:
        if code != 0:
            raise self.error(code, what)

    def sync(self) -> None:
        with self._lock:
            self.check(self.lib.futhark_context_sync(self.live_handle("synchronising")), "synchronisation")

    def report(self) -> str:
        with self._lock:
            p = self.lib.futhark_context_report(self.live_handle("report()"))
        if p == self.ffi.NULL:
            return ""
        try:
            return self.ffi.string(p).decode(errors="replace")
        finally:
            self.library.libc.free(p)

    def clear_caches(self) -> None:
        with self._lock:
            self.check(self.lib.futhark_context_clear_caches(self.live_handle("clear_caches()")), "clear_caches")

    # -- values (each under the lock every call holds: close() on another thread waits; a closed or retired
    #    context raises closed_error instead of handing NULL to the C API)
    def new_array(self, t: ArrayType, host: np.ndarray) -> FutharkArray:
        ctype = PRIMITIVES[t.elemtype][0]
        buf = self.ffi.from_buffer(ctype + "[]", host)
        with self._lock:
            handle = self.live_handle(f"array() of shape {host.shape}")
            ptr = getattr(self.lib, t.ops["new"])(handle, buf, *host.shape)
            if ptr == self.ffi.NULL:
                raise self.error(1, f"allocating a {t.name} array of shape {host.shape}")
            return FutharkArray(self, ptr, t)

    def new_raw_array(self, t: ArrayType, address: int, shape: tuple[int, ...], keepalive: Any) -> FutharkArray:
        fn = _symbol(self.lib, raw_names(t)[0])
        if fn is None:
            raise NotImplementedError("this futhark version has no raw-pointer array API")
        args = (0,) if self.library.raw_offset else ()
        what = f"wrapping device memory as {t.name}"
        with self._lock:
            ptr = fn(self.live_handle(what), self.ffi.cast("void *", address), *args, *shape)
            if ptr == self.ffi.NULL:
                raise self.error(1, what)
            return FutharkArray(self, ptr, t, keepalive=keepalive)

    def raw_pointer(self, arr: FutharkArray) -> int:
        fn = _symbol(self.lib, raw_names(arr._type)[1])
        if fn is None:
            raise NotImplementedError("this futhark version has no raw-pointer array API (futhark >= 0.25.14)")
        with self._lock:
            return int(self.ffi.cast("uintptr_t", fn(self.live_handle("data_ptr()"), arr._handle())))

    def project(self, obj: FutharkOpaque, field: mf.Field) -> Any:
        m = self.library.manifest
        out = self.ffi.new(_ctype(m, field.type) + " *")
        with self._lock:
            handle = self.live_handle(f"field {field.name!r}")
            self.check(getattr(self.lib, field.project)(handle, out, obj._handle()), f"projecting {field.name}")
            return self.wrap(field.type, out[0])

    def store(self, obj: FutharkOpaque) -> bytes:
        p = self.ffi.new("void **")
        n = self.ffi.new("size_t *")
        with self._lock:
            handle = self.live_handle("store()")
            self.check(getattr(self.lib, obj._type.ops["store"])(handle, obj._handle(), p, n), "store")
            try:
                self.sync()
                return bytes(self.ffi.buffer(p[0], n[0]))
            finally:
                self.library.libc.free(p[0])

    def restore(self, type_name: str, data: bytes) -> FutharkOpaque:
        t = self.library.manifest.types.get(type_name)
        if not isinstance(t, OpaqueType) or "restore" not in t.ops:
            have = [n for n, o in self.library.manifest.types.items() if isinstance(o, OpaqueType)
                    and "restore" in o.ops]
            raise ValueError(f"restore({type_name!r}, data): this program has no opaque type {type_name!r} that can "
                             f"be restored; its opaque types: {', '.join(have) or 'none'}")
        data = guards.check_stored(type_name, data)
        with self._lock:
            handle = self.live_handle(f"restore({type_name!r})")
            ptr = getattr(self.lib, t.ops["restore"])(handle, self.ffi.from_buffer(data))
            if ptr == self.ffi.NULL:
                raise self.error(1, f"restoring a {type_name}")
            return FutharkOpaque(self, ptr, t)

    def wrap(self, tname: str, cvalue: Any) -> Any:
        """A C result as a Python value: scalars become Python/NumPy scalars, the rest stay in the context."""
        if tname in PRIMITIVES:
            if tname == "f16":
                return np.uint16(cvalue).view(np.float16)
            return PRIMITIVES[tname][1].type(cvalue)
        t = self.library.manifest.types[tname]
        if isinstance(t, ArrayType):
            return FutharkArray(self, cvalue, t)
        return FutharkOpaque(self, cvalue, t)


def _libcuda():
    import ctypes
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None


def _cuda_current_context() -> int | None:
    import ctypes
    lib = _libcuda()
    if lib is None:
        return None
    cur = ctypes.c_void_p()
    return cur.value if lib.cuCtxGetCurrent(ctypes.byref(cur)) == 0 else None


def _cuda_restore_current(previous: int | None) -> None:
    """futhark's cuda runtime creates its context with cuCtxCreate, which leaves it current on this thread; every
    later CUDA runtime call of PyTorch or CuPy on the thread would then run in futhark's context instead of the
    primary one.  Pop it, so the thread's current context is what it was (futhark pushes its own for each call)."""
    import ctypes
    lib = _libcuda()
    if lib is None:
        return
    cur = ctypes.c_void_p()
    while lib.cuCtxGetCurrent(ctypes.byref(cur)) == 0 and cur.value and cur.value != previous:
        popped = ctypes.c_void_p()
        if lib.cuCtxPopCurrent(ctypes.byref(popped)) != 0:
            break


# --------------------------------------------------------------------------- entry points

class EntryFunction:
    """A callable entry point.  Arguments: NumPy arrays / scalars, or values of this module (no copy)."""

    def __init__(self, module: "FutharkModule", entry: EntryPoint):
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

        def conv_array(v, temps):
            if type(v) is FutharkArray and v._ctx is ctx and v._type is t and v._ptr is not None \
                    and not v._consumed:
                return v._ptr  # resident input: the hot path of a timing loop, checked first
            if type(v) is np.ndarray and (v.dtype is dtype or v.dtype == dtype) and v.ndim == rank \
                    and v.flags.c_contiguous:
                host = v  # the common case, checked first and cheaply
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
            elif backend == "cuda" and hasattr(v, "__cuda_array_interface__") and not isinstance(v, np.ndarray):
                arr = module.from_device(v, t, param=p.name)
                temps.append(arr)
                return arr._ptr
            else:
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

    def _invoke(self, args: tuple, sync: int) -> Any:
        ctx = self._context
        if self._unique:
            guards.check_unique_aliasing(self.entry.name, self._names, self._unique, args)
        temps: list = []
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
                    for i in self._unique:
                        if isinstance(args[i], FutharkValue):
                            args[i]._usable = None
                            args[i]._consumed = True
                if code != 0:
                    raise self._failure(code)
            finally:
                if temps:
                    self._free_temps(temps, handle)
            if self._single:
                return self._wraps[0](outs[0][0])
            results = self._wrap_all(outs)
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
    futhark_names = [p.name for p in fn.entry.inputs]
    reserved = set(ns) | {"self", "rest", "temps", "handle", "r", "code", "args", "kwargs", "VHELPER", "LAST",
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
                  f"            return {wrap}",
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


class FutharkModule:
    """A compiled Futhark program with one live context.  Entry points are attributes; use as a context manager
    (or call ``close()``) to free the context deterministically."""

    def __init__(self, build: Build, options: ContextOptions | None = None):
        self.build = build
        self.backend = build.backend
        self.options = options or ContextOptions()
        self.library = load_library(build)
        self.manifest = self.library.manifest
        self.context = Context(self.library, self.options)
        self.entry_points: dict[str, EntryFunction] = {}
        for name, e in self.manifest.entry_points.items():
            fn = EntryFunction(self, e)
            self.entry_points[name] = fn
            if name.isidentifier() and not hasattr(type(self), name):
                setattr(self, name, fn)

    def __reduce__(self):
        raise TypeError("a compiled Futhark module holds a live context and cannot be pickled or copied; compile "
                        "the program again in the other process (the build cache makes that fast)")

    def __getitem__(self, name: str) -> EntryFunction:
        try:
            return self.entry_points[name]
        except (KeyError, TypeError):
            raise KeyError(f"no entry point {name!r}; this program has: "
                           f"{', '.join(self.entry_points) or 'none'}") from None

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.entry_points))

    # -- data movement
    def array(self, data: Any, futhark_type: str | None = None) -> FutharkArray:
        """Put data into this context (host→device on GPUs) once, to pass to entry points without re-copying."""
        if isinstance(data, FutharkArray) and data._ctx is self.context:
            return data
        candidates = [t for t in self.manifest.types.values() if isinstance(t, ArrayType)]
        if futhark_type is not None:
            candidates = [t for t in candidates if t.name == futhark_type]
        if hasattr(data, "__cuda_array_interface__") and not isinstance(data, np.ndarray):
            cai = data.__cuda_array_interface__
            dt, rank = np.dtype(cai["typestr"]), len(cai["shape"])
        else:
            data = np.asarray(data)
            dt, rank = data.dtype, data.ndim
        match = [t for t in candidates if t.rank == rank and t.dtype == dt]
        if not match:
            have = ", ".join(sorted(t.name for t in candidates)) or "none"
            raise TypeError(f"this program has no array type of rank {rank} and dtype {dt} "
                            f"(its array types: {have})")
        t = match[0]
        if hasattr(data, "__cuda_array_interface__") and not isinstance(data, np.ndarray):
            return self.from_device(data, t)
        arr = self.context.new_array(t, np.ascontiguousarray(data))
        self.context.sync()  # the copy from the host buffer is asynchronous; the buffer may go after this
        return arr

    def from_device(self, obj: Any, t: ArrayType, param: str = "array") -> FutharkArray:
        """Wrap a CUDA array (PyTorch/CuPy/PyCUDA, via ``__cuda_array_interface__``) without copying."""
        if self.backend != "cuda":
            raise TypeError(f"device arrays can only be passed to the cuda backend, not {self.backend}")
        cai = obj.__cuda_array_interface__
        shape = tuple(cai["shape"])
        dt = np.dtype(cai["typestr"])
        if dt != t.dtype or len(shape) != t.rank:
            raise TypeError(f"{param}: expects a rank-{t.rank} {t.dtype} array, got rank-{len(shape)} {dt}")
        strides = cai.get("strides")
        if strides is not None and tuple(strides) != _c_strides(shape, dt.itemsize):
            raise TypeError(f"{param}: device array is not C-contiguous; call .contiguous() first")
        import warnings
        ctx = self.context
        if ctx.has_raw and ctx.raw_aliases:
            return ctx.new_raw_array(t, cai["data"][0], shape, keepalive=obj)
        if ctx.has_raw:
            # futhark < 0.25.14: new_raw copies device-to-device into futhark's own memory (no host round trip)
            warnings.warn(f"futhark {self.build.futhark.version_str} copies device arrays on the device "
                          "(zero-copy input needs futhark >= 0.25.14)", stacklevel=3)
            arr = ctx.new_raw_array(t, cai["data"][0], shape, keepalive=obj)
            ctx.sync()  # the copy is asynchronous; after this the source may go
            arr._keepalive = None
            return arr
        warnings.warn("this futhark version has no raw-pointer API: copying the device array through the host",
                      stacklevel=3)
        return ctx.new_array(t, np.ascontiguousarray(_to_host(obj)))

    def restore(self, type_name: str, data: bytes) -> FutharkOpaque:
        return self.context.restore(type_name, data)

    def cuda_context(self, array: FutharkArray | None = None) -> int:
        """futhark's CUcontext (cuda backend), for work that must run inside it (cache flushes, CUDA events):
        recorded when the context was made, or the owner of ``array``'s memory."""
        if self.backend != "cuda":
            raise TypeError(f"cuda_context() is for the cuda backend, not {self.backend}")
        if self.context.cu_context:
            return self.context.cu_context
        if array is not None:
            from .cudadrv import pointer_context
            return pointer_context(array.data_ptr())
        raise RuntimeError("futhark's CUDA context was not current after its creation; pass an array of this "
                           "module to find it from its memory")

    # -- context
    def sync(self) -> None:
        self.context.sync()

    def report(self):
        """The runtime's profiling report (enable with ``profiling=True``) as a pandas DataFrame."""
        from .profiling import report_frame
        return report_frame(self.context.report())

    def tuning_parameters(self) -> list[str]:
        return self.context.tuning_parameters()

    def close(self) -> None:
        self.context.close()

    def __enter__(self) -> "FutharkModule":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        names = ", ".join(self.entry_points)
        return f"<FutharkModule {self.build.source_name} [{self.backend}, futhark {self.build.futhark.version_str}]" \
               f" entry points: {names}>"


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, acc = [], itemsize
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def _to_host(obj: Any) -> np.ndarray:
    if hasattr(obj, "cpu"):
        return obj.cpu().numpy()
    if hasattr(obj, "get"):
        return obj.get()
    raise TypeError(f"cannot copy a {type(obj).__name__} to the host")
