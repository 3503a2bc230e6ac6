"""flake.nix parses and is pinned; doctor's diagnosis of each failure mode, from recorded error outputs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from futhark_lab.runtime.diagnose import diagnose, explain
from futhark_lab.runtime.doctor import BackendStatus, best_backend, check_backend, format_table

from .conftest import ROOT, needs_futhark

DATA = Path(__file__).parent / "data"


@pytest.mark.skipif(shutil.which("nix-instantiate") is None,
                    reason="nix-instantiate is not installed (apt-get install nix-bin; scripts/setup.sh does)")
def test_flake_parses():
    out = subprocess.run(["nix-instantiate", "--parse", str(ROOT / "flake.nix")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "devShells" in out.stdout


def test_flake_inputs_are_pinned_by_the_lock():
    lock = json.loads((ROOT / "flake.lock").read_text())
    node = lock["nodes"][lock["nodes"]["root"]["inputs"]["nixpkgs"]]
    assert len(node["locked"]["rev"]) == 40 and node["locked"]["narHash"].startswith("sha256-")
    text = (ROOT / "flake.nix").read_text()
    for needed in ("futhark", "pocl", "ocl-icd", "OCL_ICD_VENDORS", "LD_LIBRARY_PATH", "torch", "pyopencl",
                   "pycuda", "jupyterlab", "ipywidgets"):
        assert needed in text, needed
    assert "/usr/lib/x86_64" not in text, "no machine-specific paths"


@pytest.mark.parametrize("recording, anchor", [
    ("cuda_error_222.txt", "cuda-error-222"),
    ("opencl_no_platform.txt", "missing-icd"),
    ("cuda_no_libcuda.txt", "no-driver"),
    ("opencl_build_failure.txt", "opencl-build"),
    ("pocl_atomics_futhark_0.27.txt", "pocl-atomics"),
])
def test_recorded_failures_are_diagnosed(recording, anchor):
    if not (DATA / recording).exists():
        pytest.skip(f"{recording} is recorded on a GPU machine and not yet in tests/data")
    text = (DATA / recording).read_text()
    d = diagnose(text)
    assert d is not None, f"{recording} not recognised"
    assert d.anchor == anchor
    cause, fix = explain(text)
    assert f"environment.md#{anchor}" in fix
    assert anchor in (ROOT / "environment.md").read_text(), "the fix must link to an existing section"


def test_unknown_failures_fall_back_to_the_runtime_message():
    cause, fix = explain("something odd\nFinal line of the runtime\n")
    assert cause == "Final line of the runtime" and "environment.md" in fix


def test_missing_compiler_is_diagnosed(monkeypatch):
    monkeypatch.setenv("FUTHARK", "/nonexistent/futhark")
    s = check_backend("c")
    assert not s.works and "futhark compiler" in s.cause and "FUTHARK" in s.fix


def test_missing_icd_is_diagnosed(tmp_path):
    """In a child process: the OpenCL ICD loader reads OCL_ICD_VENDORS once per process, so an empty vendors
    directory set here would leave this test process without platforms for every later OpenCL test."""
    import os
    import sys
    env = dict(os.environ, OCL_ICD_VENDORS=str(tmp_path))  # an empty vendors directory: no platform at all
    out = subprocess.run([sys.executable, "-m", "futhark_lab.cli", "doctor", "--json", "--backends", "opencl"],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    s = json.loads(out.stdout)["backends"][0]
    assert not s["works"]
    assert "no platform" in s["cause"] or "ICD" in s["cause"], s["cause"]


def test_cuda_without_driver_is_reported_with_its_cause():
    s = check_backend("cuda")
    if s.works:
        pytest.skip("this machine has a working CUDA setup")
    assert s.cause and s.fix


def test_best_backend_prefers_gpu_then_multicore():
    st = [BackendStatus("c", True, "cpu"), BackendStatus("multicore", True, "cpu"),
          BackendStatus("opencl", True, "Portable Computing Language: pthread-cpu"),
          BackendStatus("cuda", False, cause="no driver")]
    assert best_backend(statuses=st) == "multicore", "an OpenCL CPU platform must not beat multicore"
    st.append(BackendStatus("pyopencl", True, "NVIDIA CUDA: NVIDIA H100"))
    st[3] = BackendStatus("cuda", True, "NVIDIA H100 80GB HBM3")
    assert best_backend(statuses=st) == "cuda"
    table = format_table(st)
    assert "cuda" in table and "ok" in table


@needs_futhark
def test_doctor_on_this_machine():
    """c, multicore and python work wherever futhark does; OpenCL ones where a platform exists; cuda with a cause."""
    from futhark_lab.runtime.doctor import doctor
    from futhark_lab.runtime.opencl_info import platforms
    df = doctor(["c", "multicore", "python", "opencl", "pyopencl", "cuda"]).set_index("backend")
    for b in ("c", "multicore", "python"):
        assert df.loc[b, "works"], df.loc[b, "cause"]
    try:
        have_cl = bool(platforms())
    except Exception:  # noqa: BLE001
        have_cl = False
    if have_cl:
        assert df.loc["opencl", "works"] and df.loc["pyopencl", "works"], df[["cause"]]
    if not df.loc["cuda", "works"]:
        assert df.loc["cuda", "cause"] and df.loc["cuda", "fix"]
    out = subprocess.run([__import__("sys").executable, "-m", "futhark_lab.cli", "doctor", "--json",
                          "--backends", "c,cuda"], capture_output=True, text=True, cwd=ROOT)
    rows = json.loads(out.stdout)["backends"]
    assert {r["backend"] for r in rows} == {"c", "cuda"} and rows[0]["works"]


@needs_futhark
def test_auto_backend_picks_a_working_one_and_says_so(capsys):
    import futhark_lab
    with futhark_lab.compile("entry f (x: f64): f64 = x + 1", backend="auto") as m:
        assert m.f(1.0) == 2.0
        assert m.backend in ("cuda", "opencl", "multicore", "c")
    assert "chose" in capsys.readouterr().err
