#!/usr/bin/env bash
# The whole GPU test suite (`-m gpu`) and the hostile suite on cuda, on the final code, on the lent GPU machine
# (about 6 minutes on an H200); run from the repository root with .gpu/ and .whl/ carried (benchmarks/gpu_env.sh):
#   OUT=/some/dir bash benchmarks/gpu_suite.sh
# Writes $OUT/gpu_suite.txt (pytest -rs: every skip with its reason), $OUT/hostile_cuda.txt and $OUT/versions.txt.
# PyCUDA (no wheel on PyPI) is built there from the carried sdist first, so its tests run rather than skip; numba-cuda
# 0.30.4 gets np.row_stack = np.vstack at start-up (NVIDIA/numba-cuda#907: NumPy 2.5 removed np.row_stack).
set -u
source benchmarks/gpu_env.sh
{ git log --oneline -1 2>/dev/null || echo "commit: ${COMMIT:-unknown}"; } >"$OUT/versions.txt"
build_pycuda || echo "pycuda: not built (see $OUT/pycuda/build.log)" >>"$OUT/versions.txt"
mkdir -p /tmp/rowstack
printf 'import numpy as np\nif not hasattr(np, "row_stack"):\n    np.row_stack = np.vstack\n' >/tmp/rowstack/sitecustomize.py
export PYTHONPATH=/tmp/rowstack:$PYTHONPATH XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$OUT/versions.txt" 2>&1
"$FUTHARK" --version | head -1 >>"$OUT/versions.txt"
for m in numpy torch jax cupy triton numba numba_cuda pycuda pyopencl; do
  python3 -c "import $m; print('$m', getattr($m, '__version__', '?'))" >>"$OUT/versions.txt" 2>&1 || echo "$m missing" >>"$OUT/versions.txt"
done
timeout "${SUITE_TIMEOUT:-420}" python3 -m pytest -q -rs -p no:cacheprovider -m gpu tests/ -W ignore::DeprecationWarning \
  >"$OUT/gpu_suite.txt" 2>&1
echo "pytest exit $?" >>"$OUT/gpu_suite.txt"
tail -3 "$OUT/gpu_suite.txt"
timeout 120 python3 -m tests.hostile --backends cuda >"$OUT/hostile_cuda.txt" 2>&1
tail -1 "$OUT/hostile_cuda.txt"
