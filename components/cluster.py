"""GpuCluster: the Civo network, firewall, k3s cluster, GPU node pool, its Kubernetes provider
and the NVIDIA GPU operator.

Why it looks like this:
- The cluster's inline pool cannot change size in place (terraform-provider-civo), so it is a
  small CPU "system" pool, and GPUs live in separate ``KubernetesNodePool`` resources.
- **One GPU pool per node** (after a first pool of ``gpuFirstPoolNodeCount`` nodes): pulumi-civo
  2.4.8 bundles terraform-provider-civo v1.1.4, whose node-pool update panics on any change of
  ``node_count`` (``d.Get("node_count").(*int)``; civo/terraform-provider-civo#381, fixed by #392,
  in no pulumi-civo release yet). So a pool's node count is never updated: scaling creates or
  deletes whole single-node pools, and ``replaceOnChanges: [size, nodeCount]`` turns any other
  node-count change into a create-then-delete replacement. docs/architecture.md, "Scaling the GPU
  pool", says how to go back to one resizable pool once a fixed pulumi-civo ships.
- The inline pool has no ``labels``: v1.1.4 never reads them back (``flattenNodePool``), so they
  showed as a change on every preview, and nothing selects the system pool by label.
- Every Civo resource uses the stack's explicit ``civo.Provider`` (given by the caller through
  ``providers``), which carries the region; the node pools have no region field of their own.
- Civo's GPU nodes ship the NVIDIA container toolkit but no driver and no device plugin
  (Civo docs, gpu-config), so the GPU operator is installed with ``toolkit.enabled=false``.
- ``write_kubeconfig=True``: without it the kubeconfig output is empty and a Kubernetes provider
  given an empty kubeconfig silently falls back to ``~/.kube/config``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_civo as civo
import pulumi_kubernetes as k8s

from components.config import catalog
from components.config.types import API_PORT, ClusterSettings
from components.kubernetes import standard_labels

GPU_POOL_LABEL_KEY = "gpu-platform/pool"
GPU_POOL_LABEL_VALUE = "gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "present"
GPU_TAINT_EFFECT = "NoSchedule"
GPU_OPERATOR_NAMESPACE = "gpu-operator"
#: Inputs whose change replaces a GPU pool instead of updating it (see the module docstring).
GPU_POOL_REPLACE_ON_CHANGES = ("size", "nodeCount")


@dataclass(frozen=True)
class GpuClusterArgs:
    settings: ClusterSettings
    name_prefix: str
    """``{project}-{stack}``: prefixes the Civo names so two stacks never collide."""


def gpu_pool_name(cluster: str, index: int) -> str:
    """Logical name of GPU pool ``index`` (0: the first pool, aliased to the old single pool)."""
    return f"{cluster}-gpu-pool-{index}"


def gpu_node_selector() -> dict[str, str]:
    """What a pod needs in ``nodeSelector`` to land on the GPU pool."""
    return {GPU_POOL_LABEL_KEY: GPU_POOL_LABEL_VALUE}


def gpu_tolerations() -> list[dict[str, str]]:
    """What a pod needs in ``tolerations`` to be allowed on the tainted GPU pool."""
    return [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": GPU_TAINT_EFFECT}]


def gpu_operator_values(size: catalog.NodeSize, runtime_class: str | None = "nvidia") -> dict[str, object]:
    """Helm values for the GPU operator on Civo (Civo docs, gpu-config)."""
    values: dict[str, object] = {
        "operator": {"defaultRuntime": "containerd"},
        "driver": {"enabled": True},
        "toolkit": {"enabled": False},  # Civo's GPU image ships the container toolkit
        "devicePlugin": {"enabled": True},
        "gfd": {"enabled": True},
        "daemonsets": {"tolerations": gpu_tolerations()},
    }
    if runtime_class:
        # The validator's CUDA workload runs like the model pods (gpuRuntimeClass).
        values["validator"] = {"cuda": {"runtimeClassName": runtime_class}}
    if _needs_nvlink_disabled(size):
        values["driver"] = {"enabled": True, "kernelModuleConfig": {"name": "nvidia-kernel-config"}}
    return values


def _needs_nvlink_disabled(size: catalog.NodeSize) -> bool:
    # Single-GPU H100 nodes hang loading the driver unless NVLink is disabled (Civo docs).
    return "H100" in size.gpu_type and size.gpu_count == 1


class GpuCluster(pulumi.ComponentResource):
    """A Civo k3s cluster with a tainted GPU pool and a Kubernetes provider for it."""

    kubeconfig: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    cluster_id: pulumi.Output[str]
    api_endpoint: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: GpuClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-platform:index:GpuCluster", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)

        self.network = civo.Network(
            f"{name}-network", label=f"{args.name_prefix}-network", region=s.region, opts=child
        )
        self.firewall = civo.Firewall(
            f"{name}-firewall",
            name=f"{args.name_prefix}-firewall",
            network_id=self.network.id,
            region=s.region,
            create_default_rules=False,
            ingress_rules=[
                civo.FirewallIngressRuleArgs(
                    label="kubernetes-api", protocol="tcp", port_range=str(API_PORT),
                    cidrs=list(s.api_allowed_cidrs), action="allow",
                ),
            ],
            egress_rules=[
                civo.FirewallEgressRuleArgs(label="all-tcp", protocol="tcp", port_range="1-65535",
                                            cidrs=["0.0.0.0/0"], action="allow"),
                civo.FirewallEgressRuleArgs(label="all-udp", protocol="udp", port_range="1-65535",
                                            cidrs=["0.0.0.0/0"], action="allow"),
                civo.FirewallEgressRuleArgs(label="icmp", protocol="icmp", cidrs=["0.0.0.0/0"], action="allow"),
            ],
            opts=child,
        )
        self.cluster = civo.KubernetesCluster(
            f"{name}-cluster",
            name=f"{args.name_prefix}",
            region=s.region,
            network_id=self.network.id,
            firewall_id=self.firewall.id,
            cluster_type="k3s",
            cni=s.cni,
            kubernetes_version=self._checked_kubernetes_version(s),
            write_kubeconfig=True,
            pools=civo.KubernetesClusterPoolsArgs(
                size=s.system_node_size,
                node_count=s.system_node_count,
            ),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["tags"]),
        )
        gpu_size = self._checked_gpu_size(s)
        self.gpu_pools = [
            civo.KubernetesNodePool(
                gpu_pool_name(name, index),
                cluster_id=self.cluster.id,
                size=gpu_size,
                node_count=node_count,
                labels={GPU_POOL_LABEL_KEY: GPU_POOL_LABEL_VALUE},
                taints=[civo.KubernetesNodePoolTaintArgs(key=GPU_TAINT_KEY, value=GPU_TAINT_VALUE,
                                                         effect=GPU_TAINT_EFFECT)],
                # Never an in-place update of size (Civo refuses) or node count (the provider panics,
                # #381): a new pool is created before the old one is deleted.
                opts=pulumi.ResourceOptions(
                    parent=self, replace_on_changes=list(GPU_POOL_REPLACE_ON_CHANGES),
                    # The pool of the one-pool design is the first pool of this one.
                    aliases=[pulumi.Alias(name=f"{name}-gpu-pool")] if index == 0 else None,
                ),
            )
            for index, node_count in enumerate(s.gpu_pool_node_counts)
        ]

        self.kubeconfig = pulumi.Output.secret(self.cluster.kubeconfig.apply(_require_kubeconfig))
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            # Off unless a platform engineer turns it on (never in prod): with it, a refresh that
            # cannot reach the API (firewall, outage) drops every Kubernetes resource from the state.
            delete_unreachable=s.delete_unreachable,
            # Kubeconfig rotation must not replace every Kubernetes object in the stack.
            cluster_identifier=self.cluster.id,
            opts=child,
        )
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=list(self.gpu_pools))
        self.gpu_operator = self._gpu_operator(name, s, k8s_opts)

        self.cluster_name = self.cluster.name
        self.cluster_id = self.cluster.id
        self.api_endpoint = self.cluster.api_endpoint
        self.node_selector = gpu_node_selector()
        self.tolerations = gpu_tolerations()
        self.gpu_node_count = s.gpu_node_count
        self.gpus_per_node = s.gpu_size.gpu_count
        self.runtime_class = s.gpu_runtime_class
        #: Size and node count of every GPU pool: what the GPU smoke test must cover.
        self.pool_layout = f"{s.gpu_node_size}: " + ",".join(str(n) for n in s.gpu_pool_node_counts)
        self.register_outputs({
            "kubeconfig": self.kubeconfig,
            "clusterName": self.cluster_name,
            "clusterId": self.cluster_id,
            "apiEndpoint": self.api_endpoint,
            "gpuNodeSelector": self.node_selector,
            "gpuTolerations": self.tolerations,
        })

    def _checked_gpu_size(self, s: ClusterSettings) -> pulumi.Output[str]:
        """The GPU size, confirmed against the live API (sizes differ per account and region)."""
        offered = civo.get_size_output(
            filters=[civo.GetSizeFilterArgs(key="type", values=["kubernetes"])],
            opts=pulumi.InvokeOptions(parent=self),
        )

        def check(result: civo.GetSizeResult) -> str:
            by_name = {size.name: size for size in result.sizes}
            found = by_name.get(s.gpu_node_size)
            if found is None or not found.gpu:
                gpu_names = sorted(n for n, size in by_name.items() if size.gpu)
                raise ValueError(
                    f"gpuNodeSize {s.gpu_node_size!r} is not a GPU Kubernetes size offered in {s.region} "
                    f"to this account; offered GPU sizes: {', '.join(gpu_names) or 'none'}. "
                    "Fix: pulumi config set gpuNodeSize <one of them>"
                )
            return found.name

        return offered.apply(check)

    def _checked_kubernetes_version(self, s: ClusterSettings) -> pulumi.Output[str] | None:
        """A pinned k3s version, confirmed as offered by the live API; None follows Civo's default."""
        if s.kubernetes_version is None:
            return None
        offered = civo.get_kubernetes_version_output(
            filters=[civo.GetKubernetesVersionFilterArgs(key="type", values=["k3s"])],
            opts=pulumi.InvokeOptions(parent=self),
        )

        def check(result: civo.GetKubernetesVersionResult) -> str:
            versions = sorted(v.version for v in result.versions)
            if s.kubernetes_version not in versions:
                raise ValueError(
                    f"kubernetesVersion {s.kubernetes_version!r} is not offered by Civo any more; offered: "
                    f"{', '.join(versions)}. Fix: pulumi config set kubernetesVersion <one of them>"
                )
            return s.kubernetes_version

        return offered.apply(check)

    def _gpu_operator(self, name: str, s: ClusterSettings, opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
        namespace = k8s.core.v1.Namespace(
            f"{name}-gpu-operator-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=GPU_OPERATOR_NAMESPACE,
                labels={
                    **standard_labels("gpu-operator"),
                    # The operator's driver and validator pods are privileged by design.
                    "pod-security.kubernetes.io/enforce": "privileged",
                },
            ),
            opts=opts,
        )
        depends: list[pulumi.Resource] = [namespace]
        if _needs_nvlink_disabled(s.gpu_size):
            depends.append(k8s.core.v1.ConfigMap(
                f"{name}-nvidia-kernel-config",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name="nvidia-kernel-config", namespace=GPU_OPERATOR_NAMESPACE,
                    labels=standard_labels("gpu-operator"),
                ),
                data={"nvidia.conf": "options nvidia NVreg_NvLinkDisable=1"},
                opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[namespace])),
            ))
        return k8s.helm.v3.Release(
            f"{name}-gpu-operator",
            chart="gpu-operator",
            version=s.gpu_operator_version,
            namespace=GPU_OPERATOR_NAMESPACE,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=catalog.GPU_OPERATOR_REPO),
            values=gpu_operator_values(s.gpu_size, s.gpu_runtime_class),
            atomic=True,
            cleanup_on_fail=True,
            timeout=1200,  # the driver compiles on each GPU node
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=depends)),
        )


def _require_kubeconfig(kubeconfig: str | None) -> str:
    # An empty kubeconfig would make the provider use the ambient ~/.kube/config.
    if not kubeconfig:
        raise ValueError("Civo returned no kubeconfig for the cluster (write_kubeconfig must be true)")
    return kubeconfig
