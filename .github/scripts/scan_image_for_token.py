#!/usr/bin/env python3
"""Look for secret values anywhere in an image: the one scanner CI and the image tests share.

    docker save IMAGE | scan_image_for_token.py --env HF_TOKEN          # CI: the pushed image
    scan_image_for_token.py --env HF_TOKEN --dir OCI_LAYOUT_OR_ROOTFS   # a folder, file by file

The values come from the environment variables named by --env (default HF_TOKEN; repeatable),
never from the command line. Every file is searched: for ``docker save`` the config, the
manifests and each layer; for a folder (an OCI layout, or a container's root filesystem) every
regular file. Blobs are decompressed when they are gzip or zstd (the containerd image store
keeps layers compressed), so a token written in one layer and deleted in a later one is still
found. Each value is looked for raw, base64 (at all three alignments, so it is found inside a
longer base64 string too), base64url, hex and URL-quoted. Streams throughout: no layer is
written to disk.

The image tests (tests/images) import this module (tests/images/conftest.py puts this folder on
``sys.path``): ``scan_bytes``, ``scan_tree``, ``image_files`` and ``config`` are their view of a
built image, so what CI trusts is what the tests exercise.

Exit 0: not found. 1: found (where and which encoding are named; the value never is). 2: error.
Standard library only, plus the ``zstd`` program for zstd layers.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
import urllib.parse
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: A value shorter than this would match by chance (and is no credential anyway).
MIN_SECRET_LENGTH = 8


@dataclass(frozen=True)
class Hit:
    """A secret found: where (archive member, blob or file path) and as what (``label:encoding``)."""

    where: str
    encoding: str


def encodings(secret: str) -> dict[str, bytes]:
    """The byte strings a secret can appear as once something has encoded it."""
    raw = secret.encode()
    found = {"raw": raw, "hex": raw.hex().encode()}
    quoted = urllib.parse.quote(secret, safe="").encode()
    if quoted != raw:  # the same bytes would only report every hit twice
        found["url"] = quoted
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        start = (shift * 8 + 5) // 6  # characters that also carry bits of the padding prefix
        end = ((shift + len(raw)) * 8) // 6  # the last character may carry padding bits
        found[f"base64+{shift}"] = encoded[start:end]
        found[f"base64url+{shift}"] = base64.urlsafe_b64encode(b"\0" * shift + raw)[start:end]
    return found


def needles(secrets: Mapping[str, str]) -> dict[str, bytes]:
    """``{"label:encoding": bytes}`` for every secret and every encoding of it."""
    return {f"{label}:{name}": needle for label, secret in secrets.items()
            for name, needle in encodings(secret).items() if needle}


def find(chunks: Iterable[bytes], wanted: Mapping[str, bytes]) -> set[str]:
    """The names of the ``wanted`` needles in the concatenated chunks (a needle may straddle two)."""
    keep = max((len(n) for n in wanted.values()), default=1) - 1
    found: set[str] = set()
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        found.update(name for name, needle in wanted.items() if name not in found and needle in window)
        if len(found) == len(wanted):
            break
        tail = window[-keep:] if keep else b""
    return found


def contains(chunks: Iterable[bytes], needle: bytes) -> bool:
    """Whether the concatenated chunks contain one needle."""
    return bool(find(chunks, {"needle": needle}))


def scan_bytes(data: bytes, secrets: Mapping[str, str], where: str) -> list[Hit]:
    """Hits in one in-memory text (a build log, ``buildah inspect``)."""
    return [Hit(where, name) for name in sorted(find([data], needles(secrets)))]


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def _zstd_chunks(member: IO[bytes], head: bytes) -> Iterator[bytes]:
    zstd = shutil.which("zstd")
    if zstd is None:
        raise RuntimeError("a layer is zstd-compressed and the zstd program is not installed")
    proc = subprocess.Popen([zstd, "-dc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None

    def feed() -> None:
        try:
            proc.stdin.write(head)
            for chunk in _chunks(member):
                proc.stdin.write(chunk)
        finally:
            proc.stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    yield from _chunks(proc.stdout)
    feeder.join()
    if proc.wait() != 0:
        raise RuntimeError("zstd could not decompress a layer")


class _Prefixed:
    """A stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int | None = -1) -> bytes:
        if not self.head:
            return self.rest.read(n)
        if n is None or n < 0:
            out, self.head = self.head + self.rest.read(), b""
        else:
            out, self.head = self.head[:n], self.head[n:]
        return out


def member_chunks(member: IO[bytes]) -> Iterator[bytes]:
    """The stream's bytes, decompressed if it is a gzip or zstd blob."""
    head = member.read(4)
    if head.startswith(GZIP_MAGIC):
        with gzip.GzipFile(fileobj=_Prefixed(head, member)) as plain:  # type: ignore[arg-type]
            yield from _chunks(plain)
    elif head.startswith(ZSTD_MAGIC):
        yield from _zstd_chunks(member, head)
    else:
        yield head
        yield from _chunks(member)


def scan_archive(archive: IO[bytes], secrets: Mapping[str, str]) -> list[Hit]:
    """Hits in every file of a tar stream (``docker save``, an OCI archive), read once, in order."""
    wanted = needles(secrets)
    hits: list[Hit] = []
    with tarfile.open(fileobj=archive, mode="r|") as tar:
        for info in tar:
            if not info.isfile():
                continue
            member = tar.extractfile(info)
            if member is not None:
                hits += [Hit(info.name, name) for name in sorted(find(member_chunks(member), wanted))]
    return hits


def scan_tree(root: Path, secrets: Mapping[str, str]) -> list[Hit]:
    """Hits in every regular file under ``root`` (symlinks and device files are not followed).

    For an OCI layout that is index.json, the manifests, the config and every layer blob; for a
    container's root filesystem, every file a process in it could read.
    """
    wanted = needles(secrets)
    hits: list[Hit] = []
    for path in sorted(root.rglob("*")):
        try:
            if not stat.S_ISREG(path.lstat().st_mode):
                continue
            with path.open("rb") as handle:
                found = find(member_chunks(handle), wanted)
        except (gzip.BadGzipFile, zlib.error, EOFError, RuntimeError):
            # A file that only looks compressed (gzip/zstd magic, then garbage) is searched raw.
            with path.open("rb") as handle:
                found = find(_chunks(handle), wanted)
        hits += [Hit(str(path.relative_to(root)), name) for name in sorted(found)]
    return hits


def fingerprint(secret: str, length: int = 12) -> str:
    """``sha256(secret)[:length]``: what a build step may record to prove which secret it saw."""
    return hashlib.sha256(secret.encode()).hexdigest()[:length]


def _blob(layout: Path, digest: str) -> bytes:
    algo, _, value = digest.partition(":")
    data = (layout / "blobs" / algo / value).read_bytes()
    return gzip.decompress(data) if data[:2] == GZIP_MAGIC else data


def _manifest(layout: Path) -> dict:
    index = json.loads((layout / "index.json").read_text())
    return json.loads(_blob(layout, index["manifests"][0]["digest"]))


def config(layout: Path) -> dict:
    """The image config of an OCI layout (env, labels, user, history)."""
    return json.loads(_blob(layout, _manifest(layout)["config"]["digest"]))


def image_files(layout: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The image's regular files whose path is ``wanted`` (later layers and whiteouts applied)."""
    files: dict[str, bytes] = {}
    for layer in _manifest(layout)["layers"]:
        with tarfile.open(fileobj=io.BytesIO(_blob(layout, layer["digest"]))) as tar:
            for member in tar:
                name = member.name.lstrip("./")
                folder, _, base = name.rpartition("/")
                if base.startswith(".wh."):
                    files.pop(f"{folder}/{base[4:]}" if folder else base[4:], None)
                elif member.isfile() and wanted(name):
                    handle = tar.extractfile(member)
                    files[name] = handle.read() if handle and member.size < 1_000_000 else b""
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--env", action="append", help="environment variable holding a value to look for "
                        "(repeatable; default HF_TOKEN)")
    parser.add_argument("--dir", type=Path, help="scan every file under this folder instead of a tar on stdin")
    args = parser.parse_args(argv)
    secrets: dict[str, str] = {}
    for name in args.env or ["HF_TOKEN"]:
        value = os.environ.get(name, "")
        if len(value) < MIN_SECRET_LENGTH:
            print(f"error: ${name} is empty or too short to search for", file=sys.stderr)
            return 2
        secrets[name] = value
    try:
        if args.dir is not None:
            if not args.dir.is_dir():
                print(f"error: --dir {args.dir} is not a folder", file=sys.stderr)
                return 2
            hits = scan_tree(args.dir, secrets)
        else:
            hits = scan_archive(sys.stdin.buffer, secrets)
    except (tarfile.TarError, OSError, EOFError, RuntimeError) as exc:
        print(f"error: cannot read the image: {exc}", file=sys.stderr)
        return 2
    for hit in hits:
        print(f"${hit.encoding.replace(':', ' as ', 1)} found in: {hit.where}")
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
