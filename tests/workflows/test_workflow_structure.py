"""Structure of the CI/CD workflows: the promises docs/ci-cd.md makes, pinned.

Pinned actions, least-privilege permissions, concurrency, prod behind its environment, no
secrets or event data spliced into shell scripts, and the image path (up builds, images.yml
only signs/attests/scans what up pushed).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PULUMI_ACTION = "pulumi/actions"

USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?:\s+#\s*(?P<comment>.*))?$")
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"^v\d+\.\d+\.\d+$")


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _on(wf: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    return wf.get("on", wf.get(True))


def _all() -> dict[str, dict[str, Any]]:
    return {p.name: _load(p.name) for p in sorted(WORKFLOWS.glob("*.yml"))}


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def _uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def _pulumi_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _steps(job) if _uses(s, PULUMI_ACTION)]


WRITE_SCOPES_ALLOWED = {
    # (workflow, job): scopes that job may write, and why (see docs/ci-cd.md)
    ("preview.yml", "preview"): {"pull-requests"},  # the preview comment
    ("up.yml", "images-dev"): {"packages", "id-token", "attestations"},  # calls images.yml
    ("up.yml", "images-prod"): {"packages", "id-token", "attestations"},
    ("images.yml", "attest"): {"packages", "id-token", "attestations"},
}


# --- pinning ----------------------------------------------------------------------------


def _uses_lines() -> list[tuple[str, int, str, str | None]]:
    out = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if m := USES_LINE.match(line):
                out.append((path.name, n, m["ref"], m["comment"]))
    return out


def test_every_action_is_pinned_to_a_commit_sha_with_its_version() -> None:
    lines = _uses_lines()
    assert lines
    for name, n, ref, comment in lines:
        if ref.startswith("./"):
            assert ref.startswith("./.github/workflows/"), f"{name}:{n}: local uses {ref}"
            continue
        assert PINNED.match(ref), f"{name}:{n}: {ref} is not pinned to a 40-hex commit SHA"
        assert comment and VERSION_COMMENT.match(comment.strip()), (
            f"{name}:{n}: {ref} lacks a '# vX.Y.Z' comment"
        )


def test_one_action_one_sha_across_workflows() -> None:
    seen: dict[str, tuple[str, str]] = {}
    for name, n, ref, comment in _uses_lines():
        if m := PINNED.match(ref):
            pin = (m["sha"], (comment or "").strip())
            assert seen.setdefault(m["action"], pin) == pin, f"{name}:{n}: {m['action']} pinned differently"


def test_docs_list_every_pin() -> None:
    docs = (ROOT / "docs" / "ci-cd.md").read_text()
    for _, _, ref, comment in _uses_lines():
        if m := PINNED.match(ref):
            row = f"| {m['action']} | {(comment or '').strip()} | `{m['sha']}` |"
            assert row in docs, f"docs/ci-cd.md pinned-actions table lacks: {row}"


# --- permissions ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["preview.yml", "up.yml", "images.yml"])
def test_workflow_default_permissions_are_read_only(name: str) -> None:
    assert _load(name)["permissions"] == {"contents": "read"}


def test_write_permissions_only_where_needed() -> None:
    for name, wf in _all().items():
        for job_id, job in wf["jobs"].items():
            perms = job.get("permissions", {})
            assert isinstance(perms, dict), f"{name}/{job_id}: permissions must be a mapping"
            writes = {scope for scope, level in perms.items() if level == "write"}
            allowed = WRITE_SCOPES_ALLOWED.get((name, job_id), set())
            assert writes <= allowed, f"{name}/{job_id} writes {writes - allowed}"
            assert perms.get("contents", "read") == "read", f"{name}/{job_id} may write contents"


def test_only_the_commenting_job_may_write_pull_requests() -> None:
    for name, wf in _all().items():
        for job_id, job in wf["jobs"].items():
            comments = any(
                str(s.get("with", {}).get("comment-on-pr", "")).lower() == "true" for s in _steps(job)
            )
            writes_prs = job.get("permissions", {}).get("pull-requests") == "write"
            assert comments == writes_prs, f"{name}/{job_id}: pull-requests: write iff it comments"


# --- no injection -------------------------------------------------------------------------


def test_no_expressions_inside_run_scripts() -> None:
    """Secrets, event data and inputs reach shell scripts only through env: variables."""
    for name, wf in _all().items():
        for job_id, job in wf["jobs"].items():
            for step in _steps(job):
                script = step.get("run", "")
                assert "${{" not in script, f"{name}/{job_id}/{step.get('name')}: expression inside run:"


def test_secrets_are_never_passed_wholesale() -> None:
    for name in ("preview.yml", "up.yml", "images.yml"):
        text = (WORKFLOWS / name).read_text()
        assert "secrets: inherit" not in text
        assert "toJSON(secrets)" not in text.replace(" ", "")


def test_checkouts_do_not_persist_credentials() -> None:
    for name, wf in _all().items():
        for job_id, job in wf["jobs"].items():
            for step in _steps(job):
                if _uses(step, "actions/checkout"):
                    assert step.get("with", {}).get("persist-credentials") is False, f"{name}/{job_id}"


def test_every_job_has_a_timeout() -> None:
    for name, wf in _all().items():
        for job_id, job in wf["jobs"].items():
            if "uses" in job:  # a reusable-workflow call: its own jobs carry timeouts
                continue
            assert isinstance(job.get("timeout-minutes"), int), f"{name}/{job_id} has no timeout-minutes"


# --- preview.yml ----------------------------------------------------------------------------


def test_preview_runs_on_pull_requests_with_one_cancelling_group_per_pr() -> None:
    wf = _load("preview.yml")
    assert set(_on(wf)) == {"pull_request"}
    assert "github.event.pull_request.number" in wf["concurrency"]["group"]
    assert wf["concurrency"]["cancel-in-progress"] is True


def test_preview_runs_the_test_command_and_both_offline_plans() -> None:
    runs = [s.get("run", "") for s in _steps(_load("preview.yml")["jobs"]["test"])]
    assert "make test" in runs
    assert "make plan STACK=dev" in runs
    assert "make plan STACK=prod" in runs


def test_preview_previews_dev_and_prod_and_comments_on_the_pr() -> None:
    job = _load("preview.yml")["jobs"]["preview"]
    assert job["needs"] == "test"
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    (step,) = _pulumi_steps(job)
    assert step["with"]["command"] == "preview"
    assert "matrix.stack" in step["with"]["stack-name"]
    assert step["with"]["comment-on-pr"] is True
    env = step["env"]
    assert env["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    assert env["CIVO_TOKEN"] == "${{ secrets.CIVO_TOKEN }}"
    assert env["GITHUB_TOKEN"] == "${{ secrets.GH_PROVIDER_TOKEN }}"


def test_fork_prs_skip_the_preview_and_say_why() -> None:
    jobs = _load("preview.yml")["jobs"]
    same_repo = "github.event.pull_request.head.repo.full_name == github.repository"
    assert jobs["preview"]["if"] == same_repo
    skipped = jobs["preview-skipped"]
    assert skipped["if"] == same_repo.replace("==", "!=")
    script = " ".join(s.get("run", "") for s in _steps(skipped))
    assert "::notice" in script and "GITHUB_STEP_SUMMARY" in script and "no secrets" in script


# --- up.yml ------------------------------------------------------------------------------------


def test_up_runs_on_push_to_main_and_by_hand_with_a_refresh_option() -> None:
    on = _on(_load("up.yml"))
    assert on["push"] == {"branches": ["main"]}
    refresh = on["workflow_dispatch"]["inputs"]["refresh"]
    assert refresh["type"] == "boolean" and refresh["default"] is False


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_up_updates_each_stack_in_its_own_uncancellable_group(stack: str) -> None:
    job = _load("up.yml")["jobs"][stack]
    (step,) = _pulumi_steps(job)
    assert step["with"]["command"] == "up"
    assert f"'{stack}'" in step["with"]["stack-name"]
    assert step["with"]["refresh"] == "${{ inputs.refresh || false }}"
    assert job["concurrency"] == {"group": f"pulumi-up-{stack}", "cancel-in-progress": False}


def test_prod_is_gated_by_its_environment_after_dev() -> None:
    jobs = _load("up.yml")["jobs"]
    prod = jobs["prod"]
    assert prod["environment"] == "prod"
    assert "dev" in prod["needs"] and "images-dev" in prod["needs"]
    # No other job touches the prod stack.
    for job_id, job in jobs.items():
        for step in _pulumi_steps(job):
            if "prod" in step["with"].get("stack-name", ""):
                assert job_id == "prod"


def test_only_the_prod_job_can_update_prod_in_any_workflow() -> None:
    for name, wf in _all().items():
        for job_id, job in wf["jobs"].items():
            for step in _pulumi_steps(job):
                if step.get("with", {}).get("command") in {"up", "update", "destroy", "refresh"}:
                    assert name == "up.yml" and job_id in {"dev", "prod"}, f"{name}/{job_id} changes a stack"


# --- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_up_signs_the_images_of_each_stack_after_its_up(stack: str) -> None:
    job = _load("up.yml")["jobs"][f"images-{stack}"]
    assert job["uses"] == "./.github/workflows/images.yml"
    assert job["needs"] == stack
    assert job["with"] == {"stack": stack}
    assert set(job["secrets"]) == {"PULUMI_ACCESS_TOKEN", "HF_TOKEN"}


def test_images_is_reusable_and_builds_nothing() -> None:
    wf = _load("images.yml")
    on = _on(wf)
    assert on["workflow_call"]["inputs"]["stack"]["required"] is True
    assert "workflow_dispatch" in on
    text = (WORKFLOWS / "images.yml").read_text()
    assert "docker/build-push-action" not in text
    assert not re.search(r"\b(docker|buildah|podman) (build|buildx)\b", text)
    read = next(s for s in _steps(wf["jobs"]["list"]) if s.get("id") == "images")
    assert "pulumi stack output images --json" in read["run"]
    assert "sha256:[0-9a-f]{64}" in read["run"]  # refuses refs that are not digest-pinned


def test_images_signs_attests_and_scans_each_image_by_digest() -> None:
    job = _load("images.yml")["jobs"]["attest"]
    assert job["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.list.outputs.matrix) }}"
    steps = _steps(job)
    sign = next(s for s in steps if "cosign sign" in s.get("run", ""))
    assert "--yes" in sign["run"]
    sbom = next(s for s in steps if _uses(s, "anchore/sbom-action"))
    assert sbom["with"]["image"] == "${{ matrix.subject }}"
    attest_sbom = next(s for s in steps if _uses(s, "actions/attest"))
    assert attest_sbom["with"]["sbom-path"] == sbom["with"]["output-file"]
    provenance = next(s for s in steps if _uses(s, "actions/attest-build-provenance"))
    for att in (attest_sbom, provenance):
        assert att["with"]["subject-digest"] == "${{ matrix.digest }}"
        assert att["with"]["push-to-registry"] is True
        assert att["with"]["create-storage-record"] is False  # needs artifact-metadata: write


def test_images_scans_the_pushed_image_for_the_hf_token() -> None:
    steps = _steps(_load("images.yml")["jobs"]["attest"])
    scan = next(s for s in steps if "docker history" in s.get("run", ""))
    assert scan["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    script = scan["run"]
    assert "docker history --no-trunc" in script and "docker inspect" in script
    assert "::add-mask::" in script and "exit 1" in script
    # The scan runs before anything vouches for the image (signature, attestations).
    assert steps.index(scan) < min(i for i, s in enumerate(steps) if "cosign sign" in s.get("run", ""))
    cleanup = steps[-1]
    assert cleanup["if"] == "always()" and "rm -rf" in cleanup["run"]
