"""How often a waiter looks for the manifest: soon at first, then a share of the time waited, capped."""

from __future__ import annotations

import random

import pytest
from model_cache.ensure import FIRST_POLL, POLL_SHARE, poll_delay


@pytest.fixture(autouse=True)
def _seeded() -> None:
    random.seed(20)


def bounds(base: float) -> tuple[float, float]:
    return base * 0.75, base * 1.25


@pytest.mark.parametrize("waited", [0.0, 0.5, 2.0, 3.9])
def test_the_first_seconds_poll_every_fifth_of_a_second(waited: float) -> None:
    low, high = bounds(FIRST_POLL)
    delays = [poll_delay(waited, longest=1.0) for _ in range(200)]
    assert all(low <= d <= high for d in delays), (min(delays), max(delays))


def test_the_interval_grows_with_the_wait_so_the_manifest_is_seen_at_most_a_twentieth_late() -> None:
    for waited in (5.0, 8.0, 12.0):
        low, high = bounds(waited * POLL_SHARE)
        assert all(low <= poll_delay(waited, longest=60.0) <= high for _ in range(100))
    assert POLL_SHARE == pytest.approx(1 / 20)


@pytest.mark.parametrize("longest", [0.05, 1.0, 3.0])
def test_never_longer_than_the_configured_interval(longest: float) -> None:
    for waited in (0.0, 10.0, 100.0, 86400.0):
        assert poll_delay(waited, longest) <= longest * 1.25


def test_a_short_configured_interval_wins_over_the_first_poll() -> None:
    """MODEL_CACHE_POLL_INTERVAL=0.05 (tests, fast stores) is never slowed down to 0.2 s."""
    assert max(poll_delay(0.0, 0.05) for _ in range(100)) <= 0.05 * 1.25


def test_jitter_spreads_replicas_that_started_together() -> None:
    delays = {round(poll_delay(1.0, 1.0), 4) for _ in range(50)}
    assert len(delays) > 40


def test_over_an_hour_growing_intervals_cost_no_more_polls_than_a_fixed_one() -> None:
    """The cost side: each poll is two GETs; growing intervals must not cost more requests."""
    waited, polls = 0.0, 0
    while waited < 3600:
        waited += poll_delay(waited, longest=1.0)
        polls += 1
    fixed = 3600 / 1.0
    assert polls <= fixed * 1.05
    waited, polls = 0.0, 0
    while waited < 3600:
        waited += poll_delay(waited, longest=30.0)
        polls += 1
    assert polls < 400
