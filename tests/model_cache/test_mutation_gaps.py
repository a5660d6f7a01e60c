"""Behaviours a mutation run (scripts/mutation.sh, docs/testing.md) showed no other test pinned.

In-process against the real S3 server (moto on loopback): what restore re-checks before it trusts a
local file, and when ensure answers "cached". The lease's wire-level tests are in test_lease.py, the
manifest's own in test_manifest.py.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from model_cache import config
from model_cache.errors import NotCachedError
from model_cache.restore import restore

from .conftest import run_cli, small_repo, tree


def _settings(env: dict, command: str = "status", **extra: str):
    return config.load(SimpleNamespace(), command, environ=dict(env, **extra))


# --- restore: what it re-checks before it trusts a local file ---------------------------------------------

@pytest.fixture
def cached(hub, env):
    """A snapshot ensure'd into the bucket (the real CLI); the Hub is stopped, restore must not need it."""
    repo = hub.add_repo(small_repo())
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    hub.stop()
    return repo


def _restore(env: dict, dest: Path, **extra: str) -> int:
    return restore(_settings(env, "restore", **extra), dest)


def _same_size_garbage(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(bytes(b ^ 0xFF for b in data[:64]) + data[64:])


def test_restore_replaces_a_same_size_corruption(cached, env, tmp_path):
    dest = tmp_path / "dest"
    assert _restore(env, dest) == 0
    want = {f.path: f.data for f in cached.files}
    # The size matches and the mtime changed: only re-hashing finds it.
    _same_size_garbage(dest / "tokenizer.json")
    assert _restore(env, dest) == 0
    assert {p: b for p, b in tree(dest).items() if p in want} == want


def test_restore_rehashes_files_it_did_not_write_itself(cached, env, tmp_path):
    dest = tmp_path / "dest"
    assert _restore(env, dest) == 0
    (dest / ".model-cache-complete.json").unlink()  # no record: nothing is trusted on size alone
    _same_size_garbage(dest / "model-00002-of-00002.safetensors")
    untouched = (dest / "config.json").stat().st_mtime_ns
    assert _restore(env, dest) == 0
    assert (dest / "model-00002-of-00002.safetensors").read_bytes() == cached.files[3].data
    assert (dest / "config.json").stat().st_mtime_ns == untouched  # correct files are verified, not rewritten


def test_restore_writes_a_marker_that_lists_every_file(cached, env, tmp_path):
    dest = tmp_path / "dest"
    assert _restore(env, dest) == 0
    marker = json.loads((dest / ".model-cache-complete.json").read_text())
    assert marker["repo"] == cached.repo_id and marker["sha"] == cached.sha and marker["revision"] == "main"
    assert marker["verify"] == "sha256"
    by_path = {e["path"]: e for e in marker["files"]}
    assert [e["path"] for e in marker["files"]] == sorted(by_path)
    for f in cached.files:
        assert by_path[f.path]["size"] == f.size and by_path[f.path]["sha256"] == f.sha256
        assert by_path[f.path]["mtime_ns"] == (dest / f.path).stat().st_mtime_ns
    assert not list(dest.rglob("*.model-cache-partial")) and not (dest / ".model-cache-complete.json.tmp").exists()


def test_a_marker_of_another_snapshot_is_not_trusted(cached, env, tmp_path):
    dest = tmp_path / "dest"
    assert _restore(env, dest) == 0
    marker = dest / ".model-cache-complete.json"
    doc = json.loads(marker.read_text())
    _same_size_garbage(dest / "config.json")
    # A marker that vouches for the damaged file, but for another repo: it must not be believed.
    for entry in doc["files"]:
        entry["mtime_ns"] = (dest / entry["path"]).stat().st_mtime_ns
    marker.write_text(json.dumps(dict(doc, repo="other/model")))
    assert _restore(env, dest) == 0
    assert (dest / "config.json").read_bytes() == cached.files[0].data


def test_restore_of_an_uncached_revision_names_the_fix(hub, env, tmp_path):
    hub.add_repo(small_repo())
    with pytest.raises(NotCachedError, match=r"acme/tiny-model@main is not cached in s3://.*no ref for this "
                                             r"revision.*run `model-cache ensure` first"):
        _restore(env, tmp_path / "dest")
    assert not (tmp_path / "dest" / ".model-cache-complete.json").exists()


def test_restore_selects_files_by_pattern(cached, env, tmp_path):
    dest = tmp_path / "dest"
    assert _restore(env, dest, MODEL_IGNORE_PATTERNS="*.safetensors") == 0
    assert set(tree(dest)) == {".model-cache-complete.json", "config.json", "tokenizer.json",
                               "nested/dir/extra.bin", "empty.txt"}


# --- ensure's manifest step ------------------------------------------------------------------------------

WEIGHTS = "model-00002-of-00002.safetensors"  # an LFS file: the Hub lists its size and sha256


def _manifest_key(repo) -> str:
    return f"models/{repo.repo_id}/{repo.sha}/manifest.json"


def test_a_warm_ensure_writes_nothing(hub, env, s3, bucket):
    repo = hub.add_repo(small_repo())
    assert run_cli(["ensure"], env).returncode == 0
    before = s3.head_object(Bucket=bucket, Key=_manifest_key(repo))["ETag"]
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    # A complete manifest that covers every wanted file is the whole answer: no lease, no new manifest.
    assert s3.head_object(Bucket=bucket, Key=_manifest_key(repo))["ETag"] == before
    assert "cached: s3://" in proc.stderr and "holding the download lease" not in proc.stderr


@pytest.mark.parametrize("field", ["size", "sha256"])
def test_a_manifest_that_disagrees_with_the_hub_is_refilled(hub, env, s3, bucket, field: str):
    repo = hub.add_repo(small_repo())
    assert run_cli(["ensure"], env).returncode == 0
    key = _manifest_key(repo)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    entry = next(e for e in manifest["files"] if e["path"] == WEIGHTS)
    entry[field] = 1 if field == "size" else "0" * 64
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    assert "holding the download lease" in proc.stderr
    fixed = {e["path"]: e for e in json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["files"]}
    weights = next(f for f in repo.files if f.path == WEIGHTS)
    assert fixed[WEIGHTS]["size"] == weights.size and fixed[WEIGHTS]["sha256"] == weights.sha256


def test_a_second_restore_trusts_its_own_record_without_rereading(cached, env, tmp_path, monkeypatch):
    from model_cache import restore as restore_module

    dest = tmp_path / "dest"
    assert _restore(env, dest) == 0

    def no_rereading(path):
        raise AssertionError(f"{path} was re-read although the marker vouches for it, unchanged")

    # Files this restore verified and nobody touched since: trusted by size, mtime and sha256 record.
    monkeypatch.setattr(restore_module, "_hash_file", no_rereading)
    assert _restore(env, dest) == 0


def test_a_marker_that_is_not_an_object_is_ignored(cached, env, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / ".model-cache-complete.json").write_text("[]")
    assert _restore(env, dest) == 0
    assert json.loads((dest / ".model-cache-complete.json").read_text())["sha"] == cached.sha



# ensure() in-process: what it answers "cached" from, and what it then leaves untouched.

def _ensure(env: dict, **extra: str) -> int:
    from model_cache.ensure import ensure

    return ensure(_settings(env, "ensure", **extra))


def _ref_key(repo) -> str:
    return f"models/{repo.repo_id}/refs/main"


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


@pytest.fixture
def ensured(hub, env, s3, bucket):
    """A snapshot ensure'd into the bucket in-process; the Hub stays up."""
    repo = hub.add_repo(small_repo())
    assert _ensure(env) == 0
    return repo


def test_a_covering_manifest_is_the_whole_answer_named_in_one_line(ensured, env, s3, bucket, caplog):
    manifest_etag = s3.head_object(Bucket=bucket, Key=_manifest_key(ensured))["ETag"]
    ref_etag = s3.head_object(Bucket=bucket, Key=_ref_key(ensured))["ETag"]
    caplog.set_level(logging.INFO, logger="model_cache")
    assert _ensure(env) == 0
    assert (f"cached: s3://{bucket}/{_manifest_key(ensured)} ({len(ensured.files)} files)"
            in caplog.messages)
    assert not any("holding the download lease" in m for m in caplog.messages)
    # Nothing written: the manifest and the ref stay the same objects, no lease was taken.
    assert s3.head_object(Bucket=bucket, Key=_manifest_key(ensured))["ETag"] == manifest_etag
    assert s3.head_object(Bucket=bucket, Key=_ref_key(ensured))["ETag"] == ref_etag
    assert _keys(s3, bucket, f"models/{ensured.repo_id}/leases/") == []


def test_a_cached_snapshot_whose_ref_is_missing_gets_its_ref_back_without_a_fill(ensured, env, s3, bucket, caplog):
    s3.delete_object(Bucket=bucket, Key=_ref_key(ensured))
    manifest_etag = s3.head_object(Bucket=bucket, Key=_manifest_key(ensured))["ETag"]
    caplog.set_level(logging.INFO, logger="model_cache")
    assert _ensure(env) == 0
    ref = json.loads(s3.get_object(Bucket=bucket, Key=_ref_key(ensured))["Body"].read())
    assert (ref["repo"], ref["revision"], ref["sha"]) == (ensured.repo_id, "main", ensured.sha)
    assert s3.head_object(Bucket=bucket, Key=_manifest_key(ensured))["ETag"] == manifest_etag
    assert not any("holding the download lease" in m for m in caplog.messages)


def _dead_hub() -> str:
    """A loopback URL nobody listens on. (Stopping the stub is not enough in-process: huggingface_hub
    keeps its connection to the stub alive and would still reach it.)"""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_with_the_hub_down_a_cached_snapshot_is_used_and_named(ensured, env, caplog):
    dead = _dead_hub()
    caplog.set_level(logging.INFO, logger="model_cache")
    assert _ensure(env, HF_ENDPOINT=dead) == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"Hub {dead} unreachable")
    assert warning.endswith(f"; using the cached snapshot {ensured.sha} of {ensured.repo_id}@main")


def test_with_the_hub_down_a_ref_without_its_manifest_is_not_cached(ensured, env, s3, bucket):
    from model_cache.errors import HubUnreachable

    s3.delete_object(Bucket=bucket, Key=_manifest_key(ensured))
    with pytest.raises(HubUnreachable, match="unreachable"):
        _ensure(env, HF_ENDPOINT=_dead_hub())


def test_with_the_hub_down_and_nothing_cached_ensure_fails(hub, env):
    from model_cache.errors import HubUnreachable

    hub.add_repo(small_repo())
    with pytest.raises(HubUnreachable, match="unreachable"):
        _ensure(env, HF_ENDPOINT=_dead_hub())


def test_only_a_download_needs_a_writable_download_dir(ensured, hub, env, tmp_path):
    from model_cache.errors import ConfigError

    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    # Warm: the manifest answers before the scratch directory matters.
    assert _ensure(env, DOWNLOAD_DIR=str(blocked)) == 0
    # Cold (another revision of another repo): the scratch directory is checked before the lease.
    other = hub.add_repo(small_repo("acme/other-model"))
    with pytest.raises(ConfigError) as caught:
        _ensure(env, DOWNLOAD_DIR=str(blocked), MODEL_NAME=other.repo_id)
    assert str(caught.value).startswith(f"DOWNLOAD_DIR (--download-dir)={str(blocked)!r} is not a directory: ")


def test_a_manifest_finished_by_another_process_while_we_took_the_lease_is_not_refilled(
        ensured, env, s3, bucket, monkeypatch):
    from model_cache import ensure as ensure_module

    key = _manifest_key(ensured)
    finished = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_object(Bucket=bucket, Key=_ref_key(ensured))

    class LateLease(ensure_module.Lease):
        """The other process writes its manifest just before our lease is granted (the lease is free)."""

        def try_acquire(self) -> bool:
            s3.put_object(Bucket=bucket, Key=key, Body=finished)
            return super().try_acquire()

    def no_fill(*args, **kwargs):
        raise AssertionError("filled a snapshot whose manifest was complete when the lease was granted")

    monkeypatch.setattr(ensure_module, "Lease", LateLease)
    monkeypatch.setattr(ensure_module, "_fill", no_fill)
    assert _ensure(env) == 0
    assert json.loads(s3.get_object(Bucket=bucket, Key=_ref_key(ensured))["Body"].read())["sha"] == ensured.sha
    assert _keys(s3, bucket, f"models/{ensured.repo_id}/leases/") == []  # released
