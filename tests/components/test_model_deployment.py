"""ModelDeployment under mocks: what each rendered Kubernetes object holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.model_deployment import ModelDeployment, ModelDeploymentArgs
from components.model_pod import PORT, VLLM_IMAGE, PodSources
from tests.support.model_harness import (
    HF_SECRET,
    HF_SERVER_IMAGE,
    MODEL_CACHE_IMAGE,
    NAMESPACE,
    PULL_SECRET,
    S3_SECRET,
    SMALL,
    STORE_CONFIG,
    model,
    render,
)


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("initContainers") or []) + list(spec["containers"])


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def mentions(value: Any, needle: str) -> bool:
    return needle in repr(value)


@pytest.fixture(scope="module")
def default() -> Any:
    return render()


def test_renders_the_workload_objects(default) -> None:
    assert sorted(default.kinds()) == ["Deployment", "Job", "NetworkPolicy", "PodDisruptionBudget", "Service",
                                       "ServiceAccount"]
    assert all(m["metadata"]["namespace"] == NAMESPACE for m in default.manifests())
    for manifest in default.manifests():
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "gpu-platform"
        assert labels["app.kubernetes.io/managed-by"] == "pulumi"
        assert labels["app.kubernetes.io/name"] == SMALL.name


def test_url_is_the_in_cluster_service_address(default) -> None:
    assert default.url == f"http://qwen-small.{NAMESPACE}.svc.cluster.local:{PORT}"
    service = default.one("Service")
    assert service["metadata"]["name"] == "qwen-small"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]


def test_init_containers_ensure_then_restore(default) -> None:
    spec = pod_spec(default.one("Deployment"))
    ensure, restore = spec["initContainers"]
    assert (ensure["name"], ensure["args"]) == ("model-cache-ensure", ["ensure"])
    assert (restore["name"], restore["args"]) == ("model-cache-restore", ["restore", "--dest", "/models/qwen-small"])
    assert ensure["image"] == restore["image"] == MODEL_CACHE_IMAGE
    for container in (ensure, restore):
        env = env_of(container)
        assert env["MODEL_NAME"] == SMALL.repo and env["MODEL_REVISION"] == SMALL.revision
        for key in ("S3_ENDPOINT_URL", "S3_BUCKET", "S3_PREFIX"):
            assert env[key] == {"configMapKeyRef": {"name": STORE_CONFIG, "key": key}}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[key] == {"secretKeyRef": {"name": S3_SECRET, "key": key}}
        assert container["resources"]["limits"]["memory"] == "1Gi"
    assert env_of(ensure)["DOWNLOAD_DIR"] == "/scratch"
    # 95% of the 100Gi scratch emptyDir, so model-cache stops before the kubelet evicts the pod.
    assert env_of(ensure)["MODEL_CACHE_MAX_DISK_MB"] == str(100 * 1024 * 95 // 100)
    assert "AWS_REGION" not in env_of(ensure)
    assert env_of(pod_spec(render(s3_region="LON1").one("Deployment"))["initContainers"][1])["AWS_REGION"] == "LON1"
    assert {"name": "models", "mountPath": "/models"} in restore["volumeMounts"]


def test_hf_token_only_in_the_downloading_container(default) -> None:
    for manifest in (default.one("Deployment"), default.one("Job")):
        for container in all_containers(pod_spec(manifest)):
            has_token = "HF_TOKEN" in env_of(container) or mentions(container, HF_SECRET)
            assert has_token == (container["name"] == "model-cache-ensure"), container["name"]
    [ensure] = [c for c in pod_spec(default.one("Deployment"))["initContainers"] if c["name"] == "model-cache-ensure"]
    assert env_of(ensure)["HF_TOKEN"] == {"secretKeyRef": {"name": HF_SECRET, "key": "HF_TOKEN", "optional": True}}
    server = pod_spec(default.one("Deployment"))["containers"][0]
    assert "envFrom" not in server and not mentions(server, "secretKeyRef")


def test_no_token_secret_means_no_token_env() -> None:
    rendered = render(hf_token_secret_name=None)
    assert not mentions(rendered.manifests(), "HF_TOKEN")


def test_gated_model_requires_the_token() -> None:
    [ensure, _] = pod_spec(render(model(gated=True)).one("Deployment"))["initContainers"]
    assert env_of(ensure)["HF_TOKEN"]["secretKeyRef"]["optional"] is False


def test_vllm_server_container(default) -> None:
    spec = pod_spec(default.one("Deployment"))
    [server] = spec["containers"]
    assert server["image"] == VLLM_IMAGE and "@sha256:" in VLLM_IMAGE
    assert server["command"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    args = server["args"]
    assert args[args.index("--model") + 1] == "/models/qwen-small"
    assert args[args.index("--port") + 1] == str(PORT)
    assert "qwen-small" in args and SMALL.repo in args  # served under both names
    assert "--tensor-parallel-size" not in args
    env = env_of(server)
    assert env["HF_HUB_OFFLINE"] == "1" and env["HOME"] == "/cache"
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in server["volumeMounts"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in server["volumeMounts"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert volumes["models"]["emptyDir"] == {"sizeLimit": "100Gi"}
    assert server["ports"] == [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]


def test_gpu_resources_and_scheduling(default) -> None:
    spec = pod_spec(default.one("Deployment"))
    resources = spec["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1" and resources["requests"]["nvidia.com/gpu"] == "1"
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == "32Gi"
    # Literals, not the helpers the harness passed in: a changed taint key or effect must fail here.
    assert spec["nodeSelector"] == {"gpu-platform/pool": "gpu"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    for container in spec["initContainers"]:
        assert "nvidia.com/gpu" not in repr(container["resources"])


def test_vllm_flags_follow_the_config() -> None:
    rendered = render(model(gpus=2, max_model_len=8192, extra_args=("--enforce-eager",)))
    server = pod_spec(rendered.one("Deployment"))["containers"][0]
    args = server["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert args[args.index("--max-model-len") + 1] == "8192"
    assert args[-1] == "--enforce-eager"
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "2"


def test_probes_fit_a_large_model(default) -> None:
    server = pod_spec(default.one("Deployment"))["containers"][0]
    startup, ready, live = server["startupProbe"], server["readinessProbe"], server["livenessProbe"]
    for probe in (startup, ready, live):
        assert probe["httpGet"] == {"path": "/health", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= SMALL.startup_timeout_seconds
    assert live["periodSeconds"] * live["failureThreshold"] >= 120
    longer = pod_spec(render(model(startup_timeout_seconds=3600)).one("Deployment"))["containers"][0]
    assert longer["startupProbe"]["failureThreshold"] * longer["startupProbe"]["periodSeconds"] == 3600


def test_hf_server_runtime() -> None:
    rendered = render(model(runtime="hf-server", quantization="4bit"))
    spec = pod_spec(rendered.one("Deployment"))
    [server] = spec["containers"]
    assert server["image"] == HF_SERVER_IMAGE and "command" not in server and "args" not in server
    env = env_of(server)
    assert env["MODEL_PATH"] == "/models/qwen-small" and env["QUANTIZATION"] == "4bit"
    # The served name has its own variable: MODEL_NAME means the Hub repo id (model-cache's init containers).
    assert env["PORT"] == str(PORT) and env["SERVED_MODEL_NAME"] == "qwen-small" and env["HF_HUB_OFFLINE"] == "1"
    assert "MODEL_NAME" not in env
    assert env["TRUST_REMOTE_CODE"] == "0"
    assert "dshm" not in {v["name"] for v in spec["volumes"]}
    assert "HF_TOKEN" not in env
    # Liveness asks whether the process answers, readiness whether the model is loaded: weights that
    # fail to load leave the pod unready with the reason in /health, not restarted forever.
    assert server["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert server["startupProbe"]["httpGet"]["path"] == "/livez"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_hf_server_probe_paths_are_the_servers_own() -> None:
    import re

    app = (Path(__file__).resolve().parents[2] / "images/hf-server/hf_server/app.py").read_text()
    assert re.search(r'^LIVENESS_PATH = "/livez"$', app, re.MULTILINE) and re.search(r'^READINESS_PATH = "/readyz"$', app, re.MULTILINE)


def test_trust_remote_code_is_off_unless_the_model_asks() -> None:
    hf = env_of(pod_spec(render(model(runtime="hf-server", trust_remote_code=True)).one("Deployment"))["containers"][0])
    assert hf["TRUST_REMOTE_CODE"] == "1"
    vllm_default = pod_spec(render().one("Deployment"))["containers"][0]["args"]
    assert "--trust-remote-code" not in vllm_default
    vllm = pod_spec(render(model(trust_remote_code=True)).one("Deployment"))["containers"][0]["args"]
    assert "--trust-remote-code" in vllm


def test_vllm_probes_use_its_health_endpoint(default) -> None:
    server = pod_spec(default.one("Deployment"))["containers"][0]
    assert {server[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")} == {"/health"}


def test_pod_security(default) -> None:
    for manifest in (default.one("Deployment"), default.one("Job")):
        spec = pod_spec(manifest)
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["serviceAccountName"] == default.one("ServiceAccount")["metadata"]["name"]
        assert spec["imagePullSecrets"] == [{"name": PULL_SECRET}]
        for container in all_containers(spec):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True
            writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
            assert "/tmp" in writable, container["name"]
    assert default.one("ServiceAccount")["automountServiceAccountToken"] is False


def test_rollout_for_scarce_gpus(default) -> None:
    spec = default.one("Deployment")["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    assert spec["progressDeadlineSeconds"] > SMALL.startup_timeout_seconds
    assert pod_spec(default.one("Deployment"))["terminationGracePeriodSeconds"] == 120
    custom = render(model(replicas=3, max_surge=1, max_unavailable=0, termination_grace_period_seconds=30))
    spec = custom.one("Deployment")["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 30
    assert spec["template"]["spec"]["affinity"]["podAntiAffinity"]  # replicas spread over GPU nodes


def test_selectors_match_the_pods(default) -> None:
    deployment = default.one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert default.one("Service")["spec"]["selector"] == selector
    pdb = default.one("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"] == selector and pdb["maxUnavailable"] == 1
    job_labels = default.one("Job")["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= job_labels.items()  # the Service never routes to the cache-warm Job
    policy = default.one("NetworkPolicy")["spec"]
    for labels in (pod_labels, job_labels):
        assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["ingress"] == []  # no team may call it: nothing in the cluster gets in


def test_cache_warm_job_runs_ensure_before_the_rollout(default) -> None:
    job = default.one("Job")
    assert "pulumi.com/skipAwait" not in (job["metadata"].get("annotations") or {})
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    assert [c["args"] for c in spec["containers"]] == [["ensure"]]
    assert "models" not in {v["name"] for v in spec["volumes"]}
    assert default.record("Job").urn in default.record("Deployment").dependencies
    assert job["spec"]["template"]["metadata"]["annotations"]["gpu-platform/model-revision"] == SMALL.revision


def test_no_cache_warm_job_when_disabled() -> None:
    rendered = render(model(warm_cache=False))
    assert "Job" not in rendered.kinds()
    assert not any(":batch/v1:Job::" in urn for urn in rendered.record("Deployment").dependencies)


def test_node_cache_is_a_host_path_when_opted_in() -> None:
    rendered = render(model(cache="hostPath", host_path="/var/lib/gpu-platform/models"))
    volumes = {v["name"]: v for v in pod_spec(rendered.one("Deployment"))["volumes"]}
    assert volumes["models"] == {"name": "models", "hostPath": {"path": "/var/lib/gpu-platform/models",
                                                                "type": "Directory"}}


def test_download_patterns_reach_model_cache() -> None:
    rendered = render(model(allow_patterns=("*.json", "*.safetensors"), ignore_patterns=("*.bin",)))
    for container in pod_spec(rendered.one("Deployment"))["initContainers"]:
        env = env_of(container)
        assert env["MODEL_ALLOW_PATTERNS"] == "*.json,*.safetensors" and env["MODEL_IGNORE_PATTERNS"] == "*.bin"


def test_new_revision_rolls_the_pods(default) -> None:
    annotations = default.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["gpu-platform/model-revision"] == SMALL.revision


def test_misuse_is_refused_with_a_clear_error() -> None:
    sources = PodSources(s3_secret_name="s", store_config_name="c", model_cache_image="i")
    args = ModelDeploymentArgs(model=model(runtime="hf-server"), namespace="m", sources=sources)
    with pytest.raises(ValueError, match="hf_server_image"):
        ModelDeployment("x", args)
    args = ModelDeploymentArgs(model=model(gated=True), namespace="m", sources=sources)
    with pytest.raises(ValueError, match="gated"):
        ModelDeployment("x", args)


def test_generated_names_fit_kubernetes_limits() -> None:
    longest = render(model(name="m" * 40))
    for manifest in longest.manifests():
        # Mocks add "-" + 8 hex to the logical name; Pulumi's auto-naming adds "-" + 7 characters.
        assert len(manifest["metadata"]["name"]) <= 64, manifest["metadata"]["name"]
        if manifest["kind"] in ("Job", "Service"):
            assert len(manifest["metadata"]["name"]) - 1 <= 63


def test_deployment_waits_for_what_the_component_depends_on(stack_plan) -> None:
    plan = stack_plan("dev")
    deployment = plan.one("kubernetes:apps/v1:Deployment", "model-qwen-small-server")
    names = {urn.rsplit("::", 1)[-1] for urn in deployment.dependencies}
    assert {"gpu-gpu-operator", "model-qwen-small-warm"} <= names


def _namespace_psa(plan) -> str:
    [namespace] = [m for m in plan.manifests() if m["kind"] == "Namespace" and m["metadata"]["name"] == "models"]
    return namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]


def test_node_cache_lowers_pod_security_loudly(stack_plan, plan_with) -> None:
    assert _namespace_psa(stack_plan("dev")) == "restricted"
    plan = plan_with("dev", models=[{"name": "qwen-small", "repo": "Qwen/Qwen2.5-0.5B-Instruct", "cacheSize": "20Gi",
                                     "cache": "hostPath", "hostPath": "/var/lib/gpu-platform/models"}])
    assert _namespace_psa(plan) == "privileged"
    assert any("cache: hostPath" in w and "privileged" in w for w in plan.warnings)
