"""The request queue (hf_server.app.Limiter) on its own: slots, queue places, timeouts, gauges, the 429.

test_concurrency.py checks the same rules through a live server (HTTP status, Retry-After header,
streams holding their slot); these tests drive the Limiter directly on an event loop, with no model
and no server, so every rule is pinned by a test that runs in milliseconds (the mutation run,
docs/testing.md, runs each test once per mutant). Every wait is bounded (asyncio.wait_for): a change
that makes a request queue where it should be refused fails the test in a second instead of hanging.
"""

from __future__ import annotations

import asyncio

import pytest
from hf_server.app import APIError, Limiter
from hf_server.metrics import Metrics
from hf_server.settings import Settings


def _limiter(concurrency: int = 1, queue: int = 0, timeout: float = 120.0) -> tuple[Limiter, Metrics]:
    metrics = Metrics()
    settings = Settings(max_concurrency=concurrency, max_queue=queue, queue_timeout_s=timeout, retry_after_s=3)
    return Limiter(settings, metrics), metrics


def _gauges(metrics: Metrics) -> tuple[float, float]:
    """(active generations, queue depth) as /metrics reports them."""
    get = metrics.registry.get_sample_value
    return get("hf_server_active_generations"), get("hf_server_queue_depth")


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _assert_busy(exc: APIError, running: int, waiting: int, queue: int) -> None:
    assert exc.status == 429
    assert exc.type == "rate_limit_exceeded"
    assert exc.param is None
    assert exc.headers == {"Retry-After": "3"}
    assert exc.message == str(exc) == (f"server busy: {running} generation(s) running and {waiting} of {queue} "
                                       "queue slots taken; retry later")


def test_free_slots_are_taken_at_once_and_given_back():
    async def scenario():
        limiter, metrics = _limiter(concurrency=2)
        await asyncio.wait_for(limiter.acquire(), 1)
        assert _gauges(metrics) == (1, 0)
        await asyncio.wait_for(limiter.acquire(), 1)
        assert _gauges(metrics) == (2, 0) and limiter.waiting == 0
        limiter.release()
        assert _gauges(metrics) == (1, 0)
        limiter.release()
        assert _gauges(metrics) == (0, 0)
        # Both slots are free again: two more are taken without waiting.
        await asyncio.wait_for(limiter.acquire(), 1)
        await asyncio.wait_for(limiter.acquire(), 1)
        assert _gauges(metrics) == (2, 0)

    asyncio.run(scenario())


@pytest.mark.parametrize("concurrency", [1, 2])
def test_without_a_queue_a_full_server_refuses_at_once(concurrency):
    async def scenario():
        limiter, metrics = _limiter(concurrency=concurrency, queue=0)
        for _ in range(concurrency):
            await asyncio.wait_for(limiter.acquire(), 1)
        with pytest.raises(APIError) as caught:
            await asyncio.wait_for(limiter.acquire(), 1)  # a refusal, not a wait
        _assert_busy(caught.value, concurrency, 0, 0)
        assert _gauges(metrics) == (concurrency, 0) and limiter.waiting == 0

    asyncio.run(scenario())


def test_the_queue_holds_max_queue_waiters_in_order_then_refuses():
    async def scenario():
        limiter, metrics = _limiter(concurrency=1, queue=2)
        await asyncio.wait_for(limiter.acquire(), 1)
        started: list[str] = []

        async def request(name: str) -> None:
            await asyncio.wait_for(limiter.acquire(), 1)
            started.append(name)

        first, second = asyncio.create_task(request("first")), None
        await _settle()
        assert limiter.waiting == 1 and _gauges(metrics) == (1, 1)
        second = asyncio.create_task(request("second"))
        await _settle()
        assert limiter.waiting == 2 and _gauges(metrics) == (1, 2)
        with pytest.raises(APIError) as caught:
            await asyncio.wait_for(limiter.acquire(), 1)
        _assert_busy(caught.value, 1, 2, 2)
        assert limiter.waiting == 2 and started == []
        limiter.release()  # the running generation ends: the first waiter gets its slot
        await asyncio.wait_for(first, 1)
        assert started == ["first"] and limiter.waiting == 1 and _gauges(metrics) == (1, 1)
        limiter.release()
        await asyncio.wait_for(second, 1)
        assert started == ["first", "second"] and limiter.waiting == 0 and _gauges(metrics) == (1, 0)

    asyncio.run(scenario())


def test_a_new_request_queues_behind_waiters_even_when_a_slot_was_just_freed():
    async def scenario():
        limiter, metrics = _limiter(concurrency=1, queue=1)
        await asyncio.wait_for(limiter.acquire(), 1)
        waiter = asyncio.create_task(limiter.acquire())
        await _settle()
        limiter.release()  # the slot goes to the waiter, which has not run yet
        # The queue is full (the waiter still counts): a newcomer is refused, it may not jump ahead.
        with pytest.raises(APIError) as caught:
            await asyncio.wait_for(limiter.acquire(), 1)
        _assert_busy(caught.value, 1, 1, 1)
        await asyncio.wait_for(waiter, 1)
        assert limiter.waiting == 0 and _gauges(metrics) == (1, 0)

    asyncio.run(scenario())


def test_a_waiter_gives_up_after_the_queue_timeout_with_a_429():
    async def scenario():
        limiter, metrics = _limiter(concurrency=1, queue=1, timeout=0.05)
        await asyncio.wait_for(limiter.acquire(), 1)
        with pytest.raises(APIError) as caught:
            await asyncio.wait_for(limiter.acquire(), 5)
        _assert_busy(caught.value, 1, 1, 1)  # the answer is made while it still holds its place ...
        assert limiter.waiting == 0 and _gauges(metrics) == (1, 0)  # ... which it then gives back
        limiter.release()
        await asyncio.wait_for(limiter.acquire(), 1)  # the timed-out waiter took no slot with it
        assert _gauges(metrics) == (1, 0)

    asyncio.run(scenario())


def test_a_queue_timeout_of_zero_waits_without_limit():
    async def scenario():
        limiter, metrics = _limiter(concurrency=1, queue=1, timeout=0)
        await asyncio.wait_for(limiter.acquire(), 1)
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.2)
        assert not waiter.done() and limiter.waiting == 1
        limiter.release()
        await asyncio.wait_for(waiter, 1)
        assert limiter.waiting == 0 and _gauges(metrics) == (1, 0)

    asyncio.run(scenario())


def test_a_cancelled_waiter_gives_its_queue_place_back():
    async def scenario():
        limiter, metrics = _limiter(concurrency=1, queue=1)
        await asyncio.wait_for(limiter.acquire(), 1)
        waiter = asyncio.create_task(limiter.acquire())
        await _settle()
        waiter.cancel()  # the client went away while queued
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert limiter.waiting == 0 and _gauges(metrics) == (1, 0)

    asyncio.run(scenario())
