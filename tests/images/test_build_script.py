"""`make image NAME=...` (scripts/build-image.sh): the image list and secret ids come from the code, a
missing required secret fails at once naming it and the command, and secrets travel by reference only.

``DRY_RUN=1`` prints the build command the script would run, so these checks need no builder.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from components.config.images import PLATFORM_IMAGES
from scripts.lint_secrets import HF_TOKEN_SECRET, PIP_INDEX_SECRET

REPO = Path(__file__).resolve().parents[2]
TOKEN = "hf_build_script_canary_0123456789"  # pragma: allowlist secret


def build_image(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("HF_TOKEN", "NAME", "PREFETCH_MODEL", "PIP_INDEX", "PIP_INDEX_FILE")}
    return subprocess.run(["bash", "scripts/build-image.sh", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False, env={**clean, "DRY_RUN": "1", **env})


def test_prefetch_without_hf_token_fails_at_once_naming_the_secret_and_the_command() -> None:
    done = build_image("hf-server", PREFETCH_MODEL="acme/tiny-model")
    assert done.returncode == 2, done.stdout
    assert "HF_TOKEN is not set" in done.stderr and "export HF_TOKEN=" in done.stderr
    assert f"needs the build secret {HF_TOKEN_SECRET}" in done.stderr
    assert done.stdout == "", "nothing may be built"


@pytest.mark.parametrize("name", [spec.name for spec in PLATFORM_IMAGES])
def test_every_image_builds_without_any_secret_when_nothing_needs_one(name: str) -> None:
    done = build_image(name)
    assert done.returncode == 0, done.stderr
    assert f"id={HF_TOKEN_SECRET}" not in done.stdout


def test_the_token_goes_only_to_an_image_that_mounts_it_and_by_reference() -> None:
    for spec in PLATFORM_IMAGES:
        done = build_image(spec.name, HF_TOKEN=TOKEN)
        assert done.returncode == 0, done.stderr
        mounts_it = f"id={HF_TOKEN_SECRET}" in (REPO / spec.dockerfile).read_text()
        assert (f"--secret id={HF_TOKEN_SECRET},env=HF_TOKEN" in done.stdout) == mounts_it, (spec.name, done.stdout)
        assert TOKEN not in done.stdout + done.stderr


def test_the_pip_index_secret_is_passed_by_reference_from_the_environment() -> None:
    done = build_image("model-cache", PIP_INDEX="PIP_INDEX_URL=https://bot:pw@pypi.example.com/simple")
    assert f"--secret id={PIP_INDEX_SECRET},env=PIP_INDEX" in done.stdout
    assert "bot:pw" not in done.stdout + done.stderr


def test_the_image_list_is_the_one_in_the_code() -> None:
    names = ", ".join(spec.name for spec in PLATFORM_IMAGES)
    done = build_image("nope")
    assert done.returncode == 2 and f"known images are {names}" in done.stderr
    assert build_image().returncode == 2
    for spec in PLATFORM_IMAGES:
        assert f"-f {spec.dockerfile} " in build_image(spec.name).stdout


def test_the_script_spells_no_image_or_secret_id_itself() -> None:
    script = (REPO / "scripts/build-image.sh").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    for spec in PLATFORM_IMAGES:
        assert spec.dockerfile not in code
    assert "id=hf_token" not in code and "id=pip_index" not in code
    assert "--build-arg HF_TOKEN" not in script and "src=$HF_TOKEN" not in script
