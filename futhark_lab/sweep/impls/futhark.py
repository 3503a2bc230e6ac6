"""Futhark on one backend: the program built (or found in the cache) once per sweep, inputs put on the device
once per point (``resident``) or copied in by every call, CUDA flushes and events inside futhark's own context."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ...runtime.devices import futhark_device_name
from ..impl import Impl, Prepared, _host, _median_time, _staged
from ..kernel import Kernel
from ..modules import _ModuleCache

KIND = "futhark"


def futhark(backend: str, *, resident: bool = True, name: str | None = None, pinned: bool = False,
            tuning: Any = None, futhark: str | os.PathLike | None = None, **compile_options) -> Impl:
    """Futhark on ``backend``.  ``tuning``: a tuning file (``prog.fut.tuning`` from ``futhark autotune``) or a
    dict, labelled ``+tuned``; ``futhark``: another compiler's path, labelled ``@<its version>``; so one sweep can
    hold default and tuned, or two compilers, side by side (rows record ``tuning`` and ``futhark_version``)."""
    suffix = ""
    if futhark is not None:
        from ...builder.toolchain import find_futhark
        compiler = find_futhark(futhark)       # now: a wrong path fails here, not at every point
        compile_options["futhark"] = compiler.path
        suffix += f"@{compiler.version_str}"
    if tuning is not None:
        from ...builder.tuning import resolve
        values, where = resolve(tuning)       # now: a missing file or a bad line fails here
        compile_options["tuning"] = where if where != "(dict)" else values
        suffix += "+tuned" if values else ""
    label = name or f"futhark-{backend}" + suffix + ("" if resident else "+copy") + ("(pinned)" if pinned else "")
    return Impl(label, "futhark", backend, "cuda" if backend in ("cuda", "opencl", "pyopencl") and
                compile_options.get("platform") not in ("pocl", "Portable") else "cpu",
                resident, compile_options, pinned=pinned)


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    module, _ = modules.get(kernel, impl)
    name = kernel.entry_for(dtype)
    if name not in module.entry_points:
        raise LookupError(f"kernel {kernel.name!r}: the program has no entry point {name!r}; it has "
                          f"{', '.join(module.entry_points) or 'none'}")
    entry = module.entry_points[name]
    dev_name = futhark_device_name(module)
    if module.backend == "cuda":
        inputs = _staged(impl, inputs)
    if impl.resident:
        def put():
            arrays = tuple(module.array(v, copy=True) if isinstance(v, np.ndarray) else v for v in inputs)
            module.sync()
            return arrays
        h2d, dev_inputs = _median_time(put)
        flush = timer = launch = None
        if module.backend == "cuda":
            first_array = next((a for a in dev_inputs if hasattr(a, "data_ptr")), None)
            flush, timer = modules.cuda_tools(kernel, impl, module, first_array)
            if hasattr(entry, "call_async"):
                launch = lambda: entry.call_async(*dev_inputs)  # noqa: E731
        return Prepared(lambda: entry(*dev_inputs), _host, dev_name, h2d, module.sync, flush=flush,
                        device_timer=timer, launch=launch, call_syncs=True)
    timer = modules.cuda_tools(kernel, impl, module)[1] if module.backend == "cuda" else None
    return Prepared(lambda: entry(*inputs), _host, dev_name, math.nan, module.sync, device_timer=timer,
                    call_syncs=True)
