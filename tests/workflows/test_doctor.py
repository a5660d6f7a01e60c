"""`make doctor STACK=...` (scripts/doctor.py) on real stack files, with and without the secrets.

Each case copies the committed stack file, workflows and pyproject.toml into a scratch root,
changes what the case is about, and runs the script as `make doctor` does, with a PATH that holds
only fake tools answering as the real ones (`pulumi version` -> v3.272.0, `docker buildx version`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.workflows.wf import ROOT

DOCTOR = ROOT / "scripts" / "doctor.py"
SECURE = {"secure": "v1:c2FsdHNhbHQ=:AAABAFakeCiphertextOnlyForTheTest0000000000"}  # pragma: allowlist secret
TOOLS = {
    "pulumi": 'echo "v3.272.0"',
    "uv": 'echo "uv 0.13.9 (x86_64-unknown-linux-gnu)"',
    "docker": '[ "$1 $2" = "buildx version" ] && echo "github.com/docker/buildx v0.20.0" || exit 1',
}


def _root(tmp_path: Path, stack: str, edit=None, tools: dict[str, str] | None = None) -> tuple[Path, Path]:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / ".github" / "workflows", root / ".github" / "workflows")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    if edit:
        edit(data)
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(data))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (TOOLS if tools is None else tools).items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return root, bin_dir


def _doctor(root: Path, bin_dir: Path, stack: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DOCTOR), "--stack", stack, "--root", str(root)],
                          env={"PATH": str(bin_dir)}, capture_output=True, text=True, check=False, timeout=60)


def _with_secrets(data: dict) -> None:
    data["config"]["gpu-platform:hfToken"] = SECURE
    data["config"]["gpu-platform:registryPassword"] = SECURE


def _missing(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.strip().startswith("MISSING")]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stack_files_lack_the_secrets_and_doctor_says_how_to_set_them(tmp_path: Path, stack: str) -> None:
    done = _doctor(*_root(tmp_path, stack), stack)
    assert done.returncode == 1
    # dev builds the images (pushes need the registry token); prod runs dev's digests and builds nothing.
    pushes = "; buildImages is true (image pushes)" if stack == "dev" else ""
    assert _missing(done.stdout) == [
        (f"MISSING  gpu-platform:hfToken is not set; needed because githubRepository is set (the Actions secret "
        f"HF_TOKEN). Fix: pulumi config set --secret hfToken <value> -s {stack}"),
        (f"MISSING  gpu-platform:registryPassword is not set; needed because registryUsername is set (the pull "
        f"secret){pushes}. Fix: pulumi config set --secret registryPassword <value> -s {stack}"),
    ]
    assert done.stdout.rstrip().endswith("2 missing: fix the MISSING lines above")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_files_with_encrypted_secrets_pass(tmp_path: Path, stack: str) -> None:
    done = _doctor(*_root(tmp_path, stack, _with_secrets), stack)
    assert done.returncode == 0, done.stdout
    assert f"ok       gpu-platform:hfToken is set and encrypted (secure: in Pulumi.{stack}.yaml)" in done.stdout
    assert "ok       pulumi 3.272.0" in done.stdout
    # Only a stack that builds images needs Docker; prod runs dev's digests.
    assert ("ok       docker with buildx" in done.stdout) is (stack == "dev")
    assert f"on GitHub (not checkable here): environment '{stack}' exists" in done.stdout
    assert SECURE["secure"] not in done.stdout


def test_a_plaintext_secret_is_a_leak_to_rotate(tmp_path: Path) -> None:
    def edit(data: dict) -> None:
        _with_secrets(data)
        data["config"]["gpu-platform:hfToken"] = "hf_plaintextvalue"  # pragma: allowlist secret

    done = _doctor(*_root(tmp_path, "dev", edit), "dev")
    assert done.returncode == 1
    (line,) = _missing(done.stdout)
    assert "hfToken is in plain text" in line and "rotate the value" in line
    assert "hf_plaintextvalue" not in done.stdout


def test_the_stacks_github_environment_must_get_its_token(tmp_path: Path) -> None:
    def edit(data: dict) -> None:
        _with_secrets(data)
        data["config"]["gpu-platform:githubEnvironments"] = ["staging"]

    done = _doctor(*_root(tmp_path, "dev", edit), "dev")
    (line,) = _missing(done.stdout)
    assert "githubEnvironments lacks 'dev'" in line and "images.yml scans for" in line


def test_secrets_from_an_esc_environment_are_a_warning(tmp_path: Path) -> None:
    def edit(data: dict) -> None:
        data["environment"] = ["gpu-platform/dev-secrets"]

    done = _doctor(*_root(tmp_path, "dev", edit), "dev")
    assert done.returncode == 0, done.stdout
    assert "warn     gpu-platform:hfToken is not in Pulumi.dev.yaml" in done.stdout


def test_prod_open_to_the_internet_is_missing_a_real_allow_list(tmp_path: Path) -> None:
    def edit(data: dict) -> None:
        _with_secrets(data)
        data["config"]["gpu-platform:apiAllowedCidrs"] = ["0.0.0.0/0"]

    (line,) = _missing(_doctor(*_root(tmp_path, "prod", edit), "prod").stdout)
    assert "apiAllowedCidrs of prod is ['0.0.0.0/0']" in line


def test_missing_tools_and_a_wrong_cli_release(tmp_path: Path) -> None:
    tools = {"pulumi": 'echo "v3.100.0"'}
    done = _doctor(*_root(tmp_path, "dev", _with_secrets, tools), "dev")
    missing = _missing(done.stdout)
    assert any(m.startswith("MISSING  uv is not on PATH") for m in missing)
    assert any(m.startswith("MISSING  docker is not on PATH, and buildImages is true") for m in missing)
    assert "warn     pulumi 3.100.0 on PATH; CI runs 3.272.0" in done.stdout
    assert "warn     buildah is not on PATH" in done.stdout


def test_an_unknown_stack_names_the_real_ones(tmp_path: Path) -> None:
    root, bin_dir = _root(tmp_path, "dev")
    done = _doctor(root, bin_dir, "stagin")
    assert done.returncode == 2
    assert done.stdout.strip() == "doctor: no stack file Pulumi.stagin.yaml: STACK must be one of dev"


def test_make_doctor_runs_the_script_for_the_stack() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "doctor" in makefile.split(".PHONY:")[1].splitlines()[0].split()
    assert "\n\t.venv/bin/python scripts/doctor.py --stack $(STACK)\n" in makefile
