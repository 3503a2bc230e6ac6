#!/usr/bin/env bash
# Issue 15's GPU evidence in one command (about 6-8 minutes) on a CUDA machine without futhark; all outputs under
# $OUT: 8 files (4 texts, driver.log, the sweep's report.html + points.jsonl, the demo's report.html).
# Run from the repository root.  Prepared on a machine with futhark:
#   futhark-lab generate futhark_lab/suite/*.fut --backends c,multicore,opencl,cuda,python --out .gpu/gen
#   python benchmarks/gpu_p4.py --generate .gpu/gen-exe
# and cp312 wheels of what the GPU machine lacks in .whl/ (installed here with --no-index).
set -u
OUT=${OUT:-$PWD/out-gpu}
mkdir -p "$OUT/sweep" "$OUT/demo"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export FUTHARK_LAB_GENERATED=$PWD/.gpu/gen FUTHARK_LAB_CACHE=${FUTHARK_LAB_CACHE:-/tmp/futhark-lab-cache}
SCRATCH=$(mktemp -d)
PY=${PYTHON:-python3}
LOG=$OUT/driver.log
log() { echo "[$(date -u +%T)] $*" | tee -a "$LOG"; }

if ls .whl/*.whl >/dev/null 2>&1; then
  log "installing carried wheels: $(ls .whl | tr '\n' ' ')"
  $PY -m pip install -q --no-index --find-links .whl/ .whl/*.whl >>"$LOG" 2>&1 || log "pip install failed (see above)"
fi
$PY - >>"$LOG" 2>&1 <<'EOF'
import importlib
for m in ("numpy", "torch", "cffi", "scipy", "pandas", "jinja2", "tqdm", "psutil", "matplotlib", "threadpoolctl"):
    try:
        mod = importlib.import_module(m)
        print(f"{m} {getattr(mod, '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        print(f"MISSING {m}: {exc}")
EOF
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$LOG" 2>&1
FL=($PY -m futhark_lab.cli)

log "0/6 GPU tests of issue 15's pieces (own-context flush and events, async launches, pinned inputs)"
timeout 90 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py -k "own_context or async_launches" >>"$LOG" 2>&1 \
  || log "tests exited $?"

log "1/6 call overhead on cuda, 3 fresh processes, n=1 and 1e8"
timeout 180 $PY benchmarks/call_overhead.py --backend cuda --sizes 1,100000000 --runs 3 --budget 4 \
  >"$OUT/call_overhead_cuda.txt" 2>&1 || log "call_overhead exited $?"

log "2/6 cold vs warm, device time vs call time, batch, pinned vs pageable, host ceilings"
timeout 150 $PY benchmarks/gpu_measurement_truth.py >"$OUT/gpu_measurement_truth.txt" 2>&1 \
  || log "gpu_measurement_truth exited $?"

log "3/6 P4: futhark-lab vs the futhark cuda executable (-r N -t)"
timeout 120 $PY benchmarks/gpu_p4.py --exe .gpu/gen-exe >"$OUT/gpu_p4.txt" 2>&1 || log "gpu_p4 exited $?"

log "4/6 sweep: sum_squares on cuda, resident / +copy / +copy(pinned), torch cuda, cold, 1e3..1e8"
timeout 150 "${FL[@]}" run kernels/sum_squares.fut --backends cuda --copy --pinned --torch cuda --no-numpy \
  --sizes 1e3:1e8 --cold --max-time 1 --results "$SCRATCH" --run-id sweep --report "$OUT/sweep/report.html" \
  -q >>"$LOG" 2>&1 || log "sweep exited $?"
cp "$SCRATCH/sweep/points.jsonl" "$OUT/sweep/" 2>/dev/null

log "5/6 the host's side (all cores): CPU pool interplay, call overhead on c"
{ timeout 120 $PY benchmarks/cpu_interplay.py; \
  timeout 60 $PY benchmarks/call_overhead.py --backend c --sizes 1 --runs 3 --budget 3; } \
  >"$OUT/host_side.txt" 2>&1 || log "host side exited $?"

log "6/6 demo: the kernel suite on every backend that works, report"
timeout 150 "${FL[@]}" demo --kernels dot,sum_squares,saxpy --max-time 0.3 --results "$SCRATCH" --run-id demo --report "$OUT/demo/report.html" -q \
  >>"$LOG" 2>&1 || log "demo exited $?"
log "done"
rm -rf "$SCRATCH"
