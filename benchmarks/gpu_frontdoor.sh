#!/usr/bin/env bash
# The front door on a GPU (issue 24), under 6 minutes on one H200, from the repo root; everything under
# $OUT/frontdoor/.  Shows: (1) `futhark-lab demo` picks GPU sizes by itself (10^8 elements for the streaming
# kernels, 4096^2 matmul, 2048^2 mandelbrot) and ends with the summary (fastest per kernel and device, % of the
# ceiling, x NumPy / x PyTorch); (2) `futhark-lab run my.fut --entry ... --inputs ...` on c and cuda without
# --sizes; (3) `--backends cuda` with the GPU hidden exits non-zero with the cause.
# Expect in demo.txt: GPU rows at size 100,000,000 with % of measured memory bandwidth well above the 10-20% seen
# at 10^6 on an H100 (launch latency), and a PoCL opencl line named as the CPU if PoCL is platform 0.
set -u
OUT=${OUT:-$PWD/out-gpu}/frontdoor
mkdir -p "$OUT"
export PYTHONPATH=$PWD:${PYTHONPATH:-} FUTHARK_LAB_CACHE=${FUTHARK_LAB_CACHE:-/tmp/flcache}
# OpenCL: the NVIDIA platform beside PoCL (futhark-lab prefers a GPU platform)
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 >/tmp/icd/nvidia.icd
for f in /etc/OpenCL/vendors/*.icd; do [ -e "$f" ] && cp "$f" /tmp/icd/; done
export OCL_ICD_VENDORS=/tmp/icd
git log --oneline -1 >"$OUT/commit.txt" 2>/dev/null || true
nvidia-smi --query-gpu=name,memory.total --format=csv >"$OUT/gpu.txt" 2>&1 || true

start=$(date +%s)
timeout 250 python3 -m futhark_lab.cli demo --kernels sum_squares,stencil,histogram,matmul,mandelbrot \
  --max-time 0.2 --results /tmp/fd-res --run-id demo-gpu >"$OUT/demo.txt" 2>&1
echo "demo exit $? after $(( $(date +%s) - start )) s" >>"$OUT/demo.txt"
# a report even if the demo ran out of time (the points so far are on disk)
timeout 60 python3 -m futhark_lab.cli report /tmp/fd-res/demo-gpu --out "$OUT/demo_report.html" \
  >"$OUT/demo_summary.txt" 2>&1
cp /tmp/fd-res/demo-gpu/points.jsonl "$OUT/demo_points.jsonl" 2>/dev/null
tail -30 "$OUT/demo_summary.txt"

mkdir -p /tmp/fd-prog && cat >/tmp/fd-prog/my.fut <<'EOF2'
entry axpy (a: f32) (x: []f32) (y: []f32) : []f32 = map2 (\xi yi -> a * xi + yi) x y
EOF2
timeout 80 python3 -m futhark_lab.cli run /tmp/fd-prog/my.fut --entry axpy --inputs "2.5f32 [n]f32 [n]f32" \
  --backends c,cuda --max-time 0.2 --results /tmp/fd-res --run-id user-gpu -q >"$OUT/user_run.txt" 2>&1
echo "run exit $?" >>"$OUT/user_run.txt"
tail -8 "$OUT/user_run.txt"

CUDA_VISIBLE_DEVICES= timeout 60 python3 -m futhark_lab.cli run /tmp/fd-prog/my.fut --entry axpy \
  --sizes 1000 --backends cuda --results /tmp/fd-res -q >"$OUT/cuda_hidden.txt" 2>&1
echo "run exit $? (must be non-zero)" >>"$OUT/cuda_hidden.txt"
tail -4 "$OUT/cuda_hidden.txt"
