"""Static checks of what the image is built from: quantization config, Dockerfile.hf rules, pins."""

from __future__ import annotations

import re

import pytest
from helpers import SERVER_SRC

DOCKERFILE = SERVER_SRC / "Dockerfile.hf"
REQUIREMENTS = ("requirements.txt", "requirements-test.txt", "requirements-buildtest.txt")


def test_4bit_config_is_nf4_double_quant_bf16():
    import torch
    import transformers
    from hf_server.engine import nf4_config

    cfg = nf4_config(transformers, torch.bfloat16)
    assert cfg.load_in_4bit and not cfg.load_in_8bit
    assert cfg.bnb_4bit_quant_type == "nf4"
    assert cfg.bnb_4bit_use_double_quant is True
    assert cfg.bnb_4bit_compute_dtype == torch.bfloat16


def _instructions() -> list[str]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    text = DOCKERFILE.read_text()
    out, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            if current.strip():
                out.append(current.strip())
            current = ""
    return out


def test_dockerfile_rules():
    text = DOCKERFILE.read_text()
    assert text.splitlines()[0] == "# syntax=docker/dockerfile:1"
    instructions = _instructions()
    assert instructions[0].startswith("ARG BASE_IMAGE=nvidia/cuda:") and "runtime-ubuntu" in instructions[0]
    assert any(i.startswith("FROM ${BASE_IMAGE}") for i in instructions)
    token_runs = [i for i in instructions if "id=hf_token" in i]
    assert len(token_runs) == 1, "exactly one RUN may see the HF token"
    # Needed only to prefetch: optional mount, and a prefetch without it fails naming the secret.
    assert "required=false" in token_runs[0] and "hf_token.sha256-prefix" in token_runs[0]
    assert "--secret id=hf_token" in token_runs[0] and "exit 1" in token_runs[0]
    assert [i for i in instructions if "id=pip_index" in i] == [i for i in instructions if "pip install" in i]
    for inst in instructions:
        keyword = inst.split()[0]
        if keyword in ("ARG", "ENV"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", inst)
            assert not [
                n for n in names if re.search(r"TOKEN|SECRET|PASSWORD|INDEX_URL|API_?KEY", n, re.IGNORECASE)
            ], inst
    final_stage = instructions[max(i for i, inst in enumerate(instructions) if inst.startswith("FROM")) :]
    assert "USER 1000:1000" in final_stage
    env = " ".join(i for i in final_stage if i.startswith("ENV"))
    assert "HF_HUB_OFFLINE=1" in env and "HOME=/tmp" in env
    assert any(i.startswith("ARG REQUIREMENTS=requirements.txt") for i in instructions)
    for label in ("source", "revision"):
        assert f"org.opencontainers.image.{label}=" in " ".join(final_stage)


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (SERVER_SRC / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", line)
            assert m, f"{name}: {line!r} is not an exact pin"
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


@pytest.mark.parametrize("other", REQUIREMENTS[1:])
def test_requirement_files_pin_the_same_versions(other):
    """The CPU test venv and the build-test image must test what the GPU image ships."""
    image, pins = _pins("requirements.txt"), _pins(other)
    drift = {k: (image[k], v) for k, v in pins.items() if k in image and image[k] != v}
    assert not drift, f"{other} differs from requirements.txt: {drift}"
    assert {"fastapi", "uvicorn", "pydantic", "prometheus-client"} <= set(pins)


def test_test_venv_has_what_requirements_test_pins():
    from importlib.metadata import version

    for name, pinned in _pins("requirements-test.txt").items():
        installed = version(name)
        assert installed.split("+")[0] == pinned, f"{name}: .venv-hf has {installed}, pinned {pinned}"
