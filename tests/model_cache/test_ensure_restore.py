"""Cold/warm ensure, restore and status against moto and the Hub stand-in (real HTTP, subprocesses)."""

from __future__ import annotations

import json

from .conftest import run_cli, small_repo, tree


def _manifest(s3, bucket, repo):
    key = f"models/{repo.repo_id}/{repo.sha}/manifest.json"
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_cold_ensure_fills_bucket_with_manifest_last(hub, env, s3, bucket):
    repo = hub.add_repo(small_repo())
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    manifest = _manifest(s3, bucket, repo)
    assert manifest["repo"] == repo.repo_id and manifest["sha"] == repo.sha and manifest["revision"] == "main"
    assert manifest["tool_version"]
    by_path = {e["path"]: e for e in manifest["files"]}
    assert set(by_path) == {f.path for f in repo.files}
    for f in repo.files:
        assert by_path[f.path]["size"] == f.size and by_path[f.path]["sha256"] == f.sha256
        obj = s3.get_object(Bucket=bucket, Key=f"models/{repo.repo_id}/{repo.sha}/{f.path}")
        assert obj["Body"].read() == f.data
    ref = json.loads(s3.get_object(Bucket=bucket, Key=f"models/{repo.repo_id}/refs/main")["Body"].read())
    assert ref["sha"] == repo.sha
    # every file fetched once, the big one as a multipart upload; the lease is released
    # (an empty file needs no GET: huggingface_hub skips it)
    assert hub.file_gets() == {f.path: 1 for f in repo.files if f.size}
    big = s3.head_object(Bucket=bucket, Key=f"models/{repo.repo_id}/{repo.sha}/model-00001-of-00002.safetensors")
    assert big["ETag"].strip('"').endswith("-3")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=f"models/{repo.repo_id}/leases/")
    assert hub.counts.get(("cdn-auth-leak", repo.repo_id, "model-00001-of-00002.safetensors"), 0) == 0
    assert "cached" in proc.stderr


def test_warm_ensure_with_hub_stopped_downloads_nothing(hub, env, s3, bucket):
    hub.add_repo(small_repo())
    assert run_cli(["ensure"], env).returncode == 0
    gets = sum(hub.file_gets().values())
    # Hub up: only the API call, no file download
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    assert sum(hub.file_gets().values()) == gets
    # Hub down: the cached snapshot (found through the ref) is still good
    hub.stop()
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr
    assert "unreachable" in proc.stderr


def test_restore_is_byte_identical_and_skips_correct_files(hub, env, tmp_path):
    repo = hub.add_repo(small_repo())
    assert run_cli(["ensure"], env).returncode == 0
    hub.stop()  # restore never needs the Hub
    dest = tmp_path / "dest"
    proc = run_cli(["restore", "--dest", str(dest)], env)
    assert proc.returncode == 0, proc.stderr
    got = tree(dest)
    marker = json.loads(got.pop(".model-cache-complete.json"))
    assert got == {f.path: f.data for f in repo.files}
    assert marker["sha"] == repo.sha and len(marker["files"]) == len(repo.files)
    # second run: everything present and verified, nothing rewritten
    before = {p: (dest / p).stat().st_mtime_ns for p in got}
    proc = run_cli(["restore", "--dest", str(dest), "--verify", "etag"], env)
    assert proc.returncode == 0, proc.stderr
    assert {p: (dest / p).stat().st_mtime_ns for p in got} == before
    # a damaged local file is replaced
    (dest / "config.json").write_bytes(b"garbage")
    assert run_cli(["restore", "--dest", str(dest)], env).returncode == 0
    assert (dest / "config.json").read_bytes() == repo.files[0].data


def test_status_reports_json(hub, env):
    repo = hub.add_repo(small_repo())
    proc = run_cli(["status"], env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cached"] is False
    assert run_cli(["ensure"], env).returncode == 0
    doc = json.loads(run_cli(["status"], env).stdout)
    assert doc["cached"] is True and doc["sha"] == repo.sha
    assert doc["files"] == len(repo.files) and doc["bytes"] == sum(f.size for f in repo.files)
    assert doc["lease"] is None


def test_patterns_select_files_and_restore_not_cached_fails(hub, env, tmp_path):
    repo = hub.add_repo(small_repo())
    env = dict(env, MODEL_ALLOW_PATTERNS="*.safetensors,config.json")
    dest = tmp_path / "d"
    proc = run_cli(["restore", "--dest", str(dest)], env)
    assert proc.returncode == 1 and "not cached" in proc.stderr
    assert run_cli(["ensure"], env).returncode == 0
    assert run_cli(["restore", "--dest", str(dest)], env).returncode == 0
    names = set(tree(dest)) - {".model-cache-complete.json"}
    assert names == {"config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    # widening the selection later adds the missing files to the same snapshot
    env.pop("MODEL_ALLOW_PATTERNS")
    assert run_cli(["ensure"], env).returncode == 0
    assert hub.file_gets() == {f.path: 1 for f in repo.files if f.size}
