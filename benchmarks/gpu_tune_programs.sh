#!/usr/bin/env bash
# futhark autotune on the H200 for several of futhark-benchmarks' programs whose maintainers ship a tuning file
# (a sign that the thresholds matter on some GPU), default against tuned for each (issue 27).  About 8 minutes.
#
#   OUT=/some/dir bash benchmarks/gpu_tune_programs.sh NAME ...
#
# NAME is a folder .gpu/tune/programs/NAME/ holding one program NAME.fut (plus its data files) copied from
# github.com/diku-dk/futhark-benchmarks (commit b9462ef0) by the lead, not committed here; the maintainers' own
# .tuning file is NOT copied, so "default" is the compiler's defaults and "tuned" is what autotune finds here.
# For each program, under $OUT/tune2/NAME/:
#   tune.txt, tune/          futhark-lab tune: futhark autotune, then default against tuned per dataset
#   NAME.fut.tuning          what autotune wrote
# (A `futhark bench` check beside it was dropped: futhark bench compiles the generated C itself and on that
# machine finds neither cuda.h nor, for futhark < 0.25.34 on CUDA 13, the shim the workbench adds to its builds.)
# and, for mmm-batch, a sweep over batch sizes the tuner never saw (sweep.txt, sweep/).
set -u
OUT=${OUT:-$PWD/out-gpu}
BACKEND=${BACKEND:-cuda}
AUTOTUNE_LIMIT=${AUTOTUNE_LIMIT:-150}
D="$OUT/tune2"
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
FUT=${FUTHARK:-futhark}
PY=${PYTHON:-python3}
"$FUT" --version | head -1 >"$D/futhark_version.txt" 2>&1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$D/gpu.txt" 2>/dev/null || true

for NAME in "$@"; do
  SRC=.gpu/tune/programs/$NAME
  R="$D/$NAME"
  mkdir -p "$R"
  if [ ! -e "$SRC/$NAME.fut" ]; then echo "missing $SRC/$NAME.fut" | tee "$R/error.txt"; continue; fi
  W=$(mktemp -d /tmp/tune2.XXXX)
  cp -r "$SRC"/. "$W"/
  rm -f "$W/$NAME.fut.tuning"
  sha256sum "$SRC/$NAME.fut" >"$R/program_sha256.txt"
  echo "== $NAME: futhark-lab tune ($BACKEND)"
  timeout $((AUTOTUNE_LIMIT + 120)) $PY -m futhark_lab.cli tune "$W/$NAME.fut" --backend "$BACKEND" --runs 5 \
    --limit "$AUTOTUNE_LIMIT" --min-runs 10 --min-time 0.3 --max-time 1.5 --results "$R" --run-id tune \
    >"$R/tune.txt" 2>"$R/tune_progress.txt"
  echo "tune exit $?" >>"$R/tune.txt"
  tail -12 "$R/tune.txt"
  cp "$W/$NAME.fut.tuning" "$R/" 2>/dev/null || true
  if [ "$NAME" = mmm-batch ] && [ -e "$W/$NAME.fut.tuning" ]; then
    echo "== $NAME: sweep over batch sizes, default against tuned"
    timeout 80 $PY - "$W/$NAME.fut" "$BACKEND" "$R" >"$R/sweep.txt" 2>&1 <<'EOF'
import sys
import numpy as np
from futhark_lab import sweep as sw
from futhark_lab.measure.timing import Policy
from futhark_lab.view.report import report
prog, backend, out = sys.argv[1], sys.argv[2], sys.argv[3]
B, M = 64, 32      # a batch of [s][64] 32x32 matrices; size n = the number of matrices, s = n / 64

def inputs(n, dtype, rng):
    s = max(1, n // B)
    return (rng.standard_normal((s, B, M, M), dtype=np.float32), rng.standard_normal((s, B, M, M), dtype=np.float32))

k = sw.Kernel("mmm-batch", prog, entry="main", make_inputs=inputs, dtypes=["f32"],
              sizes=[64, 1024, 8192, 65536],
              numpy=lambda a, b: np.matmul(a, b), bytes_moved=lambda n, dt: 3 * 4 * n * M * M,
              flops=lambda n, dt: 2 * n * M ** 3, size_label="32x32 matrices")
impls = [sw.futhark(backend), sw.futhark(backend, tuning=prog + ".tuning")]
df = sw.sweep(k, impls, policy=Policy(min_time_s=0.1, max_time_s=0.5), results=out, run_id="sweep",
              progress=False, on_error="record")
cols = ["impl", "size", "tuning", "time_s_median", "time_s_iqr", "gflops", "correct", "error"]
print(df[[c for c in cols if c in df]].to_string())
t = df.pivot_table(index="size", columns="impl", values="time_s_median")
if t.shape[1] == 2:
    d, tu = f"futhark-{backend}", f"futhark-{backend}+tuned"
    t["speedup (default/tuned)"] = t[d] / t[tu]
    print(t.to_string())
    t.to_csv(f"{out}/sweep/speedup.csv")
report(df, f"{out}/sweep/report.html", title=f"mmm-batch: default against tuned over batch sizes ({backend})")
EOF
    echo "sweep exit $?" >>"$R/sweep.txt"
    tail -12 "$R/sweep.txt"
  fi
  rm -rf "$W"
done
