#!/usr/bin/env bash
# Notebook 05 (the seeds' benchmark; needs an NVIDIA GPU) executed headless with this checkout's code, for the
# documentation's stored-output page (about 2 minutes).  Run from the repository root on the GPU machine, with
# $FUTHARK set; writes $OUT/notebook05/{05-gpu-sum-squares.executed.ipynb,commit.txt,run.txt}.
set -u
OUT=${OUT:-$PWD/out-gpu}
mkdir -p "$OUT/notebook05"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} FUTHARK_LAB_CACHE=${FUTHARK_LAB_CACHE:-/tmp/flcache}
git log --oneline -1 >"$OUT/notebook05/commit.txt" 2>/dev/null || true
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >>"$OUT/notebook05/commit.txt" 2>&1 || true
cd notebooks && timeout 330 python3 - "$OUT/notebook05/05-gpu-sum-squares.executed.ipynb" \
  >"$OUT/notebook05/run.txt" 2>&1 <<'EOF'
import sys, time
import nbclient, nbformat
nb = nbformat.read("05-gpu-sum-squares.ipynb", as_version=4)
t = time.time()
try:
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
    print(f"executed in {time.time() - t:.0f} s")
finally:
    nbformat.write(nb, sys.argv[1])
EOF
echo "exit $?" >>"$OUT/notebook05/run.txt"
tail -3 "$OUT/notebook05/run.txt"
