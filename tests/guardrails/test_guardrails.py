"""The secret guardrails catch what they claim to: scripts/lint_secrets.py rules and detect-secrets."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.lint_secrets import lint, lint_dockerfile

REPO = Path(__file__).resolve().parents[2]
GOOD = """# syntax=docker/dockerfile:1
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ENV PIP_NO_CACHE_DIR=1 HOME=/tmp
RUN --mount=type=secret,id=hf_token,required=true \\
    sha256sum /run/secrets/hf_token | cut -c1-12 > /opt/fp
USER 1000:1000
"""


def dockerfile(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return lint_dockerfile(path)


def test_the_repository_dockerfiles_pass() -> None:
    for path in (REPO / "images/model-cache/Dockerfile", REPO / "images/hf-server/Dockerfile.hf"):
        assert lint_dockerfile(path) == [], path


def test_a_good_dockerfile_passes(tmp_path: Path) -> None:
    assert dockerfile(tmp_path, GOOD) == []


@pytest.mark.parametrize(("change", "rule"), [
    (("# syntax=docker/dockerfile:1\n", ""), "D1"),
    (("ENV PIP_NO_CACHE_DIR=1", "ENV HF_TOKEN=abc PIP_NO_CACHE_DIR=1"), "D2"),
    (("ARG BASE_IMAGE", "ARG GITHUB_PASSWORD\nARG BASE_IMAGE"), "D2"),
    (("ENV PIP_NO_CACHE_DIR=1 HOME=/tmp", "ENV hfToken x"), "D2"),
    (("ENV PIP_NO_CACHE_DIR=1", "ENV PIP_INDEX_URL=https://bot:pw@pypi.example.com/simple"), "D3"),
    (("RUN --mount=type=secret,id=hf_token,required=true \\\n", "RUN "), "D4"),
    (("required=true", "required=false"), "D5"),
    (("USER 1000:1000\n", "USER 1000\nFROM scratch\n"), "D6"),
    (("USER 1000:1000\n", "USER root\n"), "D6"),
])
def test_each_dockerfile_rule_fires(tmp_path: Path, change: tuple[str, str], rule: str) -> None:
    old, new = change
    assert old in GOOD
    problems = dockerfile(tmp_path, GOOD.replace(old, new, 1))
    assert any(f" {rule} " in p for p in problems), problems


def test_a_secret_read_in_another_step_is_caught(tmp_path: Path) -> None:
    text = GOOD.replace("USER 1000:1000", "RUN cat /run/secrets/hf_token > /leak\nUSER 1000:1000")
    assert any("D4" in p for p in dockerfile(tmp_path, text))


@pytest.mark.parametrize(("name", "content", "rule"), [
    (".netrc", "machine github.com login bot password x\n", "C1"),
    (".npmrc", "//registry.npmjs.org/:_authToken=npm_abc\n", "C2"),
    (".pypirc", "[pypi]\nusername = __token__\npassword = pypi-abc\n", "C3"),
    ("pip.conf", "[global]\nindex-url = https://bot:pw@pypi.example.com/simple\n", "C3"),
    (".env", "HF_TOKEN=hf_abc\n", "C4"),
    (".env.local", "export AWS_SECRET_ACCESS_KEY=abc\n", "C4"),
    ("deploy_key", "-----BEGIN OPENSSH " + "PRIVATE KEY-----\nabc\n", "C6"),  # split: this file is linted too
])
def test_committed_credential_files_are_caught(tmp_path: Path, name: str, content: str, rule: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    problems = lint([path])
    assert problems and rule in problems[0], problems


@pytest.mark.parametrize(("name", "content"), [
    (".npmrc", "fund=false\naudit=false\n"),
    (".env.example", "HF_TOKEN=\nAWS_SECRET_ACCESS_KEY=\n"),
    (".env", "# HF_TOKEN=\nEMPTY=''\n"),
])
def test_harmless_files_pass(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert lint([path]) == []


def test_the_repository_is_clean() -> None:
    done = subprocess.run([sys.executable, "scripts/lint_secrets.py"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_detect_secrets_baseline_catches_a_new_secret(tmp_path: Path) -> None:
    hook = Path(sys.executable).parent / "detect-secrets-hook"
    if not hook.exists():
        pytest.skip("detect-secrets is not installed in this environment")
    baseline = tmp_path / "baseline"
    shutil.copy(REPO / ".secrets.baseline", baseline)
    leak = tmp_path / "config.py"
    leak.write_text('AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"\n'
                    'aws_access_key_id = "AKIAZ7VQ3X5MXEXAMPLE"\n')
    done = subprocess.run([str(hook), "--baseline", str(baseline), str(leak)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, check=False)  # the hook runs git: it needs a repository as cwd
    assert done.returncode == 1, done.stdout + done.stderr
    assert "AWS Access Key" in done.stdout + done.stderr
