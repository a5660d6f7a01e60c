"""An app team's service on the gpu-platform: deployed with the team's own kubeconfig, calling a model.

- ``kubeconfig`` (secret config) is the team's kubeconfig, which the platform delivers as the
  Actions secret ``KUBECONFIG`` of the team's repository. It acts as the team's ServiceAccount:
  it can deploy into the team's namespace and nowhere else.
- The platform stack (``platformStack``) is read through a StackReference for the ``teams``
  output only: the team's namespace and the in-cluster URL of each model it may call.
- One Deployment of the team's app (``appImage``, pinned by digest) with ``OPENAI_BASE_URL``
  pointing at the model's OpenAI-compatible API, and a Service in front of it. The namespace
  enforces Pod Security ``restricted`` and allows no GPUs: the platform serves the models.

See docs/app-teams.md.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from platform_contract import Platform, PlatformContractError

config = pulumi.Config()
platform = Platform.from_stack(config.require("platformStack"))
team_name = config.require("team")
app_image = config.require("appImage")
if "@sha256:" not in app_image:
    raise PlatformContractError(f"appImage {app_image!r} is not pinned by digest (<registry>/<path>@sha256:<digest>)")
replicas = config.get_int("replicas") or 1
kubeconfig = config.get_secret("kubeconfig")
if kubeconfig is None:
    raise PlatformContractError(
        "config kubeconfig is not set: in CI, pipe the Actions secret KUBECONFIG into "
        "`pulumi config set --secret kubeconfig` (docs/app-teams.md, 'Deploying from CI')"
    )
team = platform.team(team_name, config.get("model") or None)
namespace = team.apply(lambda t: t.namespace)

APP = "web"
labels = {
    "app.kubernetes.io/name": APP,
    "app.kubernetes.io/part-of": pulumi.get_project(),
    "app.kubernetes.io/managed-by": "pulumi",
}

# Our own provider, from the team's (secret) kubeconfig: never the ambient ~/.kube/config.
provider = k8s.Provider("team", kubeconfig=kubeconfig, namespace=namespace, enable_server_side_apply=True)
on_cluster = pulumi.ResourceOptions(provider=provider)

deployment = k8s.apps.v1.Deployment(
    APP,
    metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=labels),
    spec=k8s.apps.v1.DeploymentSpecArgs(
        replicas=replicas,
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"app.kubernetes.io/name": APP}),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
            spec=k8s.core.v1.PodSpecArgs(
                automount_service_account_token=False,
                # The team namespace enforces Pod Security "restricted".
                security_context=k8s.core.v1.PodSecurityContextArgs(
                    run_as_non_root=True,
                    seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                ),
                containers=[
                    k8s.core.v1.ContainerArgs(
                        name="app",
                        image=app_image,
                        env=[
                            # Any OpenAI client reads these; the model serves /v1/chat/completions.
                            k8s.core.v1.EnvVarArgs(name="OPENAI_BASE_URL",
                                                   value=team.apply(lambda t: f"{t.model_url}/v1")),
                            k8s.core.v1.EnvVarArgs(name="OPENAI_API_KEY", value="unused"),
                            k8s.core.v1.EnvVarArgs(name="MODEL_NAME", value=team.apply(lambda t: t.model)),
                        ],
                        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=8080)],
                        readiness_probe=k8s.core.v1.ProbeArgs(
                            http_get=k8s.core.v1.HTTPGetActionArgs(path="/healthz", port="http"),
                            period_seconds=10,
                        ),
                        resources=k8s.core.v1.ResourceRequirementsArgs(
                            requests={"cpu": "100m", "memory": "128Mi"},
                            limits={"cpu": "500m", "memory": "256Mi"},
                        ),
                        security_context=k8s.core.v1.SecurityContextArgs(
                            allow_privilege_escalation=False,
                            read_only_root_filesystem=True,
                            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                        ),
                    )
                ],
            ),
        ),
    ),
    opts=on_cluster,
)

service = k8s.core.v1.Service(
    APP,
    metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=labels),
    spec=k8s.core.v1.ServiceSpecArgs(
        selector={"app.kubernetes.io/name": APP},
        ports=[k8s.core.v1.ServicePortArgs(name="http", port=80, target_port="http")],
    ),
    opts=on_cluster,
)

pulumi.export("platformStack", platform.stack)
pulumi.export("namespace", namespace)
pulumi.export("model", team.apply(lambda t: t.model))
pulumi.export(
    "url",
    pulumi.Output.format("http://{0}.{1}.svc.cluster.local", service.metadata.name, service.metadata.namespace),
)
