"""status: what the bucket holds for this model, as JSON (never downloads anything)."""

from __future__ import annotations

import json
import math
import sys
import time

from . import s3
from .config import Settings
from .layout import Layout
from .manifest import read_manifest, resolve_cached_sha


def status(s: Settings, *, ask_hub: bool = False) -> int:
    client = s3.make_client(s)
    layout = Layout(s.prefix, s.repo_id)
    s3.check_bucket(client, s)  # a missing bucket is an error, never "cached": false
    sha = resolve_cached_sha(client, s, layout)
    source = "bucket ref" if sha else None
    if sha is None and ask_hub:
        from . import hub

        try:
            sha = hub.resolve(s).sha
            source = "hub"
        except Exception as exc:  # noqa: BLE001 - status reports; it does not fail because of the Hub
            sha = None
            source = f"unresolved ({str(exc).splitlines()[0][:200]})"
    out: dict = {"repo": s.repo_id, "revision": s.revision, "bucket": s.bucket, "prefix": s.prefix,
                 "sha": sha, "sha_source": source, "cached": False, "files": 0, "bytes": 0, "lease": None,
                 "lease_holder": None}
    if sha:
        manifest = read_manifest(client, s, layout, sha)
        if manifest is not None:
            out.update(cached=True, files=len(manifest["files"]),
                       bytes=sum(int(e.get("size", 0)) for e in manifest["files"]),
                       manifest=f"s3://{s.bucket}/{layout.manifest_key(sha)}",
                       created=manifest.get("created"), tool_version=manifest.get("tool_version"),
                       file_list=[{"path": e["path"], "size": e.get("size"), "sha256": e.get("sha256")}
                                  for e in manifest["files"]])
        lease = s3.get_json(client, s.bucket, layout.lease_key(sha), invalid_ok=True)
        if lease is not None:
            doc = lease[0]
            try:
                expires = float(doc.get("expires", 0) or 0)
            except (TypeError, ValueError):
                expires = 0.0
            out["lease"] = {"holder": doc.get("holder"), "expires": doc.get("expires"),
                            "expired": not expires < math.inf or expires < time.time(),
                            "readable": bool(doc)}
            out["lease_holder"] = doc.get("holder")
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    sys.stdout.flush()
    return 0
