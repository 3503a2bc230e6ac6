#!/usr/bin/env bash
# The test suite.  Tests that need the futhark compiler skip, saying why, where it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -rs "$@"
