"""Known failure modes of Futhark's runtimes and drivers, mapped to a cause and a fix.

A leaf module: the probe, the binding and ``doctor`` all ask it, so a user sees the same explanation everywhere.
Patterns come from real outputs (recorded in tests/data/) of the failures the original scripts hit.
"""

from __future__ import annotations

import dataclasses
import re

DOCS = "environment.md"


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    cause: str
    fix: str
    anchor: str = ""

    def link(self) -> str:
        return f"{DOCS}#{self.anchor}" if self.anchor else DOCS


_RULES: list[tuple[str, Diagnosis]] = [
    (r"FutharkNotFound",
     Diagnosis("the futhark compiler is not installed (and no code generated elsewhere matches)",
               "install futhark (README: 'Getting the futhark compiler'), or run `futhark-lab generate` where it "
               "is installed and set FUTHARK_LAB_GENERATED here", "")),
    (r"CUDA_ERROR_UNSUPPORTED_PTX_VERSION|\b222\b.*(PTX|ptx)|unsupported toolchain",
     Diagnosis("NVRTC is newer than the NVIDIA driver: the driver cannot load the PTX that NVRTC produced "
               "(CUDA error 222)",
               "use an NVRTC no newer than the driver's CUDA version (nvidia-smi shows it), e.g. put that toolkit's "
               "libnvrtc first on LD_LIBRARY_PATH, or upgrade the driver", "cuda-error-222")),
    (r"CUDA_ERROR_NO_DEVICE|no CUDA-capable device|cuInit.*100\b",
     Diagnosis("no CUDA device is visible to this process", "run on a machine with an NVIDIA GPU, or check "
               "CUDA_VISIBLE_DEVICES", "no-device")),
    (r"libcuda\.so[^\n]*(No such file|cannot open)|cannot find -lcuda",
     Diagnosis("the NVIDIA driver library libcuda.so is missing", "install the NVIDIA driver (on nix: put the host's "
               "driver libraries first on LD_LIBRARY_PATH, see the flake's shell hook)", "no-driver")),
    (r"CUDA_ERROR_INSUFFICIENT_DRIVER|\b35\b.*driver|driver version is insufficient",
     Diagnosis("the NVIDIA driver is older than the CUDA runtime the program was built against",
               "upgrade the driver or use an older CUDA toolkit", "cuda-error-222")),
    (r"libnvrtc[^\n]*(No such file|cannot open)|cannot find -lnvrtc",
     Diagnosis("NVRTC (libnvrtc.so) is missing", "install the CUDA toolkit's NVRTC or `pip install "
               "nvidia-cuda-nvrtc` and add its lib directory to LD_LIBRARY_PATH", "nvrtc")),
    (r"clGetPlatformIDs|CL_PLATFORM_NOT_FOUND_KHR|-1001|[Nn]o OpenCL platforms",
     Diagnosis("the OpenCL loader finds no platform (no ICD file in /etc/OpenCL/vendors, or OCL_ICD_VENDORS "
               "points elsewhere)", "install a platform (apt-get install pocl-opencl-icd for CPUs; NVIDIA's ICD "
               "file names libnvidia-opencl.so.1) and check OCL_ICD_VENDORS", "missing-icd")),
    (r"libOpenCL\.so[^\n]*(No such file|cannot open)|cannot find -lOpenCL",
     Diagnosis("the OpenCL ICD loader (libOpenCL.so) is missing", "apt-get install ocl-icd-libopencl1 "
               "ocl-icd-opencl-dev", "missing-icd")),
    (r"atomic_int \*'\)? changes address space of pointer|to type 'volatile __private atomic_int",
     Diagnosis("this futhark's OpenCL kernels (0.27 and newer) use device-scope atomics on generic pointers, which "
               "this OpenCL C compiler (PoCL 3.x: no generic address space) rejects",
               "compile the kernels as OpenCL C 1.2: build_options=['-cl-std=CL1.2'] (futhark-lab adds it "
               "wherever PoCL runs), or use futhark 0.26 or older, or a newer PoCL", "pocl-atomics")),
    (r"[Bb]uild log:\s*$|clBuildProgram|CL_BUILD_PROGRAM_FAILURE|-11\b",
     Diagnosis("the OpenCL platform's kernel compiler failed (its build log is above; NVIDIA's is often empty)",
               "select another platform (or, on an NVIDIA GPU, the cuda backend); see the troubleshooting entry",
               "opencl-build")),
    (r"[Nn]o (suitable|matching) device|[Cc]ould not find.*device|no devices? (found|matching)",
     Diagnosis("no device matches the requested platform/device name", "list devices with `futhark-lab doctor` and "
               "pass device='#0' or a substring of the name", "device-selection")),
    (r"[Oo]ut of memory|CUDA_ERROR_OUT_OF_MEMORY|CL_MEM_OBJECT_ALLOCATION_FAILURE",
     Diagnosis("the device ran out of memory", "use smaller inputs or free other device allocations", "oom")),
]


def diagnose(text: str) -> Diagnosis | None:
    """The first known failure mode whose pattern occurs in ``text``."""
    for pattern, d in _RULES:
        if re.search(pattern, text, re.MULTILINE):
            return d
    return None


def explain(text: str, default_fix: str = "") -> tuple[str, str]:
    """(cause, fix) for an error text, falling back to the text's last meaningful line."""
    d = diagnose(text)
    if d:
        return d.cause, f"{d.fix} (see {d.link()})"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "unknown failure"), default_fix or f"see {DOCS}"
