"""What this program reads from the gpu-platform stack: the output names, in one place.

The platform publishes its contract in ``components/config/outputs.py`` (see docs/app-teams.md);
copy this file along with the example, and keep only the names you use. A renamed or missing
output fails the program up front, naming the output and what the platform does export.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pulumi

# Stack outputs of gpu-platform this program uses (names as the platform exports them).
KUBECONFIG: Final = "kubeconfig"  # secret: admin kubeconfig of the cluster
MODEL_NAMESPACE: Final = "modelNamespace"  # namespace GPU workloads run in
GPU_NODE_SELECTOR: Final = "gpuNodeSelector"  # {label: value} of the GPU pool
GPU_TOLERATIONS: Final = "gpuTolerations"  # tolerations for the GPU pool's taint
S3_CREDENTIALS_SECRET: Final = "s3CredentialsSecret"  # "namespace/name" of the store's credentials
HF_TOKEN_SECRET: Final = "hfTokenSecret"  # "namespace/name" of the Hugging Face token Secret
MODEL_BUCKET: Final = "modelBucket"
MODEL_STORE_ENDPOINT: Final = "modelStoreEndpoint"
MODEL_PREFIX: Final = "modelPrefix"
IMAGES: Final = "images"  # {image name: digest-pinned ref}

USED_OUTPUTS: Final[tuple[str, ...]] = (
    KUBECONFIG,
    MODEL_NAMESPACE,
    GPU_NODE_SELECTOR,
    GPU_TOLERATIONS,
    S3_CREDENTIALS_SECRET,
    HF_TOKEN_SECRET,
    MODEL_BUCKET,
    MODEL_STORE_ENDPOINT,
    MODEL_PREFIX,
    IMAGES,
)


class PlatformContractError(Exception):
    """The platform stack does not export what this program needs."""


def _require_present(stack: str, name: str, outputs: dict[str, Any]) -> bool:
    if name not in outputs:
        raise PlatformContractError(
            f"platform stack {stack!r} has no output {name!r}; it exports: {', '.join(sorted(outputs)) or 'nothing'}. "
            "A renamed or removed output is a breaking change of the platform (docs/app-teams.md)."
        )
    return True


def split_secret_ref(ref: str, output: str) -> tuple[str, str]:
    """``"namespace/name"`` -> ``(namespace, name)``, with an error naming the output."""
    namespace, sep, name = ref.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise PlatformContractError(f"output {output!r} should be 'namespace/name', got {ref!r}")
    return namespace, name


def pick_image(images: dict[str, str], key: str) -> str:
    """One digest-pinned ref out of the ``images`` output."""
    if key not in images:
        raise PlatformContractError(
            f"the platform's {IMAGES!r} output has no image {key!r}; it has: {', '.join(sorted(images))}"
        )
    ref = images[key]
    if "@sha256:" not in ref:
        raise PlatformContractError(f"image {key!r} is not pinned by digest: {ref!r}")
    return ref


@dataclass(frozen=True)
class Platform:
    """The platform stack's outputs, each an Output with the secrecy the platform gave it."""

    stack: str
    kubeconfig: pulumi.Output[str]
    model_namespace: pulumi.Output[str]
    gpu_node_selector: pulumi.Output[dict[str, str]]
    gpu_tolerations: pulumi.Output[list[dict[str, str]]]
    s3_credentials_secret: pulumi.Output[str]
    hf_token_secret: pulumi.Output[str]
    model_bucket: pulumi.Output[str]
    model_store_endpoint: pulumi.Output[str]
    model_prefix: pulumi.Output[str]
    images: pulumi.Output[dict[str, str]]

    @classmethod
    def from_stack(cls, stack: str) -> Platform:
        ref = pulumi.StackReference(stack)

        def require(name: str) -> pulumi.Output[Any]:
            # require_output alone fails with a bare KeyError; check presence first so the
            # error says which output is missing and what the platform does export. The check
            # is unsecreted (it only yields True) so each value keeps its own secrecy.
            present = pulumi.Output.unsecret(
                ref.outputs.apply(lambda outs: _require_present(stack, name, outs))
            )
            value = ref.require_output(name)
            return present.apply(lambda _: value)

        return cls(
            stack=stack,
            kubeconfig=pulumi.Output.secret(
                require(KUBECONFIG)
            ),  # secret even if a platform forgot to mark it
            model_namespace=require(MODEL_NAMESPACE),
            gpu_node_selector=require(GPU_NODE_SELECTOR),
            gpu_tolerations=require(GPU_TOLERATIONS),
            s3_credentials_secret=require(S3_CREDENTIALS_SECRET),
            hf_token_secret=require(HF_TOKEN_SECRET),
            model_bucket=require(MODEL_BUCKET),
            model_store_endpoint=require(MODEL_STORE_ENDPOINT),
            model_prefix=require(MODEL_PREFIX),
            images=require(IMAGES),
        )
