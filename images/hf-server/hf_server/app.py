"""The FastAPI app: /health, /metrics and the OpenAI-compatible /v1 endpoints."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .engine import GenerationParams, ModelEngine, RequestError
from .metrics import Metrics, MetricsMiddleware
from .schemas import ChatCompletionRequest, CompletionRequest
from .settings import Settings

log = logging.getLogger("hf_server")
DISCONNECT_POLL_S = 0.5
#: Probe paths (the Deployment's livenessProbe/startupProbe and readinessProbe use these).
LIVENESS_PATH = "/livez"
READINESS_PATH = "/readyz"
HEALTH_PATH = "/health"


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str, param: str | None = None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.headers = headers


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class Limiter:
    """At most `max_concurrency` generations at once, at most `max_queue` waiting; beyond that: 429."""

    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics
        self.sem = asyncio.Semaphore(settings.max_concurrency)
        self.waiting = 0

    def _busy(self) -> APIError:
        return APIError(
            429,
            f"server busy: {self.settings.max_concurrency} generation(s) running and "
            f"{self.waiting} of {self.settings.max_queue} queue slots taken; retry later",
            "rate_limit_exceeded",
            headers={"Retry-After": str(self.settings.retry_after_s)},
        )

    async def acquire(self) -> None:
        if self.sem.locked() or self.waiting:
            if self.waiting >= self.settings.max_queue:
                raise self._busy()
            self.waiting += 1
            self.metrics.queue_depth.set(self.waiting)
            try:
                await asyncio.wait_for(self.sem.acquire(), timeout=self.settings.queue_timeout_s or None)
            except TimeoutError:
                raise self._busy() from None
            finally:
                self.waiting -= 1
                self.metrics.queue_depth.set(self.waiting)
        else:
            await self.sem.acquire()
        self.metrics.active.inc()

    def release(self) -> None:
        self.metrics.active.dec()
        self.sem.release()


class CatchAllMiddleware:
    """Last line of defence: an unexpected exception becomes a JSON 500 (logged here with its traceback).

    Starlette's own catch-all re-raises to the server after answering, and uvicorn then drops the
    keep-alive connection; catching here keeps the connection usable and the client's view clean.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"started": False, "ended": False}

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                state["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                state["ended"] = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not state["started"]:
                body = json.dumps(error_body("internal server error", "internal_error")).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            elif not state["ended"]:
                await send({"type": "http.response.body", "body": b"", "more_body": False})


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    parts, first_param = [], None
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            return f"malformed JSON body: {ctx.get('error', 'cannot parse')}", None
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        field = ".".join(loc)
        first_param = first_param or (loc[0] if loc else None)
        parts.append(f"{field}: {msg}" if field else msg)
    return "invalid request: " + "; ".join(parts or ["body could not be validated"]), first_param


def create_app(settings: Settings | None = None, engine: ModelEngine | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    engine = engine or ModelEngine(settings)
    metrics = Metrics()
    limiter = Limiter(settings, metrics)
    served = settings.served_name

    # Blocking work (generate, waiting for the next streamed piece) runs here, sized so that every
    # allowed generation has a thread: the default executor (min(32, CPUs + 4)) could starve streams.
    executor = ThreadPoolExecutor(max_workers=2 * settings.max_concurrency + 2, thread_name_prefix="gen")

    async def blocking(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="hf-server", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.limiter = limiter
    app.add_middleware(CatchAllMiddleware)  # inner: turns any escaped exception into a JSON 500
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outer: sees that 500 too

    # ---- errors: always JSON {"error": {...}}, never a traceback ----------------------------------
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(
            error_body(exc.message, exc.type, exc.param), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        message, param = _validation_message(exc)
        return JSONResponse(error_body(message, "invalid_request_error", param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(
            error_body(str(exc.detail), kind), status_code=exc.status_code, headers=exc.headers
        )

    # ---- helpers -------------------------------------------------------------------------------
    def require_ready() -> None:
        if not engine.ready:
            reason = engine.error or "the model is still loading"
            raise APIError(
                503,
                f"model not available: {reason}",
                "model_not_ready",
                headers={"Retry-After": str(max(settings.retry_after_s, 1))},
            )

    def check_model(name: str | None) -> None:
        if name and name not in (served, settings.model_path):
            raise APIError(
                404,
                f"model {name!r} is not served here; this server serves {served!r}",
                "not_found_error",
                "model",
            )

    def params_for(req, max_tokens: int | None) -> GenerationParams:
        max_tokens = max_tokens if max_tokens is not None else settings.default_max_tokens
        if max_tokens > settings.max_tokens_limit:
            raise APIError(
                400,
                f"max_tokens={max_tokens} is above this server's limit of {settings.max_tokens_limit}",
                "invalid_request_error",
                "max_tokens",
            )
        if req.min_tokens > max_tokens:
            raise APIError(
                400,
                f"min_tokens={req.min_tokens} is larger than max_tokens={max_tokens}",
                "invalid_request_error",
                "min_tokens",
            )
        return GenerationParams(
            max_tokens=max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            stop=req.stop,
            min_tokens=req.min_tokens,
        )

    def prepare(encode, params: GenerationParams) -> list[int]:
        try:
            ids = encode()
            engine.check_length(len(ids), params.max_tokens)
        except RequestError as exc:
            raise APIError(400, str(exc), "invalid_request_error", exc.param) from None
        return ids

    def usage(prompt_tokens: int, completion_tokens: int) -> dict:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    async def run_generation(request: Request, ids: list[int], params: GenerationParams):
        await limiter.acquire()
        cancel = threading.Event()
        try:
            future = asyncio.ensure_future(blocking(engine.generate, ids, params, cancel))
            # A client that gave up (timeout, closed connection) should not keep the GPU busy.
            while not future.done():
                await asyncio.wait({future}, timeout=DISCONNECT_POLL_S)
                if not future.done() and await request.is_disconnected():
                    cancel.set()
                    log.info("client went away: generation stopped early")
                    await asyncio.wait({future})
            result = future.result()
        finally:
            limiter.release()
        metrics.prompt_tokens.inc(result.prompt_tokens)
        metrics.generated_tokens.inc(result.completion_tokens)
        return result

    class Slot:
        """A generation slot taken from the limiter, released exactly once."""

        def __init__(self):
            self.held = True

        def release(self) -> None:
            if self.held:
                self.held = False
                limiter.release()

    async def sse(
        slot: Slot, ids: list[int], params: GenerationParams, make_chunk, include_usage: bool, started: float
    ):
        """Server-sent events; the slot is held until the stream ends or the client goes away."""
        handle = None
        try:
            handle = engine.stream(ids, params)
            iterator = iter(handle)
            first = make_chunk(None, None, first=True)
            if first is not None:
                yield f"data: {json.dumps(first)}\n\n"
            sentinel = object()
            got_first = False
            while True:
                piece = await blocking(next, iterator, sentinel)
                if piece is sentinel:
                    break
                if not got_first:
                    got_first = True
                    metrics.ttft.observe(time.perf_counter() - started)
                yield f"data: {json.dumps(make_chunk(piece, None))}\n\n"
            yield f"data: {json.dumps(make_chunk('', handle.finish_reason or 'stop'))}\n\n"
            if include_usage:
                final_usage = make_chunk(None, None, usage_only=True)
                final_usage["usage"] = usage(handle.prompt_tokens, handle.completion_tokens)
                yield f"data: {json.dumps(final_usage)}\n\n"
            yield "data: [DONE]\n\n"
        except Exception:  # headers are sent: report in-band, never a traceback
            log.exception("generation failed during a stream")
            yield f"data: {json.dumps(error_body('generation failed', 'internal_error'))}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            if handle is not None:
                handle.cancel()
                metrics.prompt_tokens.inc(handle.prompt_tokens)
                metrics.generated_tokens.inc(handle.completion_tokens)
            slot.release()

    async def stream_response(ids, params, chunk, include_usage: bool, started: float) -> StreamingResponse:
        await limiter.acquire()  # before the headers: a full server still answers 429
        slot = Slot()
        return StreamingResponse(
            sse(slot, ids, params, chunk, include_usage, started),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            background=BackgroundTask(slot.release),  # also runs when the body was never iterated
        )

    # ---- endpoints -----------------------------------------------------------------------------
    # Probes: liveness asks only whether the process answers (a model that failed to load must not
    # be restarted forever), readiness whether the model serves; /health is the full report.
    @app.get(LIVENESS_PATH)
    async def livez():
        return {"status": "alive"}

    @app.get(READINESS_PATH)
    async def readyz():
        metrics.model_loaded.set(1 if engine.ready else 0)
        if engine.ready:
            return {"status": "ready"}
        body = {"status": engine.state}
        if engine.error:
            body["error"] = engine.error
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(max(settings.retry_after_s, 1))})

    @app.get(HEALTH_PATH)
    async def health():
        body = engine.health()
        metrics.model_loaded.set(1 if engine.ready else 0)
        return JSONResponse(body, status_code=200 if engine.ready else 503)

    @app.get("/metrics")
    async def prometheus():
        metrics.model_loaded.set(1 if engine.ready else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models():
        return {
            "object": "list",
            "data": [
                {
                    "id": served,
                    "object": "model",
                    "created": int(time.time()),
                    "owned_by": "hf-server",
                    "root": settings.model_path,
                    "ready": engine.ready,
                }
            ],
        }

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        started = time.perf_counter()
        check_model(req.model)
        require_ready()
        params = params_for(req, req.max_tokens)
        ids = prepare(lambda: engine.encode_prompt(req.prompt), params)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        if req.stream:

            def chunk(text, finish, first=False, usage_only=False):
                if first:
                    return None
                return {
                    "id": rid,
                    "object": "text_completion",
                    "created": created,
                    "model": served,
                    "choices": []
                    if usage_only
                    else [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
                }

            return await stream_response(ids, params, chunk, req.include_usage, started)

        result = await run_generation(request, ids, params)
        return {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": served,
            "choices": [
                {"index": 0, "text": result.text, "logprobs": None, "finish_reason": result.finish_reason}
            ],
            "usage": usage(result.prompt_tokens, result.completion_tokens),
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest, request: Request):
        started = time.perf_counter()
        check_model(req.model)
        require_ready()
        params = params_for(
            req, req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        )
        messages = [m.as_template_dict() for m in req.messages]
        ids = prepare(lambda: engine.encode_chat(messages), params)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        if req.stream:

            def chunk(text, finish, first=False, usage_only=False):
                base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": served}
                if usage_only:
                    return {**base, "choices": []}
                delta = {"role": "assistant", "content": ""} if first else ({"content": text} if text else {})
                return {
                    **base,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                }

            return await stream_response(ids, params, chunk, req.include_usage, started)

        result = await run_generation(request, ids, params)
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": served,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "logprobs": None,
                    "finish_reason": result.finish_reason,
                }
            ],
            "usage": usage(result.prompt_tokens, result.completion_tokens),
        }

    return app
