"""The HF-token scan of images.yml, run for real on synthetic `docker save` archives.

The scan step's own bash (taken from the workflow) runs with a fake `docker` on PATH that
serves the archive, history and config each test builds, so the workflow's logic, not a copy
of it, decides.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCANNER = ROOT / ".github" / "scripts" / "scan_image_for_token.py"
TOKEN = "hf_FakeTokenValue0123456789abcdef"  # pragma: allowlist secret
IMAGE = "ghcr.io/acme/gpu-platform/hf-server@sha256:" + "a" * 64

sys.path.insert(0, str(SCANNER.parent))
import scan_image_for_token as scanner


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zstd(data: bytes) -> bytes:
    zstd = shutil.which("zstd")
    if zstd is None:
        pytest.skip("the zstd program is not installed (GitHub's runners have it)")
    return subprocess.run([zstd, "-c", "-q"], input=data, capture_output=True, check=True).stdout


def _image(*layers: bytes, config: dict | None = None) -> bytes:
    """A docker-save style archive: OCI blobs for the layers and the config."""
    files = {f"blobs/sha256/{i:064d}": layer for i, layer in enumerate(layers)}
    files["blobs/sha256/" + "c" * 64] = json.dumps(config or {"config": {"Env": ["PATH=/usr/bin"]}}).encode()
    files["index.json"] = b'{"schemaVersion": 2}'
    return _tar(files)


def _scan(archive: bytes, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_TOKEN": token}
    return subprocess.run(
        [sys.executable, str(SCANNER)], input=archive, capture_output=True, env=env, check=False
    )


CLEAN_LAYER = _tar({"app/main.py": b"print('hello')\n" * 1000})
LEAKY_LAYER = _tar({"root/.cache/huggingface/token": TOKEN.encode()})


def test_a_clean_image_passes() -> None:
    assert _scan(_image(CLEAN_LAYER)).returncode == 0


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, _zstd], ids=["plain", "gzip", "zstd"])
def test_the_token_in_a_layer_is_found_whatever_the_compression(compress) -> None:
    result = _scan(_image(CLEAN_LAYER, compress(LEAKY_LAYER)))
    assert result.returncode == 1
    assert b"blobs/sha256/" + b"0" * 63 + b"1" in result.stdout
    assert TOKEN.encode() not in result.stdout + result.stderr


def test_a_token_deleted_by_a_later_layer_is_still_found() -> None:
    whiteout = _tar({"root/.cache/huggingface/.wh.token": b""})
    assert _scan(_image(gzip.compress(LEAKY_LAYER), gzip.compress(whiteout))).returncode == 1


def test_the_token_in_the_image_config_is_found() -> None:
    assert _scan(_image(CLEAN_LAYER, config={"config": {"Env": [f"HF_TOKEN={TOKEN}"]}})).returncode == 1


def test_a_token_across_two_chunks_is_found() -> None:
    needle = TOKEN.encode()
    assert scanner.contains(iter([b"x" * 10 + needle[:5], needle[5:] + b"y"]), needle)
    assert not scanner.contains(iter([b"x" * 10 + needle[:5], b"-" + needle[5:]]), needle)


def test_a_truncated_archive_is_an_error_not_a_pass() -> None:
    archive = _image(gzip.compress(_tar({"big": os.urandom(200_000)})))
    assert _scan(archive[: len(archive) // 2]).returncode == 2


def test_no_token_to_look_for_is_an_error() -> None:
    assert _scan(_image(CLEAN_LAYER), token="").returncode == 2


# --- the workflow step itself -----------------------------------------------------------------


def _scan_step() -> str:
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yml").read_text())
    return next(s["run"] for s in wf["jobs"]["attest"]["steps"] if "docker history" in s.get("run", ""))


def _run_step(
    tmp_path: Path, archive: bytes, history: str = "", token: str = TOKEN
) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "image.tar").write_bytes(archive)
    (tmp_path / "history.txt").write_text(history + "\n")
    docker = bin_dir / "docker"
    docker.write_text(
        "#!/usr/bin/env bash\n"
        'case "$1" in\n'
        "  pull) exit 0 ;;\n"
        f"  history) cat {tmp_path}/history.txt ;;\n"
        '  inspect) echo \'[{"Config": {"Env": ["PATH=/usr/bin"]}}]\' ;;\n'
        f"  save) cat {tmp_path}/image.tar ;;\n"
        "  *) exit 3 ;;\n"
        "esac\n"
    )
    docker.chmod(0o755)
    python_dir = Path(sys.executable).parent  # `python3` in the step: the venv's
    env = {
        "PATH": f"{bin_dir}:{python_dir}:{os.environ['PATH']}",
        "IMAGE": IMAGE,
        "HF_TOKEN": token,
        "RUNNER_TEMP": str(tmp_path / "runner-temp"),
        "STACK": "dev",
    }
    return subprocess.run(
        ["bash", "-c", _scan_step()], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def test_step_passes_a_clean_image(tmp_path: Path) -> None:
    result = _run_step(tmp_path, _image(CLEAN_LAYER), history="RUN /bin/sh -c pip install .")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"::add-mask::{TOKEN}" in result.stdout  # masked before anything else is printed


def test_step_fails_on_a_token_in_the_history(tmp_path: Path) -> None:
    result = _run_step(tmp_path, _image(CLEAN_LAYER), history=f"RUN /bin/sh -c echo {TOKEN} > /x")
    assert result.returncode == 1
    assert "::error title=HF token leaked into the image::found in: docker-history" in result.stdout


def test_step_fails_on_a_token_in_a_layer(tmp_path: Path) -> None:
    result = _run_step(tmp_path, _image(CLEAN_LAYER, gzip.compress(LEAKY_LAYER)))
    assert result.returncode == 1
    assert "found in: layer-contents" in result.stdout


def test_step_fails_when_the_layers_cannot_be_read(tmp_path: Path) -> None:
    result = _run_step(tmp_path, b"not a tar archive" * 100)
    assert result.returncode == 1
    assert "::error title=token scan failed::" in result.stdout


def test_step_fails_without_a_token_to_look_for(tmp_path: Path) -> None:
    result = _run_step(tmp_path, _image(LEAKY_LAYER), token="")
    assert result.returncode == 1
    assert "::error title=no HF token to scan for::" in result.stdout
    assert "environment has no HF_TOKEN secret" in result.stdout
