"""The app-team example against the platform's real contract, under Pulumi mocks.

The StackReference returns exactly the outputs the platform program exports (its offline plan,
tools.offline_plan.run_plan, for prod), checked against the names in components/config/outputs.py.
Renaming or dropping an output the example uses therefore fails here. Each program runs in its
own process (tests/app_team/_driver.py) so Pulumi's global mock state never reaches other test
modules.

The example deploys with the team's own kubeconfig (its secret config, from the Actions secret
KUBECONFIG), never with anything the platform stack exports.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from components.config import outputs as contract

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("_driver.py")
EXAMPLE = ROOT / "examples" / "app-team"
PLATFORM_STACK = "acme/gpu-platform/prod"
TEAM_KUBECONFIG = "apiVersion: v1\nkind: Config\n# the team's kubeconfig, as GitHub hands it to CI\n"
APP_IMAGE = "ghcr.io/acme/search-app@sha256:" + "b" * 64


def _driver(args: list[str]) -> subprocess.Popen[str]:
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


def prod_team() -> dict[str, Any]:
    """The first teams entry of Pulumi.prod.yaml: the team the example plays."""
    config = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    return config["gpu-platform:teams"][0]


def _scenario_specs() -> dict[str, dict[str, Any]]:
    outputs, secret = platform_outputs()
    team = prod_team()
    config = {"platformStack": PLATFORM_STACK, "team": team["name"], "appImage": APP_IMAGE,
              "kubeconfig": TEAM_KUBECONFIG}
    base = {"outputs": outputs, "secret_output_names": secret, "config": config}
    two_models = {**outputs[contract.TEAMS][team["name"]]["models"], "other": "http://other.models.svc:8000"}
    return {
        "default": base,
        "explicit model": {**base, "config": {**config, "model": team["models"][0]}},
        "model not allowed": {**base, "config": {**config, "model": "llama-70b"}},
        "unknown team": {**base, "config": {**config, "team": "payments"}},
        "two models, none chosen": {**base, "outputs": {**outputs, contract.TEAMS: {
            team["name"]: {"namespace": "team-x", "models": two_models}}}},
        "missing teams": {**base, "outputs": {k: v for k, v in outputs.items() if k != contract.TEAMS}},
        "no kubeconfig": {**base, "config": {k: v for k, v in config.items() if k != "kubeconfig"}},
        "image not pinned": {**base, "config": {**config, "appImage": "ghcr.io/acme/search-app:latest"}},
    }


@cache
def scenarios() -> dict[str, dict[str, Any]]:
    """Every example run the tests look at, in one process of their own (see _driver.py)."""
    return _result(_driver(["example"]), json.dumps(_scenario_specs()))


def example_run(name: str = "default") -> dict[str, Any]:
    result = scenarios()[name]
    assert result["ok"], result.get("traceback")
    return result


def failed_run(name: str) -> dict[str, Any]:
    result = scenarios()[name]
    assert not result["ok"]
    assert result["error_type"] == "PlatformContractError", result["traceback"]
    assert not [r for r in result["resources"] if r["type"].startswith("kubernetes:")]
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
    assert contract.KUBECONFIG not in names.values()  # the example never needs the admin kubeconfig
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
    # No kubeconfig, and so no secret at all, in what every StackReference reader gets.
    assert contract.KUBECONFIG not in exported
    assert plan["secret_output_names"] == []


def test_platform_program_exports_what_the_example_uses() -> None:
    exported = platform_plan()["outputs"]
    empty = sorted(name for name in set(_example_contract().values()) if not exported.get(name))
    assert not empty, f"the platform exports these empty or not at all: {empty}"
    assert exported[contract.TEAMS][prod_team()["name"]]["namespace"] == prod_team()["namespace"]


# --- the example under mocks -------------------------------------------------------------------


def test_stack_reference_names_the_configured_platform_stack() -> None:
    ref = _one(example_run(), "pulumi:pulumi:StackReference")
    assert ref["inputs"]["name"] == PLATFORM_STACK


def test_kubernetes_provider_is_built_from_the_teams_own_secret_kubeconfig() -> None:
    provider = _one(example_run(), "pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"] == {"__secret__": TEAM_KUBECONFIG}
    assert provider["inputs"]["namespace"] == prod_team()["namespace"]


def test_every_kubernetes_object_uses_that_provider_in_the_teams_namespace() -> None:
    result = example_run()
    objects = [r for r in result["resources"] if r["type"].startswith("kubernetes:")]
    assert {r["type"] for r in objects} == {"kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service"}
    for r in objects:
        assert "pulumi:providers:kubernetes::team::" in r["provider"], r["name"]
        assert r["inputs"]["metadata"]["namespace"] == prod_team()["namespace"]


def test_the_app_calls_the_model_the_team_may_call() -> None:
    outputs, _ = platform_outputs()
    team = prod_team()
    [model] = team["models"]
    url = outputs[contract.TEAMS][team["name"]]["models"][model]
    for name in ("default", "explicit model"):
        dep = _one(example_run(name), "kubernetes:apps/v1:Deployment")["inputs"]
        (app,) = dep["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in app["env"]}
        assert env["OPENAI_BASE_URL"] == f"{url}/v1" and env["MODEL_NAME"] == model
        assert app["image"] == APP_IMAGE


def test_pods_meet_pod_security_restricted_and_ask_for_no_gpu() -> None:
    pod = _one(example_run(), "kubernetes:apps/v1:Deployment")["inputs"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert "nvidia.com/gpu" not in json.dumps(container["resources"])  # the team's quota is 0 GPUs


def test_exports_keep_the_kubeconfig_out() -> None:
    result = example_run()
    assert set(result["exports"]) == {"platformStack", "namespace", "model", "url"}
    assert result["export_secrets"] == []
    assert TEAM_KUBECONFIG not in json.dumps(result["exports"])


# --- clear failures -----------------------------------------------------------------------------


def test_a_model_the_team_may_not_call_fails_with_a_clear_error() -> None:
    error = failed_run("model not allowed")["error"]
    assert "may not call model 'llama-70b'" in error and prod_team()["models"][0] in error


def test_an_unknown_team_fails_with_a_clear_error() -> None:
    error = failed_run("unknown team")["error"]
    assert "no team 'payments'" in error and prod_team()["name"] in error


def test_two_allowed_models_need_a_choice() -> None:
    assert "choose one with `pulumi config set model <name>`" in failed_run("two models, none chosen")["error"]


def test_a_missing_teams_output_fails_with_a_clear_error() -> None:
    error = failed_run("missing teams")["error"]
    assert "no output 'teams'" in error and PLATFORM_STACK in error and "breaking change" in error


def test_no_kubeconfig_and_an_unpinned_image_fail_with_a_clear_error() -> None:
    assert "pulumi config set --secret kubeconfig" in failed_run("no kubeconfig")["error"]
    assert "not pinned by digest" in failed_run("image not pinned")["error"]


def test_docs_table_lists_exactly_the_contract() -> None:
    text = (ROOT / "docs" / "app-teams.md").read_text()
    section = text.split("\n## Stack outputs\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| `")]
    documented = {cells[1].strip().strip("`"): cells[3].strip() for cells in rows}
    assert list(documented) == [*contract.STACK_OUTPUTS, *contract.OPT_IN_OUTPUTS], (
        "docs/app-teams.md table != components/config/outputs.py (default outputs, then opt-in ones)"
    )
    for name, secret in documented.items():
        assert secret == ("yes" if name in contract.SECRET_OUTPUTS else "no"), name
