#!/usr/bin/env bash
# The main job: a demo sweep of the kernel suite on every backend that works here, then an HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/futhark-lab demo --report results/demo/report.html "$@"
