#!/usr/bin/env bash
# Install what futhark-lab needs on a fresh Debian/Ubuntu machine (as root), into ./.venv.  Idempotent.
# The futhark compiler comes from $FUTHARK or PATH when there is one; otherwise scripts/install_futhark.sh installs
# Debian's package (on Debian 12 through a private apt configuration, never touching the system's sources or libc).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "setup: $*"; }

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=()
  # slurm-wlm + munge: a real single-node SLURM for the dask-jobqueue test (tests/test_slurm.py)
  for p in python3-venv python3-dev gcc pocl-opencl-icd ocl-icd-opencl-dev opencl-headers nix-bin chromium patchelf \
           slurm-wlm munge; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    say "apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/tmp/futhark-lab-apt.log 2>&1 \
      || { cat /tmp/futhark-lab-apt.log; say "apt-get install failed (log above)"; exit 1; }
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then say "creating .venv with $($PY --version)"; "$PY" -m venv .venv; fi
say "pip install -e .[notebook,opencl,test,distributed,jax] torch==2.13.0 (CPU wheel) nvidia-cuda-nvrtc into .venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch==2.13.0: the CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
# nvidia-cuda-nvrtc: nvrtc.h, so the cuda backend's generated C can at least be compiled without a CUDA toolkit.
log=.venv/pip-install.log
if ! .venv/bin/python -m pip install -q -e ".[notebook,opencl,test,distributed,jax]" torch==2.13.0 nvidia-cuda-nvrtc >"$log" 2>&1; then
  cat "$log"; say "pip install failed (log above, also in $log)"; exit 1
fi
.venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (futhark-lab)" >/dev/null 2>&1 || true
# Futhark highlighting in JupyterLab: the prebuilt extension (futhark_lab/labextension, committed; rebuild with
# scripts/build_labextension.sh) linked where JupyterLab looks for prebuilt extensions.  No node, no network.
ext=.venv/share/jupyter/labextensions/futhark-lab-jupyterlab
rm -rf "$ext" && mkdir -p "$(dirname "$ext")" && ln -s "$PWD/futhark_lab/labextension" "$ext"

if ! bash scripts/install_futhark.sh; then
  [ "${FUTHARK_LAB_STRICT:-}" = 1 ] && { say "FUTHARK_LAB_STRICT=1: a compiler is required"; exit 1; }
  say "continuing without futhark: only NumPy/PyTorch work, and tests that compile will skip"
fi
