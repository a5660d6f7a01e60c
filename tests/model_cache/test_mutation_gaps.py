"""Behaviours a mutation run (scripts/mutation.sh, docs/testing.md) showed no other test pinned.

In-process against the real S3 server (moto on loopback): the lease's conditional writes as they are
sent on the wire, its staleness rule, and what restore re-checks before it trusts a local file.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from model_cache import config, s3
from model_cache.errors import NotCachedError
from model_cache.lease import Lease
from model_cache.restore import restore

from .conftest import run_cli, small_repo, tree


def _settings(env: dict, command: str = "status", **extra: str):
    return config.load(SimpleNamespace(), command, environ=dict(env, **extra))


class Wire:
    """Every S3 request a client sends: (operation, headers), recorded where botocore signs it."""

    def __init__(self, client) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        client.meta.events.register("before-sign.s3", self._record)

    def _record(self, request, operation_name: str, **_) -> None:
        self.sent.append((operation_name, {k.lower(): v for k, v in request.headers.items()}))

    def of(self, operation: str) -> list[dict[str, str]]:
        return [h for op, h in self.sent if op == operation]


# --- lease ------------------------------------------------------------------------------------------------

def test_a_free_lease_is_created_with_if_none_match_and_released_with_if_match(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    wire = Wire(client)
    lease = Lease(client, settings, "models/x/leases/wire.json")
    assert lease.try_acquire()
    held = lease.etag
    doc = json.loads(client.get_object(Bucket=bucket, Key=lease.key)["Body"].read())
    assert doc["holder"] == lease.id and doc["ttl"] == settings.lease_ttl
    assert doc["expires"] == pytest.approx(time.time() + settings.lease_ttl, abs=2)
    lease.release()
    # The conditional create is what makes one winner on a store that honours it; the settle-and-reread
    # alone would hide its loss in a race test.
    assert [h.get("if-none-match") for h in wire.of("PutObject")] == ["*"]
    assert [h.get("if-match") for h in wire.of("DeleteObject")] == [held]
    assert lease.etag is None
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=lease.key)


def test_the_heartbeat_renews_with_if_match_of_the_current_version(env, bucket):
    settings = _settings(env, MODEL_CACHE_LEASE_TTL="1")
    client = s3.make_client(settings)
    wire = Wire(client)
    lease = Lease(client, settings, "models/x/leases/beat.json")
    assert lease.try_acquire()
    first = lease.etag
    deadline = time.monotonic() + 5
    while len(wire.of("PutObject")) < 3:
        assert time.monotonic() < deadline, "no heartbeat within 5 s for a 1 s ttl"
        time.sleep(0.05)
    lease.release()
    renewals = wire.of("PutObject")[1:]
    assert renewals[0].get("if-match") == first
    assert renewals[1].get("if-match") not in (None, first)  # each renewal names the version it replaces
    assert not lease.lost.is_set()


def test_a_released_lease_does_not_delete_a_lease_it_no_longer_holds(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    lease = Lease(client, settings, "models/x/leases/gone.json")
    assert lease.try_acquire()
    client.put_object(Bucket=bucket, Key=lease.key, Body=b'{"holder": "other", "expires": 9e9}')
    lease.release()  # the If-Match no longer matches: the other holder's lease stays
    assert json.loads(client.get_object(Bucket=bucket, Key=lease.key)["Body"].read())["holder"] == "other"


def test_staleness_rules(env):
    settings = _settings(env, MODEL_CACHE_CLOCK_SKEW="0")
    lease = Lease(None, settings, "unused")
    now = time.time()
    assert lease.stale({"expires": now - 1, "ttl": 100}, "e1")            # expired by its own clock
    assert lease.stale({"expires": "soon"}, "e1")                          # unreadable: abandoned
    fresh = {"expires": now + 100, "ttl": 0.3}
    assert not lease.stale(fresh, "e2")                                    # first sight: never stale
    assert not lease.stale(fresh, "e2")                                    # unchanged, within its ttl
    time.sleep(0.4)
    assert lease.stale(fresh, "e2")                                        # unchanged for > ttl: holder dead
    assert not lease.stale(fresh, "e3")                                    # renewed (new etag): alive again


def test_clock_skew_keeps_a_just_expired_lease(env):
    settings = _settings(env, MODEL_CACHE_CLOCK_SKEW="30")
    lease = Lease(None, settings, "unused")
    assert not lease.stale({"expires": time.time() - 5, "ttl": 100}, "e")
    assert lease.stale({"expires": time.time() - 60, "ttl": 100}, "e")


def test_a_stale_lease_is_taken_over_with_if_match_of_the_stale_version(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/takeover.json"
    stale_etag = client.put_object(Bucket=bucket, Key=key,
                                   Body=json.dumps({"holder": "dead", "expires": time.time() - 100}))["ETag"]
    wire = Wire(client)
    lease = Lease(client, settings, key)
    try:
        assert lease.try_acquire()
    finally:
        lease.release()
    puts = wire.of("PutObject")
    assert puts[0].get("if-none-match") == "*"
    assert puts[1].get("if-match") == stale_etag


def test_a_valid_lease_is_respected_without_a_write(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/alive.json"
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps({"holder": "alive", "expires": time.time() + 100,
                                                                "ttl": 100}))
    wire = Wire(client)
    assert Lease(client, settings, key).try_acquire() is False
    assert wire.of("PutObject") == []


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


class NoConditionalOverwrite:
    """A store that refuses ``If-Match`` on PUT, as some S3 implementations do: 501 NotImplemented or
    400 InvalidArgument, with or without an error code (the rest of each request goes to the real server)."""

    def __init__(self, client, code: str, status: int) -> None:
        self.code, self.status = code, status
        client.meta.events.register("before-call.s3.PutObject", self._refuse)

    def _refuse(self, params, **_):
        if "If-Match" not in params.get("headers", {}):
            return None
        http = SimpleNamespace(status_code=self.status, headers={}, raw=None, content=b"")
        error = {"Code": self.code, "Message": "If-Match on PUT"} if self.code else {}
        return http, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": self.status}}


@pytest.mark.parametrize(("code", "status"), [("NotImplemented", 501), ("", 501), ("InvalidArgument", 400),
                                              ("", 400)])
def test_a_store_without_conditional_overwrite_takes_over_by_deleting_exactly_the_stale_version(
        env, bucket, code: str, status: int):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/no-if-match.json"
    stale_etag = client.put_object(Bucket=bucket, Key=key,
                                   Body=json.dumps({"holder": "dead", "expires": time.time() - 100}))["ETag"]
    NoConditionalOverwrite(client, code, status)
    wire = Wire(client)
    lease = Lease(client, settings, key)
    try:
        assert lease.try_acquire()
        assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["holder"] == lease.id
    finally:
        lease._stop.set()  # no heartbeat: it would renew unconditionally on this store
    assert [h.get("if-match") for h in wire.of("DeleteObject")] == [stale_etag]
    assert [h.get("if-none-match") for h in wire.of("PutObject")] == ["*", "*"]


def test_a_takeover_lost_to_another_waiter_or_to_a_release_is_no_error(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/lost-race.json"
    stale_etag = client.put_object(Bucket=bucket, Key=key,
                                   Body=json.dumps({"holder": "dead", "expires": time.time() - 100}))["ETag"]
    winner, loser = Lease(client, settings, key), Lease(client, settings, key)
    try:
        assert winner.try_acquire()
        # The loser read the same stale version before the winner replaced it: its If-Match fails (412).
        assert loser._takeover(stale_etag) is None
        winner.release()
        # ... or the lease is gone altogether (released): If-Match on a missing key (404).
        assert loser._takeover(stale_etag) is None
    finally:
        winner.release()
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=key)


def test_a_lease_without_ttl_uses_the_configured_one(env):
    settings = _settings(env, MODEL_CACHE_CLOCK_SKEW="0")
    lease = Lease(None, settings, "unused")
    doc = {"expires": time.time() + 100}  # an older writer's lease: no "ttl" field
    assert not lease.stale(doc, "e") and not lease.stale(doc, "e")


def test_clock_skew_also_widens_the_unchanged_for_too_long_rule(env):
    settings = _settings(env, MODEL_CACHE_CLOCK_SKEW="5")
    lease = Lease(None, settings, "unused")
    fresh = {"expires": time.time() + 100, "ttl": 0.3}
    assert not lease.stale(fresh, "e")
    time.sleep(0.4)
    assert not lease.stale(fresh, "e")  # 0.4 s unchanged < ttl 0.3 + skew 5


def test_without_conditional_overwrite_a_lost_takeover_is_no_error(env, bucket):
    settings = _settings(env)
    client = s3.make_client(settings)
    key = "models/x/leases/no-if-match-lost.json"
    stale_etag = client.put_object(Bucket=bucket, Key=key,
                                   Body=json.dumps({"holder": "dead", "expires": time.time() - 100}))["ETag"]
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps({"holder": "winner", "expires": time.time() + 100}))
    NoConditionalOverwrite(client, "NotImplemented", 501)
    # The delete names the stale version, which the winner already replaced: 412, and no lease for us.
    assert Lease(client, settings, key)._takeover(stale_etag) is None
    assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["holder"] == "winner"


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


SHA = "a" * 40


@pytest.mark.parametrize(("doc", "needle"), [
    ({"sha": "b" * 40, "repo": "acme/tiny-model", "files": []}, "does not describe acme/tiny-model@" + SHA),
    ({"sha": SHA, "repo": "acme/other", "files": []}, "does not describe acme/tiny-model@" + SHA),
    ({"sha": SHA, "repo": "acme/tiny-model", "files": {}}, "does not describe acme/tiny-model@" + SHA),
    ({"sha": SHA, "repo": "acme/tiny-model", "files": ["x"]}, "has a malformed file entry"),
    ({"sha": SHA, "repo": "acme/tiny-model", "files": [{"path": "../etc/passwd"}]}, "the manifest"),
])
def test_read_manifest_refuses_a_manifest_of_another_snapshot_or_with_bad_entries(env, bucket, doc, needle):
    from model_cache.ensure import read_manifest
    from model_cache.errors import ModelCacheError
    from model_cache.layout import Layout

    settings = _settings(env)
    client = s3.make_client(settings)
    layout = Layout(settings.prefix, settings.repo_id)
    s3.put_json(client, bucket, layout.manifest_key(SHA), doc)
    with pytest.raises(ModelCacheError, match=re.escape(needle)) as caught:
        read_manifest(client, settings, layout, SHA)
    if "does not describe" in needle:
        assert f"s3://{bucket}/{layout.manifest_key(SHA)}" in str(caught.value)
