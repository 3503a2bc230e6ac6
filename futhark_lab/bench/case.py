"""One dataset measured on a set of backends: inputs loaded and checked against the entry point's types, every
backend once per round, answers compared with futhark test's tolerance; the serial ``bench`` and each Dask worker
(``bench.distributed``) run datasets through ``_measure_case``.  Also ``idle``: futhark bench's pause between runs."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..measure.stats import Stats
from ..measure.sync import entry_synchronised
from ..measure.timing import measure
from . import datasets as ds
from .spec import SpecError


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


def _measure_case(run_id, name, path, key, entry, run, backends, modules, setup_s, reference, policy, rounds,
                  check, compile_options, idle_s=0.0, variants=None) -> list[dict]:
    """``backends``: keys of ``modules``; a plain backend name, or a ``bench.variants.Variant`` key (tuning,
    compiler) whose row fields come from ``variants``."""
    def label(b: str) -> dict:
        if variants and b in variants:
            return variants[b].row()
        return {"impl": f"futhark-{b}", "backend": b}

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
        return [{**base, **label(b), "error": f"SpecError: {exc}", "device": ""}
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
        row = {**base, **label(b), "setup_s": setup_s.get(b, math.nan)}
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
    # copy=True: futhark's own memory, as futhark bench loads its inputs (peak memory, in-place consumption), not
    # the dataset's NumPy memory shared (module.array's default on the host backends, docs/dlpack.md)

    def put() -> list:
        vals = [module.array(np.array(v) if own else v, copy=True) if np.ndim(v) else v for v in inputs]
        module.sync()
        return vals

    t = time.perf_counter()
    args = put()
    h2d = time.perf_counter() - t
    setup = None
    if consumed:
        def setup() -> None:
            for i in consumed:
                args[i] = module.array(np.array(inputs[i]) if own else inputs[i], copy=True)
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
