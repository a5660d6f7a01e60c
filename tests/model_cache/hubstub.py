"""A local stand-in for the Hugging Face Hub, speaking the API huggingface_hub really calls.

- GET  /api/models/{repo}[/revision/{rev}][?blobs=true]  -> model info: sha + siblings
  (with blobs: size, blobId, lfs {oid, sha256, size, pointerSize})
- HEAD/GET /{repo}/resolve/{rev}/{path}
    LFS file: 302 to a CDN host (a second server, so Authorization is dropped like on the Hub)
              with X-Repo-Commit, X-Linked-Etag ("<sha256>"), X-Linked-Size, ETag (pointer oid)
    git file: 200 with ETag ("<git blob sha1>"), X-Repo-Commit, Content-Length, Range support
- GET  /cdn/{sha256}  -> the bytes, Range support (206 + Content-Range)
- errors carry X-Error-Code like the Hub: RepoNotFound (401/404), GatedRepo (403),
  RevisionNotFound, EntryNotFound.

It counts requests (api, head, get of file bytes per path) and can be told to slow down or fail.
Files are bytes in memory or paths on disk (sent with sendfile, for the benchmark).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

LFS_THRESHOLD = 1024  # files at least this big are "in LFS" (the Hub uses 10 MB; small keeps tests small)


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class StubFile:
    path: str
    data: bytes | None = None
    disk: Path | None = None
    lfs: bool | None = None
    size: int = 0
    sha256: str = ""
    oid: str = ""

    def __post_init__(self):
        if self.disk is not None:
            self.size = self.disk.stat().st_size
            if not self.sha256:
                h = hashlib.sha256()
                with open(self.disk, "rb") as fh:
                    while b := fh.read(8 << 20):
                        h.update(b)
                self.sha256 = h.hexdigest()
            if self.lfs is None:
                self.lfs = True
            self.oid = self.oid or hashlib.sha1(self.sha256.encode()).hexdigest()
        else:
            assert self.data is not None
            self.size = len(self.data)
            self.sha256 = self.sha256 or hashlib.sha256(self.data).hexdigest()
            if self.lfs is None:
                self.lfs = self.size >= LFS_THRESHOLD
            self.oid = git_oid(self.data) if not self.lfs else hashlib.sha1(self.sha256.encode()).hexdigest()


@dataclass
class StubRepo:
    repo_id: str
    files: list[StubFile]
    sha: str = ""
    refs: dict[str, str] = field(default_factory=dict)
    token: str | None = None        # private: requests need "Authorization: Bearer <token>"
    gated: bool = False             # any token but the right one -> 403 GatedRepo
    extra_siblings: list[str] = field(default_factory=list)  # names listed but not served (e.g. "../evil")

    def __post_init__(self):
        if not self.sha:
            h = hashlib.sha1(self.repo_id.encode())
            for f in self.files:
                h.update(f.path.encode() + f.sha256.encode())
            self.sha = h.hexdigest()
        self.refs.setdefault("main", self.sha)


class HubStub:
    def __init__(self):
        self.repos: dict[str, StubRepo] = {}
        self.counts: Counter = Counter()
        self.lock = threading.Lock()
        self.delay_per_mib = 0.0          # seconds of sleep per MiB served (slow Hub)
        self.fail_next_gets: int = 0      # next N file GETs answer 500
        self.stall_seconds: float = 0.0   # file GETs send headers, then nothing for this long
        # Faults of ranged GETs that do not start at byte 0 (the later ranges of a parallel download):
        self.fail_next_ranges: int = 0    # answer 500
        self.cut_next_ranges: int = 0     # send half the bytes, then close the connection
        self.corrupt_next_ranges: int = 0  # flip one byte of the body
        self.ignore_range: bool = False   # answer every GET with the whole file (200), as some CDNs do
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.url = ""
        self.cdn_url = ""

    # --- repos -------------------------------------------------------------------------------
    def add_repo(self, repo: StubRepo) -> StubRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def file_gets(self, repo_id: str | None = None) -> Counter:
        with self.lock:
            return Counter({k[2]: v for k, v in self.counts.items()
                            if k[0] == "get" and (repo_id is None or k[1] == repo_id)})

    def range_gets(self, repo_id: str | None = None) -> Counter:
        """Ranged GETs that did not start at byte 0, per path."""
        with self.lock:
            return Counter({k[2]: v for k, v in self.counts.items()
                            if k[0] == "range" and (repo_id is None or k[1] == repo_id)})

    def count(self, *key) -> None:
        with self.lock:
            self.counts[key] += 1

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> HubStub:
        hub = self

        class Handler(_Handler):
            stub = hub

        for role in ("hub", "cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            server.role = role  # type: ignore[attr-defined]
            t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            t.start()
            self._servers.append(server)
            self._threads.append(t)
        self.url = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stub: HubStub

    def log_message(self, fmt, *args):  # quiet
        pass

    # --- helpers -----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
        self.send_response(status)
        hdrs = {"Content-Length": str(len(body))}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, head: bool = False):
        body = json.dumps({"error": message}).encode()
        self._send(status, body, {"Content-Type": "application/json", "X-Error-Code": code,
                                  "X-Error-Message": message}, head=head)

    def _auth(self, repo: StubRepo, head: bool) -> bool:
        if repo.token is None:
            return True
        got = self.headers.get("Authorization", "")
        if got == f"Bearer {repo.token}":
            return True
        if repo.gated and got:
            self._error(403, "GatedRepo", f"Access to model {repo.repo_id} is restricted.", head)
        elif repo.gated:
            self._error(401, "GatedRepo", f"Access to model {repo.repo_id} is restricted. You must be authenticated.", head)
        else:
            self._error(401, "RepoNotFound", "Repository not found", head)
        return False

    # --- routes ------------------------------------------------------------------------------
    def do_HEAD(self):
        self._route(head=True)

    def do_GET(self):
        self._route(head=False)

    def _route(self, head: bool):
        url = urlparse(self.path)
        path = unquote(url.path)
        try:
            if path.startswith("/cdn/"):
                return self._cdn(path[len("/cdn/"):], head)
            if self.server.role != "hub":  # type: ignore[attr-defined]
                return self._error(404, "NotFound", "no such path", head)
            if path.startswith("/api/models/"):
                return self._api(path[len("/api/models/"):], parse_qs(url.query), head)
            m = re.match(r"^/((?:[^/]+/)?[^/]+?)/resolve/([^/]+)/(.+)$", url.path)  # owner/name or a root-level name
            if m:
                return self._resolve(unquote(m.group(1)), unquote(m.group(2)), unquote(m.group(3)), head)
            self._error(404, "NotFound", "no such path", head)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _tree(self, repo_id: str, rev: str, query: dict, head: bool):
        """GET /api/models/{repo}/tree/{rev}[/{dir}]?recursive=true (snapshot_download lists files this way)."""
        stub = self.stub
        stub.count("api-tree", repo_id, rev)
        repo = stub.repos.get(repo_id)
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found", head)
        if not self._auth(repo, head):
            return
        rev, _, sub = rev.partition("/")
        sha = repo.refs.get(rev, rev if rev == repo.sha else None)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        base = sub.strip("/") + "/" if sub.strip("/") else ""
        entries, dirs = [], set()
        for f in repo.files:
            if not f.path.startswith(base):
                continue
            rest = f.path[len(base):]
            parts = rest.split("/")
            for i in range(1, len(parts)):
                d = base + "/".join(parts[:i])
                if d not in dirs and (recursive or i == 1):
                    dirs.add(d)
                    entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": d})
            if recursive or len(parts) == 1:
                e = {"type": "file", "oid": f.oid, "size": f.size, "path": f.path}
                if f.lfs:
                    e["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
                entries.append(e)
        self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, head)

    def _api(self, rest: str, query: dict, head: bool):
        stub = self.stub
        m = re.match(r"^((?:[^/]+/)?[^/]+?)/tree/(.+)$", rest)
        if m:
            return self._tree(m.group(1), m.group(2), query, head)
        if "/revision/" in rest:
            repo_id, rev = rest.split("/revision/", 1)
        else:
            repo_id, rev = rest, "main"
        stub.count("api", repo_id, rev)
        repo = stub.repos.get(repo_id)
        if repo is None:
            return self._error(401 if not self.headers.get("Authorization") else 404, "RepoNotFound",
                               "Repository not found", head)
        if not self._auth(repo, head):
            return
        sha = repo.refs.get(rev, rev if rev == repo.sha else None)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for f in repo.files:
            sib: dict = {"rfilename": f.path}
            if blobs:
                sib["size"] = f.size
                sib["blobId"] = f.oid
                if f.lfs:
                    sib["lfs"] = {"oid": f.sha256, "sha256": f.sha256, "size": f.size, "pointerSize": 134}
            siblings.append(sib)
        for name in repo.extra_siblings:
            sib = {"rfilename": name}
            if blobs:
                sib.update(size=3, blobId="0" * 40)
            siblings.append(sib)
        doc = {"_id": "0" * 24, "id": repo.repo_id, "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0],
               "sha": sha, "lastModified": "2026-01-01T00:00:00.000Z", "private": repo.token is not None,
               "gated": "manual" if repo.gated else False, "disabled": False, "downloads": 0, "likes": 0,
               "tags": [], "library_name": "transformers", "siblings": siblings,
               "createdAt": "2026-01-01T00:00:00.000Z", "usedStorage": sum(f.size for f in repo.files)}
        self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"}, head)

    def _resolve(self, repo_id: str, rev: str, path: str, head: bool):
        stub = self.stub
        repo = stub.repos.get(repo_id)
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found", head)
        if not self._auth(repo, head):
            return
        sha = repo.refs.get(rev, rev if rev == repo.sha else None)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
        f = next((x for x in repo.files if x.path == path), None)
        if f is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {rev}", head)
        stub.count("head" if head else "resolve", repo_id, path)
        common = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes", "Vary": "Origin, Accept-Encoding"}
        if f.lfs:
            location = f"{stub.cdn_url}/cdn/{f.sha256}?repo={quote(repo_id, safe='')}&path={quote(path, safe='')}"
            headers = dict(common, **{"Location": location, "X-Linked-Etag": f'"{f.sha256}"',
                                      "X-Linked-Size": str(f.size), "ETag": f'"{f.oid}"',
                                      "Content-Type": "text/plain; charset=utf-8"})
            return self._send(302, b"", headers, head)
        self._serve(f, repo_id, path, head, dict(common, ETag=f'"{f.oid}"'))

    def _cdn(self, rest: str, head: bool):
        stub = self.stub
        sha256 = rest.split("?", 1)[0]
        query = parse_qs(urlparse(self.path).query)
        repo_id = query.get("repo", [""])[0]
        path = query.get("path", [""])[0]
        if self.headers.get("Authorization"):
            stub.count("cdn-auth-leak", repo_id, path)
        for repo in stub.repos.values():
            for f in repo.files:
                if f.sha256 == sha256:
                    return self._serve(f, repo_id or repo.repo_id, path or f.path, head, {"ETag": f'"{f.sha256}"'})
        self._error(404, "NotFound", "no such blob", head)

    def _serve(self, f: StubFile, repo_id: str, path: str, head: bool, headers: dict):
        stub = self.stub
        if not head:
            with stub.lock:
                fail = stub.fail_next_gets > 0
                if fail:
                    stub.fail_next_gets -= 1
            if fail:
                return self._error(500, "InternalError", "injected failure", head)
        start, end = 0, f.size - 1
        status = 200
        rng = None if stub.ignore_range else self.headers.get("Range")
        later = bool(rng) and not re.match(r"bytes=0-", rng.strip())
        cut = corrupt = False
        if not head:
            # "get" = fetches of the file (requests from byte 0); "range" = every other ranged GET
            stub.count("range" if later else "get", repo_id, path)
            if later:
                with stub.lock:
                    if stub.fail_next_ranges > 0:
                        stub.fail_next_ranges -= 1
                        fail = True
                    elif stub.cut_next_ranges > 0:
                        stub.cut_next_ranges -= 1
                        cut = True
                    elif stub.corrupt_next_ranges > 0:
                        stub.corrupt_next_ranges -= 1
                        corrupt = True
                if fail:
                    return self._error(500, "InternalError", "injected range failure", head)
        if rng and f.size:
            m = re.match(r"bytes=(\d*)-(\d*)$", rng.strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), f.size - 1) if m.group(2) else f.size - 1
                else:
                    start = max(f.size - int(m.group(2)), 0)
                if start > end:
                    return self._send(416, b"", {"Content-Range": f"bytes */{f.size}"}, head)
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        length = max(end - start + 1, 0)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if head or length == 0:
            return
        if stub.stall_seconds:
            self.wfile.flush()
            time.sleep(stub.stall_seconds)
            return
        step = 1 << 20
        if cut or corrupt:
            body = bytearray(f.data[start:end + 1] if f.data is not None else f.disk.read_bytes()[start:end + 1])
            if corrupt:
                body[len(body) // 2] ^= 0xFF
                self.wfile.write(bytes(body))
            else:
                self.wfile.write(bytes(body[:len(body) // 2]))
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if f.disk is not None and stub.delay_per_mib == 0:
            with open(f.disk, "rb") as fh:
                offset, left = start, length
                while left > 0:
                    sent = os.sendfile(self.connection.fileno(), fh.fileno(), offset, min(left, 64 << 20))
                    if sent <= 0:
                        break
                    offset += sent
                    left -= sent
            return
        view = memoryview(f.data) if f.data is not None else None
        pos = start
        while pos <= end:
            n = min(step, end - pos + 1)
            if view is not None:
                chunk = view[pos:pos + n]
            else:
                with open(f.disk, "rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read(n)
            self.wfile.write(chunk)
            pos += n
            if stub.delay_per_mib:
                time.sleep(stub.delay_per_mib * n / (1 << 20))
