"""``FutharkModule``: a built Futhark library loaded, with one live context and its entry points as attributes,
driven entirely by the manifest.

The C declarations handed to cffi are generated from the manifest (names and types of every entry point and value
operation) plus the documented, fixed context API; no header is parsed.  cffi's ABI mode needs no compiler at load
time, so a library built on one machine loads on another with the same ABI.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..builder.cache import Build
from ..builder.manifest import ArrayType
from . import aliases, dlpack
from .context import Context, ContextOptions
from .entry import EntryFunction
from .library import load_library
from .modulebase import ModuleBase
from .values import FutharkArray, FutharkOpaque, as_host_array


class FutharkModule(ModuleBase):
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
            self._expose(name, EntryFunction(self, e))

    # -- data movement
    def array(self, data: Any, futhark_type: str | None = None, *, copy: bool | None = None) -> FutharkArray:
        """Put data into this context once, to pass to entry points without re-copying.  ``copy=None``: memory this
        context can use as it is (a NumPy array, or any DLPack producer on the same device: host memory on
        c/multicore, the same GPU on cuda) is shared, not copied, so the result aliases ``data`` (docs/dlpack.md);
        anything else is copied (host→device on GPUs).  ``copy=True``: always an array of its own; ``copy=False``:
        shared or BufferError."""
        if isinstance(data, FutharkArray) and data._ctx is self.context:
            return data
        if copy:   # memory futhark allocates (a device or host copy), as before DLPack
            if dlpack.is_producer(data):
                obj = data
                data = dlpack.named("array()", "data", obj, lambda: dlpack.host_view(obj))
            elif hasattr(data, "__cuda_array_interface__") and not isinstance(data, np.ndarray):
                data = _to_host(data)
        if copy is False:
            arr = self.array(data, futhark_type)
            if arr._keepalive is None:
                arr.free()
                raise BufferError(f"array(copy=False): a {dlpack.kind(data)} cannot be shared by this "
                                  f"{self.backend} module (see the DLPackCopyWarning); pass copy=None to allow a copy")
            return arr
        candidates = [t for t in self.manifest.types.values() if isinstance(t, ArrayType)]
        if futhark_type is not None:
            candidates = [t for t in candidates if t.name == futhark_type]
        producer = dlpack.is_producer(data) and not (
            self.backend == "cuda" and not self.context.raw_aliases and hasattr(data, "__cuda_array_interface__"))
        imp = None
        if producer:   # taken once (a producer may hand out one capsule only) and passed on to from_dlpack
            imp = dlpack.named("array()", "data", data, lambda: dlpack.take(data, dlpack.consumer_stream(
                dlpack.device_of(data))))
            dt, rank = imp.dtype, len(imp.shape)
        elif hasattr(data, "__cuda_array_interface__") and not isinstance(data, np.ndarray):
            cai = data.__cuda_array_interface__
            dt, rank = np.dtype(cai["typestr"]), len(cai["shape"])
        else:
            data = np.asarray(data)
            if not data.dtype.isnative:   # big-endian data: the native dtype, copied below (as entry points do)
                data = data.astype(data.dtype.newbyteorder("="))
            dt, rank = data.dtype, data.ndim
        match = [t for t in candidates if t.rank == rank and t.dtype == dt]
        if not match:
            if imp is not None:
                imp.close()
            have = ", ".join(sorted(t.name for t in candidates)) or "none"
            raise TypeError(f"this program has no array type of rank {rank} and dtype {dt} "
                            f"(its array types: {have})")
        t = match[0]
        if producer and not copy:
            return self.from_dlpack(data, t, "array()", "data", imp=imp)
        if hasattr(data, "__cuda_array_interface__") and not isinstance(data, np.ndarray):
            return self.from_device(data, t)
        if self.backend in dlpack.HOST_BACKENDS and not copy:
            arr = share_numpy(self.context, t, data, "array()")
            if arr is not None:
                return arr
        arr = self.context.new_array(t, np.ascontiguousarray(data))
        self.context.sync()  # the copy from the host buffer is asynchronous; the buffer may go after this
        return arr

    def from_dlpack(self, obj: Any, t: ArrayType, entry: str = "array()", param: str = "data",
                    imp: dlpack.Imported | None = None) -> FutharkArray:
        """A DLPack producer (PyTorch, JAX, CuPy...) as a Futhark array of type ``t``: its memory, shared, where
        this context can use it as it is; otherwise a copy, with a DLPackCopyWarning saying why (not for host data
        going to a GPU, which every host input does).  What the producer refuses or gets wrong is raised naming
        ``entry`` and ``param``.  ``imp``: its capsule, already taken."""
        ctx = self.context
        name = entry if entry.endswith(")") else f"{entry}()"
        where = f"{name}: parameter {param!r}"
        arr, why = dlpack.named(name, param, obj, lambda: dlpack.wrap(ctx, t, obj, where, imp))
        if arr is not None:
            return arr
        host = as_host_array(name[:-2], param, t, dlpack.named(name, param, obj, lambda: dlpack.host_view(obj)))
        home = dlpack.home_device(ctx)
        if not (home is not None and home[0] != dlpack.kDLCPU
                and dlpack.device_of(obj)[0] in (dlpack.kDLCPU, dlpack.kDLCUDAHost)):
            dlpack.warn_copy(f"{name}: parameter {param!r}: the {dlpack.kind(obj)} was copied, not shared, because "
                             f"{why}")
        arr = ctx.new_array(t, host)
        ctx.sync()   # the copy from `host` is asynchronous on GPUs
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
            arr = ctx.new_raw_array(t, cai["data"][0], shape, keepalive=obj)
            # the other library still owns this memory: a consuming entry point gets a copy (runtime.aliases)
            aliases.mark_shared(arr, f"it wraps the memory of a {type(obj).__name__} without copying", keep=obj)
            return arr
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

    def _tuning_class(self, name: str) -> str:
        return self.context.tuning_classes().get(name, "")

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


def share_numpy(ctx: Any, t: ArrayType, data: np.ndarray, what: str) -> FutharkArray | None:
    """A NumPy array of exactly ``t``'s dtype and rank as a Futhark array sharing its memory (host backends, futhark
    >= 0.25.14), or None where it must be copied (with a DLPackCopyWarning for a layout that prevents sharing)."""
    if not (ctx.has_raw and ctx.raw_aliases) or type(data) is not np.ndarray or data.dtype != t.dtype \
            or data.ndim != t.rank:
        return None
    if not (data.flags.c_contiguous and data.flags.aligned):
        dlpack.warn_copy(f"{what}: the NumPy array was copied, not shared: it is not "
                         f"{'C-contiguous' if not data.flags.c_contiguous else 'aligned'}")
        return None
    arr = ctx.new_raw_array(t, data.ctypes.data, data.shape, keepalive=data)
    aliases.mark_shared(arr, "it wraps the memory of a NumPy array without copying", keep=data,
                        read_only=not data.flags.writeable)
    return arr


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
