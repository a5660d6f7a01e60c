"""Shared fixtures: the offline plan of each stack, run once per test session."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import pytest

from tools.offline_plan import PlanResult, run_plan


@pytest.fixture(autouse=True)
def _event_loop() -> None:
    # Pulumi's runtime wants a current event loop (pulumi/pulumi#24338 on newer Pythons).
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


@functools.cache
def _cached_plan(stack: str) -> PlanResult:
    return run_plan(stack)


@pytest.fixture(scope="session")
def stack_plan() -> Callable[[str], PlanResult]:
    """The offline plan of a committed stack file (cached: treat the result as read-only)."""
    return _cached_plan


@pytest.fixture
def plan_with() -> Callable[..., PlanResult]:
    """Run the plan with config overrides: ``plan_with("dev", gpuNodeCount=3)``."""

    def run(stack: str, secrets: dict[str, str] | None = None, **overrides: Any) -> PlanResult:
        return run_plan(stack, overrides=overrides, secrets=secrets)

    return run
