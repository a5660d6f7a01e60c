"""Prometheus metrics, one registry per app, and an ASGI middleware that counts every request."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # the *_created series only add noise to a single-process server

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "hf_server_requests",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "hf_server_request_latency_seconds",
            "Time from request start to the last byte of the response, by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "hf_server_time_to_first_token_seconds",
            "Time from request start to the first streamed token",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("hf_server_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generated_tokens = Counter("hf_server_generated_tokens", "Tokens generated", registry=r)
        self.queue_depth = Gauge(
            "hf_server_queue_depth", "Requests waiting for a generation slot", registry=r
        )
        self.active = Gauge("hf_server_active_generations", "Generations running now", registry=r)
        self.model_loaded = Gauge(
            "hf_server_model_loaded", "1 when the model is loaded and serving", registry=r
        )


class MetricsMiddleware:
    """Counts requests by route template (not raw path: bounded label values) and final status."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        recorded = {"done": False}

        def record() -> None:
            if recorded["done"]:
                return
            recorded["done"] = True
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "other"
            self.metrics.requests.labels(endpoint=endpoint, status=str(status["code"])).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                record()

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            record()
