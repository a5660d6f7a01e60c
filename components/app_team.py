"""AppTeam: what one app team gets on the cluster, and nothing more (``teams`` config entry).

Per team:
- its **namespace**, enforcing Pod Security ``restricted`` (and auditing/warning at it), with a
  ResourceQuota of zero GPUs: the GPUs belong to the platform's model workloads;
- a **ServiceAccount** for the team's CI and a **Role + RoleBinding** in that namespace only:
  deploy and read the team's own workloads. No ClusterRole, no wildcard verb or resource, no
  RBAC, NetworkPolicy, quota or exec rights (each would let the team widen its own access);
- a **kubeconfig** for that ServiceAccount, delivered as the Actions secret ``KUBECONFIG`` of
  the team's own repository (pulumi-github), never as a stack output;
- a **ValidatingAdmissionPolicy** (one for all teams, :class:`TeamAdmission`) for what RBAC
  cannot say: the deployer may not mint a second long-lived token, nor run pods as itself;
- **NetworkPolicies**: the team's pods accept traffic from their own namespace only, and may
  reach their own namespace, cluster DNS, the Services of the models the team may call, and
  the internet outside private address space. The model side admits only the namespaces of
  teams allowed to call it (``ModelDeployment``), so the rule holds even if this side is gone.

Why a long-lived token Secret (``kubernetes.io/service-account-token``) and not a bound token:
a bound token comes from the TokenRequest API, which Pulumi cannot hold as a resource; its
expiry would break the team's CI silently between two ``pulumi up`` runs. The Secret's token
never expires, but it is revoked the moment the Secret is deleted (or the team removed), and it
is rotated by replacing the Secret (``pulumi up --replace <urn of the token Secret>``), which
rewrites the GitHub secret in the same update. The Kubernetes provider waits until the token
controller has filled in the token (pulumi/pulumi-kubernetes#2048); the Secret depends on the
ServiceAccount, which must exist first (pulumi/pulumi-kubernetes#4396).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_github as github
import pulumi_kubernetes as k8s

from components.config.types import TeamSettings
from components.hub_gateway import NAME as GATEWAY_NAME
from components.hub_gateway import PORT as GATEWAY_PORT
from components.kubernetes import standard_labels
from components.model_deployment import COMPONENT_SERVER
from components.model_pod import PORT

KUBECONFIG_SECRET_NAME: Final = "KUBECONFIG"
DEPLOYER: Final = "deployer"
"""Name of the team's ServiceAccount, Role and RoleBinding (one of each per namespace)."""
MODEL_LABEL: Final = "gpu-platform/model"
READ: Final = ("get", "list", "watch")
WRITE: Final = ("get", "list", "watch", "create", "update", "patch", "delete")
#: What a team may do in its own namespace. Everything namespaced, nothing that changes who may
#: do what (roles, bindings), what may be reached (networkpolicies) or how much (quotas).
TEAM_RULES: Final[tuple[dict[str, Any], ...]] = (
    {"apiGroups": [""], "resources": ["pods", "services", "configmaps", "secrets", "persistentvolumeclaims",
                                      "serviceaccounts"], "verbs": list(WRITE)},
    {"apiGroups": [""], "resources": ["pods/log", "events", "endpoints", "resourcequotas", "limitranges"],
     "verbs": list(READ)},
    {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale", "replicasets", "statefulsets"],
     "verbs": list(WRITE)},
    {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": list(WRITE)},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": list(WRITE)},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": list(WRITE)},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": list(READ)},
)
#: Address space that is never "the internet": the cluster's pods and Services (k3s 10.42/16,
#: 10.43/16), the Civo private network, link-local (cloud metadata) and CGNAT.
PRIVATE_RANGES: Final = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")


@dataclass(frozen=True)
class AppTeamArgs:
    team: TeamSettings
    model_namespace: pulumi.Input[str]
    model_urls: Mapping[str, pulumi.Input[str]]
    """In-cluster URL of each model the team may call (the ``teams`` stack output lists them)."""
    api_endpoint: pulumi.Input[str]
    """The cluster's API server URL: the kubeconfig's server."""
    cluster_name: pulumi.Input[str]
    hub_gateway: bool = False
    """The stack runs the hub-gateway (in the model namespace): the team may call it on its port."""


def kubeconfig(*, cluster: str, server: str, ca_data: str, namespace: str, user: str, token: str) -> str:
    """A kubeconfig (JSON is valid kubeconfig YAML) for one ServiceAccount token, scoped by
    default to the team's namespace. ``ca_data`` is base64, as in the token Secret's ``ca.crt``."""
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster, "namespace": namespace, "user": user}}],
        "current-context": user,
    }, indent=2)


def _kubeconfig_from_token_secret(data: Mapping[str, str] | None, *, cluster: str, server: str, namespace: str,
                                  user: str) -> str:
    if not data or not data.get("token") or not data.get("ca.crt"):
        raise ValueError(f"the token Secret of ServiceAccount {namespace}/{DEPLOYER} has no token or ca.crt; the "
                         "token controller fills them in (is the ServiceAccount there?)")
    token = base64.b64decode(data["token"]).decode()
    return kubeconfig(cluster=cluster, server=server, ca_data=data["ca.crt"], namespace=namespace, user=user,
                      token=token)


def team_network_policy_spec(team: TeamSettings, model_namespace: str, *, hub_gateway: bool = False) -> dict[str, Any]:
    """Ingress from the team's own namespace only; egress to it, DNS, the allowed models, the
    hub-gateway (when the stack runs it), the internet."""
    egress: list[dict[str, Any]] = [
        {"to": [{"podSelector": {}}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
    ]
    if team.models:
        egress.append({
            "to": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": model_namespace}},
                # The model servers only (not the cache-warm Jobs that share the model label).
                "podSelector": {"matchLabels": {"app.kubernetes.io/component": COMPONENT_SERVER},
                                "matchExpressions": [
                                    {"key": MODEL_LABEL, "operator": "In", "values": list(team.models)}]},
            }],
            "ports": [{"protocol": "TCP", "port": PORT}],
        })
    if hub_gateway:
        egress.append({
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": model_namespace}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": GATEWAY_NAME}}}],
            "ports": [{"protocol": "TCP", "port": GATEWAY_PORT}],
        })
    egress.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}]})
    return {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {}}]}],
        "egress": egress,
    }


TEAM_LABEL: Final = "gpu-platform/team"
ADMISSION_POLICY: Final = "gpu-platform-team-guard"
#: What RBAC cannot express: the deployer may create Secrets and Pods in its namespace, but not a
#: second long-lived token of its own (a ``kubernetes.io/service-account-token`` Secret) nor a pod
#: running as ``deployer`` (whose mounted token would be a fresh credential): either would outlive
#: a rotation of the platform's token Secret. CEL, evaluated by the API server for team namespaces.
ADMISSION_VALIDATIONS: Final[tuple[dict[str, str], ...]] = (
    {
        "expression": (
            "request.resource.resource != 'secrets' || !has(object.type) "
            "|| object.type != 'kubernetes.io/service-account-token' "
            "|| !request.userInfo.username.startsWith('system:serviceaccount:' + request.namespace + ':')"
        ),
        "message": "a team may not create or change ServiceAccount token Secrets: the platform issues the "
                   "team's only token (docs/app-teams.md)",
        "reason": "Forbidden",
    },
    {
        "expression": (
            "request.resource.resource != 'pods' || !has(object.spec.serviceAccountName) "
            f"|| object.spec.serviceAccountName != '{DEPLOYER}'"
        ),
        "message": f"pods may not run as the ServiceAccount {DEPLOYER}: it is the team's CI identity "
                   "(docs/app-teams.md)",
        "reason": "Forbidden",
    },
)


class TeamAdmission(pulumi.ComponentResource):
    """One ValidatingAdmissionPolicy (+ binding) for every team namespace (label ``gpu-platform/team``)."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-platform:index:TeamAdmission", name, None, opts)
        labels = standard_labels(ADMISSION_POLICY, "app-team")
        self.policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
            f"{name}-policy",
            metadata={"name": ADMISSION_POLICY, "labels": labels},
            spec={
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                     "resources": ["secrets"]},
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]},
                ]},
                "validations": [dict(v) for v in ADMISSION_VALIDATIONS],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.binding = k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            f"{name}-binding",
            metadata={"name": ADMISSION_POLICY, "labels": labels},
            spec={
                "policyName": ADMISSION_POLICY,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchExpressions": [
                    {"key": TEAM_LABEL, "operator": "Exists"}]}},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy]),
        )
        self.register_outputs({"policy": ADMISSION_POLICY})


class AppTeam(pulumi.ComponentResource):
    """One app team's namespace, CI identity, kubeconfig (as a GitHub secret) and network policy."""

    namespace: pulumi.Output[str]
    endpoints: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: AppTeamArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-platform:index:AppTeam", name, None, opts)
        team = args.team
        labels = {**standard_labels(team.name, "app-team"), TEAM_LABEL: team.name}
        psa = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
        psa |= {f"pod-security.kubernetes.io/{mode}-version": "latest" for mode in ("enforce", "audit", "warn")}

        self.namespace_resource = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": team.namespace, "labels": {**labels, **psa}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.namespace = self.namespace_resource.metadata.apply(lambda m: m.name)
        inside = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace_resource])

        def meta(object_name: str | None = None, **extra: Any) -> dict[str, Any]:
            return {"namespace": team.namespace, "labels": labels,
                    **({"name": object_name} if object_name else {}), **extra}

        self.quota = k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata=meta("no-gpus"),
            # GPUs serve the platform's models; a team calls them instead of taking one.
            spec={"hard": {"requests.nvidia.com/gpu": "0"}},
            opts=inside,
        )
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=meta(DEPLOYER),
            # CI's identity: pods never need its token mounted.
            automount_service_account_token=False,
            opts=inside,
        )
        self.role = k8s.rbac.v1.Role(f"{name}-role", metadata=meta(DEPLOYER), rules=[dict(r) for r in TEAM_RULES],
                                     opts=inside)
        self.role_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-binding",
            metadata=meta(DEPLOYER),
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": DEPLOYER},
            subjects=[{"kind": "ServiceAccount", "name": DEPLOYER, "namespace": team.namespace}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role, self.service_account]),
        )
        self.token_secret = k8s.core.v1.Secret(
            f"{name}-token",
            metadata=meta(f"{DEPLOYER}-token", annotations={"kubernetes.io/service-account.name": DEPLOYER}),
            type="kubernetes.io/service-account-token",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.service_account],
                                        additional_secret_outputs=["data"]),
        )
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta("team-isolation"),
            spec=pulumi.Output.from_input(args.model_namespace).apply(
                lambda model_ns: team_network_policy_spec(team, model_ns, hub_gateway=args.hub_gateway)),
            opts=inside,
        )

        user = f"{team.name}-{DEPLOYER}"
        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            self.token_secret.data, args.cluster_name, args.api_endpoint,
        ).apply(lambda v: _kubeconfig_from_token_secret(v[0], cluster=v[1], server=v[2],
                                                        namespace=team.namespace, user=user)))

        # The team's own repository, through a provider pinned to the team's owner.
        self.github_provider = github.Provider(f"{name}-github", owner=team.owner,
                                               opts=pulumi.ResourceOptions(parent=self))
        self.github_secret = github.ActionsSecret(
            f"{name}-kubeconfig",
            repository=team.repository,
            secret_name=KUBECONFIG_SECRET_NAME,
            value=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, provider=self.github_provider),
        )

        self.endpoints = pulumi.Output.all(**{m: args.model_urls[m] for m in team.models}).apply(dict) \
            if team.models else pulumi.Output.from_input({})
        # Nothing secret leaves the component: the kubeconfig goes to GitHub only.
        self.register_outputs({"namespace": self.namespace, "endpoints": self.endpoints,
                               "repository": team.slug})

    def summary(self) -> pulumi.Output[dict[str, Any]]:
        """What the ``teams`` stack output says about this team."""
        return pulumi.Output.all(self.namespace, self.endpoints).apply(
            lambda v: {"namespace": v[0], "models": dict(v[1])})
