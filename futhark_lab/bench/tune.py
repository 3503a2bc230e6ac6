"""``tune``: the maintainers' own ``futhark autotune`` on a program's ``-- ==`` datasets, then default against tuned
measured by futhark-lab's method (``bench.run.bench``, both variants interleaved in the same rounds).

futhark-lab writes no tuner of its own: ``futhark autotune`` runs as a subprocess (its lines streamed as progress),
writes ``prog.fut.tuning``, and this module reads that file (``builder.tuning``) and measures.  What autotune needs
to run the program as futhark-lab would is passed through ``--pass-option``: the OpenCL platform futhark-lab picks
(a GPU over PoCL at index 0) and PoCL's kernel-build workarounds (``runtime.loader.pocl_workaround``); for CUDA the
C flags futhark-lab's own builds use (CUDA's headers and libraries, the CUDA 13 shim for futhark < 0.25.34) go to
futhark's C compiler through ``$CFLAGS``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..builder.toolchain import c_flags, find_futhark
from ..builder.tuning import read_tuning_file
from ..errors import FutharkLabError
from ..measure.timing import Policy
from .spec import SpecError, read


class AutotuneError(FutharkLabError):
    """``futhark autotune`` failed or ran out of time; the message carries its last lines."""


@dataclasses.dataclass
class TuneResult:
    """What ``tune`` made: the tuning file, its parameters, the bench run (``df``: default and tuned rows) and
    ``table``: one row per dataset with both medians and the speed-up (default / tuned)."""

    program: str
    backend: str
    tuning_file: Path
    params: dict[str, int]
    df: pd.DataFrame
    table: pd.DataFrame
    autotune_log: str
    autotune_s: float
    futhark_version: str

    def _repr_html_(self) -> str:
        head = (f"<p><b>{self.program}</b> on {self.backend} (futhark {self.futhark_version}): "
                f"<code>futhark autotune</code> wrote {self.tuning_file} in {self.autotune_s:.1f} s</p>")
        params = "".join(f"<li><code>{k}={v}</code></li>" for k, v in self.params.items()) or "<li>(none)</li>"
        return head + f"<ul>{params}</ul>" + self.table.to_html(index=False, float_format=lambda v: f"{v:.4g}")


def autotune_command(program: Path, backend: str, futhark: str, *, runs: int | None, timeout_s: int | None,
                     pass_options: Sequence[str], platform: str | None) -> list[str]:
    """The ``futhark autotune`` argument vector (no shell)."""
    cmd = [futhark, "autotune", f"--backend={backend}", f"--futhark={futhark}"]
    if runs is not None:
        cmd.append(f"--runs={int(runs)}")
    if timeout_s is not None:
        cmd.append(f"--timeout={int(timeout_s)}")
    if platform is not None:
        cmd.append(f"--pass-option=--platform={platform}")
    cmd += [f"--pass-option={o}" for o in pass_options]
    cmd.append(program.name)
    return cmd


def _backend_setup(backend: str, fut, workdir: Path) -> tuple[str | None, list[str], dict[str, str]]:
    """(OpenCL platform, options for the program, environment for futhark's C compiler) as futhark-lab's own
    builds have them."""
    platform, opts, env = None, [], {}
    if backend == "opencl":
        from ..runtime.loader import choose_opencl_platform, pocl_workaround
        platform = choose_opencl_platform(backend)
        opts += [f"--build-option={o}" for o in pocl_workaround(platform, (), fut.version)]
    if backend in ("cuda", "hip", "opencl"):
        cflags, libs = c_flags(backend, fut, workdir)
        extra = [f for f in cflags if f.startswith(("-I", "-include")) or f.endswith(".h")]
        extra += [f for f in libs if f.startswith("-L")]
        extra += [f"-Wl,-rpath,{f[2:]}" for f in libs if f.startswith("-L") and "stubs" not in f]   # the executable
        if extra:
            env["CFLAGS"] = " ".join([os.environ.get("CFLAGS", "-O3 -std=c99"), *extra])
    return platform, opts, env


def run_autotune(program: str | os.PathLike, backend: str = "opencl", *, futhark: str | os.PathLike | None = None,
                 runs: int | None = None, timeout_s: int | None = None, pass_options: Sequence[str] = (),
                 limit_s: float | None = None, progress: bool = True) -> tuple[Path, str, float]:
    """Run ``futhark autotune`` on ``program``; return (the tuning file it wrote, its output, seconds taken).

    ``runs`` and ``timeout_s`` are autotune's ``--runs`` and ``--timeout`` (per dataset); ``limit_s`` stops the
    whole autotune (it is killed and ``AutotuneError`` raised).  Its output lines are printed as they come."""
    path = Path(program).resolve()
    spec = read(path)
    if not spec.cases:
        raise SpecError(f"{path}: no `-- ==` block with datasets: futhark autotune tunes on a program's datasets")
    fut = find_futhark(futhark) if futhark is not None else find_futhark()
    target = Path(str(path) + ".tuning")
    with tempfile.TemporaryDirectory(prefix="futhark-lab-tune-") as tmp:
        platform, opts, env = _backend_setup(backend, fut, Path(tmp))
        cmd = autotune_command(path, backend, fut.path, runs=runs, timeout_s=timeout_s,
                               pass_options=[*opts, *pass_options], platform=platform)
        if progress:
            print("futhark-lab tune: " + " ".join(cmd), file=sys.stderr, flush=True)
        before = target.stat().st_mtime_ns if target.exists() else None
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=path.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", env={**os.environ, **env}, start_new_session=True)
        lines: list[str] = []
        killed = False
        try:
            assert proc.stdout is not None
            deadline = None if limit_s is None else t0 + limit_s
            import selectors
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                wait = None if deadline is None else max(0.0, deadline - time.perf_counter())
                if wait == 0.0 or (wait is not None and not sel.select(wait)):
                    killed = True
                    break
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line.rstrip("\n"))
                if progress:
                    print(f"  autotune: {line.rstrip()}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            killed = True
            raise
        finally:
            if killed:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            rc = proc.wait()
    took = time.perf_counter() - t0
    log = "\n".join(lines)
    tail = "\n".join(lines[-15:])
    if killed:
        raise AutotuneError(f"futhark autotune on {path.name} ({backend}) ran past {limit_s:g} s and was stopped; "
                            f"give fewer --runs or a smaller --timeout, or a larger limit. Its last lines:\n{tail}")
    if rc != 0:
        raise AutotuneError(f"futhark autotune on {path.name} ({backend}) failed (exit {rc}):\n{tail}")
    if not target.exists() or (before is not None and target.stat().st_mtime_ns == before):
        raise AutotuneError(f"futhark autotune on {path.name} exited 0 but wrote no {target.name}:\n{tail}")
    return target, log, took


def comparison_table(df: pd.DataFrame, default: str, tuned: str) -> pd.DataFrame:
    """One row per dataset: default and tuned medians (with IQR), speed-up = default / tuned, and whether the
    difference is larger than both runs' spread (IQRs not overlapping)."""
    rows = []
    keys = ["kernel", "dataset"] + (["size"] if "size" in df else [])
    for key, g in df.groupby(keys[:2], sort=False):
        a = g[g["impl"] == default]
        b = g[g["impl"] == tuned]
        row = dict(zip(keys[:2], key))
        if "size" in g:
            row["size"] = g["size"].iloc[0]
        med = {}
        for label, part in (("default", a), ("tuned", b)):
            r = part.iloc[0] if len(part) else None
            ok = r is not None and (not isinstance(r.get("error"), str)) and not pd.isna(r.get("time_s_median"))
            med[label] = (float(r["time_s_median"]), float(r["time_s_q1"]), float(r["time_s_q3"])) if ok else None
            row[f"{label}_s"] = med[label][0] if ok else math.nan
            row[f"{label}_correct"] = r.get("correct") if r is not None else None
            if r is not None and isinstance(r.get("error"), str):
                row[f"{label}_error"] = r["error"].splitlines()[0][:120]
        if med["default"] and med["tuned"]:
            row["speedup"] = med["default"][0] / med["tuned"][0] if med["tuned"][0] > 0 else math.nan
            (_, dq1, dq3), (_, tq1, tq3) = med["default"], med["tuned"]
            if tq3 < dq1:
                row["verdict"] = "tuned faster"
            elif tq1 > dq3:
                row["verdict"] = "tuned slower"
            else:
                row["verdict"] = "within noise"
        else:
            row["speedup"] = math.nan
            row["verdict"] = "not measured"
        rows.append(row)
    return pd.DataFrame(rows)


def tune(
    program: str | os.PathLike,
    backend: str = "opencl",
    *,
    futhark: str | os.PathLike | None = None,
    runs: int | None = None,
    timeout_s: int | None = None,
    pass_options: Sequence[str] = (),
    limit_s: float | None = None,
    skip_autotune: bool = False,
    policy: Policy | None = None,
    rounds: int = 3,
    results: str | os.PathLike | None = None,
    run_id: str | None = None,
    progress: bool = True,
    compile_options: dict | None = None,
) -> TuneResult:
    """``futhark autotune`` ``program`` for ``backend`` (writing ``prog.fut.tuning``), then measure every dataset
    with the compiler's defaults and with the tuning file, side by side (``bench``: interleaved rounds, medians
    and IQRs, answers checked).  ``skip_autotune=True`` measures an existing ``prog.fut.tuning`` again.
    Returns a ``TuneResult``; ``result.table`` has the speed-up per dataset."""
    from ..measure.store import new_run_id
    from .run import bench

    path = Path(program)
    fut = find_futhark(futhark) if futhark is not None else find_futhark()
    if skip_autotune:
        target = Path(str(path) + ".tuning")
        if not target.exists():
            raise FileNotFoundError(f"{target} does not exist: run without skip_autotune to make it")
        log, took = "(autotune skipped: existing tuning file measured)", 0.0
    else:
        target, log, took = run_autotune(path, backend, futhark=futhark, runs=runs, timeout_s=timeout_s,
                                         pass_options=pass_options, limit_s=limit_s, progress=progress)
    params = read_tuning_file(target)
    if progress:
        print(f"futhark-lab tune: {target.name}: " + (", ".join(f"{k}={v}" for k, v in params.items()) or
                                                       "(no parameters)"), file=sys.stderr, flush=True)
    df = bench(path, [backend], tuning=[None, str(target)], futhark=futhark, policy=policy, rounds=rounds,
               results=results, run_id=run_id or new_run_id("tune"), progress=progress,
               compile_options=compile_options)
    default, tuned = f"futhark-{backend}+default", f"futhark-{backend}+tuned"
    table = comparison_table(df, default, tuned)
    df.attrs["tuning_file"] = str(target)
    return TuneResult(os.path.normpath(str(path)), backend, target, params, df, table, log, took, fut.version_str)
