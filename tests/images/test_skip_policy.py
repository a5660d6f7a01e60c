"""Under CI=true the image builds fail instead of skipping when buildah cannot run (issue: a skip does
not fail a CI job, so CI could silently stop running what the README says it runs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.images import buildah


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_a_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="CI=true and the image builds cannot run: buildah is gone"):
        buildah.require_tool_or_skip("buildah is gone")


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_a_missing_tool_skips_elsewhere(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="buildah is gone"):
        buildah.require_tool_or_skip("buildah is gone")


def test_nothing_happens_when_the_tool_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    buildah.require_tool_or_skip(None)


def test_every_reason_to_skip_is_one_ci_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("GPU_PLATFORM_SKIP_BUILD", "1")  # even the explicit opt-out
    with pytest.raises(pytest.fail.Exception):
        buildah.require_tool_or_skip(buildah.why_unavailable())
    monkeypatch.delenv("GPU_PLATFORM_SKIP_BUILD")
    monkeypatch.setenv("PATH", "/nonexistent")
    reason = buildah.why_unavailable()
    assert reason is not None and "buildah is not installed" in reason
    with pytest.raises(pytest.fail.Exception):
        buildah.require_tool_or_skip(reason)


@pytest.mark.parametrize(("ci", "rc", "says"), [("true", 1, "ERROR: "), ("", 0, "SKIP: ")])
def test_setup_refuses_to_leave_ci_without_buildah(tmp_path: Path, ci: str, rc: int, says: str) -> None:
    """scripts/setup.d/10-buildah.sh where nothing can install buildah (no buildah, no apt-get on PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").symlink_to(shutil.which("id"))
    done = subprocess.run([shutil.which("bash"), str(buildah.REPO / "scripts/setup.d/10-buildah.sh")],
                          capture_output=True, text=True, timeout=30, check=False,
                          env={"PATH": str(bin_dir), "CI": ci})
    assert done.returncode == rc, done.stdout + done.stderr
    assert says in done.stdout and "buildah debootstrap zstd missing" in done.stdout
