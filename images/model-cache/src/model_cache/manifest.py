"""The bucket's contract: the manifest (what "cached" means) and the refs (revision -> commit).

Everything that reads or writes these two documents lives here, so `ensure` (the writer),
`restore`, `status` and other services (the hub gateway serves cached snapshots from the same
bucket) agree on one format. The names and signatures below are a stable interface:

    read_manifest(client, s, layout, sha) -> dict | None
    resolve_cached_sha(client, s, layout) -> str | None
    write_manifest(client, s, layout, sha, files) -> dict
    write_ref(client, s, layout, sha) -> None
    covers(manifest, wanted) -> bool

`s` needs only `.bucket`, `.repo_id` and `.revision` (and, for `write_manifest`, `.allow_patterns`
and `.ignore_patterns`), so a caller without model-cache's full Settings can pass any object with
those attributes. The format is described in docs/model-cache.md ("Bucket layout").
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from . import __version__, s3
from .errors import IntegrityError
from .layout import COMMIT_SHA, SHA256, Layout, validate_file_path

SCHEMA = 1


class Target(Protocol):
    """What the manifest functions need to know: which bucket, which repo, which revision."""

    bucket: str
    repo_id: str
    revision: str


def read_manifest(client, s: Target, layout: Layout, sha: str) -> dict | None:
    """The manifest of ``repo@sha``, validated (files listed with safe paths), or None if absent.

    A manifest that exists but describes another repo/sha or is malformed raises IntegrityError:
    it must never be taken for "not cached" (ensure would overwrite) nor for "cached".
    """
    got = s3.get_json(client, s.bucket, layout.manifest_key(sha))
    if got is None:
        return None
    doc = got[0]
    if doc.get("sha") != sha or doc.get("repo") != s.repo_id or not isinstance(doc.get("files"), list):
        raise IntegrityError(f"manifest s3://{s.bucket}/{layout.manifest_key(sha)} does not describe "
                             f"{s.repo_id}@{sha}: delete it and run model-cache ensure again")
    for entry in doc["files"]:
        if not isinstance(entry, dict):
            raise IntegrityError(f"manifest s3://{s.bucket}/{layout.manifest_key(sha)} has a malformed file "
                                 "entry: delete it and run model-cache ensure again")
        validate_file_path(entry.get("path"), origin="the manifest")
    return doc


def resolve_cached_sha(client, s: Target, layout: Layout) -> str | None:
    """The sha a revision points to, from the bucket only (the ref object written by ensure)."""
    if COMMIT_SHA.fullmatch(s.revision):
        return s.revision
    got = s3.get_json(client, s.bucket, layout.ref_key(s.revision))
    if got is None:
        return None
    sha = got[0].get("sha")
    return sha if isinstance(sha, str) and COMMIT_SHA.fullmatch(sha) else None


def write_ref(client, s: Target, layout: Layout, sha: str) -> None:
    """Point the revision at ``sha`` (after the manifest: a ref never names an incomplete snapshot)."""
    if COMMIT_SHA.fullmatch(s.revision):
        return
    current = s3.get_json(client, s.bucket, layout.ref_key(s.revision))
    if current is not None and current[0].get("sha") == sha:
        return
    s3.put_json(client, s.bucket, layout.ref_key(s.revision),
                {"repo": s.repo_id, "revision": s.revision, "sha": sha, "updated": time.time()})


def write_manifest(client, s: Target, layout: Layout, sha: str, files: list[dict[str, Any]]) -> dict:
    """Write the manifest: call only after every listed object is uploaded and verified.

    Each file entry is ``{"path", "size", "sha256", "etag"}``; ``etag`` is the ETag S3 returned for
    the verified upload, which lets a later resume or an ETag-mode restore detect a replaced object.
    """
    for e in files:
        if not isinstance(e.get("sha256"), str) or not SHA256.fullmatch(e["sha256"]):
            raise IntegrityError(f"{e.get('path')}: no verified sha256 to put in the manifest")
    files = sorted(files, key=lambda e: e["path"])
    doc = {
        "schema": SCHEMA, "tool": "model-cache", "tool_version": __version__,
        "repo": s.repo_id, "revision": s.revision, "sha": sha, "created": time.time(),
        "allow_patterns": getattr(s, "allow_patterns", None), "ignore_patterns": getattr(s, "ignore_patterns", None),
        "files": files, "total_bytes": sum(int(e["size"]) for e in files),
    }
    s3.put_json(client, s.bucket, layout.manifest_key(sha), doc)
    return doc


def covers(manifest: dict, wanted: list) -> bool:
    """True if the manifest lists every wanted file (objects with .path, .size, .sha256) unchanged."""
    have = {e["path"]: e for e in manifest["files"]}
    for f in wanted:
        e = have.get(f.path)
        if e is None or (f.size is not None and e.get("size") != f.size):
            return False
        if f.sha256 is not None and e.get("sha256") != f.sha256:
            return False
    return True


__all__ = ["SCHEMA", "Target", "covers", "read_manifest", "resolve_cached_sha", "write_manifest", "write_ref"]
