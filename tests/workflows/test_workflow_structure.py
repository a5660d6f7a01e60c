"""Structure of the CI/CD workflows: the promises docs/ci-cd.md makes, pinned.

Pinned actions and tools, least-privilege permissions, concurrency, prod behind a checked
environment and a fixed-egress runner, no secrets or event data spliced into shell scripts, the
routing of PRs without secrets to the offline preview, and the image path (dev's up builds,
images.yml scans + signs exactly that up's digests before prod, prod runs them).
Scripts the workflows call are run for real in test_ci_scripts.py.
"""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from tests.workflows.wf import (
    ACTIONS,
    ROOT,
    WORKFLOWS,
    action_paths,
    all_workflows,
    load,
    load_action,
    on,
    pulumi_steps,
    step_named,
    steps,
    uses,
    workflow_paths,
)

USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?:\s+#\s*(?P<comment>.*))?$")
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"^v\d+\.\d+\.\d+$")
MAIN_ONLY = "github.ref == 'refs/heads/main'"
PROD_RUNNER = ["self-hosted", "linux", "x64", "gpu-platform-prod"]

WRITE_SCOPES_ALLOWED = {
    # (workflow, job): scopes that job may write, and why (see docs/ci-cd.md)
    ("preview.yml", "preview"): {"pull-requests"},  # the real preview's comment
    ("preview-comment.yml", "comment"): {"pull-requests"},  # the offline preview's comment
    ("up.yml", "images-dev"): {"packages", "id-token", "attestations"},  # calls images.yml
    ("images.yml", "attest"): {"packages", "id-token", "attestations"},
}


def _pyproject_pin(package: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d.split("==")[1] for d in deps if d.startswith(f"{package}==")]
    return pin


# --- the files themselves -------------------------------------------------------------------


def test_workflows_are_found_under_both_extensions() -> None:
    names = [p.name for p in workflow_paths()]
    assert names == sorted(["images.yml", "preview.yml", "preview-comment.yml", "up.yml"])
    assert {p.parent.name for p in action_paths()} == {"setup-env", "github-provider-token", "verify-images"}


def test_the_workflow_glob_fails_when_there_is_nothing(tmp_path, monkeypatch) -> None:
    from tests.workflows import wf

    monkeypatch.setattr(wf, "WORKFLOWS", tmp_path)
    with pytest.raises(AssertionError, match="no workflow files"):
        wf.workflow_paths()
    (tmp_path / "x.yaml").write_text("name: x\n")
    assert [p.name for p in wf.workflow_paths()] == ["x.yaml"]  # .yaml counts too


# --- pinning ----------------------------------------------------------------------------


def _uses_lines() -> list[tuple[str, int, str, str | None]]:
    out = []
    for path in [*workflow_paths(), *action_paths()]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if m := USES_LINE.match(line):
                out.append((str(path.relative_to(ROOT)), n, m["ref"], m["comment"]))
    return out


def test_every_action_is_pinned_to_a_commit_sha_with_its_version() -> None:
    lines = _uses_lines()
    assert len(lines) > 10
    for name, n, ref, comment in lines:
        if ref.startswith("./"):
            assert ref == "./.github/workflows/images.yml" or (
                ref.startswith("./.github/actions/") and (ROOT / ref / "action.yml").exists()
            ), f"{name}:{n}: local uses {ref}"
            continue
        assert PINNED.match(ref), f"{name}:{n}: {ref} is not pinned to a 40-hex commit SHA"
        assert comment and VERSION_COMMENT.match(comment.strip()), f"{name}:{n}: {ref} lacks a '# vX.Y.Z' comment"


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


def test_every_pulumi_cli_is_the_release_of_the_pinned_sdk() -> None:
    sdk = _pyproject_pin("pulumi")
    found = 0
    for name, wf in all_workflows().items():
        for job_id, job in wf["jobs"].items():
            for step in pulumi_steps(job):
                found += 1
                assert str(step["with"]["pulumi-version"]) == sdk, f"{name}/{job_id}: pulumi-version != {sdk}"
    assert found >= 5


def test_uv_is_pinned_by_version_and_hash_and_python_is_3_11() -> None:
    req = (ACTIONS / "setup-env" / "requirements.txt").read_text()
    (line,) = [ln for ln in req.splitlines() if ln and not ln.startswith("#")]
    assert re.fullmatch(r"uv==\d+\.\d+\.\d+ --hash=sha256:[0-9a-f]{64}", line), line
    install = load_action("setup-env")["runs"]["steps"][0]["run"]
    assert "--require-hashes" in install and "requirements.txt" in install
    sync = load_action("setup-env")["runs"]["steps"][1]["run"]
    assert "uv sync --frozen" in sync and "--python 3.11" in sync
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"].startswith(">=3.11")
    for path in workflow_paths():
        assert "astral-sh/setup-uv" not in path.read_text(), f"{path.name}: uv must come from setup-env"


def test_every_job_that_runs_the_program_sets_up_the_pinned_env() -> None:
    for name, wf in all_workflows().items():
        for job_id, job in wf["jobs"].items():
            scripts = " ".join(s.get("run", "") for s in steps(job))
            runs_program = bool(pulumi_steps(job) and any(s["with"].get("command") for s in pulumi_steps(job)))
            if runs_program or re.search(r"\bmake (test|plan)\b", scripts):
                setup = [i for i, s in enumerate(steps(job)) if s.get("uses") == "./.github/actions/setup-env"]
                assert setup, f"{name}/{job_id} runs the program without ./.github/actions/setup-env"


# --- permissions ------------------------------------------------------------------------


def test_workflow_default_permissions_are_read_only() -> None:
    for name, wf in all_workflows().items():
        assert wf["permissions"] in ({"contents": "read"}, {}), f"{name}: {wf['permissions']}"


def test_write_permissions_only_where_needed() -> None:
    for name, wf in all_workflows().items():
        for job_id, job in wf["jobs"].items():
            perms = job.get("permissions", {})
            assert isinstance(perms, dict), f"{name}/{job_id}: permissions must be a mapping"
            writes = {scope for scope, level in perms.items() if level == "write"}
            allowed = WRITE_SCOPES_ALLOWED.get((name, job_id), set())
            assert writes <= allowed, f"{name}/{job_id} writes {writes - allowed}"
            assert perms.get("contents", "read") == "read", f"{name}/{job_id} may write contents"


def test_only_the_commenting_jobs_may_write_pull_requests() -> None:
    for name, wf in all_workflows().items():
        for job_id, job in wf["jobs"].items():
            comments = any(str(s.get("with", {}).get("comment-on-pr", "")).lower() == "true" for s in steps(job))
            comments |= any("/comments" in s.get("run", "") for s in steps(job))
            writes_prs = job.get("permissions", {}).get("pull-requests") == "write"
            assert comments == writes_prs, f"{name}/{job_id}: pull-requests: write iff it comments"


# --- no injection -------------------------------------------------------------------------


def test_no_expressions_inside_run_scripts() -> None:
    """Secrets, event data and inputs reach shell scripts only through env: variables."""
    for name, wf in all_workflows().items():
        for job_id, job in wf["jobs"].items():
            for step in steps(job):
                assert "${{" not in step.get("run", ""), f"{name}/{job_id}/{step.get('name')}: expression in run:"
    for path in action_paths():
        for step in yaml.safe_load(path.read_text())["runs"]["steps"]:
            assert "${{" not in step.get("run", ""), f"{path.parent.name}/{step.get('name')}: expression in run:"


def test_secrets_are_never_passed_wholesale() -> None:
    for path in workflow_paths():
        text = path.read_text()
        assert "secrets: inherit" not in text
        assert "toJSON(secrets)" not in text.replace(" ", "")


def test_checkouts_do_not_persist_credentials() -> None:
    for name, wf in all_workflows().items():
        for job_id, job in wf["jobs"].items():
            for step in steps(job):
                if uses(step, "actions/checkout"):
                    assert step.get("with", {}).get("persist-credentials") is False, f"{name}/{job_id}"


def test_every_job_has_a_timeout() -> None:
    for name, wf in all_workflows().items():
        for job_id, job in wf["jobs"].items():
            if "uses" in job:  # a reusable-workflow call: its own jobs carry timeouts
                continue
            assert isinstance(job.get("timeout-minutes"), int), f"{name}/{job_id} has no timeout-minutes"


def test_no_workflow_lets_refresh_drop_kubernetes_state() -> None:
    # The env var turns deleteUnreachable on behind the provider's back (pulumi-kubernetes#2489).
    for path in [*workflow_paths(), *action_paths()]:
        assert "PULUMI_K8S_DELETE_UNREACHABLE" not in path.read_text(), path.name


# --- preview.yml ----------------------------------------------------------------------------


def test_preview_runs_on_pull_requests_with_one_cancelling_group_per_pr() -> None:
    wf = load("preview.yml")
    assert set(on(wf)) == {"pull_request"}
    assert "github.event.pull_request.number" in wf["concurrency"]["group"]
    assert wf["concurrency"]["cancel-in-progress"] is True


def test_preview_runs_the_test_command_as_root_and_fails_on_a_readme_ci_skip() -> None:
    job = load("preview.yml")["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    run = step_named(job, "Test command as root")["run"]
    # sudo: the image-leak tests need root; PATH carries uv; CI=true reaches the tests.
    assert re.search(r'sudo --preserve-env=CI\S* env "PATH=\$\{PATH\}" make test', run), run
    assert 'tee "${RUNNER_TEMP}/make-test.log"' in run and "set -euo pipefail" in run
    check = step_named(job, "README says runs in CI")
    assert check["run"] == 'python3 .github/scripts/ci_skips.py "${RUNNER_TEMP}/make-test.log"'
    chown = step_named(job, "Hand the workspace back")
    assert chown["if"] == "always()" and "sudo chown -R" in chown["run"]
    names = [s.get("name", "") for s in steps(job)]
    assert names.index(check["name"]) > names.index(step_named(job, "Test command as root")["name"])
    runs = [s.get("run", "") for s in steps(job)]
    assert "make plan STACK=dev" in runs and "make plan STACK=prod" in runs
    assert "GPU_PLATFORM_SKIP_BUILD" not in (WORKFLOWS / "preview.yml").read_text()


def test_the_route_sees_whether_the_secret_exists_never_the_secret() -> None:
    job = load("preview.yml")["jobs"]["route"]
    step = step_named(job, "Real preview, or offline")
    assert step["env"]["HAS_PULUMI_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN != '' }}"
    assert step["env"]["HEAD_REPO"] == "${{ github.event.pull_request.head.repo.full_name }}"
    assert step["env"]["ACTOR"] == "${{ github.actor }}"
    assert step["run"] == "python3 .github/scripts/preview_route.py"
    assert "secrets." not in str({k: v for k, v in step["env"].items() if k != "HAS_PULUMI_TOKEN"})
    assert job["outputs"] == {"mode": "${{ steps.route.outputs.mode }}", "reason": "${{ steps.route.outputs.reason }}"}


def test_real_preview_and_offline_preview_are_exclusive_routes() -> None:
    jobs = load("preview.yml")["jobs"]
    assert jobs["preview"]["if"] == "needs.route.outputs.mode == 'real'"
    assert jobs["offline-preview"]["if"] == "needs.route.outputs.mode == 'offline'"
    for job_id in ("preview", "offline-preview"):
        assert set(jobs[job_id]["needs"]) == {"test", "route"}


def test_real_preview_previews_dev_and_prod_with_the_policy_pack_and_comments() -> None:
    job = load("preview.yml")["jobs"]["preview"]
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    (step,) = pulumi_steps(job)
    w = step["with"]
    assert w["command"] == "preview" and "matrix.stack" in w["stack-name"]
    assert w["comment-on-pr"] is True and w["policyPacks"] == "policy"
    env = step["env"]
    assert env["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    assert env["CIVO_TOKEN"] == "${{ secrets.CIVO_TOKEN }}"


def test_offline_preview_diffs_against_the_pr_base_and_hands_the_comment_on() -> None:
    job = load("preview.yml")["jobs"]["offline-preview"]
    checkout = next(s for s in steps(job) if uses(s, "actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # plan-diff needs the base commit
    run = step_named(job, "Offline diff")
    assert run["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert run["env"]["REASON"] == "${{ needs.route.outputs.reason }}"
    assert run["run"].startswith("python3 .github/scripts/offline_preview.py --base \"${BASE_SHA}\"")
    upload = next(s for s in steps(job) if uses(s, "actions/upload-artifact"))
    assert upload["with"]["name"] == "offline-preview" and upload["if"] == "always()"
    assert upload["with"]["path"].endswith("/offline-preview/comment.md")
    assert "permissions" not in job  # read-only: forks' tokens are anyway


def test_the_required_check_needs_every_job_and_always_runs() -> None:
    job = load("preview.yml")["jobs"]["result"]
    assert job["name"] == "preview result"
    assert job["if"] == "always()"
    assert set(job["needs"]) == {"test", "route", "offline-preview", "preview"}
    assert job["steps"][0]["env"]["NEEDS"] == "${{ toJSON(needs) }}"


# --- preview-comment.yml ----------------------------------------------------------------------


def test_preview_comment_runs_no_pr_code() -> None:
    wf = load("preview-comment.yml")
    assert on(wf) == {"workflow_run": {"workflows": ["preview"], "types": ["completed"]}}
    assert wf["permissions"] == {}
    (job,) = wf["jobs"].values()
    assert job["if"] == "github.event.workflow_run.event == 'pull_request'"
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert all("uses" not in s for s in steps(job)), "no action, no checkout: nothing of the PR runs here"
    (step,) = steps(job)
    assert step["env"]["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    assert step["env"]["GH_TOKEN"] == "${{ github.token }}"


# --- up.yml ------------------------------------------------------------------------------------


def test_up_runs_on_push_to_main_and_by_hand_with_a_refresh_option() -> None:
    on_ = on(load("up.yml"))
    assert on_["push"] == {"branches": ["main"]}
    refresh = on_["workflow_dispatch"]["inputs"]["refresh"]
    assert refresh["type"] == "boolean" and refresh["default"] is False


def test_up_deploys_only_from_main() -> None:
    jobs = load("up.yml")["jobs"]
    assert jobs["dev"]["if"] == MAIN_ONLY
    assert jobs["prod-gate"]["if"] == MAIN_ONLY
    # Everything else hangs off those two through needs: a skipped need skips the job.
    assert "dev" in jobs["images-dev"]["needs"]
    assert {"dev", "prod-gate"} <= set(jobs["prod"]["needs"])
    assert load("images.yml")["jobs"]["list"]["if"] == MAIN_ONLY


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_up_updates_each_stack_in_its_own_uncancellable_group(stack: str) -> None:
    job = load("up.yml")["jobs"][stack]
    ups = [s for s in pulumi_steps(job) if s["with"].get("command")]
    (step,) = ups
    assert step["id"] == "up" and step["with"]["command"] == "up"
    assert f"'{stack}'" in (step["with"]["stack-name"] + str(job.get("env", {})))
    assert step["with"]["refresh"] == "${{ inputs.refresh || false }}"
    assert step["with"]["policyPacks"] == "policy"
    assert step["with"]["suppress-outputs"] is True
    assert job["concurrency"] == {"group": f"pulumi-up-{stack}", "cancel-in-progress": False}
    assert job["environment"] == stack


@pytest.mark.parametrize(("stack", "minutes", "bound"), [("dev", 360, 350), ("prod", 380, 365)])
def test_up_jobs_outlast_the_programs_own_timeouts(stack: str, minutes: int, bound: int) -> None:
    """The job limit exceeds the sum of the program's own bounds, so Pulumi fails first, cleanly."""
    job = load("up.yml")["jobs"][stack]
    assert job["timeout-minutes"] == minutes > bound
    docs = (ROOT / "docs" / "ci-cd.md").read_text()
    assert f"| `{stack}` | {bound} min | {minutes} min |" in docs


def test_pulumi_github_gets_a_minted_app_token_or_a_checked_pat() -> None:
    expected = "${{ steps.github-token.outputs.app-token || secrets.GH_PROVIDER_TOKEN }}"
    for name, wf in all_workflows().items():
        for job_id, job in wf["jobs"].items():
            for step in pulumi_steps(job):
                if not step["with"].get("command"):
                    continue
                assert step["env"]["GITHUB_TOKEN"] == expected, f"{name}/{job_id}"
                cred = next(s for s in steps(job) if s.get("id") == "github-token")
                assert cred["uses"] == "./.github/actions/github-provider-token"
                assert steps(job).index(cred) < steps(job).index(step)
                assert cred["with"] == {"app-client-id": "${{ vars.GH_APP_CLIENT_ID }}",
                                        "app-private-key": "${{ secrets.GH_APP_PRIVATE_KEY }}",
                                        "pat": "${{ secrets.GH_PROVIDER_TOKEN }}"}
    action = load_action("github-provider-token")
    mint, check = action["runs"]["steps"]
    assert uses(mint, "actions/create-github-app-token") and mint["if"] == "inputs.app-client-id != ''"
    # v3.1.1's inputs (its action.yml): client-id replaces the deprecated app-id.
    assert mint["with"] == {"client-id": "${{ inputs.app-client-id }}", "private-key": "${{ inputs.app-private-key }}"}
    assert action["outputs"]["app-token"]["value"] == "${{ steps.app.outputs.token }}"
    assert "check_github_token.py" in check["run"]


def test_prod_fails_first_unless_its_environment_requires_reviewers() -> None:
    jobs = load("up.yml")["jobs"]
    gate = jobs["prod-gate"]
    assert gate["permissions"] == {"contents": "read", "actions": "read"}
    assert "needs" not in gate  # it runs at once, beside dev
    step = step_named(gate, "requires a reviewer")
    assert step["run"] == "python3 .github/scripts/check_environment.py prod"
    assert step["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    assert "prod-gate" in jobs["prod"]["needs"]


def test_prod_runs_on_the_fixed_egress_runner_and_checks_the_api_first() -> None:
    prod = load("up.yml")["jobs"]["prod"]
    assert prod["runs-on"] == PROD_RUNNER
    names = [s.get("name", "") for s in steps(prod)]
    reach = step_named(prod, "reachable from this runner")
    assert reach["run"] == 'python3 .github/scripts/check_api_reachable.py --stack "${STACK_NAME}"'
    up = next(s for s in steps(prod) if s.get("id") == "up")
    assert names.index(reach["name"]) < names.index(up["name"])
    # No other job reaches prod's cluster: every other job runs on a hosted runner.
    for name, wf in all_workflows().items():
        for job_id, job in wf["jobs"].items():
            if (name, job_id) != ("up.yml", "prod") and "uses" not in job:
                assert job["runs-on"] == "ubuntu-latest", f"{name}/{job_id}"


def test_prod_deploys_only_after_dev_was_built_scanned_and_signed() -> None:
    jobs = load("up.yml")["jobs"]
    assert set(jobs["prod"]["needs"]) == {"dev", "images-dev", "prod-gate"}
    call = jobs["images-dev"]
    assert call["uses"] == "./.github/workflows/images.yml"
    assert call["needs"] == "dev"
    # The images of this very up step, not whatever the stack exports later.
    assert call["with"] == {"stack": "dev", "images": "${{ needs.dev.outputs.images }}"}
    assert jobs["dev"]["outputs"]["images"] == "${{ steps.up.outputs.images }}"
    # The dev HF_TOKEN is an environment secret: images.yml reads it in the dev environment.
    assert "secrets" not in call
    assert "images-prod" not in jobs  # prod builds nothing: it runs dev's digests


def test_prod_verifies_dev_signatures_before_up_and_its_images_after() -> None:
    prod = load("up.yml")["jobs"]["prod"]
    st = steps(prod)
    verify = next(s for s in st if s.get("uses") == "./.github/actions/verify-images")
    assert verify["if"] == "needs.images-dev.outputs.signed == 'true' && steps.promoted.outputs.refs != ''"
    assert verify["with"]["refs"] == "${{ steps.promoted.outputs.refs }}"
    up = next(s for s in st if s.get("id") == "up")
    after = step_named(prod, "only digests dev built")
    assert st.index(verify) < st.index(up) < st.index(after)
    assert after["env"] == {"DEV_IMAGES": "${{ needs.dev.outputs.images }}",
                            "PROD_IMAGES": "${{ steps.up.outputs.images }}"}
    assert after["run"] == "python3 .github/scripts/check_promoted_images.py"
    login = step_named(prod, "Log cosign in")
    assert st.index(login) < st.index(verify) and login["if"] == verify["if"]
    assert "--password-stdin" in login["run"] and prod["permissions"]["packages"] == "read"
    assert st[-1]["if"] == "always()" and ".docker/config.json" in st[-1]["run"]


def test_only_the_up_jobs_change_a_stack() -> None:
    for name, wf in all_workflows().items():
        for job_id, job in wf["jobs"].items():
            for step in pulumi_steps(job):
                if step.get("with", {}).get("command") in {"up", "update", "destroy", "refresh"}:
                    assert name == "up.yml" and job_id in {"dev", "prod"}, f"{name}/{job_id} changes a stack"


# --- images.yml -------------------------------------------------------------------------------


def test_images_is_reusable_takes_the_up_output_and_builds_nothing() -> None:
    wf = load("images.yml")
    call = on(wf)["workflow_call"]
    assert call["inputs"]["stack"]["required"] is True
    assert call["inputs"]["images"]["required"] is True
    assert call["outputs"]["signed"]["value"] == "${{ jobs.list.outputs.sign }}"
    assert "workflow_dispatch" in on(wf)
    text = (WORKFLOWS / "images.yml").read_text()
    assert "docker/build-push-action" not in text
    assert not re.search(r"\b(docker|buildah|podman) (build|buildx)\b", text)
    read = next(s for s in steps(wf["jobs"]["list"]) if s.get("id") == "images")
    assert read["env"]["IMAGES_INPUT"] == "${{ inputs.images }}"
    assert 'images="${IMAGES_INPUT}"' in read["run"]
    assert "sha256:[0-9a-f]{64}" in read["run"]  # refuses refs that are not digest-pinned


def test_images_scans_with_the_stacks_own_token_in_its_environment() -> None:
    job = load("images.yml")["jobs"]["attest"]
    assert job["environment"] == "${{ inputs.stack }}"
    scan = next(s for s in steps(job) if "docker history" in s.get("run", ""))
    assert scan["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    assert "docker history --no-trunc" in scan["run"] and "docker inspect" in scan["run"]
    assert "::add-mask::" in scan["run"]


def test_images_gates_in_order_token_vulns_sign_attest() -> None:
    st = steps(load("images.yml")["jobs"]["attest"])
    token = next(i for i, s in enumerate(st) if "docker history" in s.get("run", ""))
    vuln = next(i for i, s in enumerate(st) if uses(s, "anchore/scan-action"))
    sign = next(i for i, s in enumerate(st) if "cosign sign" in s.get("run", ""))
    attest = min(i for i, s in enumerate(st) if uses(s, "actions/attest") or uses(s, "actions/attest-build-provenance"))
    assert token < vuln < sign < attest
    w = st[vuln]["with"]
    assert w == {"image": "${{ matrix.subject }}", "fail-build": True, "severity-cutoff": "high",
                 "only-fixed": True, "output-format": "table"}
    assert "if" not in st[token] and "if" not in st[vuln]  # scans always run
    cleanup = st[-1]
    assert cleanup["if"] == "always()" and "rm -rf" in cleanup["run"]


def test_images_signs_and_attests_only_where_the_visibility_allows() -> None:
    wf = load("images.yml")
    lst = wf["jobs"]["list"]
    trust = next(s for s in steps(lst) if s.get("id") == "trust")
    assert trust["env"]["VISIBILITY"] == "${{ github.event.repository.visibility }}"
    assert lst["outputs"]["sign"] == "${{ steps.trust.outputs.sign }}"
    st = steps(wf["jobs"]["attest"])
    for s in st:
        if "cosign" in s.get("run", "") or uses(s, "sigstore/cosign-installer") or "verify-images" in s.get("uses", ""):
            assert s["if"] == "needs.list.outputs.sign == 'true'", s.get("name")
        if uses(s, "actions/attest") or uses(s, "actions/attest-build-provenance"):
            assert s["if"] == "needs.list.outputs.attest == 'true'", s.get("name")
            assert s["with"]["subject-digest"] == "${{ matrix.digest }}"
            assert s["with"]["push-to-registry"] is True
            assert s["with"]["create-storage-record"] is False  # needs artifact-metadata: write


def test_signatures_are_verified_against_the_exact_workflow_identity() -> None:
    step = load_action("verify-images")["runs"]["steps"][0]
    assert step["env"]["IDENTITY"] == (
        "${{ github.server_url }}/${{ github.repository }}/.github/workflows/images.yml@refs/heads/main"
    )
    assert '--certificate-identity "${IDENTITY}"' in step["run"]
    assert "--certificate-oidc-issuer https://token.actions.githubusercontent.com" in step["run"]
    for path in [*workflow_paths(), *action_paths(), ROOT / "docs" / "ci-cd.md"]:
        assert "certificate-identity-regexp" not in path.read_text(), f"{path.name} accepts a pattern"
    attest = load("images.yml")["jobs"]["attest"]
    assert any(s.get("uses") == "./.github/actions/verify-images" for s in steps(attest))
