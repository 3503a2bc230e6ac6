"""Run a program's ``-- ==`` datasets through futhark-lab's binding on several backends, into sweep-shaped rows.

Per dataset and backend: the inputs go to the device once (``h2d_s``), the entry point is measured by
``timing.measure`` (a call, which synchronises inside, per sample, the first call apart, warm-up, stop on the CI of
the median), backends interleaved in rounds as in sweeps.  A sample is what futhark's server reports to futhark
bench: entry point + sync timed in C (the call helper's own clock, ``last_runtime_s``), so the binding's Python work
is not in it; the host clock's median of the same calls is kept as ``host_time_s_median``.  Then the result comes
back (``d2h_s``) and is checked against ``output { … }`` (or, for ``auto output``, the ``c`` backend's answer) with
``futhark test``'s tolerance.  Inputs an
entry point consumes (unique parameters) are copied in afresh before every sample, untimed, as futhark bench
reloads them.  Rows go to ``results/<run-id>/points.jsonl`` as they finish, so an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..measure.store import RunStore, load_run, new_run_id
from ..measure.timing import Policy
from .case import _measure_case
from .spec import ProgramSpec, SpecError, TestRun, excluded, program_key, read
from .variants import AUTO, make_variants

#: What futhark bench does by default (at least 10 runs and 0.5 s); futhark-lab's own stopping rule on top.
DEFAULT_POLICY = Policy(min_samples=10, min_time_s=0.5, max_time_s=3.0, max_noise=0.01)


@dataclasses.dataclass
class _Case:
    key: str
    entry: str
    run: TestRun
    inputs: list
    expected: list | None


def plan(spec: ProgramSpec, program: str, backend: str, entry: str | None = None,
         exclude: Sequence[str] = ()) -> tuple[list[tuple[str, TestRun]], list[str]]:
    """(entry, run) pairs futhark bench would run for this backend, and why the others are skipped."""
    todo, skipped = [], []
    for io in spec.cases:
        if entry is not None and io.entry != entry:
            continue
        for r in io.runs:
            why = excluded(spec, r, backend, tuple(exclude))
            if why:
                skipped.append(f"{program_key(program, io.entry)} {r.description}: {why}")
            else:
                todo.append((io.entry, r))
    return todo, skipped


def bench(
    program: str | os.PathLike,
    backends: Sequence[str] = ("c",),
    *,
    entry: str | None = None,
    exclude: Sequence[str] = (),
    run_id: str | None = None,
    results: str | os.PathLike | None = None,
    policy: Policy | None = None,
    rounds: int = 3,
    check: bool = True,
    progress: bool = True,
    compile_options: dict | None = None,
    on_point: Callable[[int, int], None] | None = None,
    idle_s: float = 0.0,
    cluster: Any = None,
    exclusive: str = "host",
    tuning: Any = AUTO,
    futhark: Any = None,
):
    """Measure every dataset of ``program``'s ``-- ==`` blocks on each backend; return the run's DataFrame.

    ``cluster`` (a ``distributed.Client``, a Dask cluster, a scheduler address or ``"local:N"``) measures the
    datasets on Dask workers, each alone on its host (``exclusive="device"``: on its device); see
    ``futhark_lab.measure.cluster``.  The program and its data files must be readable on the workers.

    Columns are those of sweeps (``kernel`` is futhark bench's name, ``prog.fut`` or ``prog.fut:entry``; ``impl``
    is ``futhark-<backend>``; ``size`` counts input elements) plus ``program``, ``entry``, ``dataset`` (the
    description futhark bench prints), ``memory`` (peak bytes per memory space) and ``mismatch``.  ``bytes`` is the
    bytes of all inputs and outputs: the least a call can move when it reads every input once.  Re-running with the
    same ``run_id`` resumes.  Datasets are skipped as futhark bench skips them (``nobench``, ``disable``,
    ``no_<backend>``, ``exclude`` tags; runs expecting an error).  ``idle_s`` leaves the device idle that long
    before every run, untimed: futhark bench's pipe round trips to its server leave ~30 µs between runs, which makes
    calls of a few tens of µs on a GPU measurably slower than back-to-back ones (benchmarks/gpu_p4.py).

    ``tuning``: ``"auto"`` (as futhark bench: ``prog.fut.tuning`` when it exists), ``None`` (none, as ``futhark
    bench --no-tuning``), a tuning file, a dict, or a list of these to compare them (e.g. ``[None, "auto"]``:
    default against tuned).  ``futhark``: a compiler path, or a list of them to compare compilers.  Every backend ×
    compiler × tuning is one ``impl`` (``futhark-cuda@0.27.1+tuned``); each row records ``tuning`` (``(using
    prog.fut.tuning)`` or ``(no tuning file)``), ``tuning_params`` and ``futhark_version``.
    """
    from tqdm.auto import tqdm

    from ..measure.env import environment
    from ..runtime.loader import compile as fcompile

    if not (isinstance(idle_s, (int, float)) and 0 <= idle_s < 10):
        raise ValueError(f"idle_s must be seconds between 0 and 10, got {idle_s!r}")
    path = Path(program)
    spec = read(path)
    name = os.path.normpath(str(program))
    if spec.compile_error is not None:
        raise SpecError(f"{name}: its test expects a compile error; there is nothing to benchmark")
    if not spec.cases:
        raise SpecError(f"{name} has no `-- ==` block with datasets: nothing to benchmark (see `futhark test`'s "
                        "manual for the format, e.g. `-- ==` then `-- random input { [1000000]f32 }`)")
    if entry is not None and entry not in spec.entries():
        raise SpecError(f"{name}: no datasets for entry point {entry!r} (its blocks name: "
                        f"{', '.join(spec.entries()) or 'none'})")
    policy = policy or DEFAULT_POLICY
    variants = {v.key: v for v in make_variants(path, backends, tuning, futhark)}
    if cluster is not None and len({v.backend for v in variants.values()}) != len(variants):
        raise ValueError("comparing tunings or compilers runs in one process (their builds are made here); drop "
                         "the cluster (--workers/--scheduler) or compare one tuning and compiler at a time")
    run_id = run_id or new_run_id("bench")
    store = RunStore(run_id, Path(results) if results is not None else None)
    store.write_environment({**environment(), "method": {**dataclasses.asdict(policy), "rounds": rounds,
                                                          "source": "futhark-lab bench", "program": name,
                                                          "idle_s": idle_s}})
    done = {(r.get("kernel"), r.get("dataset"), r.get("impl")) for r in store.rows()}
    per_round = dataclasses.replace(policy, cold=False, min_time_s=policy.min_time_s / rounds,
                                    max_time_s=policy.max_time_s / rounds,
                                    min_samples=max(3, policy.min_samples // rounds),
                                    max_samples=max(3, policy.max_samples // rounds), max_noise=0.0)

    plans = {k: plan(spec, name, v.backend, entry, exclude) for k, v in variants.items()}
    if progress:
        for k, v in variants.items():
            comp = f", futhark {v.futhark_version}" if v.futhark is not None else ""
            print(f"futhark-lab bench [{k}]: {name} {v.tuning_label}{comp}")
    for b, (_, skipped) in plans.items():
        for s in skipped:
            if progress:
                print(f"futhark-lab bench [{b}]: skipping {s}")
    cases: dict[tuple[str, str], TestRun] = {}
    for b, (todo, _) in plans.items():
        for e, r in todo:
            cases.setdefault((e, r.description), r)
    total = sum(1 for b, (todo, _) in plans.items() for e, r in todo
                if (program_key(name, e), r.description, b) not in done)
    if not any(todo for todo, _ in plans.values()):
        why = sorted({s for _, skipped in plans.values() for s in skipped})
        raise SpecError(f"{name}: every dataset is skipped on {', '.join(variants)}: " + "; ".join(why[:5]))
    modules: dict[str, Any] = {}
    setup_s: dict[str, float] = {}
    reference: dict[str, Any] = {}
    bar = tqdm(total=total, desc=f"bench {run_id}", disable=not progress, unit="dataset")
    finished = 0
    work = []   # (entry, dataset, its TestRun, program key, backends still to measure)
    for (e, desc), run in cases.items():
        key = program_key(name, e)
        todo = [b for b in variants if any((x, y.description) == (e, desc) for x, y in plans[b][0])
                and (key, desc, b) not in done]
        if todo:
            work.append((e, desc, run, key, todo))

    def record(rows: list[dict]) -> None:
        nonlocal finished
        for row in rows:
            if "tuning" not in row:   # rows from a cluster's workers: one variant per backend
                v = next(v for v in variants.values() if v.backend == row.get("backend"))
                row.update(v.row())
            store.append(row)
            bar.update(1)
            finished += 1
            if on_point is not None:
                on_point(finished, total)

    if cluster is not None:
        from .distributed import (
            run_distributed,  # Dask: its own module, with the install hint
        )
        try:
            one = next(iter(variants.values()))
            by_backend = [(e, d, r, k, [variants[b].backend for b in todo]) for e, d, r, k, todo in work]
            run_distributed(cluster, path, name, by_backend, dict(run_id=run_id, per_round=per_round, rounds=rounds,
                                                            check=check,
                                                            compile_options={**(compile_options or {}),
                                                                             **one.compile_kwargs()},
                                                            idle_s=idle_s), record, exclusive,
                            run_dir=store.dir)
        finally:
            bar.close()
        return load_run(store.dir)
    try:
        for e, desc, run, key, todo in work:
            for b in todo:
                if b not in modules:
                    t0 = time.perf_counter()
                    try:
                        modules[b] = fcompile(path, backend=variants[b].backend,
                                              **{**(compile_options or {}), **variants[b].compile_kwargs()})
                    except Exception as exc:  # noqa: BLE001 - recorded per dataset, as sweeps record it
                        modules[b] = exc
                    setup_s[b] = time.perf_counter() - t0
            t_start = time.time()
            rows = _measure_case(run_id, name, path, key, e, run, todo, modules, setup_s, reference, per_round,
                                 rounds, check, compile_options, idle_s, variants)
            for row in rows:
                row.update(t_start=t_start, t_end=time.time())
            record(rows)
    finally:
        bar.close()
        for m in list(modules.values()) + list(reference.values()):
            if not isinstance(m, Exception) and hasattr(m, "close"):
                try:
                    m.close()
                except Exception:  # noqa: BLE001
                    pass
    return load_run(store.dir)


