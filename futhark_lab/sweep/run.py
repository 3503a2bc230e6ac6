"""Declarative sweeps (in the spirit of ``triton.testing.perf_report``) into tidy, durable DataFrames.

A ``Kernel`` says what to compute (Futhark source + entry, NumPy reference, PyTorch equivalent), how to make seeded
inputs for a size, and how many bytes and flops one call moves and does.  ``Impl``s say who computes it (Futhark on a
backend, PyTorch on a device, NumPy, any callable).  ``sweep`` measures every implementation at every size and
dtype, interleaving implementations within rounds, checking each answer against the reference, and appending every
finished point to ``results/<run_id>/points.jsonl`` at once, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..measure.store import RunStore, load_run, new_run_id
from ..measure.sync import entry_synchronised
from ..measure.timing import Measurement, Policy, measure
from .answers import _reference
from .failures import ON_ERROR, _report_failures
from .impl import Impl, Prepared
from .impls import prepare
from .kernel import Kernel
from .modules import _ModuleCache
from .rows import _hardware_models, _hw_key, _row

# --------------------------------------------------------------------------- the sweep

def sizes_between(lo: float, hi: float, per_decade: int = 1) -> list[int]:
    """Log-spaced sizes from lo to hi inclusive (``1e3:1e8`` on the command line)."""
    n = int(round(math.log10(hi / lo) * per_decade))
    return sorted({int(round(v)) for v in np.logspace(math.log10(lo), math.log10(hi), n + 1)})


def sweep(
    kernels: Kernel | Iterable[Kernel],
    impls: Sequence[Impl],
    *,
    sizes: Sequence[int] | None = None,
    dtypes: Sequence[str] | None = None,
    run_id: str | None = None,
    results: str | os.PathLike | None = None,
    policy: Policy | None = None,
    rounds: int = 3,
    seed: int = 0,
    progress: bool = True,
    hardware: Any = "auto",
    on_error: str = "raise-if-all",
    on_point: Callable[[int, int], None] | None = None,
):
    """Measure ``impls`` on ``kernels`` over ``sizes`` × ``dtypes``; return a tidy DataFrame (one row per point).

    Re-running with the same ``run_id`` resumes: points already in results/<run_id>/points.jsonl are not measured
    again.  ``on_point(done, total)`` is called after each finished point (progress for a GUI).
    A failing point keeps its error in the row's ``error`` column.  ``on_error`` says what else happens:
    ``"raise-if-all"`` (default) warns with the first error of each implementation that failed somewhere and raises
    ``SweepFailed`` (the rows are in its ``.df`` and on disk) when an implementation failed at every point of a
    kernel; ``"warn"`` only warns; ``"record"`` says nothing; ``"raise"`` stops at the first failure.
    """
    from tqdm.auto import tqdm

    from ..measure.env import environment

    if on_error not in ON_ERROR:
        raise ValueError(f"on_error={on_error!r}: choose one of {', '.join(map(repr, ON_ERROR))}")
    kernels = [kernels] if isinstance(kernels, Kernel) else list(kernels)
    unchecked = [k.name for k in kernels if k.numpy is None and k.check is None]
    if unchecked:
        warnings.warn(f"no NumPy reference for {', '.join(map(repr, unchecked))}: answers are not checked (the "
                      "'correct' column stays empty); pass Kernel(numpy=...) to check them", stacklevel=2)
    run_id = run_id or new_run_id()
    store = RunStore(run_id, Path(results) if results is not None else None)
    policy = policy or Policy()
    store.write_environment({**environment(), "method": {**dataclasses.asdict(policy), "rounds": rounds,
                                                          "seed": seed}})
    done = store.done_keys()
    per_round = dataclasses.replace(policy, cold=False, min_time_s=policy.min_time_s / rounds,
                                    max_time_s=policy.max_time_s / rounds,
                                    min_samples=max(3, policy.min_samples // rounds),
                                    max_samples=max(3, policy.max_samples // rounds), max_noise=0.0)
    # several CPU implementations with thread pools of their own (OpenMP in PyTorch, OpenBLAS in NumPy, futhark's
    # multicore scheduler) interleaved: each block of samples starts after a warm-up long enough for the others'
    # idle workers to stop spinning (OpenBLAS spins ~0.1 s after a call)
    cpu_mixed = len({_pool_owner(i) for i in impls if _hw_key(i) == "cpu"} - {None}) > 1
    per_round_cpu = dataclasses.replace(per_round, warmup_s=max(per_round.warmup_s, 0.15)) if ISOLATE_CPU_POOLS \
        else per_round
    hw = _hardware_models(impls, hardware)
    modules = _ModuleCache()
    flushers = {}
    if policy.cold:  # one cache-sized buffer per device kind, made once (the GPU's L2, the CPU's last level)
        from ..measure.cacheflush import CacheFlusher
        flushers = {k: CacheFlusher(k) for k in {_hw_key(i) for i in impls}}
    plan = [(k, n, d) for k in kernels for d in (dtypes or k.dtypes) if d in k.dtypes or dtypes is None
            for n in (sizes or k.sizes)]
    total = sum(1 for k, n, d in plan for i in impls if (k.name, i.name, int(n), d) not in done)
    bar = tqdm(total=total, desc=f"sweep {run_id}", disable=not progress, unit="point")
    finished = 0
    outcome: dict[tuple[str, str], list[str | None]] = {}  # (kernel, impl) -> each point's error (None: fine)
    try:
        for kernel, size, dtype in plan:
            todo = [i for i in impls if (kernel.name, i.name, int(size), dtype) not in done]
            if not todo:
                continue
            rng = np.random.default_rng(seed + int(size))
            inputs = kernel.inputs(int(size), dtype, rng)
            reference = _reference(kernel, inputs)
            prepared: dict[str, Prepared | Exception] = {}
            for impl in todo:
                try:
                    prepared[impl.name] = prepare(impl, kernel, dtype, inputs, modules)
                except Exception as exc:  # noqa: BLE001 - recorded per point
                    if on_error == "raise":
                        raise
                    prepared[impl.name] = exc
            samples: dict[str, list[float]] = {i.name: [] for i in todo}
            firsts: dict[str, Measurement] = {}
            errors: dict[str, str] = {}
            for r in range(rounds):
                for impl in todo:  # interleaved: every implementation once per round
                    p = prepared[impl.name]
                    if isinstance(p, Exception) or impl.name in errors:
                        continue
                    try:
                        with _own_pools(impl, cpu_mixed):
                            sample_sync = entry_synchronised if p.call_syncs else p.sync
                            m = measure(p.call, device=p.measure_device if p.sync is None else "cpu",
                                        sync=sample_sync,
                                        policy=per_round_cpu if cpu_mixed and _hw_key(impl) == "cpu" else per_round,
                                        keep_result=(r == 0),
                                        flush=(p.flush or flushers.get(_hw_key(impl))) if policy.cold and r == 0
                                        else None)
                    except Exception as exc:  # noqa: BLE001
                        if on_error == "raise":
                            raise
                        errors[impl.name] = f"{type(exc).__name__}: {exc}"
                        continue
                    samples[impl.name] += m.samples_s
                    if r == 0:
                        firsts[impl.name] = m
            extra: dict[str, dict] = {}
            for impl in todo:  # device-side time and the batch figure, after the interleaved rounds
                p = prepared[impl.name]
                if isinstance(p, Exception) or impl.name in errors or p.device_timer is None:
                    continue
                try:
                    extra[impl.name] = _device_figures(p, samples[impl.name], policy)
                except Exception as exc:  # noqa: BLE001 - the call-time row stands without them
                    extra[impl.name] = {"device_time_error": f"{type(exc).__name__}: {exc}"}
            for impl in todo:
                p = prepared[impl.name]
                row = _row(run_id, kernel, impl, size, dtype, p, samples[impl.name], firsts.get(impl.name),
                           errors.get(impl.name), reference, modules, hw, inputs)
                row.update(extra.get(impl.name, {}))
                store.append(row)
                outcome.setdefault((kernel.name, impl.name), []).append(row.get("error"))
                bar.update(1)
                finished += 1
                if on_point is not None:
                    on_point(finished, total)
            del prepared, inputs
    finally:
        bar.close()
        for flusher, timer in modules.gpu_tools.values():  # inside futhark's contexts: before they are freed
            for tool in (flusher, timer):
                if tool is not None:
                    try:
                        tool.close()
                    except Exception:  # noqa: BLE001
                        pass
        modules.close()
    df = load_run(store.dir)
    _report_failures(outcome, on_error, df)
    return df


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
    if impl.kind == "torch":
        return "openmp"
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

    st = device_times(p.call, p.device_timer, max_time_s=min(1.0, policy.max_time_s / 3))
    out = {"device_time_s_median": st.median, "device_time_s_iqr": st.iqr, "device_time_n": st.n,
           "device_time_how": "CUDA events around the call on the implementation's own context/stream"}
    if p.launch is not None and p.sync is not None:
        per, k = batch_per_call(p.launch, p.sync, single_s=float(np.median(samples)) if samples else None,
                                budget_s=min(1.0, policy.max_time_s / 3))
        out.update(batch_s_per_call=per, batch_k=k)
    return out
