"""Big LFS files: parallel ranged GETs from the Hub, each range uploaded as its multipart part."""

from __future__ import annotations

import json
import threading
import time

import pytest
from model_cache.errors import ModelCacheError
from model_cache.ranged import Slots

from .conftest import payload, run_cli, small_repo, tree
from .hubstub import StubFile, StubRepo

MiB = 1024 * 1024
BIG = "model-00001-of-00002.safetensors"  # 12 MiB: three 5 MiB ranges/parts in these tests


def _prefix(repo):
    return f"models/{repo.repo_id}/{repo.sha}/"


def _keys(s3, bucket, prefix):
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}


def _data(repo, path):
    return next(f.data for f in repo.files if f.path == path)


def test_big_file_is_fetched_as_parallel_ranges_and_parts(hub, env, s3, bucket, tmp_path):
    repo = hub.add_repo(small_repo())
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    assert hub.file_gets() == {f.path: 1 for f in repo.files if f.size}   # each file fetched once...
    assert hub.range_gets() == {BIG: 2}                                   # ...the big one as 3 ranges
    head = s3.head_object(Bucket=bucket, Key=_prefix(repo) + BIG)
    assert head["ETag"].strip('"').endswith("-3") and head["Metadata"]["sha256"] == repo.files[2].sha256
    assert s3.get_object(Bucket=bucket, Key=_prefix(repo) + BIG)["Body"].read() == _data(repo, BIG)
    dest = tmp_path / "dest"
    assert run_cli(["restore", "--dest", str(dest)], env).returncode == 0
    assert tree(dest)[BIG] == _data(repo, BIG)


def test_broken_and_failing_ranges_are_resumed_without_refetching_the_file(hub, env, s3, bucket):
    repo = hub.add_repo(small_repo())
    hub.cut_next_ranges = 1   # half a range, then the connection drops: resumed from that byte
    hub.fail_next_ranges = 1  # a 500 on a range: that range is retried
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stderr and "retrying" in proc.stderr
    assert hub.cut_next_ranges == 0 and hub.fail_next_ranges == 0
    assert hub.file_gets()[BIG] == 1   # the file as a whole was not started again
    assert s3.get_object(Bucket=bucket, Key=_prefix(repo) + BIG)["Body"].read() == _data(repo, BIG)
    assert f"{_prefix(repo)}manifest.json" in _keys(s3, bucket, _prefix(repo))


def test_corrupted_range_rejects_the_file_and_completes_nothing(hub, env, s3, bucket):
    repo = hub.add_repo(small_repo())
    hub.corrupt_next_ranges = 1
    proc = run_cli(["ensure"], dict(env, MODEL_CACHE_FILE_RETRIES="1"))
    assert proc.returncode == 1
    assert BIG in proc.stderr and "does not match the Hub's LFS sha256" in proc.stderr
    keys = _keys(s3, bucket, _prefix(repo))
    assert _prefix(repo) + BIG not in keys and f"{_prefix(repo)}manifest.json" not in keys
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")  # aborted, not completed
    assert not _keys(s3, bucket, f"models/{repo.repo_id}/leases/")


def test_corrupted_range_is_retried_as_a_whole_file(hub, env, s3, bucket):
    repo = hub.add_repo(small_repo())
    hub.corrupt_next_ranges = 1
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    assert "does not match" in proc.stderr and "retrying" in proc.stderr
    assert hub.file_gets()[BIG] == 2
    assert s3.get_object(Bucket=bucket, Key=_prefix(repo) + BIG)["Body"].read() == _data(repo, BIG)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_server_ignoring_range_falls_back_to_one_stream(hub, env, s3, bucket):
    repo = hub.add_repo(small_repo())
    hub.ignore_range = True
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    assert "one stream" in proc.stderr
    assert hub.range_gets() == {}
    assert s3.get_object(Bucket=bucket, Key=_prefix(repo) + BIG)["Body"].read() == _data(repo, BIG)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{_prefix(repo)}manifest.json")["Body"].read())
    assert {e["path"] for e in manifest["files"]} == {f.path for f in repo.files}
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_tight_memory_budget_still_completes(hub, env, s3, bucket):
    """Part buffers bounded by MODEL_CACHE_MEMORY_MB (16 MiB = 3 parts of 5 MiB for two big files
    at once): ranges wait for buffers, nothing deadlocks, both files verified and complete."""
    repo = hub.add_repo(StubRepo("acme/tiny-model", [StubFile("a.safetensors", payload("a", 12 * MiB)),
                                                     StubFile("b.safetensors", payload("b", 11 * MiB)),
                                                     StubFile("config.json", b"{}")]))
    proc = run_cli(["ensure"], dict(env, MODEL_CACHE_MEMORY_MB="16"))
    assert proc.returncode == 0, proc.stderr
    assert hub.range_gets() == {"a.safetensors": 2, "b.safetensors": 2}
    for f in repo.files:
        assert s3.get_object(Bucket=bucket, Key=_prefix(repo) + f.path)["Body"].read() == f.data


def test_slots_bound_memory_and_serve_the_first_file_first():
    slots = Slots(units=2, unit=MiB)
    never = threading.Event()
    assert slots.size_of(1) == 1 and slots.size_of(MiB) == 1 and slots.size_of(MiB + 1) == 2
    slots.acquire(1, never, priority=0)
    slots.acquire(1, never, priority=0)
    granted: list[int] = []

    def take(priority: int) -> None:
        slots.acquire(1, never, priority)
        granted.append(priority)

    late = threading.Thread(target=take, args=(5,))
    late.start()
    time.sleep(0.1)
    early = threading.Thread(target=take, args=(1,))
    early.start()
    time.sleep(0.3)
    assert granted == []            # full: both wait
    slots.release(1)
    early.join(5)
    time.sleep(0.3)
    assert granted == [1]           # the lower priority (earlier file) goes first
    slots.release(1)
    late.join(5)
    assert granted == [1, 5] and slots.used == 2
    # a part bigger than the whole budget is still allowed when nothing is held
    slots.release(2)
    slots.acquire(7, never)
    assert slots.used == 7
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(ModelCacheError):
        slots.acquire(1, cancelled)


def test_ranged_downloads_can_be_switched_off(hub, env, s3, bucket):
    repo = hub.add_repo(small_repo())
    proc = run_cli(["ensure"], dict(env, MODEL_CACHE_RANGED="0"))
    assert proc.returncode == 0, proc.stderr
    assert hub.range_gets() == {} and hub.file_gets() == {f.path: 1 for f in repo.files if f.size}
    assert s3.get_object(Bucket=bucket, Key=_prefix(repo) + BIG)["Body"].read() == _data(repo, BIG)
