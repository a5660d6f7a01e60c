"""The gateway as a Hub mirror: huggingface_hub with HF_ENDPOINT=gateway, no token, no Hub.

The snapshot is put in a real loopback S3 bucket by the real ``model-cache ensure`` from the
model Hub stand-in; the stand-in is then stopped, so every byte the client gets comes from the
bucket through the gateway.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

from tests.model_cache.conftest import HF_TOKEN, payload, tree
from tests.model_cache.hubstub import StubFile, StubRepo

from .conftest import clean_hf_env, run_cli

REPO = "acme/tiny-model"


def expected(repo: StubRepo) -> dict[str, bytes]:
    return {f.path: f.data for f in repo.files}


def test_snapshot_download_with_hf_endpoint_and_no_token(mirror, hub, cached, tmp_path):
    hub.stop()  # no Hub from here on
    environ = {**clean_hf_env(tmp_path), "HF_ENDPOINT": mirror.url}
    script = ("import sys; from huggingface_hub import snapshot_download; "
              "print(snapshot_download(sys.argv[1], local_dir=sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", script, REPO, str(tmp_path / "out")], env=environ,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    got = {k: v for k, v in tree(tmp_path / "out").items() if not k.startswith(".cache")}
    assert got == expected(cached)
    # The cache layout too (blobs named by sha256, refs/main -> the commit).
    snap = Path(snapshot_download(REPO, endpoint=mirror.url, token=False, cache_dir=tmp_path / "cache"))
    assert tree(snap) == expected(cached)
    assert snap.name == cached.sha
    blobs = {p.name for p in (snap.parents[1] / "blobs").iterdir()}
    assert blobs == {f.sha256 for f in cached.files}
    assert (snap.parents[1] / "refs" / "main").read_text() == cached.sha


def test_hf_hub_download_by_branch_and_by_commit(mirror, hub, cached, tmp_path):
    hub.stop()
    for revision in ("main", cached.sha):
        for f in cached.files:
            path = hf_hub_download(REPO, f.path, revision=revision, endpoint=mirror.url, token=False,
                                   cache_dir=tmp_path / revision)
            assert Path(path).read_bytes() == f.data, f.path


def test_without_read_ahead_the_bytes_are_the_same(launch, env, hub, cached, tmp_path):
    from .conftest import gateway_env

    gw = launch(gateway_env(env, hub.url, GATEWAY_PREFETCH_CHUNKS="0", GATEWAY_CHUNK_KB="64"))
    hub.stop()
    snap = Path(snapshot_download(REPO, endpoint=gw.url, token=False, cache_dir=tmp_path))
    assert tree(snap) == expected(cached)


def test_model_info_with_blobs_and_the_tree(mirror, hub, cached):
    hub.stop()
    api = HfApi(endpoint=mirror.url, token=False)
    info = api.model_info(REPO, files_metadata=True)
    assert info.sha == cached.sha and info.id == REPO
    by_name = {s.rfilename: s for s in info.siblings}
    assert set(by_name) == {f.path for f in cached.files}
    for f in cached.files:
        s = by_name[f.path]
        assert s.size == f.size and s.lfs.sha256 == f.sha256 and s.lfs.size == f.size
    # Without blobs=true: names only, as on the Hub.
    assert all(s.size is None for s in api.model_info(REPO, revision=cached.sha).siblings)
    files = {e.path: e for e in api.list_repo_tree(REPO, recursive=True)}
    assert {p for p, e in files.items() if hasattr(e, "lfs")} == {f.path for f in cached.files}
    top = {e.path for e in api.list_repo_tree(REPO)}
    assert "nested" in top and "nested/dir/extra.bin" not in top
    assert {e.path for e in api.list_repo_tree(REPO, path_in_repo="nested/dir")} == {"nested/dir/extra.bin"}
    # model-cache itself can use the gateway as its Hub (it reads the same model info).
    assert api.repo_info(REPO).sha == cached.sha


def test_resolve_headers_and_range_reads(mirror, hub, cached):
    hub.stop()
    f = next(x for x in cached.files if x.path == "model-00001-of-00002.safetensors")
    url = f"{mirror.url}/{REPO}/resolve/main/{f.path}"
    head = httpx2.head(url, timeout=10)
    assert head.status_code == 200
    assert head.headers["ETag"] == f'"{f.sha256}"' and head.headers["X-Linked-Etag"] == f'"{f.sha256}"'
    assert head.headers["X-Linked-Size"] == head.headers["Content-Length"] == str(f.size)
    assert head.headers["X-Repo-Commit"] == cached.sha and head.headers["Accept-Ranges"] == "bytes"
    for rng, start, end in (("bytes=100-199", 100, 199), ("bytes=12582900-", 12582900, f.size - 1),
                            ("bytes=-10", f.size - 10, f.size - 1), ("bytes=5-999999999", 5, f.size - 1)):
        r = httpx2.get(url, headers={"Range": rng}, timeout=30)
        assert r.status_code == 206, rng
        assert r.content == f.data[start:end + 1], rng
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{f.size}"
        assert r.headers["Content-Length"] == str(end - start + 1)
    r = httpx2.get(url, headers={"Range": f"bytes={f.size}-"}, timeout=10)
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{f.size}"
    empty = httpx2.get(f"{mirror.url}/{REPO}/resolve/main/empty.txt", timeout=10)
    assert empty.status_code == 200 and empty.content == b"" and empty.headers["Content-Length"] == "0"
    r = httpx2.get(f"{mirror.url}/{REPO}/resolve/main/no-such-file.bin", timeout=10)
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "EntryNotFound"
    assert r.headers["X-Repo-Commit"] == cached.sha


def test_not_cached_and_not_allowed_is_the_hubs_404_and_nothing_is_sent(mirror, hub, tmp_path):
    hub.add_repo(StubRepo("acme/other", [StubFile("config.json", b"{}")]))
    hub.counts.clear()
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=mirror.url, token=False).model_info("acme/other")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/other", "config.json", endpoint=mirror.url, token=False, cache_dir=tmp_path)
    r = httpx2.get(f"{mirror.url}/api/models/acme/other/revision/main", timeout=10)
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "RepoNotFound"
    assert sum(hub.counts.values()) == 0


def test_not_cached_but_allowed_passes_through_with_the_gateway_token(mirror, hub, tmp_path):
    big = payload("allowed", 3 * 1024 * 1024)
    repo = hub.add_repo(StubRepo("acme/allowed-model", [StubFile("config.json", b'{"a": 1}\n'),
                                                         StubFile("model.safetensors", big)], token=HF_TOKEN))
    snap = Path(snapshot_download(repo.repo_id, endpoint=mirror.url, token=False, cache_dir=tmp_path))
    assert tree(snap) == {"config.json": b'{"a": 1}\n', "model.safetensors": big}
    assert hub.counts[("cdn-auth-leak", repo.repo_id, "model.safetensors")] == 0  # token stayed off the CDN
    assert hub.file_gets(repo.repo_id)["model.safetensors"] == 1
    r = httpx2.get(f"{mirror.url}/{repo.repo_id}/resolve/main/model.safetensors", headers={"Range": "bytes=10-19"},
                   timeout=10)
    assert r.status_code == 206 and r.content == big[10:20]
    # The Hub's own errors come back as they were: an unknown revision is RevisionNotFound.
    with pytest.raises(RevisionNotFoundError):
        HfApi(endpoint=mirror.url, token=False).model_info(repo.repo_id, revision="no-such-branch")


def test_index_page_lists_cached_repos(mirror):
    r = httpx2.get(f"{mirror.url}/", timeout=10)
    assert r.status_code == 200 and REPO in r.text and "HF_ENDPOINT" in r.text
    assert httpx2.get(f"{mirror.url}/readyz", timeout=10).status_code == 200


@pytest.mark.slow
def test_a_1_gib_file_streams_with_gateway_memory_under_256_mib(launch, env, hub, tmp_path):
    from .conftest import gateway_env

    size = 1 << 30
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:  # sparse: made instantly, reads as zeros
        fh.truncate(size)
    hub.add_repo(StubRepo("acme/big-model", [StubFile("model.safetensors", disk=big),
                                             StubFile("config.json", b"{}")]))
    done = run_cli(["ensure"], {**env, "MODEL_NAME": "acme/big-model"}, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    gw = launch(gateway_env(env, hub.url))
    sha, received = hashlib.sha256(), 0
    with httpx2.stream("GET", f"{gw.url}/acme/big-model/resolve/main/model.safetensors", timeout=120) as r:
        assert r.status_code == 200 and r.headers["Content-Length"] == str(size)
        for chunk in r.iter_bytes(1 << 20):
            sha.update(chunk)
            received += len(chunk)
    assert received == size
    assert sha.hexdigest() == _zeros_sha256(size)
    peak = gw.peak_rss_bytes()
    print(f"gateway peak RSS while streaming 1 GiB: {peak / 2**20:.0f} MiB")
    assert peak < 256 * 2**20, f"gateway peak RSS {peak / 2**20:.0f} MiB"


def _zeros_sha256(size: int) -> str:
    h, block = hashlib.sha256(), b"\0" * (1 << 20)
    for _ in range(size // len(block)):
        h.update(block)
    return h.hexdigest()


def test_manifest_json_of_the_bucket_is_what_the_gateway_reads(mirror, cached, s3, bucket):
    """Guards the assumption the mirror relies on: ensure records size and sha256 for every file."""
    doc = json.loads(s3.get_object(Bucket=bucket, Key=f"models/{REPO}/{cached.sha}/manifest.json")["Body"].read())
    assert {(e["path"], e["size"], e["sha256"]) for e in doc["files"]} == {
        (f.path, f.size, f.sha256) for f in cached.files}


def test_model_cache_ensure_can_use_the_gateway_as_its_hub(mirror, hub, cached, env, s3, tmp_path):
    """Another bucket (another cluster) caches the model from the gateway: model info with blobs,
    HEAD metadata and parallel ranged GETs, all served from the first bucket."""
    hub.stop()
    other = f"{env['S3_BUCKET']}-b"
    s3.create_bucket(Bucket=other)
    second = {**env, "S3_BUCKET": other, "HF_ENDPOINT": mirror.url, "HF_TOKEN": ""}
    done = run_cli(["ensure"], second)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_cli(["restore", "--dest", str(tmp_path / "restored")], second)
    assert done.returncode == 0, done.stderr[-3000:]
    got = {k: v for k, v in tree(tmp_path / "restored").items() if not k.startswith(".model-cache")}
    assert got == expected(cached)
