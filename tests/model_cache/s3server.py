"""moto's S3 server on 127.0.0.1 (a free port), with an optional fault-injecting WSGI middleware.

Same construction as moto's ThreadedMotoServer, plus the middleware: tests can make the next N
requests matching a method/key answer an error (HTTP 500 by default, or e.g. 403 AccessDenied),
and can record every request (method, path, query, conditional headers, start and end order) to
assert on what the client sent and in which order, not only on the end state.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from werkzeug.serving import make_server

REASONS = {403: "Forbidden", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}


def error_body(code: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>injected failure</Message><RequestId>stub</RequestId></Error>").encode()


@dataclass(frozen=True)
class Request:
    """One request as the server saw it; ``seq``/``done`` order arrivals and completions globally."""

    seq: int
    method: str
    path: str
    query: str
    headers: dict
    done: int = -1


@dataclass
class Fault:
    method: str            # "PUT", "GET", ... or "*"
    contains: str          # substring of the path (key) or "" for any
    remaining: int
    status: int = 500
    code: str = "InternalError"
    delay: float = 0.0     # > 0: the request is held this long, then served normally (a slow store)


@dataclass
class FaultInjector:
    app: object
    faults: list[Fault] = field(default_factory=list)
    injected: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    recording: bool = False
    log: list[Request] = field(default_factory=list)
    _clock: int = 0

    def add(self, method: str, contains: str = "", times: int = 1, status: int = 500,
            code: str = "InternalError", delay: float = 0.0) -> None:
        with self.lock:
            self.faults.append(Fault(method.upper(), contains, times, status, code, delay))

    def record(self) -> list[Request]:
        """Start recording requests (cleared); the returned list fills as requests complete."""
        with self.lock:
            self.log = []
            self.recording = True
        return self.log

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO", "")
        with self.lock:
            seq = self._tick() if self.recording else -1
        try:
            return self._serve(environ, start_response, method, path)
        finally:
            if seq >= 0:
                headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                           if k in ("HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH")}
                with self.lock:
                    if self.recording:
                        self.log.append(Request(seq, method, path, environ.get("QUERY_STRING", ""), headers,
                                                self._tick()))

    def _serve(self, environ, start_response, method, path):
        with self.lock:
            self.requests += 1
            hit = None
            for f in self.faults:
                if f.remaining > 0 and f.method in ("*", method) and f.contains in path:
                    f.remaining -= 1
                    hit = f
                    self.injected += 1
                    break
        if hit is not None and hit.delay > 0:
            time.sleep(hit.delay)
            hit = None
        if hit is not None:
            # Drain the request body so the connection stays usable for the retry.
            length = int(environ.get("CONTENT_LENGTH") or 0)
            stream = environ.get("wsgi.input")
            while length > 0 and stream is not None:
                chunk = stream.read(min(length, 1 << 20))
                if not chunk:
                    break
                length -= len(chunk)
            body = b"" if method == "HEAD" else error_body(hit.code)
            start_response(f"{hit.status} {REASONS.get(hit.status, 'Error')}",
                           [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)


class S3Server:
    def __init__(self):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.faults = FaultInjector(DomainDispatcherApplication(create_backend_app))
        self._server = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> S3Server:
        from moto.moto_server.werkzeug_app import MotoRequestHandler

        class Quiet(MotoRequestHandler):
            def log_request(self, *args, **kwargs):  # one line per request drowns test output
                pass

        self._server = make_server("127.0.0.1", 0, self.faults, threaded=True, request_handler=Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
