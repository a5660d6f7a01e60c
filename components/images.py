"""ContainerImage: one image built with ``pulumi_docker_build.Image``, BuildKit secrets, pushed by digest.

This component is the single source of truth for image builds during ``pulumi up``
(``buildImages: true``); CI scans, signs and SBOMs the digests the ``images`` stack output gives,
and other stacks run exactly those digests (``promoteImagesFrom``: build once, promote).

Images are named by what is in them: the tag (``inputs-<16 hex>``) and the revision label are
the hash of the build context (as the .dockerignore leaves it), the Dockerfile, the build args,
platforms and base images (:func:`image_inputs`). A commit that does not touch an image (docs,
another image, the program) keeps its tag, labels and so its digest, and no workload rolls.

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

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pulumi
import pulumi_docker_build as docker_build

from components.config.images import (
    HF_TOKEN_SECRET_ID,
    IMAGE_KEYS,
    PIP_INDEX_SECRET_ID,
    PLATFORM_IMAGES,
    PLATFORMS,
)
from components.config.outputs import IMAGES as IMAGES_OUTPUT
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


#: Bumped when what :func:`image_inputs` hashes changes (so the tags of every image change once).
INPUTS_HASH_VERSION: Final = "gpu-platform image inputs v1"
_FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
_ARG = re.compile(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?\s*$", re.IGNORECASE)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class ImageInputs:
    """What goes into an image, hashed: the image is named (tagged, labelled) by ``digest``."""

    digest: str
    """sha256 (hex) over the context files (honouring the .dockerignore), the Dockerfile, the build
    args, platforms, target and the base images."""
    bases: tuple[str, ...]
    """The external images the Dockerfile's stages start FROM (after ARG substitution)."""
    files: int

    @property
    def tag(self) -> str:
        return f"inputs-{self.digest[:16]}"


def dockerignore_patterns(context: Path, dockerfile: Path) -> list[str]:
    """The ignore patterns BuildKit applies: ``<Dockerfile>.dockerignore`` next to the Dockerfile
    if present, else ``<context>/.dockerignore``. Parsed as docker-py's ``APIClient.build`` does
    (blank lines and ``#`` comments dropped); the matching itself is docker-py's PatternMatcher."""
    specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
    ignore = specific if specific.is_file() else context / ".dockerignore"
    if not ignore.is_file():
        return []
    lines = (line.strip() for line in ignore.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def base_images(dockerfile_text: str, build_args: Mapping[str, str]) -> tuple[str, ...]:
    """The external images a Dockerfile builds FROM: global ``ARG`` defaults, overridden by the build
    args, substituted into each ``FROM``; references to earlier stages are not external."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[str] = []
    seen_from = False
    for raw in dockerfile_text.splitlines():
        line = raw.strip()
        arg = _ARG.match(line)
        if arg and not seen_from:
            args[arg.group(1)] = build_args.get(arg.group(1), arg.group(2) or "")
            continue
        found = _FROM.match(line)
        if not found:
            continue
        seen_from = True
        image = _VAR.sub(lambda m: args.get(m.group(1) or m.group(2), ""), found.group(1))
        if image.lower() not in stages and image != "scratch":
            bases.append(image)
        if found.group(2):
            stages.add(found.group(2).lower())
    return tuple(dict.fromkeys(bases))


def image_inputs(root: Path, context: str, dockerfile: str, *, build_args: Mapping[str, str],
                 platforms: Sequence[str], target: str | None = None) -> ImageInputs:
    """Hash what goes into an image, so a change that does not touch it keeps its name and digest.

    Files are those BuildKit would send (docker-py's .dockerignore matcher, the Dockerfile always
    included), each as path, executable bit and content hash; symlinks by target. Mode bits other
    than +x, owners and mtimes are left out: BuildKit's own context checksum ignores mtimes too.
    """
    from docker.utils.build import exclude_paths  # docker-py: the reference .dockerignore semantics

    context_dir = (root / context).resolve()
    dockerfile_path = (root / dockerfile).resolve()
    included = exclude_paths(str(context_dir), dockerignore_patterns(context_dir, dockerfile_path),
                             dockerfile=os.path.relpath(dockerfile_path, context_dir))
    hasher = hashlib.sha256(INPUTS_HASH_VERSION.encode() + b"\n")
    files = 0
    for relative in sorted(included):
        path = context_dir / relative
        if path.is_symlink():
            hasher.update(f"L {relative} -> {os.readlink(path)}\n".encode())
        elif path.is_file():
            executable = "x" if os.access(path, os.X_OK) else "-"
            hasher.update(f"F {relative} {executable} {_file_sha256(path)}\n".encode())
            files += 1
        elif path.is_dir():
            hasher.update(f"D {relative}\n".encode())
    dockerfile_text = dockerfile_path.read_text()
    bases = base_images(dockerfile_text, build_args)
    hasher.update(f"dockerfile {os.path.relpath(dockerfile_path, context_dir)} "
                  f"{hashlib.sha256(dockerfile_text.encode()).hexdigest()}\n".encode())
    for key in sorted(build_args):
        hasher.update(f"arg {key}={build_args[key]}\n".encode())
    hasher.update(f"platforms {','.join(sorted(platforms))}\ntarget {target or ''}\n".encode())
    hasher.update("".join(f"base {b}\n" for b in bases).encode())
    return ImageInputs(digest=hasher.hexdigest(), bases=bases, files=files)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def promoted_images(stack: str, names: Iterable[str],
                    opts: pulumi.ResourceOptions | None = None) -> dict[str, pulumi.Output[str]]:
    """``{name: ref}`` from another stack's ``images`` output (build once, promote).

    The stack that built the images (dev) is the one CI scanned and signed; this stack runs exactly
    those digests and registers no build. A missing image fails the preview with what to do.
    """
    reference = pulumi.StackReference(stack, opts=opts)
    images = reference.get_output(IMAGES_OUTPUT)

    def pick(name: str) -> pulumi.Output[str]:
        def one(found: Any) -> str:
            ref = found.get(name) if isinstance(found, Mapping) else None
            if not isinstance(ref, str) or "@sha256:" not in ref:
                raise ValueError(
                    f"promoteImagesFrom: stack {stack} has no digest-pinned {name!r} in its `{IMAGES_OUTPUT}` "
                    f"output (found: {ref!r}). Fix: run `pulumi up` on {stack} first (it builds only the images "
                    f"its own models run), or pin {IMAGE_KEYS[name]} in this stack")
            return ref
        return images.apply(one)

    return {name: pick(name) for name in sorted(names)}


def platform_images(images: ImageSettings, registry: RegistrySettings, *,
                    prebuilt: Mapping[str, str], needed: Iterable[str], source_url: str | None, root: Path,
                    opts: pulumi.ResourceOptions | None = None) -> dict[str, pulumi.Input[str]]:
    """``{name: digest-pinned ref}`` of the images the workloads run (only those in ``needed``).

    - ``images.build``: each needed image is built and pushed here, tagged and labelled by the hash
      of its inputs (:func:`image_inputs`), so an unrelated change keeps its digest; those refs win
      over the ``prebuilt`` ones from config (``modelCacheImage``/``hfServerImage``);
    - ``images.promote_from``: the refs come from that stack's ``images`` output; a ``prebuilt``
      ref from config wins (an emergency pin);
    - otherwise the ``prebuilt`` refs (images CI built) are returned as they are.
    Settings already checked that every needed image is one of these, and that a build has its
    registry password.

    No image needs the Hugging Face token to build (hf-server asks for it only to bake a model in
    with ``PREFETCH_MODEL``, which the platform's builds do not do); a private package index
    (``pipIndex``) reaches every build as the optional BuildKit secret ``pip_index``.
    """
    wanted = [spec for spec in PLATFORM_IMAGES if spec.name in set(needed)]
    if images.promote_from:
        promoted = promoted_images(images.promote_from, [s.name for s in wanted if s.name not in prebuilt], opts)
        return {**promoted, **prebuilt}
    if not images.build:
        return dict(prebuilt)
    assert registry.password is not None  # settings checked
    build_secrets = {PIP_INDEX_SECRET_ID: images.pip_index} if images.pip_index is not None else {}
    login = RegistryLogin(registry.server, registry.username, registry.password)
    refs: dict[str, pulumi.Input[str]] = {}
    for spec in wanted:
        inputs = image_inputs(root, spec.context, spec.dockerfile, build_args=spec.build_args,
                              platforms=images.platforms)
        image = ContainerImage(spec.name, ContainerImageArgs(
            name=spec.name,
            context=spec.context,
            dockerfile=spec.dockerfile,
            root=str(root),
            repository=images.repository,
            tag=inputs.tag,
            secrets=build_secrets,
            build_args=dict(spec.build_args),
            platforms=images.platforms,
            registry=login,
            source_url=source_url,
            revision=inputs.digest,
            labels={"org.opencontainers.image.base.name": inputs.bases[-1]} if inputs.bases else {},
        ), opts=opts)
        refs[spec.name] = image.ref
    return {**prebuilt, **refs}
