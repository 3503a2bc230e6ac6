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
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .errors import FutharkLabError
from .timing import Measurement, Policy, Stats, entry_synchronised, measure

DTYPES = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64,
          "u8": np.uint8}
#: Relative tolerance by dtype for floating-point answers that may be summed in another order.
DEFAULT_RTOL = {"f16": 1e-2, "f32": 1e-4, "f64": 1e-10}


# --------------------------------------------------------------------------- descriptions

@dataclasses.dataclass
class Kernel:
    """One computation, described once for every implementation.

    ``source``: a ``.fut`` path, Futhark source text, a module from ``%%futhark``/``futhark_lab.compile``, or one of
    its entry points (``mine.dot``); the sweep compiles that program for each Futhark backend it is asked for.
    ``entry``: the entry point (may contain ``{dtype}``, e.g. ``"saxpy_{dtype}"``); optional when ``source`` is an
    entry point or the program has exactly one.
    ``make_inputs(n, dtype, rng)``: the arguments of one call at size ``n`` (a tuple, or one array), from the seeded
    ``numpy.random.Generator`` ``rng``.  Inputs are made once per point and kept on the device, as for the suite.
    ``numpy``: the reference; optional, but without it answers are not checked (``correct`` stays empty, and the
    sweep says so).  ``torch``: a function of tensors, or ``{label: function}``.
    ``bytes_moved(n, dtype)``: bytes one call must read and write at minimum; default: what the inputs and the
    output occupy.  ``flops(n, dtype)``: optional (no GFLOP/s or roofline point without it).
    ``dtypes``: default: the element type of the entry point's first array parameter when it can be read, else f64.
    """

    name: str
    source: Any
    entry: str | None = None
    make_inputs: Callable[[int, str, np.random.Generator], Any] | None = None
    numpy: Callable[..., Any] | None = None                 # the reference implementation
    bytes_moved: Callable[[int, str], int] | None = None    # default: inputs + outputs
    flops: Callable[[int, str], int] | None = None
    torch: dict[str, Callable[..., Any]] | Callable[..., Any] = dataclasses.field(default_factory=dict)
    sizes: Sequence[int] = (10**3, 10**4, 10**5, 10**6, 10**7)
    dtypes: Sequence[str] | None = None
    rtol: dict[str, float] = dataclasses.field(default_factory=dict)
    check: Callable[[Any, Any, str], tuple[bool, float]] | None = None  # custom correctness check
    description: str = ""
    size_label: str = "elements"

    def __post_init__(self):
        prog = _program_of(self.source)
        if prog.entry is not None and self.entry is None:
            self.entry = prog.entry
        if self.entry is None:
            names = prog.entry_names()
            if len(names) != 1:
                raise ValueError(f"Kernel {self.name!r}: say which entry point to sweep (entry=...); the program "
                                 f"has {', '.join(names) if names else 'none that could be read'}")
            self.entry = names[0]
        if self.make_inputs is None:
            raise TypeError(f"Kernel {self.name!r} needs make_inputs(n, dtype, rng): the arguments of one call of "
                            f"{self.entry!r} at size n, e.g. make_inputs=lambda n, dtype, rng: (rng.random(n),)")
        _check_arity(self.name, "make_inputs", self.make_inputs, 3, "(n, dtype, rng)")
        for what, fn in (("bytes_moved", self.bytes_moved), ("flops", self.flops)):
            if fn is not None:
                _check_arity(self.name, what, fn, 2, "(n, dtype)")
        if callable(self.torch):
            self.torch = {"default": self.torch}
        if self.dtypes is None:
            self.dtypes = (prog.dtype(self.entry) or "f64",)
        self._program = prog

    def entry_for(self, dtype: str) -> str:
        return self.entry.format(dtype=dtype)

    def inputs(self, n: int, dtype: str, rng: np.random.Generator) -> tuple:
        """``make_inputs`` as a tuple (one array is one argument)."""
        try:
            made = self.make_inputs(n, dtype, rng)
        except Exception as exc:
            raise _with_context(exc, f"kernel {self.name!r}: make_inputs({n}, {dtype!r}, rng) failed") from exc
        return made if isinstance(made, tuple) else (made,)


@dataclasses.dataclass(frozen=True)
class _FutharkProgram:
    """What a Kernel's source compiles: a path or text, where its imports resolve, the name shown in messages."""

    source: str | Path
    base_dir: str | None
    shown: str | None
    entry: str | None = None        # given by passing an entry point as the source
    module: Any = None              # the module it came from (only read, for entry names and types)

    @property
    def key(self) -> str:
        if isinstance(self.source, Path):
            return str(self.source.resolve())
        import hashlib
        return hashlib.sha256(f"{self.base_dir}\0{self.source}".encode()).hexdigest()

    def entry_names(self) -> list[str]:
        if self.module is not None:
            return list(self.module.entry_points)
        import re
        text = self.source.read_text() if isinstance(self.source, Path) else self.source
        return sorted(set(re.findall(r"^\s*entry\s+([A-Za-z_][A-Za-z0-9_']*)", text, re.M)))

    def dtype(self, entry: str) -> str | None:
        """The element type of the entry point's first array parameter, from the module's signature."""
        fn = self.module.entry_points.get(entry) if self.module is not None else None
        if fn is None:
            return None
        types = [p.type for p in fn.entry.inputs] if hasattr(fn, "entry") else list(getattr(fn, "_in_types", []))
        for t in types:
            elem = t.lstrip("*[]0123456789")
            if t.lstrip("*").startswith("[") and elem in DTYPES:
                return elem
        return None


def _program_of(source: Any) -> _FutharkProgram:
    module, entry = None, None
    if hasattr(source, "_module") and hasattr(source, "__name__"):  # an entry point of a compiled module
        module, entry = source._module, source.__name__
    elif hasattr(source, "entry_points") and hasattr(source, "build"):
        module = source
    if module is not None:
        prog = getattr(module, "_lab_program", None)
        if prog is None:
            raise TypeError("this module was not made by futhark_lab.compile or %%futhark, so its source is unknown;"
                            " pass the Futhark source text or the .fut path instead")
        src = prog.source
        src = Path(src) if isinstance(src, os.PathLike) or _looks_like_path(src) else src
        return _FutharkProgram(src, prog.base_dir, prog.name, entry, module)
    if isinstance(source, os.PathLike) or _looks_like_path(source):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no Futhark source file at {path}")
        return _FutharkProgram(path, None, None)
    if isinstance(source, str):
        return _FutharkProgram(source, os.getcwd(), None)
    raise TypeError(f"Kernel source must be a .fut path, Futhark source text, or a module (or entry point) from "
                    f"%%futhark / futhark_lab.compile, not {type(source).__name__}")


def _looks_like_path(s: Any) -> bool:
    return isinstance(s, str) and "\n" not in s and s.endswith(".fut") and len(s) < 4096


def _check_arity(kernel: str, what: str, fn: Callable, n: int, params: str) -> None:
    """A function that cannot take ``n`` positional arguments fails here, naming the contract, not mid-sweep."""
    import inspect
    try:
        inspect.signature(fn).bind(*range(n))
    except TypeError:
        raise TypeError(f"Kernel {kernel!r}: {what} must take {params}") from None
    except ValueError:  # no signature (builtins): find out when called
        pass


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
    call_syncs: bool = False                    # the call itself synchronises (Futhark entry points)



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
                from .cudadrv import ContextFlusher, EventTimer
                from .hardware import cuda_attributes
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
        from .frontdoor import compile as fcompile

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
        if kernel.numpy is None:
            raise LookupError(f"kernel {kernel.name!r} has no NumPy implementation (Kernel(numpy=...))")
        return Prepared(lambda: kernel.numpy(*inputs), _host, "host CPU")
    if impl.kind == "custom":
        return Prepared(lambda: impl.fn(*inputs), _host, impl.device, measure_device=impl.device)
    if impl.kind == "torch":
        import torch as _torch

        fn = kernel.torch.get(impl.torch_variant or "default") or next(iter(kernel.torch.values()), None)
        if fn is None:
            raise LookupError(f"kernel {kernel.name!r} has no PyTorch implementation (Kernel(torch=...))")
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
        module, _ = modules.get(kernel, impl)
        name = kernel.entry_for(dtype)
        if name not in module.entry_points:
            raise LookupError(f"kernel {kernel.name!r}: the program has no entry point {name!r}; it has "
                              f"{', '.join(module.entry_points) or 'none'}")
        entry = module.entry_points[name]
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
                flush, timer = modules.cuda_tools(kernel, impl, module, first_array)
                if hasattr(entry, "call_async"):
                    launch = lambda: entry.call_async(*dev_inputs)  # noqa: E731
            return Prepared(lambda: entry(*dev_inputs), _host, dev_name, h2d, module.sync, flush=flush,
                            device_timer=timer, launch=launch, call_syncs=True)
        timer = modules.cuda_tools(kernel, impl, module)[1] if module.backend == "cuda" else None
        return Prepared(lambda: entry(*inputs), _host, dev_name, math.nan, module.sync, device_timer=timer,
                        call_syncs=True)
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
    if module.backend in ("c", "multicore", "ispc", "python"):
        return "host CPU"  # one name for every implementation on the host, so they share its ceilings
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

    from .env import environment

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
        from .timing import CacheFlusher
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
    from .timing import batch_per_call, device_times

    st = device_times(p.call, p.device_timer, max_time_s=min(1.0, policy.max_time_s / 3))
    out = {"device_time_s_median": st.median, "device_time_s_iqr": st.iqr, "device_time_n": st.n,
           "device_time_how": "CUDA events around the call on the implementation's own context/stream"}
    if p.launch is not None and p.sync is not None:
        per, k = batch_per_call(p.launch, p.sync, single_s=float(np.median(samples)) if samples else None,
                                budget_s=min(1.0, policy.max_time_s / 3))
        out.update(batch_s_per_call=per, batch_k=k)
    return out


ON_ERROR = ("raise-if-all", "warn", "record", "raise")


class SweepFailed(FutharkLabError):
    """An implementation failed at every point of a kernel (``on_error="raise-if-all"``).  ``df`` holds every
    row of the run, the failed ones with their ``error``."""

    def __init__(self, message: str, df: Any):
        super().__init__(message)
        self.df = df


def _report_failures(outcome: dict[tuple[str, str], list[str | None]], on_error: str, df: Any) -> None:
    if on_error in ("record", "raise"):
        return
    dead = []
    for (kernel, impl), errs in outcome.items():
        failed = [e for e in errs if e]
        if not failed:
            continue
        line = f"{impl} on {kernel}: failed at {len(failed)} of {len(errs)} point(s); first error: {failed[0]}"
        if len(failed) == len(errs) and on_error == "raise-if-all":
            dead.append(line)
        else:
            warnings.warn(f"sweep: {line}", stacklevel=3)
    if dead:
        raise SweepFailed("sweep: every point failed for\n  " + "\n  ".join(dead) +
                          "\n(the rows, with their errors, are in this exception's .df and in results/"
                          f"{df.attrs.get('run_id', '')}; on_error='warn' returns them instead)", df)


def _reference(kernel: Kernel, inputs: tuple) -> Any:
    if kernel.numpy is None:
        return None
    try:
        return kernel.numpy(*inputs)
    except Exception as exc:
        raise _with_context(exc, f"kernel {kernel.name!r}: the NumPy reference failed on these inputs") from exc


def _with_context(exc: Exception, what: str) -> Exception:
    """The same kind of exception, saying where it came from (RuntimeError where that kind cannot be rebuilt)."""
    try:
        return type(exc)(f"{what}: {exc}")
    except Exception:  # noqa: BLE001 - constructors with other signatures
        return RuntimeError(f"{what}: {type(exc).__name__}: {exc}")


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
    host = _host(first.result)
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

def compare(run_a, run_b, *, alpha: float = 0.01, same_within: float = 0.02, keys: Sequence[str] | None = None):
    """Ratio (b/a) of median times per shared point, with a Mann-Whitney U test on the raw samples.
    ``keys``: the columns that identify a point (default kernel, impl, size, dtype).

    Verdict: ``faster``/``slower`` (b relative to a) when significant and beyond ``same_within``; ``same`` when
    not significant and the medians' CIs overlap; otherwise ``ambiguous``.
    """
    import pandas as pd
    from scipy import stats

    a = run_a if isinstance(run_a, pd.DataFrame) else load_run(run_a)
    b = run_b if isinstance(run_b, pd.DataFrame) else load_run(run_b)
    keys = list(keys) if keys else ["kernel", "impl", "size", "dtype"]
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
