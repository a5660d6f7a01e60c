"""Calls to the real Hub, with the gateway's token, bounded time-outs and errors kept as the Hub gave them.

Writes and whoami go through ``huggingface_hub.HfApi``: it builds the Hub's request bodies
(create/delete/settings) and raises ``HfHubHTTPError`` carrying the Hub's response, so the
status, ``X-Error-Code``/``X-Error-Message`` and body can be handed to the caller unchanged.
Its shared HTTP session has no time-out by default (``timeout=None`` in huggingface_hub's
``default_client_factory``), so the gateway installs one with a bounded time-out through the
documented ``set_client_factory``.

Pass-through reads of repos that are not cached (model info, tree, resolve) use a plain
``httpx2`` client (the one huggingface_hub itself is built on): HfApi has no call that hands
back the raw response, and the bytes must be streamed. Redirects to the CDN are followed by
the gateway, not the caller: the caller has no internet, and httpx drops the Authorization
header when a redirect leaves the Hub's origin, so the token never reaches the CDN.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from huggingface_hub import HfApi, set_client_factory
from huggingface_hub.errors import HfHubHTTPError

from . import __version__
from .config import Settings

log = logging.getLogger("hub_gateway.upstream")
T = TypeVar("T")

#: Response headers of the Hub that a caller may need; everything else (cookies, xet endpoints,
#: tracing) stays at the gateway. X-Xet-* headers are dropped on purpose: with them the client
#: would fetch from the Xet CAS directly, which a pod without internet cannot reach.
PASSED_HEADERS = ("content-type", "etag", "x-repo-commit", "x-linked-etag", "x-linked-size", "x-error-code",
                  "x-error-message", "retry-after", "accept-ranges", "content-range", "last-modified",
                  "ratelimit", "ratelimit-policy")


@dataclass
class HubFailure(Exception):
    """The Hub answered an error, or could not be reached/answer in time (502/504)."""

    status: int
    message: str
    code: str | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}"

    @classmethod
    def from_response(cls, response: httpx2.Response) -> HubFailure:
        try:
            body = response.content
        except httpx2.ResponseNotRead:
            body = b""
        message = response.headers.get("X-Error-Message") or ""
        if not message and body:
            try:
                doc = json.loads(body)
                message = str(doc.get("error") or doc.get("message") or "") if isinstance(doc, dict) else ""
            except ValueError:
                message = body[:200].decode(errors="replace").strip()
        headers = {k: v for k, v in response.headers.items() if k.lower() in PASSED_HEADERS}
        is_json = response.headers.get("content-type", "").startswith("application/json")
        return cls(response.status_code, message or response.reason_phrase or "error",
                   response.headers.get("X-Error-Code"), body if is_json else None, headers)


def strip_xet(doc: Any) -> Any:
    """The document without ``xetHash`` fields: with them huggingface_hub would download from the Xet CAS."""
    if isinstance(doc, dict):
        return {k: strip_xet(v) for k, v in doc.items() if k != "xetHash"}
    if isinstance(doc, list):
        return [strip_xet(v) for v in doc]
    return doc


class Hub:
    def __init__(self, settings: Settings):
        self.endpoint = settings.hf_endpoint
        self.token = settings.hf_token
        self.timeout = httpx2.Timeout(settings.read_timeout, connect=settings.connect_timeout)
        agent = f"hub-gateway/{__version__}"
        # HfApi's process-wide session: bounded time-outs instead of huggingface_hub's timeout=None.
        set_client_factory(lambda: httpx2.Client(follow_redirects=True, timeout=self.timeout,
                                                 headers={"user-agent": agent}))
        self.api = HfApi(endpoint=self.endpoint, token=self.token or False, library_name="hub-gateway",
                         library_version=__version__)
        self.client = httpx2.Client(timeout=self.timeout, follow_redirects=False,
                                    headers={"user-agent": agent},
                                    limits=httpx2.Limits(max_connections=64, max_keepalive_connections=16))

    # ---- writes and whoami (HfApi) -----------------------------------------------------------

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not self.token:
            raise HubFailure(503, "the gateway has no Hugging Face token (HF_TOKEN is not set); "
                                  "ask the platform team to configure hfToken")
        try:
            return fn(*args, **kwargs)
        except HfHubHTTPError as exc:
            if exc.response is None:
                raise HubFailure(502, f"the Hub request failed: {exc}") from None
            raise HubFailure.from_response(exc.response) from None
        except httpx2.TimeoutException:
            raise HubFailure(504, f"the Hub at {self.endpoint} did not answer within "
                                  f"{self.timeout.read:g}s") from None
        except httpx2.TransportError as exc:
            raise HubFailure(502, f"the Hub at {self.endpoint} cannot be reached ({type(exc).__name__})") from None

    def whoami(self) -> dict:
        doc = self._call(self.api.whoami, token=self.token)
        # Details of the gateway's own token (name, role, scopes) are not the caller's business.
        doc.pop("auth", None)
        return doc

    def create(self, repo_id: str, repo_type: str, visibility: str | None, sdk: str | None) -> str:
        url = self._call(self.api.create_repo, repo_id, repo_type=repo_type, visibility=visibility,
                         space_sdk=sdk, exist_ok=False)
        return str(url)

    def delete(self, repo_id: str, repo_type: str) -> None:
        self._call(self.api.delete_repo, repo_id, repo_type=repo_type)

    def set_visibility(self, repo_id: str, repo_type: str, visibility: str) -> None:
        self._call(self.api.update_repo_settings, repo_id, repo_type=repo_type, visibility=visibility)

    # ---- pass-through reads (httpx2) ---------------------------------------------------------

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def _send(self, method: str, path: str, *, headers: dict | None = None, stream: bool = False,
              follow: bool = False) -> httpx2.Response:
        request = self.client.build_request(method, f"{self.endpoint}{path}", headers=self._headers(headers))
        try:
            return self.client.send(request, stream=stream, follow_redirects=follow)
        except httpx2.TimeoutException:
            raise HubFailure(504, f"the Hub at {self.endpoint} did not answer within "
                                  f"{self.timeout.read:g}s") from None
        except httpx2.TransportError as exc:
            raise HubFailure(502, f"the Hub at {self.endpoint} cannot be reached ({type(exc).__name__})") from None

    def api_get(self, path: str, query: str) -> tuple[int, dict[str, str], bytes]:
        """A JSON API GET (raw path and query, as the caller sent them): status, the headers a caller
        may see, body (xetHash fields removed)."""
        response = self._send("GET", f"{path}?{query}" if query else path)
        headers = {k: v for k, v in response.headers.items() if k.lower() in PASSED_HEADERS}
        if "link" in response.headers:
            headers["link"] = response.headers["link"]
        body = response.content
        if response.status_code == 200 and headers.get("content-type", "").startswith("application/json"):
            body = json.dumps(strip_xet(json.loads(body))).encode()
        return response.status_code, headers, body

    def head(self, path: str) -> httpx2.Response:
        return self._send("HEAD", path, headers={"accept-encoding": "identity"})

    def stream(self, path: str, range_header: str | None) -> tuple[httpx2.Response, dict[str, str]]:
        """GET following redirects; returns the open final response and the Hub's own headers
        (X-Repo-Commit, X-Linked-*, from the first answer: the CDN's answer has none)."""
        headers = {"accept-encoding": "identity"}
        if range_header:
            headers["range"] = range_header
        response = self._send("GET", path, headers=headers, stream=True, follow=True)
        hub_headers: dict[str, str] = {}
        for answer in [*response.history, response]:
            for k, v in answer.headers.items():
                if k.lower() in ("x-repo-commit", "x-linked-etag", "x-linked-size") and k.lower() not in hub_headers:
                    hub_headers[k.lower()] = v
        return response, hub_headers

    @staticmethod
    def body(response: httpx2.Response, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(chunk_size)
        finally:
            response.close()

    def close(self) -> None:
        self.client.close()
