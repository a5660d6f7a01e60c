#!/usr/bin/env bash
# The project's test command: installs what is missing, then runs every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONDONTWRITEBYTECODE=1
status=0
for step in scripts/test.d/*.sh; do
  [ -e "$step" ] || continue
  printf '\033[1;34m[test]\033[0m %s\n' "$step"
  bash "$step" || status=1
done
exit $status
