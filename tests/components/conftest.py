"""Fixtures the component tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pulumi.runtime import settings as runtime_settings

from tests.support.mocks import fresh_monitor
from tools.plan_mocks import RecordingMonitor


@pytest.fixture
def monitor() -> Iterator[RecordingMonitor]:
    """Fresh mocks with a recording monitor; the root resource reset so the stack is new."""
    yield fresh_monitor("unit")
    runtime_settings.set_root_resource(None)  # type: ignore[arg-type]


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A build context with a Dockerfile, and a Dockerfile outside it (for the outside-context check)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("# syntax=docker/dockerfile:1\nFROM scratch\n")
    (tmp_path / "Dockerfile.outside").write_text("FROM scratch\n")
    return ctx
