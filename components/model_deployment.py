"""ModelDeployment: one served model on the GPU nodes, from one ``models`` entry of the stack.

Per model it creates a ServiceAccount (no token), an optional cache-warm Job, a Deployment,
a ClusterIP Service, a PodDisruptionBudget and a NetworkPolicy that admits only the namespaces of
the teams allowed to call the model, and exposes the in-cluster URL.

Why it looks like this:
- **Weights come from the bucket, not the Hub.** Two init containers run in order:
  ``model-cache ensure`` makes the bucket hold a verified snapshot (downloading from the Hub
  only the first time; the only container that ever sees the HF token), then
  ``model-cache restore --dest /models/<name>`` copies it onto a node-local volume. The
  server mounts that volume read-only and runs with ``HF_HUB_OFFLINE=1``.
- **The cache-warm Job** runs ``ensure`` once before the Deployment rolls (the Deployment
  depends on it and Pulumi waits for the Job to complete), so N replicas starting together
  only restore instead of racing to download. Its pod template carries the revision, so a
  new revision replaces the Job and warms the bucket again before the rollout.
- **Scarce GPUs**: rollouts default to maxSurge 0 / maxUnavailable 1 (a surge pod would wait
  for a free GPU forever); long startup probes (large weights load for minutes); a PDB that
  allows one voluntary eviction so node drains never deadlock.
- **Hardened pods**: non-root (UID 1000, the images' user; vLLM runs as it too, with HOME and
  its caches on emptyDirs), all capabilities dropped, RuntimeDefault seccomp, no privilege
  escalation, read-only root filesystems, no service-account token.

Secret and config objects are taken by *name* (from ModelNamespace), so this component
does not depend on how they are made; passing their Outputs keeps Pulumi's ordering. What the
pods look like is decided in ``components/model_pod.py``; this module registers the objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from components.config.types import ModelSettings
from components.kubernetes import checkov_skip_annotations, resources_of, standard_labels
from components.model_pod import (
    CHECKOV_SKIPS,
    PORT,
    PodSources,
    cache_warm_pod_spec,
    server_pod_spec,
)

CACHE_WARM_DEADLINE_SECONDS: Final = 4 * 3600
COMPONENT_SERVER: Final = "model-server"
COMPONENT_CACHE_WARM: Final = "cache-warm"


@dataclass(frozen=True)
class ModelDeploymentArgs:
    """Inputs of one model workload: the model, its namespace, and where its pods get their
    images and credentials (names of Secrets/ConfigMaps, never their values)."""

    model: ModelSettings
    namespace: pulumi.Input[str]
    sources: PodSources
    client_namespaces: tuple[str, ...] = ()
    """Namespaces whose pods may call the model's API port (the teams allowed to call it).
    Empty: nobody in the cluster can; kubelet probes and ``kubectl port-forward`` still work."""


def model_ingress(client_namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
    """The API port, for the pods of the allowed client namespaces only; nothing else gets in.

    No client namespace means no ingress rule at all, i.e. deny: a model no team may call is
    unreachable by policy, not merely unadvertised.
    """
    if not client_namespaces:
        return []
    return [{"ports": [{"protocol": "TCP", "port": PORT}],
             "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
                      for namespace in client_namespaces]}]


def service_url(service: str, namespace: str, port: int = PORT) -> str:
    return f"http://{service}.{namespace}.svc.cluster.local:{port}"


class ModelDeployment(pulumi.ComponentResource):
    """A GPU Deployment serving one model, with its model-cache init containers."""

    url: pulumi.Output[str]
    service_name: pulumi.Output[str]
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    cache_warm_job: k8s.batch.v1.Job | None

    def __init__(self, name: str, args: ModelDeploymentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-platform:index:ModelDeployment", name, None, opts)
        m = args.model
        src = args.sources
        if m.runtime == "hf-server" and src.hf_server_image is None:
            raise ValueError(f"model {m.name!r}: runtime hf-server needs PodSources.hf_server_image")
        if m.gated and src.hf_token_secret_name is None:
            raise ValueError(f"model {m.name!r} is gated: it needs the HF token Secret (hf_token_secret_name)")
        self._namespace = args.namespace
        child = pulumi.ResourceOptions(parent=self)
        labels = {**standard_labels(m.name, COMPONENT_SERVER), "gpu-platform/model": m.name}
        selector = {"app.kubernetes.io/name": m.name, "app.kubernetes.io/component": COMPONENT_SERVER}

        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=self._meta(labels),
            # The pods never talk to the Kubernetes API.
            automount_service_account_token=False,
            opts=child,
        )

        # Children do not inherit a component's depends_on: the Deployment (which needs GPUs,
        # so e.g. the GPU operator) gets it explicitly, after the cache-warm Job.
        depends: list[pulumi.Resource] = resources_of(opts.depends_on if opts else None)
        self.cache_warm_job = None
        if m.warm_cache:
            self.cache_warm_job = self._cache_warm_job(name, m, src, self.service_account.metadata.name)
            depends.append(self.cache_warm_job)

        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-server",
            metadata=self._meta(labels, {
                # Pulumi waits for the rollout; this bounds how long a slow model load may take.
                "pulumi.com/timeoutSeconds": str(m.startup_timeout_seconds + 900),
                **checkov_skip_annotations(CHECKOV_SKIPS),
            }),
            spec={
                "replicas": m.replicas,
                "revisionHistoryLimit": 3,
                "progressDeadlineSeconds": m.startup_timeout_seconds + 600,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                    "maxSurge": m.max_surge, "maxUnavailable": m.max_unavailable}},
                "template": {
                    "metadata": {"labels": labels, "annotations": {
                        # A new revision must roll the pods even if nothing else changed.
                        "gpu-platform/model-revision": m.revision}},
                    "spec": server_pod_spec(m, src, self.service_account.metadata.name, selector),
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )

        self.service = k8s.core.v1.Service(
            f"{name}-svc",
            # A fixed name: the URL is the contract with app teams (stack output `models`).
            metadata=self._meta(labels, name=m.name),
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
            },
            opts=child,
        )

        self.pdb = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=self._meta(labels),
            spec={
                # One pod at a time may be evicted voluntarily: drains proceed, capacity never
                # drops by more than one replica. (minAvailable=replicas would block every drain.)
                "maxUnavailable": 1,
                "selector": {"matchLabels": selector},
                # A pod still loading its weights (not Ready) may always be evicted.
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
            opts=child,
        )

        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=self._meta(labels),
            spec={
                # Every pod of this model: the servers and the cache-warm Job.
                "podSelector": {"matchLabels": {"gpu-platform/model": m.name}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": model_ingress(args.client_namespaces),
                "egress": [
                    # DNS, to the cluster resolver only.
                    {"to": [{"namespaceSelector": {"matchLabels": {
                        "kubernetes.io/metadata.name": "kube-system"}}}],
                     "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                    # HTTPS: the object store and, for `ensure`, the Hugging Face Hub.
                    {"ports": [{"protocol": "TCP", "port": 443}]},
                ],
            },
            opts=child,
        )

        self.service_name = self.service.metadata.name
        self.url = pulumi.Output.all(self.service_name, args.namespace).apply(lambda v: service_url(v[0], v[1]))
        self.register_outputs({"url": self.url, "serviceName": self.service_name})

    def _meta(self, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None,
              name: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"namespace": self._namespace, "labels": dict(labels)}
        if annotations:
            meta["annotations"] = dict(annotations)
        if name:
            meta["name"] = name
        return meta

    def _cache_warm_job(self, name: str, m: ModelSettings, src: PodSources,
                        service_account: pulumi.Input[str]) -> k8s.batch.v1.Job:
        labels = {**standard_labels(m.name, COMPONENT_CACHE_WARM), "gpu-platform/model": m.name}
        return k8s.batch.v1.Job(
            f"{name}-warm",
            # No pulumi.com/skipAwait: Pulumi waits for the Job to succeed before the Deployment.
            # Its pod template is immutable, so a new revision replaces the Job (auto-named: the
            # new one runs before the old one is deleted).
            metadata=self._meta(labels, checkov_skip_annotations(CHECKOV_SKIPS)),
            spec={
                "backoffLimit": 3,
                "activeDeadlineSeconds": CACHE_WARM_DEADLINE_SECONDS,
                "template": {"metadata": {"labels": labels, "annotations": {
                    "gpu-platform/model-revision": m.revision}},
                    "spec": cache_warm_pod_spec(m, src, service_account)},
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                # A first download of a large model can take a while; Pulumi waits this long.
                custom_timeouts=pulumi.CustomTimeouts(create=f"{CACHE_WARM_DEADLINE_SECONDS // 60}m",
                                                      update=f"{CACHE_WARM_DEADLINE_SECONDS // 60}m"),
            ),
        )
