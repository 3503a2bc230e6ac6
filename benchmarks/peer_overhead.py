"""Does the workbench add anything to a peer's numbers?  Each peer library is timed twice in one process, in
interleaved rounds, on the same compiled function and the same device-resident input (the suite's sum of squares):

- through futhark-lab: the peer's ``prepare`` (``futhark_lab.sweep.impls.*``) and ``measure`` exactly as a sweep's
  point runs them (and, on GPUs, ``device_times`` with the peer's own CUDA-event timer);
- bare, the way the library's maintainers time it:
  JAX — a ``f(x).block_until_ready()`` loop (JAX's benchmarking FAQ);
  torch.compile — ``torch.utils.benchmark.Timer.blocked_autorange`` (PyTorch's benchmark utility; on the CPU with
  ``timeit.default_timer``, as its docs say, since its default clock synchronises CUDA wherever a GPU is present),
  beside ``Timer.timeit(number=1)`` per sample (printed, marked "n/a": it resets the thread count around every
  call); on GPUs a
  call + ``torch.cuda.synchronize()`` loop and ``triton.testing.do_bench`` for the device span (what Inductor's own
  benchmarks use).  On a GPU, blocked_autorange synchronises once per block of calls, so its per-call figure is a
  pipelined throughput, a different quantity from a synchronised call: printed, marked "n/a";
  Numba njit — ``timeit`` (Numba's performance tips), one call per repeat;
  CuPy — ``cupyx.profiler.benchmark`` (gpu_times: CUDA events; cpu_times: the host clock around the call alone,
  the synchronisation left out, so printed but marked "n/a") and a call + stream synchronise loop;
  Triton — ``triton.testing.do_bench`` (CUDA events, median) and a call + ``torch.cuda.synchronize`` loop;
  numba.cuda — ``cuda.event`` pairs (Numba's documentation) and a call + ``cuda.synchronize()`` loop;
  PyCUDA — ``pycuda.driver.Event`` pairs and a call + ``Context.synchronize()`` loop.

Printed per peer: each side's median over rounds (of per-round medians), the ratio workbench / bare of those, and
the median and IQR of the per-round ratios (the two sides of a round ran back to back, their order alternating
round by round); the target is within 5%.  ``triton.testing.do_bench`` empties the L2 cache before every run, so its comparison is made at a
size far larger than the L2 (--gpu-size, default 1e8 f32 = 400 MB), where a flushed and a warm run read the same.

    python benchmarks/peer_overhead.py                       # CPU peers at n = 1e6 (f32)
    python benchmarks/peer_overhead.py --gpu                 # also GPU peers (1e6 and --gpu-size)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from futhark_lab import suite  # noqa: E402
from futhark_lab import sweep as sw  # noqa: E402
from futhark_lab.errors import PeerUnavailable  # noqa: E402
from futhark_lab.measure.devicetime import device_times  # noqa: E402
from futhark_lab.measure.timing import Policy, measure  # noqa: E402
from futhark_lab.sweep.impls import prepare  # noqa: E402
from futhark_lab.sweep.modules import _ModuleCache  # noqa: E402

KERNEL = suite.get("sum_squares")
DTYPE = "f32"


def loop_median(fn, budget_s: float, min_n: int = 10) -> float:
    """Median of single calls of ``fn`` (which waits for its own result) over ``budget_s``, after one warm call."""
    fn()
    out = []
    end = time.perf_counter() + budget_s
    while len(out) < min_n or time.perf_counter() < end:
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def workbench(p, budget_s: float) -> float:
    """One block of samples as ``sweep.point.PointRunner`` takes them (the same ``measure`` call and sync)."""
    from futhark_lab.measure.sync import entry_synchronised
    sync = entry_synchronised if p.call_syncs else p.sync
    m = measure(p.call, device=p.measure_device if p.sync is None else "cpu", sync=sync,
                policy=Policy(warmup_s=0.02, min_time_s=budget_s, max_time_s=budget_s, max_noise=0.0,
                              min_samples=10, max_samples=100000))
    return m.stats.median


def workbench_device(p, budget_s: float) -> float:
    return device_times(p.launch or p.call, p.device_timer, max_time_s=budget_s * 4).median  # as sweep.point


# --------------------------------------------------------------------------- bare timings, one per library

def bare_jax(n, x_host, device):
    import jax

    from futhark_lab.sweep.impls.jax_jit import _device, jitted
    f = jitted(KERNEL.peers["jax"])
    x = jax.device_put(x_host, _device(jax, device))
    x.block_until_ready()
    return {"host": ("f(x).block_until_ready() loop", lambda b: loop_median(lambda: f(x).block_until_ready(), b))}


def bare_torch_compile(n, x_host, device):
    import torch
    import torch.utils.benchmark as tb

    from futhark_lab.sweep.impls.peer import wrapped
    fn = KERNEL.torch["sum"]
    f = wrapped(("torch-compile", fn, None), lambda: torch.compile(fn))
    x = torch.from_numpy(x_host).to(device)
    f(x)
    # the Timer's default clock synchronises CUDA wherever a GPU is present, CPU work included (its docs): for CPU
    # work the documented choice is timeit.default_timer
    clock = {"timer": timeit.default_timer} if device == "cpu" else {}

    def autorange(b):
        # the Timer defaults to one thread; the workbench leaves PyTorch's pool as it is, so the bare side does too
        return tb.Timer("f(x)", globals={"f": f, "x": x}, num_threads=torch.get_num_threads(),
                        **clock).blocked_autorange(min_run_time=b).median
    def single_calls(b):
        # PyTorch's Timer one call at a time: the statistic the workbench reports (a median of single calls)
        t = tb.Timer("f(x)", globals={"f": f, "x": x}, num_threads=torch.get_num_threads(), **clock)
        t.timeit(number=1)
        out, end = [], time.perf_counter() + b
        while len(out) < 10 or time.perf_counter() < end:
            out.append(t.timeit(number=1).median)
        return statistics.median(out)
    if device != "cuda":
        return {"host": ("torch.utils.benchmark.Timer.blocked_autorange", autorange),
                "host-single": ("torch.utils.benchmark.Timer.timeit(number=1), median", single_calls,
                                "Timer.timeit runs two warm-up calls and sets the thread count around every sample")}
    import triton.testing
    return {"host": ("call + torch.cuda.synchronize() loop",
                     lambda b: loop_median(lambda: (f(x), torch.cuda.synchronize()), b)),
            "host-pipelined": ("torch.utils.benchmark.Timer.blocked_autorange", autorange,
                               "one synchronisation per block of calls: pipelined launches, not a synchronised call"),
            "device": ("triton.testing.do_bench (median)",
                       lambda b: triton.testing.do_bench(lambda: f(x), rep=int(b * 1e3), return_mode="median") / 1e3)}


def bare_numba(n, x_host, device):
    if device == "cpu":
        from futhark_lab.sweep.impls.numba_jit import njitted
        f = njitted(KERNEL.peers["numba"])
        f(x_host)

        def ti(b):
            # one call per repeat: on a loaded machine a batch of back-to-back calls also times other processes'
            # time slices (measured here: 2.6 ms per call in batches of 20 against 0.97 ms for single calls)
            t = timeit.Timer(lambda: f(x_host))
            one = max(min(t.repeat(repeat=3, number=1)), 1e-7)
            return statistics.median(t.repeat(repeat=max(10, int(b / one)), number=1))
        return {"host": ("timeit.repeat(number=1), median", ti)}
    from numba import cuda

    from futhark_lab.sweep.impls.peer import function
    launch = function(KERNEL, "numba-cuda", None)
    x = cuda.to_device(x_host)
    cuda.synchronize()

    def events(b):
        s, e = cuda.event(timing=True), cuda.event(timing=True)

        def one():
            s.record()
            launch(x)
            e.record()
            e.synchronize()
            return cuda.event_elapsed_time(s, e) / 1e3
        one()
        out, end = [], time.perf_counter() + b
        while len(out) < 10 or time.perf_counter() < end:
            out.append(one())
        return statistics.median(out)
    return {"host": ("launch + cuda.synchronize() loop",
                     lambda b: loop_median(lambda: (launch(x), cuda.synchronize()), b)),
            "device": ("cuda.event pairs", events)}


def bare_cupy(n, x_host, device):
    import cupy as cp
    from cupyx.profiler import benchmark

    f = KERNEL.peers["cupy"]["default"]
    x = cp.asarray(x_host)
    cp.cuda.get_current_stream().synchronize()
    cache: dict = {}

    def run(b):
        r = benchmark(f, (x,), n_repeat=100000, max_duration=b, n_warmup=10)
        cache["gpu"] = float(np.median(r.gpu_times[0]))
        return float(np.median(r.cpu_times))
    stream = cp.cuda.get_current_stream()

    def gpu(b):
        run(b)
        return cache["gpu"]
    return {"host": ("call + stream.synchronize() loop", lambda b: loop_median(lambda: (f(x), stream.synchronize()), b)),
            "host-launch": ("cupyx.profiler.benchmark cpu_times", run,
                            "the host clock around the call alone: the synchronisation is outside it"),
            "device": ("cupyx.profiler.benchmark gpu_times", gpu)}


def bare_triton(n, x_host, device):
    import torch
    import triton.testing

    from futhark_lab.sweep.impls.peer import function
    launch = function(KERNEL, "triton", None)
    x = torch.from_numpy(x_host).to("cuda")
    launch(x)
    torch.cuda.synchronize()
    return {"host": ("launch + torch.cuda.synchronize() loop",
                     lambda b: loop_median(lambda: (launch(x), torch.cuda.synchronize()), b)),
            "device": ("triton.testing.do_bench (median)",
                       lambda b: triton.testing.do_bench(lambda: launch(x), rep=int(b * 1e3),
                                                         return_mode="median") / 1e3)}


def bare_pycuda(n, x_host, device):
    import pycuda.driver as drv
    import pycuda.gpuarray as gpuarray

    from futhark_lab.sweep.impls.peer import function
    from futhark_lab.sweep.impls.pycuda_gpu import _pycuda
    _pycuda()
    launch = function(KERNEL, "pycuda", None)
    x = gpuarray.to_gpu(x_host)
    drv.Context.synchronize()

    def events(b):
        s, e = drv.Event(), drv.Event()

        def one():
            s.record()
            launch(x)
            e.record()
            e.synchronize()
            return s.time_till(e) / 1e3
        one()
        out, end = [], time.perf_counter() + b
        while len(out) < 10 or time.perf_counter() < end:
            out.append(one())
        return statistics.median(out)
    return {"host": ("launch + Context.synchronize() loop",
                     lambda b: loop_median(lambda: (launch(x), drv.Context.synchronize()), b)),
            "device": ("pycuda.driver.Event pairs", events)}


PEERS = {  # (name, impl constructor, bare timings, device)
    "cpu": [("jax", lambda: sw.jax("cpu"), bare_jax), ("torch-compile", lambda: sw.torch_compile("cpu", "sum"),
                                                       bare_torch_compile),
            ("numba", lambda: sw.numba("cpu"), bare_numba)],
    "cuda": [("jax", lambda: sw.jax("cuda"), bare_jax),
             ("torch-compile", lambda: sw.torch_compile("cuda", "sum"), bare_torch_compile),
             ("numba-cuda", lambda: sw.numba("cuda"), bare_numba), ("cupy", lambda: sw.cupy(), bare_cupy),
             ("triton", lambda: sw.triton(), bare_triton), ("pycuda", lambda: sw.pycuda(), bare_pycuda)],
}


def compare(name: str, impl, bare_fn, device: str, n: int, rounds: int, budget_s: float) -> list[str]:
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    try:
        p = prepare(impl, KERNEL, DTYPE, (x,), _ModuleCache())
        p.call()                     # compile / first call, as the sweep's first call does, outside the rounds
        bare = bare_fn(n, x, device)
    except PeerUnavailable as exc:
        return [f"{name:14} {device:5} {n:>11,}  skipped: {exc}"]
    wb_of = {"host": lambda: workbench(p, budget_s), "device": lambda: workbench_device(p, budget_s)}
    sides = {what: ([], []) for what in bare if what != "device" or p.device_timer is not None}
    for r in range(rounds):     # interleaved, the order alternating round by round
        for what in sides:
            turns = (True, False) if r % 2 == 0 else (False, True)
            for wb_turn in turns:
                if wb_turn:
                    sides[what][0].append(wb_of["device" if what == "device" else "host"]())
                else:
                    sides[what][1].append(bare[what][1](budget_s))
    lines = []
    for what, (wb, br) in sides.items():
        if not wb:
            continue
        w, b = statistics.median(wb), statistics.median(br)
        ratio = w / b
        paired = [x / y for x, y in zip(wb, br)]
        q1, pm, q3 = np.percentile(paired, [25, 50, 75])
        how = bare[what][0]
        flag = "ok" if abs(ratio - 1) <= 0.05 else "OFF"
        note = ""
        if len(bare[what]) > 2:
            note, flag = f"  (not comparable: {bare[what][2]})", "n/a"
        if what == "device" and flag == "OFF" and ratio < 1:
            note = ("  (the workbench's span is behind a lead kernel; the bare one may hold the host's launch latency"
                    " (events on an idle GPU) or a cache flush's write-back (do_bench): benchmarks/ncu_device_time.py"
                    " checks the span against the kernels' own time)")
            flag = "n/a"
        if "do_bench" in how and n * 4 < 200e6:
            note = "  (do_bench empties the L2 before each run: not comparable at a cache-resident size)"
            flag = "n/a"
        lines.append(f"{name:14} {device:5} {n:>11,}  {what:14} workbench {w * 1e6:10.2f} us  bare {b * 1e6:10.2f} us"
                     f"  ratio {ratio:6.3f} (per round: median {pm:.3f}, IQR {q1:.2f}-{q3:.2f})  {flag:3}  "
                     f"bare = {how}{note}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=float, default=1e6)
    ap.add_argument("--gpu", action="store_true", help="also the GPU peers")
    ap.add_argument("--gpu-size", type=float, default=1e8)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--budget", type=float, default=0.1, help="seconds per side per round")
    ap.add_argument("--only", help="comma-separated peer names (default: all)")
    ap.add_argument("--no-cpu", action="store_true", help="with --gpu: the GPU peers only")
    ap.add_argument("--numpy-row-stack-shim", action="store_true",
                    help="np.row_stack = np.vstack before numba.cuda compiles: numba-cuda 0.30.4 (the last release) "
                         "registers np.row_stack, which NumPy 2.5 removed (NVIDIA/numba-cuda#907)")
    a = ap.parse_args()
    if a.numpy_row_stack_shim and not hasattr(np, "row_stack"):
        np.row_stack = np.vstack
        print("numpy-row-stack-shim: np.row_stack = np.vstack (for numba-cuda 0.30.4 under NumPy "
              f"{np.__version__}, NVIDIA/numba-cuda#907)")
    import os
    import platform
    print(f"peer_overhead: sum of squares, {DTYPE}; {a.rounds} interleaved rounds of {a.budget}s per side; "
          f"{platform.node()} ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start); ratio = workbench / bare, target within 5%")
    todo = ([] if a.no_cpu and a.gpu else [("cpu", int(a.size))]) + \
        ([("cuda", int(a.size)), ("cuda", int(a.gpu_size))] if a.gpu else [])
    for device, n in todo:
        for name, make, bare_fn in PEERS[device]:
            if a.only and name not in a.only.split(","):
                continue
            try:
                lines = compare(name, make(), bare_fn, device, n, a.rounds, a.budget)
            except Exception as exc:  # noqa: BLE001 - one peer's failure is printed, the others still run
                lines = [f"{name:14} {device:5} {n:>11,}  failed: {type(exc).__name__}: {exc}"]
            for line in lines:
                print(line, flush=True)
    import os
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
