"""The gateway as a real process (uvicorn on 127.0.0.1, a free port), with a loopback S3 and Hub stand-ins.

The S3 server, the model Hub stand-in and the model-cache CLI helpers are tests/model_cache's
own (imported, not copied); the account/repo API stand-in is tests/hub_gateway/hubwrite.py.
The gateway process dies with the test process (PR_SET_PDEATHSIG) and is stopped at teardown.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.model_cache import conftest as model_cache_fixtures
from tests.model_cache.conftest import ACCESS_KEY, HF_TOKEN, SECRET_KEY, run_cli, small_repo

from .hubwrite import WriteHub

# Team tokens of the callers file (fake, test-only values).
TEAM_A_TOKEN = "gwtest-team-a-0123456789abcdef0123456789"  # pragma: allowlist secret
TEAM_RO_TOKEN = "gwtest-read-only-0123456789abcdef01234567"  # pragma: allowlist secret
CALLERS = {
    "team-a": {"token": TEAM_A_TOKEN, "write": ["team-a", "gw-owner"], "delete": ["team-a/scratch-*"]},
    "readers": {"token": TEAM_RO_TOKEN},
}
SECRETS = (ACCESS_KEY, SECRET_KEY, HF_TOKEN, TEAM_A_TOKEN, TEAM_RO_TOKEN)
PR_SET_PDEATHSIG = 1

# tests/model_cache's fixtures, registered here too: the loopback S3 server, a fresh bucket, the
# model Hub stand-in and model-cache's subprocess environment.
s3_server = model_cache_fixtures.s3_server
bucket = model_cache_fixtures.bucket
hub = model_cache_fixtures.hub
env = model_cache_fixtures.env
s3 = model_cache_fixtures.s3


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Gateway:
    url: str
    proc: subprocess.Popen
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def records(self) -> list[dict]:
        out = []
        for line in self.logs().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def audit(self) -> list[dict]:
        return [r for r in self.records() if r.get("audit")]

    def peak_rss_bytes(self) -> int:
        """The process's peak resident set (VmHWM), in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def gateway_env(base: dict[str, str], hf_endpoint: str, **extra: str) -> dict[str, str]:
    """The gateway's environment: the model-cache test env's S3 settings, nothing ambient."""
    e = {k: v for k, v in base.items() if k in (
        "PATH", "LANG", "LC_ALL", "S3_BUCKET", "S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
        "AWS_EC2_METADATA_DISABLED", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "HOME")}
    e.update({"HF_ENDPOINT": hf_endpoint, "HF_TOKEN": HF_TOKEN, "HOST": "127.0.0.1", "PORT": "0",
              "GATEWAY_CALLERS": json.dumps(CALLERS), "GATEWAY_UPSTREAM_TIMEOUT": "5",
              "GATEWAY_CONNECT_TIMEOUT": "2", "PYTHONUNBUFFERED": "1", "S3_MAX_ATTEMPTS": "2",
              "HF_HUB_DISABLE_TELEMETRY": "1"})
    e.update(extra)
    return e


def start_gateway(environ: dict[str, str], log_path: Path, timeout: float = 30) -> Gateway:
    log = open(log_path, "wb")  # noqa: SIM115 (the child writes to it for its whole life)
    proc = subprocess.Popen([sys.executable, "-m", "hub_gateway"], env=environ, stdout=log,
                            stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent)  # noqa: PLW1509 (only prctl before exec)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the gateway exited with {proc.returncode}:\n{log_path.read_text()}")
        m = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", log_path.read_text(errors="replace"))
        if m:
            gw = Gateway(m.group(1), proc, log_path)
            with urllib.request.urlopen(f"{gw.url}/healthz", timeout=5) as r:
                assert r.status == 200
            return gw
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the gateway did not start within {timeout}s:\n{log_path.read_text()}")


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """``launch(env)`` starts a gateway; every one is stopped at teardown, and none may log a secret."""
    started: list[Gateway] = []

    def run(environ: dict[str, str]) -> Gateway:
        gw = start_gateway(environ, tmp_path / f"gateway-{len(started)}.log")
        started.append(gw)
        return gw

    yield run
    for gw in started:
        gw.stop()
        text = gw.logs()
        for secret in SECRETS:
            assert secret not in text, "a token or key reached the gateway's log"


@pytest.fixture
def write_hub() -> Iterator[WriteHub]:
    stub = WriteHub(token=HF_TOKEN).start()
    yield stub
    stub.stop()


@pytest.fixture
def proxy(launch, write_hub, env) -> Gateway:
    """A gateway in front of the account/repo stand-in (root-level gpt2 on its allow-list)."""
    return launch(gateway_env(env, write_hub.url, GATEWAY_ALLOW_REPOS="gpt2"))


@pytest.fixture
def cached(env, hub):
    """acme/tiny-model put in the bucket by the real `model-cache ensure`; returns the stub repo."""
    repo = hub.add_repo(small_repo())
    done = run_cli(["ensure"], env)
    assert done.returncode == 0, done.stderr
    return repo


@pytest.fixture
def mirror(launch, env, hub, cached) -> Gateway:
    """A gateway whose bucket caches acme/tiny-model; upstream is the model Hub stand-in."""
    return launch(gateway_env(env, hub.url, GATEWAY_ALLOW_REPOS="acme/allowed-*"))


def clean_hf_env(tmp_path: Path) -> dict[str, str]:
    """An environment for a huggingface_hub subprocess: its own cache, no token anywhere."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    return {**keep, "HF_HOME": str(tmp_path / "hf-home"), "HOME": str(tmp_path / "home"),
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
