"""Real builds of the real Dockerfiles with canary secrets, then a hunt for the canaries.

For each platform image (model-cache, hf-server), with buildah (chroot isolation, vfs storage)
on a local debootstrap base tagged with the Dockerfile's FROM name (nothing can be pulled here):

1. model-cache builds WITHOUT the ``hf_token`` secret (it needs none); hf-server asked to
   prefetch a model without it fails at once, naming the secret and the command that provides it;
2. a build with its canary secrets (hf-server: ``hf_token``; both: ``pip_index`` pointing pip at
   a loopback index that records the credentials it is sent) succeeds;
3. the step that takes the token recorded sha256(canary)[:12] (the secret reached it), and pip
   really sent the ``pip_index`` credentials (that secret reached its step too);
4. no canary, raw / base64 / hex / URL-quoted, is in any blob of the image's OCI export (every
   layer tarball, the manifest, the config with env, labels and history ``created_by``), in
   ``buildah inspect``, or in the build log; no env var, label or history entry names a secret;
5. a container started from the image has nothing under ``/run/secrets``, no canary in its
   environment, and none in any file of its root filesystem.

The image is read with the scanner CI uses (.github/scripts/scan_image_for_token.py).
Skips (reason printed) only where buildah cannot run: not installed, or not root; under
``CI=true`` that is a failure instead (``require_tool_or_skip``).
"""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import re
import secrets
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
import scan_image_for_token as scanner

from components.config.images import PLATFORM_IMAGES, ImageSpec
from scripts.lint_secrets import HF_TOKEN_SECRET, PIP_CA_SECRET, PIP_INDEX_SECRET
from tests.images.buildah import (
    REPO,
    Build,
    Buildah,
    Unavailable,
    base_tarball,
    external_bases,
    host_ca_bundle,
    normalise,
    require_tool_or_skip,
    why_unavailable,
)

pytestmark = [pytest.mark.build, pytest.mark.slow, pytest.mark.timeout(2400)]


#: What the leak test adds to the images Pulumi builds: the real Dockerfile.hf with its light
#: requirements (no torch/CUDA wheels in a unit test). Every image in PLATFORM_IMAGES is tested.
TEST_BUILD_ARGS: dict[str, dict[str, str]] = {"hf-server": {"REQUIREMENTS": "requirements-buildtest.txt"}}
CASES = tuple(
    dataclasses.replace(spec, build_args={**spec.build_args, **TEST_BUILD_ARGS.get(spec.name, {})})
    for spec in PLATFORM_IMAGES
)


#: The images whose build takes the Hugging Face token (hf-server: only to prefetch a model). Every
#: other image is built without it, which proves it needs none.
TAKES_HF_TOKEN = {"hf-server"}
#: How to make a build that needs the token, to check that it fails at once without it.
NEEDS_HF_TOKEN_ARGS = {"hf-server": {"PREFETCH_MODEL": "acme/tiny-model"}}


def dockerfile_path(case: ImageSpec) -> Path:
    return REPO / case.dockerfile


class _RecordingIndex(http.server.BaseHTTPRequestHandler):
    """A package index that knows no package (404) but records the Basic credentials pip sends."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            type(self).seen.append(base64.b64decode(auth[6:]).decode(errors="replace"))
            self.send_response(404)
        else:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="canary"')
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Built:
    case: ImageSpec
    missing_secret: Build | None
    build: Build
    layout: Path
    inspect_text: str
    inspect: dict
    index_credentials: list[str]


@dataclass
class Session:
    buildah: Buildah
    workdir: Path
    canaries: dict[str, str]
    secret_files: dict[str, Path]
    index_port: int
    built: dict[str, Built] = field(default_factory=dict)


@pytest.fixture(scope="session")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    require_tool_or_skip(why_unavailable())
    try:
        tarball = base_tarball()
    except Unavailable as exc:
        require_tool_or_skip(str(exc))
        raise
    workdir = Path(tmp_path_factory.mktemp("buildah"))
    bah = Buildah(workdir)
    tags = sorted({normalise(b) for case in CASES for b in external_bases(dockerfile_path(case), case.build_args)})
    bah.import_rootfs(tarball, tags)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordingIndex)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    canaries = {HF_TOKEN_SECRET: f"hf_canary_{secrets.token_hex(16)}",
                PIP_INDEX_SECRET: f"pipidx-canary-{secrets.token_hex(12)}"}
    secret_dir = workdir / "secrets"
    secret_dir.mkdir(mode=0o700)
    files = {HF_TOKEN_SECRET: secret_dir / "hf_token", PIP_INDEX_SECRET: secret_dir / "pip_index.env"}
    files[HF_TOKEN_SECRET].write_text(canaries[HF_TOKEN_SECRET])
    # Env-style, as teams write it: a comment, `export`, quotes, and a line the parser must ignore.
    files[PIP_INDEX_SECRET].write_text(
        "# private index for the build\n"
        f'export PIP_EXTRA_INDEX_URL="http://ci-bot:{canaries[PIP_INDEX_SECRET]}@127.0.0.1:{port}/simple/"\n'
        "PIP_TIMEOUT=$(touch /tmp/pip-index-was-executed)\n")
    ca_bundle = host_ca_bundle()
    if ca_bundle is not None:  # an egress proxy with its own CA: the optional pip_ca secret carries it
        files[PIP_CA_SECRET] = ca_bundle
    try:
        yield Session(bah, workdir, canaries, files, port)
    finally:
        server.shutdown()
        bah.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def built(session: Session, case: ImageSpec) -> Built:
    """Build once per session: where a build can need the token, first without it (must fail),
    then with the image's canaries (model-cache: no hf_token at all)."""
    if case.name in session.built:
        return session.built[case.name]
    context = REPO / case.context
    without_token = {k: v for k, v in session.secret_files.items() if k != HF_TOKEN_SECRET}
    # No layer cache (--layers=false): a cached RUN step skips buildah's required-secret check
    # (seen with buildah 1.28), and with vfs storage a commit per step is slower than rebuilding.
    missing = None
    if case.name in NEEDS_HF_TOKEN_ARGS:
        missing = session.buildah.build(context, dockerfile_path(case), f"localhost/leaktest-{case.name}-nosecret",
                                        secrets=without_token, layers=False,
                                        build_args={**case.build_args, **NEEDS_HF_TOKEN_ARGS[case.name]})
    _RecordingIndex.seen = []
    good = session.buildah.build(context, dockerfile_path(case), f"localhost/leaktest-{case.name}",
                                 secrets=session.secret_files if case.name in TAKES_HF_TOKEN else without_token,
                                 build_args=case.build_args, layers=False)
    assert good.returncode == 0, f"build of {case.name} with its secrets failed:\n{good.log[-6000:]}"
    layout = session.buildah.export_oci(good.image, session.workdir / f"oci-{case.name}")
    text, data = session.buildah.inspect(good.image)
    result = Built(case, missing, good, layout, text, data, list(_RecordingIndex.seen))
    session.built[case.name] = result
    return result


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def image(request: pytest.FixtureRequest, session: Session) -> Built:
    return built(session, request.param)


def test_a_build_that_needs_the_token_fails_at_once_naming_it(image: Built) -> None:
    if image.missing_secret is None:
        assert image.case.name not in TAKES_HF_TOKEN
        assert HF_TOKEN_SECRET not in dockerfile_path(image.case).read_text(), \
            f"{image.case.name} built without {HF_TOKEN_SECRET}, so its Dockerfile must not mount it"
        return
    log = image.missing_secret.log
    assert image.missing_secret.returncode != 0, f"{image.case.name} prefetched a model without {HF_TOKEN_SECRET}"
    assert f"needs the build secret {HF_TOKEN_SECRET}" in log and f"--secret id={HF_TOKEN_SECRET}" in log, log[-3000:]
    assert "pip install" not in log.split(f"needs the build secret {HF_TOKEN_SECRET}")[-1], "it did not stop at once"


def test_the_token_reached_the_step_that_takes_it(image: Built, session: Session) -> None:
    recorded = scanner.image_files(image.layout, lambda p: p.endswith("build-info/hf_token.sha256-prefix"))
    if image.case.name not in TAKES_HF_TOKEN:
        assert not recorded, f"{image.case.name} recorded a token it was never given: {sorted(recorded)}"
        return
    assert recorded, f"{image.case.name}: no build-info/hf_token.sha256-prefix file in the image"
    expected = scanner.fingerprint(session.canaries[HF_TOKEN_SECRET])
    for path, content in recorded.items():
        assert content.decode().strip() == expected, f"{path}: {content!r} is not sha256(canary)[:12]"


def test_the_pip_index_secret_reached_the_install_step(image: Built, session: Session) -> None:
    assert f"id={PIP_INDEX_SECRET}" in dockerfile_path(image.case).read_text()
    assert f"ci-bot:{session.canaries[PIP_INDEX_SECRET]}" in image.index_credentials, (
        f"pip never sent the pip_index credentials to the loopback index (saw {len(image.index_credentials)} "
        "authenticated requests)")
    # The env-style file is parsed, not sourced: its `$(...)` line ran nothing, and was reported by number.
    assert "pip_index: line 3 ignored" in image.build.log


def test_no_canary_in_any_layer_the_manifest_or_the_config(image: Built, session: Session) -> None:
    hits = scanner.scan_tree(image.layout, session.canaries)
    assert not hits, f"{image.case.name}: secret found in the image export: {hits}"
    # The scan really reads layers: it finds the program's own code in them.
    assert scanner.scan_tree(image.layout, {"code": "def main("})


def test_no_canary_in_buildah_inspect_or_the_build_logs(image: Built, session: Session) -> None:
    logs = [("buildah inspect", image.inspect_text), ("build log", image.build.log)]
    if image.missing_secret is not None:
        logs.append(("failed build log", image.missing_secret.log))
    for where, text in logs:
        hits = scanner.scan_bytes(text.encode(), session.canaries, where)
        assert not hits, f"{image.case.name}: secret found in {where}: {hits}"


def test_a_container_of_the_image_holds_no_secret(image: Built, session: Session) -> None:
    env, run_secrets, rootfs, ctr = session.buildah.container_view(image.build.image)
    try:
        assert run_secrets == "", f"{image.case.name}: /run/secrets in a container holds {run_secrets.split()}"
        assert "PATH=" in env, env  # the probe really ran inside the container
        assert not scanner.scan_bytes(env.encode(), session.canaries, "container env")
        hits = scanner.scan_tree(rootfs, session.canaries)
        assert not hits, f"{image.case.name}: secret found in the container's files: {hits}"
        # The walk really reads the image's files: it finds the server/program code.
        assert scanner.scan_tree(rootfs / "opt", {"code": "def main("})
    finally:
        session.buildah.remove(ctr)


def test_config_env_labels_and_history_hold_no_secret_material(image: Built) -> None:
    config = scanner.config(image.layout)
    env = config["config"].get("Env") or []
    secretish = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|API_?KEY|AUTH)", re.IGNORECASE)
    assert not [e for e in env if secretish.search(e.split("=", 1)[0])], env
    assert not [k for k in (config["config"].get("Labels") or {}) if secretish.search(k)]
    for entry in config.get("history", []):
        created_by = entry.get("created_by", "")
        # A secret id may appear only as a mount id, never as an argument or variable with a value.
        assert not re.search(r"(?i)\b(hf_token|pip_index)=", created_by.replace("id=hf_token", "")
                             .replace("id=pip_index", "")), created_by


def test_image_runs_as_non_root_with_oci_labels(image: Built) -> None:
    config = scanner.config(image.layout)["config"]
    assert config.get("User") not in (None, "", "root", "0", "0:0"), config.get("User")
    labels = config.get("Labels") or {}
    for key in ("org.opencontainers.image.source", "org.opencontainers.image.revision",
                "org.opencontainers.image.title"):
        assert key in labels, f"{image.case.name}: missing OCI label {key}"


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_hf_server_image_answers_its_probes(session: Session) -> None:
    """The built image's own entrypoint module serves /livez (200) and /readyz (503, with why) on a
    loopback port: the light test image has no torch, which is exactly a model that cannot load."""
    image = built(session, next(c for c in CASES if c.name == "hf-server"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctr = session.buildah.run("from", "--pull=never", image.build.image).stdout.strip()
    # `timeout`: the server stops by itself even if this test dies first; --foreground keeps it in the
    # process group that stop() signals (plain `timeout` makes a group of its own).
    server = session.buildah.start(ctr, {"HOST": "127.0.0.1", "PORT": str(port), "MODEL_PATH": "/tmp"},
                                   ["timeout", "--foreground", "90", "python", "-m", "hf_server"])
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                live = _get(f"http://127.0.0.1:{port}/livez")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (server.stdout.read()
                                                                              if server.poll() is not None else "")
                time.sleep(0.5)
        assert live == (200, {"status": "alive"})
        deadline = time.monotonic() + 30
        while (ready := _get(f"http://127.0.0.1:{port}/readyz"))[1]["status"] == "loading":
            assert time.monotonic() < deadline, ready
            time.sleep(0.2)
        assert ready[0] == 503 and ready[1]["status"] == "error", ready
        health = _get(f"http://127.0.0.1:{port}/health")
        assert health[0] == 503 and health[1]["error"] == ready[1]["error"]
        assert "config.json" in ready[1]["error"] or "torch" in ready[1]["error"], ready
        assert _get(f"http://127.0.0.1:{port}/livez")[0] == 200, "a model that cannot load must not fail liveness"
    finally:
        session.buildah.stop(server)
        session.buildah.remove(ctr)
