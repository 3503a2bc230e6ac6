#!/usr/bin/env bash
# GPU evidence for the layered package, alias tracking and Dask scale-out, in one command on the lent H200
# (about 6-9 minutes).  Carried: .gpu/futhark.tar.xz (the private futhark install, packed as ../shared/FACTS.md
# says) and cp312 wheels in .whl/ (cffi, pyopencl, futhark-data, dask, distributed and what they need).
# Outputs under $OUT: gpu_tests.txt, hostile_cuda.txt, driver.log, dask/{report.html,points.jsonl,environment.json}.
set -u
OUT=${OUT:-$PWD/out-gpu}
mkdir -p "$OUT/dask"
LOG=$OUT/driver.log
log() { echo "[$(date -u +%T)] $*" | tee -a "$LOG"; }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  >>"$LOG" 2>&1 || log "wheel install failed"
export PYTHONPATH=$PWD:/tmp/site
# the futhark install's loader path is absolute: unpack it where it was packed
mkdir -p /work/main/.venv && tar -xJf .gpu/futhark.tar.xz -C /work/main/.venv
export FUTHARK=/work/main/.venv/futhark/usr/bin/futhark
export FUTHARK_LAB_CACHE=/tmp/flcache
# NVIDIA's OpenCL ICD is not registered on these machines (environment.md#missing-icd): a private vendors dir
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 >/tmp/icd/nvidia.icd
for f in /etc/OpenCL/vendors/*.icd; do [ -e "$f" ] && cp "$f" /tmp/icd/; done
export OCL_ICD_VENDORS=/tmp/icd
nvidia-smi --query-gpu=name,uuid,driver_version,memory.total --format=csv,noheader >>"$LOG" 2>&1
$FUTHARK --version | head -1 >>"$LOG" 2>&1
python3 -c "import dask, distributed, cffi, pyopencl; print('dask', dask.__version__, 'distributed', distributed.__version__)" >>"$LOG" 2>&1

log "1/3 GPU tests on the layered package (real compiles with the carried futhark)"
timeout 240 python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py tests/test_gpu_failures.py \
  >"$OUT/gpu_tests.txt" 2>&1 || log "GPU tests exited $?"
tail -3 "$OUT/gpu_tests.txt" | tee -a "$LOG"

log "2/3 Dask: one GPU worker beside one CPU worker (--workers gpus), rows merged in one run and report"
timeout 200 python3 -m futhark_lab.cli run kernels/sum_squares.fut --backends c,multicore,cuda --torch cpu,cuda \
  --sizes 1e4,1e6,1e8 --dtypes f64 --workers gpus --exclusive device --max-time 0.5 --results /tmp/res \
  --run-id dask-h200 -q >"$OUT/dask/cli.txt" 2>&1 || log "dask run exited $?"
tail -5 "$OUT/dask/cli.txt" | tee -a "$LOG"
cp /tmp/res/dask-h200/{report.html,points.jsonl,environment.json} "$OUT/dask/" 2>>"$LOG"
python3 - >>"$LOG" 2>&1 <<'EOF'
from futhark_lab.measure import load_run
from futhark_lab.measure.cluster import overlaps
df = load_run("/tmp/res/dask-h200")
cols = ["impl", "size", "worker", "device", "device_uuid", "time_s_median", "gbps", "correct"]
print(df[[c for c in cols if c in df]].to_string())
print("overlaps on one host/lock:", overlaps(df.assign(host=df["lock"])))
EOF

log "3/3 hostile suite on cuda (aliases, tuning values, fork included)"
timeout 280 python3 -m tests.hostile --backends cuda >"$OUT/hostile_cuda.txt" 2>&1 || log "hostile exited $?"
tail -4 "$OUT/hostile_cuda.txt" | tee -a "$LOG"
log "done"
