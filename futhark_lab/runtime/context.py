"""``Context``: one futhark_context, its options, errors, synchronisation and the values it owns; sticky GPU errors
retire it.  Also the CUDA current-context bookkeeping that keeps PyTorch and CuPy on the primary context.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import threading
import weakref
from typing import Any

import numpy as np

from ..builder import manifest as mf
from ..builder.cdef import _ctype, raw_names
from ..builder.manifest import PRIMITIVES, ArrayType, OpaqueType
from ..errors import BackendUnavailable, FutharkError
from . import aliases, guards
from .library import Library, _symbol
from .poisoned import FIX as POISON_FIX
from .poisoned import poison, poisoned_reason
from .values import FutharkArray, FutharkOpaque, FutharkValue, check_result_error

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

    def __post_init__(self):
        self.tuning = guards.check_tuning(self.tuning)  # before any C call, on every backend

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
        #: how many values passed to consuming parameters were copied first because something else may see their
        #: memory (runtime.aliases)
        self.consume_copies = 0
        self._lock = threading.RLock()
        # The fast entry path (_specialised) takes no lock: it puts an entry in _inflight while it holds a handle or
        # an array pointer (list.append/pop are atomic under the GIL).  Whoever frees a value or the context first
        # makes it unreachable to new calls (pointer/handle set to None), then frees it at once if no fast call is
        # in flight, or queues the free in _deferred, which the last call out runs (FIFO: arrays before their
        # context).  Nobody waits, so a free from a finaliser on the calling thread cannot deadlock.
        self._inflight: list = []
        self._deferred: collections.deque = collections.deque()
        self._retired = False
        # DLPack exports (runtime.dlpack): how many capsules show each C value (by address), the frees of exported
        # values that were freed or closed meanwhile (run when the last consumer lets go), and whether close() is
        # waiting for them to free the context
        self._exported: dict[int, int] = {}
        self._held: dict[int, list] = {}
        self._close_pending = False
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
        try:
            tuning = guards.check_tuning(o.tuning)  # again: options may have been changed since
        except (TypeError, ValueError):
            lib.futhark_context_config_free(cfg)
            raise
        for name, value in tuning.items():
            if lib.futhark_context_config_set_tuning_param(cfg, name.encode(), value) != 0:
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

    def tuning_classes(self) -> dict[str, str]:
        """name -> futhark's class of the parameter (``threshold(...)``, ``thread_block_size``, ``grid_size``, ...)."""
        lib = self.lib
        return {self.ffi.string(lib.futhark_get_tuning_param_name(i)).decode():
                self.ffi.string(lib.futhark_get_tuning_param_class(i)).decode()
                for i in range(lib.futhark_get_tuning_param_count())}

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
            if self._exported:   # another library still uses exported memory: freed when it lets go
                self._close_pending = True
                return
            self._deferred.append(self._finalizer)
            self._run_deferred()

    def hold_export(self, value: FutharkValue):
        """``value`` is shown to another library (a DLPack capsule): until the returned release() is called, its
        memory outlives free(), close() and the garbage collector."""
        key = int(self.ffi.cast("uintptr_t", value._handle()))
        with self._lock:
            self._exported[key] = self._exported.get(key, 0) + 1

        def release() -> None:
            with self._lock:
                n = self._exported.get(key, 0) - 1
                if n > 0:
                    self._exported[key] = n
                    return
                self._exported.pop(key, None)
                self._deferred.extend(self._held.pop(key, ()))
                if self._close_pending and not self._exported:
                    self._close_pending = False
                    self._deferred.append(self._finalizer)
                self._run_deferred()
        return release

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
            if self._exported:
                key = int(self.ffi.cast("uintptr_t", ptr))
                if key in self._exported:   # a DLPack consumer still uses it: freed on its release
                    self._held.setdefault(key, []).append(free)
                    return
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
            v = self.wrap(field.type, out[0])
            if isinstance(v, FutharkValue):
                aliases.alias_outputs([v], [obj])   # a field shares the record's memory
                v._keepalive = obj._keepalive       # and whatever other library's memory the record uses
            return v

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
