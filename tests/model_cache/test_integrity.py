"""Corrupt bytes are never marked complete, and the order of writes is what the docs promise.

Each test observes the step it guards (the server's request log, the bytes in the bucket, the
marker's per-file record), so the test fails when that one step breaks, not only the end state.
"""

from __future__ import annotations

import json
import os

from .conftest import run_cli, small_repo, tree

SHARD = "model-00002-of-00002.safetensors"   # 3 MiB LFS file
MARKER = ".model-cache-complete.json"


def _prefix(repo) -> str:
    return f"models/{repo.repo_id}/{repo.sha}/"


def _damage_keeping_metadata(s3, bucket, key: str) -> str:
    """Flip one byte of an object, keeping its size and x-amz-meta-* (what a faulty disk or a bad copy
    leaves); returns the new ETag."""
    obj = s3.get_object(Bucket=bucket, Key=key)
    data = bytearray(obj["Body"].read())
    data[len(data) // 2] ^= 0xFF
    return s3.put_object(Bucket=bucket, Key=key, Body=bytes(data), Metadata=obj["Metadata"])["ETag"]


def _manifest(s3, bucket, repo) -> dict:
    return json.loads(s3.get_object(Bucket=bucket, Key=f"{_prefix(repo)}manifest.json")["Body"].read())


def test_resume_rehashes_an_object_whose_metadata_survived_damage(hub, env, s3, bucket, tmp_path):
    """An interrupted run (objects, no manifest) with one damaged object: resume must not trust its metadata."""
    repo = hub.add_repo(small_repo())
    assert run_cli(["ensure"], env).returncode == 0
    key = f"{_prefix(repo)}{SHARD}"
    _damage_keeping_metadata(s3, bucket, key)
    s3.delete_object(Bucket=bucket, Key=f"{_prefix(repo)}manifest.json")   # as if killed before the manifest
    s3.delete_object(Bucket=bucket, Key=f"models/{repo.repo_id}/refs/main")
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stderr and "damaged" in proc.stderr
    gets = hub.file_gets()
    assert gets[SHARD] == 2                       # fetched again from the Hub ...
    assert gets["config.json"] == 1               # ... the intact ones reused
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == repo.files[3].data
    entry = {e["path"]: e for e in _manifest(s3, bucket, repo)["files"]}[SHARD]
    assert entry["etag"] == s3.head_object(Bucket=bucket, Key=key)["ETag"]
    dest = tmp_path / "dest"
    assert run_cli(["restore", "--dest", str(dest)], env).returncode == 0
    assert tree(dest)[SHARD] == repo.files[3].data


def test_an_etag_restore_never_vouches_for_sha256(hub, env, s3, bucket, tmp_path):
    """The rest of the chain: a manifest whose ETag matches damaged bytes (what a trusting resume wrote)
    fools an ETag restore, which cannot know; but its marker must not claim sha256, and a later sha256
    restore must re-hash the file and refuse."""
    repo = hub.add_repo(small_repo())
    assert run_cli(["ensure"], env).returncode == 0
    key = f"{_prefix(repo)}{SHARD}"
    damaged_etag = _damage_keeping_metadata(s3, bucket, key)
    manifest = _manifest(s3, bucket, repo)
    for e in manifest["files"]:
        if e["path"] == SHARD:
            e["etag"] = damaged_etag
    s3.put_object(Bucket=bucket, Key=f"{_prefix(repo)}manifest.json", Body=json.dumps(manifest))

    dest = tmp_path / "dest"
    proc = run_cli(["restore", "--dest", str(dest), "--verify", "etag"], env)
    assert proc.returncode == 0, proc.stderr
    marker = {e["path"]: e for e in json.loads((dest / MARKER).read_text())["files"]}
    assert marker[SHARD]["checked"] == "size+etag" and "sha256" not in marker[SHARD]

    proc = run_cli(["restore", "--dest", str(dest)], env)
    assert proc.returncode == 1, proc.stderr
    assert SHARD in proc.stderr and "sha256" in proc.stderr
    assert not (dest / MARKER).exists()           # not complete


def test_restore_rehashes_a_same_size_local_corruption(hub, env, tmp_path):
    """A file already in --dest with the right size but wrong bytes is replaced, also when its mtime was
    put back (the marker's record is tied to ctime and inode, which a write always changes)."""
    repo = hub.add_repo(small_repo())
    assert run_cli(["ensure"], env).returncode == 0
    dest = tmp_path / "dest"
    assert run_cli(["restore", "--dest", str(dest)], env).returncode == 0
    for name, keep_mtime in (("config.json", False), (SHARD, True)):
        path = dest / name
        st = path.stat()
        data = bytearray(path.read_bytes())
        data[0] ^= 0xFF
        path.write_bytes(bytes(data))                        # same size
        if keep_mtime:
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        proc = run_cli(["restore", "--dest", str(dest)], env)
        assert proc.returncode == 0, proc.stderr
        assert path.read_bytes() == {f.path: f.data for f in repo.files}[name], name


def test_lease_is_created_with_a_conditional_write(env, s3_server, bucket):
    """Every write that creates or takes over the lease is conditional: the server sees If-None-Match: *
    (create) or If-Match: <etag> (takeover, heartbeat). The settle-and-reread alone would hide a missing
    condition in a race test, so the headers themselves are asserted."""
    import threading
    import time
    from types import SimpleNamespace

    from model_cache import config, s3
    from model_cache.lease import Lease

    settings = config.load(SimpleNamespace(), "status", environ=dict(env, MODEL_CACHE_LEASE_TTL="1"))
    client = s3.make_client(settings)
    log = s3_server.faults.record()
    key = "models/x/leases/headers.json"
    leases = [Lease(client, settings, key) for _ in range(4)]
    barrier = threading.Barrier(len(leases))
    results = [False] * len(leases)

    def go(i: int) -> None:
        barrier.wait()
        results[i] = leases[i].try_acquire()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(leases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.8)  # one heartbeat (ttl/3)
    for lease in leases:
        lease.release()
    s3_server.faults.recording = False
    assert results.count(True) == 1
    puts = [r for r in list(log) if r.method == "PUT" and r.path.endswith("/leases/headers.json")]
    creates = [r for r in puts if "if-match" not in r.headers]
    renewals = [r for r in puts if "if-match" in r.headers]
    assert creates and all(r.headers.get("if-none-match") == "*" for r in creates), puts
    assert renewals, "the heartbeat renews the lease with If-Match"
    deletes = [r for r in list(log) if r.method == "DELETE" and r.path.endswith("/leases/headers.json")]
    assert deletes and all("if-match" in r.headers for r in deletes)


def test_manifest_is_written_after_every_file_and_the_ref_after_the_manifest(hub, env, s3_server, bucket):
    """Observed at the server: the manifest PUT starts only after every object write has completed
    (single PUTs and multipart completions), and the ref PUT only after the manifest's."""
    repo = hub.add_repo(small_repo())
    log = s3_server.faults.record()
    proc = run_cli(["ensure"], env)
    s3_server.faults.recording = False
    assert proc.returncode == 0, proc.stderr
    prefix = f"/{bucket}/{_prefix(repo)}"
    writes = [r for r in list(log) if r.method in ("PUT", "POST")]
    manifest = [r for r in writes if r.path == f"{prefix}manifest.json"]
    ref = [r for r in writes if r.path == f"/{bucket}/models/{repo.repo_id}/refs/main"]
    file_done = [r for r in writes if r.path.startswith(prefix) and r.path != f"{prefix}manifest.json"
                 and (r.method == "PUT" and "uploadId" not in r.query or r.method == "POST" and "uploadId" in r.query)]
    objects = {r.path[len(prefix):] for r in file_done}
    assert objects == {f.path for f in repo.files}, objects
    assert len(manifest) == 1 and len(ref) == 1
    assert max(r.done for r in file_done) < manifest[0].seq
    assert manifest[0].done < ref[0].seq
