#!/usr/bin/env bash
# Peers on the GPU machine (issue 23), about 5 minutes on an H200; run from the repository root:
#   OUT=/some/dir bash benchmarks/gpu_peers.sh
# Needs python3 with torch (CUDA), jax[cuda], cupy, triton, numba + numba-cuda (pycuda optional: skipped, saying so,
# when absent) and $FUTHARK (or futhark on PATH) for the futhark-cuda rows.  Writes everything under $OUT/peers/:
#   doctor.txt            which backends and peers work there
#   sweep.txt + peers-gpu/ sum_squares, saxpy (1e4..1e8) and matmul (256^2..4096^2), f32: futhark-cuda, torch-cuda
#                         and every peer, one run with report.html
#   peer_overhead.txt     benchmarks/peer_overhead.py --gpu: workbench / bare timing per peer (target within 5%)
#   gpu_peer_tests.txt    tests/test_gpu_peers.py
#
# PEERS=numba-cuda,... limits the sweep's peers (default: all), and ROW_STACK_SHIM=1 runs everything after doctor
# with np.row_stack = np.vstack set at start-up (a sitecustomize): numba-cuda 0.30.4, its last release, registers
# np.row_stack, which NumPy 2.5 removed (NVIDIA/numba-cuda#907, maintenance mode), so without it no numba.cuda
# kernel compiles against the GPU machine's NumPy 2.5.
set -u
OUT=${OUT:-$PWD/out-gpu}
D="$OUT/peers"
mkdir -p "$D"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} FUTHARK_LAB_CACHE=${FUTHARK_LAB_CACHE:-/tmp/flcache}
export XLA_PYTHON_CLIENT_PREALLOCATE=false
git log --oneline -1 >"$D/commit.txt" 2>/dev/null || true
nvidia-smi >"$D/nvidia-smi.txt" 2>&1 || true
python3 -c 'import sys; print(sys.version)' >"$D/versions.txt"
for m in torch jax jaxlib cupy triton numba numba_cuda pycuda numpy; do
  python3 -c "import $m; print('$m', getattr($m, '__version__', '?'))" >>"$D/versions.txt" 2>&1 || echo "$m missing" >>"$D/versions.txt"
done

timeout 30 python3 -m futhark_lab.cli doctor --backends cuda >"$D/doctor.txt" 2>&1
cat "$D/doctor.txt"

if [ "${ROW_STACK_SHIM:-0}" = 1 ]; then
  mkdir -p /tmp/rowstack
  printf 'import numpy as np\nif not hasattr(np, "row_stack"):\n    np.row_stack = np.vstack\n' >/tmp/rowstack/sitecustomize.py
  export PYTHONPATH=/tmp/rowstack:$PYTHONPATH
  echo "ROW_STACK_SHIM: np.row_stack = np.vstack at start-up from here on (NVIDIA/numba-cuda#907)" | tee "$D/shim.txt"
fi
timeout 150 python3 - >"$D/sweep.txt" 2>&1 <<PY
import sys
from futhark_lab import suite, sweep as sw
from futhark_lab.commands.common import peer_implementations, PEER_NAMES
from futhark_lab.measure.timing import Policy
from futhark_lab.view import report
from futhark_lab.builder.toolchain import futhark_available

run_id = "peers-gpu"
plan = {"sum_squares": [10**4, 10**6, 10**8], "saxpy": [10**4, 10**6, 10**8], "matmul": [256**2, 1024**2, 4096**2]}
df = None
for name, sizes in plan.items():
    k = suite.get(name)
    impls = ([sw.futhark("cuda")] if futhark_available() else []) + [sw.torch("cuda", v if v != "default" else None)
                                                                     for v in list(k.torch)[:1]]
    wanted = "${PEERS:-all}"
    impls += peer_implementations(list(PEER_NAMES) if wanted == "all" else wanted.split(","), ["cuda"], k, False)
    impls = [i for i in impls if i.device.startswith("cuda")]
    print(name, [i.name for i in impls], flush=True)
    df = sw.sweep(k, impls, sizes=sizes, dtypes=["f32"], run_id=run_id, results="$D", rounds=2,
                  policy=Policy(max_time_s=0.3, min_time_s=0.05, max_noise=0.02), progress=False, on_error="warn")
    report.report(df, "$D/peers-gpu/report.html", title="peers on the GPU")   # after each kernel: a timeout keeps it
cols = [c for c in ("kernel", "impl", "size", "time_s_median", "device_time_s_median", "first_call_s", "h2d_s",
                    "first_call_compiles", "recompiles", "gbps", "gflops", "correct", "error") if c in df]
import pandas as pd
with pd.option_context("display.width", 250, "display.max_rows", 500, "display.max_colwidth", 60):
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
print("report: $D/peers-gpu/report.html")
PY
echo "sweep exit $?" >>"$D/sweep.txt"
tail -4 "$D/sweep.txt"

timeout 300 python3 benchmarks/peer_overhead.py --gpu --rounds 9 --budget 0.05 >"$D/peer_overhead.txt" 2>&1
echo "peer_overhead exit $?" >>"$D/peer_overhead.txt"
cat "$D/peer_overhead.txt"

timeout 75 python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu_peers.py >"$D/gpu_peer_tests.txt" 2>&1
tail -3 "$D/gpu_peer_tests.txt"
