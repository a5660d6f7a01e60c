"""The one image scanner (.github/scripts/scan_image_for_token.py) on folders: an OCI layout or a
container's root filesystem, as the image tests use it. Its `docker save` mode is covered, through
the workflow step itself, by tests/workflows/test_image_token_scan.py."""

from __future__ import annotations

import base64
import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
import scan_image_for_token as scanner

TOKEN = "hf_ScannerCanary0123456789abcdefXYZ"  # pragma: allowlist secret
INDEX = "pipidx-canary-00112233445566778899"  # pragma: allowlist secret
SCANNER = Path(scanner.__file__)


def rootfs(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "rootfs"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize(("data", "encoding"), [
    (f"token={TOKEN}\n".encode(), "raw"),
    (b"x" + base64.b64encode(b"auth:" + TOKEN.encode()) + b"\n", "base64"),
    (TOKEN.encode().hex().encode(), "hex"),
])
def test_every_encoding_is_found_in_a_file_of_the_tree(tmp_path: Path, data: bytes, encoding: str) -> None:
    root = rootfs(tmp_path, {"usr/bin/python": b"\x7fELF" + b"\0" * 5000, "opt/app/cfg": data})
    hits = scanner.scan_tree(root, {"HF_TOKEN": TOKEN})
    assert hits and all(h.where == "opt/app/cfg" for h in hits), hits
    assert any(h.encoding.startswith(f"HF_TOKEN:{encoding}") for h in hits), hits


def test_a_url_quoted_secret_is_found() -> None:
    secret = "pw:with/slash+plus=="  # pragma: allowlist secret
    hits = scanner.scan_bytes(b"https://bot:" + b"pw%3Awith%2Fslash%2Bplus%3D%3D" + b"@h/", {"s": secret}, "log")
    assert [h.encoding for h in hits] == ["s:url"]


def test_gzip_files_are_searched_decompressed_and_fake_gzip_raw(tmp_path: Path) -> None:
    root = rootfs(tmp_path, {"blobs/sha256/aa": gzip.compress(b"\0" * 100_000 + TOKEN.encode()),
                             "blobs/sha256/bb": b"\x1f\x8b not gzip " + INDEX.encode()})
    hits = scanner.scan_tree(root, {"hf": TOKEN, "idx": INDEX})
    assert {(h.where, h.encoding) for h in hits} == {("blobs/sha256/aa", "hf:raw"), ("blobs/sha256/bb", "idx:raw")}


def test_links_and_special_files_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text(TOKEN)
    root = rootfs(tmp_path, {"etc/hostname": b"ctr\n"})
    (root / "etc" / "link").symlink_to(outside)
    os.mkfifo(root / "etc" / "fifo")
    assert scanner.scan_tree(root, {"hf": TOKEN}) == []


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCANNER), *args], capture_output=True, text=True, timeout=60,
                          check=False, env={"PATH": os.environ["PATH"], **env})


def test_the_cli_scans_a_folder_for_every_variable_named(tmp_path: Path) -> None:
    root = rootfs(tmp_path, {"opt/a": b"clean", "opt/b": INDEX.encode()})
    clean = run_cli("--dir", str(root), "--env", "HF_TOKEN", HF_TOKEN=TOKEN)
    assert clean.returncode == 0 and clean.stdout == ""
    found = run_cli("--dir", str(root), "--env", "HF_TOKEN", "--env", "PIP_INDEX", HF_TOKEN=TOKEN, PIP_INDEX=INDEX)
    assert found.returncode == 1 and "$PIP_INDEX as raw found in: opt/b" in found.stdout
    assert TOKEN not in found.stdout + found.stderr and INDEX not in found.stdout + found.stderr


@pytest.mark.parametrize(("args", "env"), [
    (["--dir", "/nonexistent/folder"], {"HF_TOKEN": TOKEN}),
    (["--dir", "."], {}),
    (["--dir", ".", "--env", "PIP_INDEX"], {"PIP_INDEX": "short"}),
])
def test_the_cli_errors_rather_than_passes(args: list[str], env: dict[str, str]) -> None:
    assert run_cli(*args, **env).returncode == 2
