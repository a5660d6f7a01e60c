"""The frozen settings components receive: parsed and validated once by ``components.config.settings``.

Resource modules import these types (never the parser), so a component cannot read raw config
and every value it gets has already been checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import pulumi

from components.config import catalog

API_PORT: Final = 6443
"""The Kubernetes API port of a Civo k3s cluster (the firewall rule ``apiAllowedCidrs`` opens)."""


@dataclass(frozen=True)
class ClusterSettings:
    region: str
    kubernetes_version: str | None
    cni: str
    system_node_size: str
    system_node_count: int
    gpu_node_size: str
    gpu_node_count: int
    api_allowed_cidrs: tuple[str, ...]
    """Canonical CIDRs (components/config/cidrs.py), the firewall's allow-list for the API."""
    gpu_operator_version: str
    delete_unreachable: bool = False
    """The Kubernetes provider's deleteUnreachable: off unless a platform engineer turns it on."""
    gpu_first_pool_node_count: int = 1
    """Nodes of the first GPU pool (the pool that predates one-pool-per-node); every further
    GPU node is a pool of its own (docs/architecture.md, "Scaling the GPU pool")."""
    gpu_runtime_class: str | None = "nvidia"
    """``runtimeClassName`` of GPU pods; None leaves the node's default runtime."""

    @property
    def gpu_pool_node_counts(self) -> tuple[int, ...]:
        """Node count of each GPU pool: the first pool, then one pool per further node."""
        first = min(self.gpu_first_pool_node_count, self.gpu_node_count)
        return (first,) + (1,) * (self.gpu_node_count - first)

    @property
    def gpu_size(self) -> catalog.NodeSize:
        return catalog.SIZES[self.gpu_node_size]


@dataclass(frozen=True)
class StoreSettings:
    region: str
    max_size_gb: int
    model_prefix: str
    protect: bool


@dataclass(frozen=True)
class GitHubSettings:
    owner: str
    repository: str
    environments: tuple[str, ...]


@dataclass(frozen=True)
class RegistrySettings:
    server: str
    username: str
    password: pulumi.Output[str] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ImageSettings:
    build: bool
    repository: str
    platforms: tuple[str, ...]
    pip_index: pulumi.Output[str] | None = field(default=None, compare=False, repr=False)
    """``pipIndex``: an env-style file (PIP_INDEX_URL=..., PIP_EXTRA_INDEX_URL=...) for a private
    package index, handed to builds as the optional BuildKit secret ``pip_index``."""
    promote_from: str | None = None
    """``org/project/stack`` whose ``images`` output this stack runs (build once, promote)."""
    publish: tuple[str, ...] = ()
    """Images built (or promoted) for workloads outside this stack, e.g. app teams' hf-server."""


@dataclass(frozen=True)
class ModelSettings:
    """One served model, validated. Quantities are Kubernetes quantity strings."""

    name: str
    repo: str
    revision: str = "main"
    runtime: str = "vllm"
    gpus: int = 1
    replicas: int = 1
    max_model_len: int | None = None
    extra_args: tuple[str, ...] = ()
    quantization: str = "none"
    allow_patterns: tuple[str, ...] = ()
    ignore_patterns: tuple[str, ...] = ()
    cpu: str = "4"
    memory: str = "32Gi"
    shm_size: str = "8Gi"
    cache: str = "emptyDir"
    cache_size: str = "100Gi"
    host_path: str | None = None
    warm_cache: bool = True
    max_surge: int = 0
    max_unavailable: int = 1
    termination_grace_period_seconds: int = 120
    startup_timeout_seconds: int = 1800
    gated: bool = False
    trust_remote_code: bool = False
    """Run Python code the model repo ships (off by default: it runs with the pod's access)."""


@dataclass(frozen=True)
class TeamSettings:
    """One app team (``teams`` entry): its namespace, its GitHub repository, the models it may call."""

    name: str
    namespace: str
    owner: str
    """GitHub user or organisation of the team's repository."""
    repository: str
    """The repository's name (not owner/name): it gets the Actions secret KUBECONFIG."""
    models: tuple[str, ...] = ()
    """Names of ``models`` entries the team's namespace may call; every other model is unreachable."""
    hub_write: tuple[str, ...] = ()
    """Hub namespaces (fnmatch patterns) the team may create repos in / change through the hub-gateway."""
    hub_delete: tuple[str, ...] = ()
    """Repo id patterns the team may delete through the hub-gateway (e.g. ``acme-search/scratch-*``)."""

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.repository}"


@dataclass(frozen=True)
class HubGatewaySettings:
    """The in-cluster Hub API proxy and mirror (docs/hub-gateway.md)."""

    enabled: bool = True
    replicas: int = 1
    allow_repos: tuple[str, ...] = ()
    """Repos passed through to the Hub when the bucket does not cache them (default: the models' repos)."""


@dataclass(frozen=True)
class PlatformSettings:
    project: str
    stack: str
    environment: str
    cluster: ClusterSettings
    store: StoreSettings
    model_namespace: str
    github: GitHubSettings | None
    registry: RegistrySettings
    images: ImageSettings
    models: tuple[ModelSettings, ...] = ()
    model_images: Mapping[str, str] = field(default_factory=dict)
    """Image refs (``modelCacheImage``, ``hfServerImage``) used when this stack does not build them."""
    hf_token: pulumi.Output[str] | None = field(default=None, compare=False, repr=False)
    teams: tuple[TeamSettings, ...] = ()
    hub_gateway: HubGatewaySettings = field(default_factory=HubGatewaySettings)
    export_admin_kubeconfig: bool = False
    """Export the admin kubeconfig as the secret stack output ``kubeconfig`` (opt-in; never for app teams)."""

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def name_prefix(self) -> str:
        """``{project}-{stack}``: the prefix of every physical name we choose."""
        return f"{self.project}-{self.stack}"

    @property
    def node_cached_models(self) -> list[str]:
        """Models that opt into the hostPath node cache (docs/models.md, "The node cache")."""
        return [m.name for m in self.models if m.cache == "hostPath"]

    @property
    def model_pod_security(self) -> str:
        """The model namespace's Pod Security level: "restricted" unless a model needs hostPath.

        "restricted" (and "baseline") forbid hostPath volumes, so a node cache lowers the namespace
        to "privileged"; the program warns about it on every preview.
        """
        return "privileged" if self.node_cached_models else "restricted"

    def teams_calling(self, model: str) -> tuple[str, ...]:
        """Namespaces of the teams allowed to call ``model`` (its NetworkPolicy admits only these)."""
        return tuple(t.namespace for t in self.teams if model in t.models)

    @property
    def source_url(self) -> str | None:
        """The GitHub repository the images are built from (their OCI source label)."""
        return f"https://github.com/{self.github.owner}/{self.github.repository}" if self.github else None
