#!/usr/bin/env bash
# The final code on the lent H200 (about 3 minutes): GPU tests, the hostile suite on cuda, and `futhark-lab bench`
# of a program's datasets on a cluster with one GPU worker beside one CPU worker.  Carried as for
# benchmarks/gpu_layers_dask_aliases.sh (.gpu/futhark.tar.xz, .whl/).  Outputs under $OUT.
set -u
OUT=${OUT:-$PWD/out-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  >/dev/null 2>&1
export PYTHONPATH=$PWD:/tmp/site FUTHARK_LAB_CACHE=/tmp/flcache
mkdir -p /work/main/.venv && tar -xJf .gpu/futhark.tar.xz -C /work/main/.venv
export FUTHARK=/work/main/.venv/futhark/usr/bin/futhark
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 >/tmp/icd/nvidia.icd
for f in /etc/OpenCL/vendors/*.icd; do [ -e "$f" ] && cp "$f" /tmp/icd/; done
export OCL_ICD_VENDORS=/tmp/icd
git log --oneline -1 >"$OUT/commit.txt" 2>/dev/null || true

timeout 200 python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py tests/test_gpu_failures.py \
  >"$OUT/gpu_tests.txt" 2>&1
tail -2 "$OUT/gpu_tests.txt"
timeout 200 python3 -m tests.hostile --backends cuda >"$OUT/hostile_cuda.txt" 2>&1
tail -1 "$OUT/hostile_cuda.txt"

mkdir -p /tmp/prog && cat >/tmp/prog/sumsq.fut <<'EOF'
-- Sum of squares over f32.
-- ==
-- random input { [1000000]f32 }
-- random input { [100000000]f32 }
entry main (xs: []f32): f32 = f32.sum (map (\x -> x * x) xs)
EOF
timeout 240 python3 -m futhark_lab.cli bench /tmp/prog/sumsq.fut --backends c,multicore,cuda --workers gpus \
  --exclusive device --runs 10 --max-time 1 --results /tmp/res --run-id bench-cluster-h200 -q \
  >"$OUT/bench_cluster.txt" 2>&1
echo "bench exit $?" >>"$OUT/bench_cluster.txt"
python3 - >>"$OUT/bench_cluster.txt" 2>&1 <<'EOF'
from futhark_lab.measure import load_run
from futhark_lab.measure.cluster import overlaps
df = load_run("/tmp/res/bench-cluster-h200")
print(df[["dataset", "impl", "worker", "device", "device_uuid", "time_s_median", "correct"]].to_string())
print("overlaps under one lock:", overlaps(df.assign(host=df["lock"], size=0, dtype="")))
EOF
tail -12 "$OUT/bench_cluster.txt"
