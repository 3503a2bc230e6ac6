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
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..measure.stats import Stats
from ..measure.store import RunStore, load_run, new_run_id
from ..measure.sync import entry_synchronised
from ..measure.timing import Policy, measure
from . import datasets as ds
from .spec import ProgramSpec, SpecError, TestRun, excluded, program_key, read

#: What futhark bench does by default (at least 10 runs and 0.5 s); futhark-lab's own stopping rule on top.
DEFAULT_POLICY = Policy(min_samples=10, min_time_s=0.5, max_time_s=3.0, max_noise=0.01)


def _param_types(module: Any, entry: str) -> list[tuple[str, bool]]:
    if hasattr(module, "manifest"):
        return [(p.type, p.unique) for p in module.manifest.entry_points[entry].inputs]
    fn = module.entry_points[entry]
    return [(t.lstrip("*"), t.startswith("*")) for t in fn._in_types]


def _host(x: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return [np.asarray(_one(v)) for v in x]
    return [np.asarray(_one(x))]


def _one(v: Any) -> Any:
    return v.numpy() if hasattr(v, "numpy") and callable(v.numpy) else v


def _check_types(key: str, desc: str, values: list, params: list[tuple[str, bool]]) -> None:
    want = [t for t, _ in params]
    have = [ds.type_text(v) for v in values]
    if want != have:
        raise SpecError(f"{key}, dataset {desc}: expected input of types: {' '.join(want)}; provided input of "
                        f"types: {' '.join(have)}")


def _memory(module: Any) -> dict:
    """Peak memory per space from the runtime's report (what futhark bench stores as ``bytes``)."""
    try:
        data = json.loads(module.context.report())
        return {str(k): int(v) for k, v in (data.get("memory") or {}).items()}
    except Exception:  # noqa: BLE001 - older runtimes report text, python backends none: memory stays unknown
        return {}


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
):
    """Measure every dataset of ``program``'s ``-- ==`` blocks on each backend; return the run's DataFrame.

    Columns are those of sweeps (``kernel`` is futhark bench's name, ``prog.fut`` or ``prog.fut:entry``; ``impl``
    is ``futhark-<backend>``; ``size`` counts input elements) plus ``program``, ``entry``, ``dataset`` (the
    description futhark bench prints), ``memory`` (peak bytes per memory space) and ``mismatch``.  ``bytes`` is the
    bytes of all inputs and outputs: the least a call can move when it reads every input once.  Re-running with the
    same ``run_id`` resumes.  Datasets are skipped as futhark bench skips them (``nobench``, ``disable``,
    ``no_<backend>``, ``exclude`` tags; runs expecting an error).  ``idle_s`` leaves the device idle that long
    before every run, untimed: futhark bench's pipe round trips to its server leave ~30 µs between runs, which makes
    calls of a few tens of µs on a GPU measurably slower than back-to-back ones (benchmarks/gpu_p4.py).
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
    run_id = run_id or new_run_id("bench")
    store = RunStore(run_id, Path(results) if results is not None else None)
    store.write_environment({**environment(), "method": {**dataclasses.asdict(policy), "rounds": rounds,
                                                          "source": "futhark-lab bench", "program": name,
                                                          "idle_s": idle_s}})
    done = {(r.get("kernel"), r.get("dataset"), r.get("backend")) for r in store.rows()}
    per_round = dataclasses.replace(policy, cold=False, min_time_s=policy.min_time_s / rounds,
                                    max_time_s=policy.max_time_s / rounds,
                                    min_samples=max(3, policy.min_samples // rounds),
                                    max_samples=max(3, policy.max_samples // rounds), max_noise=0.0)

    plans = {b: plan(spec, name, b, entry, exclude) for b in backends}
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
        raise SpecError(f"{name}: every dataset is skipped on {', '.join(backends)}: " + "; ".join(why[:5]))
    modules: dict[str, Any] = {}
    setup_s: dict[str, float] = {}
    reference: dict[str, Any] = {}
    bar = tqdm(total=total, desc=f"bench {run_id}", disable=not progress, unit="dataset")
    finished = 0
    try:
        for (e, desc), run in cases.items():
            key = program_key(name, e)
            todo = [b for b in backends if any((x, y.description) == (e, desc) for x, y in plans[b][0]) and (key, desc, b) not in done]
            if not todo:
                continue
            for b in todo:
                if b not in modules:
                    t0 = time.perf_counter()
                    try:
                        modules[b] = fcompile(path, backend=b, **(compile_options or {}))
                    except Exception as exc:  # noqa: BLE001 - recorded per dataset, as sweeps record it
                        modules[b] = exc
                    setup_s[b] = time.perf_counter() - t0
            rows = _measure_case(run_id, name, path, key, e, run, todo, modules, setup_s, reference, per_round,
                                 rounds, check, compile_options, idle_s)
            for row in rows:
                store.append(row)
                bar.update(1)
                finished += 1
                if on_point is not None:
                    on_point(finished, total)
    finally:
        bar.close()
        for m in list(modules.values()) + list(reference.values()):
            if not isinstance(m, Exception) and hasattr(m, "close"):
                try:
                    m.close()
                except Exception:  # noqa: BLE001
                    pass
    return load_run(store.dir)


def _measure_case(run_id, name, path, key, entry, run, backends, modules, setup_s, reference, policy, rounds,
                  check, compile_options, idle_s=0.0) -> list[dict]:
    base = {"run_id": run_id, "kernel": key, "program": name, "entry": entry, "dataset": run.description,
            "kind": "futhark", "resident": True, "tags": list(run.tags), "source": "futhark-lab",
            "flops": math.nan, "timestamp": time.time()}
    directory = path.parent
    try:
        inputs = ds.load(run.input, directory)
        expected = None
        if check and run.expected.kind == "values":
            expected = ds.load(run.expected.values, directory)
    except SpecError as exc:
        return [{**base, "impl": f"futhark-{b}", "backend": b, "error": f"SpecError: {exc}", "device": ""}
                for b in backends]
    size = int(sum(np.size(v) for v in inputs))
    dtype = ",".join(dict.fromkeys(ds.NAME[np.asarray(v).dtype] for v in inputs)) or "none"
    in_bytes = int(sum(np.asarray(v).nbytes for v in inputs))
    base.update(size=size, dtype=dtype)

    prepared: dict[str, Any] = {}
    for b in backends:
        m = modules[b]
        if isinstance(m, Exception):
            prepared[b] = m
            continue
        try:
            if entry not in m.entry_points:
                raise SpecError(f"{key}: the program has no entry point {entry!r} (it has "
                                f"{', '.join(m.entry_points)})")
            params = _param_types(m, entry)
            _check_types(key, run.description, inputs, params)
            prepared[b] = _prepare(m, entry, inputs, params, idle_s)
        except Exception as exc:  # noqa: BLE001
            prepared[b] = exc
    samples: dict[str, list[float]] = {b: [] for b in backends}
    host: dict[str, list[float]] = {b: [] for b in backends}   # the host clock's times of the same calls
    firsts: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for r in range(rounds):
        for b in backends:       # interleaved: every backend once per round
            p = prepared[b]
            if isinstance(p, Exception) or b in errors:
                continue
            try:
                m = measure(p["call"], sync=entry_synchronised, policy=policy, setup=p["setup"],
                            runtime=p["runtime"])
            except Exception as exc:  # noqa: BLE001
                errors[b] = f"{type(exc).__name__}: {exc}"
                continue
            samples[b] += m.samples_s
            host[b] += m.host_samples_s
            if r == 0:
                firsts[b] = m
    rows = []
    for b in backends:
        row = {**base, "impl": f"futhark-{b}", "backend": b, "setup_s": setup_s.get(b, math.nan)}
        p = prepared[b]
        if isinstance(p, Exception):
            row.update(error=f"{type(p).__name__}: {p}", device="", correct=None)
            rows.append(row)
            continue
        row["device"] = p["device"]
        if b in errors or b not in firsts:
            row.update(error=errors.get(b, "no measurement"), correct=None)
            rows.append(row)
            continue
        first = firsts[b]
        st = Stats.of(samples[b])
        row.update(first.summary())
        row.update({"time_s_median": st.median, "time_s_q1": st.q1, "time_s_q3": st.q3, "time_s_iqr": st.iqr,
                    "time_s_mean": st.mean, "time_s_std": st.std, "time_s_min": st.min,
                    "time_s_ci_low": st.ci_low, "time_s_ci_high": st.ci_high, "n": st.n,
                    "rel_noise": st.rel_noise, "samples_s": samples[b], "error": None, "h2d_s": p["h2d_s"]})
        if host[b]:
            row["host_time_s_median"] = float(np.median(host[b]))
        try:      # one more call for the answer: no result is held while measuring, as futhark bench frees them
            if p["setup"] is not None:
                p["setup"]()
            result = p["call"]()
            t = time.perf_counter()
            got = _host(result)
            row["d2h_s"] = time.perf_counter() - t
            del result
        except Exception as exc:  # noqa: BLE001
            row.update(error=f"{type(exc).__name__}: {exc}", correct=None)
            rows.append(row)
            continue
        row["bytes"] = in_bytes + int(sum(g.nbytes for g in got))
        row["gbps"] = row["bytes"] / st.median / 1e9 if st.median > 0 else math.nan
        row["memory"] = _memory(modules[b])
        row["memory_bytes"] = int(sum(row["memory"].values())) if row["memory"] else None
        want = expected
        if check and run.expected.kind == "auto":
            want = _auto_reference(path, entry, inputs, reference, compile_options)
        if want is not None:
            mism = ds.compare_values(got, want)
            row["correct"], row["mismatch"] = not mism, "\n".join(mism) or None
        else:
            row["correct"] = None
        rows.append(row)
    return rows


_sleep_overshoot: float | None = None


def _calibrate_sleep() -> float:
    """How much later than asked a short ``time.sleep`` returns on this machine (median of 20), after lowering
    this thread's timer slack to 1 µs where Linux allows it (the default 50 µs slack is the size of the gaps)."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(29, 1000, 0, 0, 0)   # PR_SET_TIMERSLACK, in ns; applies to the calling thread
    except (OSError, AttributeError):
        pass
    late = []
    for _ in range(20):
        t = time.perf_counter()
        time.sleep(20e-6)
        late.append(time.perf_counter() - t - 20e-6)
    return sorted(late)[len(late) // 2]


def idle(seconds: float) -> None:
    """Leave the device idle ``seconds``, with this thread blocked as futhark's server blocks on its pipe between
    runs, and no longer than asked: sleep for what the machine's wake-up latency allows, spin the rest to the
    deadline.  (``time.sleep`` alone overshot a 46 µs gap threefold here; spinning alone keeps the CPU hotter than
    futhark's server has it, which made 28 µs GPU calls ~2 µs faster.)"""
    global _sleep_overshoot
    end = time.perf_counter() + seconds
    if _sleep_overshoot is None:
        _sleep_overshoot = _calibrate_sleep()
        end = time.perf_counter() + seconds
    if seconds > 2 * _sleep_overshoot:     # twice: a sleep's lateness varies with its length
        time.sleep(seconds - 2 * _sleep_overshoot)
    while time.perf_counter() < end:
        pass


def _prepare(module: Any, entry: str, inputs: list, params: list[tuple[str, bool]], idle_s: float = 0.0) -> dict:
    fn = module.entry_points[entry]
    consumed = [i for i, (_, u) in enumerate(params) if u]
    clear = getattr(module.context, "clear_caches", None)
    if clear is not None:    # as futhark bench's `clear` before each dataset: frees cached memory, resets the peak
        clear()

    own = module.backend in ("python", "pyopencl")   # their arrays may be the host buffer: give them a copy

    def put() -> list:
        vals = [module.array(np.array(v) if own else v) if np.ndim(v) else v for v in inputs]
        module.sync()
        return vals

    t = time.perf_counter()
    args = put()
    h2d = time.perf_counter() - t
    setup = None
    if consumed:
        def setup() -> None:
            for i in consumed:
                args[i] = module.array(np.array(inputs[i]) if own else inputs[i])
            module.sync()
    if idle_s > 0:
        reload = setup

        def setup() -> None:
            if reload is not None:
                reload()
            idle(idle_s)

    def call():
        return fn(*args)

    from ..runtime.devices import futhark_device_name
    return {"call": call, "sync": module.sync, "setup": setup, "h2d_s": h2d, "device": futhark_device_name(module),
            "runtime": getattr(fn, "last_runtime_s", None)}


def _auto_reference(path: Path, entry: str, inputs: list, cache: dict, compile_options) -> list:
    """``auto output``: the c backend's answer, as futhark bench makes its reference output."""
    from ..runtime.loader import compile as fcompile

    if "c" not in cache:
        cache["c"] = fcompile(path, backend="c", **(compile_options or {}))
    return _host(cache["c"].entry_points[entry](*inputs))
