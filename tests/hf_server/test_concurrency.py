"""The concurrency limit: MAX_CONCURRENCY generations at once, MAX_QUEUE waiting, then 429 + Retry-After."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from helpers import ThreadServer, assert_clean_error, metric_samples, wait_health
from hf_server import Settings, create_app


class Blocker:
    """Wraps the engine's generate so each generation waits for the test to let it finish."""

    def __init__(self, real):
        self.real = real
        self.release = threading.Event()
        self.running = 0
        self.lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.running += 1
        assert self.release.wait(60), "test never released the generation"
        return self.real(*args, **kwargs)


@pytest.fixture
def limited(tiny_model_dir, request):
    concurrency, queue = request.param
    settings = Settings(
        model_path=str(tiny_model_dir),
        quantization="none",
        max_concurrency=concurrency,
        max_queue=queue,
        retry_after_s=3,
    )
    app = create_app(settings)
    with ThreadServer(app) as srv:
        with srv.client() as c:
            wait_health(c)
        engine = app.state.engine
        blocker = Blocker(engine.generate)
        engine.generate = blocker
        yield srv, blocker
        blocker.release.set()


def _gauge(client, name: str) -> float:
    return metric_samples(client.get("/metrics").text).get((name, ()), 0.0)


def _wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


BODY = {"prompt": "hello", "max_tokens": 3, "temperature": 0}


@pytest.mark.parametrize("limited", [(1, 0)], indirect=True)
def test_busy_server_answers_429_with_retry_after(limited):
    srv, blocker = limited
    with srv.client() as c, ThreadPoolExecutor(2) as pool:
        first = pool.submit(c.post, "/v1/completions", json=BODY)
        _wait_for(lambda: blocker.running == 1)
        assert _gauge(c, "hf_server_active_generations") == 1
        r = c.post("/v1/completions", json=BODY)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "3"
        assert r.json()["error"]["type"] == "rate_limit_exceeded"
        assert_clean_error(r.text, "busy")
        # streaming requests are refused the same way, before any event is sent
        r = c.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "stream": True}
        )
        assert r.status_code == 429 and "data:" not in r.text
        blocker.release.set()
        assert first.result(30).status_code == 200
        samples = metric_samples(c.get("/metrics").text)
        assert (
            samples[("hf_server_requests_total", (("endpoint", "/v1/completions"), ("status", "429")))] == 1
        )
        # the slot is free again
        assert c.post("/v1/completions", json=BODY).status_code == 200


@pytest.mark.parametrize("limited", [(1, 1)], indirect=True)
def test_queue_holds_max_queue_requests_then_rejects(limited):
    srv, blocker = limited
    with srv.client() as c, ThreadPoolExecutor(3) as pool:
        first = pool.submit(c.post, "/v1/completions", json=BODY)
        _wait_for(lambda: blocker.running == 1)
        queued = pool.submit(c.post, "/v1/completions", json=BODY)
        _wait_for(lambda: _gauge(c, "hf_server_queue_depth") == 1)
        assert blocker.running == 1, "a queued request must not start generating"
        r = c.post("/v1/completions", json=BODY)
        assert r.status_code == 429
        blocker.release.set()
        assert first.result(30).status_code == 200
        assert queued.result(30).status_code == 200
        assert blocker.running == 2
        assert _gauge(c, "hf_server_queue_depth") == 0
        assert _gauge(c, "hf_server_active_generations") == 0


@pytest.mark.parametrize("limited", [(2, 0)], indirect=True)
def test_two_generations_may_run_together(limited):
    srv, blocker = limited
    with srv.client() as c, ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(c.post, "/v1/completions", json=BODY) for _ in range(2)]
        _wait_for(lambda: blocker.running == 2)
        assert _gauge(c, "hf_server_active_generations") == 2
        assert c.post("/v1/completions", json=BODY).status_code == 429
        blocker.release.set()
        assert [f.result(30).status_code for f in futures] == [200, 200]


def test_a_client_that_gives_up_stops_its_generation(tiny_model_dir):
    """Non-streamed: when the client disconnects, the generation is cancelled and its slot freed."""
    settings = Settings(model_path=str(tiny_model_dir), quantization="none", max_concurrency=1, max_queue=0)
    app = create_app(settings)
    cancelled = threading.Event()

    def until_cancelled(ids, params, cancel=None):
        assert cancel is not None, "the server must hand generate() a cancel event"
        if cancel.wait(30):
            cancelled.set()
        raise RuntimeError("cancelled")

    with ThreadServer(app) as srv, srv.client() as c:
        wait_health(c)
        app.state.engine.generate = until_cancelled
        with srv.client(timeout=1.0) as impatient, pytest.raises(httpx.ReadTimeout):
            impatient.post("/v1/completions", json=BODY)
        assert cancelled.wait(10), "generation kept running after the client left"
        _wait_for(lambda: app.state.limiter.sem._value == 1)


def test_a_long_stream_holds_its_slot_until_it_ends(tiny_model_dir):
    """Real generation, no mocks: while a stream is open, MAX_CONCURRENCY=1/MAX_QUEUE=0 refuses others."""
    settings = Settings(model_path=str(tiny_model_dir), quantization="none", max_concurrency=1, max_queue=0)
    with ThreadServer(create_app(settings)) as srv, srv.client() as c, srv.client() as other:
        wait_health(c)
        req = {"prompt": "hello", "max_tokens": 400, "temperature": 0}
        with c.stream("POST", "/v1/completions", json={**req, "stream": True}) as stream:
            lines = stream.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            assert '"text_completion"' in first
            r = other.post("/v1/completions", json={**req, "max_tokens": 1})
            assert r.status_code == 429
        # the client closed the stream early: its slot comes back
        _wait_for(lambda: other.post("/v1/completions", json={**req, "max_tokens": 1}).status_code == 200)
