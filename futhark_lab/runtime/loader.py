"""``futhark_lab.compile``: source text or a .fut path in, a live module with callable entry points out."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from ..builder.cache import Build
from ..builder.compiler import compile_program
from ..builder.toolchain import ALL_BACKENDS, GPU_BACKENDS, PY_BACKENDS
from ..builder.tuning import resolve as resolve_tuning
from . import guards
from .context import ContextOptions
from .module import FutharkModule
from .probe import probe_context
from .pyloader import PyFutharkModule


def compile(
    source: str | os.PathLike,
    backend: str = "c",
    *,
    name: str | None = None,
    options: list[str] | tuple[str, ...] = (),
    force: bool = False,
    base_dir: str | os.PathLike | None = None,
    verbose: bool = False,
    device: str | None = None,
    platform: str | None = None,
    unified_memory: bool = False,
    profiling: bool = False,
    logging: bool = False,
    tuning: dict[str, int] | str | os.PathLike | None = None,
    cache_file: str | None = None,
    num_threads: int | None = None,
    build_options: list[str] | tuple[str, ...] = (),
    probe: bool = True,
    timeout: float | None = None,
    futhark: str | os.PathLike | None = None,
) -> Any:
    """Compile a Futhark program for ``backend`` and load it.

    ``source`` is Futhark text or a path to a .fut file.  ``backend`` is one of c, multicore, opencl, cuda, hip,
    ispc, python, pyopencl, or ``"auto"`` (the best backend that works here, chosen by ``doctor``).  Unchanged
    programs come from the build cache.  Context options: ``device`` (name substring or ``"#k"``), ``platform``
    (OpenCL), ``unified_memory`` (CUDA/HIP; off by default so arrays are plain device memory), ``profiling`` (see
    ``module.report()``), ``tuning`` (a dict of parameter -> value, or a tuning file such as the ``prog.fut.tuning``
    futhark autotune writes; ``module.tuning()`` lists the parameters), a kernel ``cache_file`` for GPU backends, ``num_threads``
    (multicore).  ``timeout``: seconds each compiler run may take (default none; Ctrl-C always stops it).
    ``futhark``: the compiler to build with (a path; default $FUTHARK, then PATH), e.g. to compare two versions.
    Returns a module whose attributes are the entry points.
    """
    if backend == "auto":
        raise ValueError("backend='auto' is resolved by futhark_lab.compile (frontdoor), which asks doctor; "
                         "loader.compile needs a concrete backend")
    if backend not in ALL_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(ALL_BACKENDS)} or 'auto'")
    build_options = tuple(build_options)
    tuning_values, tuning_source = resolve_tuning(tuning)
    tuning_values = dict(guards.check_tuning(tuning_values))   # before compiling: a bad value fails fast
    build = compile_program(source, backend, options=options, force=force, base_dir=base_dir,
                            source_name=name, verbose=verbose, timeout=timeout, futhark=futhark)
    if backend in ("opencl", "pyopencl"):
        if platform is None:
            platform = choose_opencl_platform(backend)
        build_options += pocl_workaround(platform, build_options, build.futhark.version)
    ctx_opts = ContextOptions(device=device, platform=platform, unified_memory=unified_memory, profiling=profiling,
                              logging=logging, tuning=tuning_values, cache_file=cache_file,
                              num_threads=num_threads, build_options=build_options, probe=probe)
    try:
        module = load(build, ctx_opts)
    except ValueError as exc:
        if tuning_source not in (None, "(dict)") and "tuning parameter" in str(exc):
            raise ValueError(f"{exc} (from the tuning file {tuning_source}, for the {backend} backend: futhark "
                             "autotune's files name one backend's build of one program)") from None
        raise
    module.tuning_source = tuning_source if tuning_values else None
    # what was compiled, so a sweep can build the same program for other backends (sweep.Kernel(source=module))
    is_path = isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source
                                                  and source.endswith(".fut"))
    module._lab_program = Program(os.path.abspath(source) if is_path else source,
                                  os.path.abspath(base_dir) if base_dir is not None else os.getcwd(), name)
    return module


class Program(NamedTuple):
    """A program as ``compile`` was given it: a path or source text, where its imports resolve, its shown name."""

    source: str | os.PathLike
    base_dir: str
    name: str | None


def load(build: Build, ctx_opts: ContextOptions) -> FutharkModule | PyFutharkModule:
    """A live module for a build.  A first GPU context is created in a child process (``probe``), since futhark's
    GPU runtimes exit() the process on fatal driver errors."""
    if ctx_opts.probe and build.backend in GPU_BACKENDS:
        probe_context(build, ctx_opts)
    if build.backend in PY_BACKENDS:
        return PyFutharkModule(build, ctx_opts)
    return FutharkModule(build, ctx_opts)


_cpu_platform_warned: set[str] = set()


def choose_opencl_platform(backend: str) -> str | None:
    """Never a silent CPU: prefer a GPU platform over PoCL at index 0, and say which platform runs."""
    import sys
    import warnings

    from .opencl_info import OpenCLUnavailable, platforms

    try:
        plats = platforms()
    except OpenCLUnavailable:
        return None  # the probe will explain
    if not plats:
        return None
    gpu = next((p for p in plats if p.has_gpu), None)
    if gpu is None:
        if backend not in _cpu_platform_warned:  # once per backend and process: it does not change
            _cpu_platform_warned.add(backend)
            warnings.warn(f"{backend}: no OpenCL GPU platform found; running on {plats[0].name!r} "
                          f"({', '.join(d.name for d in plats[0].devices)}), which is a CPU", stacklevel=3)
        return None
    if gpu.index != 0:
        print(f"futhark-lab: {backend}: OpenCL platform 0 is {plats[0].name!r}; using GPU platform {gpu.name!r} "
              f"({gpu.devices[0].name}). Pass platform=... to choose another.", file=sys.stderr)
    return gpu.name


def pocl_workaround(platform: str | None, build_options: tuple[str, ...],
                    futhark_version: tuple[int, int, int] = (0, 0, 0)) -> tuple[str, ...]:
    """Kernel build options that make futhark's OpenCL correct on PoCL; applied only where PoCL would run the
    program.

    - ``-cl-opt-disable``: PoCL's kernel optimiser (PoCL 3.x, LLVM 15) miscompiles futhark's single-pass reductions
      (every call after the first returns the first call's result); see environment.md#pocl-reductions.
    - ``-cl-std=CL1.2`` from futhark 0.27: futhark asks for OpenCL C 2.0 and then uses device-scope atomics by
      casting ``__global`` pointers to generic ``atomic_int *``, which PoCL 3.1 (no generic address space) rejects
      ("changes address space of pointer").  As OpenCL C 1.2 the kernels take futhark's older atomics, which PoCL
      compiles; see environment.md#pocl-atomics.
    """
    from .opencl_info import OpenCLUnavailable, selected

    try:
        chosen = selected(platform)
    except OpenCLUnavailable:
        return ()
    if chosen is None or not is_pocl(chosen.name, chosen.version):
        return ()
    extra: tuple[str, ...] = ()
    if "-cl-opt-disable" not in build_options:
        extra += ("-cl-opt-disable",)
    if futhark_version >= POCL_CL12_FROM and not any(o.startswith("-cl-std=") for o in build_options):
        extra += ("-cl-std=CL1.2",)
    return extra


#: First futhark whose OpenCL kernels need generic-address-space atomics (futhark commit d4392b33b).
POCL_CL12_FROM = (0, 27, 0)


def is_pocl(name: str, version: str) -> bool:
    return "Portable Computing Language" in name or "pocl" in version.lower()
