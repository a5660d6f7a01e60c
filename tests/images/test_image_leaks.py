"""Real builds of the real Dockerfiles with canary secrets, then a hunt for the canaries.

For each platform image (model-cache, hf-server), with buildah (chroot isolation, vfs storage)
on a local debootstrap base tagged with the Dockerfile's FROM name (nothing can be pulled here):

1. a build WITHOUT the ``hf_token`` secret fails at the ``required=true`` step;
2. a build with canary secrets (``hf_token``, and ``pip_index`` pointing pip at a loopback index
   that records the credentials it is sent) succeeds;
3. the step that needed the token recorded sha256(canary)[:12] (the secret reached it), and pip
   really sent the ``pip_index`` credentials (that secret reached its step too);
4. no canary, raw / base64 / hex / URL-quoted, is in any blob of the image's OCI export (every
   layer tarball, the manifest, the config with env, labels and history ``created_by``), in
   ``buildah inspect``, or in the build log; no env var, label or history entry names a secret.

Skips (reason printed) only where buildah cannot run: not installed, or not root.
"""

from __future__ import annotations

import base64
import dataclasses
import http.server
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest

from components.config.images import PLATFORM_IMAGES, ImageSpec
from tests.images import leakscan
from tests.images.buildah import (
    REPO,
    Build,
    Buildah,
    Unavailable,
    base_tarball,
    external_bases,
    normalise,
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


def host_ca_bundle() -> Path | None:
    """The CA bundle this machine's pip trusts (it may hold an egress proxy's CA), if any."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"),
                      "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@dataclass
class Built:
    case: ImageSpec
    missing_secret: Build
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
    reason = why_unavailable()
    if reason:
        print(f"SKIP image builds: {reason}")
        pytest.skip(reason)
    try:
        tarball = base_tarball()
    except Unavailable as exc:
        print(f"SKIP image builds: {exc}")
        pytest.skip(str(exc))
    workdir = Path(tmp_path_factory.mktemp("buildah"))
    bah = Buildah(workdir)
    tags = sorted({normalise(b) for case in CASES for b in external_bases(dockerfile_path(case), case.build_args)})
    bah.import_rootfs(tarball, tags)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordingIndex)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    canaries = {"hf_token": f"hf_canary_{secrets.token_hex(16)}",
                "pip_index": f"pipidx-canary-{secrets.token_hex(12)}"}
    secret_dir = workdir / "secrets"
    secret_dir.mkdir(mode=0o700)
    files = {"hf_token": secret_dir / "hf_token", "pip_index": secret_dir / "pip_index.env"}
    files["hf_token"].write_text(canaries["hf_token"])
    files["pip_index"].write_text(
        f"PIP_EXTRA_INDEX_URL=http://ci-bot:{canaries['pip_index']}@127.0.0.1:{port}/simple/\n")
    ca_bundle = host_ca_bundle()
    if ca_bundle is not None:  # an egress proxy with its own CA: the optional pip_ca secret carries it
        files["pip_ca"] = ca_bundle
    try:
        yield Session(bah, workdir, canaries, files, port)
    finally:
        server.shutdown()
        bah.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def built(session: Session, case: ImageSpec) -> Built:
    """Build once per session: first without hf_token (must fail), then with every canary."""
    if case.name in session.built:
        return session.built[case.name]
    context = REPO / case.context
    _RecordingIndex.seen = []
    # No layer cache (--layers=false): a cached RUN step skips buildah's required-secret check
    # (seen with buildah 1.28), and with vfs storage a commit per step is slower than rebuilding.
    missing = session.buildah.build(context, dockerfile_path(case), f"localhost/leaktest-{case.name}-nosecret",
                                    secrets={k: v for k, v in session.secret_files.items() if k != "hf_token"},
                                    build_args=case.build_args, layers=False)
    good = session.buildah.build(context, dockerfile_path(case), f"localhost/leaktest-{case.name}",
                                 secrets=session.secret_files, build_args=case.build_args, layers=False)
    assert good.returncode == 0, f"build of {case.name} with its secrets failed:\n{good.log[-6000:]}"
    layout = session.buildah.export_oci(good.image, session.workdir / f"oci-{case.name}")
    text, data = session.buildah.inspect(good.image)
    result = Built(case, missing, good, layout, text, data, list(_RecordingIndex.seen))
    session.built[case.name] = result
    return result


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def image(request: pytest.FixtureRequest, session: Session) -> Built:
    return built(session, request.param)


def test_build_fails_without_the_required_hf_token(image: Built) -> None:
    assert image.missing_secret.returncode != 0, "the build succeeded without the hf_token secret"
    assert re.search(r"secret required but no secret with id hf_token", image.missing_secret.log), \
        image.missing_secret.log[-3000:]


def test_the_token_reached_the_step_that_needs_it(image: Built, session: Session) -> None:
    recorded = leakscan.image_files(image.layout, lambda p: p.endswith("build-info/hf_token.sha256-prefix"))
    assert recorded, f"{image.case.name}: no build-info/hf_token.sha256-prefix file in the image"
    expected = leakscan.fingerprint(session.canaries["hf_token"])
    for path, content in recorded.items():
        assert content.decode().strip() == expected, f"{path}: {content!r} is not sha256(canary)[:12]"


def test_the_pip_index_secret_reached_the_install_step(image: Built, session: Session) -> None:
    assert "id=pip_index" in dockerfile_path(image.case).read_text()
    assert f"ci-bot:{session.canaries['pip_index']}" in image.index_credentials, (
        f"pip never sent the pip_index credentials to the loopback index (saw {len(image.index_credentials)} "
        "authenticated requests)")


def test_no_canary_in_any_layer_the_manifest_or_the_config(image: Built, session: Session) -> None:
    hits = leakscan.scan_layout(image.layout, session.canaries)
    assert not hits, f"{image.case.name}: secret found in the image export: {hits}"
    # The scan really reads layers: it finds what the token step recorded.
    assert leakscan.scan_layout(image.layout, {"fp": leakscan.fingerprint(session.canaries["hf_token"])})


def test_no_canary_in_buildah_inspect_or_the_build_logs(image: Built, session: Session) -> None:
    for where, text in (("buildah inspect", image.inspect_text), ("build log", image.build.log),
                        ("failed build log", image.missing_secret.log)):
        hits = leakscan.scan_bytes(text.encode(), session.canaries, where)
        assert not hits, f"{image.case.name}: secret found in {where}: {hits}"


def test_config_env_labels_and_history_hold_no_secret_material(image: Built) -> None:
    config = leakscan.config(image.layout)
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
    config = leakscan.config(image.layout)["config"]
    assert config.get("User") not in (None, "", "root", "0", "0:0"), config.get("User")
    labels = config.get("Labels") or {}
    for key in ("org.opencontainers.image.source", "org.opencontainers.image.revision",
                "org.opencontainers.image.title"):
        assert key in labels, f"{image.case.name}: missing OCI label {key}"
