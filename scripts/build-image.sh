#!/usr/bin/env bash
# The local inner loop: build one platform image the way `pulumi up` does (BuildKit secrets,
# nothing secret in ARG/ENV), without pushing.
#
#   HF_TOKEN=hf_... make image NAME=model-cache      # or NAME=hf-server
#
# Environment:
#   HF_TOKEN        required: passed as the build secret hf_token BY REFERENCE (--secret
#                   id=hf_token,env=HF_TOKEN), never on a command line, never as a build arg
#   PIP_INDEX_FILE  optional env-style file (PIP_INDEX_URL=... / PIP_EXTRA_INDEX_URL=...) -> secret pip_index
#   PIP_CA_FILE     optional CA bundle for an index/proxy with a private CA -> secret pip_ca
#                   (default: $PIP_CERT when set, as on machines behind an egress proxy)
#   REQUIREMENTS    hf-server only: e.g. requirements-buildtest.txt for a light build without torch
#   IMAGE_TAG       default localhost/gpu-platform/NAME:dev
#   LOCAL_BASE=1    build on the local debootstrap base (no registry pull; buildah only)
#   BUILDER         buildah (default when installed) or docker (docker buildx)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 2; }
log() { printf '\033[1;34m[image]\033[0m %s\n' "$*" >&2; }

name="${1:-${NAME:-}}"
case "$name" in
  model-cache) context=images/model-cache; dockerfile=images/model-cache/Dockerfile ;;
  hf-server)   context=images/hf-server;   dockerfile=images/hf-server/Dockerfile.hf ;;
  "") die "which image? make image NAME=model-cache (or NAME=hf-server)" ;;
  *)  die "unknown image '$name': known images are model-cache, hf-server" ;;
esac

# Fail now, naming the variable, rather than with an opaque 401 or 'secret not found' later.
if [ -z "${HF_TOKEN:-}" ]; then
  die "HF_TOKEN is not set: $dockerfile needs the build secret hf_token (required=true).
       export HF_TOKEN=hf_...   (a read token from https://huggingface.co/settings/tokens)
       It is passed as a BuildKit secret by reference and never lands in the image."
fi
secrets=(--secret id=hf_token,env=HF_TOKEN)
if [ -n "${PIP_INDEX_FILE:-}" ]; then
  [ -f "$PIP_INDEX_FILE" ] || die "PIP_INDEX_FILE=$PIP_INDEX_FILE is not a file"
  secrets+=(--secret "id=pip_index,src=$PIP_INDEX_FILE")
fi
ca="${PIP_CA_FILE:-${PIP_CERT:-}}"
if [ -n "$ca" ]; then
  [ -f "$ca" ] || die "PIP_CA_FILE=$ca is not a file"
  secrets+=(--secret "id=pip_ca,src=$ca")
fi

revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
source_url="$(git remote get-url origin 2>/dev/null | sed -E 's#^git@([^:]+):#https://\1/#; s#\.git$##' || true)"
args=(--build-arg "REVISION=$revision")
[ -n "$source_url" ] && args+=(--build-arg "SOURCE=$source_url")
[ "$name" = hf-server ] && [ -n "${REQUIREMENTS:-}" ] && args+=(--build-arg "REQUIREMENTS=$REQUIREMENTS")
tag="${IMAGE_TAG:-localhost/gpu-platform/$name:dev}"

builder="${BUILDER:-}"
if [ -z "$builder" ]; then
  if command -v buildah >/dev/null 2>&1; then builder=buildah
  elif command -v docker >/dev/null 2>&1; then builder=docker
  else die "neither buildah nor docker is installed (make setup installs buildah as root)"; fi
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
  # skip the required hf_token check (buildah 1.28).
  buildah "${storage[@]}" build --isolation chroot "${pull[@]}" "${secrets[@]}" "${args[@]}" \
    -f "$dockerfile" -t "$tag" "$context"
  log "inspect: buildah ${storage[*]} inspect $tag"
fi
log "built $tag in $((SECONDS - started))s"
