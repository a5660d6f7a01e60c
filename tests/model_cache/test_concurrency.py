"""Replicas starting together, a holder killed mid-upload, a stale lease, S3 and Hub failures."""

from __future__ import annotations

import json
import signal
import time

from .conftest import assert_no_secrets, run_cli, small_repo, start_cli, tree


def _prefix(repo):
    return f"models/{repo.repo_id}/{repo.sha}/"


def _keys(s3, bucket, prefix):
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}


def test_eight_concurrent_processes_download_each_file_once(hub, env, s3, bucket):
    repo = hub.add_repo(small_repo())
    hub.delay_per_mib = 0.05  # the holder takes a moment, so the others really wait
    procs = [start_cli(["ensure"], env) for _ in range(8)]
    results = [(*p.communicate(timeout=180), p.returncode) for p in procs]
    results = [(rc, out, err) for out, err, rc in results]
    for rc, out, err in results:
        assert rc == 0, err
        assert_no_secrets(out + err)
    assert hub.file_gets() == {f.path: 1 for f in repo.files if f.size}
    assert f"{_prefix(repo)}manifest.json" in _keys(s3, bucket, _prefix(repo))
    waited = sum("waiting for its manifest" in err or "cached:" in err for _, _, err in results)
    assert waited >= 7


def test_killed_mid_upload_leaves_no_manifest_and_next_run_resumes(hub, env, s3, bucket):
    repo = hub.add_repo(small_repo())
    hub.delay_per_mib = 1.0  # the 12 MiB shard takes ~12 s; the small files are done at once
    proc = start_cli(["ensure"], env)
    small = f"{_prefix(repo)}config.json"
    deadline = time.monotonic() + 60
    while small not in _keys(s3, bucket, _prefix(repo)):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    keys = _keys(s3, bucket, _prefix(repo))
    assert f"{_prefix(repo)}manifest.json" not in keys
    assert _keys(s3, bucket, f"models/{repo.repo_id}/leases/")  # the dead holder's lease is still there
    done_before = {k[len(_prefix(repo)):] for k in keys}
    hub.delay_per_mib = 0.0
    rerun = run_cli(["ensure"], env)
    assert rerun.returncode == 0, rerun.stderr
    assert "taking it over" in rerun.stderr and "resuming" in rerun.stderr
    assert f"{_prefix(repo)}manifest.json" in _keys(s3, bucket, _prefix(repo))
    gets = hub.file_gets()
    for path in done_before:
        assert gets[path] <= 1, f"{path} was uploaded before the kill and must not be fetched again"
    doc = json.loads(run_cli(["status"], env).stdout)
    assert doc["cached"] and doc["files"] == len(repo.files)


def test_stale_lease_is_taken_over(hub, env, s3, bucket):
    repo = hub.add_repo(small_repo())
    stale = {"holder": "dead-host/1/abcd", "expires": time.time() - 600, "ttl": 3, "renewed": time.time() - 603}
    s3.put_object(Bucket=bucket, Key=f"models/{repo.repo_id}/leases/{repo.sha}.json", Body=json.dumps(stale))
    started = time.monotonic()
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    assert "dead-host/1/abcd" in proc.stderr and "taking it over" in proc.stderr
    assert time.monotonic() - started < 30


def test_live_lease_holder_is_waited_for(hub, env, s3, bucket):
    """A lease that keeps being renewed is respected: the waiter finishes only once the manifest appears."""
    repo = hub.add_repo(small_repo())
    lease_key = f"models/{repo.repo_id}/leases/{repo.sha}.json"
    s3.put_object(Bucket=bucket, Key=lease_key,
                  Body=json.dumps({"holder": "other/2/live", "expires": time.time() + 3600, "ttl": 3600}))
    proc = start_cli(["ensure"], dict(env, MODEL_CACHE_LEASE_TTL="3600"))
    time.sleep(4)
    assert proc.poll() is None, proc.communicate()
    assert hub.file_gets() == {}
    status = json.loads(run_cli(["status"], env).stdout)
    assert status["lease_holder"] == "other/2/live" and status["cached"] is False
    # The other holder gives up its lease: the waiter takes it and does the work itself
    s3.delete_object(Bucket=bucket, Key=lease_key)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "waiting for its manifest" in err


def test_s3_500s_are_retried(hub, env, s3, bucket, s3_server, tmp_path):
    repo = hub.add_repo(small_repo())
    faults = s3_server.faults
    before = faults.injected
    faults.add("PUT", "model-00001", times=2)          # upload parts
    faults.add("PUT", "/leases/", times=1)              # the lease create
    faults.add("PUT", "manifest.json", times=1)
    faults.add("HEAD", "tokenizer.json", times=1)
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    faults.add("GET", "model-00001", times=3)
    faults.add("GET", "/refs/", times=1)
    dest = tmp_path / "dest"
    proc = run_cli(["restore", "--dest", str(dest)], env)
    assert proc.returncode == 0, proc.stderr
    assert faults.injected - before == 9
    assert tree(dest)["model-00001-of-00002.safetensors"] == repo.files[2].data


def test_hub_500_on_download_is_retried(hub, env):
    repo = hub.add_repo(small_repo())
    hub.fail_next_gets = 2
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    assert "retrying" in proc.stderr
    assert sum(hub.file_gets().values()) == len([f for f in repo.files if f.size])


def test_corrupted_object_is_detected_by_restore(hub, env, s3, bucket, tmp_path):
    repo = hub.add_repo(small_repo())
    assert run_cli(["ensure"], env).returncode == 0
    key = f"{_prefix(repo)}model-00002-of-00002.safetensors"
    data = bytearray(repo.files[3].data)
    data[1000] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(data))  # same size, one byte flipped
    dest = tmp_path / "dest"
    proc = run_cli(["restore", "--dest", str(dest)], env)
    assert proc.returncode == 1
    assert "model-00002-of-00002.safetensors" in proc.stderr and "sha256" in proc.stderr
    assert "corrupted" in proc.stderr
    assert not (dest / "model-00002-of-00002.safetensors").exists()
    assert not (dest / ".model-cache-complete.json").exists()
    assert not any(p.name.endswith("partial") for p in dest.rglob("*"))
    # the fast mode catches it too: the object's ETag no longer matches the manifest
    proc = run_cli(["restore", "--dest", str(dest), "--verify", "etag"], env)
    assert proc.returncode == 1 and "ETag" in proc.stderr


def test_sigterm_releases_the_lease_and_exits_1(hub, env, s3, bucket):
    repo = hub.add_repo(small_repo())
    hub.delay_per_mib = 1.0
    proc = start_cli(["ensure"], dict(env, MODEL_CACHE_LEASE_TTL="600"))
    lease_prefix = f"models/{repo.repo_id}/leases/"
    deadline = time.monotonic() + 60
    while not _keys(s3, bucket, f"{_prefix(repo)}config.json"):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert not _keys(s3, bucket, lease_prefix)  # released: the next replica need not wait 600 s
    assert f"{_prefix(repo)}manifest.json" not in _keys(s3, bucket, _prefix(repo))
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")  # aborted, nothing left behind
    assert_no_secrets(err)


def test_stalled_hub_download_is_retried_then_fails_with_a_message(hub, env, s3, bucket):
    repo = hub.add_repo(small_repo())
    hub.stall_seconds = 30
    proc = run_cli(["ensure"], dict(env, HF_HUB_DOWNLOAD_TIMEOUT="1", MODEL_CACHE_FILE_RETRIES="1",
                                    MODEL_ALLOW_PATTERNS="model-00002-of-00002.safetensors"), timeout=90)
    assert proc.returncode == 1
    assert "model-00002-of-00002.safetensors" in proc.stderr and "Timeout" in proc.stderr
    assert f"{_prefix(repo)}manifest.json" not in _keys(s3, bucket, _prefix(repo))
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
