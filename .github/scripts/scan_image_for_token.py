#!/usr/bin/env python3
"""Look for a secret value anywhere in an image: `docker save IMAGE | scan_image_for_token.py`.

The value comes from the environment variable named by --env (default HF_TOKEN), never from
the command line. Every file of the `docker save` archive is searched: the config, the
manifests and each layer, decompressed when it is gzip or zstd (the containerd image store
keeps layers compressed), so a token written in one layer and deleted in a later one is still
found. Streams throughout: no layer is written to disk.

Exit 0: not found. 1: found (the archive members are named; the value never is). 2: error.
Standard library only, plus the `zstd` program for zstd layers.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from typing import IO

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def contains(chunks: Iterator[bytes], needle: bytes) -> bool:
    """Whether the concatenated chunks contain needle (it may straddle two chunks)."""
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        if needle in window:
            return True
        tail = window[-(len(needle) - 1) :] if len(needle) > 1 else b""
    return False


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
    """The member's bytes, decompressed if it is a gzip or zstd blob."""
    head = member.read(4)
    if head.startswith(GZIP_MAGIC):
        with gzip.GzipFile(fileobj=_Prefixed(head, member)) as plain:  # type: ignore[arg-type]
            yield from _chunks(plain)
    elif head.startswith(ZSTD_MAGIC):
        yield from _zstd_chunks(member, head)
    else:
        yield head
        yield from _chunks(member)


def scan(archive: IO[bytes], needle: bytes) -> list[str]:
    """Names of the archive members that contain needle."""
    hits: list[str] = []
    with tarfile.open(fileobj=archive, mode="r|") as tar:
        for info in tar:
            if not info.isfile():
                continue
            member = tar.extractfile(info)
            if member is not None and contains(member_chunks(member), needle):
                hits.append(info.name)
    return hits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--env", default="HF_TOKEN", help="environment variable holding the value to look for"
    )
    args = parser.parse_args(argv)
    value = os.environ.get(args.env, "")
    if len(value) < 8:
        print(f"error: ${args.env} is empty or too short to search for", file=sys.stderr)
        return 2
    try:
        hits = scan(sys.stdin.buffer, value.encode())
    except (tarfile.TarError, OSError, EOFError, RuntimeError) as exc:
        print(f"error: cannot read the image archive: {exc}", file=sys.stderr)
        return 2
    if hits:
        print(f"${args.env} found in: {', '.join(hits)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
