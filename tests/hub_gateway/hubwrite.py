"""A stand-in for the Hub's account and repo-management API that records every request it receives.

tests/model_cache/hubstub.py serves what model-cache reads (model info, resolve, CDN); this one
serves what the gateway's proxy calls, with the Hub's paths, bodies and error format:

- GET    /api/whoami-v2                      -> the token owner (401 for any other token)
- POST   /api/repos/create  {name, organization, type, visibility}  -> {"url", "name"} (409 if it exists)
- DELETE /api/repos/delete  {name, organization, type}               -> 200 (404 RepoNotFound if missing)
- PUT    /api/{type}s/{owner}/{name}/settings {visibility|private|gated} -> 200 (404 if missing)
- GET/HEAD /gpt2/resolve/main/config.json    -> a root-level repo's file (pass-through tests)

``fail_next(status, code, message, headers)`` makes the next request answer that error;
``stall_next(seconds)`` makes it answer only after that long (time-out tests).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT_FILE = b'{"model_type": "gpt2", "n_layer": 2}\n'
ROOT_SHA = "1" * 40


@dataclass
class Received:
    method: str
    path: str
    authorization: str | None
    body: dict | None


@dataclass
class WriteHub:
    token: str
    owner: str = "gw-owner"
    received: list[Received] = field(default_factory=list)
    repos: dict[str, dict] = field(default_factory=dict)
    _fail: list[tuple[int, str | None, str, dict]] = field(default_factory=list)
    _stall: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def fail_next(self, status: int, code: str | None, message: str, headers: dict | None = None) -> None:
        self._fail.append((status, code, message, headers or {}))

    def stall_next(self, seconds: float) -> None:
        self._stall.append(seconds)

    def start(self) -> WriteHub:
        stub = self

        class Handler(_Handler):
            hub = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: WriteHub

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, doc: object | None = None, headers: dict | None = None, body: bytes | None = None):
        data = body if body is not None else (json.dumps(doc).encode() if doc is not None else b"")
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if doc is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, code: str | None, message: str, headers: dict | None = None):
        h = {"X-Error-Message": message, **(headers or {})}
        if code:
            h["X-Error-Code"] = code
        self._reply(status, {"error": message}, h)

    def _handle(self) -> None:
        hub = self.hub
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with hub.lock:
            hub.received.append(Received(self.command, self.path, self.headers.get("Authorization"), body))
            fail = hub._fail.pop(0) if hub._fail else None
            stall = hub._stall.pop(0) if hub._stall else 0.0
        if stall:
            time.sleep(stall)
        if fail:
            return self._error(*fail)
        path = self.path.split("?", 1)[0]
        if path == "/gpt2/resolve/main/config.json" and self.command in ("GET", "HEAD"):
            return self._reply(200, None, {"ETag": '"0123abcd"', "X-Repo-Commit": ROOT_SHA,
                                           "Content-Type": "application/octet-stream"}, ROOT_FILE)
        if self.headers.get("Authorization") != f"Bearer {hub.token}":
            return self._error(401, None, "Invalid credentials in Authorization header")
        if self.command == "GET" and path == "/api/whoami-v2":
            return self._reply(200, {"type": "user", "name": hub.owner, "fullname": "Gateway Owner", "orgs": [],
                                     "auth": {"type": "access_token",
                                              "accessToken": {"displayName": "gateway", "role": "write"}}})
        if self.command == "POST" and path == "/api/repos/create":
            repo_id = f"{body.get('organization') or hub.owner}/{body['name']}"
            if repo_id in hub.repos:
                return self._error(409, None, "You already created this model repo")
            hub.repos[repo_id] = {"type": body.get("type", "model"), "private": body.get("visibility") == "private"}
            return self._reply(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id, "id": "0" * 24})
        if self.command == "DELETE" and path == "/api/repos/delete":
            repo_id = f"{body.get('organization') or hub.owner}/{body['name']}"
            if hub.repos.pop(repo_id, None) is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            return self._reply(200, None)
        if self.command == "PUT" and path.startswith("/api/") and path.endswith("/settings"):
            repo_id = path[len("/api/"):-len("/settings")].split("/", 1)[1]
            if repo_id not in hub.repos:
                return self._error(404, "RepoNotFound", "Repository not found")
            if "visibility" in body:
                hub.repos[repo_id]["private"] = body["visibility"] == "private"
            return self._reply(200, {})
        self._error(404, None, "Sorry, we can't find the page you are looking for.")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle
