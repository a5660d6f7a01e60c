"""Each policy against the real program's resources (offline plan of dev and prod), then against a
mutated copy of one recorded resource that breaks it: exactly that violation, naming the resource."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from gpu_platform_policy.config import settings
from gpu_platform_policy.rules import build_policies
from pulumi.runtime.rpc import unwrap_rpc_secret, wrap_rpc_secret
from pulumi_policy import EnforcementLevel

from tests.policy.adapter import Finding, admin_kubeconfig, outputs_with, run_policy
from tools.offline_plan import PlanResult
from tools.plan_mocks import ResourceRecord

POLICIES = {policy.name: policy for policy in build_policies()}
MANDATORY = sorted(n for n, p in POLICIES.items() if p.enforcement_level == EnforcementLevel.MANDATORY)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
IMAGE = "docker-build:index:Image"
SECRET = "kubernetes:core/v1:Secret"  # pragma: allowlist secret (a type token)
#: Advisory findings the real program has today (reported to the coordinator with issue 16): the
#: GPU operator's namespace has no NetworkPolicy. Pinned so a new one shows up in review.
KNOWN_ADVISORY = {("network-policy-per-namespace", "gpu-gpu-operator-ns")}
#: The program exports the admin kubeconfig in every stack today; the coordinator is gating it
#: behind config exportAdminKubeconfig (issue 16's report).


def run_all(plan: PlanResult, **kwargs: Any) -> list[Finding]:
    return [f for policy in POLICIES.values() for f in run_policy(policy, plan, **kwargs)]


def mutate(plan: PlanResult, type_token: str, name: str, change: Callable[[dict[str, Any]], None] | None = None,
           **options: Any) -> tuple[list[ResourceRecord], ResourceRecord]:
    """The plan's records with one of them copied and changed (its inputs and outputs alike)."""
    target = plan.one(type_token, name)
    copied = dataclasses.replace(target, inputs=copy.deepcopy(target.inputs), state=copy.deepcopy(target.state),
                                 **options)
    if change is not None:
        change(copied.inputs)
        if copied.state:
            change(copied.state)
    return [copied if r is target else r for r in plan.resources], copied


def model_deployment(plan: PlanResult) -> ResourceRecord:
    """The stack's one model Deployment (the hub-gateway has its own)."""
    [found] = [r for r in plan.by_type(DEPLOYMENT) if r.name.startswith("model-")]
    return found


def without(plan: PlanResult, type_token: str, name: str) -> list[ResourceRecord]:
    target = plan.one(type_token, name)
    return [r for r in plan.resources if r is not target]


def assert_only(findings: list[Finding], policy: str, target: ResourceRecord | str, *fragments: str) -> Finding:
    """Exactly one finding, by ``policy``, about ``target``, naming it, the rule and a fix."""
    assert len(findings) == 1, [f.message for f in findings]
    finding = findings[0]
    name = target if isinstance(target, str) else target.name
    assert finding.policy == policy
    assert f"'{name}'" in finding.message and f"(rule {policy})" in finding.message and "Fix: " in finding.message
    if not isinstance(target, str):
        assert finding.urn == target.urn
    for fragment in fragments:
        assert fragment in finding.message, finding.message
    return finding


def pod_spec(props: dict[str, Any]) -> dict[str, Any]:
    return props["spec"]["template"]["spec"]


def container(props: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod_spec(props)
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


# --- The real program ---------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_real_stacks_break_no_mandatory_rule(stack: str, stack_plan: Callable[[str], PlanResult]) -> None:
    findings = run_all(stack_plan(stack))
    mandatory = {(f.policy, f.urn.rsplit("::", 1)[-1]) for f in findings if f.level == EnforcementLevel.MANDATORY}
    advisory = {(f.policy, f.urn.rsplit("::", 1)[-1]) for f in findings if f.level == EnforcementLevel.ADVISORY}
    assert advisory == KNOWN_ADVISORY
    # The admin kubeconfig is no stack output unless exportAdminKubeconfig opts in (issue 13).
    assert mandatory == set()


def test_every_policy_has_a_mutation_test() -> None:
    tested = {name.removeprefix("test_").split("__")[0].replace("_", "-") for name in globals()
              if name.startswith("test_") and "__" in name}
    assert tested == set(POLICIES)


# --- gpu-pods-on-gpu-pool -----------------------------------------------------------------------

def test_gpu_pods_on_gpu_pool__toleration(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")
    # A toleration for another taint: the GPU taint still keeps the pod off the GPU pool.
    records, target = mutate(plan, DEPLOYMENT, "model-qwen-small-server", lambda p: pod_spec(p).update(
        tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]))
    assert_only(run_policy(POLICIES["gpu-pods-on-gpu-pool"], plan, records=records), "gpu-pods-on-gpu-pool",
                target, "does not tolerate the GPU taint nvidia.com/gpu", "['server']")


def test_gpu_pods_on_gpu_pool__node_selector(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")
    records, target = mutate(plan, DEPLOYMENT, "model-qwen-small-server",
                             lambda p: pod_spec(p).update(nodeSelector={"gpu-platform/pool": "system"}))
    assert_only(run_policy(POLICIES["gpu-pods-on-gpu-pool"], plan, records=records), "gpu-pods-on-gpu-pool",
                target, "does not select the GPU pool")


def test_gpu_pods_on_gpu_pool__pods_without_gpus_may_go_anywhere(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")

    def cpu_only(props: dict[str, Any]) -> None:
        pod_spec(props).pop("tolerations"), pod_spec(props).pop("nodeSelector")
        for c in pod_spec(props)["containers"]:
            for kind in ("requests", "limits"):
                c["resources"][kind].pop("nvidia.com/gpu")

    records, _ = mutate(plan, DEPLOYMENT, "model-qwen-small-server", cpu_only)
    assert run_policy(POLICIES["gpu-pods-on-gpu-pool"], plan, records=records) == []


# --- images-pinned-by-digest --------------------------------------------------------------------

def test_images_pinned_by_digest__tag(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")
    records, target = mutate(plan, DEPLOYMENT, "model-qwen-small-server",
                             lambda p: container(p, "server").update(image="docker.io/vllm/vllm-openai:v0.12.0"))
    finding = assert_only(run_policy(POLICIES["images-pinned-by-digest"], plan, records=records),
                          "images-pinned-by-digest", target, "'docker.io/vllm/vllm-openai:v0.12.0'",
                          "container 'server'")
    # Config exemption: the same image passes once listed.
    assert run_policy(POLICIES["images-pinned-by-digest"], plan, records=records,
                      config={"exemptImages": ["docker.io/vllm/*"]}) == [], finding


def test_images_pinned_by_digest__images_this_stack_builds_are_exempt(
        stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")
    built_tag = plan.one(IMAGE, "model-cache-image").state["tags"][0]
    assert "@sha256:" not in built_tag
    records, _ = mutate(plan, DEPLOYMENT, "model-qwen-small-server",
                        lambda p: container(p, "model-cache-restore").update(image=built_tag))
    assert run_policy(POLICIES["images-pinned-by-digest"], plan, records=records) == []
    # ...but only while this stack builds it.
    records = [r for r in records if r.type != IMAGE]
    assert len(run_policy(POLICIES["images-pinned-by-digest"], plan, records=records)) == 1


# --- no-credentials-in-build-args ---------------------------------------------------------------

@pytest.mark.parametrize(("build_args", "why"), [
    ({"HF_TOKEN": "plain-token-value-1234"}, "its name says it is a credential"),
    ({"MODEL_SOURCE": "hf_" + "a1B2" * 8}, "its value looks like a credential"),
    ({"MODEL_SOURCE": wrap_rpc_secret("s3cr3t-build-value")}, "its value is a Pulumi secret"),
])
def test_no_credentials_in_build_args__arg(build_args: dict[str, Any], why: str,
                                           stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")
    records, target = mutate(plan, IMAGE, "model-cache-image",
                             lambda p: p.update(buildArgs={"PYTHON_VERSION": "3.11", **build_args}))
    finding = assert_only(run_policy(POLICIES["no-credentials-in-build-args"], plan, records=records),
                          "no-credentials-in-build-args", target, f"build arg '{next(iter(build_args))}'", why,
                          "BuildKit secret")
    value = next(iter(build_args.values()))
    assert (value if isinstance(value, str) else value["value"]) not in finding.message  # never echoed


# --- prod-data-protected ------------------------------------------------------------------------

def test_prod_data_protected__unprotected_bucket(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("prod")
    records, target = mutate(plan, "civo:index/objectStore:ObjectStore", "models-bucket", protect=False)
    assert_only(run_policy(POLICIES["prod-data-protected"], plan, records=records), "prod-data-protected",
                target, "production stack 'prod'", "retain_on_delete=True")


def test_prod_data_protected__only_production_stacks(stack_plan: Callable[[str], PlanResult]) -> None:
    dev = stack_plan("dev")
    assert run_policy(POLICIES["prod-data-protected"], dev) == []
    findings = run_policy(POLICIES["prod-data-protected"], dev, config={"productionStacks": ["dev"]})
    assert sorted(f.urn.rsplit("::", 1)[-1] for f in findings) == ["models-bucket", "models-credential"]


# --- prod-api-not-public ------------------------------------------------------------------------

FIREWALL = "civo:index/firewall:Firewall"


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda p: p["ingressRules"][0]["cidrs"].append("0.0.0.0/0"), "opens port 6443 to ['0.0.0.0/0']"),
    (lambda p: p["ingressRules"].append({"protocol": "tcp", "portRange": "1-65535", "cidrs": ["::/0"],
                                         "label": "everything", "action": "allow"}), "rule 'everything'"),
    (lambda p: p.update(createDefaultRules=True), "keeps Civo's default rules"),
])
def test_prod_api_not_public__firewall(change: Callable[[dict[str, Any]], None], fragment: str,
                                       stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("prod")
    records, target = mutate(plan, FIREWALL, "gpu-firewall", change)
    assert_only(run_policy(POLICIES["prod-api-not-public"], plan, records=records), "prod-api-not-public",
                target, fragment)


def test_prod_api_not_public__dev_may_be_public(stack_plan: Callable[[str], PlanResult]) -> None:
    dev = stack_plan("dev")
    assert "0.0.0.0/0" in dev.one(FIREWALL).inputs["ingressRules"][0]["cidrs"]
    assert run_policy(POLICIES["prod-api-not-public"], dev) == []


# --- prod-no-kubeconfig-output ------------------------------------------------------------------

def test_prod_no_kubeconfig_output__exported(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("prod")
    policy = POLICIES["prod-no-kubeconfig-output"]
    assert_only(run_policy(policy, plan, outputs=outputs_with(plan, kubeconfig=admin_kubeconfig(plan))),
                "prod-no-kubeconfig-output", "gpu-platform-prod", "stack output 'kubeconfig'")
    # Renamed, so only its content gives it away.
    assert_only(run_policy(policy, plan, outputs=outputs_with(plan, adminAccess=admin_kubeconfig(plan))),
                "prod-no-kubeconfig-output", "gpu-platform-prod", "stack output 'adminAccess'")


def test_prod_no_kubeconfig_output__opt_in_and_absence(stack_plan: Callable[[str], PlanResult]) -> None:
    prod, dev = stack_plan("prod"), stack_plan("dev")
    policy = POLICIES["prod-no-kubeconfig-output"]
    exported = outputs_with(prod, kubeconfig=admin_kubeconfig(prod))
    assert run_policy(policy, prod, outputs=exported, config={"allowKubeconfigOutput": True}) == []
    assert run_policy(policy, prod, outputs=outputs_with(prod)) == []  # exportAdminKubeconfig unset
    assert run_policy(policy, dev, outputs=outputs_with(dev, kubeconfig=admin_kubeconfig(dev))) == []


# --- secrets-are-pulumi-secrets -----------------------------------------------------------------

def test_secrets_are_pulumi_secrets__kubernetes_secret(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")
    records, target = mutate(plan, SECRET, "platform-s3",
                             lambda p: p.update(stringData=unwrap_rpc_secret(p["stringData"])))
    finding = assert_only(run_policy(POLICIES["secrets-are-pulumi-secrets"], plan, records=records),
                          "secrets-are-pulumi-secrets", target, "'stringData' AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY")
    assert "offline-" not in finding.message  # the value itself is never printed
    assert run_policy(POLICIES["secrets-are-pulumi-secrets"], plan, records=records,
                      config={"exemptNames": ["platform-s3"]}) == []


def test_secrets_are_pulumi_secrets__github_secret(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("prod")
    records, target = mutate(plan, "github:index/actionsSecret:ActionsSecret", "github-hf-token",
                             lambda p: p.update(value=unwrap_rpc_secret(p["value"])))
    assert_only(run_policy(POLICIES["secrets-are-pulumi-secrets"], plan, records=records),
                "secrets-are-pulumi-secrets", target, "'value'")


# --- containers-hardened ------------------------------------------------------------------------

def test_containers_hardened__escalation(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")
    records, target = mutate(plan, DEPLOYMENT, "model-qwen-small-server",
                             lambda p: container(p, "model-cache-restore")["securityContext"].update(
                                 allowPrivilegeEscalation=True, capabilities={"drop": ["NET_RAW"]}))
    assert_only(run_policy(POLICIES["containers-hardened"], plan, records=records), "containers-hardened", target,
                "init container 'model-cache-restore'", "allowPrivilegeEscalation is not false",
                "capabilities.drop does not contain ALL")


def test_containers_hardened__root(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")

    def as_root(props: dict[str, Any]) -> None:
        pod_spec(props)["securityContext"].pop("runAsNonRoot")
        container(props, "server")["securityContext"].update(runAsNonRoot=False, runAsUser=0)

    records, target = mutate(plan, DEPLOYMENT, "model-qwen-small-server", as_root)
    finding = assert_only(run_policy(POLICIES["containers-hardened"], plan, records=records), "containers-hardened",
                          target, "container 'server'", "runAsNonRoot is not true", "runAsUser is 0")
    # Outside the model and team namespaces the rule does not apply (unless configured to).
    assert run_policy(POLICIES["containers-hardened"], plan, records=records, config={"namespaces": ["team-*"]}) \
        == [], finding


# --- host-path-only-for-model-cache -------------------------------------------------------------

def test_host_path_only_for_model_cache__other_volume(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")
    records, target = mutate(plan, DEPLOYMENT, "model-qwen-small-server",
                             lambda p: pod_spec(p)["volumes"].append({"name": "host", "hostPath": {"path": "/etc"}}))
    assert_only(run_policy(POLICIES["host-path-only-for-model-cache"], plan, records=records),
                "host-path-only-for-model-cache", target, "volume 'host' mounts hostPath '/etc'")


def test_host_path_only_for_model_cache__node_cache_from_settings_passes(plan_with: Callable[..., PlanResult],
                                                                          stack_plan: Callable[[str], PlanResult]) -> None:
    """The real program with a model that opts into the node cache: its hostPath is what settings asked for."""
    models = copy.deepcopy(_dev_models())
    models[0].update(cache="hostPath", hostPath="/var/lib/gpu-platform/models")
    plan = plan_with("dev", models=models)
    volumes = pod_spec(model_deployment(plan).inputs)["volumes"]
    assert {"name": "models", "hostPath": {"path": "/var/lib/gpu-platform/models", "type": "Directory"}} in volumes
    assert run_policy(POLICIES["host-path-only-for-model-cache"], plan) == []
    assert [f.policy for f in run_all(plan) if f.level == EnforcementLevel.MANDATORY] == []
    # The same volume on a workload that is not a model is refused.
    records, target = mutate(plan, DEPLOYMENT, model_deployment(plan).name,
                             lambda p: p["spec"]["template"]["metadata"]["labels"].pop("gpu-platform/model"))
    assert_only(run_policy(POLICIES["host-path-only-for-model-cache"], plan, records=records),
                "host-path-only-for-model-cache", target, "'/var/lib/gpu-platform/models'")


def _dev_models() -> list[dict[str, Any]]:
    import yaml

    from tools.offline_plan import REPO
    return yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]["gpu-platform:models"]


# --- requests-and-limits (advisory) -------------------------------------------------------------

def test_requests_and_limits__missing_limits(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")
    records, target = mutate(plan, "kubernetes:batch/v1:Job", "model-qwen-small-warm",
                             lambda p: container(p, "model-cache-ensure")["resources"].pop("limits"))
    finding = assert_only(run_policy(POLICIES["requests-and-limits"], plan, records=records), "requests-and-limits",
                          target, "container 'model-cache-ensure' sets no limits.cpu, limits.memory")
    assert finding.level == EnforcementLevel.ADVISORY


# --- pdb-for-replicated-deployments (advisory) --------------------------------------------------

def test_pdb_for_replicated_deployments__missing(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("prod")
    target = model_deployment(plan)
    assert target.inputs["spec"]["replicas"] == 2
    records = without(plan, "kubernetes:policy/v1:PodDisruptionBudget", "model-qwen3-8b-pdb")
    assert_only(run_policy(POLICIES["pdb-for-replicated-deployments"], plan, records=records),
                "pdb-for-replicated-deployments", target, "runs 2 replicas")
    # One replica (dev) needs none; a higher threshold from config lifts prod's too.
    assert run_policy(POLICIES["pdb-for-replicated-deployments"], stack_plan("dev"),
                      records=without(stack_plan("dev"), "kubernetes:policy/v1:PodDisruptionBudget",
                                      "model-qwen-small-pdb")) == []
    assert run_policy(POLICIES["pdb-for-replicated-deployments"], plan, records=records,
                      config={"minReplicas": 3}) == []


# --- network-policy-per-namespace (advisory) ----------------------------------------------------

def test_network_policy_per_namespace__missing(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")
    # Every NetworkPolicy of the model namespace: the model's own and the namespace's default deny.
    records = [r for r in plan.resources if not (r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"
                                                 and (r.state.get("metadata") or {}).get("namespace") == "models")]
    assert len(records) < len(plan.resources)
    assert_only(run_policy(POLICIES["network-policy-per-namespace"], plan, records=records,
                           config={"exemptNamespaces": ["gpu-operator"]}),
                "network-policy-per-namespace", plan.one("kubernetes:core/v1:Namespace", "platform-namespace"),
                "namespace 'models'")


# --- model-deployment-complete (advisory) -------------------------------------------------------

MODEL = "gpu-platform:index:ModelDeployment"


def test_model_deployment_complete__no_service(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")
    records = without(plan, "kubernetes:core/v1:Service", "model-qwen-small-svc")
    assert_only(run_policy(POLICIES["model-deployment-complete"], plan, records=records),
                "model-deployment-complete", plan.one(MODEL), "no Service selects the pods")


def test_model_deployment_complete__credentials_as_literals(stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("dev")

    def literal_keys(props: dict[str, Any]) -> None:
        for c in pod_spec(props)["initContainers"]:
            for env in c["env"]:
                if env["name"] == "AWS_SECRET_ACCESS_KEY":
                    env.pop("valueFrom")
                    env["value"] = "literal"

    records, _ = mutate(plan, DEPLOYMENT, "model-qwen-small-server", literal_keys)
    assert_only(run_policy(POLICIES["model-deployment-complete"], plan, records=records),
                "model-deployment-complete", plan.one(MODEL), "AWS_SECRET_ACCESS_KEY is not read from a Secret")


def test_config_defaults_follow_the_schema() -> None:
    """Every policy's effective config is its schema's defaults until the stack sets a key."""
    for policy in POLICIES.values():
        defaults = settings(policy.config_schema, None)
        assert defaults == {k: v["default"] for k, v in policy.config_schema.properties.items()}
        assert settings(policy.config_schema, {"enforcementLevel": "disabled"}) == defaults


# --- The matching rules the policies rely on ----------------------------------------------------

@pytest.mark.parametrize(("toleration", "tolerates"), [
    ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, True),
    ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),  # no effect: every effect
    ({"operator": "Exists"}, True),  # no key with Exists: every taint
    ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}, True),
    ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
    ({"key": "dedicated", "operator": "Exists"}, False),
])
def test_toleration_matching(toleration: dict[str, Any], tolerates: bool) -> None:
    from gpu_platform_policy.rules import _tolerates
    assert _tolerates(toleration, {"key": "nvidia.com/gpu", "effect": "NoSchedule"}) is tolerates


@pytest.mark.parametrize(("port_range", "covers"), [
    ("6443", True), ("1-65535", True), ("80,443,6443", True), ("", True), (None, True), ("6000-6442", False),
    ("443", False),
])
def test_civo_port_ranges(port_range: str | None, covers: bool) -> None:
    from gpu_platform_policy.rules import _port_range_covers
    assert _port_range_covers(port_range, 6443) is covers


def test_defaults_match_the_program(stack_plan: Callable[[str], PlanResult]) -> None:
    """The pack cannot import the program (app teams run it alone), so its defaults are checked against it."""
    from components.config.models import HOST_PATH_ROOTS

    plan = stack_plan("prod")
    gpu = settings(POLICIES["gpu-pods-on-gpu-pool"].config_schema, None)
    assert gpu["gpuNodeSelector"] == plan.raw_outputs["gpuNodeSelector"]
    taints = plan.one("civo:index/kubernetesNodePool:KubernetesNodePool").inputs["taints"]
    assert [(t["key"], t["effect"]) for t in taints] == [(gpu["gpuTaint"]["key"], gpu["gpuTaint"]["effect"])]
    host_path = settings(POLICIES["host-path-only-for-model-cache"].config_schema, None)
    assert tuple(host_path["allowedRoots"]) == HOST_PATH_ROOTS
    assert host_path["modelLabel"] in model_deployment(plan).inputs["spec"]["template"]["metadata"]["labels"]
    namespaces = settings(POLICIES["containers-hardened"].config_schema, None)["namespaces"]
    assert plan.raw_outputs["modelNamespace"] in namespaces
