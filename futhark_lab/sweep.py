"""Declarative sweeps (in the spirit of ``triton.testing.perf_report``) into tidy, durable DataFrames.

A ``Kernel`` says what to compute (Futhark source + entry, NumPy reference, PyTorch equivalent), how to make seeded
inputs for a size, and how many bytes and flops one call moves and does.  ``Impl``s say who computes it (Futhark on a
backend, PyTorch on a device, NumPy, any callable).  ``sweep`` measures every implementation at every size and
dtype, interleaving implementations within rounds, checking each answer against the reference, and appending every
finished point to ``results/<run_id>/points.jsonl`` at once, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .timing import Measurement, Policy, Stats, measure

DTYPES = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64,
          "u8": np.uint8}
#: Relative tolerance by dtype for floating-point answers that may be summed in another order.
DEFAULT_RTOL = {"f16": 1e-2, "f32": 1e-4, "f64": 1e-10}


# --------------------------------------------------------------------------- descriptions

@dataclasses.dataclass
class Kernel:
    """One computation, described once for every implementation."""

    name: str
    source: str | Path                                   # .fut file
    entry: str                                           # may contain "{dtype}", e.g. "saxpy_{dtype}"
    make_inputs: Callable[[int, str, np.random.Generator], tuple]
    numpy: Callable[..., Any]                            # the reference implementation
    bytes_moved: Callable[[int, str], int]               # bytes one call must read + write at minimum
    flops: Callable[[int, str], int]
    torch: dict[str, Callable[..., Any]] = dataclasses.field(default_factory=dict)  # label -> fn(*tensors)
    sizes: Sequence[int] = (10**3, 10**4, 10**5, 10**6, 10**7)
    dtypes: Sequence[str] = ("f64",)
    rtol: dict[str, float] = dataclasses.field(default_factory=dict)
    check: Callable[[Any, Any, str], tuple[bool, float]] | None = None  # custom correctness check
    description: str = ""
    size_label: str = "elements"

    def entry_for(self, dtype: str) -> str:
        return self.entry.format(dtype=dtype)


@dataclasses.dataclass
class Impl:
    """Who computes a kernel.  Build with ``futhark()``, ``torch()``, ``numpy_impl()`` or ``custom()``."""

    name: str
    kind: str                      # futhark | torch | numpy | custom
    backend: str                   # futhark backend, or the library for others
    device: str = "cpu"            # cpu | cuda
    resident: bool = True          # futhark/torch-cuda: inputs moved to the device once (False: every call)
    options: dict = dataclasses.field(default_factory=dict)
    fn: Callable | None = None
    torch_variant: str | None = None
    pinned: bool = False           # GPU: host inputs staged once in page-locked memory, copied to the device from it

    @property
    def label(self) -> str:
        return self.name


def futhark(backend: str, *, resident: bool = True, name: str | None = None, pinned: bool = False,
            **compile_options) -> Impl:
    label = name or f"futhark-{backend}" + ("" if resident else "+copy") + ("(pinned)" if pinned else "")
    return Impl(label, "futhark", backend, "cuda" if backend in ("cuda", "opencl", "pyopencl") and
                compile_options.get("platform") not in ("pocl", "Portable") else "cpu",
                resident, compile_options, pinned=pinned)


def torch(device: str = "cpu", variant: str | None = None, *, resident: bool = True, name: str | None = None,
          pinned: bool = False) -> Impl:
    label = name or f"torch-{device}" + (f"-{variant}" if variant else "") + ("" if resident else "+copy") + \
        ("(pinned)" if pinned else "")
    return Impl(label, "torch", "torch", device, resident, torch_variant=variant, pinned=pinned)


def numpy_impl(name: str = "numpy") -> Impl:
    return Impl(name, "numpy", "numpy", "cpu")


def custom(name: str, fn: Callable[..., Any], device: str = "cpu", backend: str = "custom") -> Impl:
    return Impl(name, "custom", backend, device, fn=fn)


# --------------------------------------------------------------------------- preparing one implementation

@dataclasses.dataclass
class Prepared:
    call: Callable[[], Any]
    to_host: Callable[[Any], Any]
    device_name: str
    h2d_s: float = math.nan
    sync: Callable[[], None] | None = None
    measure_device: str = "cpu"
    flush: Callable[[], None] | None = None     # cache flush in the implementation's own context (cold samples)
    device_timer: Any = None                    # .time(fn) -> device-side span (CUDA events)
    launch: Callable[[], Any] | None = None     # the call without its synchronisation (batch figure)


class _ModuleCache:
    """One compiled module per (source, backend, options) for the whole sweep; load time recorded once."""

    def __init__(self):
        self.modules: dict[tuple, Any] = {}
        self.setup_s: dict[tuple, float] = {}
        self.gpu_tools: dict[tuple, tuple] = {}

    def cuda_tools(self, source: Path, impl: Impl, module: Any, array: Any = None) -> tuple:
        """(flusher, event timer) working in the module's own CUDA context, made once per module (None, None where
        the driver cannot be reached)."""
        key = self.key(source, impl)
        if key not in self.gpu_tools:
            try:
                from .cudadrv import ContextFlusher, EventTimer
                from .hardware import cuda_attributes
                ctx = module.cuda_context(array)
                l2 = cuda_attributes().get("l2_bytes") or 50 * 2**20
                self.gpu_tools[key] = (ContextFlusher(ctx, 2 * l2), EventTimer(ctx))
            except Exception:  # noqa: BLE001 - the sweep falls back to the device-wide flush, no device time
                self.gpu_tools[key] = (None, None)
        return self.gpu_tools[key]

    @staticmethod
    def key(source: Path, impl: Impl) -> tuple:
        return (str(source), impl.backend, json.dumps(impl.options, sort_keys=True, default=str))

    def get(self, source: Path, impl: Impl):
        from .frontdoor import compile as fcompile

        key = self.key(source, impl)
        if key not in self.modules:
            t0 = time.perf_counter()
            try:
                self.modules[key] = fcompile(source, backend=impl.backend, **impl.options)
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


def _median_time(fn: Callable[[], Any], reps: int = 3) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def _host(x: Any) -> Any:
    if isinstance(x, tuple):
        return tuple(_host(v) for v in x)
    if hasattr(x, "numpy") and callable(x.numpy):
        if type(x).__module__.startswith("torch"):
            return x.detach().cpu().numpy()
        return x.numpy()
    if hasattr(x, "get") and type(x).__module__.startswith(("pyopencl", "cupy")):
        return x.get()
    return x


def prepare(impl: Impl, kernel: Kernel, dtype: str, inputs: tuple, modules: _ModuleCache) -> Prepared:
    if impl.kind == "numpy":
        return Prepared(lambda: kernel.numpy(*inputs), _host, "host CPU")
    if impl.kind == "custom":
        return Prepared(lambda: impl.fn(*inputs), _host, impl.device, measure_device=impl.device)
    if impl.kind == "torch":
        import torch as _torch

        fn = kernel.torch.get(impl.torch_variant or "default") or next(iter(kernel.torch.values()), None)
        if fn is None:
            raise LookupError(f"kernel {kernel.name} has no PyTorch implementation")
        dev = impl.device

        def to_dev(v):
            if isinstance(v, np.ndarray):
                return _torch.from_numpy(v).to(dev)
            return v

        timer = None
        if dev.startswith("cuda"):
            sync = _torch.cuda.synchronize
            name = _torch.cuda.get_device_name()
            from .timing import TorchEventTimer
            timer = TorchEventTimer()
            inputs = _staged(impl, inputs)
        else:
            sync, name = None, "host CPU"
        if impl.resident:
            h2d_t = time.perf_counter()
            tins = tuple(to_dev(v) for v in inputs)
            if sync:
                sync()
            h2d = time.perf_counter() - h2d_t
            call = lambda: fn(*tins)  # noqa: E731
            return Prepared(call, _host, name, h2d, sync, dev, device_timer=timer, launch=call if timer else None)
        call = lambda: fn(*(to_dev(v) for v in inputs))  # noqa: E731
        return Prepared(call, _host, name, math.nan, sync, dev, device_timer=timer)
    if impl.kind == "futhark":
        module, _ = modules.get(Path(kernel.source), impl)
        entry = module.entry_points[kernel.entry_for(dtype)]
        dev_name = _futhark_device_name(module)
        if module.backend == "cuda":
            inputs = _staged(impl, inputs)
        if impl.resident:
            def put():
                arrays = tuple(module.array(v) if isinstance(v, np.ndarray) else v for v in inputs)
                module.sync()
                return arrays
            h2d, dev_inputs = _median_time(put)
            flush = timer = launch = None
            if module.backend == "cuda":
                first_array = next((a for a in dev_inputs if hasattr(a, "data_ptr")), None)
                flush, timer = modules.cuda_tools(Path(kernel.source), impl, module, first_array)
                if hasattr(entry, "call_async"):
                    launch = lambda: entry.call_async(*dev_inputs)  # noqa: E731
            return Prepared(lambda: entry(*dev_inputs), _host, dev_name, h2d, module.sync, flush=flush,
                            device_timer=timer, launch=launch)
        timer = modules.cuda_tools(Path(kernel.source), impl, module)[1] if module.backend == "cuda" else None
        return Prepared(lambda: entry(*inputs), _host, dev_name, math.nan, module.sync, device_timer=timer)
    raise ValueError(f"unknown implementation kind {impl.kind!r}")


def _staged(impl: Impl, inputs: tuple) -> tuple:
    """Host inputs as a careful user stages them for ``pinned`` implementations: copied once (untimed) into
    page-locked memory, so every host→device copy runs at DMA speed."""
    if not impl.pinned:
        return inputs
    from .cudadrv import pinned_copy
    return tuple(pinned_copy(v) if isinstance(v, np.ndarray) else v for v in inputs)


def _futhark_device_name(module: Any) -> str:
    ctx = module.context
    if hasattr(ctx, "device_name"):
        return f"{ctx.platform_name()}: {ctx.device_name()}".strip(": ")
    if module.backend in ("c", "multicore", "ispc"):
        return "host CPU"
    try:
        if module.backend == "cuda":
            from .hardware import cuda_device_name
            return cuda_device_name()
        if module.backend == "opencl":
            from .opencl_info import describe
            return describe(module.options.platform)
    except Exception:  # noqa: BLE001 - a name is a label, never a reason to fail a sweep
        pass
    return module.options.device or f"{module.backend} default device"


# --------------------------------------------------------------------------- correctness

def check_answer(kernel: Kernel, got: Any, want: Any, dtype: str) -> tuple[bool, float]:
    """(passes, max relative error) with a dtype-aware tolerance."""
    if kernel.check is not None:
        return kernel.check(got, want, dtype)
    g = np.asarray(got, dtype=np.float64) if not isinstance(got, tuple) else np.concatenate(
        [np.ravel(np.asarray(x, dtype=np.float64)) for x in got])
    w = np.asarray(want, dtype=np.float64) if not isinstance(want, tuple) else np.concatenate(
        [np.ravel(np.asarray(x, dtype=np.float64)) for x in want])
    if g.shape != w.shape:
        return False, math.inf
    if g.size == 0:
        return True, 0.0
    scale = max(float(np.max(np.abs(w))), 1e-300)
    err = float(np.max(np.abs(g - w))) / scale
    rtol = kernel.rtol.get(dtype, DEFAULT_RTOL.get(dtype, 0.0))
    return err <= rtol, err


def load_suite():
    """The kernel suite (kernels/suite.py next to the package in a checkout, or $FUTHARK_LAB_KERNELS)."""
    import importlib
    import sys

    root = Path(os.environ.get("FUTHARK_LAB_KERNELS", Path(__file__).resolve().parent.parent / "kernels"))
    if not (root / "suite.py").exists():
        raise FileNotFoundError(f"the kernel suite is not at {root / 'suite.py'}; run from a checkout of "
                                "futhark-lab or set FUTHARK_LAB_KERNELS")
    if str(root.parent) not in sys.path:
        sys.path.insert(0, str(root.parent))
    return importlib.import_module(f"{root.name}.suite")


# --------------------------------------------------------------------------- durable results

def results_dir() -> Path:
    return Path(os.environ.get("FUTHARK_LAB_RESULTS", "results"))


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


class RunStore:
    """results/<run_id>/: environment.json once, points.jsonl appended and fsync'd per finished point."""

    def __init__(self, run_id: str, root: Path | None = None, create: bool = True):
        self.run_id = run_id
        self.dir = (root or results_dir()) / run_id
        if create:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.points = self.dir / "points.jsonl"

    def write_environment(self, env: dict) -> None:
        path = self.dir / "environment.json"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(env, indent=2, default=str))
            os.replace(tmp, path)

    def environment(self) -> dict:
        path = self.dir / "environment.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def append(self, row: dict) -> None:
        line = json.dumps(row, default=_json_default) + "\n"
        with open(self.points, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def rows(self) -> list[dict]:
        if not self.points.exists():
            return []
        out = []
        for line in self.points.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut by a kill mid-write: that point is simply measured again
                continue
        return out

    def done_keys(self) -> set[tuple]:
        return {point_key(r) for r in self.rows()}


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def point_key(r: dict) -> tuple:
    return (r["kernel"], r["impl"], r["size"], r["dtype"])


def load_run(run_or_path: str | os.PathLike):
    """A finished (or partial) run as a DataFrame, with the environment in ``df.attrs``."""
    import pandas as pd

    p = Path(run_or_path)
    if not p.exists():
        p = results_dir() / str(run_or_path)
    if p.is_file():
        p = p.parent
    if not (p / "points.jsonl").exists():
        raise FileNotFoundError(f"no run at {p} (expected {p / 'points.jsonl'})")
    store = RunStore(p.name, p.parent, create=False)
    df = pd.DataFrame(store.rows())
    df.attrs["run_id"] = p.name
    df.attrs["environment"] = store.environment()
    return df


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
    on_error: str = "record",
    on_point: Callable[[int, int], None] | None = None,
):
    """Measure ``impls`` on ``kernels`` over ``sizes`` × ``dtypes``; return a tidy DataFrame (one row per point).

    Re-running with the same ``run_id`` resumes: points already in results/<run_id>/points.jsonl are not measured
    again.  ``on_point(done, total)`` is called after each finished point (progress for a GUI).
    ``on_error="record"`` stores a failing implementation's error in the row and goes on; ``"raise"`` stops.
    """
    from tqdm.auto import tqdm

    from .env import environment

    kernels = [kernels] if isinstance(kernels, Kernel) else list(kernels)
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
        from .timing import CacheFlusher
        flushers = {k: CacheFlusher(k) for k in {_hw_key(i) for i in impls}}
    plan = [(k, n, d) for k in kernels for d in (dtypes or k.dtypes) if d in k.dtypes or dtypes is None
            for n in (sizes or k.sizes)]
    total = sum(1 for k, n, d in plan for i in impls if (k.name, i.name, int(n), d) not in done)
    bar = tqdm(total=total, desc=f"sweep {run_id}", disable=not progress, unit="point")
    finished = 0
    try:
        for kernel, size, dtype in plan:
            todo = [i for i in impls if (kernel.name, i.name, int(size), dtype) not in done]
            if not todo:
                continue
            rng = np.random.default_rng(seed + int(size))
            inputs = kernel.make_inputs(int(size), dtype, rng)
            reference = kernel.numpy(*inputs)
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
                            m = measure(p.call, device=p.measure_device if p.sync is None else "cpu", sync=p.sync,
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
                           errors.get(impl.name), reference, modules, hw)
                row.update(extra.get(impl.name, {}))
                store.append(row)
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
    return df


#: Hold other libraries' thread pools to one thread while a CPU implementation is measured (benchmarks turn it off
#: to show the difference: benchmarks/cpu_interplay.py).
ISOLATE_CPU_POOLS = True
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
    from .timing import batch_per_call, device_times

    st = device_times(p.call, p.device_timer, max_time_s=min(1.0, policy.max_time_s / 3))
    out = {"device_time_s_median": st.median, "device_time_s_iqr": st.iqr, "device_time_n": st.n,
           "device_time_how": "CUDA events around the call on the implementation's own context/stream"}
    if p.launch is not None and p.sync is not None:
        per, k = batch_per_call(p.launch, p.sync, single_s=float(np.median(samples)) if samples else None,
                                budget_s=min(1.0, policy.max_time_s / 3))
        out.update(batch_s_per_call=per, batch_k=k)
    return out


def _row(run_id, kernel, impl, size, dtype, p, samples, first, error, reference, modules, hw) -> dict:
    row: dict[str, Any] = {"run_id": run_id, "kernel": kernel.name, "impl": impl.name, "kind": impl.kind,
                           "backend": impl.backend, "size": int(size), "dtype": dtype,
                           "resident": impl.resident, "pinned": impl.pinned, "bytes": int(kernel.bytes_moved(int(size), dtype)),
                           "flops": int(kernel.flops(int(size), dtype)), "timestamp": time.time()}
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
        row["setup_s"] = modules.setup_s.get(modules.key(Path(kernel.source), impl), math.nan)
    # device->host of the result, timed apart from compute
    t = time.perf_counter()
    host = _host(first.result)
    row["d2h_s"] = time.perf_counter() - t
    ok, err = check_answer(kernel, host, reference, dtype)
    row["correct"], row["max_rel_err"] = bool(ok), err
    row["gbps"] = row["bytes"] / st.median / 1e9 if st.median > 0 else math.nan
    row["gflops"] = row["flops"] / st.median / 1e9 if st.median > 0 else math.nan
    row["intensity_flop_per_byte"] = row["flops"] / row["bytes"] if row["bytes"] else math.nan
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
    from .hardware import hardware_model
    keys = {_hw_key(i) for i in impls}
    out = {}
    for k in keys:
        try:
            out[k] = hardware_model(k)
        except Exception:  # noqa: BLE001 - a missing model only leaves % of peak empty
            pass
    return out


# --------------------------------------------------------------------------- comparing runs

def compare(run_a, run_b, *, alpha: float = 0.01, same_within: float = 0.02):
    """Ratio (b/a) of median times per shared point, with a Mann-Whitney U test on the raw samples.

    Verdict: ``faster``/``slower`` (b relative to a) when significant and beyond ``same_within``; ``same`` when
    not significant and the medians' CIs overlap; otherwise ``ambiguous``.
    """
    import pandas as pd
    from scipy import stats

    a = run_a if isinstance(run_a, pd.DataFrame) else load_run(run_a)
    b = run_b if isinstance(run_b, pd.DataFrame) else load_run(run_b)
    keys = ["kernel", "impl", "size", "dtype"]
    merged = a.merge(b, on=keys, suffixes=("_a", "_b"))
    rows = []
    for _, r in merged.iterrows():
        sa, sb = r.get("samples_s_a"), r.get("samples_s_b")
        if not isinstance(sa, list) or not isinstance(sb, list) or not sa or not sb:
            continue
        ratio = r["time_s_median_b"] / r["time_s_median_a"]
        p = float(stats.mannwhitneyu(sa, sb, alternative="two-sided").pvalue)
        overlap = r["time_s_ci_low_b"] <= r["time_s_ci_high_a"] and r["time_s_ci_low_a"] <= r["time_s_ci_high_b"]
        if p < alpha and abs(ratio - 1) > same_within:
            verdict = "faster" if ratio < 1 else "slower"
        elif p >= alpha and overlap:
            verdict = "same"
        else:
            verdict = "ambiguous"
        rows.append({**{k: r[k] for k in keys}, "time_s_median_a": r["time_s_median_a"],
                     "time_s_median_b": r["time_s_median_b"], "ratio_b_over_a": ratio, "p_value": p,
                     "verdict": verdict})
    return pd.DataFrame(rows, columns=keys + ["time_s_median_a", "time_s_median_b", "ratio_b_over_a", "p_value",
                                              "verdict"])
