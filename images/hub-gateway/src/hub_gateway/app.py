"""The ASGI app: the Hub API proxy (token held here, per-team callers) and the Hub mirror of the bucket.

Endpoints are plain functions: Starlette runs them in its thread pool, where the blocking
boto3/HfApi calls belong; file bytes are streamed chunk by chunk (never a whole file in memory).
Paths are parsed from the raw (still percent-encoded) request path, because huggingface_hub
quotes a revision such as ``refs/pr/1`` as one segment, and a decoded path would split it.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

import anyio.from_thread
from botocore.exceptions import BotoCoreError, ClientError
from huggingface_hub.constants import SPACES_SDK_TYPES
from model_cache.errors import ModelCacheError
from model_cache.layout import validate_repo_id
from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from . import __version__
from .config import Caller, Settings
from .mirror import Mirror, Snapshot
from .upstream import Hub, HubFailure

log = logging.getLogger("hub_gateway")
audit_log = logging.getLogger("hub_gateway.audit")

MAX_BODY_BYTES = 64 * 1024
WHOAMI_TTL_SECONDS = 300.0
RepoType = Literal["model", "dataset", "space"]
Visibility = Literal["public", "private", "protected"]
REPO_ID = r"[^/]+(?:/[^/]+)?"
RESOLVE = re.compile(rf"^/(?:(?P<kind>datasets|spaces)/)?(?P<repo>{REPO_ID})/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
MODEL_API = re.compile(rf"^/api/models/(?P<repo>{REPO_ID})(?:/(?P<what>revision|tree)/(?P<rev>[^/]+)(?P<sub>/.*)?)?$")
ROOT_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$")


# ---- request bodies ---------------------------------------------------------------------------

class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MicroCreate(_Body):
    """hf-micro ``POST /api/repo``."""

    type: RepoType = "model"
    name: str
    private: StrictBool = False
    sdk: str | None = None
    """Spaces only (gradio, docker, static): the Hub requires it."""


class MicroDelete(_Body):
    """hf-micro ``DELETE /api/repo``."""

    type: RepoType = "model"
    name: str


class MicroVisibility(_Body):
    """hf-micro ``PUT /api/repo``: ``namespace`` is the full repo id (owner/name)."""

    type: RepoType = "model"
    namespace: str
    private: StrictBool


class HubCreate(_Body):
    """The Hub's ``POST /api/repos/create`` (what ``HfApi.create_repo`` sends)."""

    name: str
    organization: str | None = None
    type: RepoType = "model"
    private: StrictBool | None = None
    visibility: Visibility | None = None
    sdk: str | None = None


class HubDelete(_Body):
    """The Hub's ``DELETE /api/repos/delete`` (what ``HfApi.delete_repo`` sends)."""

    name: str
    organization: str | None = None
    type: RepoType = "model"


class HubSettings(_Body):
    """The Hub's ``PUT /api/{type}s/{repo}/settings``; the gateway changes visibility only."""

    private: StrictBool | None = None
    visibility: Visibility | None = None


class Denied(Exception):
    """The caller is known but may not do this (403)."""

    def __init__(self, message: str, repo: str | None = None):
        super().__init__(message)
        self.repo = repo


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def describe_validation(exc: ValidationError) -> str:
    """One line per problem: the field, what is wrong, what was given."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        if err.get("type") == "extra_forbidden":
            problems.append(f"field {where!r} is not accepted here")
        elif err.get("type") == "missing":
            problems.append(f"field {where!r} is required")
        else:
            problems.append(f"field {where!r}: {err.get('msg')} (got {err.get('input')!r})")
    return "; ".join(problems)


def parse_body(raw: bytes, model: type[_Body]) -> Any:
    if not raw.strip():
        raise BadRequest(400, "the request body is empty; send a JSON object")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(400, f"the request body is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(doc, dict):
        raise BadRequest(400, f"the request body must be a JSON object, not {type(doc).__name__}")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise BadRequest(422, describe_validation(exc)) from None


def checked_repo_id(repo_id: str, field: str) -> str:
    try:
        return validate_repo_id(repo_id, source=field)
    except ModelCacheError as exc:
        raise BadRequest(422, str(exc)) from None


def checked_sdk(repo_type: str, sdk: str | None) -> str | None:
    if repo_type != "space":
        if sdk is not None:
            raise BadRequest(422, f"field 'sdk' is for spaces only (type is {repo_type!r})")
        return None
    if sdk not in SPACES_SDK_TYPES:
        raise BadRequest(422, f"field 'sdk' must be one of {', '.join(SPACES_SDK_TYPES)} for a space (got {sdk!r})")
    return sdk


def visibility_of(private: bool | None, visibility: str | None) -> str | None:
    if private is not None and visibility is not None and visibility != ("private" if private else "public"):
        raise BadRequest(422, f"private={private} contradicts visibility={visibility!r}; send one of them")
    if visibility is not None:
        return visibility
    return None if private is None else ("private" if private else "public")


# ---- responses --------------------------------------------------------------------------------

def hub_error(status: int, code: str | None, message: str, extra: dict[str, str] | None = None) -> Response:
    """An error the way the Hub writes it: JSON ``{"error"}`` plus X-Error-Code/X-Error-Message."""
    headers = {k: v for k, v in (extra or {}).items() if k.lower() not in ("x-error-code", "x-error-message")}
    if code:
        headers["X-Error-Code"] = code
    headers["X-Error-Message"] = message.replace("\n", " ")[:500]
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def failure_response(exc: HubFailure) -> Response:
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
    if exc.body is not None:
        if "x-error-message" not in {k.lower() for k in headers}:
            headers["X-Error-Message"] = exc.message.replace("\n", " ")[:500]
        return Response(exc.body, status_code=exc.status, headers=headers, media_type="application/json")
    return hub_error(exc.status, exc.code, exc.message, headers)


def unauthenticated() -> Response:
    return hub_error(401, None, "a valid gateway token is required: Authorization: Bearer <team token>",
                     {"WWW-Authenticate": 'Bearer realm="hub-gateway"'})


def repo_not_found(repo_id: str) -> Response:
    return hub_error(404, "RepoNotFound", f"Repository {repo_id} is not cached by this gateway and not on its "
                                          "allow-list (GATEWAY_ALLOW_REPOS)")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive


def parse_range(header: str | None, size: int) -> ByteRange | None | Literal["unsatisfiable"]:
    """One ``bytes=`` range (RFC 9110). None: serve the whole file (no header, or one we ignore)."""
    if not header or size == 0:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or not (m.group(1) or m.group(2)):
        return None  # multi-range or malformed: the whole file, as RFC 9110 allows
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if start >= size or (m.group(2) and int(m.group(2)) < start):
            return "unsatisfiable"
    else:
        suffix = int(m.group(2))
        if suffix == 0:
            return "unsatisfiable"
        start, end = max(size - suffix, 0), size - 1
    return ByteRange(start, end)


# ---- the app ----------------------------------------------------------------------------------

class Gateway:
    def __init__(self, settings: Settings, mirror: Mirror | None = None, hub: Hub | None = None):
        self.settings = settings
        self.mirror = mirror if mirror is not None else Mirror(settings.store)
        self.hub = hub if hub is not None else Hub(settings)
        self._whoami: tuple[float, str] | None = None
        self._ready: tuple[float, bool] = (0.0, False)

    # ---- auth and audit -----------------------------------------------------------------------

    def caller_of(self, request: Request) -> Caller | None:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.settings.callers.authenticate(token.strip())

    @staticmethod
    def audit(caller: Caller | None, action: str, repo: str | None, repo_type: str | None, status: int,
              result: str) -> None:
        audit_log.info("audit", extra={"fields": {
            "audit": True, "caller": caller.name if caller else None, "action": action, "repo": repo,
            "repo_type": repo_type, "status": status, "result": result}})

    def account_name(self) -> str:
        """The gateway token's user name: the namespace of a repo given without an owner."""
        now = time.monotonic()
        if self._whoami is None or now - self._whoami[0] > WHOAMI_TTL_SECONDS:
            self._whoami = (now, str(self.hub.whoami()["name"]))
        return self._whoami[1]

    def full_id(self, name: str, organization: str | None, field: str) -> str:
        if organization:
            name = f"{organization}/{name}"
        elif "/" not in name:
            name = f"{self.account_name()}/{name}"
        return checked_repo_id(name, field)

    def write(self, request: Request, action: str, run: Callable[[Caller, bytes], tuple[str, str, Callable[[], Any]]]
              ) -> Response:
        """Authenticate, parse, authorize, call the Hub; one audit line whatever happens.

        ``run(caller, body)`` returns (repo_type, repo_id, hub_call); it raises BadRequest for a
        bad body and Denied when the caller may not do this.
        """
        caller = self.caller_of(request)
        repo_id = repo_type = None
        if caller is None:
            self.audit(None, action, None, None, 401, "unauthenticated")
            return unauthenticated()
        try:
            raw = _read_body(request)
            repo_type, repo_id, call = run(caller, raw)
            result = call()
        except BadRequest as exc:
            self.audit(caller, action, repo_id, repo_type, exc.status, "bad-request")
            return hub_error(exc.status, None, exc.message)
        except Denied as exc:
            self.audit(caller, action, exc.repo or repo_id, repo_type, 403, "denied")
            return hub_error(403, None, str(exc))
        except HubFailure as exc:
            self.audit(caller, action, repo_id, repo_type, exc.status, f"hub-error: {exc.code or exc.status}")
            return failure_response(exc)
        self.audit(caller, action, repo_id, repo_type, 200, "ok")
        return JSONResponse(result if result is not None else {"ok": True})

    @staticmethod
    def require_write(caller: Caller, repo_id: str) -> None:
        namespace = repo_id.split("/", 1)[0]
        if not caller.may_write(namespace):
            raise Denied(f"caller {caller.name!r} has no write rights on namespace {namespace!r}", repo_id)

    @staticmethod
    def require_delete(caller: Caller, repo_id: str) -> None:
        Gateway.require_write(caller, repo_id)
        if not caller.may_delete(repo_id):
            raise Denied(f"caller {caller.name!r} may not delete {repo_id!r}: it matches none of its "
                         f"delete patterns {list(caller.delete)}", repo_id)

    @staticmethod
    def require_some_write(caller: Caller) -> None:
        # Before anything is resolved upstream: a read-only caller causes no Hub call at all.
        if not caller.write:
            raise Denied(f"caller {caller.name!r} has no write rights")

    # ---- proxy endpoints ----------------------------------------------------------------------

    def account(self, request: Request) -> Response:
        caller = self.caller_of(request)
        if caller is None:
            return unauthenticated()
        try:
            doc = self.hub.whoami()
        except HubFailure as exc:
            return failure_response(exc)
        return JSONResponse(doc)

    def micro_repo(self, request: Request) -> Response:
        method = request.method
        if method == "POST":
            def create(caller: Caller, raw: bytes):
                self.require_some_write(caller)
                body = parse_body(raw, MicroCreate)
                repo_id = self.full_id(body.name, None, "name")
                self.require_write(caller, repo_id)
                vis = "private" if body.private else "public"
                sdk = checked_sdk(body.type, body.sdk)
                return body.type, repo_id, lambda: {"url": self.hub.create(repo_id, body.type, vis, sdk),
                                                    "name": repo_id}
            return self.write(request, "create", create)
        if method == "DELETE":
            def delete(caller: Caller, raw: bytes):
                self.require_some_write(caller)
                body = parse_body(raw, MicroDelete)
                repo_id = self.full_id(body.name, None, "name")
                self.require_delete(caller, repo_id)
                return body.type, repo_id, lambda: self.hub.delete(repo_id, body.type)
            return self.write(request, "delete", delete)

        def visibility(caller: Caller, raw: bytes):
            self.require_some_write(caller)
            body = parse_body(raw, MicroVisibility)
            repo_id = checked_repo_id(body.namespace, "namespace")
            self.require_write(caller, repo_id)
            vis = "private" if body.private else "public"
            return body.type, repo_id, lambda: self.hub.set_visibility(repo_id, body.type, vis)
        return self.write(request, "visibility", visibility)

    def hub_create(self, request: Request) -> Response:
        def create(caller: Caller, raw: bytes):
            self.require_some_write(caller)
            body = parse_body(raw, HubCreate)
            repo_id = self.full_id(body.name, body.organization, "name")
            self.require_write(caller, repo_id)
            vis = visibility_of(body.private, body.visibility)
            sdk = checked_sdk(body.type, body.sdk)
            return body.type, repo_id, lambda: {"url": self.hub.create(repo_id, body.type, vis, sdk),
                                                "name": repo_id}
        return self.write(request, "create", create)

    def hub_delete(self, request: Request) -> Response:
        def delete(caller: Caller, raw: bytes):
            self.require_some_write(caller)
            body = parse_body(raw, HubDelete)
            repo_id = self.full_id(body.name, body.organization, "name")
            self.require_delete(caller, repo_id)
            return body.type, repo_id, lambda: self.hub.delete(repo_id, body.type)
        return self.write(request, "delete", delete)

    def hub_settings(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        raw_repo = request.path_params["repo"]

        def settings(caller: Caller, raw: bytes):
            self.require_some_write(caller)
            if kind not in ("models", "datasets", "spaces"):
                raise BadRequest(404, f"unknown repo type {kind!r} in the path: use models, datasets or spaces")
            repo_type = kind[:-1]
            repo_id = checked_repo_id(raw_repo, "repo id in the path")
            body = parse_body(raw, HubSettings)
            vis = visibility_of(body.private, body.visibility)
            if vis is None:
                raise BadRequest(422, "send private (true/false) or visibility; the gateway changes visibility only")
            self.require_write(caller, repo_id)
            return repo_type, repo_id, lambda: self.hub.set_visibility(repo_id, repo_type, vis)
        return self.write(request, "visibility", settings)

    # ---- mirror endpoints ---------------------------------------------------------------------

    def model_api(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        m = MODEL_API.match(raw_path)
        if not m:
            return hub_error(404, None, "Sorry, we can't find the page you are looking for.")
        repo_id = unquote(m.group("repo"))
        if not self.valid_repo(repo_id):
            return hub_error(400, None, f"Invalid repo id {repo_id!r}")
        what = m.group("what")
        revision = unquote(m.group("rev")) if m.group("rev") else "main"
        if what != "tree" and m.group("sub"):
            return hub_error(404, None, "Sorry, we can't find the page you are looking for.")
        try:
            snap = self.mirror.snapshot(repo_id, revision)
        except (ModelCacheError, ClientError, BotoCoreError) as exc:
            return self.bucket_failure(exc, repo_id)
        if snap is not None:
            return self.serve_api(request, snap, what, unquote(m.group("sub") or ""))
        if not self.settings.allowed_upstream(repo_id):
            return repo_not_found(repo_id)
        try:
            status, headers, body = self.hub.api_get(raw_path, request.url.query)
        except HubFailure as exc:
            return failure_response(exc)
        if "link" in headers:
            headers["link"] = headers["link"].replace(self.settings.hf_endpoint, str(request.base_url).rstrip("/"))
        return Response(body, status_code=status, headers=headers)

    @staticmethod
    def serve_api(request: Request, snap: Snapshot, what: str | None, sub: str) -> Response:
        if what == "tree":
            recursive = request.query_params.get("recursive", "false").lower() == "true"
            entries = snap.tree(sub, recursive)
            if entries is None:
                return hub_error(404, "EntryNotFound", f"{sub.strip('/')} does not exist on {snap.sha}")
            return JSONResponse(entries)
        blobs = request.query_params.get("blobs", "false").lower() == "true"
        return JSONResponse(snap.model_info(blobs))

    def resolve(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        m = RESOLVE.match(raw_path)
        if not m:
            return hub_error(404, None, "Sorry, we can't find the page you are looking for.")
        repo_id, revision, path = unquote(m.group("repo")), unquote(m.group("rev")), unquote(m.group("path"))
        if not self.valid_repo(repo_id):
            return hub_error(400, None, f"Invalid repo id {repo_id!r}")
        head = request.method == "HEAD"
        if m.group("kind") is None:
            try:
                snap = self.mirror.snapshot(repo_id, revision)
            except (ModelCacheError, ClientError, BotoCoreError) as exc:
                return self.bucket_failure(exc, repo_id)
            if snap is not None and path in snap.files:
                return self.serve_file(request, snap, path, head)
            if snap is not None and not self.settings.allowed_upstream(repo_id):
                return hub_error(404, "EntryNotFound", f"{path} does not exist on {revision}",
                                 {"X-Repo-Commit": snap.sha})
        if m.group("kind") is not None or not self.settings.allowed_upstream(repo_id):
            return repo_not_found(repo_id)
        return self.pass_file(raw_path, request, head)

    def serve_file(self, request: Request, snap: Snapshot, path: str, head: bool) -> Response:
        f = snap.files[path]
        headers = {
            "ETag": f'"{f.sha256}"', "X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(f.size),
            "X-Repo-Commit": snap.sha, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
        }
        wanted = parse_range(request.headers.get("range"), f.size)
        if wanted == "unsatisfiable":
            return Response(b"", status_code=416, headers={**headers, "Content-Range": f"bytes */{f.size}"})
        start, end, status = 0, f.size - 1, 200
        if isinstance(wanted, ByteRange):
            start, end, status = wanted.start, wanted.end, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        headers["Content-Length"] = str(end - start + 1)
        if head or f.size == 0:
            return Response(b"", status_code=status, headers=headers)
        try:
            chunks = self.mirror.open(f, start, end, self.settings.chunk_size, self.settings.prefetch_chunks)
        except (ClientError, BotoCoreError) as exc:
            return self.bucket_failure(exc, snap.repo_id)
        return StreamingResponse(chunks, status_code=status, headers=headers)

    def pass_file(self, raw_path: str, request: Request, head: bool) -> Response:
        try:
            if head:
                answer = self.hub.head(raw_path)
                return self.pass_head(answer)
            answer, hub_headers = self.hub.stream(raw_path, request.headers.get("range"))
        except HubFailure as exc:
            return failure_response(exc)
        if answer.status_code >= 400:
            answer.read()
            answer.close()
            return failure_response(HubFailure.from_response(answer))
        headers = {k: v for k, v in answer.headers.items()
                   if k.lower() in ("content-length", "content-range", "accept-ranges", "content-type")}
        headers.update(hub_headers)
        return StreamingResponse(Hub.body(answer, self.settings.chunk_size), status_code=answer.status_code,
                                 headers=headers)

    def pass_head(self, answer) -> Response:
        keep = ("etag", "x-repo-commit", "x-linked-etag", "x-linked-size", "accept-ranges", "content-type")
        headers = {k: v for k, v in answer.headers.items() if k.lower() in keep}
        if answer.status_code >= 400:
            return failure_response(HubFailure.from_response(answer))
        if answer.is_redirect:
            location = answer.headers.get("location", "")
            location = location.removeprefix(self.settings.hf_endpoint)
            if location.startswith("/"):  # a renamed repo: the caller asks the gateway again
                return Response(b"", status_code=answer.status_code, headers={**headers, "Location": location})
            # The CDN: the gateway fetches from it on GET, so the caller sees the file here.
            size = answer.headers.get("x-linked-size")
            if size is None:
                return hub_error(502, None, "the Hub redirected without X-Linked-Size")
            return Response(b"", status_code=200, headers={**headers, "Content-Length": size})
        headers["Content-Length"] = answer.headers.get("content-length", "0")
        return Response(b"", status_code=answer.status_code, headers=headers)

    @staticmethod
    def valid_repo(repo_id: str) -> bool:
        if "/" not in repo_id:
            return bool(ROOT_REPO.fullmatch(repo_id)) and len(repo_id) <= 96
        try:
            validate_repo_id(repo_id)
        except ModelCacheError:
            return False
        return True

    @staticmethod
    def bucket_failure(exc: Exception, repo_id: str) -> Response:
        log.error("bucket read failed for %s: %s", repo_id, exc)
        return hub_error(502, None, f"the model cache bucket could not be read for {repo_id}; see the gateway log")

    # ---- operations ---------------------------------------------------------------------------

    def index(self, request: Request) -> Response:
        try:
            repos = self.mirror.cached_repos()
        except (ClientError, BotoCoreError) as exc:
            log.error("listing the bucket failed: %s", exc)
            repos = []
        items = "\n".join(f"<li><code>{html.escape(r)}</code></li>" for r in repos) or "<li>none</li>"
        allow = ", ".join(html.escape(p) for p in self.settings.allow_repos) or "none"
        base = html.escape(str(request.base_url).rstrip("/"))
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>hub-gateway</title></head><body>
<h1>hub-gateway {__version__}</h1>
<p>An in-cluster Hugging Face Hub API proxy (it holds the Hub token; teams call it with their own gateway
token) and a Hub mirror of the model-cache bucket. Upstream: <code>{html.escape(self.settings.hf_endpoint)}</code>.</p>
<p>Use it as a mirror: <code>HF_ENDPOINT={base}</code> (no token needed).</p>
<p>Passed through to the Hub when not cached: {allow}</p>
<h2>Cached repos</h2><ul>
{items}
</ul></body></html>"""
        return Response(page, media_type="text/html; charset=utf-8")

    def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    def readyz(self, request: Request) -> Response:
        """Ready when the bucket answers (checked at most every 10 s: probes must stay cheap)."""
        now = time.monotonic()
        if now - self._ready[0] > 10:
            try:
                self.mirror.check_bucket()
                self._ready = (now, True)
            except (ClientError, BotoCoreError) as exc:
                log.error("readiness: the bucket does not answer: %s", exc)
                self._ready = (now, False)
        if self._ready[1]:
            return PlainTextResponse("ready")
        return PlainTextResponse("the model cache bucket does not answer", status_code=503)


def _read_body(request: Request) -> bytes:
    """The request body, read from the sync endpoint; refused past MAX_BODY_BYTES, chunked or not."""

    async def limited() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise BadRequest(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    return anyio.from_thread.run(limited)


def create_app(settings: Settings, mirror: Mirror | None = None, hub: Hub | None = None) -> Starlette:
    gw = Gateway(settings, mirror, hub)
    routes = [
        Route("/", gw.index, methods=["GET"]),
        Route("/healthz", gw.healthz, methods=["GET"]),
        Route("/readyz", gw.readyz, methods=["GET"]),
        Route("/api/account", gw.account, methods=["GET"]),
        Route("/api/whoami-v2", gw.account, methods=["GET"]),
        Route("/api/repo", gw.micro_repo, methods=["POST", "DELETE", "PUT"]),
        Route("/api/repos/create", gw.hub_create, methods=["POST"]),
        Route("/api/repos/delete", gw.hub_delete, methods=["DELETE"]),
        Route("/api/{kind}/{repo:path}/settings", gw.hub_settings, methods=["PUT"]),
        Route("/api/models/{rest:path}", gw.model_api, methods=["GET"]),
        Route("/{rest:path}", gw.resolve, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.gateway = gw
    return app
