#!/usr/bin/env bash
# futhark autotune on the H200, and default against tuned (issue 27).  At most about 5 minutes (autotune is stopped after 120 s).
#
# The program is futhark-benchmarks' micro/reduce-segmented.fut (github.com/diku-dk/futhark-benchmarks, commit
# b9462ef0, not committed here): the lead copies it to .gpu/tune/reduce-segmented.fut.  Its own datasets are 10^8
# elements each (too slow to tune in minutes), so this script writes a small program beside it that imports it and
# re-exports its `sum_i32` (segmented sums of an [n][m] array given flat) with datasets of 10^7 elements in all, from
# one segment of 10^7 to 10^7 segments of one: incremental flattening makes several versions of the reduction
# (one thread per segment, one block per segment, a segmented reduction across blocks) and chooses among them at run
# time by threshold parameters, so the thresholds' defaults matter here.
#
# 1. `futhark-lab tune` (futhark autotune, then default against tuned on the same datasets) -> $OUT/tune/tune/
# 2. a sweep with sw.futhark(BACKEND) and sw.futhark(BACKEND, tuning=the file) over segment counts at a fixed
#    segment length (sizes the tuner never saw): where the tuned setting wins and where it loses -> $OUT/tune/sweep/
#
# Runs on CPU too (the tests' check of its logic): BACKEND=opencl TOTAL=100000 SWEEP_SIZES=1000,100000 on PoCL.
set -u
OUT=${OUT:-$PWD/out-gpu}
BACKEND=${BACKEND:-cuda}
TOTAL=${TOTAL:-10000000}            # elements per tuning dataset
SEGLEN=${SEGLEN:-64}                # the sweep's segment length
SWEEP_SIZES=${SWEEP_SIZES:-1000,10000,100000,1000000,10000000,100000000}   # elements in all, per sweep point
AUTOTUNE_LIMIT=${AUTOTUNE_LIMIT:-120}   # seconds futhark autotune may take in all
D="$OUT/tune"
mkdir -p "$D"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >/dev/null 2>&1
fi
export PYTHONPATH=$PWD:/tmp/site:${PYTHONPATH:-}
export FUTHARK_LAB_CACHE=${FUTHARK_LAB_CACHE:-/tmp/flcache}
if [ -e .gpu/futhark.tar.xz ] && [ ! -x /work/main/.venv/futhark/usr/bin/futhark ]; then
  mkdir -p /work/main/.venv && tar -xJf .gpu/futhark.tar.xz -C /work/main/.venv
fi
if [ -z "${FUTHARK:-}" ] && [ -x /work/main/.venv/futhark/usr/bin/futhark ]; then
  export FUTHARK=/work/main/.venv/futhark/usr/bin/futhark
fi
if [ "$BACKEND" = opencl ] && [ -e /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 ]; then   # as gpu_final_check.sh
  mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 >/tmp/icd/nvidia.icd
  for f in /etc/OpenCL/vendors/*.icd; do [ -e "$f" ] && cp "$f" /tmp/icd/; done
  export OCL_ICD_VENDORS=/tmp/icd
fi
PY=${PYTHON:-python3}
SRC=.gpu/tune/reduce-segmented.fut
if [ ! -e "$SRC" ]; then
  echo "missing $SRC: copy micro/reduce-segmented.fut from github.com/diku-dk/futhark-benchmarks there" | tee "$D/error.txt"
  exit 2
fi
git log --oneline -1 >"$D/commit.txt" 2>/dev/null || true
"${FUTHARK:-futhark}" --version | head -1 >"$D/futhark_version.txt" 2>&1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$D/gpu.txt" 2>/dev/null || true

W=$(mktemp -d /tmp/gputune.XXXX)
cp "$SRC" "$W/reduce-segmented.fut"
sha256sum "$SRC" >"$D/program_sha256.txt"
$PY - "$W/segsum.fut" "$TOTAL" <<'EOF'
import sys
path, total = sys.argv[1], int(float(sys.argv[2]))
rows = [10**k for k in range(0, 20) if 10**k <= total]
lines = ["-- futhark-benchmarks' micro/reduce-segmented.fut sum_i32 (imported), on datasets of %d elements in all," % total,
         "-- from one segment to %d segments." % total,
         'import "reduce-segmented"', "", "-- ==", "-- entry: segsum"]
lines += ["-- random input { %di32 %di32 [%d]i32 }" % (n, total // n, n * (total // n)) for n in rows]
lines += ["", "entry segsum (n: i32) (m: i32) (xs: []i32) : []i32 = sum_i32 n m xs", ""]
open(path, "w").write("\n".join(lines))
EOF
cp "$W/segsum.fut" "$D/segsum.fut"

echo "== futhark-lab tune ($BACKEND)"
timeout 200 $PY -m futhark_lab.cli tune "$W/segsum.fut" --backend "$BACKEND" --runs 5 --timeout 10 \
  --limit "$AUTOTUNE_LIMIT" --min-runs 10 --min-time 0.2 --max-time 1 --results "$D" --run-id tune \
  >"$D/tune.txt" 2>"$D/tune_progress.txt"
echo "tune exit $?" >>"$D/tune.txt"
tail -16 "$D/tune.txt"
cp "$W/segsum.fut.tuning" "$D/segsum.fut.tuning" 2>/dev/null || true

echo "== sweep: default against tuned over segment counts (segment length $SEGLEN)"
timeout 100 $PY - "$W/segsum.fut" "$BACKEND" "$SEGLEN" "$SWEEP_SIZES" "$D" >"$D/sweep.txt" 2>&1 <<'EOF'
import sys, warnings
import numpy as np
from futhark_lab import sweep as sw
from futhark_lab.measure.timing import Policy
from futhark_lab.view.report import report
prog, backend, seglen, sizes, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
sizes = [int(float(s)) for s in sizes.split(",")]

def inputs(n, dtype, rng):
    rows = max(1, n // seglen)
    return np.int32(rows), np.int32(seglen), rng.integers(-100, 100, rows * seglen, dtype=np.int32)

k = sw.Kernel("segsum", prog, entry="segsum", make_inputs=inputs, dtypes=["i32"], sizes=sizes,
              numpy=lambda n, m, xs: xs.reshape(int(n), int(m)).sum(axis=1, dtype=np.int32),
              bytes_moved=lambda n, dt: 4 * (n + max(1, n // seglen)), size_label="elements")
impls = [sw.futhark(backend), sw.futhark(backend, tuning=prog + ".tuning")]
df = sw.sweep(k, impls, policy=Policy(min_time_s=0.1, max_time_s=0.5), results=out, run_id="sweep",
              progress=False, on_error="record")
cols = ["impl", "size", "tuning", "futhark_version", "time_s_median", "time_s_iqr", "correct", "error"]
print(df[[c for c in cols if c in df]].to_string())
t = df.pivot_table(index="size", columns="impl", values="time_s_median")
if t.shape[1] == 2:
    d, tu = f"futhark-{backend}", f"futhark-{backend}+tuned"
    t["speedup (default/tuned)"] = t[d] / t[tu]
    print(t.to_string())
    t.to_csv(f"{out}/sweep/speedup.csv")
report(df, f"{out}/sweep/report.html", title=f"segsum: default against tuned over segment counts ({backend})")
EOF
echo "sweep exit $?" >>"$D/sweep.txt"
tail -12 "$D/sweep.txt"
rm -rf "$W"
ls -R "$D" | head -40
