"""A sweep on a real single-node SLURM through dask-jobqueue: munge and slurmctld/slurmd started here on loopback
(Debian's slurm-wlm and munge, installed by scripts/setup.sh), workers submitted as SLURM jobs, rows back."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import needs_futhark

pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is installed by scripts/setup.sh (the distributed extra)")
NEEDS = ("slurmctld", "slurmd", "sbatch", "munged")
missing = [b for b in NEEDS if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
pytestmark = [pytest.mark.skipif(bool(missing), reason=f"no {', '.join(missing)}: apt-get install slurm-wlm munge "
                                                       "(scripts/setup.sh does, as root)"),
              pytest.mark.skipif(os.geteuid() != 0, reason="starting munged and slurmd needs root")]


def _which(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise TimeoutError(what)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """munged + slurmctld + slurmd for this machine on loopback; yields the config path; stops them after."""
    d = tmp_path_factory.mktemp("slurm")
    munge = pwd.getpwnam("munge")
    for sub in ("/run/munge", "/var/lib/munge", "/var/log/munge", "/etc/munge"):
        Path(sub).mkdir(parents=True, exist_ok=True)
        os.chown(sub, munge.pw_uid, munge.pw_gid)
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    os.chown(key, munge.pw_uid, munge.pw_gid)
    key.chmod(0o400)
    procs = []
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        subprocess.run(["runuser", "-u", "munge", "--", _which("munged")], check=True)
        procs.append("munged")
    node = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 2
    conf = d / "slurm.conf"
    conf.write_text(f"""\
ClusterName=futharklab
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
""")
    (d / "state").mkdir()
    (d / "spool").mkdir()
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run([_which("slurmctld")], env=env, check=True)
    subprocess.run([_which("slurmd")], env=env, check=True)
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    try:
        _wait(lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout,
              60, f"the SLURM node did not come up; logs in {d}")
        yield conf
    finally:
        for pidfile in ("slurmd.pid", "slurmctld.pid"):
            p = d / pidfile
            if p.exists():
                try:
                    os.kill(int(p.read_text().split()[0]), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        if "munged" in procs:
            subprocess.run(["pkill", "-x", "munged"])
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


@needs_futhark
def test_sweep_on_slurm_workers(slurm, tmp_path):
    from dask_jobqueue import SLURMCluster

    from futhark_lab import suite
    from futhark_lab import sweep as sw
    from futhark_lab.measure import Policy
    from futhark_lab.measure.cluster import overlaps

    cluster = SLURMCluster(queue="debug", cores=1, processes=1, memory="1GB", walltime="00:10:00",
                           python=sys.executable, scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"},
                           worker_extra_args=["--host", "127.0.0.1"], log_directory=str(tmp_path / "logs"),
                           job_script_prologue=[f"export FUTHARK_LAB_CACHE={tmp_path / 'worker-cache'}",
                                                "export FUTHARK=/nonexistent/futhark"])
    from distributed import Client

    client = Client(cluster)
    try:
        cluster.scale(jobs=1)
        client.wait_for_workers(1, timeout=180)
        job_ids = client.run(lambda: os.environ.get("SLURM_JOB_ID"))
        policy = Policy(min_time_s=0.02, max_time_s=0.1, min_samples=5, max_samples=30, warmup_s=0.01)
        df = sw.sweep(suite.get("sum_squares"), [sw.futhark("c"), sw.numpy_impl()], sizes=[1000, 100_000],
                      dtypes=["f64"], results=tmp_path, policy=policy, progress=False, hardware=None, cluster=client)
    finally:
        client.close()
        cluster.close()
    assert job_ids and all(job_ids.values()), f"every worker is a SLURM job: {job_ids}"
    assert len(df) == 4 and df["error"].isna().all(), df["error"].dropna().tolist()
    assert df["correct"].all() and overlaps(df) == []
    assert df["worker"].nunique() == 1 and df["worker"].str.startswith("tcp://127.0.0.1").all()
    # the worker ran as a SLURM job, built from the client's generated code (it had no futhark)
    assert "futhark-c" in set(df["impl"]) and df[df["impl"] == "futhark-c"]["futhark_version"].notna().all()
    assert (tmp_path / "worker-cache" / "generated").is_dir(), "the worker unpacked the client's generated code"
