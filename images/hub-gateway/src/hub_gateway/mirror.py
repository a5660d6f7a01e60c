"""The bucket seen as the Hub: cached snapshots as model info, tree listings and file bytes.

The layout (keys, manifest, refs) belongs to model-cache and is read with its own code; this
module only turns a manifest into the documents and headers huggingface_hub reads:

- model info (``/api/models/{repo}[/revision/{rev}]``): ``sha`` and ``siblings``; with
  ``?blobs=true`` each sibling's ``size``, ``blobId`` and ``lfs {sha256, size, pointerSize}``;
- tree (``/api/models/{repo}/tree/{rev}``): ``type/path/size/oid`` and ``lfs {oid, size, pointerSize}``;
- resolve: ``ETag``/``X-Linked-Etag`` (the sha256), ``X-Linked-Size``, ``X-Repo-Commit``.

Every cached file is presented as an LFS file: the manifest records each file's sha256 (not its
git blob id), and an LFS file's ``blobId`` is the git id of its pointer file, which follows from
the sha256 and the size. huggingface_hub then names the cached blob by its sha256, as for any
LFS file on the Hub.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from model_cache import s3 as mc_s3
from model_cache.config import Settings as StoreSettings
from model_cache.errors import ModelCacheError
from model_cache.layout import COMMIT_SHA, Layout, validate_repo_id
from model_cache.manifest import read_manifest, resolve_cached_sha

log = logging.getLogger("hub_gateway.mirror")

REF_TTL_SECONDS = 30.0
"""How long a branch/tag -> sha lookup is reused (a new ensure of ``main`` shows within this time)."""
MANIFEST_CACHE_SIZE = 256
"""Manifests are immutable per commit; this many are kept in memory (each is a few KiB)."""


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class CachedFile:
    path: str
    size: int
    sha256: str
    key: str

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size))

    @property
    def blob_id(self) -> str:
        return git_blob_id(lfs_pointer(self.sha256, self.size))


@dataclass(frozen=True)
class Snapshot:
    repo_id: str
    sha: str
    created: float
    files: dict[str, CachedFile]

    def model_info(self, blobs: bool) -> dict:
        siblings = []
        for f in self.files.values():
            sibling: dict = {"rfilename": f.path}
            if blobs:
                sibling.update(size=f.size, blobId=f.blob_id,
                               lfs={"sha256": f.sha256, "size": f.size, "pointerSize": f.pointer_size})
            siblings.append(sibling)
        stamp = datetime.fromtimestamp(self.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        owner = self.repo_id.split("/", 1)[0]
        return {
            "_id": self.sha[:24], "id": self.repo_id, "modelId": self.repo_id, "author": owner,
            "sha": self.sha, "lastModified": stamp, "createdAt": stamp, "private": False, "gated": False,
            "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
            "usedStorage": sum(f.size for f in self.files.values()),
        }

    def tree(self, directory: str, recursive: bool) -> list[dict] | None:
        """Entries under ``directory`` ('' = root), like the Hub's tree API; None if no such directory."""
        base = directory.strip("/")
        prefix = f"{base}/" if base else ""
        entries: list[dict] = []
        seen_dirs: set[str] = set()
        for f in self.files.values():
            if not f.path.startswith(prefix):
                continue
            parts = f.path[len(prefix):].split("/")
            for depth in range(1, len(parts)):
                if depth > 1 and not recursive:
                    break
                d = prefix + "/".join(parts[:depth])
                if d not in seen_dirs:
                    seen_dirs.add(d)
                    entries.append({"type": "directory", "oid": git_blob_id(d.encode()), "size": 0, "path": d})
            if recursive or len(parts) == 1:
                entries.append({"type": "file", "oid": f.blob_id, "size": f.size, "path": f.path,
                                "lfs": {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}})
        if base and not entries:
            return None
        return entries


class Mirror:
    """Reads cached snapshots from the bucket (one boto3 client, thread-safe, shared by requests)."""

    def __init__(self, store: StoreSettings, client=None):
        self.store = store
        self.client = client if client is not None else mc_s3.make_client(store)
        self._lock = threading.Lock()
        self._refs: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._manifests: OrderedDict[tuple[str, str], Snapshot] = OrderedDict()

    @staticmethod
    def cacheable(repo_id: str) -> bool:
        """model-cache stores owner/name repos only; a root-level id (gpt2) is never in the bucket."""
        try:
            validate_repo_id(repo_id)
        except ModelCacheError:
            return False
        return True

    def _settings(self, repo_id: str, revision: str) -> StoreSettings:
        return replace(self.store, repo_id=repo_id, revision=revision)

    def resolve_sha(self, repo_id: str, revision: str) -> str | None:
        if COMMIT_SHA.fullmatch(revision):
            return revision
        now = time.monotonic()
        with self._lock:
            hit = self._refs.get((repo_id, revision))
        if hit is not None and now - hit[0] < REF_TTL_SECONDS:
            return hit[1]
        layout = Layout(self.store.prefix, repo_id)
        sha = resolve_cached_sha(self.client, self._settings(repo_id, revision), layout)
        with self._lock:
            self._refs[(repo_id, revision)] = (now, sha)
            if len(self._refs) > 4 * MANIFEST_CACHE_SIZE:
                self._refs.clear()
        return sha

    def snapshot(self, repo_id: str, revision: str) -> Snapshot | None:
        """The complete cached snapshot of repo@revision, or None when the bucket has none."""
        if not self.cacheable(repo_id):
            return None
        sha = self.resolve_sha(repo_id, revision)
        if sha is None:
            return None
        with self._lock:
            if (repo_id, sha) in self._manifests:
                self._manifests.move_to_end((repo_id, sha))
                return self._manifests[(repo_id, sha)]
        layout = Layout(self.store.prefix, repo_id)
        doc = read_manifest(self.client, self._settings(repo_id, revision), layout, sha)
        if doc is None:
            return None  # not cached (yet): not remembered, an ensure may finish any moment
        files = {}
        for entry in doc["files"]:
            path = entry["path"]
            files[path] = CachedFile(path, int(entry["size"]), str(entry["sha256"]), layout.file_key(sha, path))
        snap = Snapshot(repo_id, sha, float(doc.get("created") or 0.0), files)
        with self._lock:
            self._manifests[(repo_id, sha)] = snap
            while len(self._manifests) > MANIFEST_CACHE_SIZE:
                self._manifests.popitem(last=False)
        return snap

    def cached_repos(self, limit: int = 500) -> list[str]:
        """owner/name of every repo with at least one ref in the bucket (for the index page)."""
        repos: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = self.store.prefix
        for page in paginator.paginate(Bucket=self.store.bucket, Prefix=prefix, Delimiter="/"):
            for owner in page.get("CommonPrefixes", []):
                for sub in paginator.paginate(Bucket=self.store.bucket, Prefix=owner["Prefix"], Delimiter="/"):
                    for name in sub.get("CommonPrefixes", []):
                        repos.append(name["Prefix"][len(prefix):].rstrip("/"))
                        if len(repos) >= limit:
                            return repos
        return repos

    def check_bucket(self) -> None:
        self.client.head_bucket(Bucket=self.store.bucket)

    def open(self, f: CachedFile, start: int, end: int, chunk_size: int, prefetch: int = 2) -> Iterator[bytes]:
        """The bytes start..end (inclusive) of a cached file, streamed from S3 in chunks.

        The GET is sent before the first chunk is yielded, so an S3 error surfaces before the
        response headers are sent. ``prefetch`` chunks are read ahead by a thread, so reading from
        S3 overlaps with sending to the client (memory: a few chunks per download).
        """
        kwargs = {"Bucket": self.store.bucket, "Key": f.key}
        if start > 0 or end < f.size - 1:
            kwargs["Range"] = f"bytes={start}-{end}"
        body = self.client.get_object(**kwargs)["Body"]
        if prefetch <= 0:
            return _direct(body, chunk_size)
        return _prefetched(body, chunk_size, prefetch)


_END = object()


def _direct(body, chunk_size: int) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


def _prefetched(body, chunk_size: int, depth: int) -> Iterator[bytes]:
    """The body's chunks, read ahead by a thread (at most ``depth`` waiting). Stops reading when
    the consumer goes away (client disconnect: the generator is closed)."""
    pending: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            for chunk in body.iter_chunks(chunk_size):
                if not put(chunk):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer, which raises it)
            put(exc)
        finally:
            body.close()

    threading.Thread(target=reader, name="s3-prefetch", daemon=True).start()
    try:
        while True:
            item = pending.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
