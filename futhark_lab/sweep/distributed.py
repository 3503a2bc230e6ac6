"""Sweeps on a Dask cluster: every GPU and host a user has, each point timed alone on its device.

An optional backend in benchopt's manner: importing this module without Dask's ``distributed`` raises ImportError
with the install line.  The client stays the single writer of the run's store; workers only measure.

- **Placement.** A task is one point (kernel, size, dtype) × the implementations of one device kind.  Builds and
  contexts are made first, outside any lock (compiles overlap); then the task holds a lock (``HostLock``, a file
  lock every worker process of the host shares) while anything is timed: one per host for CPU points, and for GPU points one per host too (``exclusive="host"``, the default) or
  one per GPU UUID (``exclusive="device"``: GPUs of one host, and a GPU beside the host CPU, then time at once).
  Every row records the locked section's ``t_start``/``t_end``, ``host``, ``worker``, and for GPUs the device UUID
  and driver, so overlap can be checked after the fact (``overlaps``).
- **Workers need no futhark.**  The client generates each (program, backend, futhark options) once
  (``builder.generated.export_generated``); workers unpack it under their own cache root, atomically, and build it
  with their own C compiler into their own content-addressed cache.  A program's ``import``ed files are part of the
  generated code's key: they must be readable on the workers (a shared file system) or the program self-contained.
- **Nothing lost.**  A worker that dies mid-point costs the point its retry on another worker (the scheduler's
  ``allowed-failures``, 1 in clusters made here), then error rows; Ctrl-C cancels the workers' tasks and leaves the
  store resumable; an unreachable scheduler is a clear error before anything runs.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import os
import socket
import sys
import tarfile
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

INSTALL_HINT = ("sweeps on a cluster need Dask's distributed: pip install 'futhark-lab[distributed]' "
                "(or: pip install distributed dask-jobqueue)")
try:
    import dask
    import distributed
except ImportError as exc:  # pragma: no cover - the set-up installs it
    raise ImportError(INSTALL_HINT) from exc

from ..errors import FutharkLabError
from .impl import Impl
from .kernel import Kernel
from .point import PointRunner
from .rows import _hw_key

EXCLUSIVE = ("host", "device")
#: For clusters made here: a point whose worker dies is retried once elsewhere, then becomes error rows; a worker is
#: sent only the task it runs (with the default 1.1, a queued point dies with its neighbour's worker too).
#: Dask's nannies also set OMP/MKL/OPENBLAS_NUM_THREADS=1 in their workers, which times NumPy and PyTorch
#: single-threaded there (benchmarks/scale_out.py saw 20x), and MALLOC_TRIM_THRESHOLD_, which turns off glibc's
#: dynamic mmap threshold, so every large temporary is a fresh mmap (NumPy's sum of squares at 10^6: 8x slower).
#: Workers made here run with the environment a serial sweep has.
CLUSTER_CONFIG = {"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0,
                  "distributed.nanny.pre-spawn-environ": {}}
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")


class ClusterUnavailable(FutharkLabError):
    """The cluster asked for cannot be reached or made; nothing was run."""


# --------------------------------------------------------------------------- the client's side

def connect(cluster: Any) -> tuple[distributed.Client, Callable[[], None]]:
    """A client for ``cluster`` (a Client, a Cluster object, a scheduler address, ``"local:N"`` workers on this
    machine, or ``"local:gpus"``: one worker per GPU and one CPU worker) and a function that closes what was made
    here (nothing, for what the caller passed in)."""
    if isinstance(cluster, distributed.Client):
        return cluster, lambda: None
    if cluster == "local:gpus":
        return _local_gpus()
    if isinstance(cluster, str) and cluster.startswith("local:"):
        try:
            n = int(cluster.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"cluster={cluster!r}: write 'local:N' with N >= 1 workers, e.g. 'local:2'")
        with dask.config.set(CLUSTER_CONFIG):
            local = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                             dashboard_address=":0", silence_logs=logging.ERROR)
            client = distributed.Client(local)

        def close() -> None:
            client.close()
            local.close()
        return client, close
    if isinstance(cluster, str):
        try:
            client = distributed.Client(cluster, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ClusterUnavailable(
                f"cannot reach the Dask scheduler at {cluster!r} ({type(exc).__name__}: {exc}); nothing was run. "
                "Check the address (tcp://HOST:8786), start one with `dask scheduler` and `dask worker ADDRESS`, "
                "or use cluster='local:N' (--workers N) for workers on this machine") from None
        return client, client.close
    if hasattr(cluster, "scheduler_address"):  # LocalCluster, dask-jobqueue's SLURMCluster, LocalCUDACluster, ...
        client = distributed.Client(cluster)
        return client, client.close
    raise TypeError(f"cluster={cluster!r}: pass a distributed.Client, a Dask cluster object, a scheduler address "
                    "('tcp://host:8786') or 'local:N'")


def _local_gpus() -> tuple[distributed.Client, Callable[[], None]]:
    """One worker per CUDA device this machine shows (``CUDA_VISIBLE_DEVICES`` pinned to it) and one CPU worker
    that sees none: dask-cuda's layout, without needing dask-cuda."""
    from distributed import Nanny, Scheduler, SpecCluster

    try:
        from ..runtime import cudadrv
        n = len(cudadrv.device_names())
    except Exception as exc:  # noqa: BLE001 - no driver here
        raise ClusterUnavailable(f"cluster='local:gpus' needs CUDA devices ({exc}); use 'local:N'") from None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s.strip() for s in visible.split(",") if s.strip()] if visible else [str(i) for i in range(n)]
    workers = {f"gpu{i}": {"cls": Nanny, "options": {"nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": dev},
                                                       "silence_logs": logging.ERROR}}
               for i, dev in enumerate(ids[:n])}
    workers["cpu"] = {"cls": Nanny, "options": {"nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": ""},
                                                "silence_logs": logging.ERROR}}
    with dask.config.set(CLUSTER_CONFIG):
        spec = SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": {"dashboard_address": ":0"}},
                           silence_logs=logging.ERROR)
        client = distributed.Client(spec)

    def close() -> None:
        client.close()
        spec.close()
    return client, close


def run_distributed(cluster: Any, todo: Sequence[tuple[Kernel, int, str, list[Impl]]], impls: Sequence[Impl],
                    settings: dict, record: Callable[[list[dict]], None], bar: Any,
                    exclusive: str = "host") -> None:
    """Measure ``todo``'s points on ``cluster``; ``record`` each point's rows as they arrive (in this process)."""
    if exclusive not in EXCLUSIVE:
        raise ValueError(f"exclusive={exclusive!r}: choose 'host' (one timing per host at a time) or 'device' "
                         "(one per device: GPUs, and a GPU beside the CPU, time at once)")
    client, close = connect(cluster)
    futures: dict = {}  # future -> (kernel, size, dtype, implementations)
    try:
        workers = client.run(describe_worker)
        if not workers:
            raise ClusterUnavailable("the Dask cluster has no workers; nothing was run")
        link = getattr(client, "dashboard_link", None)
        if link:
            print(f"futhark-lab: {len(workers)} Dask worker(s); dashboard {link}", file=sys.stderr)
        limited = {w: d["thread_env"] for w, d in workers.items() if d["thread_env"]}
        if limited and any(_hw_key(i) == "cpu" for i in impls):
            warnings.warn(f"Dask worker(s) {', '.join(limited)} run with {limited[next(iter(limited))]}: NumPy, "
                          "PyTorch and OpenMP code time single-threaded or with other allocations there than in a "
                          "serial run. Start the workers without those variables (dask config "
                          "distributed.nanny.pre-spawn-environ: {}), or use cluster='local:N'", stacklevel=3)
        gpu_workers = [w for w, d in workers.items() if d["gpus"]]
        cpu_workers = [w for w, d in workers.items() if not d["gpus"]] or list(workers)
        run_key = f"{settings['run_id']}-{uuid.uuid4().hex[:8]}"
        # the generated code goes to every worker, and to every worker that joins later (a restarted one), as a
        # worker plugin: points then depend on nothing, so the scheduler queues them and sends a worker only the
        # one it runs (a point that depends on data is sent eagerly, and dies with its neighbour's worker)
        plugin = GeneratedCode(_generate(todo), f"futhark-lab-generated-{run_key}")
        client.register_plugin(plugin)
        for kernel, size, dtype, point_impls in todo:
            portable = _portable(kernel)
            for kind in sorted({_hw_key(i) for i in point_impls}):
                group = [i for i in point_impls if _hw_key(i) == kind]
                allowed = gpu_workers if kind == "cuda" else cpu_workers
                if not allowed:
                    record([_error_row(settings["run_id"], kernel, i, size, dtype,
                                       "no Dask worker has a CUDA device") for i in group])
                    continue
                # restricted tasks skip the scheduler's queue (they wait on a worker, and die with it): restrict
                # only where some workers cannot run the point
                where = {} if set(allowed) == set(workers) else {"workers": allowed, "allow_other_workers": False}
                fut = client.submit(measure_point, run_key, settings, list(impls), portable, size, dtype, group,
                                    exclusive, pure=False, **where,
                                    key=f"futhark-lab-point-{kernel.name}-{size}-{dtype}-{kind}-{run_key}")
                futures[fut] = (kernel, size, dtype, group)
        for fut in distributed.as_completed(list(futures)):
            kernel, size, dtype, group = futures[fut]
            try:
                rows = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker died twice, or the task failed: error rows
                if settings["on_error"] == "raise":
                    raise
                why = f"{type(exc).__name__}: {exc}"
                rows = [_error_row(settings["run_id"], kernel, i, size, dtype, why) for i in group]
            record(rows)
        with contextlib.suppress(Exception):
            client.run(close_runners, run_key)
            client.unregister_worker_plugin(plugin.name)
    except KeyboardInterrupt:
        client.cancel(list(futures))  # finished points are in the store; the same run_id resumes
        raise
    finally:
        close()


def overlaps(df: Any) -> list[tuple]:
    """Pairs of points whose timed sections overlapped on one host (or, for ``exclusive="device"`` runs, one
    device), as (key_a, key_b): empty when placement held."""
    out = []
    rows = df.dropna(subset=["t_start", "t_end"]).drop_duplicates(subset=["kernel", "size", "dtype", "t_start"])
    for host, g in rows.groupby("host"):
        spans = sorted(g[["t_start", "t_end", "kernel", "size", "dtype", "worker"]].itertuples(index=False))
        for a, b in zip(spans, spans[1:]):
            if b.t_start < a.t_end:
                out.append(((host, a.kernel, a.size, a.dtype, a.worker), (host, b.kernel, b.size, b.dtype, b.worker)))
    return out


def _portable(kernel: Kernel) -> Kernel:
    """The kernel without the user's live module (cffi handles do not travel): its program's source instead."""
    k = copy.copy(kernel)
    k._program = dataclasses.replace(kernel._program, module=None)
    k.source = kernel._program.source
    return k


def _generate(todo: Sequence[tuple[Kernel, int, str, list[Impl]]]) -> dict[str, bytes]:
    """futhark's output for every (program, backend, options) the points need, as tar archives by directory name."""
    from ..builder.generated import export_generated

    out: dict[str, bytes] = {}
    seen = set()
    with tempfile.TemporaryDirectory(prefix="futhark-lab-gen-") as tmp:
        for kernel, _, _, group in todo:
            prog = kernel._program
            for impl in group:
                if impl.kind != "futhark":
                    continue
                options = tuple(impl.options.get("options", ()))
                key = (prog.key, impl.backend, options)
                if key in seen:
                    continue
                seen.add(key)
                source = prog.source
                if not isinstance(source, Path) and prog.base_dir:  # text: its imports resolve in base_dir
                    with contextlib.chdir(prog.base_dir):
                        d = export_generated(source, impl.backend, tmp, options=options)
                else:
                    d = export_generated(source, impl.backend, tmp, options=options)
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w:gz") as tar:
                    tar.add(d, arcname=d.name)
                out[d.name] = buf.getvalue()
    return out


def _error_row(run_id: str, kernel: Kernel, impl: Impl, size: int, dtype: str, error: str) -> dict:
    return {"run_id": run_id, "kernel": kernel.name, "impl": impl.name, "kind": impl.kind, "backend": impl.backend,
            "size": int(size), "dtype": dtype, "resident": impl.resident, "pinned": impl.pinned, "device": "",
            "error": error, "correct": None}


# --------------------------------------------------------------------------- the worker's side

_RUNNERS: dict[str, PointRunner] = {}


def describe_worker() -> dict:
    """Where this worker runs: host, and the CUDA devices it sees (name, UUID) with the driver's CUDA version."""
    info: dict[str, Any] = {"host": socket.gethostname(), "gpus": [], "driver": None,
                            "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ}}
    try:
        from ..runtime import cudadrv
        info["gpus"] = list(zip(cudadrv.device_names(), cudadrv.device_uuids()))
        info["driver"] = cudadrv.driver_version()
    except Exception:  # noqa: BLE001 - no driver, or no device: a CPU worker
        pass
    return info


class GeneratedCode(distributed.WorkerPlugin):
    """futhark's output for the sweep, unpacked on each worker as it joins (``_use_generated``)."""

    def __init__(self, blobs: dict[str, bytes], name: str):
        self.blobs, self.name = blobs, name

    def setup(self, worker: Any) -> None:
        _use_generated(self.blobs)


def measure_point(run_key: str, settings: dict, impls: list[Impl], kernel: Kernel, size: int, dtype: str,
                  group: list[Impl], exclusive: str) -> list[dict]:
    """One point on this worker: setup, then the timed section under the lock its device calls for."""
    runner = _RUNNERS.get(run_key)
    if runner is None:
        runner = _RUNNERS[run_key] = PointRunner(impls, **settings)
    me = describe_worker()
    gpu = _hw_key(group[0]) == "cuda"
    uuid = me["gpus"][0][1] if gpu and me["gpus"] else None
    lock_name = f"futhark-lab/{me['host']}" + (f"/{uuid}" if gpu and exclusive == "device" else "")
    rows = runner.measure(kernel, size, dtype, group, exclusive=HostLock(lock_name))
    worker = distributed.get_worker().address
    for row in rows:
        row.update(host=me["host"], worker=worker, lock=lock_name)
        if gpu:
            row.update(device_uuid=uuid, driver=me["driver"])
    return rows


class HostLock:
    """An exclusive ``flock`` on a file in this host's temporary directory: every worker process of the host
    agrees on it without a round trip to the scheduler (a Dask ``Lock`` takes two per point), and the kernel frees
    it the moment a worker dies (a Dask lock waits for its lease to run out)."""

    def __init__(self, name: str):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        self.path = Path(tempfile.gettempdir()) / f"{safe}.lock"
        self._fd: int | None = None

    def __enter__(self) -> "HostLock":
        import fcntl

        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: Any) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def close_runners(run_key: str) -> None:
    runner = _RUNNERS.pop(run_key, None)
    if runner is not None:
        runner.close()


def _use_generated(blobs: dict[str, bytes]) -> None:
    """Unpack the client's generated code under this worker's cache (atomically: concurrent workers and a shared
    home are safe) and make futhark-lab build from it instead of running a futhark of its own."""
    from ..builder.cache import cache_root

    root = cache_root() / "generated"
    root.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        if (root / name / "generated.json").exists():
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.rename(tmp / name, root / name)
        except OSError:  # another worker got there first: theirs is the same content
            pass
        with contextlib.suppress(OSError):
            for p in sorted(tmp.rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
            tmp.rmdir()
    os.environ["FUTHARK_LAB_GENERATED"] = str(root)
    os.environ["FUTHARK"] = "futhark-lab-worker-uses-the-client-generated-code"
