#!/usr/bin/env bash
# Unit tests (Pulumi mocks), integration tests against loopback servers and real image builds,
# with line coverage of components/ and model_cache (its CLI subprocesses included). The floors
# below are what was measured when they were set, rounded down: CI fails if coverage drops under
# them. See the report: .venv/bin/python -m coverage html -d out/coverage (after make test).
set -euo pipefail
cd "$(dirname "$0")/../.."
COMPONENTS_FLOOR=90
MODEL_CACHE_FLOOR=85

rm -f .coverage .coverage.*
.venv/bin/python -m pytest tests --cov=components --cov=model_cache --cov-report= "$@"
.venv/bin/python -m coverage combine --quiet 2>/dev/null || true
status=0
echo "coverage: components/ (floor ${COMPONENTS_FLOOR}%)"
.venv/bin/python -m coverage report --include='components/*' --skip-covered --fail-under="$COMPONENTS_FLOOR" || status=1
echo "coverage: model_cache (floor ${MODEL_CACHE_FLOOR}%)"
.venv/bin/python -m coverage report --include='images/model-cache/src/*' --skip-covered \
  --fail-under="$MODEL_CACHE_FLOOR" || status=1
exit $status
