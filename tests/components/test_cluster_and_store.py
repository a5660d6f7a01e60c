"""GpuCluster and ModelStore under mocks: the inputs each Civo/k8s resource gets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi.runtime.rpc import is_rpc_secret

from components.cluster import gpu_operator_values
from components.config import catalog
from components.model_store import normalise_endpoint
from tests.support.mocks import is_secret, register, resolve
from tools.offline_plan import PlanResult

NODE_POOL = "civo:index/kubernetesNodePool:KubernetesNodePool"
CLUSTER = "civo:index/kubernetesCluster:KubernetesCluster"
FIREWALL = "civo:index/firewall:Firewall"
K8S_PROVIDER = "pulumi:providers:kubernetes"
HELM = "kubernetes:helm.sh/v3:Release"
CREDENTIAL = "civo:index/objectStoreCredential:ObjectStoreCredential"
BUCKET = "civo:index/objectStore:ObjectStore"
REPO = Path(__file__).resolve().parents[2]


def test_gpu_pool_is_labelled_tainted_and_replaced_on_resize(stack_plan) -> None:
    pool = stack_plan("dev").one(NODE_POOL)
    assert pool.name == "gpu-gpu-pool-0"
    assert pool.inputs["size"] == "an.g1.l40s.kube.x1"
    assert pool.inputs["nodeCount"] == 1
    assert pool.inputs["labels"] == {"gpu-platform/pool": "gpu"}
    assert pool.inputs["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    # Neither size nor node count is ever updated in place (civo/terraform-provider-civo#381).
    assert pool.replace_on_changes == ["size", "nodeCount"]
    assert "label" not in pool.inputs  # a fixed label would collide when the pool is replaced
    # The single pool of the earlier design is this pool: a live stack keeps it.
    assert pool.aliases == ["name=gpu-gpu-pool"]


def test_scaling_adds_single_node_pools_and_never_resizes_one(plan_with) -> None:
    pools = sorted(plan_with("dev", gpuNodeCount=3).by_type(NODE_POOL), key=lambda r: r.name)
    assert [(p.name, p.inputs["nodeCount"]) for p in pools] == [
        ("gpu-gpu-pool-0", 1), ("gpu-gpu-pool-1", 1), ("gpu-gpu-pool-2", 1)]
    assert [p.aliases for p in pools] == [["name=gpu-gpu-pool"], [], []]
    grown = sorted(plan_with("prod", gpuNodeCount=3).by_type(NODE_POOL), key=lambda r: r.name)
    # prod's first pool keeps the 2 nodes it had before one-pool-per-node.
    assert [p.inputs["nodeCount"] for p in grown] == [2, 1]


def test_inline_system_pool_has_no_labels_the_provider_never_reads_back(stack_plan) -> None:
    pools = stack_plan("dev").one(CLUSTER).inputs["pools"]
    assert "labels" not in pools and pools["nodeCount"] == 1


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_civo_resource_uses_the_explicit_provider_with_the_region(stack_plan, stack: str) -> None:
    plan = stack_plan(stack)
    provider = plan.one("pulumi:providers:civo")
    assert provider.inputs["region"] == "LON1"
    civo = [r for r in plan.resources if r.type.startswith("civo:")]
    assert {r.type.split(":")[-1] for r in civo} >= {"Network", "Firewall", "KubernetesCluster",
                                                     "KubernetesNodePool", "ObjectStore", "ObjectStoreCredential"}
    assert all(r.provider.startswith(provider.urn + "::") for r in civo), [r.name for r in civo]


def test_gpu_pool_belongs_to_the_cluster(stack_plan) -> None:
    plan = stack_plan("prod")
    cluster = plan.one(CLUSTER)
    [pool] = plan.by_type(NODE_POOL)
    assert pool.inputs["clusterId"] == plan.raw_outputs["clusterId"]
    assert pool.inputs["nodeCount"] == 2 and pool.inputs["size"] == "an.g1.h100.kube.x1"
    assert cluster.inputs["pools"]["size"] in catalog.CPU_SIZES


def test_cluster_writes_its_kubeconfig_and_uses_k3s_with_cilium(stack_plan) -> None:
    cluster = stack_plan("dev").one(CLUSTER)
    assert cluster.inputs["writeKubeconfig"] is True
    assert cluster.inputs["clusterType"] == "k3s"
    assert cluster.inputs["cni"] == "cilium"
    assert cluster.ignore_changes == ["tags"]
    assert "kubernetesVersion" not in cluster.inputs  # dev follows Civo's default
    assert stack_plan("prod").one(CLUSTER).inputs["kubernetesVersion"] == "1.32.5-k3s1"


def test_firewall_opens_only_the_api_port_to_the_configured_cidrs(stack_plan) -> None:
    firewall = stack_plan("prod").one(FIREWALL)
    assert firewall.inputs["createDefaultRules"] is False
    [rule] = firewall.inputs["ingressRules"]
    assert rule["portRange"] == "6443" and rule["protocol"] == "tcp" and rule["action"] == "allow"
    assert rule["cidrs"] == ["198.51.100.0/24", "203.0.113.16/28"]


def test_firewall_follows_config_overrides(plan_with) -> None:
    plan = plan_with("dev", apiAllowedCidrs=["192.0.2.0/24"])
    [rule] = plan.one(FIREWALL).inputs["ingressRules"]
    assert rule["cidrs"] == ["192.0.2.0/24"]


def test_kubernetes_provider_gets_the_secret_kubeconfig_and_a_stable_identity(stack_plan) -> None:
    plan = stack_plan("dev")
    provider = plan.one(K8S_PROVIDER)
    assert is_rpc_secret(provider.inputs["kubeconfig"])
    assert provider.inputs["clusterIdentifier"] == plan.raw_outputs["clusterId"]
    assert provider.inputs["enableServerSideApply"] == "true"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_kubernetes_object_uses_the_cluster_provider(stack_plan, stack: str) -> None:
    plan: PlanResult = stack_plan(stack)
    provider = plan.one(K8S_PROVIDER)
    k8s_resources = [r for r in plan.resources if r.type.startswith("kubernetes:") and r.custom]
    assert k8s_resources
    for record in k8s_resources:
        assert record.provider.startswith(provider.urn + "::"), (record.type, record.name, record.provider)


def test_gpu_operator_is_installed_for_civo(stack_plan) -> None:
    release = stack_plan("dev").one(HELM)
    assert release.inputs["chart"] == "gpu-operator"
    assert release.inputs["version"] == catalog.GPU_OPERATOR_CHART_VERSION
    assert release.inputs["repositoryOpts"]["repo"] == catalog.GPU_OPERATOR_REPO
    values = release.inputs["values"]
    assert values["toolkit"]["enabled"] is False  # Civo's GPU image ships the toolkit
    assert values["driver"]["enabled"] is True and values["devicePlugin"]["enabled"] is True
    assert "kernelModuleConfig" not in values["driver"]


def test_single_h100_nodes_get_nvlink_disabled(stack_plan) -> None:
    plan = stack_plan("prod")
    assert plan.one(HELM).inputs["values"]["driver"]["kernelModuleConfig"] == {"name": "nvidia-kernel-config"}
    [config_map] = [m for m in plan.manifests() if m["kind"] == "ConfigMap"
                    and m["metadata"]["name"] == "nvidia-kernel-config"]
    assert config_map["data"]["nvidia.conf"] == "options nvidia NVreg_NvLinkDisable=1"
    assert "kernelModuleConfig" not in gpu_operator_values(catalog.SIZES["an.g1.h100.kube.x2"])["driver"]


def test_gpu_scheduling_outputs_match_the_pool(stack_plan) -> None:
    plan = stack_plan("dev")
    pool = plan.one(NODE_POOL)
    selector = plan.outputs["gpuNodeSelector"]
    assert selector.items() <= pool.inputs["labels"].items()
    [toleration] = plan.outputs["gpuTolerations"]
    [taint] = pool.inputs["taints"]
    assert toleration["key"] == taint["key"] and toleration["effect"] == taint["effect"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_stack_output_carries_a_kubeconfig_by_default(stack_plan, stack: str) -> None:
    # StackReference readers get every output, secret ones too: cluster-admin is never one of them.
    plan = stack_plan(stack)
    assert "kubeconfig" not in plan.raw_outputs
    assert plan.secret_outputs == set()
    for name, value in plan.raw_outputs.items():
        assert "kind: Config" not in json.dumps(value) and '"kind": "Config"' not in json.dumps(value), name
        # The mocks' credentials (admin and ServiceAccount tokens, the S3 key) all start "offline-".
        assert "offline-" not in json.dumps(value), name


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_admin_kubeconfig_is_exported_secret_on_request_only(plan_with, stack: str) -> None:
    plan = plan_with(stack, exportAdminKubeconfig=True)
    assert plan.secret_outputs == {"kubeconfig"}
    assert plan.outputs["kubeconfig"] == "[secret]"
    assert "apiVersion: v1" in plan.raw_outputs["kubeconfig"]
    if stack == "prod":
        assert any("every reader of this prod stack gets cluster-admin" in w for w in plan.warnings)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_delete_unreachable_is_off_unless_turned_on(stack_plan, plan_with, stack: str) -> None:
    # A refresh that cannot reach the API must not drop every Kubernetes resource from the state.
    assert stack_plan(stack).one(K8S_PROVIDER).inputs["deleteUnreachable"] == "false"
    if stack == "dev":
        assert plan_with(stack, deleteUnreachable=True).one(K8S_PROVIDER).inputs["deleteUnreachable"] == "true"


def test_model_store_credential_is_explicit_and_its_secret_wrapped(stack_plan) -> None:
    plan = stack_plan("dev")
    credential = plan.one(CREDENTIAL)
    bucket = plan.one(BUCKET)
    assert credential.additional_secret_outputs == ["secretAccessKey"]
    assert bucket.inputs["accessKeyId"] == credential.state["accessKeyId"]
    assert bucket.inputs["region"] == credential.inputs["region"] == "LON1"
    assert bucket.inputs["maxSizeGb"] == 500


@pytest.mark.parametrize(("stack", "protected"), [("dev", False), ("prod", True)])
def test_prod_protects_and_retains_the_data(stack_plan, stack: str, protected: bool) -> None:
    plan = stack_plan(stack)
    for record in (plan.one(BUCKET), plan.one(CREDENTIAL)):
        assert record.protect is protected and record.retain_on_delete is protected, record.name
    assert plan.one(CLUSTER).protect is False


def test_protect_data_flag_protects_dev_too(plan_with) -> None:
    assert plan_with("dev", protectData=True).one(BUCKET).protect is True


def test_store_endpoint_output_is_a_url(stack_plan) -> None:
    assert stack_plan("dev").outputs["modelStoreEndpoint"] == "https://objectstore.lon1.civo.com"


@pytest.mark.parametrize(
    ("bucket_url", "expected"),
    [
        ("objectstore.lon1.civo.com", "https://objectstore.lon1.civo.com"),
        ("https://objectstore.civo.com/bucketA-zqws", "https://objectstore.civo.com"),
        ("http://127.0.0.1:9000/b", "http://127.0.0.1:9000"),
        (None, "https://objectstore.fra1.civo.com"),
    ],
)
def test_endpoint_normalisation(bucket_url: str | None, expected: str) -> None:
    assert normalise_endpoint(bucket_url, "FRA1") == expected


def test_model_store_secret_outputs_are_secret_on_the_component() -> None:
    """Directly on the component: the wrapped credential outputs read as secret."""
    from components.config.types import StoreSettings
    from components.model_store import ModelStore, ModelStoreArgs

    store, _ = register(lambda: ModelStore(
        "unit", ModelStoreArgs(StoreSettings("LON1", 500, "models/", True), "gpu-platform-unit")))
    assert is_secret(store.secret_access_key)
    assert is_secret(store.access_key_id)
    assert not is_secret(store.bucket)


_NO_GPU_ACCOUNT_PROGRAM = """
import sys
import pulumi
from components.cluster import GpuCluster, GpuClusterArgs
from components.config.types import ClusterSettings
from tools.plan_mocks import PlatformMocks, install_mocks, run_program


class NoGpuAccount(PlatformMocks):
    # An account without GPU quota, whose pinned k3s version Civo has withdrawn.
    def call(self, args):
        result = super().call(args)
        result.pop("versions", None)
        if "sizes" in result:
            result["sizes"] = [s for s in result["sizes"] if not s["gpu"]]
        return result or {"versions": []}


def program():
    version = sys.argv[1] or None
    settings = ClusterSettings("LON1", version, "cilium", "g4s.kube.medium", 1,
                               "an.g1.l40s.kube.x1", 1, ("192.0.2.0/24",), "v25.10.1")
    pulumi.export("clusterId", GpuCluster("unit", GpuClusterArgs(settings, "gpu-platform-unit")).cluster_id)


install_mocks(NoGpuAccount("gpu-platform", "unit"), project="gpu-platform", stack="unit")
try:
    run_program(program)
except ValueError as exc:
    print(str(exc).splitlines()[-1])
    sys.exit(3)
"""


def _run_against_account(version: str) -> subprocess.CompletedProcess[str]:
    # A subprocess: a program failing mid-registration leaves Pulumi's runtime unusable in-process.
    return subprocess.run([sys.executable, "-c", _NO_GPU_ACCOUNT_PROGRAM, version], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)


def test_gpu_size_not_offered_by_the_live_api_fails_the_run_with_the_fix() -> None:
    proc = _run_against_account("")
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert ("'an.g1.l40s.kube.x1' is not a GPU Kubernetes size offered in LON1 to this account; "
            "offered GPU sizes: none. Fix: pulumi config set gpuNodeSize") in proc.stdout


def test_pinned_version_withdrawn_by_civo_fails_the_run_with_the_fix() -> None:
    proc = _run_against_account("1.32.5-k3s1")
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "kubernetesVersion '1.32.5-k3s1' is not offered by Civo any more" in proc.stdout


def test_the_cluster_component_marks_the_kubeconfig_secret_itself() -> None:
    """The mock returns the kubeconfig plain (as the provider does; the engine's marking is not
    mocked), so only GpuCluster's own wrapping can make these secret."""
    from components.cluster import GpuCluster, GpuClusterArgs
    from components.config.types import ClusterSettings

    settings = ClusterSettings("LON1", None, "cilium", "g4s.kube.medium", 1, "an.g1.l40s.kube.x1", 1,
                               ("192.0.2.0/24",), "v25.10.1")
    cluster, records = register(lambda: GpuCluster("unit", GpuClusterArgs(settings, "gpu-platform-unit")))
    assert is_secret(cluster.kubeconfig)
    assert "apiVersion: v1" in resolve(cluster.kubeconfig)
    [provider] = [r for r in records if r.type == "pulumi:providers:kubernetes"]
    assert is_rpc_secret(provider.inputs["kubeconfig"])
    # And the Civo SDK asks the engine to mark it too (the real provider's behaviour).
    [civo_cluster] = [r for r in records if r.type == "civo:index/kubernetesCluster:KubernetesCluster"]
    assert "kubeconfig" in civo_cluster.additional_secret_outputs
