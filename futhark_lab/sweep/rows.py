"""One finished point as a tidy row: statistics of the samples, setup/transfer times, the answer checked, bytes and
flops counted, and % of the attribute peak and of the measured ceiling that applies.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from ..measure.stats import Stats
from .answers import check_answer
from .impl import Impl, _host


def _nbytes(x: Any) -> int:
    if isinstance(x, (tuple, list)):
        return sum(_nbytes(v) for v in x)
    return int(np.asarray(x).nbytes)


def _row(run_id, kernel, impl, size, dtype, p, samples, first, error, reference, modules, hw, inputs=()) -> dict:
    declared = kernel.bytes_moved is not None
    row: dict[str, Any] = {"run_id": run_id, "kernel": kernel.name, "impl": impl.name, "kind": impl.kind,
                           "backend": impl.backend, "size": int(size), "dtype": dtype,
                           "resident": impl.resident, "pinned": impl.pinned,
                           "bytes": int(kernel.bytes_moved(int(size), dtype)) if declared
                           else _nbytes(inputs) + (_nbytes(reference) if reference is not None else 0),
                           "bytes_counted": "declared" if declared else "inputs+outputs",
                           "flops": int(kernel.flops(int(size), dtype)) if kernel.flops is not None else math.nan,
                           "timestamp": time.time()}
    if isinstance(p, Exception):
        row.update(error=f"{type(p).__name__}: {p}", device="", correct=None)
        return row
    row["device"] = p.device_name
    if error or first is None:
        row.update(error=error or "no measurement", correct=None)
        return row
    st = Stats.of(samples)
    row.update(first.summary())
    row.update({"time_s_median": st.median, "time_s_q1": st.q1, "time_s_q3": st.q3, "time_s_iqr": st.iqr,
                "time_s_mean": st.mean, "time_s_std": st.std, "time_s_min": st.min, "time_s_ci_low": st.ci_low,
                "time_s_ci_high": st.ci_high, "n": st.n, "rel_noise": st.rel_noise, "samples_s": samples,
                "error": None})
    row["h2d_s"] = p.h2d_s
    if impl.kind == "futhark":  # building (or finding) the program and creating its context, once per run
        row["setup_s"] = modules.setup_s.get(modules.key(kernel, impl), math.nan)
    # device->host of the result, timed apart from compute
    t = time.perf_counter()
    host = (p.to_host or _host)(first.result)
    row["d2h_s"] = time.perf_counter() - t
    if not declared and reference is None:  # no reference: the output this implementation returned
        row["bytes"] = _nbytes(inputs) + _nbytes(host)
    if reference is not None or kernel.check is not None:
        ok, err = check_answer(kernel, host, reference, dtype)
        row["correct"], row["max_rel_err"] = bool(ok), err
    else:  # nothing to check against: said so by the sweep, and left empty here
        row["correct"], row["max_rel_err"] = None, math.nan
    row["gbps"] = row["bytes"] / st.median / 1e9 if st.median > 0 else math.nan
    row["gflops"] = row["flops"] / st.median / 1e9 if st.median > 0 else math.nan
    row["intensity_flop_per_byte"] = row["flops"] / row["bytes"] if row["bytes"] else math.nan  # NaN w/o flops
    model = hw.get(_hw_key(impl))
    if model is not None:
        row.update(model.percentages(row["gbps"], row["gflops"], dtype, working_set=row["bytes"]))
    return row


def _hw_key(impl: Impl) -> str:
    return "cuda" if impl.device.startswith("cuda") else "cpu"


def _hardware_models(impls: Sequence[Impl], hardware: Any) -> dict:
    if hardware is None:
        return {}
    if isinstance(hardware, dict):
        return hardware
    from ..measure.hardware import hardware_model
    keys = {_hw_key(i) for i in impls}
    out = {}
    for k in keys:
        try:
            out[k] = hardware_model(k)
        except Exception:  # noqa: BLE001 - a missing model only leaves % of peak empty
            pass
    return out
