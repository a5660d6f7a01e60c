"""`python -m hf_server` as a real process: uvicorn on a loopback port, configured only by environment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from helpers import SERVER_SRC, assert_clean_error, metric_samples, parse_sse, wait_health


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start_server(tmp_path):
    procs = []

    def start(**env):
        port = _free_port()
        log = open(tmp_path / f"server-{port}.log", "w+")  # noqa: SIM115 - closed by the fixture
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),  # nothing may need a writable home beyond /tmp
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_LEVEL": "info",
            "PYTHONPATH": str(SERVER_SRC),
            "PYTHONDONTWRITEBYTECODE": "1",
            **{k: str(v) for k, v in env.items()},
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "hf_server"],
            env=full_env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append((proc, log))
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        return proc, client, log

    yield start
    for proc, log in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def test_real_server_process_serves_the_contract(start_server, tiny_model_dir):
    proc, c, log = start_server(
        MODEL_PATH=tiny_model_dir,
        SERVED_MODEL_NAME="tiny",
        QUANTIZATION="none",
        MAX_CONCURRENCY=1,
        MAX_QUEUE=2,
        HF_HUB_OFFLINE=1,
    )
    with c:
        seen = wait_health(c, 200, timeout=90)
        assert set(seen) <= {503, 200}
        health = c.get("/health").json()
        assert (health["model"], health["device"], health["attention"]) == ("tiny", "cpu", "sdpa")
        assert c.get("/v1/models").json()["data"][0]["id"] == "tiny"

        r = c.post(
            "/v1/completions",
            json={"model": "tiny", "prompt": "hello world", "max_tokens": 6, "temperature": 0},
        )
        assert r.status_code == 200 and 1 <= r.json()["usage"]["completion_tokens"] <= 6

        with c.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 8,
                "stream": True,
                "temperature": 0,
            },
        ) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            chunks = list(s.iter_text())
        events, done = parse_sse("".join(chunks))
        assert done and events[0]["choices"][0]["delta"]["role"] == "assistant"

        r = c.post("/v1/chat/completions", json={"messages": []})
        assert r.status_code == 400
        assert_clean_error(r.text, "at least one message")

        samples = metric_samples(c.get("/metrics").text)
        assert (
            samples[("hf_server_requests_total", (("endpoint", "/v1/chat/completions"), ("status", "200")))]
            == 1
        )
        assert (
            samples[("hf_server_requests_total", (("endpoint", "/v1/chat/completions"), ("status", "400")))]
            == 1
        )
        assert samples[("hf_server_generated_tokens_total", ())] >= 2

    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit status -15)
    assert proc.wait(30) in (0, -signal.SIGTERM), "SIGTERM must stop the server"
    log.seek(0)
    output = log.read()
    assert "model ready" in output and "Finished server process" in output
    assert "Traceback" not in output


def test_real_process_with_4bit_on_cpu_reports_and_logs_the_error(start_server, tiny_model_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: 4-bit loads for real (see test_gpu.py)")
    proc, c, log = start_server(MODEL_PATH=tiny_model_dir, QUANTIZATION="4bit")
    with c:
        deadline = time.monotonic() + 90
        while True:
            try:
                body = c.get("/health").json()
                if body["status"] == "error":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server died or never reported"
            time.sleep(0.1)
        r = c.get("/health")
        assert r.status_code == 503
        assert "QUANTIZATION=4bit needs an NVIDIA GPU" in r.json()["error"]
        assert r.json()["quantization"] == "4bit" and r.json()["device"] == "cpu"
    assert proc.poll() is None, "the server keeps running so the error stays visible"
    log.seek(0)
    assert "QUANTIZATION=4bit needs an NVIDIA GPU" in log.read()
