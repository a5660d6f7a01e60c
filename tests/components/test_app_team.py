"""App teams in the real program under mocks (the offline plan): each team's namespace, its
least-privilege deployer, its kubeconfig (to GitHub only) and the NetworkPolicies, which are
evaluated here as objects with Kubernetes' own semantics to show which pod may reach which."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import celpy
import pytest
import yaml
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

from components.app_team import KUBECONFIG_SECRET_NAME, TEAM_RULES
from components.config import outputs as contract
from components.model_pod import PORT
from tools.offline_plan import PlanResult, run_plan

GH_SECRET = "github:index/actionsSecret:ActionsSecret"  # pragma: allowlist secret
TOKEN_SECRET = "kubernetes.io/service-account-token"  # pragma: allowlist secret
MODELS = [
    {"name": "qwen-small", "repo": "Qwen/Qwen2.5-0.5B-Instruct",
     "revision": "7ae557604adf67be50417f59c2c2f167def9a775", "memory": "16Gi", "shmSize": "2Gi"},  # pragma: allowlist secret
    {"name": "qwen-other", "repo": "Qwen/Qwen2.5-1.5B-Instruct", "memory": "16Gi", "shmSize": "2Gi"},
]
TEAMS = [
    {"name": "search", "namespace": "team-search", "repository": "acme/search-app", "models": ["qwen-small"]},
    {"name": "chat", "repository": "other-org/chat", "models": ["qwen-other"]},
    {"name": "batch", "repository": "acme/batch"},
]


@pytest.fixture(scope="module")
def plan() -> PlanResult:
    return run_plan("dev", overrides={"models": MODELS, "teams": TEAMS, "gpuNodeCount": 2})


def kinds(plan: PlanResult, kind: str) -> list[dict[str, Any]]:
    return [m for m in plan.manifests() if m["kind"] == kind]


# --- what each team gets ---------------------------------------------------------------------


def test_each_team_gets_a_restricted_namespace_with_no_gpus(plan: PlanResult) -> None:
    namespaces = {m["metadata"]["name"]: m["metadata"]["labels"] for m in kinds(plan, "Namespace")}
    for namespace in ("team-search", "team-chat", "team-batch"):
        for mode in ("enforce", "audit", "warn"):
            assert namespaces[namespace][f"pod-security.kubernetes.io/{mode}"] == "restricted"
    quotas = {m["metadata"]["namespace"]: m["spec"]["hard"] for m in kinds(plan, "ResourceQuota")}
    assert quotas == {ns: {"requests.nvidia.com/gpu": "0"} for ns in ("team-search", "team-chat", "team-batch")}


def test_each_team_role_is_namespaced_with_no_wildcard_and_no_escalation(plan: PlanResult) -> None:
    assert not kinds(plan, "ClusterRole") and not kinds(plan, "ClusterRoleBinding")
    roles = kinds(plan, "Role")
    assert {r["metadata"]["namespace"] for r in roles} == {"team-search", "team-chat", "team-batch"}
    for role in roles:
        assert role["rules"] == [dict(r) for r in TEAM_RULES]
        for rule in role["rules"]:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no nonResourceURLs, no resourceNames
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
            assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"]), rule
            # Nothing that widens the team's own access or reaches into another namespace's pods.
            assert not {"roles", "rolebindings", "networkpolicies", "resourcequotas/status", "namespaces",
                        "pods/exec", "pods/attach", "serviceaccounts/token"} & set(rule["resources"]), rule
            assert rule["apiGroups"] != ["rbac.authorization.k8s.io"]
            if "resourcequotas" in rule["resources"]:
                assert set(rule["verbs"]) == {"get", "list", "watch"}


def test_each_role_binding_binds_its_own_role_to_its_own_service_account(plan: PlanResult) -> None:
    for binding in kinds(plan, "RoleBinding"):
        namespace = binding["metadata"]["namespace"]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}]
    accounts = [sa for sa in kinds(plan, "ServiceAccount") if sa["metadata"]["namespace"].startswith("team-")]
    assert all(sa["automountServiceAccountToken"] is False for sa in accounts) and len(accounts) == 3


def test_the_token_secret_belongs_to_the_deployer_and_waits_for_it(plan: PlanResult) -> None:
    tokens = [r for r in plan.by_type("kubernetes:core/v1:Secret") if r.inputs.get("type") == TOKEN_SECRET]
    assert len(tokens) == 3
    for token in tokens:
        metadata = token.inputs["metadata"]
        assert metadata["annotations"] == {"kubernetes.io/service-account.name": "deployer"}
        assert metadata["namespace"].startswith("team-")
        assert any(dep.endswith(f"::{token.name.removesuffix('-token')}-sa") for dep in token.dependencies)
        assert "data" in token.additional_secret_outputs
        assert "data" not in token.inputs and "stringData" not in token.inputs


# --- the kubeconfig goes to the team's repository, and nowhere else ----------------------------


def _token_of(plan: PlanResult, team: str) -> str:
    [secret] = [r for r in plan.by_type("kubernetes:core/v1:Secret") if r.name == f"team-{team}-token"]
    return base64.b64decode(unwrap_rpc_secret(secret.state["data"])["token"]).decode()


@pytest.mark.parametrize(("team", "owner", "repository", "namespace"), [
    ("search", "acme", "search-app", "team-search"), ("chat", "other-org", "chat", "team-chat")])
def test_the_kubeconfig_is_only_a_secret_of_the_teams_repository(plan: PlanResult, team: str, owner: str,
                                                                  repository: str, namespace: str) -> None:
    token = _token_of(plan, team)
    holders = [r for r in plan.resources if token in json.dumps(_unwrapped(r.inputs))]
    [github_secret] = holders
    assert github_secret.type == GH_SECRET
    assert github_secret.inputs["secretName"] == KUBECONFIG_SECRET_NAME
    assert github_secret.inputs["repository"] == repository
    assert is_rpc_secret(github_secret.inputs["value"]) and "value" in github_secret.additional_secret_outputs
    provider = next(r for r in plan.resources if github_secret.provider.startswith(r.urn + "::"))
    assert provider.inputs["owner"] == owner

    config = yaml.safe_load(unwrap_rpc_secret(github_secret.inputs["value"]))
    [user] = config["users"]
    assert user["user"] == {"token": token}
    [context] = config["contexts"]
    assert context["context"]["namespace"] == namespace and config["current-context"] == context["name"]
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"] == plan.raw_outputs[contract.API_ENDPOINT]
    assert cluster["cluster"]["certificate-authority-data"]

    assert token not in json.dumps(plan.raw_outputs) and not plan.secret_outputs


def _unwrapped(value: Any) -> Any:
    if is_rpc_secret(value):
        return _unwrapped(unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: _unwrapped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrapped(v) for v in value]
    return value


def test_the_teams_output_lists_namespaces_and_allowed_endpoints_only(plan: PlanResult) -> None:
    assert plan.raw_outputs[contract.TEAMS] == {
        "search": {"namespace": "team-search",
                   "models": {"qwen-small": "http://qwen-small.models.svc.cluster.local:8000"}},
        "chat": {"namespace": "team-chat",
                 "models": {"qwen-other": "http://qwen-other.models.svc.cluster.local:8000"}},
        "batch": {"namespace": "team-batch", "models": {}},
    }
    assert contract.TEAMS not in plan.secret_outputs


# --- NetworkPolicies, evaluated as objects -----------------------------------------------------


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        ok = {"In": present and labels.get(key) in values, "NotIn": not present or labels[key] not in values,
              "Exists": present, "DoesNotExist": not present}[operator]
        if not ok:
            return False
    return True


class Cluster:
    """Namespaces and NetworkPolicies of the plan, with the NetworkPolicy API's semantics."""

    def __init__(self, plan: PlanResult) -> None:
        self.namespace_labels = {m["metadata"]["name"]: {**m["metadata"].get("labels", {}),
                                                         "kubernetes.io/metadata.name": m["metadata"]["name"]}
                                 for m in kinds(plan, "Namespace")}
        for extra in ("kube-system", "default"):
            self.namespace_labels[extra] = {"kubernetes.io/metadata.name": extra}
        self.policies = kinds(plan, "NetworkPolicy")

    def _selecting(self, pod: Pod, direction: str) -> list[dict[str, Any]]:
        return [p for p in self.policies if p["metadata"]["namespace"] == pod.namespace
                and direction in p["spec"]["policyTypes"] and _matches(p["spec"]["podSelector"], pod.labels)]

    def _peer_matches(self, peer: dict[str, Any], policy_namespace: str, other: Pod) -> bool:
        if "ipBlock" in peer:
            # Pod IPs live in 10.42.0.0/16 (k3s): an ipBlock reaches a pod only if it does not except them.
            return "10.0.0.0/8" not in peer["ipBlock"].get("except", [])
        if "namespaceSelector" in peer:
            if not _matches(peer["namespaceSelector"], self.namespace_labels[other.namespace]):
                return False
        elif other.namespace != policy_namespace:
            return False
        return _matches(peer.get("podSelector") or {}, other.labels)

    def _allowed(self, pod: Pod, other: Pod, port: int, direction: str) -> bool:
        selecting = self._selecting(pod, direction)
        if not selecting:
            return True
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in selecting:
            for rule in policy["spec"].get(key) or []:
                ports = rule.get("ports")
                if ports and not any(p.get("port") == port for p in ports):
                    continue
                peers = rule.get(peers_key)
                if not peers or any(self._peer_matches(peer, pod.namespace, other) for peer in peers):
                    return True
        return False

    def can_reach(self, source: Pod, target: Pod, port: int) -> bool:
        return self._allowed(source, target, port, "Egress") and self._allowed(target, source, port, "Ingress")


def _pods(plan: PlanResult) -> dict[str, Pod]:
    pods = {}
    for workload in kinds(plan, "Deployment") + kinds(plan, "Job"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if "gpu-platform/model" not in labels:
            continue  # not a model's pod (the GPU smoke test)
        pods[f"{workload['kind']}:{labels['gpu-platform/model']}"] = Pod(workload["metadata"]["namespace"], labels)
    for team in ("search", "chat", "batch"):
        pods[f"app:{team}"] = Pod(f"team-{team}", {"app.kubernetes.io/name": "web"})
    pods["other:default"] = Pod("default", {"app": "curl"})
    pods["dns"] = Pod("kube-system", {"k8s-app": "kube-dns"})
    return pods


@pytest.fixture(scope="module")
def reach(plan: PlanResult) -> Callable[[str, str, int], bool]:
    cluster, pods = Cluster(plan), _pods(plan)
    return lambda source, target, port=PORT: cluster.can_reach(pods[source], pods[target], port)


def test_a_team_reaches_the_models_it_may_call(reach) -> None:
    assert reach("app:search", "Deployment:qwen-small")
    assert reach("app:chat", "Deployment:qwen-other")


def test_a_model_a_team_may_not_call_is_unreachable(reach) -> None:
    assert not reach("app:search", "Deployment:qwen-other")
    assert not reach("app:chat", "Deployment:qwen-small")
    assert not reach("app:batch", "Deployment:qwen-small") and not reach("app:batch", "Deployment:qwen-other")
    assert not reach("other:default", "Deployment:qwen-small")  # a namespace that is no team


def test_nothing_else_in_the_model_namespace_is_reachable(reach) -> None:
    assert not reach("app:search", "Deployment:qwen-small", 9000)  # only the API port
    assert not reach("app:search", "Job:qwen-small")  # the cache-warm Job is no Service


def test_teams_are_isolated_from_each_other_but_reach_dns(reach) -> None:
    assert not reach("app:search", "app:chat", 8080) and not reach("app:chat", "app:search", 8080)
    assert reach("app:search", "app:search", 8080)
    assert reach("app:search", "dns", 53)


def test_the_evaluator_sees_an_open_policy(plan: PlanResult) -> None:
    # The model policy, opened to every namespace as it was before teams: the evaluator must say so.
    cluster, pods = Cluster(plan), _pods(plan)
    for policy in cluster.policies:
        if policy["metadata"]["namespace"] == "models" and policy["spec"].get("ingress") is not None:
            policy["spec"] = {**policy["spec"], "ingress": [{"from": [{"namespaceSelector": {}}]}]}
    assert cluster.can_reach(pods["other:default"], pods["Deployment:qwen-other"], PORT)


# --- what RBAC cannot say: the admission policy, its CEL evaluated ----------------------------


def _admit(plan: PlanResult, *, namespace: str, resource: str, operation: str, user: str,
           obj: dict[str, Any]) -> list[str]:
    """The messages of the policy's failed validations for one request (empty: admitted), with the
    rendered policy and binding and the CEL evaluated by cel-python as the API server would."""
    [policy] = kinds(plan, "ValidatingAdmissionPolicy")
    [binding] = kinds(plan, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"] and policy["spec"]["failurePolicy"] == "Fail"
    labels = Cluster(plan).namespace_labels[namespace]
    if not _matches(binding["spec"]["matchResources"]["namespaceSelector"], labels):
        return []
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    if not any(resource in r["resources"] and operation in r["operations"] for r in rules):
        return []
    env = celpy.Environment()
    request = {"resource": {"group": "", "version": "v1", "resource": resource}, "namespace": namespace,
               "operation": operation, "userInfo": {"username": user}}
    activation = {"request": celpy.json_to_cel(request), "object": celpy.json_to_cel(obj)}
    return [v["message"] for v in policy["spec"]["validations"]
            if not env.program(env.compile(v["expression"])).evaluate(activation)]


TEAM_CI = "system:serviceaccount:team-search:deployer"
TOKEN = {"type": TOKEN_SECRET, "metadata": {"annotations": {"kubernetes.io/service-account.name": "deployer"}}}


def test_a_team_cannot_mint_a_second_long_lived_token(plan: PlanResult) -> None:
    for operation in ("CREATE", "UPDATE"):
        [message] = _admit(plan, namespace="team-search", resource="secrets", operation=operation, user=TEAM_CI,
                           obj=TOKEN)
        assert "may not create or change ServiceAccount token Secrets" in message
    # Its own app Secrets are fine, and so are the platform's and the token controller's writes.
    assert not _admit(plan, namespace="team-search", resource="secrets", operation="CREATE", user=TEAM_CI,
                      obj={"type": "Opaque", "stringData": {"API_KEY": "x"}})
    assert not _admit(plan, namespace="team-search", resource="secrets", operation="CREATE", user=TEAM_CI, obj={})
    assert not _admit(plan, namespace="team-search", resource="secrets", operation="CREATE",
                      user="system:admin", obj=TOKEN)
    assert not _admit(plan, namespace="team-search", resource="secrets", operation="UPDATE",
                      user="system:serviceaccount:kube-system:tokens-controller", obj=TOKEN)


def test_no_pod_runs_as_the_teams_ci_identity(plan: PlanResult) -> None:
    controller = "system:serviceaccount:kube-system:replicaset-controller"
    [message] = _admit(plan, namespace="team-chat", resource="pods", operation="CREATE", user=controller,
                       obj={"spec": {"serviceAccountName": "deployer", "containers": []}})
    assert "may not run as the ServiceAccount deployer" in message
    for spec in ({"containers": []}, {"serviceAccountName": "default", "containers": []}):
        assert not _admit(plan, namespace="team-chat", resource="pods", operation="CREATE", user=controller,
                          obj={"spec": spec})


def test_the_admission_policy_leaves_platform_namespaces_alone(plan: PlanResult) -> None:
    # The model namespace runs pods with ServiceAccounts of its own and holds the platform's Secrets.
    assert not _admit(plan, namespace="models", resource="pods", operation="CREATE", user="system:admin",
                      obj={"spec": {"serviceAccountName": "deployer"}})
    assert not _admit(plan, namespace="kube-system", resource="secrets", operation="CREATE",
                      user="system:serviceaccount:kube-system:x", obj=TOKEN)
