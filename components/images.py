"""ContainerImage: one image built with ``pulumi_docker_build.Image``, BuildKit secrets, pushed by digest.

This component is the single source of truth for image builds during ``pulumi up``
(``buildImages: true``); CI signs and SBOMs the digests the ``images`` stack output gives.

Rules it enforces, all before anything is registered:
- credentials travel only as BuildKit ``secrets`` (``RUN --mount=type=secret,id=...``): those
  are never written to a layer, the config or the history. A build arg whose NAME looks like a
  credential (token, password, secret, key, auth, ...) or whose VALUE carries one (a URL with
  ``user:password@``) is refused: build args are recorded in the image history;
- the Dockerfile must lie inside the build context (BuildKit cannot see files outside it, and a
  path that escapes usually means a typo that builds the wrong thing);
- ``build_on_preview`` is off (a preview must not need Docker or the token), rotating a secret
  does not rebuild (``ignore_secrets_in_diff_calculation``), the registry cache is
  ``{repository}/{name}:buildcache`` in ``max`` mode, and the output is ``name@sha256:...``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pulumi
import pulumi_docker_build as docker_build

from components.config.images import HF_TOKEN_SECRET_ID, PIP_INDEX_SECRET_ID, PLATFORM_IMAGES, PLATFORMS
from components.config.types import ImageSettings, RegistrySettings

CACHE_TAG: Final = "buildcache"
#: Words that make a build-arg name look like a credential (matched per word of the name).
CREDENTIAL_WORDS: Final = frozenset({
    "token", "tokens", "password", "passwd", "pwd", "pass", "secret", "secrets", "key", "keys", "apikey",
    "credential", "credentials", "cred", "creds", "auth", "authorization", "private", "netrc", "cookie",
    "session", "jwt", "bearer",
})
_URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]+:[^/@\s]+@", re.IGNORECASE)
_SECRET_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_IMAGE_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ImageBuildError(ValueError):
    """A ContainerImage that must not be built as given (raised before registration)."""


@dataclass
class RegistryLogin:
    server: str
    username: str
    password: pulumi.Input[str]


@dataclass
class ContainerImageArgs:
    name: str
    """Image name under ``repository``: ``{repository}/{name}``."""
    context: str
    """Build context directory."""
    repository: str
    """e.g. ``ghcr.io/acme/gpu-platform``."""
    dockerfile: str | None = None
    """Path of the Dockerfile (relative to ``root``, like ``context``); default ``{context}/Dockerfile``."""
    root: str | None = None
    """Directory relative paths are resolved from (the Pulumi project directory); default: the cwd."""
    tag: str = "latest"
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """BuildKit secret id -> value, e.g. ``{HF_TOKEN_SECRET_ID: token, "pip_index": "PIP_INDEX_URL=..."}``."""
    build_args: Mapping[str, str] = field(default_factory=dict)
    platforms: Sequence[str] = ("linux/amd64",)
    registry: RegistryLogin | None = None
    push: bool = True
    source_url: str | None = None
    revision: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    build_on_preview: bool = False
    ignore_secret_changes: Sequence[str] = (HF_TOKEN_SECRET_ID, PIP_INDEX_SECRET_ID)
    """Secret ids whose rotation must not trigger a rebuild."""


def credential_like(name: str) -> bool:
    """Whether a build-arg name reads as a credential: ``HF_TOKEN``, ``pipPassword``, ``api-key``..."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    words = [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]
    return any(w in CREDENTIAL_WORDS for w in words) or any(
        w.endswith(suffix) for w in words for suffix in ("token", "password", "secret", "apikey", "passwd"))


def validate(args: ContainerImageArgs) -> Path:
    """Check everything a build needs; return the resolved Dockerfile path. Raises :class:`ImageBuildError`."""
    problems: list[str] = []
    if not _IMAGE_NAME.match(args.name):
        problems.append(f"image name {args.name!r} must be lower case letters, digits and . _ -")
    if not _TAG.match(args.tag):
        problems.append(f"tag {args.tag!r} is not a valid image tag")
    root = Path(args.root) if args.root else Path.cwd()
    context = (root / args.context).resolve()
    dockerfile = (root / args.dockerfile).resolve() if args.dockerfile else context / "Dockerfile"
    if not context.is_dir():
        problems.append(f"build context {args.context!r} is not a directory")
    elif os.path.commonpath([context, dockerfile]) != str(context):
        problems.append(f"Dockerfile {args.dockerfile!r} is outside the build context {args.context!r}; "
                        "move it into the context (BuildKit only sees files inside it)")
    elif not dockerfile.is_file():
        problems.append(f"Dockerfile {str(dockerfile)!r} does not exist")
    for arg, value in args.build_args.items():
        if credential_like(arg):
            problems.append(f"build arg {arg!r} looks like a credential: build args are recorded in the "
                            "image history. Pass it as a BuildKit secret instead: secrets={"
                            f"'{arg.lower()}': ...}} and RUN --mount=type=secret,id={arg.lower()} in the Dockerfile")
        elif isinstance(value, str) and _URL_CREDENTIALS.search(value):
            problems.append(f"build arg {arg!r} holds a URL with user:password@; pass it as a BuildKit "
                            "secret (e.g. id=pip_index) instead")
    for secret_id in args.secrets:
        if not _SECRET_ID.match(secret_id):
            problems.append(f"secret id {secret_id!r} must be letters, digits and . _ - (it is the id in "
                            "RUN --mount=type=secret,id=...)")
    for platform in args.platforms:
        if platform not in PLATFORMS:
            problems.append(f"platform {platform!r} must be one of {', '.join(PLATFORMS)}")
    if not args.platforms:
        problems.append("at least one platform is needed")
    if args.push and args.registry is None:
        problems.append(f"pushing {args.repository}/{args.name} needs registry credentials")
    if problems:
        raise ImageBuildError(f"ContainerImage {args.name!r}: " + "; ".join(problems))
    return dockerfile


def oci_labels(args: ContainerImageArgs) -> dict[str, str]:
    labels = {"org.opencontainers.image.title": args.name}
    if args.source_url:
        labels["org.opencontainers.image.source"] = args.source_url
    if args.revision:
        labels["org.opencontainers.image.revision"] = args.revision
    return {**labels, **args.labels}


class ContainerImage(pulumi.ComponentResource):
    """A BuildKit build pushed to the registry; ``ref`` is the digest-pinned reference."""

    ref: pulumi.Output[str]
    digest: pulumi.Output[str]
    repository: str

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        validate(args)  # before registering anything
        super().__init__("gpu-platform:index:ContainerImage", name, None, opts)
        self.repository = f"{args.repository}/{args.name}"
        cache_ref = f"{self.repository}:{CACHE_TAG}"
        registries = None
        if args.registry is not None:
            registries = [docker_build.RegistryArgs(
                address=args.registry.server,
                username=args.registry.username,
                password=pulumi.Output.secret(args.registry.password),
            )]
        secrets = {k: pulumi.Output.secret(v) for k, v in args.secrets.items()}
        self.image = docker_build.Image(
            f"{name}-image",
            # Paths as given (relative to the project directory, where pulumi runs the program), so
            # the state does not change between a laptop and CI.
            context=docker_build.BuildContextArgs(location=args.context),
            dockerfile=docker_build.DockerfileArgs(location=args.dockerfile or f"{args.context}/Dockerfile"),
            tags=[f"{self.repository}:{args.tag}"],
            push=args.push,
            registries=registries,
            secrets=secrets or None,
            ignore_secrets_in_diff_calculation=[s for s in args.ignore_secret_changes if s in secrets] or None,
            build_args=dict(args.build_args) or None,
            platforms=[docker_build.Platform(p) for p in args.platforms],
            labels=oci_labels(args),
            target=args.target,
            build_on_preview=args.build_on_preview,
            cache_from=[docker_build.CacheFromArgs(registry=docker_build.CacheFromRegistryArgs(ref=cache_ref))],
            cache_to=[docker_build.CacheToArgs(registry=docker_build.CacheToRegistryArgs(
                ref=cache_ref, mode=docker_build.CacheMode.MAX, image_manifest=True, oci_media_types=True,
            ))],
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secrets"]),
        )
        self.ref = self.image.ref
        self.digest = self.image.digest
        self.register_outputs({"ref": self.ref, "digest": self.digest})


def git_revision(root: Path) -> str | None:
    """The commit being deployed: ``GITHUB_SHA`` in CI, else ``git rev-parse HEAD``, else None."""
    sha = os.environ.get("GITHUB_SHA")
    if sha:
        return sha
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def platform_images(images: ImageSettings, registry: RegistrySettings, *,
                    prebuilt: Mapping[str, str], stack: str, source_url: str | None, root: Path,
                    opts: pulumi.ResourceOptions | None = None) -> dict[str, pulumi.Input[str]]:
    """``{name: digest-pinned ref}`` of the images the workloads run.

    With ``images.build`` every platform image is built and pushed here, and those refs win over
    the ``prebuilt`` ones from config (``modelCacheImage``/``hfServerImage``); otherwise the
    prebuilt refs (images another stack or CI built) are returned as they are
    (docs/secrets-and-images.md). Settings already checked that every image the models need is
    one or the other, and that a build has its registry password.

    No image needs the Hugging Face token to build (hf-server asks for it only to bake a model in
    with ``PREFETCH_MODEL``, which the platform's builds do not do); a private package index
    (``pipIndex``) reaches every build as the optional BuildKit secret ``pip_index``.
    """
    if not images.build:
        return dict(prebuilt)
    assert registry.password is not None  # settings checked
    build_secrets = {PIP_INDEX_SECRET_ID: images.pip_index} if images.pip_index is not None else {}
    revision = git_revision(root)
    login = RegistryLogin(registry.server, registry.username, registry.password)
    refs: dict[str, pulumi.Input[str]] = {}
    for spec in PLATFORM_IMAGES:
        image = ContainerImage(spec.name, ContainerImageArgs(
            name=spec.name,
            context=spec.context,
            dockerfile=spec.dockerfile,
            root=str(root),
            repository=images.repository,
            tag=revision[:12] if revision else stack,
            secrets=build_secrets,
            build_args=dict(spec.build_args),
            platforms=images.platforms,
            registry=login,
            source_url=source_url,
            revision=revision,
        ), opts=opts)
        refs[spec.name] = image.ref
    return {**prebuilt, **refs}
