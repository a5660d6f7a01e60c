#!/usr/bin/env bash
# rclone: only the model-cache benchmark (bench/model_cache.py) compares against it.
# Idempotent; never fails setup (the benchmark skips rclone with a note when it is missing).
set -uo pipefail
if command -v rclone >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing rclone (Debian package) for the model-cache benchmark"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rclone >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rclone >/dev/null 2>&1 || \
      echo "[setup] rclone not installed; bench/model_cache.py will skip the rclone comparison"
  fi
else
  echo "[setup] rclone missing (needs root + apt-get); bench/model_cache.py will skip the rclone comparison"
fi
exit 0
