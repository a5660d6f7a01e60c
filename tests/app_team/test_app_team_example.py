"""The app-team example against the platform's real contract, under Pulumi mocks.

The StackReference returns exactly the outputs the platform program exports (its offline plan,
tools.offline_plan.run_plan, with buildImages on so `images` is filled), checked against the
names in components/config/outputs.py. Renaming or dropping an output the example uses therefore
fails here. Each program runs in its own process (tests/app_team/
_driver.py) so Pulumi's global mock state never reaches other test modules.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from components.config import outputs as contract

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("_driver.py")
EXAMPLE = ROOT / "examples" / "app-team"
PLATFORM_STACK = "acme/gpu-platform/prod"


def _driver(args: list[str], stdin: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _result(proc: subprocess.Popen[str], stdin: str | None = None) -> dict[str, Any]:
    out, err = proc.communicate(stdin, timeout=180)
    assert proc.returncode == 0, f"driver {proc.args} failed:\n{err[-4000:]}"
    return json.loads(out)


@cache
def platform_plan() -> dict[str, Any]:
    """What the platform program exports for prod, from its offline plan."""
    return _result(_driver(["platform", "prod"]))


def platform_outputs() -> tuple[dict[str, Any], list[str]]:
    """The StackReference's answer: exactly what the platform program exports, nothing made up."""
    plan = platform_plan()
    return dict(plan["outputs"]), list(plan["secret_output_names"])


MISSING = (contract.GPU_TOLERATIONS, contract.S3_CREDENTIALS_SECRET, contract.KUBECONFIG)


def _scenario_specs() -> dict[str, dict[str, Any]]:
    outputs, secret = platform_outputs()
    base = {"outputs": outputs, "secret_output_names": secret, "config": {"platformStack": PLATFORM_STACK}}
    specs = {
        "default": base,
        "gpus=2": {**base, "config": {**base["config"], "gpus": 2}},
        "unknown image": {**base, "config": {**base["config"], "serverImage": "vllm"}},
        "foreign secret": {
            **base,
            "outputs": {**outputs, contract.S3_CREDENTIALS_SECRET: "kube-system/model-store-s3"},
        },
    }
    for name in MISSING:
        specs[f"missing {name}"] = {
            **base,
            "outputs": {k: v for k, v in outputs.items() if k != name},
            "secret_output_names": [s for s in secret if s != name],
        }
    return specs


@cache
def scenarios() -> dict[str, dict[str, Any]]:
    """Every example run the tests look at, in one process of their own (see _driver.py)."""
    return _result(_driver(["example"]), json.dumps(_scenario_specs()))


def example_run() -> dict[str, Any]:
    result = scenarios()["default"]
    assert result["ok"], result.get("traceback")
    return result


def _resources(result: dict[str, Any], type_token: str) -> list[dict[str, Any]]:
    return [r for r in result["resources"] if r["type"] == type_token]


def _one(result: dict[str, Any], type_token: str) -> dict[str, Any]:
    (found,) = _resources(result, type_token)
    return found


def _example_contract() -> dict[str, str]:
    """NAME -> value of every output-name constant in examples/app-team/platform_contract.py."""
    tree = ast.parse((EXAMPLE / "platform_contract.py").read_text())
    names: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            names[node.target.id] = node.value.value
    return names


# --- the contract ---------------------------------------------------------------------------


def test_example_reads_only_outputs_of_the_platform_contract() -> None:
    names = _example_contract()
    assert names, "no output-name constants found in the example"
    assert set(names.values()) <= set(contract.STACK_OUTPUTS)
    for const, value in names.items():
        assert getattr(contract, const) == value, (
            f"{const}: example {value!r} != platform {getattr(contract, const)!r}"
        )


def test_example_uses_every_name_it_defines() -> None:
    text = (EXAMPLE / "platform_contract.py").read_text()
    used_block = text.split("USED_OUTPUTS", 1)[1]
    for const in _example_contract():
        assert const in used_block, f"{const} is defined but not in USED_OUTPUTS"


def test_platform_program_exports_exactly_the_contract() -> None:
    plan = platform_plan()
    assert plan["build_images_error"] is None, (
        f"offline plan with buildImages=true failed: {plan['build_images_error']}"
    )
    exported = plan["outputs"]
    assert set(exported) - set(contract.STACK_OUTPUTS) == set(), "exported but not in components/config/outputs.py"
    assert set(contract.STACK_OUTPUTS) - set(exported) == set(), "in components/config/outputs.py but not exported"
    assert set(plan["secret_output_names"]) == contract.SECRET_OUTPUTS


def test_platform_program_exports_what_the_example_uses() -> None:
    exported = platform_plan()["outputs"]
    empty = sorted(name for name in set(_example_contract().values()) if not exported.get(name))
    assert not empty, f"the platform exports these empty or not at all: {empty}"
    assert {"hf-server", "model-cache"} <= set(exported[contract.IMAGES]), "the example's default images"


# --- the example under mocks -------------------------------------------------------------------


def test_stack_reference_names_the_configured_platform_stack() -> None:
    ref = _one(example_run(), "pulumi:pulumi:StackReference")
    assert ref["inputs"]["name"] == PLATFORM_STACK


def test_kubernetes_provider_is_built_from_the_secret_kubeconfig() -> None:
    outputs, _ = platform_outputs()
    provider = _one(example_run(), "pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"] == {"__secret__": outputs[contract.KUBECONFIG]}


def test_every_kubernetes_object_uses_that_provider_never_the_default() -> None:
    result = example_run()
    objects = [r for r in result["resources"] if r["type"].startswith("kubernetes:")]
    assert {r["type"] for r in objects} == {"kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service"}
    for r in objects:
        assert "pulumi:providers:kubernetes::platform::" in r["provider"], r["name"]


def test_deployment_lands_on_gpu_nodes_with_the_platform_secrets_and_images() -> None:
    outputs, _ = platform_outputs()
    dep = _one(example_run(), "kubernetes:apps/v1:Deployment")["inputs"]
    assert dep["metadata"]["namespace"] == outputs[contract.MODEL_NAMESPACE]
    pod = dep["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == outputs[contract.GPU_NODE_SELECTOR]
    assert pod["tolerations"] == outputs[contract.GPU_TOLERATIONS]

    (server,) = pod["containers"]
    assert server["image"] == outputs[contract.IMAGES]["hf-server"]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert server["resources"]["requests"]["nvidia.com/gpu"] == "1"

    ensure, restore = pod["initContainers"]
    assert ensure["image"] == restore["image"] == outputs[contract.IMAGES]["model-cache"]
    assert ensure["args"] == ["ensure"] and restore["args"][0] == "restore"
    s3_secret_name = outputs[contract.S3_CREDENTIALS_SECRET].split("/", 1)[1]
    for init in (ensure, restore):
        assert {"secretRef": {"name": s3_secret_name}} in init["envFrom"]
        env = {e["name"]: e["value"] for e in init["env"]}
        assert env["S3_BUCKET"] == outputs[contract.MODEL_BUCKET]
        assert env["S3_ENDPOINT_URL"] == outputs[contract.MODEL_STORE_ENDPOINT]
        assert env["S3_PREFIX"] == outputs[contract.MODEL_PREFIX]
    hf_secret_name = outputs[contract.HF_TOKEN_SECRET].split("/", 1)[1]
    assert {"secretRef": {"name": hf_secret_name, "optional": True}} in ensure["envFrom"]


def test_exports_keep_the_kubeconfig_out() -> None:
    result = example_run()
    assert set(result["exports"]) == {"platformStack", "image", "url"}
    assert result["export_secrets"] == []
    assert result["exports"]["image"] == platform_outputs()[0][contract.IMAGES]["hf-server"]


def test_gpu_count_comes_from_config() -> None:
    result = scenarios()["gpus=2"]
    assert result["ok"], result.get("traceback")
    pod = _one(result, "kubernetes:apps/v1:Deployment")["inputs"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"


# --- clear failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("missing", MISSING)
def test_an_output_missing_from_the_platform_fails_with_a_clear_error(missing: str) -> None:
    result = scenarios()[f"missing {missing}"]
    assert not result["ok"]
    assert result["error_type"] == "PlatformContractError", result["traceback"]
    assert f"no output {missing!r}" in result["error"]
    assert PLATFORM_STACK in result["error"] and "breaking change" in result["error"]
    assert not _resources(result, "kubernetes:apps/v1:Deployment")


def test_an_image_missing_from_images_fails_with_a_clear_error() -> None:
    result = scenarios()["unknown image"]
    assert not result["ok"]
    assert result["error_type"] == "PlatformContractError"
    assert "no image 'vllm'" in result["error"] and "hf-server" in result["error"]


def test_a_secret_outside_the_model_namespace_fails_with_a_clear_error() -> None:
    result = scenarios()["foreign secret"]
    assert not result["ok"]
    assert result["error_type"] == "PlatformContractError"
    assert "not in the model namespace" in result["error"]


def test_pods_meet_pod_security_restricted_of_the_model_namespace() -> None:
    pod = _one(example_run(), "kubernetes:apps/v1:Deployment")["inputs"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"] + pod["initContainers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False, container["name"]
        assert ctx["capabilities"] == {"drop": ["ALL"]}, container["name"]


def test_docs_table_lists_exactly_the_contract() -> None:
    rows = [
        line.split("|")
        for line in (ROOT / "docs" / "app-teams.md").read_text().splitlines()
        if line.startswith("| `")
    ]
    documented = {cells[1].strip().strip("`"): cells[3].strip() for cells in rows}
    assert list(documented) == list(contract.STACK_OUTPUTS), (
        "docs/app-teams.md table != components/config/outputs.py"
    )
    for name, secret in documented.items():
        assert secret == ("yes" if name in contract.SECRET_OUTPUTS else "no"), name
