"""moto's S3 server on 127.0.0.1 (a free port), with an optional fault-injecting WSGI middleware.

Same construction as moto's ThreadedMotoServer, plus the middleware: tests can make the next N
requests matching a method/key answer HTTP 500, to prove the client retries.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from werkzeug.serving import make_server

INTERNAL_ERROR = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                  b"<Message>injected failure</Message><RequestId>stub</RequestId></Error>")


@dataclass
class Fault:
    method: str            # "PUT", "GET", ... or "*"
    contains: str          # substring of the path (key) or "" for any
    remaining: int
    status: int = 500


@dataclass
class FaultInjector:
    app: object
    faults: list[Fault] = field(default_factory=list)
    injected: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, contains: str = "", times: int = 1, status: int = 500) -> None:
        with self.lock:
            self.faults.append(Fault(method.upper(), contains, times, status))

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO", "")
        with self.lock:
            self.requests += 1
            hit = None
            for f in self.faults:
                if f.remaining > 0 and f.method in ("*", method) and f.contains in path:
                    f.remaining -= 1
                    hit = f
                    self.injected += 1
                    break
        if hit is not None:
            # Drain the request body so the connection stays usable for the retry.
            length = int(environ.get("CONTENT_LENGTH") or 0)
            stream = environ.get("wsgi.input")
            while length > 0 and stream is not None:
                chunk = stream.read(min(length, 1 << 20))
                if not chunk:
                    break
                length -= len(chunk)
            start_response(f"{hit.status} Internal Server Error",
                           [("Content-Type", "application/xml"), ("Content-Length", str(len(INTERNAL_ERROR)))])
            return [INTERNAL_ERROR]
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
