"""futhark bench's own timing, reproduced where the futhark binary is absent (the GPU machine).

Since its server mode, `futhark bench` does not run `prog -r N -t`: it starts the program built with `--server` and,
per dataset (src/Futhark/Bench.hs, `benchmarkDataset`, futhark 0.25.27): `clear`s, pauses profiling, restores the
inputs once, makes one uncounted warm-up call, then repeats `free out…` + `call entry out… in…` and reads the
`runtime: N` line the server prints (rts/c/server.h: entry point + futhark_context_sync on the wall clock, whole µs).
Inputs stay on the device between runs unless the entry point consumes one.  This module does the same through the
maintainers' client of the server protocol (PyPI `futhark-server`), so the reference is futhark's measurement, not
ours; only the number of runs is chosen here (futhark bench: ≥10 runs and ≥0.5 s, then until converged).

`prog -r N -t` is a different experiment: futhark's CLI re-copies every input from the host before each run, so each
timed run follows an idle GPU and a fresh host→device copy; on the H100 that made sum_squares 10⁸ 10% slower.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def build_executable(c_file: Path, exe: Path, backend: str, version: tuple, version_text: str) -> Path:
    """futhark's own executable (CLI or server) from C that futhark generated on another machine, compiled with
    futhark-lab's C flags (and CUDA shim) but no -fPIC.  The GPU kernels are the same on both sides; host code may be
    laid out differently, which can matter on CPU backends (benchmarks/code_placement.py)."""
    import subprocess

    from futhark_lab.builder.toolchain import FutharkCompiler, c_compiler, c_flags

    fut = FutharkCompiler("(generated elsewhere)", tuple(version), version_text)
    cflags, libs = c_flags(backend, fut, exe.parent)
    cmd = [*c_compiler(), *[f for f in cflags if f != "-fPIC"], str(c_file), "-o", str(exe), *libs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return exe


def binary_data_file(path: Path, work: Path) -> Path:
    """The server's `restore` reads only the binary data format: any data file futhark reads (text, binary, mixed,
    gzipped; futhark-lab's reader) rewritten in it with futhark-data."""
    import futhark_data

    from futhark_lab.bench.datasets import read_file

    out = work / (path.name.removesuffix(".gz") + ".bin")
    with open(out, "wb") as f:
        for v in read_file(path):
            futhark_data.dump(v, f, binary=True)
    return out


def _output_count(exe: Path, entry: str, options: tuple[str, ...]) -> int:
    """futhark ≤ 0.25 servers answer `outputs` (one line per output); 0.26+ entry points have one output and the
    command is `output`, and an unknown command ends the server (futhark_panic): ask a throwaway server, quietly."""
    import subprocess

    proc = subprocess.run([str(exe), *options], input=f"outputs {entry}\n", capture_output=True, text=True,
                          timeout=600)
    lines = proc.stdout.splitlines()
    if proc.returncode == 0 and lines.count("%%% OK") >= 2:     # the greeting, then the answer
        answer = lines[lines.index("%%% OK") + 1:]
        return len(answer[:answer.index("%%% OK")])
    return 1


def server_runtimes(exe: Path, entry: str, data: Path, *, runs: int = 10, min_time_s: float = 0.5,
                    max_runs: int = 100_000, options: tuple[str, ...] = (),
                    gaps: list[float] | None = None) -> np.ndarray:
    """Per-run runtimes in seconds, measured by futhark's server exactly as futhark bench drives it.  ``gaps``, if
    given, receives each run's time outside the timed call (pipe round trips of `free` and `call`: the device and
    the server's thread idle between runs), seen from this process."""
    from futhark_server import Server

    with tempfile.TemporaryDirectory(prefix="futhark-server-") as tmp:
        data = binary_data_file(Path(data), Path(tmp))
        with Server(str(exe), *options) as s:
            inputs = s.cmd("inputs", entry)                # "*[]f64" when the entry point consumes it
            in_types = [line.lstrip("*") for line in inputs]
            consumed = any(line.startswith("*") for line in inputs)
            n_out = _output_count(exe, entry, options)
            ins = [f"in{i}" for i in range(len(in_types))]
            outs = [f"out{i}" for i in range(n_out)]
            s.cmd_clear()                                   # futhark bench's order: clear, pause, load
            s.cmd_pause_profiling()
            s.cmd_restore(str(data), *zip(ins, in_types))
            s.cmd_call(entry, *outs, *ins)             # the uncounted warm-up run
            us: list[int] = []
            start = time.perf_counter()
            while len(us) < max_runs and (len(us) < runs or time.perf_counter() - start < min_time_s):
                t = time.perf_counter()
                s.cmd_free(*outs)
                lines = s.cmd_call(entry, *outs, *ins)
                wall = time.perf_counter() - t
                if consumed:                               # futhark bench's reloadInput
                    s.cmd_free(*ins)
                    s.cmd_restore(str(data), *zip(ins, in_types))
                found = [int(line.split(":")[1]) for line in lines if line.startswith("runtime: ")]
                if len(found) != 1:
                    raise RuntimeError(f"futhark server printed no single runtime line: {lines!r}")
                us.append(found[0])
                if gaps is not None:
                    gaps.append(max(0.0, wall - found[0] * 1e-6))
            s.cmd_free(*outs)
    return np.asarray(us, dtype=float) * 1e-6
