#!/usr/bin/env bash
# Build the documentation site (docs/, Sphinx + MyST + myst-nb) into docs/_build/html with warnings as errors.
# The notebooks are executed on the CPU during the build (notebook 05 needs a GPU and is not); their results are
# cached in docs/_build/.jupyter_cache per notebook text, so a second build is quick (after changing futhark_lab, pass
# -D nb_execution_mode=force to run them again).  Needs the `docs` extra (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # this checkout's futhark_lab, in Sphinx and in the notebooks
exec "$PY" -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
