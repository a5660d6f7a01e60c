"""GPU-only checks: the 4-bit nf4 path, /health's VRAM figure, the attention choice and its reason.

Skipped with the reason printed where torch sees no CUDA device (conftest); run them on a GPU machine:
    bash scripts/test.d/60-hf-server.sh -m gpu -rA
"""

from __future__ import annotations

import gc
import importlib.util

import pytest
from helpers import ThreadServer, wait_health
from hf_server import Settings, create_app
from hf_server.app import LIVENESS_PATH, READINESS_PATH
from hf_server.engine import ModelEngine, flash_attention_support

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu_model_dir(tmp_path_factory):
    """Big enough that 4-bit weights visibly take less VRAM than bf16 (~50M parameters)."""
    from hf_server.tiny import make_tiny_model

    return make_tiny_model(
        tmp_path_factory.mktemp("gpu-model"),
        hidden_size=1024,
        layers=4,
        heads=8,
        kv_heads=8,
        intermediate_size=2816,
        context=1024,
    )


def _load(path, quantization: str) -> tuple[ModelEngine, float]:
    import torch

    gc.collect()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated(0)
    engine = ModelEngine(Settings(model_path=str(path), quantization=quantization))
    engine.start()
    assert engine.wait(300) and engine.ready, engine.error
    return engine, (torch.cuda.memory_allocated(0) - before) / 2**30


def _unload(engine: ModelEngine) -> None:
    import torch

    engine.model = None
    gc.collect()
    torch.cuda.empty_cache()


def test_4bit_is_nf4_with_double_quant_and_bf16_compute(gpu_model_dir):
    import bitsandbytes as bnb
    import torch

    engine, used = _load(gpu_model_dir, "4bit")
    try:
        layer = engine.model.model.layers[0].self_attn.q_proj
        assert isinstance(layer, bnb.nn.Linear4bit)
        state = layer.weight.quant_state
        assert state.quant_type == "nf4"
        assert state.nested, "double quantization quantizes the quant constants too"
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        assert layer.compute_dtype == expected
        health = engine.health()
        assert health["quantization"] == "4bit" and health["device"].startswith("cuda:0")
        assert health["vram_used_gb"] >= used > 0
        print(
            f"\n4-bit: weights {used:.3f} GiB, /health vram_used_gb={health['vram_used_gb']}, "
            f"attention={health['attention']}, device={health['device']}"
        )
    finally:
        _unload(engine)


def test_4bit_takes_well_under_half_the_vram_of_bf16(gpu_model_dir):
    e16, bf16 = _load(gpu_model_dir, "none")
    assert e16.dtype == "bfloat16" or e16.dtype == "float16"
    _unload(e16)
    e4, q4 = _load(gpu_model_dir, "4bit")
    _unload(e4)
    print(f"\nVRAM for the weights: bf16 {bf16:.3f} GiB, 4-bit {q4:.3f} GiB, ratio {q4 / bf16:.2f}")
    assert q4 < 0.5 * bf16


def test_attention_is_flash_attention_2_exactly_when_supported(gpu_model_dir):
    import torch

    engine, _ = _load(gpu_model_dir, "none")
    try:
        supported, why = flash_attention_support(torch, True, torch.bfloat16)
        expected = "flash_attention_2" if supported else "sdpa"
        health = engine.health()
        assert health["attention"] == expected == engine.model.config._attn_implementation, why
        # /health says why, in the same words as the check that decided it.
        assert why in health["attention_reason"] and health["attention_reason"].startswith("auto: ")
        print(
            f"\nflash_attn installed: {importlib.util.find_spec('flash_attn') is not None}; "
            f"attention={engine.attention} ({why})"
        )
    finally:
        _unload(engine)


def test_4bit_server_generates_over_http(gpu_model_dir):
    settings = Settings(model_path=str(gpu_model_dir), quantization="4bit", served_model_name="gpu-tiny")
    with ThreadServer(create_app(settings)) as srv, srv.client() as c:
        wait_health(c, 200, timeout=300)
        health = c.get("/health").json()
        assert health["vram_used_gb"] > 0 and health["quantization"] == "4bit"
        assert health["attention"] in ("flash_attention_2", "sdpa") and health["attention_reason"]
        assert c.get(READINESS_PATH).status_code == 200 and c.get(LIVENESS_PATH).status_code == 200
        r = c.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16, "temperature": 0},
        )
        assert r.status_code == 200, r.text
        assert 1 <= r.json()["usage"]["completion_tokens"] <= 16
