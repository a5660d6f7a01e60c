"""A failing ensure stops its other uploads cleanly: one line, no traceback, nothing left open."""

from __future__ import annotations

import re

from .conftest import run_cli, small_repo


def test_a_shard_refused_while_small_uploads_are_in_flight_ends_in_one_line(hub, env, s3, bucket, s3_server):
    """Small files go through s3transfer's TransferManager while the big shard streams as multipart.
    When the shard fails, those in-flight uploads are cancelled. TransferManager.shutdown(cancel=True)
    cannot do that (it passes its message as the exception type: boto/s3transfer#143), so a failure
    that met an upload still in flight used to end in a TypeError traceback instead of the S3 error."""
    hub.add_repo(small_repo())
    s3_server.faults.add("PUT", "tokenizer.json", times=5, delay=3.0)   # a slow store: still uploading
    s3_server.faults.add("PUT", "model-00001", times=500, status=403, code="AccessDenied")
    try:
        proc = run_cli(["ensure"], env, timeout=90)
    finally:
        s3_server.faults.faults.clear()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and "TypeError" not in out, out
    errors = [ln for ln in proc.stderr.splitlines() if re.search(r"\bERROR\b", ln)]
    assert len(errors) == 1 and "AWS_ACCESS_KEY_ID" in errors[0], out
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not any(k.endswith("manifest.json") or "/refs/" in k for k in keys), keys
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
