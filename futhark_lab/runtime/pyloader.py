"""The ``python`` and ``pyopencl`` backends: the compiler's generated Python module, imported from the build cache
and presented with the same interface as the C backends (entry-point callables, ``.numpy()`` results, lossless input
checks, FutharkError for runtime failures)."""

from __future__ import annotations

import copy
import importlib.util
import inspect
import re
import sys
import threading
from typing import Any

import numpy as np

from ..builder.cache import Build
from ..builder.manifest import PRIMITIVES, ArrayType
from ..errors import FutharkError, FutharkOutOfMemory
from . import aliases, guards
from .values import ConsumedError, as_host_array, consumed_message, scalar_converter

_modules: dict[str, Any] = {}
_lock = threading.Lock()
from .modulebase import ModuleBase


def import_generated(build: Build):
    """Import the generated .py once per build (the module name is the build's content hash)."""
    with _lock:
        mod = _modules.get(build.module_name)
        if mod is None:
            spec = importlib.util.spec_from_file_location(build.module_name, build.python_module)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[build.module_name] = mod
            spec.loader.exec_module(mod)
            _modules[build.module_name] = mod
        return mod


class PyArray:
    """An array result of a python/pyopencl module: host memory (python) or an OpenCL buffer (pyopencl)."""

    __slots__ = ("data", "_ctx", "_consumed", "_alias", "__weakref__")

    def __init__(self, data: Any, ctx: "PyContext"):
        self.data = data
        self._ctx = ctx
        self._consumed = False
        self._alias = None   # runtime.aliases: the values that may share this memory

    def _live(self) -> Any:
        """The data, unless consumed by a unique parameter (as on the C backends), freed, or its module closed."""
        if not self._ctx.alive:
            if self._ctx._closed_reason == guards.FORKED:
                raise ValueError(f"this array: {guards.FORKED}")
            raise ValueError(f"the module owning this array has been closed ({self._ctx._closed_reason})")
        if self._consumed:
            raise ConsumedError(consumed_message("array", self._consumed))
        if self.data is None:
            raise ValueError("this array has been freed")
        return self.data

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._live().shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def numpy(self) -> np.ndarray:
        data = self._live()
        if isinstance(data, np.ndarray):
            return data.copy()
        return data.get()

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        return arr.astype(dtype, copy=False) if dtype is not None else arr

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None,
                   copy: Any = None) -> Any:
        from .dlpack import refusal
        raise BufferError(refusal(self._ctx.backend))

    def __dlpack_device__(self) -> tuple[int, int]:
        from .dlpack import refusal
        raise BufferError(refusal(self._ctx.backend))

    def free(self) -> None:
        self.data = None
        if self._alias is not None:
            aliases.leave(self)

    def __del__(self):
        if self._alias is not None:
            aliases.leave(self)

    def __reduce__(self):
        raise TypeError("a Futhark array lives in its module's memory and cannot be pickled or copied; "
                        "use .numpy() for a host copy")

    def __repr__(self) -> str:
        if self._consumed or self.data is None:
            return f"<PyArray {'consumed' if self._consumed else 'freed'} on {self._ctx.backend}>"
        return f"<PyArray {self.dtype}{list(self.shape)} on {self._ctx.backend}>"


def _parse_type(t: str) -> tuple[bool, int, str]:
    unique = t.startswith("*")
    t = t.lstrip("*")
    rank = t.count("[]")
    return unique, rank, t.replace("[]", "")


def entry_point_table(klass: Any) -> dict[str, tuple[str, list[str], list[str], bool]]:
    """The generated class's ``entry_points`` in one shape: name -> (method, input types, output types, tuple?).

    Before futhark 0.26.1 each entry is ``(method, [inputs], [outputs])``.  From 0.26.1 it is a dict with ``name``,
    ``inputs`` and a single ``output``; several results then arrive as one opaque tuple (listed in the class's
    ``opaques`` with a tuple layout), which ``tuple`` marks for unpacking, as ``manifest.tuple_output`` does for the
    C backends.
    """
    table = {}
    opaques = getattr(klass, "opaques", {}) or {}
    for name, info in klass.entry_points.items():
        if isinstance(info, dict):
            out = info["output"]
            layout = opaques.get(out.lstrip("*"), (None, None))[1]
            is_tuple = out.lstrip("*").startswith("(") and isinstance(layout, tuple)
            outs = [str(t) for t in layout] if is_tuple else [out]
            table[name] = (info["name"], list(info["inputs"]), outs, is_tuple)
        else:
            pyname, ins, outs = info
            table[name] = (pyname, list(ins), list(outs), False)
    return table


class PyContext:
    """An instance of the generated class: its constructor creates the OpenCL context (pyopencl)."""

    def __init__(self, build: Build, instance: Any):
        self.build = build
        self.backend = build.backend
        self.instance = instance
        self._lock = threading.RLock()   # close() waits for a call in flight on another thread
        self.consume_copies = 0          # as Context.consume_copies (runtime.aliases)
        self._closed_reason = "the module has been closed"
        guards.track_context(self)

    def close(self) -> None:
        with self._lock:
            if self.instance is not None:
                self.sync()
            self.instance = None

    def _forked(self) -> None:
        self.instance = None
        self._closed_reason = guards.FORKED

    @classmethod
    def create(cls, build: Build, opts: dict) -> "PyContext":
        mod = import_generated(build)
        klass = next(v for k, v in vars(mod).items()
                     if inspect.isclass(v) and hasattr(v, "entry_points") and v.__module__ == mod.__name__)
        kwargs: dict[str, Any] = {}
        if build.backend == "pyopencl":
            if opts.get("platform") is not None:
                kwargs["platform_pref"] = opts["platform"]
            if opts.get("device") is not None:
                kwargs["device_pref"] = opts["device"]
            if opts.get("tuning"):
                # 0 is "the default" in futhark's C runtimes; the generated Python's default is None (0 would
                # reach the kernel compiler as a thread block size of 0)
                # (the keyword is `sizes` before futhark 0.27, `user_sizes` from then on)
                word = "user_sizes" if "user_sizes" in inspect.signature(klass.__init__).parameters else "sizes"
                kwargs[word] = {k: v or None for k, v in guards.check_tuning(opts["tuning"]).items()}
            if opts.get("build_options"):
                kwargs["build_options"] = list(opts["build_options"])
        elif opts.get("tuning"):
            names = ", ".join(map(repr, guards.check_tuning(opts["tuning"])))
            raise ValueError(f"unknown tuning parameter(s) {names}; this program has: none (the {build.backend} "
                             "backend runs sequentially and has no tuning parameters)")
        try:
            instance = klass(**kwargs)
        except Exception as exc:
            unknown = re.match(r"Unknown (?:size|tuning parameter): (.*)\nKnown (?:sizes|tuning parameters): ?(.*)",
                               str(exc))
            if unknown:  # the generated code's own check of tuning names, worded as the C backends' is
                known = ", ".join(unknown.group(2).split()) or "none"
                raise ValueError(f"unknown tuning parameter {unknown.group(1)!r}; this program has: {known}") \
                    from None
            raise FutharkError(f"creating the {build.backend} context failed: {type(exc).__name__}: {exc}") from exc
        return cls(build, instance)

    @property
    def alive(self) -> bool:
        return self.instance is not None

    def sync(self) -> None:
        q = getattr(self.instance, "queue", None)
        if q is not None:
            q.finish()

    def device_name(self) -> str:
        q = getattr(self.instance, "queue", None)
        return q.device.name.strip() if q is not None else "host (Python)"

    def platform_name(self) -> str:
        q = getattr(self.instance, "queue", None)
        return q.device.platform.name.strip() if q is not None else ""


class PyEntryFunction:
    def __init__(self, module: "PyFutharkModule", name: str, pyname: str, ins: list[str], outs: list[str],
                 tuple_output: bool = False):
        self._module = module
        self._tuple_output = tuple_output
        self.name = self.__name__ = self.__qualname__ = name
        self._method = getattr(module.context.instance, pyname)
        self._in_types = ins
        self._out_types = outs
        names = module.build.param_names.get(name, [])
        self._names = names if len(names) == len(ins) else [f"in{i}" for i in range(len(ins))]
        self._convs = [self._converter(i, t) for i, t in enumerate(ins)]
        self._unique = [i for i, t in enumerate(ins) if t.startswith("*")]
        # runtime.aliases: nonunique non-primitive results alias nonconsuming non-primitive inputs
        self._alias_in = [i for i, t in enumerate(ins) if not t.startswith("*") and not _is_scalar(t)]
        self._alias_out = bool([t for t in outs if not t.startswith("*") and not _is_scalar(t)])
        self._consuming_calls = 0
        sig = " ".join(f"({n}: {t})" for n, t in zip(self._names, ins))
        self.signature_text = f"entry {name} {sig} : {', '.join(outs)}"
        doc = module.build.docs.get(name, "")
        self.__doc__ = f"{self.signature_text}\n\n{doc + chr(10) + chr(10) if doc else ''}" \
                       f"Backend: {module.backend} (generated Python module)."
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(n if n.isidentifier() else f"in{i}", inspect.Parameter.POSITIONAL_ONLY)
             for i, n in enumerate(self._names)])

    def _converter(self, i: int, tstr: str):
        unique, rank, elem = _parse_type(tstr)
        pname = self._names[i]
        if elem not in PRIMITIVES:
            def opaque(v):
                if isinstance(v, PyArray):
                    return v._live()
                consumed = getattr(v, "_futhark_lab_consumed", None)
                if consumed:   # an opaque value the generated module may have updated in place
                    raise ConsumedError(consumed_message(f"{tstr.lstrip('*')} value", consumed))
                return v  # generated module checks its own opaque type
            return opaque
        if rank == 0:
            conv = scalar_converter(self.name, pname, elem)
            dtype = PRIMITIVES[elem][1]

            def scalar(v):
                c = conv(v)
                if elem == "f16":
                    return np.uint16(c).view(np.float16)
                return dtype.type(c)
            return scalar
        t = ArrayType(tstr, "", rank, elem, {})
        ctx = self._module.context

        def array(v):
            if isinstance(v, PyArray):
                if v._ctx is not ctx:
                    raise ValueError(f"{self.name}(): parameter {pname!r}: array of another module; pass .numpy()")
                data = v._live()
                if data.dtype != t.dtype or data.ndim != rank:
                    raise TypeError(f"{self.name}(): parameter {pname!r} expects {tstr}, got {v.dtype}{list(v.shape)}")
                return data
            if self._module.backend == "pyopencl" and type(v).__module__.startswith("pyopencl"):
                return v.copy() if unique else v   # the user's buffer: never consumed in place
            host = as_host_array(self.name, pname, t, v)
            if unique and (host is v or host.base is not None):
                # the generated module updates consumed arrays in place: never the user's memory (a NumPy array,
                # or a view of a PyTorch tensor's, a memoryview's...)
                host = host.copy()
            return host
        return array

    def __call__(self, *args, **kwargs):
        if kwargs:
            args = guards.bind_keywords(self.name, self._names, args, kwargs)
        if len(args) != len(self._convs):
            raise TypeError(f"{self.name}() takes {len(self._convs)} argument(s), {len(args)} given")
        ctx = self._module.context
        if self._unique:
            guards.check_unique_aliasing(self.name, self._names, self._unique, args)
        with ctx._lock:
            if not ctx.alive:
                raise ValueError(f"{self.name}(): {ctx._closed_reason}")
            conv = [c(a) for c, a in zip(self._convs, args)]
            for i in self._unique:   # runtime.aliases: a copy is consumed where another value may see the memory
                if getattr(args[i], "_alias", None) is not None and aliases.copy_reason(args[i]) is not None:
                    conv[i] = _copy_data(conv[i])
                    ctx.consume_copies += 1
            try:
                res = self._method(*conv)
                ctx.sync()
            except Exception as exc:  # noqa: BLE001 - classified below; arguments were checked before the call
                raise _runtime_error(self.name, exc, self._module.build) from None
            finally:
                self._consuming_calls += bool(self._unique)
                for i in self._unique:  # consumed, as on the C backends (the generated code may reuse its memory)
                    why = (f"entry point {self.name}, parameter {self._names[i]!r} (call #{self._consuming_calls} "
                           f"of {self.name} in this module)")
                    if isinstance(args[i], PyArray):
                        args[i]._consumed = why
                    elif hasattr(args[i], "desc") and hasattr(args[i], "data"):  # a generated opaque value
                        args[i]._futhark_lab_consumed = why
                    if getattr(args[i], "_alias", None) is not None:
                        aliases.leave(args[i])
            if self._tuple_output:
                outs = tuple(res[i] for i in range(len(self._out_types)))
            else:
                outs = res if len(self._out_types) > 1 else (res,)
            wrapped = tuple(self._wrap(o) for o in outs)
            if self._alias_out:
                self._alias_results(wrapped, args)
        return wrapped if len(wrapped) > 1 else wrapped[0]

    def _alias_results(self, wrapped: tuple, args: tuple) -> None:
        """Nonunique results join the group of the call's nonconsuming inputs; an input passed as the user's own
        NumPy/pyopencl array (used without a copy here) makes that group shared with the user's memory.  Opaque
        results are the generated module's objects: they join too, but are never counted out when collected (an
        extra copy at worst)."""
        outs = [w for w, t in zip(wrapped, self._out_types) if not t.startswith("*") and not _is_scalar(t)]
        sources, shared = [], None
        for j in self._alias_in:
            a = args[j]
            if isinstance(a, PyArray) or hasattr(a, "desc") and hasattr(a, "data"):
                sources.append(a)
            elif not _is_scalar(self._in_types[j]):
                shared = (f"it may share memory with the {type(a).__name__} passed as parameter "
                          f"{self._names[j]!r} of {self.name}()")
        for o in [*outs, *sources]:
            if not isinstance(o, PyArray) and getattr(o, "_alias", 0) == 0:
                o._alias = None   # an opaque object of the generated module: give it the slot first
        aliases.alias_outputs(outs, sources, shared)

    def _wrap(self, v):
        if isinstance(v, np.ndarray) and v.ndim > 0 or type(v).__module__.startswith("pyopencl"):
            guards.check_shape(f"entry point {self.name}", tuple(int(d) for d in v.shape), np.dtype(v.dtype).itemsize)
            return PyArray(v, self._module.context)
        if isinstance(v, np.ndarray):
            return v[()]
        return v

    def __repr__(self) -> str:
        return f"<futhark entry point {self.signature_text} [{self._module.backend}]>"


def _is_scalar(t: str) -> bool:
    return t.lstrip("*") in PRIMITIVES


def _copy_data(v: Any) -> Any:
    """A copy of an array (NumPy or pyopencl) or of an opaque value's payload, for a consuming parameter."""
    if hasattr(v, "desc") and hasattr(v, "data") and isinstance(v.data, tuple):
        c = copy.copy(v)   # the generated opaque class's constructor differs by futhark version (0.27: opaques)
        c.data = tuple(p.copy() if hasattr(p, "copy") else p for p in v.data)
        return c
    return v.copy()


def _clean_message(msg: str) -> str:
    return re.sub(r"\s+$", "", msg)


_SIZE_ERRORS = re.compile(r"negative dimensions|array is too big|maximum supported dimension|"
                          r"can only specify one unknown dimension|cannot reshape|out of bounds for axis 0 with size 0|"
                          r"Python int too large|invalid buffer size", re.IGNORECASE)


def _runtime_error(name: str, exc: BaseException, build: Build) -> Exception:
    """The generated module's exception as the binding's: TypeError for its own argument checks, FutharkOutOfMemory
    for allocation failures, FutharkError (naming the entry point) for everything else."""
    msg = build.map_runtime_message(_clean_message(str(exc)))
    if isinstance(exc, TypeError) and msg.startswith("Argument #"):
        return TypeError(f"{name}(): {msg}")
    kind = type(exc).__name__
    if isinstance(exc, MemoryError) or kind == "MemoryError" or "MEM_OBJECT_ALLOCATION_FAILURE" in msg \
            or "OUT_OF_RESOURCES" in msg or "OUT_OF_HOST_MEMORY" in msg \
            or "INVALID_BUFFER_SIZE" in msg:  # larger than the device's largest allocation (sizes were checked)
        return FutharkOutOfMemory(f"entry point {name} failed: out of memory ({kind}: {msg or 'no message'})")
    if isinstance(exc, RecursionError):
        return FutharkError(f"entry point {name} failed: the generated Python code recursed too deeply; "
                            "use a C backend for this program")
    text = f"entry point {name} failed: {msg}" if msg else f"entry point {name} failed: {kind} (no message)"
    if not msg or _SIZE_ERRORS.search(msg) or kind in ("LogicError", "OverflowError"):
        text += ("\nAn array size passed to (or computed by) this entry point is probably negative or too large; "
                 "check the sizes given as arguments.")
    return FutharkError(text)


class PyFutharkModule(ModuleBase):
    """Same public face as binding.FutharkModule, for the generated-Python backends."""

    def __init__(self, build: Build, options):
        self.build = build
        self.backend = build.backend
        self.options = options
        opts = {"platform": options.platform, "device": options.device, "tuning": options.tuning,
                "build_options": options.build_options}
        self.context = PyContext.create(build, opts)
        self.entry_points: dict[str, PyEntryFunction] = {}
        klass = type(self.context.instance)
        for name, (pyname, ins, outs, tuple_output) in entry_point_table(klass).items():
            self._expose(name, PyEntryFunction(self, name, pyname, ins, outs, tuple_output))

    def array(self, data: Any, futhark_type: str | None = None, *, copy: bool | None = None) -> PyArray:
        """Put data into this module's memory once (an OpenCL buffer on pyopencl): always a copy."""
        if copy is False:
            from .dlpack import refusal
            raise BufferError(f"array(copy=False): the {self.backend} backend always copies; {refusal(self.backend)}")
        from . import dlpack
        if dlpack.read_through_dlpack(data):
            obj = data
            data = dlpack.named("array()", "data", obj, lambda: dlpack.host_view(obj))
        data = np.array(data, order="C", copy=True)  # owned: a unique parameter may update it in place
        if not self.context.alive:
            raise ValueError(f"array() of shape {data.shape}: {self.context._closed_reason}")
        if self.backend == "pyopencl":
            import pyopencl.array as cla
            return PyArray(cla.to_device(self.context.instance.queue, data), self.context)
        return PyArray(data, self.context)

    def sync(self) -> None:
        self.context.sync()

    def tuning_parameters(self) -> list[str]:
        """The names ``tuning`` accepts (pyopencl; the sequential python backend has none)."""
        return list(getattr(self.context.instance, "sizes", None) or {})

    def close(self) -> None:
        self.context.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FutharkModule {self.build.source_name} [{self.backend}, futhark " \
               f"{self.build.futhark.version_str}] entry points: {', '.join(self.entry_points)}>"
