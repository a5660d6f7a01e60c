"""ModelDeployment: one served model on the GPU nodes, from one ``models`` entry of the stack.

Per model it creates a ServiceAccount (no token), an optional cache-warm Job, a Deployment,
a ClusterIP Service, a PodDisruptionBudget and a NetworkPolicy, and exposes the in-cluster URL.

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

Secret and config objects are taken by *name* (from PlatformSecrets), so this component
does not depend on how they are made; passing their Outputs keeps Pulumi's ordering.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from components import secrets
from components.labels import standard_labels
from components.model_settings import ModelSettings, parse_quantity

#: The official vLLM OpenAI-compatible server, pinned by digest (the linux/amd64 image of
#: tag v0.12.0 on Docker Hub). Check before bumping: `crane digest vllm/vllm-openai:<tag>`.
VLLM_IMAGE: Final = ("docker.io/vllm/vllm-openai:v0.12.0"
                     "@sha256:f2309d913a07da49ea20b2a694703f4cfcb5ad8e7437ec0f26145479ac01e002")
PORT: Final = 8000
HEALTH_PATH: Final = "/health"
MODELS_DIR: Final = "/models"
RUN_AS_USER: Final = 1000
"""The user the model-cache and hf-server images are built for; vLLM runs as it too."""

#: The Secret and ConfigMap keys PlatformSecrets writes (one definition, in components/secrets.py).
S3_KEYS: Final = (secrets.S3_ACCESS_KEY_ID, secrets.S3_SECRET_ACCESS_KEY)
STORE_CONFIG_KEYS: Final = (secrets.S3_ENDPOINT_URL, secrets.S3_BUCKET, secrets.S3_PREFIX)
HF_TOKEN_KEY: Final = secrets.HF_TOKEN_KEY
INIT_RESOURCES: Final = {"requests": {"cpu": "500m", "memory": "1Gi"},
                         "limits": {"cpu": "2", "memory": "1Gi"}}
"""model-cache streams and hashes in one pass and caps hf_xet's memory to fit 1 GiB (DESIGN.md)."""
CACHE_WARM_DEADLINE_SECONDS: Final = 4 * 3600
#: Checks that cannot pass for these workloads, each with its reason (checkov reads
#: ``checkov.io/skipN`` annotations; tests/manifests asserts every skip has a reason).
CHECKOV_SKIPS: Final = {
    "CKV_K8S_35": "model-cache reads the S3 credential and HF token from environment variables only "
                  "(the hf-model-downloader contract); they come from Secrets via secretKeyRef, never literals",
    "CKV_K8S_40": "the model-cache and hf-server images are built for UID 1000; runAsNonRoot is enforced, "
                  "no capabilities, and no host path is writable unless the node cache is opted into",
}
COMPONENT_SERVER: Final = "model-server"
COMPONENT_CACHE_WARM: Final = "cache-warm"


@dataclass
class ModelDeploymentArgs:
    """Inputs of one model workload. Names of Secrets/ConfigMaps, never their values."""

    model: ModelSettings
    namespace: pulumi.Input[str]
    s3_secret_name: pulumi.Input[str]
    """Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the bucket credential)."""
    store_config_name: pulumi.Input[str]
    """ConfigMap with S3_ENDPOINT_URL, S3_BUCKET and S3_PREFIX."""
    model_cache_image: pulumi.Input[str]
    hf_server_image: pulumi.Input[str] | None = None
    """Required when the model's runtime is hf-server."""
    vllm_image: pulumi.Input[str] = VLLM_IMAGE
    hf_token_secret_name: pulumi.Input[str] | None = None
    """Secret with HF_TOKEN; mounted into the downloading container (``ensure``) only."""
    pull_secret_name: pulumi.Input[str] | None = None
    s3_region: str | None = None
    """Signing region of the object store (Civo: the stack's region); model-cache's default otherwise."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, str]] = ()


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
        if m.runtime == "hf-server" and args.hf_server_image is None:
            raise ValueError(f"model {m.name!r}: runtime hf-server needs ModelDeploymentArgs.hf_server_image")
        if m.gated and args.hf_token_secret_name is None:
            raise ValueError(f"model {m.name!r} is gated: it needs the HF token Secret (hf_token_secret_name)")
        self._args = args
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
        depends: list[pulumi.Resource] = _resources(opts.depends_on if opts else None)
        self.cache_warm_job = None
        if m.warm_cache:
            self.cache_warm_job = self._cache_warm_job(name)
            depends.append(self.cache_warm_job)

        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-server",
            metadata=self._meta(labels, {
                # Pulumi waits for the rollout; this bounds how long a slow model load may take.
                "pulumi.com/timeoutSeconds": str(m.startup_timeout_seconds + 900),
                **checkov_skip_annotations(),
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
                    "spec": self._server_pod_spec(selector),
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
                # In-cluster clients of any namespace may call the API port; nothing else gets in.
                "ingress": [{"ports": [{"protocol": "TCP", "port": PORT}],
                             "from": [{"namespaceSelector": {}}]}],
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

    # ---- building blocks -------------------------------------------------------------------

    def _meta(self, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None,
              name: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"namespace": self._args.namespace, "labels": dict(labels)}
        if annotations:
            meta["annotations"] = dict(annotations)
        if name:
            meta["name"] = name
        return meta

    def _store_env(self) -> list[dict[str, Any]]:
        """Bucket coordinates from the ConfigMap, the credential from the S3 Secret."""
        m, a = self._args.model, self._args
        env: list[dict[str, Any]] = [
            {"name": key, "valueFrom": {"configMapKeyRef": {"name": a.store_config_name, "key": key}}}
            for key in STORE_CONFIG_KEYS
        ]
        env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": a.s3_secret_name, "key": key}}}
                for key in S3_KEYS]
        env += [
            {"name": "MODEL_NAME", "value": m.repo},
            {"name": "MODEL_REVISION", "value": m.revision},
            {"name": "DISABLE_PROGRESS", "value": "1"},
            {"name": "HOME", "value": "/tmp"},
            {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        ]
        if a.s3_region:
            env.append({"name": "AWS_REGION", "value": a.s3_region})
        if m.allow_patterns:
            env.append({"name": "MODEL_ALLOW_PATTERNS", "value": ",".join(m.allow_patterns)})
        if m.ignore_patterns:
            env.append({"name": "MODEL_IGNORE_PATTERNS", "value": ",".join(m.ignore_patterns)})
        return env

    def _ensure_container(self) -> dict[str, Any]:
        a = self._args
        env = self._store_env() + [
            {"name": "DOWNLOAD_DIR", "value": "/scratch"},
            {"name": "HF_HOME", "value": "/scratch/hf-home"},
            # model-cache would otherwise budget 90% of the node's free disk, but the kubelet
            # evicts the pod once the scratch emptyDir passes its sizeLimit.
            {"name": "MODEL_CACHE_MAX_DISK_MB",
             "value": str(int(parse_quantity(a.model.cache_size) * 95 // 100 // 2**20))},
        ]
        if a.hf_token_secret_name is not None:
            # The only container that may download from the Hub, so the only one with the token.
            env.append({"name": HF_TOKEN_KEY, "valueFrom": {"secretKeyRef": {
                "name": a.hf_token_secret_name, "key": HF_TOKEN_KEY, "optional": not a.model.gated}}})
        return {
            "name": "model-cache-ensure",
            "image": a.model_cache_image,
            "imagePullPolicy": "IfNotPresent",
            "args": ["ensure"],
            "env": env,
            "resources": INIT_RESOURCES,
            "securityContext": _container_security(),
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}, {"name": "tmp", "mountPath": "/tmp"}],
        }

    def _restore_container(self) -> dict[str, Any]:
        a = self._args
        return {
            "name": "model-cache-restore",
            "image": a.model_cache_image,
            "imagePullPolicy": "IfNotPresent",
            "args": ["restore", "--dest", f"{MODELS_DIR}/{a.model.name}"],
            # Needs only the bucket, never the Hub: no HF token here.
            "env": self._store_env(),
            "resources": INIT_RESOURCES,
            "securityContext": _container_security(),
            "volumeMounts": [{"name": "models", "mountPath": MODELS_DIR}, {"name": "tmp", "mountPath": "/tmp"}],
        }

    def _server_container(self) -> dict[str, Any]:
        m, a = self._args.model, self._args
        model_path = f"{MODELS_DIR}/{m.name}"
        env: list[dict[str, Any]] = [
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "TRANSFORMERS_OFFLINE", "value": "1"},
            {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
            {"name": "HOME", "value": "/cache"},
            {"name": "XDG_CACHE_HOME", "value": "/cache/.cache"},
            {"name": "HF_HOME", "value": "/cache/huggingface"},
            {"name": "TMPDIR", "value": "/tmp"},
        ]
        mounts = [
            {"name": "models", "mountPath": MODELS_DIR, "readOnly": True},
            {"name": "cache", "mountPath": "/cache"},
            {"name": "tmp", "mountPath": "/tmp"},
        ]
        if m.runtime == "vllm":
            image = a.vllm_image
            # The module, not the image's entrypoint: the same command across vLLM releases.
            command = ["python3", "-m", "vllm.entrypoints.openai.api_server"]
            args = ["--model", model_path, "--served-model-name", m.name, m.repo,
                    "--host", "0.0.0.0", "--port", str(PORT)]
            if m.gpus > 1:
                args += ["--tensor-parallel-size", str(m.gpus)]
            if m.max_model_len is not None:
                args += ["--max-model-len", str(m.max_model_len)]
            args += list(m.extra_args)
            env += [
                {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
                {"name": "DO_NOT_TRACK", "value": "1"},
                {"name": "VLLM_CACHE_ROOT", "value": "/cache/vllm"},
                {"name": "TRITON_CACHE_DIR", "value": "/cache/triton"},
                {"name": "TORCHINDUCTOR_CACHE_DIR", "value": "/cache/torchinductor"},
                {"name": "NUMBA_CACHE_DIR", "value": "/cache/numba"},
            ]
            # PyTorch workers share tensors through /dev/shm; the default 64 MiB is far too small.
            mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        else:
            image = a.hf_server_image
            command, args = None, None
            env += [
                {"name": "MODEL_PATH", "value": model_path},
                {"name": "MODEL_NAME", "value": m.name},
                {"name": "QUANTIZATION", "value": m.quantization},
                {"name": "PORT", "value": str(PORT)},
            ]
        probe = {"httpGet": {"path": HEALTH_PATH, "port": "http"}}
        container: dict[str, Any] = {
            "name": "server",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "env": env,
            "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
            "resources": {
                "requests": {"cpu": m.cpu, "memory": m.memory, "nvidia.com/gpu": str(m.gpus)},
                # GPUs cannot be shared or overcommitted: limit = request. Memory limit = request
                # so the kernel, not a noisy neighbour, decides; the CPU limit is generous.
                "limits": {"cpu": _double_cpu(m.cpu), "memory": m.memory, "nvidia.com/gpu": str(m.gpus)},
            },
            # Loading weights onto the GPU takes minutes: nothing else is probed until this passes.
            "startupProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 5,
                             "failureThreshold": max(1, m.startup_timeout_seconds // 10)},
            "readinessProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
            # /health can stall briefly under a burst of long prompts: restart only after 2 minutes.
            "livenessProbe": {**probe, "periodSeconds": 20, "timeoutSeconds": 10, "failureThreshold": 6},
            "securityContext": _container_security(),
            "volumeMounts": mounts,
        }
        if command:
            container["command"] = command
            container["args"] = args
        return container

    def _volumes(self, *, scratch: bool, server: bool) -> list[dict[str, Any]]:
        m = self._args.model
        volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
        if scratch:
            volumes.append({"name": "scratch", "emptyDir": {"sizeLimit": m.cache_size}})
        if server:
            if m.cache == "hostPath":
                # Opt-in node cache: survives pod restarts, shared by pods of this node. The directory
                # must exist and belong to UID 1000 (see docs/models.md); "Directory" fails clearly if not.
                volumes.append({"name": "models", "hostPath": {"path": m.host_path, "type": "Directory"}})
            else:
                volumes.append({"name": "models", "emptyDir": {"sizeLimit": m.cache_size}})
            volumes.append({"name": "cache", "emptyDir": {"sizeLimit": "10Gi"}})
            if m.runtime == "vllm":
                volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": m.shm_size}})
        return volumes

    def _pod_base(self) -> dict[str, Any]:
        a = self._args
        spec: dict[str, Any] = {
            "serviceAccountName": self.service_account.metadata.name,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS_USER,
                "runAsGroup": RUN_AS_USER,
                "fsGroup": RUN_AS_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "nodeSelector": dict(a.node_selector),
            "tolerations": [dict(t) for t in a.tolerations],
        }
        if a.pull_secret_name is not None:
            spec["imagePullSecrets"] = [{"name": a.pull_secret_name}]
        return spec

    def _server_pod_spec(self, selector: Mapping[str, str]) -> dict[str, Any]:
        m = self._args.model
        spec = self._pod_base()
        spec.update({
            "terminationGracePeriodSeconds": m.termination_grace_period_seconds,
            # Order matters: the bucket must hold the snapshot before it can be restored.
            "initContainers": [self._ensure_container(), self._restore_container()],
            "containers": [self._server_container()],
            "volumes": self._volumes(scratch=True, server=True),
        })
        if m.replicas > 1:
            # Spread replicas over GPU nodes so one node loss keeps the model served.
            spec["affinity"] = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                    "labelSelector": {"matchLabels": dict(selector)}},
            }]}}
        return spec

    def _cache_warm_job(self, name: str) -> k8s.batch.v1.Job:
        m = self._args.model
        labels = {**standard_labels(m.name, COMPONENT_CACHE_WARM), "gpu-platform/model": m.name}
        pod = self._pod_base()
        # On the GPU pool (no GPU requested): its disks are sized for model weights, the system
        # pool's are not.
        pod.update({
            "restartPolicy": "Never",
            "containers": [self._ensure_container()],
            "volumes": self._volumes(scratch=True, server=False),
        })
        return k8s.batch.v1.Job(
            f"{name}-warm",
            # No pulumi.com/skipAwait: Pulumi waits for the Job to succeed before the Deployment.
            # Its pod template is immutable, so a new revision replaces the Job (auto-named: the
            # new one runs before the old one is deleted).
            metadata=self._meta(labels, checkov_skip_annotations()),
            spec={
                "backoffLimit": 3,
                "activeDeadlineSeconds": CACHE_WARM_DEADLINE_SECONDS,
                "template": {"metadata": {"labels": labels, "annotations": {
                    "gpu-platform/model-revision": m.revision}}, "spec": pod},
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                # A first download of a large model can take a while; Pulumi waits this long.
                custom_timeouts=pulumi.CustomTimeouts(create=f"{CACHE_WARM_DEADLINE_SECONDS // 60}m",
                                                      update=f"{CACHE_WARM_DEADLINE_SECONDS // 60}m"),
            ),
        )


def _resources(depends_on: Any) -> list[pulumi.Resource]:
    if depends_on is None:
        return []
    if isinstance(depends_on, pulumi.Resource):
        return [depends_on]
    return [d for d in depends_on if isinstance(d, pulumi.Resource)]


def checkov_skip_annotations() -> dict[str, str]:
    return {f"checkov.io/skip{i}": f"{check}={reason}"
            for i, (check, reason) in enumerate(sorted(CHECKOV_SKIPS.items()), start=1)}


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _double_cpu(cpu: str) -> str:
    """A CPU limit of twice the request: tokenisation bursts may use it, a runaway cannot take the node."""
    if cpu.endswith("m"):
        return f"{int(float(cpu[:-1]) * 2)}m"
    value = float(cpu) * 2
    return str(int(value)) if value.is_integer() else str(value)
