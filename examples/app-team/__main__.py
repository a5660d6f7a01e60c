"""An app team's model server on the gpu-platform, built only from the platform's stack outputs.

Reads the platform through a StackReference (``platformStack`` config), talks to its cluster
with the exported kubeconfig, and runs one GPU Deployment: two model-cache init containers
(``ensure`` fills the shared model store once, ``restore`` copies the model into the pod) and
the model server on a GPU node. See docs/app-teams.md.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from platform_contract import Platform, PlatformContractError, pick_image, split_secret_ref

config = pulumi.Config()
platform = Platform.from_stack(config.require("platformStack"))
model = config.get("model") or "Qwen/Qwen2.5-0.5B-Instruct"
revision = config.get("modelRevision") or "main"
gpus = config.get_int("gpus") or 1
replicas = config.get_int("replicas") or 1
server_image = platform.images.apply(
    lambda images: pick_image(images, config.get("serverImage") or "hf-server")
)
cache_image = platform.images.apply(
    lambda images: pick_image(images, config.get("cacheImage") or "model-cache")
)

APP = "llm"
MODEL_DIR = "/models/model"
labels = {
    "app.kubernetes.io/name": APP,
    "app.kubernetes.io/part-of": pulumi.get_project(),
    "app.kubernetes.io/managed-by": "pulumi",
}

# Our own provider, from the platform's (secret) kubeconfig: never the ambient ~/.kube/config.
provider = k8s.Provider("platform", kubeconfig=platform.kubeconfig, enable_server_side_apply=True)
on_platform = pulumi.ResourceOptions(provider=provider)


def secret_name_in(namespace: str, ref: str, output: str) -> str:
    """The Secret's name; it must live in the namespace the pods run in."""
    secret_ns, name = split_secret_ref(ref, output)
    if secret_ns != namespace:
        raise PlatformContractError(
            f"{output} {ref!r} is not in the model namespace {namespace!r}; pods cannot read it"
        )
    return name


s3_secret = pulumi.Output.all(platform.model_namespace, platform.s3_credentials_secret).apply(
    lambda a: secret_name_in(a[0], a[1], "s3CredentialsSecret")
)
hf_secret = pulumi.Output.all(platform.model_namespace, platform.hf_token_secret).apply(
    lambda a: secret_name_in(a[0], a[1], "hfTokenSecret")
)

# The variables of the model-cache program (same names as hf-model-downloader); the store's
# credentials come from the platform's Secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
cache_env = [
    k8s.core.v1.EnvVarArgs(name="MODEL_NAME", value=model),
    k8s.core.v1.EnvVarArgs(name="MODEL_REVISION", value=revision),
    k8s.core.v1.EnvVarArgs(name="S3_BUCKET", value=platform.model_bucket),
    k8s.core.v1.EnvVarArgs(name="S3_ENDPOINT_URL", value=platform.model_store_endpoint),
    k8s.core.v1.EnvVarArgs(name="S3_PREFIX", value=platform.model_prefix),
    k8s.core.v1.EnvVarArgs(name="DISABLE_PROGRESS", value="1"),
]
s3_env_from = k8s.core.v1.EnvFromSourceArgs(secret_ref=k8s.core.v1.SecretEnvSourceArgs(name=s3_secret))
hf_env_from = k8s.core.v1.EnvFromSourceArgs(
    secret_ref=k8s.core.v1.SecretEnvSourceArgs(name=hf_secret, optional=True)
)
hardened = k8s.core.v1.SecurityContextArgs(
    allow_privilege_escalation=False,
    capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
    seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
)
init_resources = k8s.core.v1.ResourceRequirementsArgs(
    requests={"cpu": "250m", "memory": "512Mi"}, limits={"cpu": "1", "memory": "1Gi"}
)
models_mount = k8s.core.v1.VolumeMountArgs(name="models", mount_path="/models")

deployment = k8s.apps.v1.Deployment(
    APP,
    metadata=k8s.meta.v1.ObjectMetaArgs(namespace=platform.model_namespace, labels=labels),
    spec=k8s.apps.v1.DeploymentSpecArgs(
        replicas=replicas,
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"app.kubernetes.io/name": APP}),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
            spec=k8s.core.v1.PodSpecArgs(
                # What the platform says a pod needs to land on (and be allowed on) a GPU node.
                node_selector=platform.gpu_node_selector,
                tolerations=platform.gpu_tolerations,
                automount_service_account_token=False,
                # The model namespace enforces Pod Security "restricted": non-root, no privilege
                # escalation, no capabilities, RuntimeDefault seccomp.
                security_context=k8s.core.v1.PodSecurityContextArgs(
                    run_as_non_root=True,
                    seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                ),
                init_containers=[
                    k8s.core.v1.ContainerArgs(
                        name="model-cache-ensure",
                        image=cache_image,
                        args=["ensure"],
                        env=cache_env,
                        env_from=[s3_env_from, hf_env_from],
                        resources=init_resources,
                        security_context=hardened,
                    ),
                    k8s.core.v1.ContainerArgs(
                        name="model-cache-restore",
                        image=cache_image,
                        args=["restore", "--dest", MODEL_DIR],
                        env=cache_env,
                        env_from=[s3_env_from],
                        resources=init_resources,
                        security_context=hardened,
                        volume_mounts=[models_mount],
                    ),
                ],
                containers=[
                    k8s.core.v1.ContainerArgs(
                        name="server",
                        image=server_image,
                        env=[
                            k8s.core.v1.EnvVarArgs(name="MODEL_PATH", value=MODEL_DIR),
                            k8s.core.v1.EnvVarArgs(name="SERVED_MODEL_NAME", value=model),
                        ],
                        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=8000)],
                        # hf-server: /livez = the process answers, /readyz = the model is loaded.
                        liveness_probe=k8s.core.v1.ProbeArgs(
                            http_get=k8s.core.v1.HTTPGetActionArgs(path="/livez", port="http"),
                            period_seconds=20,
                        ),
                        readiness_probe=k8s.core.v1.ProbeArgs(
                            http_get=k8s.core.v1.HTTPGetActionArgs(path="/readyz", port="http"),
                            period_seconds=10,
                        ),
                        resources=k8s.core.v1.ResourceRequirementsArgs(
                            requests={"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": str(gpus)},
                            limits={"memory": "16Gi", "nvidia.com/gpu": str(gpus)},
                        ),
                        security_context=hardened,
                        volume_mounts=[
                            k8s.core.v1.VolumeMountArgs(name="models", mount_path="/models", read_only=True)
                        ],
                    )
                ],
                volumes=[
                    k8s.core.v1.VolumeArgs(
                        name="models", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="50Gi")
                    )
                ],
            ),
        ),
    ),
    opts=on_platform,
)

service = k8s.core.v1.Service(
    APP,
    metadata=k8s.meta.v1.ObjectMetaArgs(namespace=platform.model_namespace, labels=labels),
    spec=k8s.core.v1.ServiceSpecArgs(
        selector={"app.kubernetes.io/name": APP},
        ports=[k8s.core.v1.ServicePortArgs(name="http", port=80, target_port="http")],
    ),
    opts=on_platform,
)

pulumi.export("platformStack", platform.stack)
pulumi.export("image", server_image)
pulumi.export(
    "url",
    pulumi.Output.format(
        "http://{0}.{1}.svc.cluster.local", service.metadata.name, service.metadata.namespace
    ),
)
