#!/usr/bin/env bash
# Python lint over the whole repository (components, tools, both images, tests, benchmarks).
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/ruff check .
