"""The stack-output contract with app teams.

App teams read these through ``pulumi.StackReference``; the names are defined here once and
pinned by tests. Renaming or removing one, or changing its type or secrecy, is a breaking
change (see docs/app-teams.md).
"""

from __future__ import annotations

from typing import Final

KUBECONFIG: Final = "kubeconfig"  # secret: admin kubeconfig of the cluster
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

#: Every stack output, in the order the README's table lists them.
STACK_OUTPUTS: Final[tuple[str, ...]] = (
    KUBECONFIG,
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
)

#: Outputs that are Pulumi secrets; a StackReference returns them as secret Outputs.
SECRET_OUTPUTS: Final[frozenset[str]] = frozenset({KUBECONFIG})
