"""gpu-platform: wires the components together and exports the stack outputs.

Nothing here decides anything: settings are parsed (and rejected) up front, each component
owns one concern, and the outputs' names come from components.config.outputs (the app-team contract).
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_civo as civo

from components.app_team import AppTeam, AppTeamArgs, TeamAdmission
from components.cluster import GpuCluster, GpuClusterArgs
from components.config import outputs as out
from components.config.images import images_needed
from components.config.settings import from_pulumi_config
from components.github import GitHubSecrets, GitHubSecretsArgs, owns_repository_level
from components.gpu_smoke import GpuSmokeTest, GpuSmokeTestArgs
from components.hub_callers import HubCallers, HubCallersArgs
from components.hub_gateway import NAME as GATEWAY_NAME
from components.hub_gateway import PORT as GATEWAY_PORT
from components.hub_gateway import HubGateway, HubGatewayArgs
from components.images import platform_images
from components.model_deployment import ModelDeployment, ModelDeploymentArgs, service_url
from components.model_namespace import ModelNamespace, ModelNamespaceArgs
from components.model_pod import PodSources
from components.model_store import ModelStore, ModelStoreArgs

settings = from_pulumi_config()

# One explicit Civo provider with the stack's region: the node pools have no region field and
# would follow whatever region the ambient provider config has (the stack files disable the
# default provider). Switching a resource from the default provider to this one does not replace
# it: pulumi-civo declares no provider setting as forcing replacement (docs/architecture.md).
civo_provider = civo.Provider("civo", region=settings.cluster.region)
cluster = GpuCluster(
    "gpu",
    GpuClusterArgs(settings=settings.cluster, name_prefix=settings.name_prefix),
    opts=pulumi.ResourceOptions(providers=[civo_provider]),
)
store = ModelStore(
    "models",
    ModelStoreArgs(settings=settings.store, name_prefix=settings.name_prefix),
    opts=pulumi.ResourceOptions(providers=[civo_provider]),
)
if node_cached := settings.node_cached_models:
    pulumi.log.warn(f"models {', '.join(node_cached)} use cache: hostPath, so namespace "
                    f"{settings.model_namespace} enforces Pod Security 'privileged' instead of 'restricted'")
model_namespace = ModelNamespace(
    "platform",
    ModelNamespaceArgs(
        namespace=settings.model_namespace,
        bucket=store.bucket,
        endpoint=store.endpoint,
        prefix=store.prefix,
        access_key_id=store.access_key_id,
        secret_access_key=store.secret_access_key,
        hf_token=settings.hf_token,
        registry_server=settings.registry.server,
        registry_username=settings.registry.username or None,
        registry_password=settings.registry.password,
        pod_security=settings.model_pod_security,
    ),
    opts=pulumi.ResourceOptions(provider=cluster.provider),
)
if settings.github is not None and settings.hf_token is not None:
    GitHubSecrets(
        "github",
        GitHubSecretsArgs(
            owner=settings.github.owner,
            repository=settings.github.repository,
            hf_token=settings.hf_token,
            environments=settings.github.environments,
            manage_repository_level=owns_repository_level(settings.environment, settings.github.environments),
            repository_variables={"REGISTRY": settings.registry.server,
                                  **({"IMAGE_REPOSITORY": settings.images.repository}
                                     if settings.images.repository else {})},
            environment_variables={"MODEL_BUCKET": store.bucket, "MODEL_STORE_ENDPOINT": store.endpoint,
                                   "MODEL_PREFIX": store.prefix},
        ),
    )
image_refs = platform_images(
    settings.images,
    settings.registry,
    prebuilt=settings.model_images,
    needed=images_needed((model.runtime for model in settings.models), settings.images.publish,
                         hub_gateway=settings.hub_gateway.enabled),
    source_url=settings.source_url,
    root=Path(__file__).resolve().parent,
)
# Every model workload waits for nvidia-smi to pass on every GPU node.
gpu_ready: list[pulumi.Resource] = [cluster.gpu_operator]
if settings.models:
    smoke = GpuSmokeTest(
        "gpu-smoke",
        GpuSmokeTestArgs(
            namespace=model_namespace.namespace,
            image=image_refs["model-cache"],
            node_count=cluster.gpu_node_count,
            gpus_per_node=cluster.gpus_per_node,
            pool_layout=cluster.pool_layout,
            runtime_class=cluster.runtime_class,
            node_selector=cluster.node_selector,
            tolerations=cluster.tolerations,
            pull_secret_name=model_namespace.pull_secret_name,
        ),
        opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=[cluster.gpu_operator]),
    )
    gpu_ready.append(smoke.job)
models = {
    model.name: ModelDeployment(
        f"model-{model.name}",
        ModelDeploymentArgs(
            model=model,
            namespace=model_namespace.namespace,
            sources=PodSources(
                s3_secret_name=model_namespace.s3_secret_name,
                store_config_name=model_namespace.store_config_name,
                hf_token_secret_name=model_namespace.hf_token_secret_name,
                pull_secret_name=model_namespace.pull_secret_name,
                s3_region=settings.store.region,
                model_cache_image=image_refs["model-cache"],
                hf_server_image=image_refs.get("hf-server"),
                node_selector=cluster.node_selector,
                tolerations=cluster.tolerations,
                gpu_runtime_class=cluster.runtime_class,
            ),
            client_namespaces=settings.teams_calling(model.name),
        ),
        # The GPU operator must run, and every GPU node pass the smoke test, before a model rolls.
        opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=gpu_ready),
    )
    for model in settings.models
}

if settings.teams:
    TeamAdmission("teams", opts=pulumi.ResourceOptions(provider=cluster.provider))
teams = {
    team.name: AppTeam(
        f"team-{team.name}",
        AppTeamArgs(
            team=team,
            model_namespace=model_namespace.namespace,
            model_urls={name: models[name].url for name in team.models},
            api_endpoint=cluster.api_endpoint,
            cluster_name=cluster.cluster_name,
            hub_gateway=settings.hub_gateway.enabled,
        ),
        opts=pulumi.ResourceOptions(provider=cluster.provider),
    )
    for team in settings.teams
}

hub_endpoint: pulumi.Output[str] | None = None
if settings.hub_gateway.enabled:
    # The gateway's Service name is fixed, so its URL is known before it exists (the team Secrets carry it).
    gateway_url = model_namespace.namespace.apply(lambda ns: service_url(GATEWAY_NAME, ns, GATEWAY_PORT))
    callers = HubCallers(
        "hub-callers",
        HubCallersArgs(
            gateway_namespace=model_namespace.namespace,
            endpoint=gateway_url,
            teams=settings.teams,
            team_namespaces={name: team.namespace for name, team in teams.items()},
        ),
        opts=pulumi.ResourceOptions(provider=cluster.provider),
    )
    hub_endpoint = HubGateway(
        "hub-gateway",
        HubGatewayArgs(
            namespace=model_namespace.namespace,
            image=image_refs["hub-gateway"],
            s3_secret_name=model_namespace.s3_secret_name,
            store_config_name=model_namespace.store_config_name,
            callers_secret_name=callers.callers_secret_name,
            hf_token_secret_name=model_namespace.hf_token_secret_name,
            replicas=settings.hub_gateway.replicas,
            allow_repos=settings.hub_gateway.allow_repos,
            caller_namespaces=tuple(team.namespace for team in settings.teams),
            pull_secret_name=model_namespace.pull_secret_name,
            s3_region=settings.store.region,
        ),
        opts=pulumi.ResourceOptions(provider=cluster.provider),
    ).endpoint

# The admin kubeconfig is an output only on request: every StackReference reader gets every output.
if settings.export_admin_kubeconfig:
    if settings.is_prod:
        pulumi.log.warn("exportAdminKubeconfig is true: every reader of this prod stack gets cluster-admin")
    pulumi.export(out.KUBECONFIG, cluster.kubeconfig)
pulumi.export(out.CLUSTER_NAME, cluster.cluster_name)
pulumi.export(out.CLUSTER_ID, cluster.cluster_id)
pulumi.export(out.API_ENDPOINT, cluster.api_endpoint)
pulumi.export(out.REGION, settings.cluster.region)
pulumi.export(out.MODEL_BUCKET, store.bucket)
pulumi.export(out.MODEL_STORE_ENDPOINT, store.endpoint)
pulumi.export(out.MODEL_PREFIX, store.prefix)
pulumi.export(out.S3_CREDENTIALS_SECRET, model_namespace.qualified(model_namespace.s3_secret_name))
pulumi.export(out.HF_TOKEN_SECRET, model_namespace.qualified(model_namespace.hf_token_secret_name))
pulumi.export(out.MODEL_NAMESPACE, model_namespace.namespace)
pulumi.export(out.GPU_NODE_SELECTOR, cluster.node_selector)
pulumi.export(out.GPU_TOLERATIONS, cluster.tolerations)
pulumi.export(out.IMAGES, image_refs)
pulumi.export(out.MODELS, {name: deployment.url for name, deployment in models.items()})
pulumi.export(out.TEAMS, {name: team.summary() for name, team in teams.items()})
pulumi.export(out.HUB_ENDPOINT, hub_endpoint)
