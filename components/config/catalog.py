"""What Civo offers, in one table: regions, node sizes and Kubernetes versions.

Settings validation reads it (so a typo fails before anything is created) and the offline
plan answers the provider's invokes (``civo.get_size``, ``civo.get_kubernetes_version``)
from it, so the two can never disagree. At deploy time ``GpuCluster`` still asks the real
API through ``get_size`` whether the chosen GPU size is offered to this account/region.

Sources: Civo docs (regions, gpu-config, object stores) and public configurations; GPU size
names are not listed in Civo's docs, so they are checked against the live API at deploy time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Region:
    code: str
    gpu_kubernetes: bool
    object_store: bool


@dataclass(frozen=True)
class NodeSize:
    name: str
    cpu: int
    ram_mb: int
    disk_gb: int
    gpu_count: int = 0
    gpu_type: str = ""
    gpu_memory_gb: int = 0

    @property
    def is_gpu(self) -> bool:
        return self.gpu_count > 0


REGIONS: Final[dict[str, Region]] = {
    r.code: r
    for r in (
        Region("LON1", gpu_kubernetes=True, object_store=True),
        Region("FRA1", gpu_kubernetes=False, object_store=True),
        Region("NYC1", gpu_kubernetes=False, object_store=True),
        Region("PHX1", gpu_kubernetes=False, object_store=False),
        Region("MUM1", gpu_kubernetes=False, object_store=True),
    )
}

_SIZES: Final[tuple[NodeSize, ...]] = (
    # CPU-only Kubernetes sizes: the 'g4s' prefix is not a GPU marker.
    NodeSize("g4s.kube.xsmall", cpu=1, ram_mb=1024, disk_gb=30),
    NodeSize("g4s.kube.small", cpu=1, ram_mb=2048, disk_gb=40),
    NodeSize("g4s.kube.medium", cpu=2, ram_mb=4096, disk_gb=50),
    NodeSize("g4s.kube.large", cpu=4, ram_mb=8192, disk_gb=60),
    NodeSize("g4s.kube.xlarge", cpu=6, ram_mb=16384, disk_gb=80),
    # GPU Kubernetes sizes.
    NodeSize("g4g.40.kube.small", 8, 65536, 200, 1, "nvidia.com/A100-40GB", 40),
    NodeSize("g4g.kube.small", 12, 98304, 200, 1, "nvidia.com/A100-80GB", 80),
    NodeSize("g4g.kube.medium", 24, 196608, 400, 2, "nvidia.com/A100-80GB", 80),
    NodeSize("g4g.kube.large", 48, 393216, 800, 4, "nvidia.com/A100-80GB", 80),
    NodeSize("g4g.kube.xlarge", 96, 786432, 1600, 8, "nvidia.com/A100-80GB", 80),
    NodeSize("an.g1.l40s.kube.x1", 12, 98304, 200, 1, "nvidia.com/AD102GL_L40S", 48),
    NodeSize("an.g1.l40s.kube.x2", 24, 196608, 400, 2, "nvidia.com/AD102GL_L40S", 48),
    NodeSize("an.g1.l40s.kube.x4", 48, 393216, 800, 4, "nvidia.com/AD102GL_L40S", 48),
    NodeSize("an.g1.l40s.kube.x8", 96, 786432, 1600, 8, "nvidia.com/AD102GL_L40S", 48),
    NodeSize("an.g1.h100.kube.x1", 28, 245760, 400, 1, "nvidia.com/H100-80GB", 80),
    NodeSize("an.g1.h100.kube.x2", 56, 491520, 800, 2, "nvidia.com/H100-80GB", 80),
    NodeSize("an.g1.h100.kube.x4", 112, 983040, 1600, 4, "nvidia.com/H100-80GB", 80),
    NodeSize("an.g1.h100.kube.x8", 224, 1966080, 3200, 8, "nvidia.com/H100-80GB", 80),
)
SIZES: Final[dict[str, NodeSize]] = {s.name: s for s in _SIZES}
GPU_SIZES: Final[tuple[str, ...]] = tuple(s.name for s in _SIZES if s.is_gpu)
CPU_SIZES: Final[tuple[str, ...]] = tuple(s.name for s in _SIZES if not s.is_gpu)

#: k3s versions offered (labels without the '-gpu' suffix: pulumi-civo 2.4.8 bridges
#: terraform-provider-civo v1.1.4, whose version check rejects '-k3s1-gpu...' labels).
KUBERNETES_VERSIONS: Final[tuple[str, ...]] = ("1.32.5-k3s1", "1.31.9-k3s1", "1.30.5-k3s1")
DEFAULT_KUBERNETES_VERSION: Final = "1.32.5-k3s1"

#: NVIDIA GPU operator chart validated by Civo's GPU docs.
GPU_OPERATOR_CHART_VERSION: Final = "v25.10.1"
GPU_OPERATOR_REPO: Final = "https://helm.ngc.nvidia.com/nvidia"


def object_store_endpoint(region: str) -> str:
    """The S3 endpoint of Civo's object store in a region (path-style addressing)."""
    return f"https://objectstore.{region.lower()}.civo.com"


def size_as_api_result(size: NodeSize) -> dict[str, object]:
    """One entry of ``civo.get_size``'s ``sizes`` list, as the API returns it."""
    return {
        "name": size.name,
        "type": "kubernetes",
        "cpu": size.cpu,
        "ram": size.ram_mb,
        "disk": size.disk_gb,
        "gpu": size.gpu_count,
        "gpu_type": size.gpu_type,
        "description": f"{size.name} ({size.gpu_count}x {size.gpu_type})" if size.is_gpu else size.name,
        "selectable": True,
    }
