#!/usr/bin/env bash
# hf-server tests: the HTTP contract against a tiny random model on CPU, run in .venv-hf (torch lives
# there, not in the root .venv). GPU tests (4-bit, VRAM, FlashAttention-2) skip with a reason
# unless CUDA is present. --confcutdir keeps the root-venv conftests of tests/ out of this run.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv-hf/bin/python ] || bash scripts/setup.d/30-hf-server.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_SERVER_TESTS=1
exec .venv-hf/bin/python -m pytest tests/hf_server --confcutdir=tests/hf_server -p no:cacheprovider "$@"
