#!/usr/bin/env bash
# hf-server: a separate virtualenv, .venv-hf, with torch + transformers + fastapi for the server's tests
# and benchmark. The root .venv (uv-locked) stays torch-free. pip, not uv: pip's find-links
# (/opt/wheels) holds the torch CPU wheel, uv would download the multi-GB CUDA build instead.
# Idempotent: skipped when the venv was built from the same requirements file (hash stamp).
set -euo pipefail
cd "$(dirname "$0")/../.."

REQ=images/hf-server/requirements-test.txt
VENV=.venv-hf
PY="${HF_SERVER_PYTHON:-python3}"
STAMP="$VENV/.requirements.sha256"
log() { printf '\033[1;34m[setup:hf-server]\033[0m %s\n' "$*"; }

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$want" ] \
   && "$VENV/bin/python" -c 'import torch, transformers, fastapi, uvicorn' 2>/dev/null; then
  log "$VENV is up to date"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $("$PY" --version 2>&1)"
  "$PY" -m venv "$VENV"
fi
log "installing $REQ into $VENV (torch CPU wheel from pip's find-links when present)"
# pip's extra file:// indexes on these machines warn about every package they lack: hide that noise.
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ" 2>&1 \
  | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
"$VENV/bin/python" - <<'PY'
import torch, transformers, fastapi, uvicorn
print(f"[setup:hf-server] torch {torch.__version__} (cuda available: {torch.cuda.is_available()}), "
      f"transformers {transformers.__version__}, fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}")
PY
echo "$want" > "$STAMP"
