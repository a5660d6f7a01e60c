#!/usr/bin/env bash
# hf-server tests: the HTTP contract against a tiny random model on CPU, run in .venv-hf (torch lives
# there, not in the root .venv). GPU tests (4-bit, VRAM, FlashAttention-2) skip with a reason
# unless CUDA is present. --confcutdir keeps the root-venv conftests of tests/ out of this run.
# Line coverage of hf_server (server subprocesses included) has a floor, as in 50-pytest.sh;
# report: COVERAGE_FILE=.coverage-hf .venv-hf/bin/python -m coverage html -d out/coverage-hf
set -euo pipefail
cd "$(dirname "$0")/../.."
HF_SERVER_FLOOR=90  # measured 91.6% (832 statements) on 2026-11-29; headroom for timing-dependent paths
[ -x .venv-hf/bin/python ] || bash scripts/setup.d/30-hf-server.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_SERVER_TESTS=1 COVERAGE_FILE=.coverage-hf
rm -f .coverage-hf .coverage-hf.*
.venv-hf/bin/python -m pytest tests/hf_server --confcutdir=tests/hf_server -p no:cacheprovider \
  --cov=hf_server --cov-config=pyproject.toml --cov-report= "$@"
.venv-hf/bin/python -m coverage combine --quiet 2>/dev/null || true
echo "coverage: hf_server (floor ${HF_SERVER_FLOOR}%)"
exec .venv-hf/bin/python -m coverage report --include='images/hf-server/*' --skip-covered --fail-under="$HF_SERVER_FLOOR"
