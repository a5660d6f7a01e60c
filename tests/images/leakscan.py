"""Find a secret anywhere in a built image: every blob of its OCI export, decompressed.

An OCI layout holds the manifest, the config (env, labels, history ``created_by``) and every
layer tarball as blobs, so scanning all of them (gzip layers decompressed) covers file
contents, file names, tar headers and metadata. Each secret is looked for raw, base64-encoded
(at all three alignments, so it is found inside a longer base64 string too), hex and URL-quoted.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def encodings(secret: str) -> dict[str, bytes]:
    raw = secret.encode()
    found = {"raw": raw, "hex": raw.hex().encode(), "url": urllib.parse.quote(secret, safe="").encode()}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        start = (shift * 8 + 5) // 6  # characters that also carry bits of the padding prefix
        end = ((shift + len(raw)) * 8) // 6  # the last character may carry padding bits
        found[f"base64+{shift}"] = encoded[start:end]
        found[f"base64url+{shift}"] = base64.urlsafe_b64encode(b"\0" * shift + raw)[start:end]
    return found


@dataclass(frozen=True)
class Hit:
    where: str
    encoding: str


def scan_bytes(data: bytes, secrets: dict[str, str], where: str) -> list[Hit]:
    hits = []
    for label, secret in secrets.items():
        for name, needle in encodings(secret).items():
            if needle and needle in data:
                hits.append(Hit(where, f"{label}:{name}"))
    return hits


def blobs(layout: Path) -> list[tuple[str, bytes]]:
    """Every blob of an OCI layout (plus index.json), decompressed when gzip."""
    out = [("index.json", (layout / "index.json").read_bytes())]
    for blob in sorted((layout / "blobs").rglob("*")):
        if not blob.is_file():
            continue
        data = blob.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        out.append((f"blob {blob.name[:12]}", data))
    return out


def scan_layout(layout: Path, secrets: dict[str, str]) -> list[Hit]:
    hits: list[Hit] = []
    for where, data in blobs(layout):
        hits += scan_bytes(data, secrets, where)
    return hits


def image_files(layout: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The image's regular files whose path is ``wanted`` (later layers win): what a step recorded."""
    index = json.loads((layout / "index.json").read_text())
    manifest = _blob(layout, index["manifests"][0]["digest"])
    files: dict[str, bytes] = {}
    for layer in json.loads(manifest)["layers"]:
        data = _blob(layout, layer["digest"])
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                name = member.name.lstrip("./")
                base = name.rsplit("/", 1)[-1]
                if base.startswith(".wh."):
                    files.pop(name.rsplit("/", 1)[0] + "/" + base[4:] if "/" in name else base[4:], None)
                elif member.isfile() and wanted(name):
                    handle = tar.extractfile(member)
                    files[name] = handle.read() if handle and member.size < 1_000_000 else b""
    return files


def config(layout: Path) -> dict:
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(_blob(layout, index["manifests"][0]["digest"]))
    return json.loads(_blob(layout, manifest["config"]["digest"]))


def fingerprint(secret: str, length: int = 12) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:length]


def _blob(layout: Path, digest: str) -> bytes:
    algo, _, value = digest.partition(":")
    return (layout / "blobs" / algo / value).read_bytes()
