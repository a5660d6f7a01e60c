"""`make image NAME=...` (scripts/build-image.sh) fails at once, naming what is missing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def build_image(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "NAME")}
    return subprocess.run(["bash", "scripts/build-image.sh", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False, env={**clean, **env})


@pytest.mark.parametrize("name", ["model-cache", "hf-server"])
def test_missing_hf_token_fails_at_once_naming_the_variable(name: str) -> None:
    done = build_image(name)
    assert done.returncode == 2
    assert "HF_TOKEN is not set" in done.stderr and "export HF_TOKEN=" in done.stderr
    assert "required=true" in done.stderr


def test_unknown_or_missing_image_name_lists_the_known_ones() -> None:
    done = build_image("nope", HF_TOKEN="x")
    assert done.returncode == 2 and "model-cache, hf-server" in done.stderr
    assert build_image().returncode == 2


def test_the_token_is_passed_by_reference_never_on_a_command_line() -> None:
    script = (REPO / "scripts/build-image.sh").read_text()
    assert "--secret id=hf_token,env=HF_TOKEN" in script
    assert "--build-arg HF_TOKEN" not in script and "src=$HF_TOKEN" not in script
