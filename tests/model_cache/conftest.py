"""Shared fixtures: a real S3 server (moto) and a Hub stand-in, both on 127.0.0.1, stopped at teardown.

Other test packages may import `tests.model_cache.hubstub` / `tests.model_cache.s3server`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .hubstub import HubStub, StubFile, StubRepo
from .s3server import S3Server

ACCESS_KEY = "AKIAFAKEMODELCACHE12"  # pragma: allowlist secret
SECRET_KEY = "s3cr3tModelCacheTestKey/abcdefghijklmnop"
HF_TOKEN = "hf_fakeTokenABCDEFGHIJKLMNOPQRSTUVWXYZ"  # pragma: allowlist secret
MiB = 1024 * 1024


def payload(seed: str, size: int) -> bytes:
    """Deterministic, incompressible-enough bytes."""
    import hashlib

    block = hashlib.sha256(seed.encode()).digest() * 2048  # 64 KiB
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{i}".encode()).digest() + block[: 65536 - 32]
        i += 1
    return bytes(out[:size])


def small_repo(repo_id: str = "acme/tiny-model", **kw) -> StubRepo:
    files = [
        StubFile("config.json", b'{"model_type": "llama", "hidden_size": 64}\n'),
        StubFile("tokenizer.json", payload("tok", 900)),                       # git (non-LFS) file
        StubFile("model-00001-of-00002.safetensors", payload("w1", 12 * MiB)),  # multipart (3 x 5 MiB)
        StubFile("model-00002-of-00002.safetensors", payload("w2", 3 * MiB)),
        StubFile("nested/dir/extra.bin", payload("x", 5000)),
        StubFile("empty.txt", b""),
    ]
    return StubRepo(repo_id, files, **kw)


@pytest.fixture(scope="session")
def s3_server():
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "1")
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def hub():
    stub = HubStub().start()
    yield stub
    stub.stop()


def s3_client(url: str):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required"))


@pytest.fixture
def bucket(s3_server):
    name = f"mc-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_server.url)
    client.create_bucket(Bucket=name)
    s3_server.faults.faults.clear()
    yield name


@pytest.fixture
def s3(s3_server):
    return s3_client(s3_server.url)


@pytest.fixture
def env(s3_server, hub, bucket, tmp_path):
    """Environment for a model-cache subprocess: only loopback servers, no ambient credentials."""
    # COVERAGE_*: coverage's subprocess patch follows the CLI into these processes (make test's report).
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "SYSTEMROOT") or k.startswith("COVERAGE_")}
    e = dict(keep)
    e.update({
        "MODEL_NAME": "acme/tiny-model",
        "S3_BUCKET": bucket,
        "S3_ENDPOINT_URL": s3_server.url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": HF_TOKEN,
        "HOME": str(tmp_path / "home"),
        "DOWNLOAD_DIR": str(tmp_path / "scratch"),
        "DISABLE_PROGRESS": "1",
        "MODEL_CACHE_CHUNK_MB": "5",
        "MODEL_CACHE_LEASE_TTL": "3",
        "MODEL_CACHE_LEASE_SETTLE": "0.2",
        "MODEL_CACHE_CLOCK_SKEW": "0",
        "MODEL_CACHE_POLL_INTERVAL": "0.2",
        "MODEL_CACHE_WAIT_TIMEOUT": "120",
        "S3_MAX_ATTEMPTS": "5",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "PYTHONUNBUFFERED": "1",
    })
    return e


def run_cli(args: list[str], env: dict, timeout: float = 120, check_secrets: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "model_cache", *args], env=env, capture_output=True, text=True, check=False,
                          timeout=timeout)
    if check_secrets:
        assert_no_secrets(proc.stdout + proc.stderr)
    return proc


def start_cli(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "model_cache", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def assert_no_secrets(text: str) -> None:
    for secret in (ACCESS_KEY, SECRET_KEY, HF_TOKEN):
        assert secret not in text, f"a credential leaked into the output:\n{text}"


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
