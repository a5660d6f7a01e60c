"""A real buildah build of images/hub-gateway/Dockerfile on a local base tagged with its FROM names.

Nothing can be pulled here, so tests/images' debootstrap base (Debian 12, Python 3.11, like the
distroless python3-debian12 runtime) is imported under every name the Dockerfile's FROM lines
use. The build gets no secret (none is needed; only the optional CA bundle of this machine's
egress proxy, as the leak test passes it); the built image must run the gateway as a non-root user.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.images.buildah import (
    REPO,
    Buildah,
    Unavailable,
    base_tarball,
    external_bases,
    host_ca_bundle,
    normalise,
    require_tool_or_skip,
    why_unavailable,
)

pytestmark = [pytest.mark.build, pytest.mark.slow, pytest.mark.timeout(1800)]

DOCKERFILE = REPO / "images" / "hub-gateway" / "Dockerfile"
CONTEXT = REPO / "images"
TAG = "localhost/test-hub-gateway"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Buildah, dict]]:
    # Under CI=true a missing tool fails instead of skipping (tests/images/buildah.py).
    reason = why_unavailable()
    if reason:
        require_tool_or_skip(reason)
    try:
        tarball = base_tarball()
    except Unavailable as exc:
        require_tool_or_skip(str(exc))
    workdir = Path(tmp_path_factory.mktemp("buildah-gw"))
    bah = Buildah(workdir)
    try:
        bah.import_rootfs(tarball, sorted({normalise(b) for b in external_bases(DOCKERFILE)}))
        # Only the optional pip_ca (this machine's egress proxy CA, as the leak test passes it).
        ca = host_ca_bundle()
        done = bah.build(CONTEXT, DOCKERFILE, TAG, secrets={"pip_ca": ca} if ca else {}, layers=False)
        assert done.returncode == 0, f"the build failed:\n{done.log[-6000:]}"
        _, inspect = bah.inspect(TAG)
        yield bah, inspect
    finally:
        bah.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_final_stage_is_distroless_and_the_build_needs_no_secret():
    bases = external_bases(DOCKERFILE)
    assert bases[-1].startswith("gcr.io/distroless/python3-debian12"), bases
    assert "required=true" not in DOCKERFILE.read_text()


def test_image_runs_as_non_root_with_the_gateway_entrypoint(built):
    _, inspect = built
    config = inspect["OCIv1"]["config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/usr/bin/python3.11", "-m", "hub_gateway"]
    assert "8080/tcp" in config.get("ExposedPorts", {})
    assert not [e for e in config.get("Env", []) if e.split("=", 1)[0] in ("HF_TOKEN", "AWS_SECRET_ACCESS_KEY")]


def test_the_installed_gateway_starts_and_refuses_bad_settings_in_one_line(built):
    bah, _ = built
    ctr = bah.run("from", "--pull=never", TAG).stdout.strip()
    try:
        # The entrypoint's interpreter, as the image's user, with the image's PYTHONPATH: every
        # module imports; without settings the gateway exits 2 with one line naming the variable.
        done = bah.run("run", "--isolation", "chroot", "--user", "65532:65532", ctr, "--",
                       "/usr/bin/python3.11", "-m", "hub_gateway", check=False)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "S3_BUCKET" in done.stderr and "Traceback" not in done.stderr
        imports = bah.run("run", "--isolation", "chroot", "--user", "65532:65532", ctr, "--", "/usr/bin/python3.11",
                          "-c", "import hub_gateway.app, hub_gateway.__main__, uvicorn; print('ok')", check=False)
        assert imports.returncode == 0 and imports.stdout.strip() == "ok", imports.stderr
    finally:
        bah.run("rm", ctr, check=False)
