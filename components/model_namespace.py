"""ModelNamespace: the model namespace, its Pod Security level, and every Secret/ConfigMap the
workloads read.

Formerly ``PlatformSecrets``: the component type carries an alias to that name, so a live stack
keeps every object (no replacement) across the rename.

- Ingress is denied namespace-wide by default; each model's NetworkPolicy admits the namespaces
  of the teams allowed to call it.
- The namespace enforces Pod Security Admission ``restricted`` (the model workloads run as
  non-root with no extra capabilities), and also audits and warns at that level; ``privileged``
  only when a model opts into the hostPath node cache.
- S3 credentials, the Hugging Face token and the registry pull secret are Kubernetes Secrets
  whose data is a Pulumi secret end to end: wrapped with ``Output.secret`` here even where the
  SDK already marks ``stringData`` (mocks do not apply the SDK's marking, and a wrapper costs
  nothing). Non-secret store settings go to a ConfigMap, so a pod can ``envFrom`` both.
- Objects are auto-named (``metadata.name`` unset): rotating a credential replaces the Secret
  under a new name, and every Deployment that references it rolls. Callers read the names from
  the ``*_name`` outputs; no output carries a value.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes import standard_labels

PSA_LEVELS: Final = ("privileged", "baseline", "restricted")
S3_ACCESS_KEY_ID: Final = "AWS_ACCESS_KEY_ID"
S3_SECRET_ACCESS_KEY: Final = "AWS_SECRET_ACCESS_KEY"
HF_TOKEN_KEY: Final = "HF_TOKEN"
S3_ENDPOINT_URL: Final = "S3_ENDPOINT_URL"
S3_BUCKET: Final = "S3_BUCKET"
S3_PREFIX: Final = "S3_PREFIX"
#: The component's type before the rename; the alias keeps live stacks' URNs.
FORMER_TYPE: Final = "gpu-platform:index:PlatformSecrets"


@dataclass
class ModelNamespaceArgs:
    """What the secrets need. Pass the cluster's k8s provider in ``opts`` (``provider=`` or ``providers=``)."""

    namespace: str
    """Name of the model namespace (created here, with PSA labels)."""
    bucket: pulumi.Input[str]
    endpoint: pulumi.Input[str]
    prefix: pulumi.Input[str]
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str]
    hf_token: pulumi.Input[str] | None = None
    """``None``: no HF token Secret (public models only)."""
    registry_server: pulumi.Input[str] | None = None
    registry_username: pulumi.Input[str] | None = None
    registry_password: pulumi.Input[str] | None = None
    """A pull secret is made only when server, username and password are all given."""
    pod_security: str = "restricted"


def dockerconfigjson(server: str, username: str, password: str) -> str:
    """The ``.dockerconfigjson`` document kubelet reads for a registry pull secret."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": auth}}},
                      sort_keys=True)


class ModelNamespace(pulumi.ComponentResource):
    """The model namespace, its Secrets (S3, HF token, registry pull) and the store ConfigMap."""

    namespace: pulumi.Output[str]
    s3_secret_name: pulumi.Output[str]
    hf_token_secret_name: pulumi.Output[str] | None
    store_config_name: pulumi.Output[str]
    pull_secret_name: pulumi.Output[str] | None

    def __init__(self, name: str, args: ModelNamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.pod_security not in PSA_LEVELS:
            raise ValueError(f"ModelNamespace pod_security {args.pod_security!r}: must be one of "
                             f"{', '.join(PSA_LEVELS)}")
        renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=FORMER_TYPE)])
        super().__init__("gpu-platform:index:ModelNamespace", name, None,
                         pulumi.ResourceOptions.merge(opts, renamed))
        child = pulumi.ResourceOptions(parent=self)
        psa = {f"pod-security.kubernetes.io/{mode}": args.pod_security for mode in ("enforce", "audit", "warn")}
        psa |= {f"pod-security.kubernetes.io/{mode}-version": "latest" for mode in ("enforce", "audit", "warn")}

        self.namespace_resource = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.namespace,
                labels={**standard_labels(args.namespace, "models"), **psa},
            ),
            opts=child,
        )
        self.namespace = self.namespace_resource.metadata.apply(lambda m: m.name)
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace_resource])
        # Nothing gets into the namespace unless a policy admits it: each model's own policy admits
        # the teams allowed to call it (ModelDeployment), so a pod added later is closed by default.
        self.default_deny = k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="default-deny-ingress", namespace=self.namespace,
                                                labels=standard_labels(f"{name}-default-deny", "network-policy")),
            spec={"podSelector": {}, "policyTypes": ["Ingress"]},
            opts=in_namespace,
        )

        def metadata(component: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                namespace=self.namespace, labels=standard_labels(f"{name}-{component}", component),
            )

        self.s3_secret = k8s.core.v1.Secret(
            f"{name}-s3",
            metadata=metadata("s3-credentials"),
            type="Opaque",
            string_data={
                S3_ACCESS_KEY_ID: pulumi.Output.secret(args.access_key_id),
                S3_SECRET_ACCESS_KEY: pulumi.Output.secret(args.secret_access_key),
            },
            opts=in_namespace,
        )
        self.s3_secret_name = _name_of(self.s3_secret)

        self.store_config = k8s.core.v1.ConfigMap(
            f"{name}-store",
            metadata=metadata("model-store"),
            data={S3_ENDPOINT_URL: args.endpoint, S3_BUCKET: args.bucket, S3_PREFIX: args.prefix},
            opts=in_namespace,
        )
        self.store_config_name = _name_of(self.store_config)

        self.hf_token_secret: k8s.core.v1.Secret | None = None
        self.hf_token_secret_name = None
        if args.hf_token is not None:
            self.hf_token_secret = k8s.core.v1.Secret(
                f"{name}-hf-token",
                metadata=metadata("hf-token"),
                type="Opaque",
                string_data={HF_TOKEN_KEY: pulumi.Output.secret(args.hf_token)},
                opts=in_namespace,
            )
            self.hf_token_secret_name = _name_of(self.hf_token_secret)

        self.pull_secret: k8s.core.v1.Secret | None = None
        self.pull_secret_name = None
        if args.registry_server and args.registry_username and args.registry_password is not None:
            config = pulumi.Output.all(args.registry_server, args.registry_username,
                                       args.registry_password).apply(lambda v: dockerconfigjson(*v))
            self.pull_secret = k8s.core.v1.Secret(
                f"{name}-pull",
                metadata=metadata("registry-pull"),
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": pulumi.Output.secret(config)},
                opts=in_namespace,
            )
            self.pull_secret_name = _name_of(self.pull_secret)

        self.register_outputs({
            "namespace": self.namespace,
            "s3SecretName": self.s3_secret_name,
            "hfTokenSecretName": self.hf_token_secret_name,
            "storeConfigName": self.store_config_name,
            "pullSecretName": self.pull_secret_name,
        })

    def qualified(self, secret_name: pulumi.Output[str] | None) -> pulumi.Output[str] | None:
        """``namespace/name`` of one of this component's objects (the form the stack exports)."""
        if secret_name is None:
            return None
        return pulumi.Output.concat(self.namespace, "/", secret_name)


def _name_of(resource: k8s.core.v1.Secret | k8s.core.v1.ConfigMap) -> pulumi.Output[str]:
    # Only the (auto-generated) name leaves the component: never the object, never its data.
    return resource.metadata.apply(lambda m: m.name)
