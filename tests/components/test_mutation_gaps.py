"""Behaviours a mutation run (scripts/mutation.sh, docs/testing.md) showed no other test pinned.

Each test names the rule it holds; each was seen to fail against the mutant it was written for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

from components.images import ContainerImageArgs, ImageBuildError, RegistryLogin, credential_like, validate
from components.model_namespace import ModelNamespace, ModelNamespaceArgs, dockerconfigjson
from tests.support.mocks import register_in, resolve


def image_args(ctx: Path, **changes) -> ContainerImageArgs:
    values = {"name": "demo", "context": str(ctx), "repository": "ghcr.io/acme/gpu-platform",
              "registry": RegistryLogin("ghcr.io", "bot", "pw")}
    values.update(changes)
    return ContainerImageArgs(**values)


# --- images: which build-arg names read as credentials -------------------------------------------------

@pytest.mark.parametrize("name", [
    "tokenValue", "authHeader", "secretName",   # camelCase: only the word split finds the credential word
    "STRIPEAPIKEY", "stripeApikey",              # one word ending in "apikey"
    "DBPASSWD", "mysqlpasswd",                   # one word ending in "passwd"
])
def test_camel_case_and_suffix_credential_names_are_caught(name: str) -> None:
    assert credential_like(name)


# --- model namespace: identity, provider, pull secret document ------------------------------------------

def _namespace(monitor, opts=None, **changes):
    args = {"namespace": "models", "bucket": "b", "endpoint": "https://e", "prefix": "models/",
            "access_key_id": "AKID", "secret_access_key": "sk", "hf_token": "hf", "registry_server": "ghcr.io",
            "registry_username": "bot", "registry_password": "pw"}
    args.update(changes)
    return register_in(monitor, lambda: ModelNamespace("unit", ModelNamespaceArgs(**args), opts))


def test_the_model_namespace_keeps_its_former_identity_and_hangs_its_objects_below_it(monitor) -> None:
    def program():
        provider = k8s.Provider("cluster-k8s", kubeconfig="{}")
        return ModelNamespace("unit", ModelNamespaceArgs(
            namespace="models", bucket="b", endpoint="https://e", prefix="models/", access_key_id="AKID",
            secret_access_key="sk"), pulumi.ResourceOptions(provider=provider))

    _, records = register_in(monitor, program)
    component = next(r for r in records if r.name == "unit")
    # A live stack created it as PlatformSecrets: without the alias the next `up` replaces every Secret.
    assert component.type == "gpu-platform:index:ModelNamespace"
    assert any("gpu-platform:index:PlatformSecrets" in alias for alias in component.aliases)
    namespace = next(r for r in records if r.type == "kubernetes:core/v1:Namespace")
    assert namespace.parent == component.urn
    # The caller's provider (the GPU cluster's) reaches the children, not the ambient kubeconfig.
    assert "cluster-k8s" in namespace.provider
    for secret in (r for r in records if r.type == "kubernetes:core/v1:Secret"):
        assert secret.parent == component.urn and "cluster-k8s" in secret.provider


def test_qualified_names_are_namespace_slash_name(monitor) -> None:
    namespace, _ = _namespace(monitor)
    assert namespace.qualified(None) is None
    assert resolve(namespace.qualified(pulumi.Output.from_input("s3-creds"))) == "models/s3-creds"


def test_an_unknown_pod_security_level_names_the_allowed_ones(monitor) -> None:
    with pytest.raises(ValueError, match="'lax': must be one of privileged, baseline, restricted"):
        _namespace(monitor, pod_security="lax")


def test_the_pull_secret_document_is_stable_text() -> None:
    # Sorted keys: the same credentials always give the same text, so a re-run shows no Secret diff.
    assert dockerconfigjson("ghcr.io", "bot", "pw") == (
        '{"auths": {"ghcr.io": {"auth": "Ym90OnB3", "password": "pw", "username": "bot"}}}')


def _plain(value):
    """A registered input without the engine's secret envelope."""
    return unwrap_rpc_secret(value) if is_rpc_secret(value) else value


def test_every_object_of_the_model_namespace_as_registered(monitor) -> None:
    """The whole set of objects, compared with literals: labels kubectl selects by, the Pod Security
    level on all three modes, the namespace every object lands in, and its order (after the namespace)."""
    _, records = _namespace(monitor, pod_security="baseline")
    component = next(r for r in records if r.type == "gpu-platform:index:ModelNamespace")
    namespace = next(r for r in records if r.type == "kubernetes:core/v1:Namespace")
    assert namespace.name == "unit-namespace"
    assert namespace.inputs["metadata"] == {"name": "models", "labels": {
        "app.kubernetes.io/name": "models", "app.kubernetes.io/part-of": "gpu-platform",
        "app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/component": "models",
        "pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/audit": "baseline",
        "pod-security.kubernetes.io/warn": "baseline", "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/audit-version": "latest", "pod-security.kubernetes.io/warn-version": "latest",
    }}
    # The namespace's default-deny NetworkPolicy (issue 13) is pinned by tests/components/test_app_team.py.
    children = {r.name: r for r in records if r.parent == component.urn and r is not namespace
                and r.type != "kubernetes:networking.k8s.io/v1:NetworkPolicy"}
    expected = {  # name -> (type, component label, Secret type or None, data keys)
        "unit-s3": ("kubernetes:core/v1:Secret", "s3-credentials", "Opaque",
                    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}),
        "unit-store": ("kubernetes:core/v1:ConfigMap", "model-store", None,
                       {"S3_ENDPOINT_URL", "S3_BUCKET", "S3_PREFIX"}),
        "unit-hf-token": ("kubernetes:core/v1:Secret", "hf-token", "Opaque", {"HF_TOKEN"}),
        "unit-pull": ("kubernetes:core/v1:Secret", "registry-pull", "kubernetes.io/dockerconfigjson",
                      {".dockerconfigjson"}),
    }
    assert set(children) == set(expected)
    for name, (kind, label, secret_type, keys) in expected.items():
        record = children[name]
        assert record.type == kind
        assert record.inputs["metadata"] == {"namespace": "models", "labels": {
            "app.kubernetes.io/name": f"unit-{label}", "app.kubernetes.io/part-of": "gpu-platform",
            "app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/component": label}}, name
        assert record.inputs.get("type") == secret_type
        assert set(_plain(record.inputs["stringData" if secret_type else "data"])) == keys
        # Created after the namespace exists, or the first `up` races it.
        assert namespace.urn in record.dependencies, name
    store = children["unit-store"].inputs["data"]
    assert store == {"S3_ENDPOINT_URL": "https://e", "S3_BUCKET": "b", "S3_PREFIX": "models/"}
    pull = json.loads(_plain(_plain(children["unit-pull"].inputs["stringData"])[".dockerconfigjson"]))
    assert pull == json.loads(dockerconfigjson("ghcr.io", "bot", "pw"))


@pytest.mark.parametrize("missing", ["registry_server", "registry_username", "registry_password", "hf_token"])
def test_optional_secrets_are_made_only_when_every_part_is_given(monitor, missing: str) -> None:
    namespace, records = _namespace(monitor, **{missing: None})
    names = {r.name for r in records}
    if missing == "hf_token":
        assert "unit-hf-token" not in names and namespace.hf_token_secret_name is None
        assert "unit-pull" in names
    else:
        assert "unit-pull" not in names and namespace.pull_secret_name is None
        assert "unit-hf-token" in names


def test_gpu_tolerations_match_the_pool_taint_literally() -> None:
    from components.cluster import gpu_tolerations

    # What kubelet compares: the taint is nvidia.com/gpu=present:NoSchedule (Exists ignores the value).
    assert gpu_tolerations() == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_every_image_problem_is_reported_at_once_with_its_fix(context: Path) -> None:
    (context / "Dockerfile").unlink()
    with pytest.raises(ImageBuildError) as caught:
        validate(image_args(context, build_args={"HF_TOKEN": "x"}, platforms=["windows/amd64"]))
    assert str(caught.value) == (
        f"ContainerImage 'demo': Dockerfile '{context / 'Dockerfile'}' does not exist; build arg 'HF_TOKEN' "
        "looks like a credential: build args are recorded in the image history. Pass it as a BuildKit secret "
        "instead: secrets={'hf_token': ...} and RUN --mount=type=secret,id=hf_token in the Dockerfile; "
        "platform 'windows/amd64' must be one of linux/amd64, linux/arm64")


def record_registered_outputs(monitor) -> dict[str, set]:
    """URN -> the output names each component registers (register_outputs), filled as the program runs."""
    registered: dict[str, set] = {}
    real = monitor.RegisterResourceOutputs

    def record(request):
        registered[request.urn] = rpc_struct_keys(request.outputs)
        return real(request)

    monitor.RegisterResourceOutputs = record
    return registered


def test_the_model_namespace_registers_its_outputs(monitor) -> None:
    registered = record_registered_outputs(monitor)
    _, records = _namespace(monitor)
    component = next(r for r in records if r.type == "gpu-platform:index:ModelNamespace")
    assert registered[component.urn] == {"namespace", "s3SecretName", "hfTokenSecretName", "storeConfigName",
                                         "pullSecretName"}


def test_optional_secrets_not_made_are_none(monitor) -> None:
    namespace, _ = _namespace(monitor, hf_token=None, registry_password=None)
    assert namespace.hf_token_secret is None and namespace.pull_secret is None


def rpc_struct_keys(struct) -> set[str]:
    return set(struct.fields.keys()) if struct is not None else set()


# --- cluster: every resource GpuCluster registers, compared with literals ----------------------------------

def test_every_resource_of_the_gpu_cluster_as_registered() -> None:
    """Network, firewall, cluster, one single-node GPU pool per node (labelled, tainted, replaced on
    resize), the Kubernetes provider on the secret kubeconfig, and the component's outputs, as literals
    (not through the helpers the component uses, which a wrong helper would satisfy as well)."""
    from components.cluster import GpuCluster, GpuClusterArgs
    from components.config.types import ClusterSettings
    from tests.support.mocks import register

    settings = ClusterSettings("LON1", "1.32.5-k3s1", "cilium", "g4s.kube.medium", 1, "an.g1.l40s.kube.x1", 2,
                               ("192.0.2.0/24", "2001:db8::/32"), "v25.10.1")
    cluster, records = register(lambda: GpuCluster("unit", GpuClusterArgs(settings, "gpu-platform-unit")))
    by_name = {r.name: r for r in records}
    component = by_name["unit"]
    assert component.type == "gpu-platform:index:GpuCluster"
    assert {r.name for r in records if r.parent == component.urn} == {
        "unit-network", "unit-firewall", "unit-cluster", "unit-gpu-pool-0", "unit-gpu-pool-1", "unit-k8s",
        "unit-gpu-operator-ns", "unit-gpu-operator"}
    network, firewall, civo_cluster = by_name["unit-network"], by_name["unit-firewall"], by_name["unit-cluster"]
    network_id, firewall_id, cluster_id = (resolve(x) for x in (cluster.network.id, cluster.firewall.id,
                                                                cluster.cluster.id))

    assert network.inputs == {"region": "LON1", "label": "gpu-platform-unit-network"}
    assert firewall.inputs == {
        "name": "gpu-platform-unit-firewall", "networkId": network_id, "region": "LON1", "createDefaultRules": False,
        "ingressRules": [{"label": "kubernetes-api", "protocol": "tcp", "portRange": "6443",
                          "cidrs": ["192.0.2.0/24", "2001:db8::/32"], "action": "allow"}],
        "egressRules": [
            {"label": "all-tcp", "protocol": "tcp", "portRange": "1-65535", "cidrs": ["0.0.0.0/0"], "action": "allow"},
            {"label": "all-udp", "protocol": "udp", "portRange": "1-65535", "cidrs": ["0.0.0.0/0"], "action": "allow"},
            {"label": "icmp", "protocol": "icmp", "cidrs": ["0.0.0.0/0"], "action": "allow"}],
    }
    assert civo_cluster.inputs == {
        "name": "gpu-platform-unit", "region": "LON1", "networkId": network_id, "firewallId": firewall_id,
        "clusterType": "k3s", "cni": "cilium", "kubernetesVersion": "1.32.5-k3s1", "writeKubeconfig": True,
        "pools": {"size": "g4s.kube.medium", "nodeCount": 1},
    }
    assert civo_cluster.ignore_changes == ["tags"] and civo_cluster.parent == component.urn
    assert set(civo_cluster.dependencies) == {network.urn, firewall.urn}
    for index in (0, 1):
        pool = by_name[f"unit-gpu-pool-{index}"]
        assert pool.inputs == {
            "clusterId": cluster_id, "size": "an.g1.l40s.kube.x1", "nodeCount": 1,
            "labels": {"gpu-platform/pool": "gpu"},
            "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        }
        assert pool.replace_on_changes == ["size", "nodeCount"] and pool.parent == component.urn
        assert pool.dependencies == [civo_cluster.urn]
        # Only the first pool keeps the identity of the one-pool design's pool.
        assert pool.aliases == (["name=unit-gpu-pool"] if index == 0 else [])

    provider = by_name["unit-k8s"]
    assert provider.type == "pulumi:providers:kubernetes" and provider.parent == component.urn
    assert is_rpc_secret(provider.inputs["kubeconfig"])
    assert {k: v for k, v in provider.inputs.items() if k != "kubeconfig"} == {
        "enableServerSideApply": "true", "deleteUnreachable": "false", "clusterIdentifier": cluster_id}
    operator = by_name["unit-gpu-operator"]
    # The operator waits for the GPU pools and talks to this cluster only.
    assert {by_name["unit-gpu-pool-0"].urn, by_name["unit-gpu-pool-1"].urn} <= set(operator.dependencies)
    assert operator.provider.startswith(provider.urn + "::")

    assert resolve(cluster.cluster_name) == "gpu-platform-unit"
    assert resolve(cluster.cluster_id) == cluster_id
    assert resolve(cluster.api_endpoint) == resolve(cluster.cluster.api_endpoint)
    assert cluster.node_selector == {"gpu-platform/pool": "gpu"}
    assert cluster.tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert (cluster.gpu_node_count, cluster.gpus_per_node, cluster.runtime_class) == (2, 1, "nvidia")
    assert cluster.pool_layout == "an.g1.l40s.kube.x1: 1,1"


def test_the_gpu_cluster_registers_its_outputs(monitor) -> None:
    from components.cluster import GpuCluster, GpuClusterArgs
    from components.config.types import ClusterSettings

    registered = record_registered_outputs(monitor)
    settings = ClusterSettings("LON1", None, "cilium", "g4s.kube.medium", 1, "an.g1.l40s.kube.x1", 1,
                               ("192.0.2.0/24",), "v25.10.1")
    _, records = register_in(monitor, lambda: GpuCluster("unit", GpuClusterArgs(settings, "gpu-platform-unit")))
    component = next(r for r in records if r.type == "gpu-platform:index:GpuCluster")
    assert registered[component.urn] == {"kubeconfig", "clusterName", "clusterId", "apiEndpoint", "gpuNodeSelector",
                                         "gpuTolerations"}
