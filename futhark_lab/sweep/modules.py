"""The sweep's module cache: one compiled module per (program, backend, options), so several entry points of one
program share one build and context, whose setup time is recorded once.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .impl import Impl
from .kernel import Kernel


class _ModuleCache:
    """One compiled module per (program, backend, options) for the whole sweep, so several entry points of one
    program share it; build + context time recorded once."""

    def __init__(self):
        self.modules: dict[tuple, Any] = {}
        self.setup_s: dict[tuple, float] = {}
        self.gpu_tools: dict[tuple, tuple] = {}

    def cuda_tools(self, kernel: Kernel, impl: Impl, module: Any, array: Any = None) -> tuple:
        """(flusher, event timer) working in the module's own CUDA context, made once per module (None, None where
        the driver cannot be reached)."""
        key = self.key(kernel, impl)
        if key not in self.gpu_tools:
            try:
                from ..measure.hardware import cuda_attributes
                from ..runtime.cudadrv import ContextFlusher, EventTimer
                ctx = module.cuda_context(array)
                l2 = cuda_attributes().get("l2_bytes") or 50 * 2**20
                self.gpu_tools[key] = (ContextFlusher(ctx, 2 * l2), EventTimer(ctx))
            except Exception:  # noqa: BLE001 - the sweep falls back to the device-wide flush, no device time
                self.gpu_tools[key] = (None, None)
        return self.gpu_tools[key]

    @staticmethod
    def key(kernel: Kernel, impl: Impl) -> tuple:
        return (kernel._program.key, impl.backend, json.dumps(impl.options, sort_keys=True, default=str))

    def get(self, kernel: Kernel, impl: Impl):
        from ..runtime.frontdoor import compile as fcompile

        key = self.key(kernel, impl)
        if key not in self.modules:
            prog = kernel._program
            t0 = time.perf_counter()
            try:
                self.modules[key] = fcompile(prog.source, backend=impl.backend, base_dir=prog.base_dir,
                                             name=prog.shown, **impl.options)
            except Exception as exc:  # noqa: BLE001 - remembered: a backend that failed once is not rebuilt per point
                self.modules[key] = exc
            self.setup_s[key] = time.perf_counter() - t0
        if isinstance(self.modules[key], Exception):
            raise self.modules[key]
        return self.modules[key], self.setup_s[key]

    def close(self):
        for m in self.modules.values():
            try:
                if not isinstance(m, Exception):
                    m.close()
            except Exception:
                pass
