#!/usr/bin/env bash
# The local inner loop: build one platform image the way `pulumi up` does (BuildKit secrets,
# nothing secret in ARG/ENV), without pushing.
#
#   make image NAME=model-cache                                  # needs no secret at all
#   make image NAME=hf-server
#   HF_TOKEN=hf_... make image NAME=hf-server PREFETCH_MODEL=meta-llama/Llama-3.1-8B-Instruct
#
# The images (name, context, Dockerfile) and the secret ids are read from the code
# (components.images.PLATFORM_IMAGES, scripts/lint_secrets.py), as the leak test reads them.
#
# Environment:
#   HF_TOKEN        passed as the build secret hf_token BY REFERENCE (--secret id=hf_token,env=HF_TOKEN),
#                   never on a command line or as a build arg, to the images whose Dockerfile mounts it;
#                   required only with PREFETCH_MODEL (hf-server), which fails at once without it
#   PREFETCH_MODEL  hf-server only: bake this Hub repo's config + tokenizer into the image (build arg)
#   PIP_INDEX       optional env-style text (PIP_INDEX_URL=... / PIP_EXTRA_INDEX_URL=... lines) -> secret
#                   pip_index, by reference; or PIP_INDEX_FILE: the same in a file
#   PIP_CA_FILE     optional CA bundle for an index/proxy with a private CA -> secret pip_ca
#                   (default: $PIP_CERT when set, as on machines behind an egress proxy)
#   REQUIREMENTS    hf-server only: e.g. requirements-buildtest.txt for a light build without torch
#   IMAGE_TAG       default localhost/gpu-platform/NAME:dev
#   LOCAL_BASE=1    build on the local debootstrap base (no registry pull; buildah only)
#   BUILDER         buildah (default when installed) or docker (docker buildx)
#   DRY_RUN=1       print the build command (secrets appear by reference only) instead of running it
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 2; }
log() { printf '\033[1;34m[image]\033[0m %s\n' "$*" >&2; }

python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || die "$python is missing: run make setup first"
# One line per image, "name context dockerfile", then the secret ids: written once, in the code.
code="$("$python" -c '
from components.config.images import HF_TOKEN_SECRET_ID, PIP_CA_SECRET_ID, PIP_INDEX_SECRET_ID, PLATFORM_IMAGES
for image in PLATFORM_IMAGES:
    print("image", image.name, image.context, image.dockerfile)
print("secrets", HF_TOKEN_SECRET_ID, PIP_INDEX_SECRET_ID, PIP_CA_SECRET_ID)
')" || die "cannot read the image list from components.config.images (see the error above)"
read -r _ hf_token_id pip_index_id pip_ca_id < <(grep '^secrets ' <<<"$code")
known="$(awk '$1 == "image" {printf "%s%s", sep, $2; sep=", "}' <<<"$code")"

name="${1:-${NAME:-}}"
[ -n "$name" ] || die "which image? make image NAME=<one of: $known>"
read -r _ _ context dockerfile < <(awk -v n="$name" '$1 == "image" && $2 == n' <<<"$code") || true
[ -n "${dockerfile:-}" ] || die "unknown image '$name': known images are $known"

secrets=()
takes_token=false
grep -q "id=$hf_token_id" "$dockerfile" && takes_token=true
if [ -n "${PREFETCH_MODEL:-}" ]; then
  [ "$takes_token" = true ] || die "PREFETCH_MODEL is for an image whose Dockerfile prefetches (hf-server), not $name"
  # Fail now, naming the secret and the command, rather than with an opaque 401 later.
  [ -n "${HF_TOKEN:-}" ] || die "HF_TOKEN is not set: PREFETCH_MODEL=$PREFETCH_MODEL needs the build secret $hf_token_id.
       export HF_TOKEN=hf_...   (a read token from https://huggingface.co/settings/tokens)
       It is passed as a BuildKit secret by reference (--secret id=$hf_token_id,env=HF_TOKEN) and never lands in the image."
fi
if [ "$takes_token" = true ] && [ -n "${HF_TOKEN:-}" ]; then
  secrets+=(--secret "id=$hf_token_id,env=HF_TOKEN")
fi
if [ -n "${PIP_INDEX:-}" ]; then
  secrets+=(--secret "id=$pip_index_id,env=PIP_INDEX")
elif [ -n "${PIP_INDEX_FILE:-}" ]; then
  [ -f "$PIP_INDEX_FILE" ] || die "PIP_INDEX_FILE=$PIP_INDEX_FILE is not a file"
  secrets+=(--secret "id=$pip_index_id,src=$PIP_INDEX_FILE")
fi
ca="${PIP_CA_FILE:-${PIP_CERT:-}}"
if [ -n "$ca" ]; then
  [ -f "$ca" ] || die "PIP_CA_FILE=$ca is not a file"
  secrets+=(--secret "id=$pip_ca_id,src=$ca")
fi

revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
source_url="$(git remote get-url origin 2>/dev/null | sed -E 's#^git@([^:]+):#https://\1/#; s#\.git$##' || true)"
args=(--build-arg "REVISION=$revision")
[ -n "$source_url" ] && args+=(--build-arg "SOURCE=$source_url")
[ "$name" = hf-server ] && [ -n "${REQUIREMENTS:-}" ] && args+=(--build-arg "REQUIREMENTS=$REQUIREMENTS")
[ -n "${PREFETCH_MODEL:-}" ] && args+=(--build-arg "PREFETCH_MODEL=$PREFETCH_MODEL")
tag="${IMAGE_TAG:-localhost/gpu-platform/$name:dev}"

builder="${BUILDER:-}"
if [ -z "$builder" ]; then
  if command -v buildah >/dev/null 2>&1; then builder=buildah
  elif command -v docker >/dev/null 2>&1; then builder=docker
  else die "neither buildah nor docker is installed (make setup installs buildah as root)"; fi
fi

if [ "${DRY_RUN:-}" = 1 ]; then
  echo "$builder build ${secrets[*]} ${args[*]} -f $dockerfile -t $tag $context"
  exit 0
fi
started=$SECONDS
if [ "$builder" = docker ]; then
  [ "${LOCAL_BASE:-}" = 1 ] && die "LOCAL_BASE=1 needs buildah"
  log "docker buildx build $dockerfile -> $tag"
  DOCKER_BUILDKIT=1 docker buildx build --load "${secrets[@]}" "${args[@]}" -f "$dockerfile" -t "$tag" "$context"
else
  cache="${GPU_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpu-platform}"
  storage=(--root "$cache/buildah/storage" --runroot "${XDG_RUNTIME_DIR:-/tmp}/gpu-platform-buildah"
           --storage-driver "${STORAGE_DRIVER:-vfs}")
  pull=()
  if [ "${LOCAL_BASE:-}" = 1 ]; then
    pull=(--pull=never)
    tarball="$(bash tests/images/make-base.sh)"
    [ -n "$tarball" ] || die "no local base image (see the message above)"
    .venv/bin/python - "$tarball" "$dockerfile" "${storage[@]}" <<'PY'
import sys
from pathlib import Path
from tests.images.buildah import Buildah, external_bases, normalise
tarball, dockerfile, storage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
b = Buildah(Path("/nonexistent"))
b.global_args = storage
names = [normalise(n) for n in external_bases(dockerfile)]
present = [n for n in names if b.run("inspect", "--type", "image", n, check=False).returncode == 0]
if len(present) < len(names):
    b.import_rootfs(tarball, names)
    print(f"[image] local base tagged {', '.join(names)}", file=sys.stderr)
PY
  fi
  log "buildah build $dockerfile -> $tag"
  # No --layers: with vfs a commit per step is slower than a rebuild, and a cached RUN step would
  # skip a required secret check (buildah 1.28).
  buildah "${storage[@]}" build --isolation chroot "${pull[@]}" "${secrets[@]}" "${args[@]}" \
    -f "$dockerfile" -t "$tag" "$context"
  log "inspect: buildah ${storage[*]} inspect $tag"
fi
log "built $tag in $((SECONDS - started))s"
