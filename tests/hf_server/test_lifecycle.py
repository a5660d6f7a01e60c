"""Loading and failure states: /health during load, bad MODEL_PATH, 4-bit without a GPU, bad settings."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading

import pytest
from helpers import SERVER_SRC, GatedEngine, ThreadServer, assert_clean_error, wait_health
from hf_server import Settings, SettingsError, create_app
from hf_server.engine import ModelEngine, _StopTrimmer


def _settings(path, **kw) -> Settings:
    return Settings(model_path=str(path), quantization=kw.pop("quantization", "none"), **kw)


def test_health_is_503_while_loading_then_200(tiny_model_dir):
    gate = threading.Event()
    settings = _settings(tiny_model_dir)
    engine = GatedEngine(settings, gate)
    with ThreadServer(create_app(settings, engine=engine)) as srv, srv.client() as c:
        r = c.get("/health")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "loading" and body["model_loaded"] is False
        assert body["model"] == tiny_model_dir.name  # SERVED_MODEL_NAME unset: the folder name
        assert "error" not in body
        r = c.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2})
        assert r.status_code == 503 and r.headers["retry-after"]
        assert_clean_error(r.text, "loading")
        assert c.get("/v1/models").json()["data"][0]["ready"] is False
        gate.set()
        seen = wait_health(c, 200)
        assert set(seen) <= {503, 200}
        body = c.get("/health").json()
        assert body["status"] == "ok" and body["model_loaded"] is True and body["load_seconds"] >= 0
        assert c.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2}).status_code == 200


def _failed_health(settings: Settings) -> dict:
    engine = ModelEngine(settings)
    with ThreadServer(create_app(settings, engine=engine)) as srv, srv.client() as c:
        assert engine.wait(60), "loading never ended"
        r = c.get("/health")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "error" and body["model_loaded"] is False
        # every request that needs the model says why it cannot be served
        r2 = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert r2.status_code == 503
        assert_clean_error(r2.text, body["error"][:40])
        assert c.get("/metrics").status_code == 200
        return body


def test_missing_model_path_starts_and_says_why(tmp_path):
    missing = tmp_path / "not-restored"
    body = _failed_health(_settings(missing))
    assert str(missing) in body["error"] and "does not exist" in body["error"]


def test_model_path_that_is_a_file(tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    assert "not a directory" in _failed_health(_settings(f))["error"]


def test_model_path_without_config_json(tmp_path):
    assert "config.json" in _failed_health(_settings(tmp_path))["error"]


def test_corrupt_weights_are_reported_without_a_traceback(tmp_path, tiny_model_dir):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    body = _failed_health(_settings(broken))
    assert body["error"].startswith(f"failed to load model from {broken}")
    assert "Traceback" not in json.dumps(body) and "\n" not in body["error"]


def test_4bit_without_a_gpu_is_a_clear_error(tiny_model_dir, caplog):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: 4-bit loads for real (see test_gpu.py)")
    with caplog.at_level(logging.ERROR, logger="hf_server.engine"):
        body = _failed_health(_settings(tiny_model_dir, quantization="4bit"))
    assert body["quantization"] == "4bit"
    assert "QUANTIZATION=4bit" in body["error"] and "GPU" in body["error"]
    assert "QUANTIZATION=none" in body["error"]  # and what to do instead
    assert any("QUANTIZATION=4bit" in rec.getMessage() for rec in caplog.records), "error must be logged too"


@pytest.mark.parametrize(
    "env,needle",
    [
        ({"QUANTIZATION": "8bit"}, "QUANTIZATION='8bit' is not supported; allowed: 4bit, none"),
        ({"MAX_CONCURRENCY": "0"}, "MAX_CONCURRENCY=0 is out of range"),
        ({"MAX_QUEUE": "lots"}, "MAX_QUEUE='lots' is not an integer"),
        ({"PORT": "70000"}, "PORT=70000 is out of range"),
        ({"MAX_TOKENS_LIMIT": "100", "DEFAULT_MAX_TOKENS": "200"}, "DEFAULT_MAX_TOKENS=200 is larger"),
        ({"ATTENTION": "magic"}, "ATTENTION='magic'"),
        ({"TRUST_REMOTE_CODE": "maybe"}, "TRUST_REMOTE_CODE='maybe' is not a boolean"),
    ],
)
def test_bad_settings_name_the_variable(env, needle):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert needle in str(err.value)


def test_settings_from_env():
    s = Settings.from_env(
        {
            "MODEL_PATH": "/models/org/Llama-3-8B/",
            "QUANTIZATION": "NONE",
            "MAX_CONCURRENCY": "3",
            "MAX_QUEUE": "0",
            "MAX_TOKENS_LIMIT": "100",
            "PORT": "9000",
        }
    )
    assert (s.quantization, s.max_concurrency, s.max_queue, s.port) == ("none", 3, 0, 9000)
    assert s.served_name == "Llama-3-8B" and s.default_max_tokens == 100
    assert Settings.from_env({"MODEL_PATH": "/m", "SERVED_MODEL_NAME": "llama"}).served_name == "llama"
    # MODEL_NAME is model-cache's Hub repo id in the same pod: it never renames the served model.
    assert Settings.from_env({"MODEL_PATH": "/m/x", "MODEL_NAME": "acme/repo"}).served_name == "x"
    assert Settings.from_env({}).quantization == "4bit"  # the image's purpose; tests opt out


def test_bad_settings_exit_the_process_with_the_message():
    proc = subprocess.run(
        [sys.executable, "-m", "hf_server"],
        cwd=SERVER_SRC,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "QUANTIZATION": "int3", "HF_HUB_OFFLINE": "1"},
        timeout=60,
    )
    assert proc.returncode == 2
    assert "configuration error: QUANTIZATION='int3' is not supported" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "stops,pieces",
    [
        (["STOP"], ["abc", "deS", "TO", "Pxyz"]),
        (["STOP", "de"], ["abc", "d", "eSTOP"]),
        (["zz"], ["a", "b", "c"]),
        (["ab"], ["a", "a", "a", "b", "c"]),
    ],
)
def test_stop_trimmer_matches_a_one_shot_cut(stops, pieces):
    full = "".join(pieces)
    cuts = [full.find(s) for s in stops if s in full]
    expected = full[: min(cuts)] if cuts else full
    t = _StopTrimmer(stops)
    streamed = "".join(t.feed(p) for p in pieces) + t.flush()
    assert streamed == expected
    assert t.hit == bool(cuts)
