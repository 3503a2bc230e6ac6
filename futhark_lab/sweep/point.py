"""One point of a sweep measured: (kernel, size, dtype) × the implementations of one device, interleaved in rounds.

``PointRunner`` holds what a sweep shares between its points (the module cache, cache flushers, hardware models,
the per-round policy); the serial sweep and each Dask worker (``sweep.distributed``) run points through it, so a
point is measured the same way wherever it runs.  Builds and contexts are made before the ``exclusive`` section;
inputs, transfers, samples and the rows are made inside it, and each row records that section's start and end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any, Sequence

import numpy as np

from ..errors import PeerUnavailable
from ..measure.sync import entry_synchronised
from ..measure.timing import Measurement, Policy, measure
from .answers import _reference
from .impl import Impl, Prepared
from .impls import prepare
from .kernel import Kernel
from .modules import _ModuleCache
from .rows import _hardware_models, _hw_key, _row


class PointRunner:
    """Measures points for one sweep; ``close()`` frees its modules (CUDA tools first, inside their contexts)."""

    def __init__(self, impls: Sequence[Impl], *, policy: Policy, rounds: int, seed: int, hardware: Any,
                 on_error: str, run_id: str):
        self.policy, self.rounds, self.seed, self.on_error, self.run_id = policy, rounds, seed, on_error, run_id
        self.per_round = dataclasses.replace(policy, cold=False, min_time_s=policy.min_time_s / rounds,
                                             max_time_s=policy.max_time_s / rounds,
                                             min_samples=max(3, policy.min_samples // rounds),
                                             max_samples=max(3, policy.max_samples // rounds), max_noise=0.0)
        # several CPU implementations with thread pools of their own (OpenMP in PyTorch, OpenBLAS in NumPy,
        # futhark's multicore scheduler) interleaved: each block of samples may start after a warm-up long enough
        # for the others' idle workers to stop spinning (OpenBLAS spins ~0.1 s after a call)
        self.cpu_mixed = len({_pool_owner(i) for i in impls if _hw_key(i) == "cpu"} - {None}) > 1
        self.per_round_cpu = dataclasses.replace(self.per_round, warmup_s=max(self.per_round.warmup_s, 0.15)) \
            if ISOLATE_CPU_POOLS else self.per_round
        self.hw = _hardware_models(impls, hardware)
        self.modules = _ModuleCache()
        self.flushers: dict = {}
        if policy.cold:  # one cache-sized buffer per device kind, made once (the GPU's L2, the CPU's last level)
            from ..measure.cacheflush import CacheFlusher
            self.flushers = {k: CacheFlusher(k) for k in {_hw_key(i) for i in impls}}

    def setup(self, kernel: Kernel, impls: Sequence[Impl]) -> None:
        """Build (or find) and load every Futhark program the point needs; failures are left for ``measure``."""
        for impl in impls:
            if impl.kind == "futhark":
                try:
                    self.modules.get(kernel, impl)
                except Exception:  # noqa: BLE001 - remembered by the cache, recorded in the point's rows
                    pass

    def measure(self, kernel: Kernel, size: int, dtype: str, todo: Sequence[Impl],
                exclusive: Any = None) -> list[dict]:
        """The point's rows, one per implementation.  ``exclusive``: a context manager held while anything is
        timed (a Dask lock per device or host); setup happens before it."""
        self.setup(kernel, todo)
        with exclusive if exclusive is not None else contextlib.nullcontext():
            t_start = time.time()
            rows = self._measure(kernel, size, dtype, todo)
            t_end = time.time()
        for row in rows:
            row.update(t_start=t_start, t_end=t_end)
        return rows

    def _measure(self, kernel: Kernel, size: int, dtype: str, todo: Sequence[Impl]) -> list[dict]:
        policy, on_error = self.policy, self.on_error
        rng = np.random.default_rng(self.seed + int(size))
        inputs = kernel.inputs(int(size), dtype, rng)
        reference = _reference(kernel, inputs)
        prepared: dict[str, Prepared | Exception] = {}
        for impl in todo:
            try:
                prepared[impl.name] = prepare(impl, kernel, dtype, inputs, self.modules)
            except Exception as exc:  # noqa: BLE001 - recorded per point
                if on_error == "raise" and not isinstance(exc, PeerUnavailable):  # a missing package: skipped
                    raise
                prepared[impl.name] = exc
        samples: dict[str, list[float]] = {i.name: [] for i in todo}
        firsts: dict[str, Measurement] = {}
        errors: dict[str, str] = {}
        extra: dict[str, dict] = {}
        compiles = _CompileCounts()
        for r in range(self.rounds):
            for impl in todo:  # interleaved: every implementation once per round
                p = prepared[impl.name]
                if isinstance(p, Exception) or impl.name in errors:
                    continue
                try:
                    with _own_pools(impl, self.cpu_mixed):
                        sample_sync = entry_synchronised if p.call_syncs else p.sync
                        before = compiles.before(impl.name, p)
                        m = measure(p.call, device=p.measure_device if p.sync is None else "cpu",
                                    sync=sample_sync,
                                    policy=self.per_round_cpu if self.cpu_mixed and _hw_key(impl) == "cpu"
                                    else self.per_round,
                                    keep_result=(r == 0),
                                    flush=(p.flush or self.flushers.get(_hw_key(impl))) if policy.cold and r == 0
                                    else None,
                                    after_first=compiles.first_marker(impl.name, p, before) if r == 0 else None)
                        compiles.after(impl.name, p, before)
                except Exception as exc:  # noqa: BLE001
                    if on_error == "raise":
                        raise
                    errors[impl.name] = f"{type(exc).__name__}: {exc}"
                    continue
                samples[impl.name] += m.samples_s
                if r == 0:
                    firsts[impl.name] = m
        for name, figures in compiles.rows().items():
            extra.setdefault(name, {}).update(figures)
        for impl in todo:  # device-side time and the batch figure, after the interleaved rounds
            p = prepared[impl.name]
            if isinstance(p, Exception) or impl.name in errors or p.device_timer is None:
                continue
            try:
                extra.setdefault(impl.name, {}).update(_device_figures(p, samples[impl.name], policy))
            except Exception as exc:  # noqa: BLE001 - the call-time row stands without them
                extra.setdefault(impl.name, {})["device_time_error"] = f"{type(exc).__name__}: {exc}"
        rows = []
        for impl in todo:
            p = prepared[impl.name]
            row = _row(self.run_id, kernel, impl, size, dtype, p, samples[impl.name], firsts.get(impl.name),
                       errors.get(impl.name), reference, self.modules, self.hw, inputs)
            row.update(extra.get(impl.name, {}))
            if impl.kind == "futhark":
                module = self.modules.modules.get(self.modules.key(kernel, impl))
                version = getattr(getattr(getattr(module, "build", None), "futhark", None), "version_str", None)
                if version:
                    row["futhark_version"] = version
                from ..builder.tuning import label as tuning_label
                from ..builder.tuning import resolve as tuning_resolve
                row["tuning"] = tuning_label(impl.options.get("tuning"))
                try:
                    row["tuning_params"] = tuning_resolve(impl.options.get("tuning"))[0] or None
                except (OSError, ValueError, TypeError):   # the file changed since: the row's error says more
                    row["tuning_params"] = None
            rows.append(row)
        return rows

    def close(self) -> None:
        for flusher, timer in self.modules.gpu_tools.values():  # inside futhark's contexts: before they are freed
            for tool in (flusher, timer):
                if tool is not None:
                    try:
                        tool.close()
                    except Exception:  # noqa: BLE001
                        pass
        self.modules.close()


class _CompileCounts:
    """Compilations of JIT peers (``Prepared.compiles``) read around each block of samples, never across another
    implementation's block (PyTorch's dynamo counters are process-wide): those of the first call of the point (a new
    shape or dtype: expected, their time is in ``first_call_s``) apart from those during warm-up and samples
    (``recompiles``: the samples then hold compile time, and the row says so)."""

    def __init__(self):
        self.first: dict[str, int] = {}
        self.again: dict[str, int] = {}
        self._mark: dict[str, int] = {}

    def before(self, name: str, p: Prepared) -> int | None:
        return p.compiles() if p.compiles is not None else None

    def first_marker(self, name: str, p: Prepared, before: int | None):
        if before is None:
            return None

        def mark() -> None:
            now = p.compiles()
            self.first[name] = now - before
            self._mark[name] = now
        return mark

    def after(self, name: str, p: Prepared, before: int | None) -> None:
        if before is None:
            return
        start = self._mark.pop(name, before)
        self.again[name] = self.again.get(name, 0) + p.compiles() - start

    def rows(self) -> dict[str, dict]:
        return {name: {"first_call_compiles": self.first.get(name, 0), "recompiles": again}
                for name, again in self.again.items()}


#: A warm-up of 0.15 s (past OpenBLAS's spin time) before each CPU implementation's block of samples in a mixed
#: sweep.  Off: benchmarks/cpu_interplay.py found every implementation's mixed time equal to its time alone with
#: the blocks alone (quiet 2-core VM); on a loaded machine two-thread pools stall alone and mixed alike.
ISOLATE_CPU_POOLS = False
#: Also hold the other libraries' BLAS/OpenMP pools to one thread per block (threadpoolctl); off: measured worse.
POOL_LIMITS = False


def _pool_owner(impl: Impl) -> str | None:
    """Which thread pool a CPU implementation runs on (threadpoolctl's user_api), or None for none of them."""
    if impl.kind == "numpy":
        return "blas"
    if impl.kind in ("torch", "torch-compile"):     # Inductor's CPU code runs on PyTorch's OpenMP pool
        return "openmp"
    if impl.kind == "jax":
        return "xla"
    if impl.kind == "futhark" and impl.backend in ("multicore", "ispc"):
        return "futhark"
    return None


def _own_pools(impl: Impl, mixed: bool):
    """A context for ``impl``'s block of samples.  Holding the other libraries' pools to one thread with
    threadpoolctl was tried and measured worse (benchmarks/cpu_interplay.py: PyTorch's OpenMP pool resized around
    every block stalled its next calls by a scheduler slice), so the isolation is the block itself plus a warm-up
    past the other pools' spin time; ``POOL_LIMITS=True`` restores the threadpoolctl variant for comparison."""
    import contextlib

    if not (mixed and POOL_LIMITS and ISOLATE_CPU_POOLS) or _hw_key(impl) != "cpu":
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    owner = _pool_owner(impl)
    return threadpool_limits({api: 1 for api in ("blas", "openmp") if api != owner})


def _device_figures(p: Prepared, samples: list[float], policy: Policy) -> dict:
    """Device-side span (CUDA events in the implementation's own context/stream) and, for resident inputs, the
    per-call time of k back-to-back launches with one synchronisation."""
    from ..measure.devicetime import batch_per_call, device_times

    # the launch without its own synchronisation where there is one (a futhark entry's call_async): a call that
    # waits for the device inside would leave its launch latency in the span, the lead kernel notwithstanding
    st = device_times(p.launch or p.call, p.device_timer, max_time_s=min(1.0, policy.max_time_s / 3))
    lead = getattr(p.device_timer, "lead", None)
    how = "CUDA events around the call on the implementation's own context/stream"
    how += f", behind a lead kernel ({lead.off})" if lead is not None and lead.off else ", behind a lead kernel"
    out = {"device_time_s_median": st.median, "device_time_s_iqr": st.iqr, "device_time_n": st.n,
           "device_time_how": how}
    if p.launch is not None and p.sync is not None:
        per, k = batch_per_call(p.launch, p.sync, single_s=float(np.median(samples)) if samples else None,
                                budget_s=min(1.0, policy.max_time_s / 3))
        out.update(batch_s_per_call=per, batch_k=k)
    return out
