"""OpenCL platforms and devices through the ICD loader directly (ctypes), so GPU-platform selection works without
pyopencl.  Where PoCL (CPU) is platform 0 and a GPU platform exists, the GPU platform must be chosen explicitly:
``gpu_platform()`` names it."""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import threading

CL_PLATFORM_NAME = 0x0902
CL_PLATFORM_VERSION = 0x0901
CL_DEVICE_TYPE_ALL = 0xFFFFFFFF
CL_DEVICE_TYPE_CPU = 1 << 1
CL_DEVICE_TYPE_GPU = 1 << 2
CL_DEVICE_NAME = 0x102B
CL_DEVICE_TYPE = 0x1000


@dataclasses.dataclass(frozen=True)
class ClDevice:
    name: str
    type: str  # gpu | cpu | other


@dataclasses.dataclass(frozen=True)
class ClPlatform:
    index: int
    name: str
    version: str
    devices: tuple[ClDevice, ...]

    @property
    def has_gpu(self) -> bool:
        return any(d.type == "gpu" for d in self.devices)


class OpenCLUnavailable(RuntimeError):
    pass


def _lib():
    name = ctypes.util.find_library("OpenCL") or "libOpenCL.so.1"
    try:
        return ctypes.CDLL(name)
    except OSError as exc:
        raise OpenCLUnavailable(f"the OpenCL ICD loader (libOpenCL.so) cannot be loaded: {exc}") from None


def _info(fn, obj, param) -> bytes:
    size = ctypes.c_size_t()
    fn(obj, param, 0, None, ctypes.byref(size))
    buf = ctypes.create_string_buffer(size.value)
    fn(obj, param, size, buf, None)
    return buf.raw


#: The ICD loader initialises itself on first use without locking (8 threads at once: SIGSEGV).  Held around every
#: call that may be a process's first OpenCL call: here and around futhark's opencl context creation (binding).
icd_lock = threading.RLock()
_cache: list[ClPlatform] | None = None


def platforms() -> list[ClPlatform]:
    """Every platform the loader finds (empty list: no ICD files); OpenCLUnavailable if no loader.  Cached once
    found: the loader reads its vendor files once per process anyway."""
    global _cache
    with icd_lock:
        if _cache is None:
            found = _platforms()
            if found:
                _cache = found
            return found
        return list(_cache)


def _platforms() -> list[ClPlatform]:
    lib = _lib()
    n = ctypes.c_uint()
    err = lib.clGetPlatformIDs(0, None, ctypes.byref(n))
    if err != 0 or n.value == 0:
        return []
    ids = (ctypes.c_void_p * n.value)()
    lib.clGetPlatformIDs(n.value, ids, None)
    out = []
    for i, pid in enumerate(ids):
        name = _info(lib.clGetPlatformInfo, ctypes.c_void_p(pid), CL_PLATFORM_NAME).rstrip(b"\0").decode().strip()
        ver = _info(lib.clGetPlatformInfo, ctypes.c_void_p(pid), CL_PLATFORM_VERSION).rstrip(b"\0").decode().strip()
        nd = ctypes.c_uint()
        devs: list[ClDevice] = []
        if lib.clGetDeviceIDs(ctypes.c_void_p(pid), ctypes.c_uint64(CL_DEVICE_TYPE_ALL), 0, None,
                              ctypes.byref(nd)) == 0 and nd.value:
            dids = (ctypes.c_void_p * nd.value)()
            lib.clGetDeviceIDs(ctypes.c_void_p(pid), ctypes.c_uint64(CL_DEVICE_TYPE_ALL), nd.value, dids, None)
            for did in dids:
                dname = _info(lib.clGetDeviceInfo, ctypes.c_void_p(did), CL_DEVICE_NAME).rstrip(b"\0").decode()
                dtype = int.from_bytes(_info(lib.clGetDeviceInfo, ctypes.c_void_p(did), CL_DEVICE_TYPE)[:8],
                                       "little")
                kind = "gpu" if dtype & CL_DEVICE_TYPE_GPU else "cpu" if dtype & CL_DEVICE_TYPE_CPU else "other"
                devs.append(ClDevice(dname.strip(), kind))
        out.append(ClPlatform(i, name, ver, tuple(devs)))
    return out


def gpu_platform() -> ClPlatform | None:
    """The first platform with a GPU device, if any."""
    try:
        return next((p for p in platforms() if p.has_gpu), None)
    except OpenCLUnavailable:
        return None


def selected(platform: str | None) -> ClPlatform | None:
    """The platform futhark's runtime picks for a `platform` option (name substring or "#k"; None: the first)."""
    plats = platforms()
    if not plats:
        return None
    return next((p for p in plats if platform and (platform in p.name or platform == f"#{p.index}")), plats[0])


def describe(platform: str | None) -> str:
    """'Platform: first device' for the platform an option selects."""
    p = selected(platform)
    if p is None:
        return "no OpenCL platform"
    return f"{p.name}: {p.devices[0].name}" if p.devices else p.name
