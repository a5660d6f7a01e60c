#!/usr/bin/env bash
# checkov (the manifest security scanner of tests/program/test_manifests.py) in its own virtualenv, .venv-checkov:
# checkov 3.x pins packaging<24 while pulumi needs packaging>=26, so it cannot share the uv-locked
# root .venv. Pinned version; idempotent (skipped when the venv already runs that version).
# The tests run it offline: BC_SKIP_MAPPING=TRUE and --skip-download (no Bridgecrew/Prisma calls).
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=3.3.30
VENV=.venv-checkov
log() { printf '\033[1;34m[setup:checkov]\033[0m %s\n' "$*"; }

if [ -x "$VENV/bin/checkov" ] && [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("checkov"))' 2>/dev/null)" = "$VERSION" ]; then
  log "$VENV has checkov $VERSION"
  exit 0
fi
# Same interpreter family as the root .venv (Python 3.11/3.12); checkov supports both.
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  uv venv --quiet --python "$(.venv/bin/python -c 'import sys; print(sys.executable)')" "$VENV"
fi
log "installing checkov==$VERSION into $VENV"
uv pip install --quiet --python "$VENV/bin/python" "checkov==$VERSION"
BC_SKIP_MAPPING=TRUE "$VENV/bin/checkov" --version
