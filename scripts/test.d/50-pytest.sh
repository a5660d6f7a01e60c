#!/usr/bin/env bash
# Unit tests (Pulumi mocks), integration tests against loopback servers and real image builds.
set -euo pipefail
exec .venv/bin/python -m pytest tests "$@"
