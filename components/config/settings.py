"""Every stack config key, read once, validated, and frozen.

Components never call ``pulumi.Config()``: ``__main__.py`` calls :func:`load_settings` once and
hands each component the slice it needs. All problems are collected and raised together as
one :class:`SettingsError` before any resource is registered, each naming the key, the value,
what is allowed and the command that fixes it.

The defaults below are the single source of truth; ``Pulumi.yaml`` repeats them for the CLI
and a test keeps the two equal.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Final, Protocol

import pulumi
from pulumi.runtime import config as runtime_config

from components.config import catalog
from components.config.cidrs import parse_cidrs
from components.config.images import IMAGE_KEYS, PLATFORMS, images_needed
from components.config.models import parse_models
from components.config.patterns import DNS_1035, DNS_LABEL, HUB_REPO_PATTERN, github_repository_problem
from components.config.reader import ConfigReader, closest
from components.config.teams import parse_teams
from components.config.types import (
    API_PORT,
    ClusterSettings,
    GitHubSettings,
    HubGatewaySettings,
    ImageSettings,
    ModelSettings,
    PlatformSettings,
    RegistrySettings,
    StoreSettings,
    TeamSettings,
)

PROJECT: Final = "gpu-platform"
ENVIRONMENTS: Final = ("dev", "staging", "prod")
CNIS: Final = ("cilium", "flannel")
MAX_NODE_COUNT: Final = 20
BUCKET_SIZE_STEP_GB: Final = 500
BUCKET_MAX_GB: Final = 10_000
_K3S_VERSION = re.compile(r"v?\d+\.\d+\.\d+-k3s\d+")
_REGISTRY_HOST = re.compile(r"[a-z0-9.-]+(:\d+)?")
_IMAGE_REPO = re.compile(r"[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+")
_PREFIX = re.compile(r"[A-Za-z0-9._/-]*/")
_OPERATOR_VERSION = re.compile(r"v\d+\.\d+\.\d+")
_DIGEST_REF = re.compile(r"[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[0-9a-f]{64}")

#: Day-two keys (issue 12): GPU pool layout, GPU runtime class, image promotion.
DAY_TWO_DEFAULTS: Final[Mapping[str, Any]] = {
    "gpuFirstPoolNodeCount": 1,
    "gpuRuntimeClass": "nvidia",
    "promoteImagesFrom": "",
    "publishImages": [],
}
#: The hub-gateway (issue 15): on by default, one replica (prod runs two), the models' repos passed through.
HUB_GATEWAY_DEFAULTS: Final[Mapping[str, Any]] = {
    "hubGateway": True,
    "hubGatewayReplicas": 1,
    "hubGatewayAllowRepos": [],
    "hubGatewayImage": "",
}

#: Defaults per key; ``Pulumi.yaml`` declares the same values (a test keeps them equal).
DEFAULTS: Final[Mapping[str, Any]] = {
    "environment": "dev",
    "region": "LON1",
    "kubernetesVersion": "",
    "cni": "cilium",
    "systemNodeSize": "g4s.kube.medium",
    "systemNodeCount": 1,
    "gpuNodeSize": "an.g1.l40s.kube.x1",
    "gpuNodeCount": 1,
    "apiAllowedCidrs": ["0.0.0.0/0"],
    "allowPublicApiAccess": False,
    "gpuOperatorVersion": catalog.GPU_OPERATOR_CHART_VERSION,
    "bucketMaxSizeGb": 500,
    "modelPrefix": "models/",
    "protectData": False,
    "modelNamespace": "models",
    "githubRepository": "",
    "githubEnvironments": [],
    "registry": "ghcr.io",
    "registryUsername": "",
    "imageRepository": "",
    "buildImages": False,
    "imagePlatforms": ["linux/amd64"],
    "models": [],
    "modelCacheImage": "",
    "hfServerImage": "",
    "deleteUnreachable": False,
    "exportAdminKubeconfig": False,
    "teams": [],
    **DAY_TWO_DEFAULTS,
    **HUB_GATEWAY_DEFAULTS,
}


class SettingsError(ValueError):
    """Invalid stack configuration: one line per problem, each with its fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problem(s)):\n{lines}")


#: Keys that hold credentials: read only as Pulumi secrets, refused when stored in plain text.
SECRET_KEYS: Final = ("hfToken", "registryPassword", "pipIndex")
#: Namespaces the model namespace may never be: Kubernetes' own and the GPU operator's.
RESERVED_NAMESPACES: Final = ("default", "kube-system", "kube-public", "kube-node-lease", "gpu-operator")


class ConfigSource(Protocol):
    """What settings needs from ``pulumi.Config``; tests pass a dict-backed stand-in."""

    def get(self, key: str) -> str | None: ...

    def get_secret(self, key: str) -> pulumi.Output[str] | None: ...

    def set_keys(self) -> set[str]:
        """Every key set in the project's namespace (without the ``gpu-platform:`` prefix)."""
        ...

    def is_secret(self, key: str) -> bool:
        """Whether the stack stores the key encrypted (``pulumi config set --secret``)."""
        ...


def _cluster(r: ConfigReader, environment: str) -> ClusterSettings:
    region = r.string("region", normalise=str.upper)
    if region not in catalog.REGIONS:
        r.fail("region", region, f"unknown Civo region; known: {', '.join(catalog.REGIONS)}",
               "pulumi config set region LON1")
    elif not catalog.REGIONS[region].gpu_kubernetes:
        gpu_regions = [c for c, reg in catalog.REGIONS.items() if reg.gpu_kubernetes]
        r.fail("region", region, f"Civo offers GPU Kubernetes only in {', '.join(gpu_regions)}",
               f"pulumi config set region {gpu_regions[0]}")
    elif not catalog.REGIONS[region].object_store:
        r.fail("region", region, "Civo offers no object store in this region", "pulumi config set region LON1")

    version = r.string("kubernetesVersion").removeprefix("v")
    if version:
        if "-gpu" in version:
            r.fail("kubernetesVersion", version,
                   "'-gpu' k3s labels are rejected by pulumi-civo 2.4.8 (terraform-provider-civo v1.1.4); "
                   "GPU support comes from the NVIDIA GPU operator instead",
                   f"pulumi config set kubernetesVersion {catalog.DEFAULT_KUBERNETES_VERSION}")
        elif not _K3S_VERSION.fullmatch(version):
            r.fail("kubernetesVersion", version, "must look like 1.32.5-k3s1 (a Civo k3s version label)",
                   f"pulumi config set kubernetesVersion {catalog.DEFAULT_KUBERNETES_VERSION}")
        elif version not in catalog.KUBERNETES_VERSIONS:
            r.fail("kubernetesVersion", version,
                   f"not an offered version; offered: {', '.join(catalog.KUBERNETES_VERSIONS)}",
                   f"pulumi config set kubernetesVersion {catalog.DEFAULT_KUBERNETES_VERSION} "
                   "(or leave it unset for Civo's default)")

    system_size = r.string("systemNodeSize")
    if system_size not in catalog.CPU_SIZES:
        why = "is a GPU size; the system pool runs only CPU workloads" if system_size in catalog.GPU_SIZES \
            else "unknown Kubernetes node size"
        r.fail("systemNodeSize", system_size, f"{why}; allowed: {', '.join(catalog.CPU_SIZES)}",
               "pulumi config set systemNodeSize g4s.kube.medium")
    gpu_size = r.string("gpuNodeSize")
    if gpu_size not in catalog.GPU_SIZES:
        why = "is a CPU-only size (no GPU)" if gpu_size in catalog.CPU_SIZES else "unknown GPU node size"
        r.fail("gpuNodeSize", gpu_size, f"{why}; GPU sizes: {', '.join(catalog.GPU_SIZES)}",
               "pulumi config set gpuNodeSize an.g1.l40s.kube.x1")

    cidrs = _api_cidrs(r, environment)

    operator_version = r.string("gpuOperatorVersion")
    if not _OPERATOR_VERSION.fullmatch(operator_version):
        r.fail("gpuOperatorVersion", operator_version, "must be a chart version like v25.10.1",
               f"pulumi config set gpuOperatorVersion {catalog.GPU_OPERATOR_CHART_VERSION}")

    return ClusterSettings(
        region=region,
        kubernetes_version=version or None,
        cni=r.string("cni", CNIS),
        system_node_size=system_size,
        system_node_count=r.integer("systemNodeCount", 1, MAX_NODE_COUNT),
        gpu_node_size=gpu_size,
        gpu_node_count=r.integer("gpuNodeCount", 1, MAX_NODE_COUNT),
        api_allowed_cidrs=cidrs,
        gpu_operator_version=operator_version,
    )


def _api_cidrs(r: ConfigReader, environment: str) -> tuple[str, ...]:
    """``apiAllowedCidrs`` in canonical form, compared as networks (components/config/cidrs.py).

    The public-API guard runs on every shared environment (staging and prod); a dev stack is a
    throwaway and may leave the API open (k3s authentication still applies).
    """
    entries = r.strings("apiAllowedCidrs")
    if not entries:
        r.fail("apiAllowedCidrs", [], "must list at least one CIDR allowed to reach the Kubernetes API",
               "pulumi config set --path 'apiAllowedCidrs[0]' 203.0.113.0/24")
    parsed = parse_cidrs(entries)
    for entry, why in parsed.invalid:
        r.fail("apiAllowedCidrs", entry, f"not a valid CIDR ({why})",
               "use network/prefix with host bits zero, e.g. 203.0.113.0/24")
    allow_public = r.flag("allowPublicApiAccess")
    guarded = environment != "dev"
    if parsed.admits_internet and guarded and not allow_public:
        families = " and ".join(parsed.admits_internet)
        r.fail("apiAllowedCidrs", list(entries),
               f"together these admit the whole {families} internet to the Kubernetes API (port {API_PORT}), "
               f"and allowPublicApiAccess is false ({environment} guards its API; only dev may leave it open)",
               "list only your office/VPN/CI CIDRs, or set `pulumi config set allowPublicApiAccess true` "
               "to accept the risk explicitly")
    return parsed.canonical


def _store(r: ConfigReader, region: str, environment: str) -> StoreSettings:
    size = r.integer("bucketMaxSizeGb", BUCKET_SIZE_STEP_GB, BUCKET_MAX_GB)
    if size % BUCKET_SIZE_STEP_GB:
        r.fail("bucketMaxSizeGb", size, f"Civo sells object storage in steps of {BUCKET_SIZE_STEP_GB} GB",
               f"pulumi config set bucketMaxSizeGb {max(BUCKET_SIZE_STEP_GB, size // 500 * 500)}")
    prefix = r.string("modelPrefix")
    if not _PREFIX.fullmatch(prefix) or prefix.startswith("/") or ".." in prefix.split("/"):
        r.fail("modelPrefix", prefix, "must be a relative key prefix ending in '/', without '..'",
               "pulumi config set modelPrefix models/")
    protect = r.flag("protectData") or environment == "prod"
    return StoreSettings(region=region, max_size_gb=size, model_prefix=prefix, protect=protect)


def _github(r: ConfigReader) -> GitHubSettings | None:
    slug = r.string("githubRepository")
    environments = r.strings("githubEnvironments")
    for env in environments:
        if env not in ENVIRONMENTS:
            r.fail("githubEnvironments", env, f"must be one of {', '.join(ENVIRONMENTS)}")
    if not slug:
        if environments:
            r.fail("githubEnvironments", list(environments), "needs githubRepository to be set",
                   "pulumi config set githubRepository <owner>/<repo>")
        return None
    owner, _, repo = slug.partition("/")
    if github_repository_problem(owner, repo):
        r.fail("githubRepository", slug, "must be <owner>/<repo> with GitHub's allowed characters",
               "pulumi config set githubRepository acme/gpu-platform")
    return GitHubSettings(owner=owner, repository=repo, environments=environments)


def _registry(r: ConfigReader, password: pulumi.Output[str] | None) -> RegistrySettings:
    server = r.string("registry", normalise=str.lower)
    if not _REGISTRY_HOST.fullmatch(server):
        r.fail("registry", server, "must be a registry host such as ghcr.io", "pulumi config set registry ghcr.io")
    return RegistrySettings(server=server, username=r.string("registryUsername"),
                            password=password)


def _images(r: ConfigReader, registry: RegistrySettings, pip_index: pulumi.Output[str] | None) -> ImageSettings:
    build = r.flag("buildImages")
    repository = r.string("imageRepository", normalise=str.lower)
    if repository and not _IMAGE_REPO.fullmatch(repository):
        r.fail("imageRepository", repository, "must be <registry>/<path>, lower case, e.g. ghcr.io/acme/gpu-platform",
               "pulumi config set imageRepository ghcr.io/<owner>/gpu-platform")
    if build:
        if not repository:
            r.fail("imageRepository", repository, "buildImages is true, so images need a repository to push to",
                   "pulumi config set imageRepository ghcr.io/<owner>/gpu-platform")
        if not registry.username or registry.password is None:
            r.fail("registryUsername", registry.username,
                   f"buildImages is true, so pushing to {registry.server} needs registryUsername and a secret "
                   "registryPassword",
                   "pulumi config set registryUsername <user> && pulumi config set --secret registryPassword <token>")
    platforms = r.members("imagePlatforms", PLATFORMS)
    return ImageSettings(build=build, repository=repository, platforms=platforms, pip_index=pip_index)


def _model_images(r: ConfigReader, models: tuple[ModelSettings, ...], *, built: bool,
                  hub_gateway: bool) -> dict[str, str]:
    """``{image name: ref}`` from ``modelCacheImage``/``hfServerImage``/``hubGatewayImage``: digest-pinned
    refs of images built elsewhere (CI). Required when a workload needs an image this stack does not build."""
    refs: dict[str, str] = {}
    needed = images_needed((m.runtime for m in models), hub_gateway=hub_gateway)
    for image, key in IMAGE_KEYS.items():
        ref = r.string(key)
        example = f"ghcr.io/<owner>/gpu-platform/{image}@sha256:<digest>"
        if ref and not _DIGEST_REF.fullmatch(ref):
            r.fail(key, ref, "must be a digest-pinned image ref (registry/path[:tag]@sha256:<64 hex>) so every "
                   "pod runs the same bits", f"pulumi config set {key} {example}")
        elif ref:
            refs[image] = ref
        elif image in needed and not built:
            who = "the hub-gateway (hubGateway: true) runs" if image == "hub-gateway" else "the models need"
            off = ", or pulumi config set hubGateway false" if image == "hub-gateway" else ""
            r.problems.append(f"{PROJECT}:{key} is not set, but {who} the {image} image and this stack neither "
                              f"builds nor promotes it. Fix: pulumi config set {key} {example} (the digest CI "
                              f"pushed), or set buildImages true{off}")
    return refs


def _unknown_keys(r: ConfigReader, source: ConfigSource) -> None:
    """A misspelt key (``gpuNodeCont``) would otherwise be ignored silently and its default used."""
    known = [*DEFAULTS, *SECRET_KEYS]
    for key in sorted(source.set_keys() - set(known)):
        close = closest(key, known)
        hint = f"did you mean {close}? " if close else ""
        r.fail(key, source.get(key), f"unknown key; {hint}known keys are listed in Pulumi.yaml",
               f"pulumi config rm {key}" + (f" && pulumi config set {close} <value>" if close else ""))


def _secret(r: ConfigReader, source: ConfigSource, key: str) -> pulumi.Output[str] | None:
    """A credential key, refused (without echoing it) when the stack file holds it in plain text."""
    if key in source.set_keys() and not source.is_secret(key):
        r.problems.append(f"{PROJECT}:{key} is stored in plain text in the stack file: credentials must be "
                          f"encrypted. Fix: pulumi config rm {key} && pulumi config set --secret {key} <value> "
                          "(and rotate the credential: it is in your git history)")
        return None
    return source.get_secret(key)


def _model_namespace(r: ConfigReader) -> str:
    namespace = r.string("modelNamespace")
    if not DNS_LABEL.fullmatch(namespace) or namespace.startswith("kube-"):
        r.fail("modelNamespace", namespace, "must be a DNS label (a-z, 0-9, '-', at most 63 characters) not "
               "starting with 'kube-'", "pulumi config set modelNamespace models")
    elif namespace in RESERVED_NAMESPACES:
        r.fail("modelNamespace", namespace, f"is reserved ({', '.join(RESERVED_NAMESPACES)} belong to Kubernetes "
               "or the GPU operator)", "pulumi config set modelNamespace models")
    return namespace


def _teams(r: ConfigReader, model_namespace: str) -> tuple[TeamSettings, ...]:
    """The ``teams`` list (components/config/teams.py); models named by a team must exist."""
    raw_models = r.get("models")
    # Names that are themselves invalid are reported on their models entry, not again here.
    model_names = [m["name"] for m in raw_models if isinstance(m, dict) and isinstance(m.get("name"), str)
                   and DNS_1035.fullmatch(m["name"])] if isinstance(raw_models, list) else []
    return parse_teams(r.get("teams"), model_names=model_names, model_namespace=model_namespace,
                       problems=r.problems, project=PROJECT)


def _access(r: ConfigReader, cluster: ClusterSettings) -> tuple[ClusterSettings, bool]:
    """``deleteUnreachable`` (into the cluster settings) and ``exportAdminKubeconfig``.

    Both default to false in every environment: with deleteUnreachable a ``pulumi refresh``
    against a cluster it cannot reach drops every Kubernetes resource from the state, and the
    admin kubeconfig as a stack output would hand cluster-admin to every StackReference reader.
    A platform engineer turns either on deliberately (docs/ci-cd.md, docs/app-teams.md); prod
    refuses deleteUnreachable outright: a firewall or network blip must never erase prod's state.
    """
    delete_unreachable = r.flag("deleteUnreachable")
    if delete_unreachable and r.get("environment") == "prod":
        r.fail("deleteUnreachable", True, "prod keeps Kubernetes resources in its state when the API is "
               "unreachable (a refresh through a closed firewall would otherwise drop them all)",
               "pulumi config set deleteUnreachable false (for a cluster deleted outside Pulumi, see "
               "docs/ci-cd.md)")
    return dataclasses.replace(cluster, delete_unreachable=delete_unreachable), r.flag("exportAdminKubeconfig")


# ---- day two (issue 12): kept in one block so concurrent key additions merge cleanly ---------------

#: ``org/project/stack`` as ``pulumi.StackReference`` takes it (Pulumi Cloud names).
_STACK_PATH = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]*)/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)")
#: A DNS-1123 subdomain: a RuntimeClass name.
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _day_two(r: ConfigReader, cluster: ClusterSettings, images: ImageSettings, *,
             stack: str) -> tuple[ClusterSettings, ImageSettings]:
    """The GPU pool layout, the GPU runtime class and image promotion (docs/architecture.md)."""
    first = r.integer("gpuFirstPoolNodeCount", 1, MAX_NODE_COUNT)
    if first > cluster.gpu_node_count and "gpuNodeCount" not in r.failed_keys:
        r.fail("gpuFirstPoolNodeCount", first,
               f"the first GPU pool cannot hold more nodes than gpuNodeCount ({cluster.gpu_node_count}). "
               "Lowering a live pool's nodeCount replaces that pool (create, then delete): pulumi-civo 2.4.8 "
               "crashes on an in-place node-count update (civo/terraform-provider-civo#381)",
               f"pulumi config set gpuFirstPoolNodeCount {cluster.gpu_node_count}")
    runtime_class = r.string("gpuRuntimeClass")
    if runtime_class and (len(runtime_class) > 253 or not _DNS_SUBDOMAIN.fullmatch(runtime_class)):
        r.fail("gpuRuntimeClass", runtime_class, "must be a RuntimeClass name (DNS subdomain: a-z, 0-9, '-', '.'), "
               "or empty for the node's default runtime", "pulumi config set gpuRuntimeClass nvidia")
    promote = r.string("promoteImagesFrom")
    if promote:
        match = _STACK_PATH.fullmatch(promote)
        if match is None:
            r.fail("promoteImagesFrom", promote, "must name a stack as <org>/<project>/<stack>, the stack whose "
                   "`images` output this stack runs", f"pulumi config set promoteImagesFrom acme/{PROJECT}/dev")
        elif match.group(2) != PROJECT:
            r.fail("promoteImagesFrom", promote, f"must be a stack of this project ({PROJECT}): only its `images` "
                   "output has the image names the workloads need",
                   f"pulumi config set promoteImagesFrom {match.group(1)}/{PROJECT}/dev")
        elif match.group(3) == stack:
            r.fail("promoteImagesFrom", promote, "names this stack itself; promotion reads another stack's images",
                   f"pulumi config set promoteImagesFrom {match.group(1)}/{PROJECT}/dev")
        if images.build:
            r.fail("promoteImagesFrom", promote, "cannot be combined with buildImages true: a stack either builds "
                   "its images or runs the digests another stack built (build once, promote)",
                   "pulumi config set buildImages false (or pulumi config rm promoteImagesFrom)")
    publish = r.members("publishImages", tuple(IMAGE_KEYS))
    return (
        dataclasses.replace(cluster, gpu_first_pool_node_count=min(first, cluster.gpu_node_count),
                            gpu_runtime_class=runtime_class or None),
        dataclasses.replace(images, promote_from=promote or None,
                            publish=publish),
    )


def _hub_gateway(r: ConfigReader, models: tuple[ModelSettings, ...]) -> HubGatewaySettings:
    """The hub-gateway's keys; its pass-through allow-list defaults to the models' own repos."""
    enabled = r.flag("hubGateway")
    replicas = r.integer("hubGatewayReplicas", 1, MAX_NODE_COUNT)
    allow = r.strings("hubGatewayAllowRepos")
    for pattern in allow:
        if not HUB_REPO_PATTERN.fullmatch(pattern):
            r.fail("hubGatewayAllowRepos", pattern, "must be a Hub repo id or pattern (owner/name, gpt2, acme/*)",
                   "pulumi config set --path 'hubGatewayAllowRepos[0]' acme/*")
    return HubGatewaySettings(enabled=enabled, replicas=replicas,
                              allow_repos=allow or tuple(dict.fromkeys(m.repo for m in models)))


def load_settings(source: ConfigSource, *, project: str, stack: str) -> PlatformSettings:
    """Parse and validate every key; raise one :class:`SettingsError` listing all problems."""
    problems: list[str] = []
    r = ConfigReader.for_stack(source.get, DEFAULTS, problems, PROJECT)
    _unknown_keys(r, source)
    environment = r.string("environment", ENVIRONMENTS)
    cluster, export_admin_kubeconfig = _access(r, _cluster(r, environment))
    store = _store(r, cluster.region, environment)
    namespace = _model_namespace(r)
    github = _github(r)
    registry = _registry(r, _secret(r, source, "registryPassword"))
    images = _images(r, registry, _secret(r, source, "pipIndex"))
    hf_token = _secret(r, source, "hfToken")
    if hf_token is None and github is not None:
        problems.append(f"{PROJECT}:hfToken is not set, but githubRepository needs it for the Actions secret "
                        "HF_TOKEN. Fix: pulumi config set --secret hfToken <token>")
    models = parse_models(r.get("models"), gpu_node_size=cluster.gpu_node_size,
                          # An invalid count is reported on its own: do not fit models to it.
                          gpu_node_count=0 if "gpuNodeCount" in r.failed_keys else cluster.gpu_node_count,
                          environment=environment,
                          hf_token_set=hf_token is not None, problems=problems, project=PROJECT)
    cluster, images = _day_two(r, cluster, images, stack=stack)
    hub_gateway = _hub_gateway(r, models)
    model_images = _model_images(r, models, built=images.build or images.promote_from is not None,
                                 hub_gateway=hub_gateway.enabled)
    teams = _teams(r, namespace)
    if problems:
        raise SettingsError(problems)
    return PlatformSettings(
        project=project,
        stack=stack,
        environment=environment,
        cluster=cluster,
        store=store,
        model_namespace=namespace,
        github=github,
        registry=registry,
        images=images,
        models=models,
        model_images=model_images,
        hf_token=hf_token,
        teams=teams,
        hub_gateway=hub_gateway,
        export_admin_kubeconfig=export_admin_kubeconfig,
    )


class PulumiConfigSource:
    """Adapts ``pulumi.Config`` (the only place the program reads config)."""

    def __init__(self) -> None:
        self._config = pulumi.Config()

    def set_keys(self) -> set[str]:
        prefix = f"{self._config.name}:"
        every = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
        return {key.removeprefix(prefix) for key in every if key.startswith(prefix)}

    def is_secret(self, key: str) -> bool:
        full = f"{self._config.name}:{key}"
        return runtime_config.is_config_secret(full) or full in runtime_config.get_config_secret_keys_env()

    def get(self, key: str) -> str | None:
        return self._config.get(key)

    def get_secret(self, key: str) -> pulumi.Output[str] | None:
        return self._config.get_secret(key)


def from_pulumi_config() -> PlatformSettings:
    return load_settings(PulumiConfigSource(), project=pulumi.get_project(), stack=pulumi.get_stack())
