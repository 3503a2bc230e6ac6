"""Failures first seen with the cuda backend on an H100 (issue 13), checked here without a GPU:

- futhark 0.25's ``memblock_alloc_device`` took a device allocation the driver refused for a success (a NULL
  block, later reused from the free list): cpatch must check it in real generated cuda and opencl code;
- a retired (sticky GPU error) or closed context must give the clean "closed/retired" error on every path, never
  hand a None handle to the C API;
- a refused result (impossible shape) is freed at once and leaves the module usable;
- managed (unified) memory is off unless asked for, set before the context exists;
- runtime messages name the build directory, not the temporary one the C was compiled in;
- the hostile runner goes on in a fresh child after a case retires its module.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
import types
from pathlib import Path

import cffi
import numpy as np
import pytest

import futhark_lab
from futhark_lab.runtime import context as fcontext
from futhark_lab.builder import cpatch
from futhark_lab.runtime import poisoned
from futhark_lab.builder.cache import Build
from futhark_lab.builder.toolchain import c_flags, find_futhark

from . import hostile
from .conftest import ROOT, needs_futhark

pytestmark = needs_futhark

PROGRAM = ROOT / "tests" / "programs" / "hostile.fut"


@pytest.mark.parametrize("backend", ["cuda", "opencl"])
def test_device_allocator_refusal_is_checked_in_real_generated_code(backend, tmp_path):
    """The unchecked ``(void) gpu_alloc(...)`` of futhark 0.25.27's output is replaced, and the result compiles."""
    fut = find_futhark()
    out = tmp_path / "prog"
    subprocess.run([fut.path, backend, "--library", "-o", str(out), str(PROGRAM)], check=True, capture_output=True,
                   timeout=300)
    text = out.with_suffix(".c").read_text()
    if cpatch._GPU_ALLOC_UNCHECKED not in text:
        pytest.skip(f"futhark {fut.version_str} no longer ignores gpu_alloc's result")
    log: list[str] = []
    patched = cpatch.patch_text(text, log)
    assert cpatch._GPU_ALLOC_UNCHECKED not in patched
    assert patched.count(cpatch._GPU_ALLOC_CHECKED) == text.count(cpatch._GPU_ALLOC_UNCHECKED) == 1
    assert any("refused allocation" in line for line in log), log
    # the allocator's failure branch (FUTHARK_OUT_OF_MEMORY, "Failed to allocate memory") now follows the check
    at = patched.index(cpatch._GPU_ALLOC_CHECKED)
    assert "return FUTHARK_OUT_OF_MEMORY;" in patched[at:at + 2500]
    src = tmp_path / "patched.c"
    src.write_text(patched)
    cflags = c_flags(backend, fut, tmp_path)[0]
    if backend == "cuda" and not any(Path(f[2:], "nvrtc.h").exists() for f in cflags if f.startswith("-I")):
        pytest.skip("no nvrtc.h here")
    if backend == "cuda" and not any(Path(f[2:], "cuda.h").exists() for f in cflags if f.startswith("-I")):
        pytest.skip("no cuda.h here")
    cc = shutil.which("cc") or shutil.which("gcc")
    res = subprocess.run([cc, *[f for f in cflags if f != "-O3"], "-O0", "-c", str(src), "-o",
                          str(tmp_path / "p.o")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.fixture
def hostile_c():
    m = futhark_lab.compile(PROGRAM, backend="c")
    yield m
    m.close()
    poisoned._poisoned.pop("c", None)  # tests below retire a module of the c backend on purpose


def _every_use(m, a, rec):
    """Every way a user can touch a module or its values after it is closed or retired."""
    return {
        "entry": lambda: m.rep(3),
        "array": lambda: m.array(np.arange(3)),
        "sync": lambda: m.sync(),
        "report": lambda: m.report(),
        "restore": lambda: m.restore("rec", b"b\x02\x00 i64" + bytes(8)),
        "numpy": lambda: a.numpy(),
        "shape": lambda: a.shape,
        "data_ptr": lambda: a.data_ptr(),
        "entry with value": lambda: m.inc(a),
        "store": lambda: rec.store(),
        "field": lambda: rec.field("0") if rec.fields and rec.fields[0] == "0" else rec.field(rec.fields[0]),
    }


@pytest.mark.parametrize("how", ["retired", "closed"])
def test_every_use_of_a_retired_or_closed_context_is_the_clean_error(hostile_c, how):
    m = hostile_c
    a = m.array(np.arange(3))
    rec = m.mk(2)
    if how == "retired":
        m.context._retire()
        want = "retired after a sticky error"
    else:
        m.close()
        want = "closed"
    for name, use in _every_use(m, a, rec).items():
        with pytest.raises(ValueError) as info:
            use()
        assert want in str(info.value), (name, str(info.value))
        assert "cdata" not in str(info.value), name


def test_a_refused_result_is_freed_at_once_and_the_module_stays_usable(hostile_c):
    m = hostile_c
    live = lambda: len(m.context._values)  # noqa: E731
    before = live()
    gc.disable()
    try:
        for sizes in [(2**32, 2**32, np.zeros(0, np.int32)), (-1, -1, np.zeros(1, np.int32)),
                      (-2, 3, np.zeros(6, np.int32))]:
            with pytest.raises(futhark_lab.FutharkError, match="unfl"):
                m.unfl(*sizes)
            assert live() == before, sizes  # without the garbage collector's help
    finally:
        gc.enable()
    assert m.unfl(2, 3, np.arange(6, dtype=np.int32)).numpy().tolist() == [[0, 1, 2], [3, 4, 5]]
    assert m.context.alive


class _FakeLib:
    """Records the context API calls of Context(); a stand-in for libcuda-backed code, which cannot run here."""

    def __init__(self, ffi, exports_unified=True):
        self.calls: list[tuple] = []
        self._ffi = ffi
        if exports_unified:
            self.futhark_context_config_set_unified_memory = lambda cfg, flag: self.calls.append(("unified", flag))

    def futhark_context_config_new(self):
        self.calls.append(("config_new",))
        return self._ffi.cast("void *", 1)

    def futhark_context_config_free(self, cfg):
        self.calls.append(("config_free",))

    def futhark_context_new(self, cfg):
        self.calls.append(("context_new",))
        return self._ffi.cast("void *", 2)

    def futhark_context_get_error(self, ctx):
        return self._ffi.NULL

    def futhark_context_sync(self, ctx):
        return 0

    def futhark_context_free(self, ctx):
        self.calls.append(("context_free",))


def _fake_context(opts, exports_unified=True):
    ffi = cffi.FFI()
    lib = _FakeLib(ffi, exports_unified)
    manifest = types.SimpleNamespace(backend="cuda", types={})
    build = types.SimpleNamespace(futhark=types.SimpleNamespace(version=(0, 25, 27)))
    library = types.SimpleNamespace(ffi=ffi, lib=lib, manifest=manifest, build=build, libc=None)
    ctx = fcontext.Context(library, opts)
    return ctx, lib


@pytest.mark.parametrize("asked", [False, True])
def test_unified_memory_is_set_explicitly_before_the_context_exists(asked):
    """futhark's default (2) turns managed memory on wherever the device supports it; off unless asked."""
    ctx, lib = _fake_context(fcontext.ContextOptions(unified_memory=asked))
    names = [c[0] for c in lib.calls]
    assert ("unified", 1 if asked else 0) in lib.calls
    assert names.index("unified") < names.index("context_new")
    ctx._finalizer.detach()


def test_unified_memory_must_be_a_bool():
    with pytest.raises(TypeError, match="unified_memory"):
        _fake_context(fcontext.ContextOptions(unified_memory="no"))


def test_runtime_messages_name_the_build_directory_not_the_temporary_one(tmp_path):
    name = "_futhark_lab_cuda_c0bec65816fcdf560549"
    b = Build(tmp_path / name, "cuda", name, find_futhark(), "hostile.fut", False, "")
    msg = (f"/root/.cache/futhark-lab/.tmp-{name}-mojsdx5b/{name}.c:6396: CUDA call\n"
           "  cuMemcpyHtoDAsync_v2(dst + dst_offset, src + src_offset, nbytes, ctx->stream)\n"
           "failed with error code 1 (invalid argument)\n")
    mapped = b.map_runtime_message(msg)
    assert ".tmp-" not in mapped
    assert f"{tmp_path / name}/{name}.c:6396: CUDA call" in mapped
    # and an invalid argument is not a sticky error: the module would stay usable
    assert fcontext._STICKY.search(msg) is None


_RETIRER = """
import sys
sys.path.insert(0, {root!r})
from tests import hostile


def retirer(m, b):
    m.context._retire()
    return "retired on purpose"


hostile.CASES[:] = hostile.CASES[:1] + [("retirer", retirer, None)] + hostile.CASES[1:3]
hostile.main(sys.argv[1:])
"""


def test_runner_goes_on_in_a_fresh_child_after_a_case_retires_its_module(tmp_path, monkeypatch):
    script = tmp_path / "retirer.py"
    script.write_text(_RETIRER.format(root=str(ROOT)))
    cases = hostile.CASES[:1] + [("retirer", None, None)] + hostile.CASES[1:3]
    monkeypatch.setattr(hostile, "CASES", cases)
    res = hostile.run_backend("c", child_cmd=[sys.executable, str(script)])
    assert res["retirer"][0] == "clean" and "fresh process" in res["retirer"][1], res
    assert [res[n][0] for n, _, _ in cases if n != "retirer"] == ["clean"] * 3, res


def test_a_cuda_device_that_matches_nothing_is_refused(monkeypatch):
    """futhark's cuda runtime falls back to the best device when the preferred one matches none (seen on the H100:
    device="NoSuchDevice" ran on the H100); futhark-lab refuses that and lists the devices instead."""
    from futhark_lab.runtime import cudadrv, guards
    monkeypatch.setattr(cudadrv, "device_names", lambda: ["NVIDIA H100 80GB HBM3"])
    for ok in ("H100", "#0", "NVIDIA#0", ""):
        guards.check_cuda_device(ok)
    for bad in ("NoSuchDevice", "#1", "H100#1"):
        with pytest.raises(ValueError, match=r"matches no CUDA device.*#0 'NVIDIA H100 80GB HBM3'"):
            guards.check_cuda_device(bad)
    with pytest.raises(ValueError, match="device number"):
        guards.check_cuda_device("#x")
