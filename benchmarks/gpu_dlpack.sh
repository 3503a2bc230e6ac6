#!/usr/bin/env bash
# DLPack on the H200 (issue 23, item 4): tests/test_gpu_dlpack.py (PyTorch, CuPy, JAX, PyCUDA both ways, streams,
# lifetimes) plus the CPU DLPack tests, under $OUT/dlpack/.  About 3 minutes.  Carried as for
# benchmarks/gpu_final_check.sh (.gpu/futhark.tar.xz, .whl/ with futhark-lab's wheel; pycuda only if carried too).
set -u
OUT=${OUT:-$PWD/out-gpu}
mkdir -p "$OUT/dlpack"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >/dev/null 2>&1
fi
export PYTHONPATH=$PWD:/tmp/site FUTHARK_LAB_CACHE=/tmp/flcache
if [ -z "${FUTHARK:-}" ] && [ -f .gpu/futhark.tar.xz ]; then
  mkdir -p /work/main/.venv && tar -xJf .gpu/futhark.tar.xz -C /work/main/.venv
  export FUTHARK=/work/main/.venv/futhark/usr/bin/futhark
fi
git log --oneline -1 >"$OUT/dlpack/commit.txt" 2>/dev/null || true
python3 -c 'import torch, cupy, jax; print("torch", torch.__version__, "cupy", cupy.__version__, "jax", jax.__version__,
jax.devices())' >"$OUT/dlpack/versions.txt" 2>&1
python3 -c 'import pycuda; print("pycuda", pycuda.VERSION)' >>"$OUT/dlpack/versions.txt" 2>&1
timeout 200 python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu_dlpack.py >"$OUT/dlpack/gpu_dlpack.txt" 2>&1
echo "exit $?" >>"$OUT/dlpack/gpu_dlpack.txt"
tail -3 "$OUT/dlpack/gpu_dlpack.txt"
# the older zero-copy tests: PyTorch and CuPy inputs now come in through DLPack on futhark >= 0.25.14
timeout 120 python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py >"$OUT/dlpack/gpu_tests.txt" 2>&1
echo "exit $?" >>"$OUT/dlpack/gpu_tests.txt"
tail -3 "$OUT/dlpack/gpu_tests.txt"
