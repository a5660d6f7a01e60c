"""Every Kubernetes object the offline plan renders, for every stack: valid against the
Kubernetes OpenAPI schema of the cluster's version (kubernetes-validate, strict: unknown fields
fail) and clean under checkov (0 failed checks; every skip carries its reason)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from components.config import catalog
from tools.offline_plan import PlanResult, run_plan

REPO = Path(__file__).resolve().parents[2]
STACKS = ("dev", "prod")
#: A plan override with several teams and models: more than the stack files' one team exercises.
TEAMS_OVERRIDE = {
    "gpuNodeCount": 2,
    "models": [
        {"name": "qwen-small", "repo": "Qwen/Qwen2.5-0.5B-Instruct", "memory": "16Gi", "shmSize": "2Gi"},
        {"name": "qwen-other", "repo": "Qwen/Qwen2.5-1.5B-Instruct", "memory": "16Gi", "shmSize": "2Gi"},
    ],
    "teams": [
        {"name": "search", "repository": "acme/search-app", "models": ["qwen-small", "qwen-other"]},
        {"name": "chat", "namespace": "chat", "repository": "other-org/chat", "models": ["qwen-other"]},
        {"name": "batch", "repository": "acme/batch"},
    ],
}
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
CANARY = "hf_canaryManifestToken0123456789abcdefgh"


def cluster_version(stack: str) -> str:
    """major.minor of the stack's k3s version (Civo's default when the stack leaves it unset)."""
    config = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    version = str(config.get("gpu-platform:kubernetesVersion") or catalog.DEFAULT_KUBERNETES_VERSION)
    major, minor = version.removeprefix("v").split(".")[:2]
    return f"{major}.{minor}"


def manifests(plan: PlanResult) -> list[dict[str, Any]]:
    # The engine sends whole numbers as JSON numbers; mocks see them as floats (2.0): show ints.
    return plan.manifests()


@pytest.mark.parametrize("stack", STACKS)
def test_the_schema_of_the_clusters_kubernetes_version_is_shipped(stack: str) -> None:
    # kubernetes-validate falls back to the newest schema not newer than the version asked for;
    # make sure that is the cluster's own minor version, not an older one.
    assert kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
                                        cluster_version(stack), strict=True) == cluster_version(stack)


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_manifest_matches_the_kubernetes_schema(stack_plan, stack: str) -> None:
    rendered = manifests(stack_plan(stack))
    kinds = {m["kind"] for m in rendered}
    # The model workloads are part of what is validated, not just the platform objects.
    assert {"Deployment", "Service", "Job", "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount",
            "Namespace", "Secret", "ConfigMap", "Role", "RoleBinding", "ResourceQuota"} <= kinds, kinds
    assert_schema_valid(rendered, cluster_version(stack))


@pytest.fixture(scope="module")
def teams_plan() -> PlanResult:
    return run_plan("dev", overrides=TEAMS_OVERRIDE)


def test_the_manifests_of_several_teams_match_the_kubernetes_schema(teams_plan: PlanResult) -> None:
    rendered = manifests(teams_plan)
    assert len([m for m in rendered if m["kind"] == "Role"]) == 3
    assert_schema_valid(rendered, cluster_version("dev"))


def assert_schema_valid(rendered: list[dict[str, Any]], version: str) -> None:
    failures = []
    for manifest in rendered:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
            failures.append(f"{manifest['kind']} {manifest['metadata'].get('name')}: {exc}")
    assert not failures, "\n".join(failures)


def test_schema_validation_catches_a_broken_manifest(stack_plan) -> None:
    deployment = next(m for m in manifests(stack_plan("dev")) if m["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # typo of "resources"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.32", strict=True)


@pytest.fixture(scope="module")
def checkov_report(stack_plan, teams_plan, tmp_path_factory) -> dict[str, Any]:
    if not CHECKOV.exists():
        subprocess.run(["bash", str(REPO / "scripts/setup.d/45-checkov.sh")], check=True, cwd=REPO)
    root = tmp_path_factory.mktemp("manifests")
    count = workloads = 0
    plans = {stack: stack_plan(stack) for stack in STACKS} | {"teams": teams_plan}
    for stack, plan in plans.items():
        folder = root / stack
        folder.mkdir()
        for i, manifest in enumerate(manifests(plan), start=1):
            (folder / f"{i:03d}-{manifest['kind'].lower()}.yaml").write_text(yaml.safe_dump(manifest))
            count += 1
            workloads += manifest["kind"] in ("Deployment", "Job")
    proc = subprocess.run(
        [str(CHECKOV), "--directory", str(root), "--config-file", str(REPO / ".checkov.yaml"),
         "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=False,  # exit 1 = findings; asserted below
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
             "BC_API_KEY": "", "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    [kubernetes] = [r for r in reports if r.get("check_type") == "kubernetes"]
    kubernetes["manifest_count"], kubernetes["workload_count"] = count, workloads
    return kubernetes


def test_checkov_finds_no_failed_check(checkov_report) -> None:
    failed = checkov_report["results"]["failed_checks"]
    assert not failed, "\n".join(f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
                                 for c in failed)
    assert checkov_report["summary"]["passed"] > 10 * checkov_report["manifest_count"] // 2


def test_checkov_scanned_every_manifest(checkov_report) -> None:
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0
    # Namespaces, PDBs and NetworkPolicies have no checks of their own, so count resources; checkov
    # also counts the pod of each Deployment/Job once more for its graph checks.
    workloads = checkov_report["workload_count"]
    assert summary["resource_count"] == checkov_report["manifest_count"] + workloads, summary
    checked = {c["file_path"].rsplit("-", 1)[-1] for c in checkov_report["results"]["passed_checks"]}
    assert {"deployment.yaml", "job.yaml", "service.yaml", "serviceaccount.yaml", "secret.yaml", "role.yaml",
            "rolebinding.yaml"} <= checked


def test_every_checkov_skip_has_a_reason(checkov_report) -> None:
    from components import hub_gateway, model_pod

    documented = {(check, reason) for skips in (model_pod.CHECKOV_SKIPS, hub_gateway.CHECKOV_SKIPS)
                  for check, reason in skips.items()}
    skipped = checkov_report["results"]["skipped_checks"]
    assert skipped, "expected the documented per-object skips"
    for check in skipped:
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason) > 40 and (check["check_id"], reason) in documented, \
            f"undocumented skip {check['check_id']} on {check['resource']}: {reason!r}"
    config = yaml.safe_load((REPO / ".checkov.yaml").read_text())
    assert config.get("skip-check") in (None, []), "global skips need a reason next to them in .checkov.yaml"


def test_hf_token_reaches_only_the_downloading_container(plan_with) -> None:
    plan = plan_with("dev", secrets={"hfToken": CANARY, "registryPassword": "p"})
    rendered = manifests(plan)
    assert CANARY not in json.dumps(rendered)
    # The platform's token Secret (teams' hub-gateway Secrets hold their own gateway token as HF_TOKEN).
    [hf_secret] = [m for m in rendered if m["kind"] == "Secret" and m["metadata"].get("namespace") == "models"
                   and "HF_TOKEN" in {**(m.get("data") or {}), **(m.get("stringData") or {})}]
    token_secret = hf_secret["metadata"]["name"]
    workloads = [m for m in rendered if m["kind"] in ("Deployment", "Job")]
    # The hub-gateway holds the token by design (teams call the Hub through it, docs/hub-gateway.md).
    [gateway] = [m for m in workloads if m["metadata"].get("name") == "hub-gateway"
                 or m["metadata"]["labels"].get("app.kubernetes.io/name") == "hub-gateway"]
    [gateway_container] = gateway["spec"]["template"]["spec"]["containers"]
    assert token_secret in json.dumps(gateway_container)
    workloads = [m for m in workloads if m is not gateway]
    assert workloads
    for workload in workloads:
        spec = workload["spec"]["template"]["spec"]
        for container in list(spec.get("initContainers") or []) + spec["containers"]:
            uses_token = token_secret in json.dumps(container) or "HF_TOKEN" in json.dumps(container)
            assert uses_token == (container["name"] == "model-cache-ensure"), (workload["kind"], container["name"])


@pytest.mark.parametrize("stack", STACKS)
def test_stack_exports_the_model_urls(stack_plan, stack: str) -> None:
    from components.config import outputs as contract

    plan = stack_plan(stack)
    config = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    names = [m["name"] for m in config["gpu-platform:models"]]
    assert plan.outputs[contract.MODELS] == {
        name: f"http://{name}.models.svc.cluster.local:8000" for name in names}
