#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine (idempotent, safe to re-run).
# Core: uv + the locked Python environment (.venv). Each area adds its own extras as
# scripts/setup.d/NN-name.sh (buildah, rclone, node linters, the hf-server venv, ...).
# `--core` stops after the core: enough for the offline plan.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

if ! command -v uv >/dev/null 2>&1; then
  log "installing uv (Python package manager) from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
log "syncing .venv from uv.lock"
# Precompiled bytecode: the SDKs are large (pulumi_kubernetes alone is ~1,000 modules) and
# environments that set PYTHONDONTWRITEBYTECODE would otherwise recompile them on every run.
uv sync --frozen --quiet --compile-bytecode

if [ "${1:-}" = "--core" ]; then
  log "done (core only)"
  exit 0
fi

for step in scripts/setup.d/*.sh; do
  [ -e "$step" ] || continue
  log "running ${step}"
  bash "$step"
done
log "done"
