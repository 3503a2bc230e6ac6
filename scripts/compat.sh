#!/usr/bin/env bash
# Run the whole test suite with one futhark and add the result to results/compat/.
#   bash scripts/compat.sh [/path/to/futhark] ["machine description"]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] && export FUTHARK="$1"
bash scripts/setup.sh >/dev/null
futhark=${FUTHARK:-$(.venv/bin/python -c 'from futhark_lab.builder.toolchain import find_futhark; print(find_futhark().path)')}
version=$("$futhark" --version | head -1 | sed -E 's/^Futhark ([0-9.]*[0-9]).*/\1/')
platform=$(.venv/bin/python -c 'import pyopencl as cl; print(", ".join(p.version for p in cl.get_platforms()))' 2>/dev/null || echo "no OpenCL")
machine=${2:-"$(. /etc/os-release && echo "$PRETTY_NAME"), $(nproc) cores, OpenCL: $platform"}
xml=$(mktemp --suffix=.xml)
FUTHARK="$futhark" .venv/bin/python -m pytest -q -rs -p no:cacheprovider --junitxml="$xml" || true
.venv/bin/python scripts/compat_record.py "$xml" --futhark "$version" --machine "$machine"
