"""What the Dockerfiles and compose.yaml promise about build secrets, checked without a build.

- the ``pip_index`` parser (the same block in both Dockerfiles) really runs: it exports only
  PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, executes nothing from the file, and never prints a value;
- model-cache mounts no Hugging Face token; hf-server asks for it only to prefetch a model;
- compose.yaml offers each image exactly the secret ids its Dockerfile mounts, from the environment.
The real builds (tests/images/test_image_leaks.py) prove the same with buildah.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from components.config.images import PLATFORM_IMAGES
from scripts.lint_secrets import (
    BUILD_SECRETS,
    HF_TOKEN_SECRET,
    PIP_CA_SECRET,
    PIP_INDEX_SECRET,
    logical_lines,
    secret_mounts,
)
from tests.images.buildah import REPO

SPECS = {spec.name: spec for spec in PLATFORM_IMAGES}
COMPOSE = REPO / "compose.yaml"
#: The environment variable compose (and build-image.sh) reads each build secret from.
SECRET_ENV = {HF_TOKEN_SECRET: "HF_TOKEN", PIP_INDEX_SECRET: "PIP_INDEX", PIP_CA_SECRET: "PIP_CA"}  # pragma: allowlist secret
CANARY = "pipidx-canary-0123456789abcdef"  # pragma: allowlist secret


def dockerfile_text(name: str) -> str:
    return (REPO / SPECS[name].dockerfile).read_text()


def pip_index_parser(text: str) -> str:
    """The shell that turns the pip_index secret into environment variables, from the install RUN."""
    run = next(line for _, line in logical_lines(text) if f"id={PIP_INDEX_SECRET}" in line)
    match = re.search(r"set -eu;\s+(.*done < /run/secrets/pip_index;\s+fi;)", run)
    assert match, f"no pip_index parser block in: {run[:300]}"
    return match.group(1)


def test_the_pip_index_parser_is_the_same_block_in_every_dockerfile() -> None:
    blocks = {name: pip_index_parser(dockerfile_text(name)) for name in SPECS}
    assert len(set(blocks.values())) == 1, "the pip_index parsers differ: keep them identical"


def run_parser(tmp_path: Path, secret: str | None) -> subprocess.CompletedProcess[str]:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    if secret is not None:
        (secrets / PIP_INDEX_SECRET).write_text(secret)
    block = pip_index_parser(dockerfile_text("model-cache")).replace("/run/secrets/", f"{secrets}/")
    return subprocess.run(["sh", "-c", f"set -eu; {block} env"], capture_output=True, text=True, timeout=30,
                          check=False, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})


def test_the_parser_exports_only_the_expected_keys_and_runs_nothing(tmp_path: Path) -> None:
    done = run_parser(tmp_path, "# the team's index\n"
                                f"export PIP_INDEX_URL='https://bot:{CANARY}@pypi.example.com/simple'\n"
                                'PIP_EXTRA_INDEX_URL="https://a.example/simple https://b.example/simple"\n'
                                f"PIP_TRUSTED_HOST=$(touch {tmp_path}/executed)\n"
                                f". {tmp_path}/evil\n"
                                "LD_PRELOAD=/tmp/x.so\n"
                                "\n"
                                "PATH=/nowhere")  # last line without a newline is read too
    assert done.returncode == 0, done.stderr
    env = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert env["PIP_INDEX_URL"] == f"https://bot:{CANARY}@pypi.example.com/simple"
    assert env["PIP_EXTRA_INDEX_URL"] == "https://a.example/simple https://b.example/simple"
    assert "PIP_TRUSTED_HOST" not in env and "LD_PRELOAD" not in env and env["PATH"] == "/usr/bin:/bin"
    assert not (tmp_path / "executed").exists(), "a line of the secret was executed"
    assert [int(n) for n in re.findall(r"line (\d+) ignored", done.stderr)] == [4, 5, 6, 8]
    assert CANARY not in done.stderr and "example" not in done.stderr and "LD_PRELOAD" not in done.stderr


@pytest.mark.parametrize("secret", [None, ""], ids=["absent", "empty"])
def test_without_the_secret_pip_uses_the_public_index(tmp_path: Path, secret: str | None) -> None:
    done = run_parser(tmp_path, secret)
    assert done.returncode == 0 and "PIP_INDEX_URL" not in done.stdout and done.stderr == ""


def test_every_dockerfile_mounts_only_known_secrets_and_the_optional_ones_optionally() -> None:
    for name in SPECS:
        mounts = secret_mounts(dockerfile_text(name))
        assert set(mounts) <= set(BUILD_SECRETS), (name, sorted(mounts))
        assert mounts[PIP_INDEX_SECRET]["required"] == "false" and mounts[PIP_CA_SECRET]["required"] == "false"


def test_model_cache_needs_no_hugging_face_token_to_build() -> None:
    assert HF_TOKEN_SECRET not in dockerfile_text("model-cache")


def test_hf_server_asks_for_the_token_only_to_prefetch() -> None:
    text = dockerfile_text("hf-server")
    assert secret_mounts(text)[HF_TOKEN_SECRET]["required"] == "false"
    run = next(line for _, line in logical_lines(text) if f"id={HF_TOKEN_SECRET}" in line)
    assert 'if [ -n "$PREFETCH_MODEL" ]' in run and f"--secret id={HF_TOKEN_SECRET}" in run and "exit 1" in run
    assert re.search(r"^ARG PREFETCH_MODEL=\"\"$", text, re.MULTILINE), "PREFETCH_MODEL is a plain build arg"


# --- compose.yaml ---------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_builds() -> dict[str, dict]:
    """``{image name: build section}`` of every service compose builds, keyed by the PLATFORM_IMAGES name."""
    by_context = {spec.context: spec for spec in PLATFORM_IMAGES}
    builds: dict[str, dict] = {}
    for service, body in compose()["services"].items():
        build = body.get("build")
        if build is None:
            continue
        spec = by_context.get(build["context"])
        assert spec is not None, f"compose service {service} builds {build['context']}, not a platform image"
        assert f"{build['context']}/{build.get('dockerfile', 'Dockerfile')}" == spec.dockerfile, service
        builds[spec.name] = build
    return builds


def test_compose_builds_every_platform_image() -> None:
    assert set(compose_builds()) == set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_compose_secret_ids_match_the_dockerfile_mounts(name: str) -> None:
    build = compose_builds()[name]
    ids = {s if isinstance(s, str) else s.get("target", s["source"]) for s in build.get("secrets", [])}
    assert ids == set(secret_mounts(dockerfile_text(name))), (
        f"compose.yaml gives {name} the secrets {sorted(ids)}, its Dockerfile mounts "
        f"{sorted(secret_mounts(dockerfile_text(name)))}")


def test_compose_secrets_come_from_the_environment_never_a_file_or_a_build_arg() -> None:
    declared = compose()["secrets"]
    assert {k: v.get("environment") for k, v in declared.items()} == SECRET_ENV
    for name, build in compose_builds().items():
        for arg in build.get("args", {}):
            assert not re.search(r"TOKEN|INDEX_URL|PASSWORD|SECRET", arg, re.IGNORECASE), (name, arg)


def test_env_is_ignored_and_the_example_holds_no_value() -> None:
    for name in (".env", ".env.local"):
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO, check=False, timeout=30)
        assert ignored.returncode == 0, f"{name} must be git-ignored"
    assert subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=REPO, check=False,
                          timeout=30).returncode == 1, ".env.example must be committable"
    example = (REPO / ".env.example").read_text()
    for var in SECRET_ENV.values():
        assert re.search(rf"^{var}=$", example, re.MULTILINE), f".env.example lacks an empty {var}="
