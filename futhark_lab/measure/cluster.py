"""Where measurements run: a Dask cluster, for sweeps and benchmarks alike (``sweep.distributed``,
``bench.distributed``).

An optional backend in benchopt's manner: importing this module without Dask's ``distributed`` raises ImportError
with the install line.  The client stays the single writer of a run's store; workers only measure.

- **Placement.** A task builds first, outside any lock (compiles overlap), then holds a ``HostLock`` (a file lock
  every worker process of the host shares) while anything is timed: one per host for CPU work, and for GPU work one
  per host too (``exclusive="host"``, the default) or one per GPU UUID (``exclusive="device"``: GPUs of one host,
  and a GPU beside the host CPU, then time at once).  Rows record the locked section's ``t_start``/``t_end``,
  ``host``, ``worker``, ``lock``, and for GPUs the device UUID and driver, so ``overlaps`` can check placement.
- **Workers need no futhark.**  The client generates each (program, backend, futhark options) once
  (``export_archives``); a worker plugin unpacks it on every worker, and on every worker that joins later, under
  the worker's own cache root, atomically; workers build it with their own C compiler into their own
  content-addressed cache.  A program's ``import``ed files (and a benchmark's data files) must be readable on the
  workers (a shared file system), or the program self-contained.
- **Nothing lost.**  Tasks depend on nothing, so the scheduler queues them and sends a worker only the one it runs;
  a worker that dies mid-task costs that task its retry on another worker (``allowed-failures``, 1 in clusters
  made here), then error rows; Ctrl-C cancels the workers' tasks and leaves the store resumable; an unreachable
  scheduler is a clear error before anything runs.
"""

from __future__ import annotations

import contextlib
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
from typing import Any, Callable, Iterable, Iterator

INSTALL_HINT = ("measuring on a cluster needs Dask's distributed: pip install 'futhark-lab[distributed]' "
                "(or: pip install distributed dask-jobqueue)")
try:
    import dask
    import distributed
except ImportError as exc:  # pragma: no cover - the set-up installs it
    raise ImportError(INSTALL_HINT) from exc

from ..errors import FutharkLabError

EXCLUSIVE = ("host", "device")
#: For clusters made here: a task whose worker dies is retried once elsewhere, then becomes error rows; a worker is
#: sent only the task it runs (with the default 1.1, a queued task dies with its neighbour's worker too).
#: Dask's nannies also set OMP/MKL/OPENBLAS_NUM_THREADS=1 in their workers, which times NumPy and PyTorch
#: single-threaded there (benchmarks/scale_out.py saw 20x), and MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's
#: dynamic mmap threshold: every large temporary is then a fresh mmap and its page faults (NumPy's x*x at 10^6 is
#: 3-4x slower; benchmarks/dask_worker_env.py).  A value of None tells Dask not to set it.  A nanny writes these
#: variables into the os.environ of the process that starts it and never takes them back, so every later process
#: inherits them: clusters made here are started from a clean copy (``_spawn_environ``).
CLUSTER_CONFIG = {"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0,
                  "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": None, "MKL_NUM_THREADS": None,
                                                          "OPENBLAS_NUM_THREADS": None,
                                                          "MALLOC_TRIM_THRESHOLD_": None}}
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")


def _installed(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


@contextlib.contextmanager
def _spawn_environ() -> Iterator[None]:
    """Start nannies without THREAD_ENV (a Dask cluster started earlier in this process may have left it in
    os.environ), and put back what was there: glibc reads MALLOC_* once, when a process starts."""
    saved = {k: os.environ.pop(k) for k in THREAD_ENV if k in os.environ}
    try:
        with dask.config.set(CLUSTER_CONFIG):
            yield
    finally:
        for k in THREAD_ENV:
            os.environ.pop(k, None)
        os.environ.update(saved)


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
        with _spawn_environ():
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
    with _spawn_environ():
        spec = SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": {"dashboard_address": ":0"}},
                           silence_logs=logging.ERROR)
        client = distributed.Client(spec)

    def close() -> None:
        client.close()
        spec.close()
    return client, close


class Session:
    """One run on a cluster: connected, workers described (warned about where their environment differs from a
    serial run's), the generated code installed; ``submit`` places tasks, ``results`` yields them as they finish,
    ``close`` undoes what was made here."""

    def __init__(self, cluster: Any, archives: dict[str, bytes], run_id: str, exclusive: str, cpu_work: bool,
                 run_dir: Path | None = None):
        if exclusive not in EXCLUSIVE:
            raise ValueError(f"exclusive={exclusive!r}: choose 'host' (one timing per host at a time) or 'device' "
                             "(one per device: GPUs, and a GPU beside the CPU, time at once)")
        self.exclusive = exclusive
        self.client, self._close = connect(cluster)
        self.futures: dict = {}
        self.plugin: GeneratedCode | None = None
        try:
            self.workers = self.client.run(describe_worker)
            if not self.workers:
                raise ClusterUnavailable("the Dask cluster has no workers; nothing was run")
            link = getattr(self.client, "dashboard_link", None)
            if link:
                panel = ("; JupyterLab's Dask panel (dask-labextension) shows it: paste this address there"
                         if _installed("dask_labextension") else "")
                print(f"futhark-lab: {len(self.workers)} Dask worker(s); dashboard {link}{panel}", file=sys.stderr)
            limited = {w: d["thread_env"] for w, d in self.workers.items() if d["thread_env"]}
            if limited and cpu_work:
                warnings.warn(f"Dask worker(s) {', '.join(limited)} run with {limited[next(iter(limited))]}: "
                              "NumPy, PyTorch and OpenMP code time single-threaded or with other allocations there "
                              "than in a serial run. Start the workers without them (each set to null in the dask "
                              "config distributed.nanny.pre-spawn-environ, from a shell without them), or use "
                              "cluster='local:N'", stacklevel=4)
            if run_dir is not None:  # the environment of every worker's host, beside the client's
                from .store import write_json
                write_json(Path(run_dir) / "workers.json",
                           {w: {**d, **env} for (w, d), env in zip(self.workers.items(),
                                                                  self.client.run(worker_environment).values())})
            self.gpu_workers = [w for w, d in self.workers.items() if d["gpus"]]
            self.cpu_workers = [w for w, d in self.workers.items() if not d["gpus"]] or list(self.workers)
            self.key = f"{run_id}-{uuid.uuid4().hex[:8]}"
            # a worker plugin reaches every worker, and every worker that joins later (a restarted one): tasks then
            # depend on nothing, so the scheduler queues them (a task that depends on data is sent eagerly, and
            # dies with its neighbour's worker)
            self.plugin = GeneratedCode(archives, f"futhark-lab-generated-{self.key}")
            self.client.register_plugin(self.plugin)
        except BaseException:
            self._close()
            raise

    def submit(self, fn: Callable, *args: Any, gpu: bool, name: str, meta: Any) -> None:
        """Run ``fn(*args)`` on a worker of the right kind: GPU work on a worker that sees a GPU (any worker where
        none does: an OpenCL CPU platform runs where a serial run would), CPU work on one that sees none if any."""
        allowed = (self.gpu_workers or list(self.workers)) if gpu else self.cpu_workers
        # restricted tasks skip the scheduler's queue: restrict only where some workers cannot run the task
        where = {} if set(allowed) == set(self.workers) else {"workers": allowed, "allow_other_workers": False}
        fut = self.client.submit(fn, *args, pure=False, key=f"futhark-lab-{name}-{self.key}", **where)
        self.futures[fut] = meta

    def results(self) -> Iterator[tuple[Any, Any]]:
        """(meta, rows) per task as they finish; rows is the exception where the task failed (a worker died twice)."""
        try:
            for fut in distributed.as_completed(list(self.futures)):
                try:
                    yield self.futures[fut], fut.result()
                except Exception as exc:  # noqa: BLE001 - handed to the caller as its error rows
                    yield self.futures[fut], exc
        except KeyboardInterrupt:
            self.client.cancel(list(self.futures))  # finished work is in the store; the same run_id resumes
            raise

    def close(self, cleanup: Callable[[str], None] | None = None) -> None:
        with contextlib.suppress(Exception):
            if cleanup is not None:
                self.client.run(cleanup, self.key)
            if self.plugin is not None:
                self.client.unregister_worker_plugin(self.plugin.name)
        self._close()


def export_archives(jobs: Iterable[tuple[Any, str | None, str, tuple[str, ...]]]) -> dict[str, bytes]:
    """futhark's output for each (source, base_dir, backend, futhark options), as tar archives by directory name."""
    from ..builder.generated import export_generated

    out: dict[str, bytes] = {}
    seen = set()
    with tempfile.TemporaryDirectory(prefix="futhark-lab-gen-") as tmp:
        for source, base_dir, backend, options in jobs:
            key = (str(source), base_dir, backend, tuple(options))
            if key in seen:
                continue
            seen.add(key)
            if not isinstance(source, Path) and base_dir:  # text: its imports resolve in base_dir
                with contextlib.chdir(base_dir):
                    d = export_generated(source, backend, tmp, options=options)
            else:
                d = export_generated(source, backend, tmp, options=options)
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w:gz") as tar:
                tar.add(d, arcname=d.name)
            out[d.name] = buf.getvalue()
    return out


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


# --------------------------------------------------------------------------- the worker's side

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


def worker_environment() -> dict:
    """This worker's environment record (``measure.env``): what produced its rows."""
    from .env import environment
    return environment()


def timed_here(gpu: bool, exclusive: str) -> tuple[HostLock, dict]:
    """The lock this worker's timed section takes, and what the rows it makes say about where they ran."""
    me = describe_worker()
    uuid_ = me["gpus"][0][1] if gpu and me["gpus"] else None
    name = f"futhark-lab/{me['host']}" + (f"/{uuid_}" if uuid_ and exclusive == "device" else "")
    where = {"host": me["host"], "worker": distributed.get_worker().address, "lock": name}
    if uuid_:
        where.update(device_uuid=uuid_, driver=me["driver"])
    return HostLock(name), where


class GeneratedCode(distributed.WorkerPlugin):
    """futhark's output for a run, unpacked on each worker as it joins (``_use_generated``)."""

    def __init__(self, blobs: dict[str, bytes], name: str):
        self.blobs, self.name = blobs, name

    def setup(self, worker: Any) -> None:
        _use_generated(self.blobs)


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
