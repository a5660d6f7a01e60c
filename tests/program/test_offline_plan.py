"""The offline plan as a reviewer runs it: a real subprocess, real stack files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import outputs as contract

REPO = Path(__file__).resolve().parents[2]
CANARY_TOKEN = "hf_canaryOfflinePlanToken0123456789abcdef"
CANARY_PASSWORD = "ghp_canaryRegistryPassword0123456789abcd"


def _has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def run_plan_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.offline_plan", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_prints_the_tree_and_writes_manifests_without_any_secret(tmp_path: Path, stack: str) -> None:
    out = tmp_path / stack
    proc = run_plan_cli("--stack", stack, "--out", str(out),
                        env={"HF_TOKEN": CANARY_TOKEN, "REGISTRY_PASSWORD": CANARY_PASSWORD})
    assert proc.returncode == 0, proc.stderr
    assert f"Offline plan of stack '{stack}'" in proc.stdout
    assert "+ civo:index/kubernetesNodePool:KubernetesNodePool  gpu-gpu-pool-0  (parent: gpu)" in proc.stdout
    assert "kubeconfig: \"[secret]\"" in proc.stdout
    files = sorted(out.iterdir())
    manifests = [yaml.safe_load(p.read_text()) for p in files if p.suffix == ".yaml" and not p.name.startswith("helm-")]
    assert any(m["kind"] == "Namespace" for m in manifests)
    assert all({"apiVersion", "kind", "metadata"} <= m.keys() for m in manifests)
    # Mocks see whole numbers as floats; kubectl would reject 'replicas: 1.0' or 'port: 8000.0'.
    floats = [p.name for p in files if p.suffix == ".yaml" and _has_float(yaml.safe_load(p.read_text()))]
    assert not floats, floats
    everything = proc.stdout + proc.stderr + "".join(p.read_text() for p in files)
    for secret in (CANARY_TOKEN, CANARY_PASSWORD, "offline-"):  # 'offline-' prefixes mocked credentials
        assert secret not in everything


def test_plan_outputs_file_masks_secrets(tmp_path: Path) -> None:
    proc = run_plan_cli("--stack", "dev", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    outputs = yaml.safe_load((tmp_path / "outputs.json").read_text())
    assert contract.KUBECONFIG not in outputs  # opt-in only (exportAdminKubeconfig)
    assert set(outputs) == set(contract.STACK_OUTPUTS)


def test_bad_config_exits_nonzero_with_only_the_settings_error(tmp_path: Path) -> None:
    proc = run_plan_cli("--stack", "prod", "--out", str(tmp_path),
                        "--config", "bucketMaxSizeGb=750", "--config", "cni=calico")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "error: invalid stack configuration (2 problem(s)):"
    assert any("gpu-platform:bucketMaxSizeGb = 750" in line for line in lines)
    assert any("gpu-platform:cni = 'calico'" in line for line in lines)
    assert "Traceback" not in proc.stderr
    assert not tmp_path.joinpath("outputs.json").exists()


def test_unknown_stack_is_named(tmp_path: Path) -> None:
    proc = run_plan_cli("--stack", "qa", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "no stack file Pulumi.qa.yaml; known stacks: dev, prod" in proc.stderr


def test_plan_is_repeatable_in_one_process(stack_plan, plan_with) -> None:
    first = stack_plan("dev")
    again = plan_with("dev")
    assert [r.urn for r in again.resources] == [r.urn for r in first.resources]
    assert again.outputs == first.outputs


def test_one_error_per_problem_no_cascade_into_the_models(tmp_path: Path) -> None:
    """A CPU gpuNodeSize and a zero gpuNodeCount are two problems, not a flood of model misfits."""
    proc = run_plan_cli("--stack", "prod", "--out", str(tmp_path),
                        "--config", "gpuNodeSize=g4s.kube.small", "--config", "gpuNodeCount=0")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "error: invalid stack configuration (2 problem(s)):"
    assert lines[1].startswith("  - gpu-platform:gpuNodeSize = 'g4s.kube.small'")
    assert lines[2].startswith("  - gpu-platform:gpuNodeCount = 0")
