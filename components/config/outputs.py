"""The stack-output contract with app teams.

App teams read these through ``pulumi.StackReference``; the names are defined here once and
pinned by tests. Renaming or removing one, or changing its type or secrecy, is a breaking
change (see docs/app-teams.md).
"""

from __future__ import annotations

from typing import Final

KUBECONFIG: Final = "kubeconfig"  # secret, opt-in (exportAdminKubeconfig): admin kubeconfig of the cluster
CLUSTER_NAME: Final = "clusterName"
CLUSTER_ID: Final = "clusterId"
API_ENDPOINT: Final = "apiEndpoint"
REGION: Final = "region"
MODEL_BUCKET: Final = "modelBucket"
MODEL_STORE_ENDPOINT: Final = "modelStoreEndpoint"
MODEL_PREFIX: Final = "modelPrefix"
S3_CREDENTIALS_SECRET: Final = "s3CredentialsSecret"  # "namespace/name" of the k8s Secret
HF_TOKEN_SECRET: Final = "hfTokenSecret"  # "namespace/name" of the k8s Secret
MODEL_NAMESPACE: Final = "modelNamespace"
GPU_NODE_SELECTOR: Final = "gpuNodeSelector"  # {label: value}
GPU_TOLERATIONS: Final = "gpuTolerations"  # list of k8s toleration dicts
IMAGES: Final = "images"  # {image name: digest-pinned ref}
MODELS: Final = "models"  # {model name: in-cluster service URL}
TEAMS: Final = "teams"  # {team name: {"namespace": str, "models": {model name: in-cluster service URL}}}
HUB_ENDPOINT: Final = "hubEndpoint"  # in-cluster URL of the hub-gateway (HF_ENDPOINT); null when it is off

#: Every stack output of a stack with the default config, in the order the docs' table lists them.
#: No kubeconfig among them: StackReference readers get every output, secret ones included, so
#: cluster-admin must never be one by default. Teams get their own kubeconfig as a GitHub secret.
STACK_OUTPUTS: Final[tuple[str, ...]] = (
    CLUSTER_NAME,
    CLUSTER_ID,
    API_ENDPOINT,
    REGION,
    MODEL_BUCKET,
    MODEL_STORE_ENDPOINT,
    MODEL_PREFIX,
    S3_CREDENTIALS_SECRET,
    HF_TOKEN_SECRET,
    MODEL_NAMESPACE,
    GPU_NODE_SELECTOR,
    GPU_TOLERATIONS,
    IMAGES,
    MODELS,
    TEAMS,
    HUB_ENDPOINT,
)

#: Outputs a stack exports only when a config key opts in: {output: config key}.
OPT_IN_OUTPUTS: Final[dict[str, str]] = {KUBECONFIG: "exportAdminKubeconfig"}

#: Outputs that are Pulumi secrets; a StackReference returns them as secret Outputs.
SECRET_OUTPUTS: Final[frozenset[str]] = frozenset({KUBECONFIG})
