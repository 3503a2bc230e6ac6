"""DLPack both ways, in ctypes: the struct layout (dlpack.h 1.x), capsules for exported Futhark arrays, and taking
any producer's capsule (NumPy, PyTorch, JAX, CuPy) apart without copying.

Export: the capsule's manager context is an entry of ``_exports`` holding the FutharkArray (so its memory, its
context and whatever its memory wraps stay alive) until the consumer calls the deleter, or until an unconsumed
capsule is collected.  Import: ``Imported`` holds the producer's renamed capsule and calls its deleter when it goes.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- dlpack.h

kDLCPU, kDLCUDA, kDLCUDAHost, kDLOpenCL, kDLROCM, kDLCUDAManaged = 1, 2, 3, 4, 10, 13
DEVICE_NAMES = {1: "CPU", 2: "CUDA", 3: "CUDA host (pinned)", 4: "OpenCL", 7: "Vulkan", 8: "Metal", 10: "ROCm",
                11: "ROCm host", 13: "CUDA managed", 14: "oneAPI"}
kDLInt, kDLUInt, kDLFloat, kDLBfloat, kDLComplex, kDLBool = 0, 1, 2, 4, 5, 6
FLAG_READ_ONLY = 1
VERSION = (1, 0)


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32), ("dtype", DLDataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


_Deleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [("version", DLPackVersion), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p),
                ("flags", ctypes.c_uint64), ("dl_tensor", DLTensor)]


# capsule names: PyCapsule keeps the pointer, so they live as long as the process
_NAME = ctypes.create_string_buffer(b"dltensor")
_NAME_V = ctypes.create_string_buffer(b"dltensor_versioned")
_USED = ctypes.create_string_buffer(b"used_dltensor")
_USED_V = ctypes.create_string_buffer(b"used_dltensor_versioned")

_api = ctypes.pythonapi
_Destructor = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_api.PyCapsule_New.restype = ctypes.py_object
_api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _Destructor]
# the destructor gets the dying capsule as a bare address: no reference may be taken to it
_IsValid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)(("PyCapsule_IsValid", _api))
_GetPointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(("PyCapsule_GetPointer", _api))
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_SetName.restype = ctypes.c_int
_api.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]


def dl_dtype(dtype: np.dtype) -> tuple[int, int]:
    """(type code, bits) of a NumPy dtype Futhark has."""
    dtype = np.dtype(dtype)
    code = {"i": kDLInt, "u": kDLUInt, "f": kDLFloat, "b": kDLBool}[dtype.kind]
    return code, dtype.itemsize * 8


def np_dtype(code: int, bits: int, lanes: int) -> np.dtype:
    """The NumPy dtype of a DLPack dtype, or TypeError naming what Futhark lacks."""
    names = {kDLInt: "i", kDLUInt: "u", kDLFloat: "f"}
    if lanes != 1:
        raise TypeError(f"a vector dtype ({lanes} lanes) has no Futhark equivalent")
    if code == kDLBool and bits == 8:
        return np.dtype(bool)
    if code in names and bits in (8, 16, 32, 64) and not (code == kDLFloat and bits == 8):
        return np.dtype(f"{names[code]}{bits // 8}")
    what = {kDLBfloat: "bfloat", kDLComplex: "complex"}.get(code, f"type code {code}")
    raise TypeError(f"DLPack dtype {what}{bits} has no Futhark equivalent (Futhark has i8-i64, u8-u64, f16, f32, "
                    "f64 and bool)")


class DLPackCopyWarning(UserWarning):
    """An array that could have been shared through DLPack was copied (another device, layout or dtype)."""


def warn_copy(message: str) -> None:
    """A DLPackCopyWarning pointing at the user's line (outside futhark_lab and its generated entry points)."""
    import os
    import warnings
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level, f = 2, sys._getframe(1)
    while f is not None and (f.f_code.co_filename.startswith(here) or f.f_code.co_filename == "<string>"):
        f, level = f.f_back, level + 1
    warnings.warn(message, DLPackCopyWarning, stacklevel=level)


def kind(obj: Any) -> str:
    """``torch.Tensor``, ``jaxlib.ArrayImpl``... for messages."""
    return f"{type(obj).__module__.split('.')[0]}.{type(obj).__name__}"


# --------------------------------------------------------------------------- export

class _Export:
    """One capsule's manager context: the struct (memory ctypes owns), its shape/strides, and the array it shows."""

    __slots__ = ("struct", "shape", "strides", "owner", "release", "__weakref__")


_exports: dict[int, _Export] = {}
_exports_lock = threading.Lock()


def _drop(address: int) -> None:
    with _exports_lock:
        e = _exports.pop(address, None)
    if e is not None and e.release is not None:
        e.release()


@_Deleter
def _deleter(address):
    """The managed tensor's deleter (the consumer's call): let go of the Futhark array."""
    try:
        if not sys.is_finalizing():
            _drop(address)
    except Exception:  # noqa: BLE001 - a deleter cannot raise
        pass


@_Destructor
def _capsule_destructor(capsule):
    """A capsule collected unconsumed (its name unchanged): the deleter is ours to call."""
    try:
        for name in (_NAME, _NAME_V):
            if _IsValid(capsule, name):
                address = _GetPointer(capsule, name)
                if address:
                    _drop(address)
                return
    except Exception:  # noqa: BLE001
        pass


# never collected, not even at interpreter shutdown: a consumer may call them as late as it likes
for _f in (_deleter, _capsule_destructor, _NAME, _NAME_V, _USED, _USED_V):
    _api.Py_IncRef(ctypes.py_object(_f))
_DELETER_ADDRESS = ctypes.cast(_deleter, ctypes.c_void_p).value


def make_capsule(data: int, shape: tuple[int, ...], dtype: np.dtype, device: tuple[int, int], versioned: bool,
                 owner: Any, release: Any = None, read_only: bool = False) -> Any:
    """A DLPack capsule of C-contiguous memory at ``data``; ``owner`` is kept alive, and ``release()`` called, until
    the consumer's deleter runs (or the capsule is collected unconsumed)."""
    ndim = len(shape)
    e = _Export()
    e.shape = (ctypes.c_int64 * max(ndim, 1))(*shape)
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    e.strides = (ctypes.c_int64 * max(ndim, 1))(*reversed(strides))
    e.owner, e.release = owner, release
    s = DLManagedTensorVersioned() if versioned else DLManagedTensor()
    e.struct = s
    t = s.dl_tensor
    t.data = data or None
    t.device = DLDevice(*device)
    t.ndim = ndim
    code, bits = dl_dtype(dtype)
    t.dtype = DLDataType(code, bits, 1)
    t.shape = ctypes.cast(e.shape, ctypes.POINTER(ctypes.c_int64))
    t.strides = ctypes.cast(e.strides, ctypes.POINTER(ctypes.c_int64))
    t.byte_offset = 0
    s.deleter = _DELETER_ADDRESS
    if versioned:
        s.version = DLPackVersion(*VERSION)
        s.flags = FLAG_READ_ONLY if read_only else 0
    address = ctypes.addressof(s)
    s.manager_ctx = address
    with _exports_lock:
        _exports[address] = e
    try:
        return _api.PyCapsule_New(address, _NAME_V if versioned else _NAME, _capsule_destructor)
    except BaseException:
        _drop(address)
        raise


def live_exports() -> int:
    """How many exported capsules have not been released yet (tests, leak checks)."""
    return len(_exports)


# --------------------------------------------------------------------------- import

class Imported:
    """A producer's tensor taken from its capsule: where the data is, what it is, and the capsule, whose deleter
    runs when this object goes (so hold it as long as the memory is used)."""

    __slots__ = ("capsule", "managed", "deleter", "data", "shape", "strides", "dtype", "device", "read_only",
                 "producer", "__weakref__")

    def __init__(self):
        self.capsule = self.managed = self.deleter = self.producer = self.dtype = self.strides = None
        self.data, self.shape, self.device, self.read_only = 0, (), (0, 0), False

    def __del__(self):
        self.close()

    def close(self) -> None:
        managed, self.managed = self.managed, None
        if managed and self.deleter:
            try:
                _Deleter(self.deleter)(managed)
            except Exception:  # noqa: BLE001
                pass
        self.producer = None

    @property
    def c_contiguous(self) -> bool:
        if self.strides is None:
            return True
        expect = 1
        for d, s in zip(reversed(self.shape), reversed(self.strides)):
            if d != 1 and s != expect:
                return 0 in self.shape
            expect *= d
        return True

    def __repr__(self) -> str:
        return f"<DLPack {self.dtype}{list(self.shape)} on {DEVICE_NAMES.get(self.device[0], self.device[0])}>"


def device_of(obj: Any) -> tuple[int, int]:
    """``obj.__dlpack_device__()`` as (device type, device id), or TypeError saying what came instead."""
    dev = obj.__dlpack_device__()
    try:
        device = int(dev[0]), int(dev[1])
    except (TypeError, ValueError, IndexError, KeyError):
        raise TypeError(f"{kind(obj)}.__dlpack_device__() returned {dev!r}, not a (device type, device id) pair of "
                        "integers") from None
    if len(dev) != 2:
        raise TypeError(f"{kind(obj)}.__dlpack_device__() returned {dev!r}, not a (device type, device id) pair")
    return device


def lazy_bits(obj: Any) -> str | None:
    """A PyTorch tensor whose memory does not hold its values (the lazy negation or conjugation bit: its DLPack
    export shows the memory as it is, so the values would come out negated): what it carries, or None."""
    for test, what in (("is_neg", "negation"), ("is_conj", "conjugation")):
        f = getattr(obj, test, None)
        if callable(f) and type(obj).__module__.startswith("torch"):
            try:
                if f():
                    return f"PyTorch's lazy {what} bit (its memory holds the values before the {what})"
            except Exception:  # noqa: BLE001 - not PyTorch's method after all
                return None
    return None


def resolved(obj: Any) -> Any:
    """``obj`` with PyTorch's lazy negation/conjugation applied (a copy), or ``obj`` itself."""
    if lazy_bits(obj) is None:
        return obj
    return obj.resolve_neg().resolve_conj()


def take(obj: Any, stream: Any = None) -> Imported:
    """``obj.__dlpack__()`` taken apart: a versioned capsule where the producer offers one, else the legacy one.
    ``stream``: the consumer's stream as the protocol numbers it (None on the CPU)."""
    kwargs = {} if stream is None else {"stream": stream}
    try:
        capsule = obj.__dlpack__(max_version=(1, 1), **kwargs)
    except TypeError:   # a producer older than DLPack 1.0 in Python (NumPy < 2.1, PyTorch < 2.4)
        capsule = obj.__dlpack__(**kwargs)
    versioned = bool(_api.PyCapsule_IsValid(capsule, _NAME_V))
    if not versioned and not _api.PyCapsule_IsValid(capsule, _NAME):
        what = "a used DLPack capsule (one that was taken already)" if any(
            _api.PyCapsule_IsValid(capsule, n) for n in (_USED, _USED_V)) else f"a {type(capsule).__name__}"
        raise TypeError(f"{kind(obj)}.__dlpack__() returned {what}, not an unused DLPack capsule")
    address = _api.PyCapsule_GetPointer(capsule, _NAME_V if versioned else _NAME)
    if versioned:
        m = DLManagedTensorVersioned.from_address(address)
        if m.version.major != 1:
            raise TypeError(f"{type(obj).__name__} exported DLPack {m.version.major}.{m.version.minor}; "
                            "futhark-lab reads 1.x")
        read_only = bool(m.flags & FLAG_READ_ONLY)
    else:
        m = DLManagedTensor.from_address(address)
        read_only = False
    # from here the consumer (us) owns it: the capsule's destructor must no longer call the deleter
    _api.PyCapsule_SetName(capsule, _USED_V if versioned else _USED)
    imp = Imported()
    imp.capsule, imp.managed, imp.deleter, imp.producer = capsule, address, m.deleter, obj
    t = m.dl_tensor
    try:
        if not 0 <= t.ndim <= 64 or (t.ndim and not t.shape):
            raise BufferError(f"{kind(obj)}.__dlpack__() returned an invalid DLPack tensor: ndim {t.ndim}"
                              + (" with no shape" if t.ndim > 0 else ""))
        imp.shape = tuple(int(t.shape[i]) for i in range(t.ndim))
        if any(d < 0 for d in imp.shape):
            raise BufferError(f"{kind(obj)}.__dlpack__() returned an invalid DLPack tensor: negative shape "
                              f"{imp.shape}")
        imp.strides = None if not t.strides else tuple(int(t.strides[i]) for i in range(t.ndim))
        imp.data = (t.data or 0) + int(t.byte_offset)
        if not imp.data and 0 not in imp.shape:
            raise BufferError(f"{kind(obj)}.__dlpack__() returned an invalid DLPack tensor: no data for shape "
                              f"{imp.shape}")
        imp.device = (int(t.device.device_type), int(t.device.device_id))
        imp.read_only = read_only
        imp.dtype = np_dtype(t.dtype.code, t.dtype.bits, t.dtype.lanes)
    except BaseException:
        imp.dtype = None
        imp.close()
        raise
    return imp


#: a fix for what PyTorch's DLPack export refuses, by the words of its message
_TORCH_FIXES = (("require gradient", "pass .detach()"), ("layout other than torch.strided", "pass .to_dense()"),
                ("device type meta", "a meta tensor has no data: make it on a real device"))


def named(entry: str, param: str, obj: Any, take: Any) -> Any:
    """``take()``, with what a DLPack producer refuses or gets wrong (an unsupported dtype, a tensor needing
    grad, a broken ``__dlpack__``) raised again naming the entry point and the parameter."""
    try:
        return take()
    except (TypeError, ValueError, BufferError, IndexError, RuntimeError, NotImplementedError) as e:
        message = str(e)
        name = entry if entry.endswith(")") else f"{entry}()"
        if message.startswith(name):   # named already (a wrong rank, say)
            raise
        fix = next((f"; {f}" for word, f in _TORCH_FIXES if word in message), "")
        deleted = getattr(obj, "is_deleted", None)
        if callable(deleted):
            try:
                if deleted():
                    message, fix = "the array has been deleted (its buffer was freed: .delete() or donation)", ""
            except Exception:  # noqa: BLE001 - a method of that name that means something else
                pass
        if "has no Futhark equivalent" in message:
            fix = "; convert it first (e.g. .to(torch.float32), .astype(np.float32), .real)"
        cls = type(e) if type(e) in (TypeError, ValueError, BufferError) else BufferError
        raise cls(f"{name}: parameter {param!r}: the {kind(obj)} cannot be taken through DLPack: "
                  f"{message}{fix}") from e


# --------------------------------------------------------------------------- Futhark arrays out

#: backends whose arrays are host memory (a futhark array's raw pointer is a plain address)
HOST_BACKENDS = ("c", "multicore", "ispc")

_REFUSED = {
    "opencl": "an OpenCL buffer (cl_mem) is a handle, not an address, and no DLPack consumer (NumPy, PyTorch, JAX, "
              "CuPy) takes OpenCL memory",
    "hip": "the hip backend's export (kDLROCM) is not implemented here: it has never been tested on an AMD GPU",
    "python": "the python backend's arrays are NumPy arrays owned by the generated module, which updates them in "
              "place for consuming entry points",
    "pyopencl": "the pyopencl backend's arrays are pyopencl buffers (cl_mem handles), which no DLPack consumer takes",
}


def refusal(backend: str) -> str | None:
    """Why arrays of ``backend`` cannot be exported through DLPack (None: they can)."""
    if backend in HOST_BACKENDS or backend == "cuda":
        return None
    why = _REFUSED.get(backend, f"the {backend} backend has no DLPack device")
    return (f"DLPack export is offered for the c, multicore and cuda backends, not {backend}: {why}. "
            "Use .numpy() for a host copy, or compile for c/multicore (CPU) or cuda.")


def array_device(arr: Any) -> tuple[int, int]:
    """``arr.__dlpack_device__()``: CPU for the host backends, CUDA (managed with unified memory) and the memory's
    device ordinal for cuda."""
    ctx = arr._ctx
    why = refusal(ctx.backend)
    if why is not None:
        raise BufferError(why)
    if ctx.backend in HOST_BACKENDS:
        return kDLCPU, 0
    from . import cudadrv
    kind = kDLCUDAManaged if ctx.options.unified_memory else kDLCUDA
    return kind, cudadrv.pointer_device(ctx.raw_pointer(arr))


def export(arr: Any, stream: Any = None, max_version: Any = None, dl_device: Any = None, copy: Any = None) -> Any:
    """``arr.__dlpack__(...)`` as the array API standard defines it.  Futhark's stream is private, so the context is
    synchronised first (all of its work done: any consumer stream may use the memory); ``stream=-1`` skips that, as
    the protocol asks."""
    ctx = arr._ctx
    why = refusal(ctx.backend)
    if why is not None:
        raise BufferError(why)
    if not (ctx.has_raw and ctx.raw_aliases):
        raise BufferError(f"futhark {ctx.library.build.futhark.version_str} has no raw-pointer array API (it came "
                          "with futhark 0.25.14): no array can be shared; use .numpy()")
    arr._handle()   # freed, consumed or closed: its own error
    device = array_device(arr)
    host = device[0] == kDLCPU
    if host and stream is not None and stream != -1:
        raise ValueError(f"__dlpack__(stream={stream!r}): a CPU array takes stream=None")
    if not host and stream == 0:
        raise ValueError("__dlpack__(stream=0): 0 is ambiguous for CUDA in the DLPack protocol; pass 1 (legacy "
                         "default stream), 2 (per-thread default stream) or a stream handle")
    kwargs = {} if max_version is None else {"max_version": max_version}
    if dl_device is not None and tuple(int(x) for x in dl_device) != device:
        target = tuple(int(x) for x in dl_device)
        if target == (kDLCPU, 0) and copy is not False:
            return arr.numpy().__dlpack__(**kwargs)   # a host copy: it is the consumer's alone
        raise BufferError(f"__dlpack__(dl_device={target}): this array is on {DEVICE_NAMES.get(device[0])} device "
                          f"{device[1]}" + ("; copy=False forbids the copy to the host" if target == (kDLCPU, 0)
                                            else "; it can be exported there or (as a copy) to the CPU only"))
    if copy:
        if host:
            return arr.numpy().__dlpack__(**kwargs)
        arr = ctx.new_array(arr._type, arr.numpy())   # a device copy of its own (through the host)
    if stream != -1:
        ctx.sync()
    versioned = max_version is not None and int(max_version[0]) >= 1
    from . import aliases
    read_only = aliases.is_read_only(arr)
    if read_only and not versioned:
        raise BufferError("this array may share memory its owner made read-only (a read-only NumPy array or DLPack "
                          "tensor passed in), and a legacy DLPack capsule (a consumer that asked for no max_version) "
                          "cannot say read-only; use a consumer of DLPack >= 1.0 (NumPy >= 2.1, PyTorch >= 2.4), "
                          "__dlpack__(copy=True) or .numpy() for a copy")
    with ctx._lock:
        data = ctx.raw_pointer(arr)
        release = ctx.hold_export(arr)
    aliases.mark_shared(arr, "its memory was exported through DLPack and may be another library's tensor now")
    # the export outlives arr.free() and close(): it holds, besides the array, what keeps the memory that arr may
    # alias alive (another library's tensor, through arr's own keep-alive or its alias group)
    owner = (arr, arr._keepalive, arr._alias.root() if arr._alias is not None else None)
    return make_capsule(data, arr.shape, arr.dtype, device, versioned, owner=owner, release=release,
                        read_only=read_only)


# --------------------------------------------------------------------------- producers in

def is_producer(obj: Any) -> bool:
    """A DLPack producer other than a NumPy array (which the binding reads directly)."""
    return hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__") and not isinstance(obj, np.ndarray)


def read_through_dlpack(obj: Any) -> bool:
    """Whether ``obj``'s values must be read through DLPack rather than ``np.asarray``: a producer NumPy cannot read
    (no ``__array__``), or a PyTorch view whose lazy negation ``np.asarray`` would refuse."""
    return is_producer(obj) and (not hasattr(obj, "__array__") or lazy_bits(obj) is not None)


def host_view(obj: Any) -> np.ndarray:
    """The producer's data as a NumPy array: a view of CPU memory, a copy of device memory."""
    obj = resolved(obj)
    dev = device_of(obj)
    if dev[0] in (kDLCPU, kDLCUDAHost):
        return np.from_dlpack(obj)
    try:
        return np.from_dlpack(obj, device="cpu", copy=True)   # producers that can copy to the host themselves
    except Exception:  # noqa: BLE001 - older producers: their own ways
        pass
    for method in ("cpu", "get"):
        if callable(getattr(obj, method, None)):
            out = getattr(obj, method)()
            return out.numpy() if hasattr(out, "numpy") else np.asarray(out)
    return np.asarray(obj)   # JAX arrays copy themselves to the host


def home_device(ctx: Any) -> tuple[int, int] | None:
    """The DLPack device whose memory ``ctx`` can use without a copy (None: none)."""
    if ctx.backend in HOST_BACKENDS:
        return kDLCPU, 0
    if ctx.backend == "cuda" and ctx.cu_context:
        from . import cudadrv
        return kDLCUDA, cudadrv.context_device(ctx.cu_context)
    return None


def same_memory(home: tuple[int, int] | None, dev: tuple[int, int]) -> bool:
    """Whether memory on ``dev`` is directly usable where ``home`` is (pinned host memory is host memory)."""
    if home is None:
        return False
    if home[0] == kDLCPU:
        return dev[0] in (kDLCPU, kDLCUDAHost)
    return dev[0] in (kDLCUDA, kDLCUDAManaged) and dev[1] == home[1]


def consumer_stream(dev: tuple[int, int]) -> int | None:
    """The ``stream`` argument futhark-lab passes to ``__dlpack__`` for memory on ``dev``: 1 (the legacy default
    stream, which the producer's work is ordered before) on CUDA, None elsewhere."""
    return 1 if dev[0] in (kDLCUDA, kDLCUDAManaged) else None


def wrap(ctx: Any, t: Any, obj: Any, what: str, imp: Imported | None = None) -> tuple[Any, str | None]:
    """``obj``'s memory as a Futhark array of type ``t`` without copying: (array, None), or (None, why not) where a
    copy is needed.  A wrong rank raises TypeError naming ``what`` (the entry point and parameter).  ``imp``: the
    capsule already taken from ``obj`` (a producer may hand out only one), which this takes over."""
    from . import aliases
    dev = device_of(obj) if imp is None else imp.device
    home = home_device(ctx)
    why = None
    if not same_memory(home, dev):
        where = "the CPU" if home is None or home[0] == kDLCPU else f"CUDA device {home[1]}"
        why = (f"it is on {DEVICE_NAMES.get(dev[0], dev[0])} device {dev[1]} and this {ctx.backend} module's memory "
               f"is on {where}")
    elif not (ctx.has_raw and ctx.raw_aliases):
        why = f"futhark {ctx.library.build.futhark.version_str} cannot wrap memory (needs >= 0.25.14)"
    elif (bits := lazy_bits(obj)) is not None:
        why = f"it carries {bits}"
    if why is not None:
        if imp is not None:
            imp.close()
        return None, why
    if imp is None:
        imp = take(obj, consumer_stream(dev))
    if len(imp.shape) != t.rank:
        imp.close()
        raise TypeError(f"{what} expects a rank-{t.rank} {t.dtype} array, got a rank-{len(imp.shape)} "
                        f"{type(obj).__name__} of shape {imp.shape}")
    why = None
    if imp.dtype != t.dtype:
        why = f"its dtype is {imp.dtype}, not {t.dtype}"
    elif not imp.c_contiguous:
        why = f"it is not C-contiguous (strides {imp.strides} elements)"
    elif imp.data % imp.dtype.itemsize:
        why = f"its data is not aligned to its {imp.dtype.itemsize}-byte elements"
    if why is not None:
        imp.close()
        return None, why
    if dev[0] != kDLCPU and dev[0] != kDLCUDAHost and imp.data:
        from . import cudadrv
        cudadrv.sync_legacy_stream(imp.data)   # the producer's work on stream 1 done before futhark's stream runs
    arr = ctx.new_raw_array(t, imp.data, imp.shape, keepalive=imp)
    # the producer still owns this memory: a consuming entry point gets a copy (runtime.aliases)
    aliases.mark_shared(arr, f"it wraps the memory of a {kind(obj)} (DLPack) without copying", keep=imp,
                        read_only=imp.read_only)
    return arr, None
