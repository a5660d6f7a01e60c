"""The README's "runs in CI" column, checked against the tests' real skip conditions.

Every place under tests/ that can skip is listed here with the condition it skips on; for each,
the test asserts what GitHub's CI (preview.yml's test job) does about that condition, and that
the README row the file falls under says so. A new skip site fails `test_every_skip_site_is_known`
until it is added here, with its answer. ci_skips.py (run in CI) then fails the job if a test under
a "yes" row skips anyway.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.workflows.wf import ROOT, SCRIPTS, load, step_named

sys.path.insert(0, str(SCRIPTS))
import ci_skips

SKIP_CALL = re.compile(r"pytest\.skip\(|pytest\.mark\.skip\b|pytest\.mark\.skipif|importorskip\(")

# file with a skip -> (the README row it must fall under says CI runs it, why CI never meets the condition)
SKIP_SITES = {
    "tests/images/buildah.py": (True, "buildah needs root: the test command runs through sudo (CI=true fails)"),
    "tests/hf_server/conftest.py": (False, "the gpu marker needs CUDA; GitHub's hosted runners have no GPU"),
    "tests/hf_server/test_lifecycle.py": (True, "skips only when a GPU is present"),
    "tests/hf_server/test_server_process.py": (True, "skips only when a GPU is present"),
    "tests/guardrails/test_guardrails.py": (True, "detect-secrets is a locked dev dependency"),
    "tests/hf_server/test_real_models.py": (True, "skips only when a GPU is present"),
    "tests/workflows/test_image_token_scan.py": (True, "zstd ships on GitHub's ubuntu images"),
}


def _rows() -> list[ci_skips.Row]:
    rows = ci_skips.readme_rows((ROOT / "README.md").read_text())
    assert len(rows) >= 8, "the README's Testing table with its 'runs in CI' column is missing"
    return rows


def _test_job() -> dict:
    return load("preview.yml")["jobs"]["test"]


def test_every_skip_site_is_known() -> None:
    found = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")
        if SKIP_CALL.search(p.read_text()) and "tests/workflows/test_readme_ci_column.py" not in str(p)
    )
    assert found == sorted(SKIP_SITES), "a skip site was added or removed: list it in SKIP_SITES with its answer"


def test_every_test_folder_and_every_row_path_is_real() -> None:
    rows = _rows()
    # Folders that hold tests (support code and snapshots are not rows of their own).
    for folder in sorted(p for p in (ROOT / "tests").iterdir() if p.is_dir() and any(p.glob("test_*.py"))):
        rel = str(folder.relative_to(ROOT))
        assert ci_skips.row_for(rel + "/x.py", rows), f"{rel} is in no row of the README's Testing table"
    for row in rows:
        for path in row.paths:
            assert (ROOT / path).exists(), f"README row {row.what!r} names {path}, which does not exist"


@pytest.mark.parametrize("site", sorted(SKIP_SITES))
def test_the_row_of_each_skip_site_matches_ci(site: str) -> None:
    runs_in_ci, why = SKIP_SITES[site]
    row = ci_skips.row_for(site, _rows())
    if site == "tests/hf_server/conftest.py":  # its skip lands on the gpu tests, which have their own row
        row = ci_skips.row_for("tests/hf_server/test_gpu.py", _rows())
    assert row is not None and row.runs_in_ci is runs_in_ci, f"{site}: README says {row}, CI: {why}"


def test_image_builds_are_not_skipped_under_the_conditions_ci_creates(monkeypatch) -> None:
    from tests.images import buildah

    # The CI side: the test command runs as root, with nothing that switches builds off.
    run = step_named(_test_job(), "Test command as root")["run"]
    assert "sudo " in run and "make test" in run
    assert "GPU_PLATFORM_SKIP_BUILD" not in str(_test_job())
    setup = (ROOT / "scripts" / "setup.d" / "10-buildah.sh").read_text()
    assert "missing+=(buildah)" in setup and "missing+=(debootstrap)" in setup  # installed by make test
    # The test side: the real skip condition, evaluated as on that runner...
    monkeypatch.delenv("GPU_PLATFORM_SKIP_BUILD", raising=False)
    monkeypatch.setattr(buildah.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(buildah.os, "geteuid", lambda: 0)
    assert buildah.why_unavailable() is None
    # ...and as on the same runner without sudo, which is what the README row would hide.
    monkeypatch.setattr(buildah.os, "geteuid", lambda: 1001)
    assert "root" in (buildah.why_unavailable() or "")
    base = (ROOT / "tests" / "images" / "make-base.sh").read_text()
    assert 'if [ "$(id -u)" -ne 0 ]; then log "SKIP: debootstrap needs root"' in base


def test_gpu_tests_skip_on_ci_and_the_readme_says_so() -> None:
    conftest = (ROOT / "tests" / "hf_server" / "conftest.py").read_text()
    assert "if torch.cuda.is_available():\n        return" in conftest and '"gpu" in item.keywords' in conftest
    assert "pytest.mark.gpu" in (ROOT / "tests" / "hf_server" / "test_gpu.py").read_text()
    assert _test_job()["runs-on"] == "ubuntu-latest"  # no GPU on GitHub's hosted runners
    assert ci_skips.row_for("tests/hf_server/test_gpu.py", _rows()).runs_in_ci is False


def test_gpu_present_skips_never_happen_on_ci() -> None:
    for site in ("tests/hf_server/test_lifecycle.py", "tests/hf_server/test_server_process.py"):
        text = (ROOT / site).read_text()
        for m in re.finditer(r"pytest\.skip\((?P<why>[^)]*)\)", text):
            assert "a GPU is present" in m["why"], f"{site}: a skip CI could meet: {m['why']}"


def test_detect_secrets_is_installed_by_the_locked_env() -> None:
    assert re.search(r'"detect-secrets==[\d.]+"', (ROOT / "pyproject.toml").read_text())
    assert 'name = "detect-secrets"' in (ROOT / "uv.lock").read_text()


def test_the_zstd_skip_names_what_ci_has() -> None:
    # GitHub's ubuntu images ship zstd, so in GitHub CI this skip never happens (and ci_skips.py
    # fails the job if it does). No setup script installs zstd yet: see docs/ci-cd.md.
    text = (ROOT / "tests" / "workflows" / "test_image_token_scan.py").read_text()
    assert 'if zstd is None:\n        pytest.skip("the zstd program is not installed' in text


# --- ci_skips.py on real README rows ---------------------------------------------------------


@pytest.mark.parametrize(("line", "bad"), [
    ("SKIPPED [7] tests/images/test_image_leaks.py:118: buildah --isolation chroot needs root here", True),
    ("SKIPPED [3] tests/hf_server/test_gpu.py:40: no CUDA GPU: torch.cuda.is_available() is False", False),
    ("SKIPPED [1] tests/workflows/test_image_token_scan.py:44: the zstd program is not installed", True),
    ("SKIPPED [1] tests/newarea/test_x.py:3: whatever", True),
    ("PASSED tests/images/test_image_leaks.py::test_x", False),
    ("\x1b[33mSKIPPED\x1b[0m [2] tests/images/test_image_leaks.py:123: no local base image", True),
])
def test_ci_skips_judges_each_skip_by_its_row(tmp_path: Path, line: str, bad: bool) -> None:
    log = tmp_path / "make-test.log"
    log.write_text(f"== short test summary info ==\n{line}\n== 400 passed, 1 skipped in 60s ==\n")
    rc = ci_skips.main([str(log)])
    assert rc == (1 if bad else 0)


def test_ci_skips_refuses_a_readme_without_the_table(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# nothing here\n")
    (tmp_path / "log").write_text("")
    assert ci_skips.main([str(tmp_path / "log"), "--readme", str(tmp_path / "README.md")]) == 2
