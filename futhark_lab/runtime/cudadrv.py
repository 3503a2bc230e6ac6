"""The few CUDA driver-API calls futhark-lab makes itself (through ctypes on libcuda, no toolkit needed): working
inside *another runtime's* context — futhark's — without a context switch.

- ``ContextFlusher``: evict the L2 between cold samples with a memset in the measured context itself (a flush in
  PyTorch's context would make each cold Futhark sample also pay a GPU context switch).
- ``EventTimer``: CUDA events recorded on the legacy default stream of a context, around a call; futhark's stream is
  a blocking stream, so the events order with its work and their difference is the device-side span of the call.
- ``spin`` and ``LeadKernel``: a one-thread kernel that busies a stream for a given time, ahead of a measurement's
  start event, so the host's launch latency stays out of a device span.
- ``pinned_empty``: page-locked host memory that every context treats as pinned (CU_MEMHOSTALLOC_PORTABLE), for
  host→device copies as a careful user stages them.

Every function raises ``CudaUnavailable`` (with the reason) where there is no driver.
"""

from __future__ import annotations

import ctypes
import functools
import weakref
from typing import Any

import numpy as np

CU_POINTER_ATTRIBUTE_CONTEXT = 1
CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL = 9
CU_STREAM_LEGACY = 1
CU_MEMHOSTALLOC_PORTABLE = 1
CU_EVENT_DEFAULT = 0


class CudaUnavailable(RuntimeError):
    """No CUDA driver (libcuda) in this process, or a driver call failed."""


@functools.lru_cache(maxsize=1)
def _lib() -> Any:
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise CudaUnavailable(f"libcuda.so.1 cannot be loaded ({exc}): no NVIDIA driver here") from None
    _check(lib.cuInit(0), "cuInit")
    lib.cuMemAlloc_v2.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
    lib.cuMemFree_v2.argtypes = [ctypes.c_uint64]
    lib.cuMemsetD32_v2.argtypes = [ctypes.c_uint64, ctypes.c_uint32, ctypes.c_size_t]
    lib.cuPointerGetAttribute.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
    lib.cuEventElapsedTime.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.c_void_p, ctypes.c_void_p]
    lib.cuEventRecord.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.cuEventSynchronize.argtypes = [ctypes.c_void_p]
    lib.cuEventDestroy_v2.argtypes = [ctypes.c_void_p]
    lib.cuCtxPushCurrent_v2.argtypes = [ctypes.c_void_p]
    lib.cuMemHostAlloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_uint]
    lib.cuMemFreeHost.argtypes = [ctypes.c_void_p]
    lib.cuModuleLoadData.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p]
    lib.cuModuleGetFunction.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_char_p]
    lib.cuLaunchKernel.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 6 + [ctypes.c_uint, ctypes.c_void_p,
                                                                            ctypes.c_void_p, ctypes.c_void_p]
    return lib


def available() -> bool:
    try:
        _lib()
        return True
    except CudaUnavailable:
        return False


def _devices() -> list[ctypes.c_int]:
    """The driver's handles of the devices this process sees, in futhark's order."""
    lib = _lib()
    count = ctypes.c_int()
    _check(lib.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
    out = []
    for i in range(count.value):
        dev = ctypes.c_int()
        _check(lib.cuDeviceGet(ctypes.byref(dev), i), "cuDeviceGet")
        out.append(dev)
    return out


def device_names() -> list[str]:
    """The CUDA devices the driver shows this process, in futhark's order (device #k is the k-th)."""
    names = []
    for dev in _devices():
        buf = ctypes.create_string_buffer(256)
        _check(_lib().cuDeviceGetName(buf, 255, dev), "cuDeviceGetName")
        names.append(buf.value.decode(errors="replace"))
    return names


def device_uuids() -> list[str]:
    """The visible devices' UUIDs as nvidia-smi prints them (``GPU-xxxxxxxx-...``): a device's name across
    processes, hosts and CUDA_VISIBLE_DEVICES renumbering."""
    out = []
    for dev in _devices():
        raw = ctypes.create_string_buffer(16)
        _check(_lib().cuDeviceGetUuid(raw, dev), "cuDeviceGetUuid")
        h = raw.raw.hex()
        out.append(f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def device_memory(index: int = 0) -> int:
    """Total memory of CUDA device ``index`` in bytes (``cuDeviceTotalMem``)."""
    devs = _devices()
    if index >= len(devs):
        raise CudaUnavailable(f"no CUDA device #{index} (the driver shows {len(devs)})")
    total = ctypes.c_size_t()
    _check(_lib().cuDeviceTotalMem_v2(ctypes.byref(total), devs[index]), "cuDeviceTotalMem")
    return int(total.value)


def driver_version() -> str:
    """The driver's CUDA version, e.g. ``13.0``."""
    v = ctypes.c_int()
    _check(_lib().cuDriverGetVersion(ctypes.byref(v)), "cuDriverGetVersion")
    return f"{v.value // 1000}.{v.value % 1000 // 10}"


def _check(code: int, what: str) -> None:
    if code != 0:
        raise CudaUnavailable(f"{what} failed with CUDA error {code}")


def current_context() -> int | None:
    cur = ctypes.c_void_p()
    return cur.value if _lib().cuCtxGetCurrent(ctypes.byref(cur)) == 0 and cur.value else None


def pointer_context(device_pointer: int) -> int:
    """The context that owns a device allocation (e.g. a futhark array's memory)."""
    ctx = ctypes.c_void_p()
    _check(_lib().cuPointerGetAttribute(ctypes.byref(ctx), CU_POINTER_ATTRIBUTE_CONTEXT, int(device_pointer)),
           "cuPointerGetAttribute(CONTEXT)")
    if not ctx.value:  # memory from a pool or VMM (JAX/XLA, cudaMallocAsync) belongs to no context: its device's
        return _primary_context(pointer_device(device_pointer))  # primary one, where the runtime's work runs
    return int(ctx.value)


def pointer_device(device_pointer: int) -> int:
    """The ordinal of the device a device allocation lives on (DLPack's device_id)."""
    dev = ctypes.c_int()
    _check(_lib().cuPointerGetAttribute(ctypes.byref(dev), CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, int(device_pointer)),
           "cuPointerGetAttribute(DEVICE_ORDINAL)")
    return dev.value


def context_device(ctx: int) -> int:
    """The ordinal of the device context ``ctx`` runs on."""
    dev = ctypes.c_int()
    with _Current(ctx):
        _check(_lib().cuCtxGetDevice(ctypes.byref(dev)), "cuCtxGetDevice")
    return dev.value


def sync_legacy_stream(device_pointer: int) -> None:
    """Wait on the host for the legacy default stream of the context owning ``device_pointer``: where a DLPack
    producer asked with ``stream=1`` has put its work (futhark's own stream lives in another context, so no
    device-side ordering with it exists)."""
    lib = _lib()
    with _Current(pointer_context(device_pointer)):
        _check(lib.cuStreamSynchronize(ctypes.c_void_p(CU_STREAM_LEGACY)), "cuStreamSynchronize(legacy stream)")


class _Current:
    """``with _Current(ctx):`` makes ctx current on this thread and restores the previous one."""

    def __init__(self, ctx: int):
        self.ctx = ctx

    def __enter__(self):
        _check(_lib().cuCtxPushCurrent_v2(ctypes.c_void_p(self.ctx)), "cuCtxPushCurrent")

    def __exit__(self, *exc):
        popped = ctypes.c_void_p()
        _lib().cuCtxPopCurrent_v2(ctypes.byref(popped))


class ContextFlusher:
    """Write a buffer of ``nbytes`` (twice the L2, nvbench's l2flush) in context ``ctx`` and wait for it."""

    def __init__(self, ctx: int, nbytes: int):
        self.ctx, self.nbytes = int(ctx), int(nbytes)
        self.ptr = ctypes.c_uint64()
        with _Current(self.ctx):
            _check(_lib().cuMemAlloc_v2(ctypes.byref(self.ptr), self.nbytes), f"cuMemAlloc({self.nbytes})")
        self._value = 0
        self._finalizer = weakref.finalize(self, _free_device, self.ctx, self.ptr.value)

    def __call__(self) -> None:
        lib = _lib()
        self._value ^= 0x5A5A5A5A  # a different value each time: every line is really written
        with _Current(self.ctx):
            _check(lib.cuMemsetD32_v2(self.ptr.value, self._value, self.nbytes // 4), "cuMemsetD32")
            _check(lib.cuCtxSynchronize(), "cuCtxSynchronize")

    def close(self) -> None:
        self._finalizer()


def _free_device(ctx: int, ptr: int) -> None:
    try:
        with _Current(ctx):
            _lib().cuMemFree_v2(ptr)
    except Exception:  # noqa: BLE001 - at exit the context may be gone
        pass


class EventTimer:
    """Device-side span of a call: events recorded on context ``ctx``'s legacy default stream before and after.

    A ``LeadKernel`` keeps the stream busy while the host launches, so the span holds the device's work (and gaps
    between a call's kernels where the host is slower than the device) but no launch latency; a call that waits
    for the device inside gets no lead (see ``LeadKernel``), and its span holds that call's own latencies."""

    def __init__(self, ctx: int):
        self.ctx = int(ctx)
        self.lead = LeadKernel()
        lib = _lib()
        self.start, self.end = ctypes.c_void_p(), ctypes.c_void_p()
        with _Current(self.ctx):
            _check(lib.cuEventCreate(ctypes.byref(self.start), CU_EVENT_DEFAULT), "cuEventCreate")
            _check(lib.cuEventCreate(ctypes.byref(self.end), CU_EVENT_DEFAULT), "cuEventCreate")

    def time(self, fn) -> float:
        """Seconds between the events around ``fn()`` (fn may synchronise itself; the events are already placed),
        a ``LeadKernel`` ahead of the start event."""
        lib = _lib()
        with _Current(self.ctx):
            t0 = self.lead.before()
            _check(lib.cuEventRecord(self.start, None), "cuEventRecord")
        out = fn()   # held past the end event: freeing the result is not the call's work (measure.devicetime)
        with _Current(self.ctx):
            _check(lib.cuEventRecord(self.end, None), "cuEventRecord")
            self.lead.after(t0)
            _check(lib.cuEventSynchronize(self.end), "cuEventSynchronize")
            ms = ctypes.c_float()
            _check(lib.cuEventElapsedTime(ctypes.byref(ms), self.start, self.end), "cuEventElapsedTime")
        del out
        return ms.value / 1e3

    def close(self) -> None:
        lib = _lib()
        with _Current(self.ctx):
            lib.cuEventDestroy_v2(self.start)
            lib.cuEventDestroy_v2(self.end)


# A kernel of one thread that returns once %globaltimer (nanoseconds) has advanced by its argument.  PTX, so the driver
# compiles it for whatever GPU this is; no toolkit needed.
_SPIN_PTX = b"""
.version 6.0
.target sm_50
.address_size 64
.visible .entry futhark_lab_spin(.param .u64 ns)
{
  .reg .pred %p;
  .reg .b64 %d, %t0, %t1, %e;
  ld.param.u64 %d, [ns];
  mov.u64 %t0, %globaltimer;
WAIT:
  mov.u64 %t1, %globaltimer;
  sub.u64 %e, %t1, %t0;
  setp.lt.u64 %p, %e, %d;
  @%p bra WAIT;
  ret;
}
"""
_SPIN: dict[int, ctypes.c_void_p] = {}


def spin(seconds: float, stream: int = 0) -> None:
    """Enqueue on ``stream`` (default: the current context's legacy default stream) a kernel that keeps it busy for
    ``seconds``; returns at once.  In the context current on this thread (the spin kernel is loaded once per
    context)."""
    lib = _lib()
    ctx = current_context()
    if ctx is None:
        raise CudaUnavailable("spin: no CUDA context is current on this thread")
    fn = _SPIN.get(ctx)
    if fn is None:
        mod, fn = ctypes.c_void_p(), ctypes.c_void_p()
        _check(lib.cuModuleLoadData(ctypes.byref(mod), _SPIN_PTX), "cuModuleLoadData(spin kernel)")
        _check(lib.cuModuleGetFunction(ctypes.byref(fn), mod, b"futhark_lab_spin"), "cuModuleGetFunction")
        _SPIN[ctx] = fn
    ns = ctypes.c_uint64(max(0, int(seconds * 1e9)))
    args = (ctypes.c_void_p * 1)(ctypes.cast(ctypes.pointer(ns), ctypes.c_void_p))
    _check(lib.cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, ctypes.c_void_p(stream or None), args, None),
           "cuLaunchKernel(spin kernel)")


class LeadKernel:
    """A spin kernel ahead of a measurement's start event, so that a device span times the work and not the host's
    launch latency (nvbench's blocking kernel).

    Events around a call on an idle GPU: the start event completes at once, then the GPU idles while the host
    launches (Python dispatch, guards, argument packing: 5-50 us), and that wait is inside the span.  With a kernel
    ahead, the start event, the call's work and the end event queue up behind it and run back to back.  nvbench's
    kernel waits on a host flag; this one spins for a time (twice the host's enqueue time seen last, 20 us to
    2 ms), so a call that synchronises inside waits it out instead of deadlocking; such a call (its host time
    covers the whole lead at the longest lead) gets no lead from then on, ``off`` saying why: its end event can only
    be recorded once the host is back from its synchronisation, and keeping a 2 ms lead ahead made that return
    later, not earlier (futhark's sum of squares over 1e8 f32 on an H200: span 134.5 us with the lead, 117.3 us
    without, kernels 96.6-98.0 us by Nsight Compute; results/h200-peers/ncu_device_time*.txt).
    """

    MIN_S, MAX_S = 20e-6, 2e-3

    def __init__(self, clock: Any = None):
        import time
        self.seconds = 0.0           # no lead on the first (discarded) call: its host time sets the first lead
        self.off = ""
        self._clock = clock or time.perf_counter

    def before(self, stream: int = 0) -> float:
        if not self.off and self.seconds > 0:
            try:
                spin(self.seconds, stream)
            except CudaUnavailable as exc:
                self.off = f"no lead kernel: {exc}"
        return self._clock()

    def after(self, t0: float) -> None:
        """After the end event is enqueued: the host's enqueue time sets the next lead."""
        host = self._clock() - t0
        if self.off:
            return
        if self.seconds > 0 and host >= 0.9 * self.seconds:   # the host waited out the lead: too short, or the call
            if self.seconds >= self.MAX_S:                     # synchronises inside (then no lead can help)
                self.off = "the call waits for the device inside it, so a lead kernel cannot hide its launches"
                return
            self.seconds = min(2 * self.seconds, self.MAX_S)
            return
        self.seconds = min(max(2 * host, self.MIN_S), self.MAX_S)


@functools.lru_cache(maxsize=None)
def _primary_context(ordinal: int = 0) -> int:
    lib = _lib()
    dev, ctx = ctypes.c_int(), ctypes.c_void_p()
    _check(lib.cuDeviceGet(ctypes.byref(dev), ordinal), "cuDeviceGet")
    _check(lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "cuDevicePrimaryCtxRetain")
    return int(ctx.value)


def pinned_empty(shape: int | tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """A NumPy array in page-locked host memory (portable: pinned for every context, futhark's included); freed
    when the array is collected."""
    dt = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = max(int(np.prod(shape, dtype=np.int64)) * dt.itemsize, 1)
    p = ctypes.c_void_p()
    with _Current(_primary_context()):
        _check(_lib().cuMemHostAlloc(ctypes.byref(p), nbytes, CU_MEMHOSTALLOC_PORTABLE), f"cuMemHostAlloc({nbytes})")
    buf = (ctypes.c_byte * nbytes).from_address(p.value)
    weakref.finalize(buf, _lib().cuMemFreeHost, p.value)
    return np.frombuffer(buf, dtype=dt, count=int(np.prod(shape, dtype=np.int64))).reshape(shape)


def pinned_copy(a: np.ndarray) -> np.ndarray:
    out = pinned_empty(a.shape, a.dtype)
    np.copyto(out, a)
    return out
