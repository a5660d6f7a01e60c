"""The platform's images, written once: which exist, where they build from, the platforms an image
may target, the config keys that pin refs built elsewhere, and the BuildKit secret ids.

Data only: the stack settings validate against it, ``ContainerImage`` builds from it,
``scripts/build-image.sh`` and the image leak test read the same list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

#: Platforms an image may be built for.
PLATFORMS: Final = ("linux/amd64", "linux/arm64")
#: BuildKit secret ids the Dockerfiles read (``RUN --mount=type=secret,id=...``): the Hugging Face
#: token (hf-server, only to prefetch a model at build time), an env-style file with PIP_INDEX_URL /
#: PIP_EXTRA_INDEX_URL for a private package index, and a CA bundle for that index. All optional.
HF_TOKEN_SECRET_ID: Final = "hf_token"  # pragma: allowlist secret
PIP_INDEX_SECRET_ID: Final = "pip_index"  # pragma: allowlist secret
PIP_CA_SECRET_ID: Final = "pip_ca"  # pragma: allowlist secret
BUILD_SECRET_IDS: Final = (HF_TOKEN_SECRET_ID, PIP_INDEX_SECRET_ID, PIP_CA_SECRET_ID)


@dataclass(frozen=True)
class ImageSpec:
    """One image of the platform: where its context and Dockerfile live (relative to the project)."""

    name: str
    context: str
    dockerfile: str
    config_key: str
    """The stack config key that pins a digest built elsewhere (when this stack does not build it)."""
    build_args: Mapping[str, str] = field(default_factory=dict)


#: The platform's images. None needs a secret to build; hf-server reads ``hf_token`` only when a
#: ``PREFETCH_MODEL`` build arg asks it to bake a model in.
PLATFORM_IMAGES: Final = (
    ImageSpec("model-cache", "images/model-cache", "images/model-cache/Dockerfile", "modelCacheImage"),
    ImageSpec("hf-server", "images/hf-server", "images/hf-server/Dockerfile.hf", "hfServerImage"),
    # Its context is images/: the image installs model-cache too (it reads the bucket's layout with it).
    ImageSpec("hub-gateway", "images", "images/hub-gateway/Dockerfile", "hubGatewayImage"),
)
#: Config keys of the images model workloads run when this stack does not build them.
IMAGE_KEYS: Final = {spec.name: spec.config_key for spec in PLATFORM_IMAGES}


def images_needed(runtimes: Iterable[str], published: Iterable[str] = (), *, hub_gateway: bool = False) -> set[str]:
    """The platform images some workload runs: model-cache for any model (its init containers),
    hf-server only when a model serves with it, hub-gateway when the stack runs it, plus those
    ``published`` for workloads outside the stack (``publishImages``: app teams read them from the
    ``images`` output). Only these are built."""
    found = list(runtimes)
    needed = ({"model-cache"} if found else set()) | ({"hf-server"} if "hf-server" in found else set())
    return needed | ({"hub-gateway"} if hub_gateway else set()) | set(published)
