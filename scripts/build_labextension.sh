#!/usr/bin/env bash
# Rebuild the JupyterLab extension (jupyterlab-futhark/src → futhark_lab/labextension, which is committed so that
# users and CI need no node).  Needs node >= 18, npm and the registry; run after scripts/setup.sh.
# --before pins the @jupyterlab/* packages to a set the registry has complete (the lock file records it).
set -euo pipefail
cd "$(dirname "$0")/../jupyterlab-futhark"
core=$(../.venv/bin/python -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund --before=2026-10-01; fi
npx tsc
rm -rf ../futhark_lab/labextension
node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$core" .
echo "built: $(ls ../futhark_lab/labextension/static)"
