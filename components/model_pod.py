"""The pods of one served model, built as plain Kubernetes dicts from their inputs.

``ModelDeployment`` registers the objects; this module decides what their pods look like:
the two model-cache init containers, the server container (vLLM or hf-server), volumes,
the hardened security contexts and the checkov skips with their reasons. Every function takes
what it needs as arguments (a model's settings and the :class:`PodSources` of its objects), so
each can be read, and tested, on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi

from components import model_namespace as ns
from components.config.types import ModelSettings
from components.kubernetes import double_cpu, parse_quantity

#: The official vLLM OpenAI-compatible server, pinned by digest (the linux/amd64 image of
#: tag v0.12.0 on Docker Hub). Check before bumping: `crane digest vllm/vllm-openai:<tag>`.
VLLM_IMAGE: Final = ("docker.io/vllm/vllm-openai:v0.12.0"
                     "@sha256:f2309d913a07da49ea20b2a694703f4cfcb5ad8e7437ec0f26145479ac01e002")
PORT: Final = 8000
HEALTH_PATH: Final = "/health"
#: hf-server's probes (hf_server/app.py): the process answers / the model is loaded. Split so that
#: weights that fail to load make the pod unready (with the reason in /health), not restart forever.
LIVENESS_PATH: Final = "/livez"
READINESS_PATH: Final = "/readyz"
MODELS_DIR: Final = "/models"
RUN_AS_USER: Final = 1000
"""The user the model-cache and hf-server images are built for; vLLM runs as it too."""

#: The Secret and ConfigMap keys ModelNamespace writes (one definition, in components/model_namespace.py).
S3_KEYS: Final = (ns.S3_ACCESS_KEY_ID, ns.S3_SECRET_ACCESS_KEY)
STORE_CONFIG_KEYS: Final = (ns.S3_ENDPOINT_URL, ns.S3_BUCKET, ns.S3_PREFIX)
HF_TOKEN_KEY: Final = ns.HF_TOKEN_KEY
INIT_RESOURCES: Final = {"requests": {"cpu": "500m", "memory": "1Gi"},
                         "limits": {"cpu": "2", "memory": "1Gi"}}
"""model-cache streams and hashes in one pass and caps hf_xet's memory to fit 1 GiB (docs/model-cache.md)."""
#: Checks that cannot pass for these workloads, each with its reason (checkov reads
#: ``checkov.io/skipN`` annotations; tests/program/test_manifests.py asserts every skip has a reason).
CHECKOV_SKIPS: Final = {
    "CKV_K8S_35": "model-cache reads the S3 credential and HF token from environment variables only "
                  "(the hf-model-downloader contract); they come from Secrets via secretKeyRef, never literals",
    "CKV_K8S_40": "the model-cache and hf-server images are built for UID 1000; runAsNonRoot is enforced, "
                  "no capabilities, and no host path is writable unless the node cache is opted into",
}


@dataclass(frozen=True)
class PodSources:
    """Where a model's pods get their images, credentials and placement from (names, never values)."""

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
    gpu_runtime_class: str | None = None
    """``runtimeClassName`` of pods that use a GPU (Civo: ``nvidia``); None: the node's default runtime."""


def container_security() -> dict[str, Any]:
    """Non-root, no capabilities, no escalation, read-only root: what Pod Security "restricted" wants."""
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


def store_env(model: ModelSettings, src: PodSources) -> list[dict[str, Any]]:
    """Bucket coordinates from the ConfigMap, the credential from the S3 Secret, the snapshot to fetch."""
    env: list[dict[str, Any]] = [
        {"name": key, "valueFrom": {"configMapKeyRef": {"name": src.store_config_name, "key": key}}}
        for key in STORE_CONFIG_KEYS
    ]
    env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": src.s3_secret_name, "key": key}}}
            for key in S3_KEYS]
    env += [
        {"name": "MODEL_NAME", "value": model.repo},  # model-cache: the Hub repo id
        {"name": "MODEL_REVISION", "value": model.revision},
        {"name": "DISABLE_PROGRESS", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]
    if src.s3_region:
        env.append({"name": "AWS_REGION", "value": src.s3_region})
    if model.allow_patterns:
        env.append({"name": "MODEL_ALLOW_PATTERNS", "value": ",".join(model.allow_patterns)})
    if model.ignore_patterns:
        env.append({"name": "MODEL_IGNORE_PATTERNS", "value": ",".join(model.ignore_patterns)})
    return env


def ensure_container(model: ModelSettings, src: PodSources) -> dict[str, Any]:
    """``model-cache ensure``: the bucket holds a verified snapshot (from the Hub only the first time)."""
    env = store_env(model, src) + [
        {"name": "DOWNLOAD_DIR", "value": "/scratch"},
        {"name": "HF_HOME", "value": "/scratch/hf-home"},
        # model-cache would otherwise budget 90% of the node's free disk, but the kubelet
        # evicts the pod once the scratch emptyDir passes its sizeLimit.
        {"name": "MODEL_CACHE_MAX_DISK_MB",
         "value": str(int(parse_quantity(model.cache_size) * 95 // 100 // 2**20))},
    ]
    if src.hf_token_secret_name is not None:
        # The only container that may download from the Hub, so the only one with the token.
        env.append({"name": HF_TOKEN_KEY, "valueFrom": {"secretKeyRef": {
            "name": src.hf_token_secret_name, "key": HF_TOKEN_KEY, "optional": not model.gated}}})
    return {
        "name": "model-cache-ensure",
        "image": src.model_cache_image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["ensure"],
        "env": env,
        "resources": INIT_RESOURCES,
        "securityContext": container_security(),
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}, {"name": "tmp", "mountPath": "/tmp"}],
    }


def restore_container(model: ModelSettings, src: PodSources) -> dict[str, Any]:
    """``model-cache restore``: the verified snapshot onto the node-local volume the server reads."""
    return {
        "name": "model-cache-restore",
        "image": src.model_cache_image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["restore", "--dest", f"{MODELS_DIR}/{model.name}"],
        # Needs only the bucket, never the Hub: no HF token here.
        "env": store_env(model, src),
        "resources": INIT_RESOURCES,
        "securityContext": container_security(),
        "volumeMounts": [{"name": "models", "mountPath": MODELS_DIR}, {"name": "tmp", "mountPath": "/tmp"}],
    }


def server_container(model: ModelSettings, src: PodSources) -> dict[str, Any]:
    """The serving container: vLLM, or hf-server, reading the restored weights offline."""
    model_path = f"{MODELS_DIR}/{model.name}"
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
    command: list[str] | None = None
    args: list[str] | None = None
    if model.runtime == "vllm":
        image = src.vllm_image
        # The module, not the image's entrypoint: the same command across vLLM releases.
        command = ["python3", "-m", "vllm.entrypoints.openai.api_server"]
        args = ["--model", model_path, "--served-model-name", model.name, model.repo,
                "--host", "0.0.0.0", "--port", str(PORT)]
        if model.gpus > 1:
            args += ["--tensor-parallel-size", str(model.gpus)]
        if model.max_model_len is not None:
            args += ["--max-model-len", str(model.max_model_len)]
        if model.trust_remote_code:
            args.append("--trust-remote-code")
        args += list(model.extra_args)
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
        image = src.hf_server_image
        env += [
            {"name": "MODEL_PATH", "value": model_path},
            {"name": "SERVED_MODEL_NAME", "value": model.name},
            {"name": "QUANTIZATION", "value": model.quantization},
            {"name": "TRUST_REMOTE_CODE", "value": "1" if model.trust_remote_code else "0"},
            {"name": "PORT", "value": str(PORT)},
        ]
    # vLLM's /health answers once the engine is up and stays up; hf-server splits process and model.
    alive, ready = (HEALTH_PATH, HEALTH_PATH) if model.runtime == "vllm" else (LIVENESS_PATH, READINESS_PATH)
    probe = {"httpGet": {"path": alive, "port": "http"}}
    readiness = {"httpGet": {"path": ready, "port": "http"}}
    container: dict[str, Any] = {
        "name": "server",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": model.cpu, "memory": model.memory, "nvidia.com/gpu": str(model.gpus)},
            # GPUs cannot be shared or overcommitted: limit = request. Memory limit = request
            # so the kernel, not a noisy neighbour, decides; the CPU limit is generous.
            "limits": {"cpu": double_cpu(model.cpu), "memory": model.memory, "nvidia.com/gpu": str(model.gpus)},
        },
        # Loading weights onto the GPU takes minutes: nothing else is probed until this passes.
        "startupProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 5,
                         "failureThreshold": max(1, model.startup_timeout_seconds // 10)},
        "readinessProbe": {**readiness, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        # /health can stall briefly under a burst of long prompts: restart only after 2 minutes.
        "livenessProbe": {**probe, "periodSeconds": 20, "timeoutSeconds": 10, "failureThreshold": 6},
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }
    if command:
        container["command"] = command
        container["args"] = args
    return container


def volumes(model: ModelSettings, *, scratch: bool, server: bool) -> list[dict[str, Any]]:
    """The pod's volumes: /tmp always, scratch for ``ensure``, the model volume and caches for a server."""
    found: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    if scratch:
        found.append({"name": "scratch", "emptyDir": {"sizeLimit": model.cache_size}})
    if server:
        if model.cache == "hostPath":
            # Opt-in node cache: survives pod restarts, shared by pods of this node. The directory
            # must exist and belong to UID 1000 (see docs/models.md); "Directory" fails clearly if not.
            found.append({"name": "models", "hostPath": {"path": model.host_path, "type": "Directory"}})
        else:
            found.append({"name": "models", "emptyDir": {"sizeLimit": model.cache_size}})
        found.append({"name": "cache", "emptyDir": {"sizeLimit": "10Gi"}})
        if model.runtime == "vllm":
            found.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": model.shm_size}})
    return found


def pod_base(src: PodSources, service_account: pulumi.Input[str]) -> dict[str, Any]:
    """What every pod of a model shares: its identity (no API token), security, and GPU-pool placement."""
    spec: dict[str, Any] = {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": dict(src.node_selector),
        "tolerations": [dict(t) for t in src.tolerations],
    }
    if src.pull_secret_name is not None:
        spec["imagePullSecrets"] = [{"name": src.pull_secret_name}]
    return spec


def server_pod_spec(model: ModelSettings, src: PodSources, service_account: pulumi.Input[str],
                    selector: Mapping[str, str]) -> dict[str, Any]:
    """The Deployment's pod: ensure, then restore, then serve."""
    spec = pod_base(src, service_account)
    spec.update({
        "terminationGracePeriodSeconds": model.termination_grace_period_seconds,
        # Order matters: the bucket must hold the snapshot before it can be restored.
        "initContainers": [ensure_container(model, src), restore_container(model, src)],
        "containers": [server_container(model, src)],
        "volumes": volumes(model, scratch=True, server=True),
    })
    if src.gpu_runtime_class:
        # The NVIDIA runtime makes the allocated GPUs visible in the container, as Civo's GPU
        # operator instructions do for the validator (runtimeClassName: nvidia).
        spec["runtimeClassName"] = src.gpu_runtime_class
    if model.replicas > 1:
        # Spread replicas over GPU nodes so one node loss keeps the model served.
        spec["affinity"] = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": dict(selector)}},
        }]}}
    return spec


def cache_warm_pod_spec(model: ModelSettings, src: PodSources, service_account: pulumi.Input[str]) -> dict[str, Any]:
    """The cache-warm Job's pod: ``ensure`` alone, on the GPU pool without a GPU (its disks are
    sized for model weights, the system pool's are not)."""
    spec = pod_base(src, service_account)
    spec.update({
        "restartPolicy": "Never",
        "containers": [ensure_container(model, src)],
        "volumes": volumes(model, scratch=True, server=False),
    })
    return spec
