"""GPU peers on an NVIDIA GPU: JAX, torch.compile, CuPy (plain and user kernels), Triton, numba.cuda and PyCUDA on
the suite's sum of squares, saxpy and matmul, beside futhark cuda where futhark (or its generated code) is here:
correct answers, inputs resident (h2d timed apart), compilation in the first call, CUDA-event device spans.
They skip, saying why, without a GPU; a peer whose package is not installed on the GPU machine skips alone."""

from __future__ import annotations

import pytest

from futhark_lab import suite
from futhark_lab import sweep as sw
from futhark_lab.measure.timing import Policy


def _gpu_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    return None


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_gpu_reason() is not None, reason=_gpu_reason() or "")]

SHORT = Policy(min_time_s=0.02, max_time_s=0.1, warmup_s=0.01)
SIZES = {"sum_squares": 1_000_003, "saxpy": 1_000_003, "dot": 1_000_003, "matmul": 300 ** 2}

PEERS = [("jax", lambda: sw.jax("cuda"), "jax"), ("torch-compile", lambda: sw.torch_compile("cuda"), "triton"),
         ("cupy", lambda: sw.cupy(), "cupy"), ("cupy-kernel", lambda: sw.cupy("kernel"), "cupy"),
         ("triton", lambda: sw.triton(), "triton"), ("numba-cuda", lambda: sw.numba("cuda"), "numba.cuda"),
         ("pycuda", lambda: sw.pycuda(), "pycuda.driver")]


def _needs(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is not installed on this GPU machine")


def _works_here(impl) -> None:
    """A peer whose library is installed but broken on this machine (numba-cuda against a newer NumPy) is skipped
    with the cause its availability check found."""
    from futhark_lab.sweep.impls import PEER_DEVICES

    for name, module, _devices in PEER_DEVICES:
        if getattr(module, "KIND", None) == impl.kind and hasattr(module, "available"):
            ok, why = module.available(impl.device)
            if not ok:
                pytest.skip(why)


@pytest.mark.parametrize("kernel", ["sum_squares", "saxpy", "matmul"])
@pytest.mark.parametrize("peer,make,module", PEERS, ids=[p[0] for p in PEERS])
def test_gpu_peer_is_correct_resident_and_device_timed(peer, make, module, kernel, tmp_path):
    _needs(module)
    k = suite.get(kernel)
    impl = make()
    _works_here(impl)
    fns = k.peers.get(impl.kind)
    if impl.variant and not (isinstance(fns, dict) and impl.variant in fns):
        pytest.skip(f"{kernel} has no {impl.kind} variant {impl.variant!r}")
    df = sw.sweep(k, [impl], sizes=[SIZES[kernel]], dtypes=["f32"], policy=SHORT, rounds=2, results=tmp_path,
                  progress=False, hardware=None, on_error="record")
    r = df.iloc[0]
    assert not isinstance(r["error"], str), r["error"]
    assert r["correct"] is True or r["correct"] == True, r["max_rel_err"]  # noqa: E712
    assert r["h2d_s"] > 0                                   # inputs put on the device once, timed apart
    if peer != "cupy":   # CuPy's element-wise/reduction kernels may be loaded already by an earlier test's ops
        assert r["first_call_s"] > r["time_s_median"]       # compilation / first launch kept out of the samples
    assert not r.get("recompiles", 0) > 0                  # NaN where the peer has no compile counter
    if peer != "jax":                                       # JAX exposes no CUDA events
        assert 0 < r["device_time_s_median"] <= r["time_s_median"] * 1.5, (r["device_time_s_median"],
                                                                          r["time_s_median"])


def test_jax_gpu_f64_is_computed_in_f64(tmp_path):
    _needs("jax")
    df = sw.sweep(suite.get("sum_squares"), [sw.jax("cuda")], sizes=[100_000], dtypes=["f64"], policy=SHORT,
                  rounds=1, results=tmp_path, progress=False, hardware=None)
    assert df.iloc[0]["correct"] == True and df.iloc[0]["max_rel_err"] < 1e-9  # noqa: E712


def test_every_peer_beside_futhark_cuda_in_one_sweep(tmp_path):
    """One process, one point: futhark cuda (where it can be built), eager PyTorch and every installed peer,
    interleaved; all correct (one GPU shared by XLA, PyTorch's and CuPy's allocators and Futhark's context)."""
    import os

    from futhark_lab.builder.toolchain import futhark_available
    impls = [sw.torch("cuda", "sum")]
    if futhark_available() or os.environ.get("FUTHARK_LAB_GENERATED"):
        impls.append(sw.futhark("cuda"))
    for _, make, module in PEERS:
        try:
            __import__(module)
        except ImportError:
            continue
        impls.append(make())
    df = sw.sweep(suite.get("sum_squares"), impls, sizes=[10_000_000], dtypes=["f32"], policy=SHORT, rounds=2,
                  results=tmp_path, progress=False, hardware=None, on_error="record")
    # a peer installed but unusable here (numba-cuda against a newer NumPy) is a skip row with its cause
    skipped = df["error"].fillna("").str.startswith("PeerUnavailable")
    assert len(df[~skipped]) >= 3
    bad = df[~skipped & ((df["correct"] != True) | df["error"].notna())]  # noqa: E712
    assert bad.empty, bad[["impl", "error", "max_rel_err"]]
