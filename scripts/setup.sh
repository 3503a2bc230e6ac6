#!/usr/bin/env bash
# Install what futhark-lab needs on a fresh Debian/Ubuntu machine (as root), into ./.venv.  Idempotent.
# The futhark compiler itself is not in any package registry: put it on PATH yourself (README, environment.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=()
  for p in python3-venv gcc pocl-opencl-icd ocl-icd-opencl-dev opencl-headers nix-bin chromium; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch==2.13.0: the CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
# nvidia-cuda-nvrtc: nvrtc.h, so the cuda backend's generated C can at least be compiled without a CUDA toolkit.
.venv/bin/python -m pip install -q -e ".[notebook,opencl,test]" torch==2.13.0 nvidia-cuda-nvrtc 2>&1 \
  | grep -v -E "^WARNING: Location|is ignored" || true
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null 2>&1 || true
