"""The guardrail (scripts/lint_secrets.py) on what the image area depends on: credential-named build args,
secret files sourced as shell, and committed .env / .npmrc files that hold a value."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.lint_secrets import lint, lint_dockerfile, repository_files

HEAD = "# syntax=docker/dockerfile:1\nFROM python:3.11-slim\n"
TAIL = "USER 1000:1000\n"


def rules(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "Dockerfile"
    path.write_text(HEAD + body + TAIL)
    return [p.split(": ", 1)[1].split(" ", 1)[0] for p in lint_dockerfile(path)]


@pytest.mark.parametrize("name", ["HFTOKEN", "DBPASSWORD", "GITHUBSECRET", "OPENAIAPIKEY", "ADMINPASSWD"])
@pytest.mark.parametrize("op", ["ARG", "ENV"])
def test_suffix_only_credential_names_are_caught(tmp_path: Path, op: str, name: str) -> None:
    # No separator, so no word of the name is a credential word: only the suffix rule catches these.
    assert rules(tmp_path, f"{op} {name}=x\n") == ["D2"]


@pytest.mark.parametrize("name", ["TOKENIZERS_PARALLELISM", "PASSENGER_COUNT", "KEYBOARD", "MODEL_PATH"])
def test_names_that_only_start_like_a_credential_pass(tmp_path: Path, name: str) -> None:
    assert rules(tmp_path, f"ENV {name}=1\n") == []


@pytest.mark.parametrize("run", [
    "RUN --mount=type=secret,id=pip_index . /run/secrets/pip_index && pip install x\n",
    "RUN --mount=type=secret,id=pip_index set -a; source /run/secrets/pip_index; pip install x\n",
    "RUN --mount=type=secret,id=pip_index if true; then . '/run/secrets/pip_index'; fi\n",
])
def test_a_secret_sourced_as_shell_is_caught(tmp_path: Path, run: str) -> None:
    assert rules(tmp_path, run) == ["D7"]


def test_a_parsed_secret_and_a_conditionally_needed_token_pass(tmp_path: Path) -> None:
    assert rules(tmp_path, "RUN --mount=type=secret,id=pip_index,required=false "
                           "while read -r l; do :; done < /run/secrets/pip_index\n") == []
    conditional = ("RUN --mount=type=secret,id=hf_token,required=false "
                   "if [ -n \"$M\" ] && [ ! -s /run/secrets/hf_token ]; then "
                   "echo 'build with --secret id=hf_token,env=HF_TOKEN' >&2; exit 1; fi\n")
    assert rules(tmp_path, conditional) == []
    assert rules(tmp_path, conditional.replace("--secret id=hf_token,env=HF_TOKEN", "a token")) == ["D5"]


@pytest.mark.parametrize(("name", "content", "rule"), [
    (".npmrc", "registry=https://npm.example.com/\n//npm.example.com/:_authToken=npm_abc123\n", "C2"),  # pragma: allowlist secret
    (".npmrc", "//npm.example.com/:_auth = dXNlcjpwYXNz\n", "C2"),
    (".env", "PIP_INDEX=PIP_INDEX_URL=https://u:p@pypi.example.com/simple\n", "C4"),
    (".env", "HF_TOKEN='hf_abc'\n", "C4"),
])
def test_a_env_or_npmrc_with_a_value_is_refused(tmp_path: Path, name: str, content: str, rule: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    problems = lint([path])
    assert problems and f" {rule} " in problems[0], problems


@pytest.mark.parametrize(("name", "content"), [
    (".npmrc", "registry=https://npm.example.com/\n//npm.example.com/:_authToken=${NPM_TOKEN}\n"),
    (".env", "HF_TOKEN=\nPIP_INDEX=\n"),
])
def test_references_and_empty_values_pass(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert lint([path]) == []


def test_a_force_added_env_is_linted_and_an_ignored_one_is_not(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, timeout=30)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text(".env\n.env.*\n!.env.example\n")
    (tmp_path / ".env").write_text("HF_TOKEN=hf_local_only\n")
    (tmp_path / ".env.example").write_text("HF_TOKEN=\n")
    assert lint(repository_files(tmp_path)) == [], "an ignored .env is no commit candidate"
    git("add", "-f", ".env")
    problems = lint(repository_files(tmp_path))
    assert len(problems) == 1 and ".env:1: C4" in problems[0], problems
