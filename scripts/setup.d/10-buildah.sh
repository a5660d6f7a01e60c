#!/usr/bin/env bash
# buildah (daemonless image builds, as root with --isolation chroot --storage-driver vfs) and
# debootstrap (the local Debian base the image tests build on, since no base image can be
# pulled here). Installed with apt-get when missing; skipped, with the reason, where that is
# impossible (not root and no sudo): tests/images then skips with the same reason. Under CI=true
# that is an error instead: CI runs the image builds (README), and a skipped test does not fail a job.
set -euo pipefail

log() { printf '\033[1;34m[setup:buildah]\033[0m %s\n' "$*"; }
# skip REASON: fine on a laptop, an error in CI (CI=true, as GitHub Actions sets it).
skip() {
  case "${CI:-}" in
    true|TRUE|True|1) log "ERROR: $1; CI=true needs buildah and debootstrap (run the job as root, or preinstall them)"
                      exit 1 ;;
  esac
  log "SKIP: $1; image build tests will skip"
  exit 0
}

missing=()
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)  # the token scan reads zstd-compressed layers
if [ ${#missing[@]} -eq 0 ]; then
  log "$(buildah --version), debootstrap present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo"
  else
    skip "${missing[*]} missing and neither root nor passwordless sudo"
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  skip "${missing[*]} missing and no apt-get (install them with your package manager)"
fi
log "installing ${missing[*]} (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
log "$(buildah --version)"
