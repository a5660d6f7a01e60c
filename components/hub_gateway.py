"""HubGateway: the in-cluster Hugging Face Hub API proxy and Hub mirror (images/hub-gateway).

It creates a ServiceAccount (no token), a Deployment on the CPU (system) pool, a ClusterIP
Service on :8080, a PodDisruptionBudget and a NetworkPolicy, and exposes the in-cluster URL as
``endpoint`` (the stack output ``hubEndpoint``; pods use it as ``HF_ENDPOINT``).

Why it looks like this:
- **It holds the HF token so teams do not.** The token comes from the platform's HF token
  Secret, the bucket credential and coordinates from the same S3 Secret and store ConfigMap
  the model workloads read. Callers authenticate with their own team token: the callers
  Secret (key ``callers.json``, format in docs/hub-gateway.md) is mounted read-only as a file.
- **Who may call it** is the NetworkPolicy: pods of the listed team namespaces and of the
  gateway's own namespace, on :8080 only. Egress: DNS, and HTTPS to the Hub and the store.
- **Always up for readers**: 2 replicas in prod spread over nodes, rolling updates that never
  drop below the replica count (maxUnavailable 0), a PDB that lets one pod be evicted at a time.
- **Hardened pods**: distroless image, non-root (the image's nonroot UID 65532), read-only root
  filesystem with /tmp on an emptyDir, all capabilities dropped, RuntimeDefault seccomp, no
  privilege escalation, no service-account token.

Secret and ConfigMap objects are taken by name (PlatformSecrets makes them), as in
ModelDeployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from components import model_namespace as secrets
from components.config.patterns import DNS_LABEL, HUB_REPO_PATTERN
from components.kubernetes import checkov_skip_annotations, standard_labels
from components.model_deployment import service_url

NAME: Final = "hub-gateway"
PORT: Final = 8080
RUN_AS_USER: Final = 65532
"""distroless's nonroot user, which the image declares (images/hub-gateway/Dockerfile)."""
CALLERS_KEY: Final = "callers.json"
CALLERS_DIR: Final = "/etc/hub-gateway/callers"
RESOURCES: Final = {"requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"}}
"""Streams in 1 MiB chunks: a 1 GiB download peaked at 78 MiB RSS (tests/hub_gateway); room for many at once."""
CHECKOV_SKIPS: Final = {
    "CKV_K8S_35": "the gateway reads the S3 credential and HF token from environment variables (model-cache's "
                  "settings loader); they come from Secrets via secretKeyRef, never literals",
}


@dataclass(frozen=True)
class HubGatewayArgs:
    """Inputs of the gateway. Names of Secrets/ConfigMaps, never their values."""

    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    """Digest-pinned ref of images/hub-gateway (built by ContainerImage like the other images)."""
    s3_secret_name: pulumi.Input[str]
    """Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the bucket credential)."""
    store_config_name: pulumi.Input[str]
    """ConfigMap with S3_ENDPOINT_URL, S3_BUCKET and S3_PREFIX."""
    callers_secret_name: pulumi.Input[str]
    """Secret whose key ``callers.json`` holds the team tokens and their rights."""
    hf_token_secret_name: pulumi.Input[str] | None = None
    """Secret with HF_TOKEN. None: the mirror still serves the bucket; writes answer 503."""
    replicas: int = 2
    allow_repos: tuple[str, ...] = ()
    """Repos (patterns) passed through to the Hub when not cached; the stack passes the configured models."""
    caller_namespaces: tuple[str, ...] = ()
    """Namespaces whose pods may call the gateway (its own namespace always may)."""
    pull_secret_name: pulumi.Input[str] | None = None
    s3_region: str | None = None
    hf_endpoint: str = "https://huggingface.co"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Empty by default: the GPU pool's taint keeps the gateway (which tolerates nothing) on the CPU pool."""

    def problems(self) -> list[str]:
        found = []
        if not 1 <= self.replicas <= 20:
            found.append(f"HubGateway replicas={self.replicas}: must be 1..20 (2 in prod keeps readers up "
                         "during a drain)")
        for repo in self.allow_repos:
            if not HUB_REPO_PATTERN.fullmatch(repo):
                found.append(f"HubGateway allow_repos entry {repo!r}: not a repo id or pattern "
                             "(owner/name, gpt2, acme/*)")
        for ns in self.caller_namespaces:
            if not DNS_LABEL.fullmatch(ns):
                found.append(f"HubGateway caller_namespaces entry {ns!r}: not a namespace name (DNS label)")
        if not self.hf_endpoint.startswith(("http://", "https://")):
            found.append(f"HubGateway hf_endpoint {self.hf_endpoint!r}: must start with https://")
        return found


class HubGateway(pulumi.ComponentResource):
    """The hub-gateway Deployment, Service, PDB and NetworkPolicy, and its in-cluster endpoint."""

    endpoint: pulumi.Output[str]
    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: HubGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        problems = args.problems()
        if problems:
            raise ValueError("; ".join(problems))
        super().__init__("gpu-platform:index:HubGateway", name, None, opts)
        self._args = args
        child = pulumi.ResourceOptions(parent=self)
        labels = standard_labels(NAME, NAME)
        selector = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": NAME}

        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=self._meta(labels), automount_service_account_token=False, opts=child)

        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=self._meta(labels, checkov_skip_annotations(CHECKOV_SKIPS)),
            spec={
                "replicas": args.replicas,
                "revisionHistoryLimit": 3,
                "selector": {"matchLabels": selector},
                # CPU pods start in seconds: surge one, never go below the replica count.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {"metadata": {"labels": labels}, "spec": self._pod_spec(selector)},
            },
            opts=child,
        )

        self.service = k8s.core.v1.Service(
            f"{name}-svc",
            # A fixed name: the URL is the contract with app teams (stack output hubEndpoint).
            metadata=self._meta(labels, name=NAME),
            spec={"type": "ClusterIP", "selector": selector,
                  "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]},
            opts=child,
        )

        self.pdb = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=self._meta(labels),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": selector},
                  "unhealthyPodEvictionPolicy": "AlwaysAllow"},
            opts=child,
        )

        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=self._meta(labels),
            spec=pulumi.Output.from_input(args.namespace).apply(self._network_policy_spec(selector)),
            opts=child,
        )

        self.service_name = self.service.metadata.apply(lambda m: m.name)
        self.endpoint = pulumi.Output.all(self.service_name, args.namespace).apply(
            lambda v: service_url(v[0], v[1], PORT))
        self.register_outputs({"endpoint": self.endpoint, "serviceName": self.service_name})

    # ---- building blocks -------------------------------------------------------------------

    def _meta(self, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None,
              name: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"namespace": self._args.namespace, "labels": dict(labels)}
        if annotations:
            meta["annotations"] = dict(annotations)
        if name:
            meta["name"] = name
        return meta

    def _env(self) -> list[dict[str, Any]]:
        a = self._args
        env: list[dict[str, Any]] = [
            {"name": key, "valueFrom": {"configMapKeyRef": {"name": a.store_config_name, "key": key}}}
            for key in (secrets.S3_ENDPOINT_URL, secrets.S3_BUCKET, secrets.S3_PREFIX)
        ]
        env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": a.s3_secret_name, "key": key}}}
                for key in (secrets.S3_ACCESS_KEY_ID, secrets.S3_SECRET_ACCESS_KEY)]
        if a.hf_token_secret_name is not None:
            env.append({"name": secrets.HF_TOKEN_KEY, "valueFrom": {"secretKeyRef": {
                "name": a.hf_token_secret_name, "key": secrets.HF_TOKEN_KEY}}})
        env += [
            {"name": "HF_ENDPOINT", "value": a.hf_endpoint},
            {"name": "GATEWAY_CALLERS_FILE", "value": f"{CALLERS_DIR}/{CALLERS_KEY}"},
            {"name": "GATEWAY_ALLOW_REPOS", "value": ",".join(a.allow_repos)},
            {"name": "PORT", "value": str(PORT)},
        ]
        if a.s3_region:
            env.append({"name": "AWS_REGION", "value": a.s3_region})
        return env

    def _pod_spec(self, selector: Mapping[str, str]) -> dict[str, Any]:
        a = self._args
        probe = {"httpGet": {"path": "/healthz", "port": "http"}}
        container = {
            "name": NAME,
            "image": a.image,
            "imagePullPolicy": "IfNotPresent",
            "env": self._env(),
            "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
            "resources": RESOURCES,
            "startupProbe": {**probe, "periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 30},
            # Ready = the bucket answers (the gateway caches that check for 10 s).
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 10,
                               "timeoutSeconds": 5, "failureThreshold": 3},
            "livenessProbe": {**probe, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3},
            "securityContext": {
                "runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                             {"name": "callers", "mountPath": CALLERS_DIR, "readOnly": True}],
        }
        spec: dict[str, Any] = {
            "serviceAccountName": self.service_account.metadata.apply(lambda m: m.name),
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 30,
            "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                                "fsGroup": RUN_AS_USER, "seccompProfile": {"type": "RuntimeDefault"}},
            "nodeSelector": dict(a.node_selector),
            "containers": [container],
            "volumes": [
                {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                {"name": "callers", "secret": {"secretName": a.callers_secret_name, "defaultMode": 0o440,
                                               "items": [{"key": CALLERS_KEY, "path": CALLERS_KEY}]}},
            ],
        }
        if a.pull_secret_name is not None:
            spec["imagePullSecrets"] = [{"name": a.pull_secret_name}]
        if a.replicas > 1:
            spec["topologySpreadConstraints"] = [{
                "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(selector)}}]
        return spec

    def _network_policy_spec(self, selector: Mapping[str, str]):
        callers = tuple(self._args.caller_namespaces)

        def spec(own_namespace: str) -> dict[str, Any]:
            allowed = sorted({own_namespace, *callers})
            return {
                "podSelector": {"matchLabels": dict(selector)},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{
                    "ports": [{"protocol": "TCP", "port": PORT}],
                    "from": [{"namespaceSelector": {"matchExpressions": [{
                        "key": "kubernetes.io/metadata.name", "operator": "In", "values": allowed}]}}],
                }],
                "egress": [
                    {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                     "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                    # HTTPS: the Hub (pass-through and writes) and the object store.
                    {"ports": [{"protocol": "TCP", "port": 443}]},
                ],
            }

        return spec


