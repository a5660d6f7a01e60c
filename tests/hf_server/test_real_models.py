"""What real models need from the server: probes that split process from model, model code only when
trusted, and an attention choice reported truthfully with its reason. CPU; the GPU side is test_gpu.py."""

from __future__ import annotations

import json
import shutil
import sys
import threading

import pytest
from helpers import GatedEngine, ThreadServer, wait_health
from hf_server import Settings, create_app
from hf_server.app import HEALTH_PATH, LIVENESS_PATH, READINESS_PATH
from hf_server.engine import ModelEngine, flash_attention_support


def _settings(path, **kw) -> Settings:
    return Settings(model_path=str(path), quantization="none", **kw)


def test_liveness_answers_while_loading_and_after_a_failed_load_readiness_does_not(tiny_model_dir, tmp_path):
    gate = threading.Event()
    engine = GatedEngine(_settings(tiny_model_dir), gate)
    with ThreadServer(create_app(engine.settings, engine=engine)) as srv, srv.client() as c:
        assert c.get(LIVENESS_PATH).status_code == 200
        ready = c.get(READINESS_PATH)
        assert ready.status_code == 503 and ready.json() == {"status": "loading"} and ready.headers["retry-after"]
        gate.set()
        wait_health(c, 200)
        assert c.get(READINESS_PATH).json() == {"status": "ready"}
        assert c.get(LIVENESS_PATH).status_code == 200

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    engine = ModelEngine(_settings(broken))
    with ThreadServer(create_app(engine.settings, engine=engine)) as srv, srv.client() as c:
        assert engine.wait(60) and engine.state == "error"
        # The process is fine: a liveness probe must not restart it forever over a bad model...
        assert c.get(LIVENESS_PATH).status_code == 200
        # ...while readiness keeps it out of the Service, and both readiness and /health keep the reason.
        ready, health = c.get(READINESS_PATH), c.get(HEALTH_PATH)
        assert ready.status_code == 503 and health.status_code == 503
        assert ready.json()["error"] == health.json()["error"] and str(broken) in ready.json()["error"]


def _custom_code_model(tiny_model_dir, dest):
    """The tiny Llama as a model family transformers does not know, whose classes ship in the folder."""
    shutil.copytree(tiny_model_dir, dest)
    (dest / "configuration_tinycustom.py").write_text(
        "from transformers import LlamaConfig\n\n"
        "class TinyCustomConfig(LlamaConfig):\n    model_type = 'tinycustom'\n"
    )
    (dest / "modeling_tinycustom.py").write_text(
        "from transformers import LlamaForCausalLM\n"
        "from .configuration_tinycustom import TinyCustomConfig\n\n"
        "class TinyCustomForCausalLM(LlamaForCausalLM):\n    config_class = TinyCustomConfig\n"
    )
    config = json.loads((dest / "config.json").read_text())
    config.update(
        model_type="tinycustom",
        architectures=["TinyCustomForCausalLM"],
        auto_map={
            "AutoConfig": "configuration_tinycustom.TinyCustomConfig",
            "AutoModelForCausalLM": "modeling_tinycustom.TinyCustomForCausalLM",
        },
    )
    (dest / "config.json").write_text(json.dumps(config))
    return dest


@pytest.fixture
def custom_model_dir(tiny_model_dir, tmp_path, monkeypatch):
    # transformers copies the model's code into HF_HOME/modules: keep that inside the test's folder.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf-home" / "modules"))
    return _custom_code_model(tiny_model_dir, tmp_path / "custom")


def test_model_code_is_not_run_unless_trusted(custom_model_dir):
    engine = ModelEngine(_settings(custom_model_dir))
    engine.start()
    assert engine.wait(120) and engine.state == "error"
    assert "ships its own code" in engine.error and "TRUST_REMOTE_CODE" in engine.error
    assert engine.health()["trust_remote_code"] is False
    assert not [m for m in sys.modules if "tinycustom" in m], "the model's code was imported"


def test_trusted_model_code_loads_and_serves(custom_model_dir):
    settings = _settings(custom_model_dir, trust_remote_code=True)
    with ThreadServer(create_app(settings)) as srv, srv.client() as c:
        wait_health(c, 200, timeout=120)
        assert c.get(HEALTH_PATH).json()["trust_remote_code"] is True
        r = c.post("/v1/completions", json={"prompt": "the quick", "max_tokens": 3, "temperature": 0})
        assert r.status_code == 200, r.text
    assert [m for m in sys.modules if m.endswith("modeling_tinycustom")], "the model's own class was used"


def test_trust_remote_code_comes_from_the_environment():
    assert Settings.from_env({}).trust_remote_code is False
    assert Settings.from_env({"TRUST_REMOTE_CODE": "true"}).trust_remote_code is True
    assert Settings.from_env({"TRUST_REMOTE_CODE": "0"}).trust_remote_code is False


@pytest.mark.parametrize(
    ("attention", "reason"),
    [("auto", "auto: no CUDA GPU is present, so PyTorch SDPA"), ("eager", "ATTENTION=eager was set")],
)
def test_health_reports_the_attention_in_use_and_why(tiny_model_dir, attention, reason):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: test_gpu.py checks the choice there")
    engine = ModelEngine(_settings(tiny_model_dir, attention=attention))
    engine.start()
    assert engine.wait(120) and engine.ready, engine.error
    health = engine.health()
    expected = "sdpa" if attention == "auto" else attention
    assert health["attention"] == expected == engine.model.config._attn_implementation
    assert health["attention_reason"] == reason


def test_flash_attn_that_is_installed_but_broken_is_not_used(tmp_path, monkeypatch):
    """An installed flash_attn built for another torch fails at import: that means SDPA, with the reason."""
    import torch

    package = tmp_path / "flash_attn"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('undefined symbol: _ZN3c104cuda9SetDevice')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
    # The import is checked before the GPU is asked anything, so cuda=True is safe on a CPU machine.
    ok, why = flash_attention_support(torch, True, torch.bfloat16)
    assert not ok
    assert why.startswith("the flash_attn package is installed but does not import") and "undefined symbol" in why
