"""Values that live inside a Futhark context: device-resident arrays and opaque values, and conversion of user
input (NumPy, Python scalars, PyTorch/CuPy via ``__cuda_array_interface__``) into them.

An array result stays on the device until ``.numpy()``; passing it back into an entry point of the same module costs
no copy.  Every value is freed exactly once: by ``free()``, by the garbage collector, or when its context closes.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Callable

import numpy as np

from ..builder.manifest import PRIMITIVES, ArrayType, OpaqueType
from ..errors import FutharkError
from . import aliases

_INT_KINDS = "iu"


class ConsumedError(RuntimeError):
    """A value was passed to a unique (consuming) parameter and may not be used again."""


def consumed_message(what: str, by: Any) -> str:
    """``by``: True, or the call that consumed the value (entry point, parameter, call number)."""
    how = f" by {by}" if isinstance(by, str) else " by an entry point with a unique parameter"
    return f"this {what} was consumed{how} and can no longer be used"


class FutharkValue:
    """Common lifetime handling: a C pointer owned by a context, freed once."""

    __slots__ = ("_ctx", "_ptr", "_type", "_consumed", "_keepalive", "_usable", "_alias", "__weakref__")

    def __init__(self, ctx: Any, ptr: Any, type_: ArrayType | OpaqueType, keepalive: Any = None):
        self._ctx = ctx
        self._ptr = ptr
        self._type = type_
        self._consumed = False
        # the context's key for this type while the value may be passed as is; None once freed or consumed (the
        # fast entry path checks this one slot instead of context, type, consumed)
        self._usable = ctx.value_key(type_)
        self._keepalive = keepalive  # e.g. the torch tensor whose memory a raw array aliases
        self._alias = None   # the aliases.AliasGroup of values that may share its memory; None: none known
        ctx._track(self)

    @property
    def futhark_type(self) -> str:
        return self._type.name

    def _handle(self):
        if not self._ctx.alive:
            raise self._ctx.closed_error(f"this {self._type.name} value")
        if self._ptr is None:
            raise ValueError(f"this {self._type.name} value has been freed")
        if self._consumed:
            raise ConsumedError(consumed_message(f"{self._type.name} value", self._consumed))
        return self._ptr

    def free(self) -> None:
        """Release the value now (idempotent)."""
        self._usable = None
        g = self._alias
        if g is not None:   # aliases.leave, inline: a result freed in a timing loop pays only this
            self._alias = None
            if g.parent is not None:
                g = g.root()
            g.live -= 1
        ptr, self._ptr = self._ptr, None
        keepalive, self._keepalive = self._keepalive, None
        if ptr is not None and self._ctx.alive:
            # the memory (e.g. a PyTorch tensor's) stays referenced until the free, which may wait for a call
            self._ctx._free_value(self._type.ops["free"], ptr, keepalive)

    def __del__(self):
        try:
            self.free()
        except Exception:  # never raise from a finaliser (interpreter shutdown, closed context)
            pass

    def __reduce__(self):
        raise TypeError(f"a Futhark {self._type.name} value lives in its module's context and cannot be pickled or "
                        "copied; use .numpy() (arrays) or .store() (opaque values) for a host copy")


class FutharkArray(FutharkValue):
    """A Futhark array of primitives, resident in the context's memory (device memory on GPU backends)."""

    __slots__ = ()

    @property
    def shape(self) -> tuple[int, ...]:
        ctx = self._ctx
        with ctx._lock:
            p = getattr(ctx.lib, self._type.ops["shape"])(ctx.handle, self._handle())
            return tuple(p[i] for i in range(self._type.rank))

    @property
    def dtype(self) -> np.dtype:
        return self._type.dtype

    @property
    def ndim(self) -> int:
        return self._type.rank

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def numpy(self) -> np.ndarray:
        """Copy to a new NumPy array (device→host on GPU backends); synchronises first."""
        ctx = self._ctx
        out = np.empty(self.shape, dtype=self.dtype)
        ctype = PRIMITIVES[self._type.elemtype][0]
        buf = ctx.ffi.from_buffer(ctype + "[]", out, require_writable=True)
        with ctx._lock:
            ctx.check(getattr(ctx.lib, self._type.ops["values"])(ctx.handle, self._handle(), buf), "values")
            ctx.sync()
        return out

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        return arr.astype(dtype, copy=False) if dtype is not None else arr

    def data_ptr(self) -> int:
        """Raw address of the array's storage (CUdeviceptr on cuda, cl_mem on opencl, host pointer on c).  From
        now on the memory may be written elsewhere, so a consuming entry point gets a copy of it (runtime.aliases)."""
        ptr = self._ctx.raw_pointer(self)
        aliases.mark_shared(self, "its memory was exported (data_ptr(), __cuda_array_interface__ or torch()) "
                                  "and may be another library's tensor now")
        return ptr

    @property
    def __cuda_array_interface__(self) -> dict:
        """Zero-copy view for PyTorch, CuPy, Numba (cuda backend with the raw-pointer API)."""
        if self._ctx.backend != "cuda":
            raise AttributeError("__cuda_array_interface__ exists only for arrays of the cuda backend")
        self._ctx.sync()
        # the second item is the read-only flag: memory taken from a read-only producer stays read-only
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.data_ptr(), aliases.is_read_only(self)),
                "version": 3, "strides": None}

    def __dlpack__(self, *, stream: Any = None, max_version: tuple[int, int] | None = None,
                   dl_device: tuple[int, int] | None = None, copy: bool | None = None) -> Any:
        """Share this array with NumPy, PyTorch, JAX, CuPy (``np.from_dlpack(a)``, ``torch.from_dlpack(a)``...):
        host memory on c/multicore, device memory on cuda; synchronised first; this array's memory stays valid until
        the consumer lets go, even after free() or the module's close() (runtime.dlpack, docs/dlpack.md)."""
        from . import dlpack
        return dlpack.export(self, stream, max_version, dl_device, copy)

    def __dlpack_device__(self) -> tuple[int, int]:
        from . import dlpack
        self._handle()
        return dlpack.array_device(self)

    def torch(self):
        """A PyTorch tensor sharing this array's memory on cuda (no copy); a CPU tensor from a copy otherwise."""
        import torch

        if self._ctx.backend == "cuda" and self._ctx.has_raw:
            t = torch.as_tensor(self, device="cuda")
            return t
        return torch.from_numpy(self.numpy())

    def __repr__(self) -> str:
        state = "freed" if self._ptr is None else ("consumed" if self._consumed else f"shape={self.shape}")
        return f"<FutharkArray {self._type.name} {state} on {self._ctx.backend}>"


class FutharkOpaque(FutharkValue):
    """An opaque Futhark value (record, tuple, sum, array of records); fields readable where the manifest lets."""

    __slots__ = ()

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self._type.fields)

    def field(self, name: str | int) -> Any:
        """Project one field (a new value aliasing this one, or a Python scalar)."""
        name = str(name)
        for f in self._type.fields:
            if f.name == name:
                return self._ctx.project(self, f)
        raise KeyError(f"{self._type.name} has no field {name!r}; fields: {', '.join(self.fields) or 'none'}")

    def __getitem__(self, key: str | int) -> Any:
        return self.field(key)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.field(name)
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __dir__(self):
        return list(super().__dir__()) + [f for f in self.fields if f.isidentifier()]

    def unpack(self) -> tuple:
        """All fields in order (a tuple's components)."""
        return tuple(self.field(f) for f in self.fields)

    def store(self) -> bytes:
        """Serialise with the type's store function (restorable by the same program and compiler version)."""
        return self._ctx.store(self)

    def __repr__(self) -> str:
        state = "freed" if self._ptr is None else ("consumed" if self._consumed else "live")
        extra = f" fields={list(self.fields)}" if self.fields else ""
        return f"<FutharkOpaque {self._type.name}{extra} {state} on {self._ctx.backend}>"


# --------------------------------------------------------------------------- input conversion

def scalar_converter(entry: str, param: str, ftype: str) -> Callable[[Any], Any]:
    """A function turning a Python/NumPy scalar into the C value for ``ftype``, losslessly, or raising TypeError.

    Python ints and floats are weakly typed (as in NumPy's NEP 50): accepted wherever their value fits.  NumPy
    scalars must cast safely.
    """
    dtype = PRIMITIVES[ftype][1]
    kind = dtype.kind

    def fail(value: Any, why: str = "") -> TypeError:
        given = type(value).__name__ if not hasattr(value, "dtype") else str(value.dtype)
        return TypeError(f"{entry}(): parameter {param!r} expects a {ftype} scalar, got {given}"
                         f" {value!r}{': ' + why if why else ''}")

    if kind == "b":
        def conv(v):
            if isinstance(v, (bool, np.bool_)):
                return bool(v)
            raise fail(v)
        return conv

    info = np.iinfo(dtype) if kind in _INT_KINDS else None

    def conv(v):
        if isinstance(v, np.ndarray) and v.ndim == 0:
            if v is np.ma.masked:
                raise fail(v, "a masked value; pass a number")
            v = v[()]
        if isinstance(v, np.generic):
            if not np.can_cast(v.dtype, dtype, casting="safe"):
                raise fail(v, f"casting {v.dtype} to {dtype} could lose information")
            v = v.item()
        elif isinstance(v, bool) and kind != "b":
            v = int(v)
        if kind in _INT_KINDS:
            if not isinstance(v, int):
                raise fail(v)
            if not info.min <= v <= info.max:
                raise fail(v, f"out of range for {ftype} [{info.min}, {info.max}]")
            return v
        if isinstance(v, (int, float)):
            try:
                with np.errstate(all="ignore"):
                    c = dtype.type(v)
            except OverflowError:
                raise fail(v, f"out of range for {ftype}") from None
            if isinstance(v, int):
                # an int must be exactly representable (2**53 + 1 is not an f64, 2**24 + 1 not an f32)
                if not np.isfinite(c) or int(c) != v:
                    raise fail(v, f"not exactly representable as {ftype}; pass a float if rounding is intended")
            elif np.isinf(c) and np.isfinite(v):
                raise fail(v, f"out of range for {ftype} (it would become infinity)")
            if dtype.itemsize == 2:
                return int(np.array(c).view(np.uint16))
            return float(c)
        raise fail(v)
    return conv


def as_host_array(entry: str, param: str, t: ArrayType, value: Any) -> np.ndarray:
    """A C-contiguous NumPy array of exactly ``t``'s dtype and rank, converted losslessly, or TypeError."""
    target = t.dtype
    expected = f"[{']['.join([''] * t.rank)}]{t.elemtype}" if t.rank else t.elemtype

    def fail(why: str) -> TypeError:
        return TypeError(f"{entry}(): parameter {param!r} expects {expected} "
                         f"(a rank-{t.rank} {target} array), got {why}")

    if value is None:
        raise fail("None")
    if isinstance(value, np.ma.MaskedArray) and np.ma.getmaskarray(value).any():
        raise fail("a masked array with masked elements (Futhark has no mask: the hidden values would be used); "
                   "pass .filled(value) or .compressed()")
    if isinstance(value, np.ndarray):
        arr = value
        weak = False
    else:
        if hasattr(value, "__cuda_array_interface__") and not hasattr(value, "__array__"):
            raise fail(f"a device array ({type(value).__name__}) on a backend that cannot take device memory; "
                       "pass a NumPy array, or use the cuda backend")
        from . import dlpack
        try:
            arr = dlpack.host_view(value) if dlpack.read_through_dlpack(value) else np.asarray(value)
        except Exception as exc:  # e.g. a CUDA tensor's __array__ refusing
            raise fail(f"{type(value).__name__} that NumPy cannot read ({exc})") from None
        weak = isinstance(value, (list, tuple))
    if arr.dtype == object:
        raise fail("an object array (ragged or non-numeric data)")
    if arr.ndim != t.rank:
        raise fail(f"a rank-{arr.ndim} array of shape {arr.shape}")
    if arr.dtype != target:
        ok = np.can_cast(arr.dtype, target, casting="safe") and (target.kind != "b" or arr.dtype.kind == "b")
        if not ok and weak and arr.dtype.kind in "iuf" and target.kind in "iuf" and \
                not (arr.dtype.kind == "f" and target.kind in "iu"):
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                conv = arr.astype(target)
            ok = bool(np.array_equal(conv.astype(arr.dtype), arr, equal_nan=arr.dtype.kind == "f"))
            if ok:
                arr = conv
        if not ok:
            raise fail(f"dtype {arr.dtype} (casting {arr.dtype} to {target} could lose information; "
                       f"convert explicitly with .astype(np.{target.name}) if that is intended)")
        if arr.dtype.kind in _INT_KINDS and target.kind == "f" and arr.size:
            # int64/uint64 -> f64 is a "safe" cast to NumPy, yet loses integers beyond 2**53: check the values
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                conv = arr.astype(target)
                exact = bool(np.all(np.isfinite(conv))) and bool(np.array_equal(conv.astype(arr.dtype), arr))
            if not exact:
                raise fail(f"dtype {arr.dtype} with values not exactly representable as {target} (beyond 2**"
                           f"{np.finfo(target).nmant + 1}); convert explicitly with .astype(np.{target.name}) "
                           "if rounding is intended")
            arr = conv
        arr = arr.astype(target)
    if type(arr) is not np.ndarray:  # subclasses (masked without a mask, memmap, matrix): the plain data
        arr = np.asarray(arr)
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr


def check_result_error(code: int, message: str | None, what: str) -> FutharkError:
    from ..errors import FutharkOutOfMemory

    text = (message or "").strip()
    text = f"{what} failed: {text}" if text else f"{what} failed with error code {code}"
    if re.search(r"cuMemcpyHtoD\w*\(.*\n.*error code 1 \(invalid argument\)", text):
        # futhark 0.25.x's new_* ignores a failed device allocation and copies into a null buffer
        text += ("\n(this is how futhark's runtime reports a device allocation that failed: the GPU is out of "
                 "memory for this array)")
        return FutharkOutOfMemory(text, code)
    if code == 3 or re.search(r"out of memory|failed to allocate|cannot allocate", text, re.IGNORECASE):
        return FutharkOutOfMemory(text, code)
    return FutharkError(text, code)
