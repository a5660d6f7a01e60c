#!/usr/bin/env bash
# The local base image rootfs the image tests (and `make image LOCAL_BASE=1`) build on: no base
# image can be pulled on these machines, so debootstrap makes Debian bookworm (minbase) with
# python3 (3.11, like python:3.11-slim), venv and pip, laid out like the python:slim images
# (/usr/local/bin/python, pip allowed to install system-wide), trimmed of docs and apt caches.
#
# Output: a gzip tarball, cached under ${GPU_PLATFORM_CACHE:-~/.cache/gpu-platform}/base/ and keyed
# by what goes into it (bump LAYOUT when changing the steps below), so it is made once per
# machine (one to two minutes) and reused (CI: cache that directory). Prints the tarball path as
# its last line. Skips (exit 0, nothing on stdout, reason on stderr) when debootstrap cannot run
# (not root, or not installed). GPU_PLATFORM_SKIP_BASE=1 skips it too.
set -euo pipefail
cd "$(dirname "$0")/../.."  # repo root

log() { printf '\033[1;34m[base-image]\033[0m %s\n' "$*" >&2; }

SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
CACHE="${GPU_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpu-platform}/base"
LAYOUT=1  # bump when the rootfs steps below change
key="$(printf '%s' "$SUITE $PACKAGES layout-$LAYOUT" | sha256sum | cut -c1-12)"
tarball="$CACHE/debian-$SUITE-python3-$key.tar.gz"

if [ "${GPU_PLATFORM_SKIP_BASE:-}" = 1 ]; then log "SKIP: GPU_PLATFORM_SKIP_BASE=1"; exit 0; fi
if [ -s "$tarball" ]; then log "cached: $tarball"; echo "$tarball"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then log "SKIP: debootstrap needs root"; exit 0; fi
if ! command -v debootstrap >/dev/null 2>&1; then log "SKIP: debootstrap is not installed"; exit 0; fi

mkdir -p "$CACHE"
work="$(mktemp -d "$CACHE/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR (about a minute, once)"
started=$SECONDS
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/root" "$MIRROR" >"$work/log" 2>&1; then
  tail -20 "$work/log" >&2
  log "debootstrap failed (log above)"
  exit 1
fi
root="$work/root"
# python:slim layout: python/pip on PATH under /usr/local/bin, pip allowed to install (PEP 668
# marker removed, as the python images have no distro-managed site-packages to protect).
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
ln -sf /usr/bin/python3 "$root/usr/local/bin/python3"
ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
# Small layers: vfs storage copies the whole rootfs for every step.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/locale \
       "$root"/var/log/* "$root"/tmp/* 2>/dev/null || true
tar -C "$root" --numeric-owner -czf "$work/base.tar.gz" .
mv "$work/base.tar.gz" "$tarball"
find "$CACHE" -maxdepth 1 -name "debian-$SUITE-python3-*.tar.gz" ! -name "$(basename "$tarball")" -delete
log "made $tarball ($(du -h "$tarball" | cut -f1)) in $((SECONDS - started))s"
echo "$tarball"
