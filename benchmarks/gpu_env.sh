#!/usr/bin/env bash
# Sourced by the GPU scripts on the lent machine (no network): installs the carried cp312 wheels (.whl/) into
# /tmp/site, unpacks the carried futhark (.gpu/futhark.tar.xz, made with
# `tar -C .venv -cf - futhark | xz -T2 -6 > .gpu/futhark.tar.xz`), lists NVIDIA's OpenCL ICD beside the others
# (platform 0 there is PoCL), and, when .gpu/pycuda-*.tar.gz is carried and no pycuda is importable, builds PyCUDA
# there in the background (it has no wheel on PyPI; nvcc and CUDA's headers are on that machine only).
OUT=${OUT:-$PWD/out-gpu}
mkdir -p "$OUT"
if [ ! -e /tmp/site/.done ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >/dev/null 2>&1 && touch /tmp/site/.done
fi
export PYTHONPATH=$PWD:/tmp/site FUTHARK_LAB_CACHE=${FUTHARK_LAB_CACHE:-/tmp/flcache}
if [ ! -x /work/main/.venv/futhark/usr/bin/futhark ]; then
  mkdir -p /work/main/.venv && tar -xJf .gpu/futhark.tar.xz -C /work/main/.venv
fi
export FUTHARK=/work/main/.venv/futhark/usr/bin/futhark
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 >/tmp/icd/nvidia.icd
for f in /etc/OpenCL/vendors/*.icd; do [ -e "$f" ] && cp "$f" /tmp/icd/; done
export OCL_ICD_VENDORS=/tmp/icd
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
build_pycuda() {  # -> $OUT/pycuda/ (log and wheel), installed into /tmp/site
  python3 -c "import pycuda" 2>/dev/null && return 0
  local sdist; sdist=$(ls .gpu/pycuda-*.tar.gz 2>/dev/null | head -1); [ -n "$sdist" ] || return 1
  mkdir -p "$OUT/pycuda" /tmp/pycuda-build && tar -xzf "$sdist" -C /tmp/pycuda-build
  (cd /tmp/pycuda-build/pycuda-* && python3 configure.py --cuda-root="${CUDA_HOME:-/usr/local/cuda}" \
     && python3 -m pip wheel -q --no-build-isolation --no-deps -w "$OUT/pycuda" . \
     && python3 -m pip install -q --no-deps --no-index --target /tmp/site "$OUT"/pycuda/pycuda-*.whl) \
    >"$OUT/pycuda/build.log" 2>&1
}
