"""The scripts and run steps the workflows execute, run for real.

Each is run as the workflow runs it (a subprocess with the step's environment), against a
GitHub API stand-in on 127.0.0.1 or fake `make`/`gh`/`pulumi`/`cosign` programs on PATH that
answer as the real ones do, so a broken line in the workflow's logic fails a test here.
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.workflows.wf import SCRIPTS, fake_tool, load, load_action, run_script, step_named

PY = sys.executable
FAKE_PAT = "github_pat_11FAKE0000000000000000_notarealtokenatall0000000000000000000000"  # pragma: allowlist secret


def _script(name: str, *args: str, env: dict[str, str] | None = None, path: list[Path] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {"PATH": os.pathsep.join([*(str(p) for p in path or []), os.environ["PATH"]]), **(env or {})}
    return subprocess.run([PY, str(SCRIPTS / name), *args], env=full_env, capture_output=True, text=True,
                          check=False, timeout=60)


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


# --- preview_route.py ---------------------------------------------------------------------------


@pytest.mark.parametrize(("head", "actor", "has", "mode", "says"), [
    ("acme/gpu-platform", "alice", "true", "real", "available"),
    ("mallory/gpu-platform", "mallory", "false", "offline", "fork mallory/gpu-platform"),
    ("mallory/gpu-platform", "mallory", "true", "offline", "fork"),  # a fork never gets the real one
    ("acme/gpu-platform", "dependabot[bot]", "false", "offline", "Dependabot"),
    ("acme/gpu-platform", "dependabot[bot]", "true", "offline", "Dependabot"),
    ("acme/gpu-platform", "alice", "false", "offline", "PULUMI_ACCESS_TOKEN is not available"),
])
def test_route(tmp_path: Path, head: str, actor: str, has: str, mode: str, says: str) -> None:
    out = tmp_path / "out"
    done = _script("preview_route.py", env={"HEAD_REPO": head, "BASE_REPO": "acme/gpu-platform", "ACTOR": actor,
                                            "HAS_PULUMI_TOKEN": has, "GITHUB_OUTPUT": str(out)})
    assert done.returncode == 0, done.stderr
    outputs = _outputs(out)
    assert outputs["mode"] == mode
    assert says in outputs["reason"]
    # Only a same-repository human PR without the secret is a misconfiguration worth a warning.
    assert ("::warning" in done.stdout) == (mode == "offline" and "PULUMI_ACCESS_TOKEN" in says)


# --- offline_preview.py -------------------------------------------------------------------------

BASE = "0123456789abcdef0123"  # pragma: allowlist secret (a fake git revision)
FAKE_MAKE = """\
target="$2"; stack="${3#STACK=}"
echo "$*" >> "$CALLS"
case "$target" in
  plan-diff)
    case "$stack" in
      dev) printf 'updated  kubernetes:apps/v1:Deployment qwen-small-server (image)\\n```evil```\\n'; exit 2 ;;
      prod) echo "no change"; exit 0 ;;
      broken) echo "plan-diff: base revision not found" >&2; exit 1 ;;
    esac ;;
  plan) echo "pulumi:pulumi:Stack gpu-platform-$stack"; exit 0 ;;
esac
exit 9
"""


def _offline(tmp_path: Path, *stacks: str) -> tuple[subprocess.CompletedProcess[str], str, str, list[str]]:
    make = fake_tool(tmp_path / "bin", "make", FAKE_MAKE)
    calls, summary, out = tmp_path / "calls", tmp_path / "summary.md", tmp_path / "out"
    args = ["--base", BASE, "--reason", "this pull request comes from the fork m/x",
            "--out", str(out), *[a for s in stacks for a in ("--stack", s)]]
    done = _script("offline_preview.py", *args,
                   env={"MAKE": str(make), "CALLS": str(calls), "GITHUB_STEP_SUMMARY": str(summary)})
    comment = (out / "comment.md").read_text()
    return done, comment, summary.read_text(), calls.read_text().splitlines()


def test_offline_preview_posts_diff_and_plan_of_both_stacks(tmp_path: Path) -> None:
    done, comment, summary, calls = _offline(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls == [f"-s plan-diff STACK=dev BASE={BASE}", "-s plan STACK=dev",
                     f"-s plan-diff STACK=prod BASE={BASE}", "-s plan STACK=prod"]
    assert comment.startswith("<!-- gpu-platform:offline-preview -->\n## No real `pulumi preview` ran")
    assert "Why: this pull request comes from the fork m/x" in comment
    assert "| dev | changes |" in comment and "| prod | no change |" in comment
    assert "qwen-small-server" in comment and "pulumi:pulumi:Stack gpu-platform-prod" in comment
    assert "````text\n" in comment  # fence longer than the ``` in the diff output
    assert summary == comment


def test_offline_preview_fails_on_a_diff_error_and_says_so(tmp_path: Path) -> None:
    done, comment, _, _ = _offline(tmp_path, "dev", "broken")
    assert done.returncode == 1
    assert "| broken | error (plan-diff exit 1) |" in comment
    assert "base revision not found" in comment
    assert "::error title=offline preview failed (broken)::" in done.stdout


def test_offline_preview_cuts_long_output(tmp_path: Path) -> None:
    sys.path.insert(0, str(SCRIPTS))
    import offline_preview

    body = offline_preview.render(
        [offline_preview.StackResult("dev", 2, "x" * 100_000, 0, "y" * 100_000)], "abc", "why")
    assert len(body) < 40_000
    assert "cut at 20000 characters" in body and "cut at 8000 characters" in body


# --- check_environment.py -------------------------------------------------------------------

REVIEWED = {
    "id": 161088068, "name": "prod", "url": "https://api.github.com/repos/acme/gpu-platform/environments/prod",
    "can_admins_bypass": False,
    "protection_rules": [
        {"id": 3736, "node_id": "MDQ6R2F0ZTM3MzY=", "type": "wait_timer", "wait_timer": 0},
        {"id": 3755, "node_id": "MDQ6R2F0ZTM3NTU=", "prevent_self_review": True, "type": "required_reviewers",
         "reviewers": [{"type": "Team", "reviewer": {"id": 1, "name": "platform", "slug": "platform"}}]},
        {"id": 3756, "node_id": "MDQ6R2F0ZTM3NTY=", "type": "branch_policy"},
    ],
    "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True},
}
UNPROTECTED = {"id": 1, "name": "prod", "protection_rules": [], "deployment_branch_policy": None}


class _Api(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, dict]]] = {}
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        status, body = type(self).routes.get(self.path, (404, {"message": "Not Found"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def api() -> Iterator[tuple[str, type[_Api]]]:
    handler = type("Api", (_Api,), {"routes": {}, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _check_env(url: str, name: str = "prod") -> subprocess.CompletedProcess[str]:
    return _script("check_environment.py", name, env={"GITHUB_API_URL": url, "GITHUB_REPOSITORY": "acme/gpu-platform",
                                                      "GITHUB_TOKEN": "ghs_workflowtoken"})


def test_a_protected_prod_passes_and_the_token_is_sent(api) -> None:
    url, handler = api
    handler.routes["/repos/acme/gpu-platform/environments/prod"] = (200, REVIEWED)
    done = _check_env(url)
    assert done.returncode == 0, done.stdout
    assert "required_reviewers" in done.stdout
    (req,) = handler.seen
    assert req["authorization"] == "Bearer ghs_workflowtoken"
    assert req["accept"] == "application/vnd.github+json"


def test_a_missing_prod_fails_before_github_creates_it(api) -> None:
    done = _check_env(api[0])
    assert done.returncode == 1
    assert "::error title=environment 'prod' does not exist::" in done.stdout
    assert "Required reviewers" in done.stdout


def test_an_unprotected_prod_fails_with_both_problems(api) -> None:
    url, handler = api
    handler.routes["/repos/acme/gpu-platform/environments/prod"] = (200, UNPROTECTED)
    done = _check_env(url)
    assert done.returncode == 1
    assert "has no required reviewers" in done.stdout and "from any branch" in done.stdout


def test_reviewers_rule_without_reviewers_does_not_count(api) -> None:
    url, handler = api
    rules = [{"type": "required_reviewers", "reviewers": []}, {"type": "wait_timer", "wait_timer": 30}]
    handler.routes["/repos/acme/gpu-platform/environments/prod"] = (
        200, {**REVIEWED, "protection_rules": rules})
    assert _check_env(url).returncode == 1


def test_no_api_permission_is_an_error_not_a_pass(api) -> None:
    url, handler = api
    handler.routes["/repos/acme/gpu-platform/environments/prod"] = (403, {"message": "Resource not accessible"})
    done = _check_env(url)
    assert done.returncode == 2 and "actions: read" in done.stdout


# --- check_github_token.py ------------------------------------------------------------------


@pytest.mark.parametrize(("token", "minted", "ok", "says"), [
    (FAKE_PAT, "false", True, "fine-grained PAT"),
    ("", "true", True, "App token minted"),
    ("ghs_" + "a" * 36, "false", False, "expires within an hour"),
    ("ghp_" + "a" * 36, "false", False, "classic personal access token"),
    ("gho_" + "a" * 36, "false", False, "OAuth"),
    ("something-else", "false", False, "not a fine-grained"),
    ("", "false", False, "no credential"),
])
def test_github_credential_kinds(token: str, minted: str, ok: bool, says: str) -> None:
    done = _script("check_github_token.py", env={"GH_PROVIDER_TOKEN": token, "APP_TOKEN_MINTED": minted})
    assert (done.returncode == 0) is ok
    assert says in done.stdout
    if token:
        assert token not in done.stdout + done.stderr


def test_the_composite_action_runs_the_check_with_the_pat() -> None:
    check = load_action("github-provider-token")["runs"]["steps"][1]
    assert check["env"] == {"GH_PROVIDER_TOKEN": "${{ inputs.pat }}",
                            "APP_TOKEN_MINTED": "${{ steps.app.outputs.token != '' }}"}


# --- check_api_reachable.py -----------------------------------------------------------------


def _pulumi(tmp_path: Path, endpoint: str | None) -> Path:
    body = f'echo "{endpoint}"\n' if endpoint else 'echo "error: current stack does not have output apiEndpoint" >&2; exit 255\n'
    fake_tool(tmp_path / "bin", "pulumi", body)
    return tmp_path / "bin"


def test_reachable_api_passes(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        done = _script("check_api_reachable.py", "--stack", "acme/prod",
                       path=[_pulumi(tmp_path, f"https://127.0.0.1:{port}")])
    assert done.returncode == 0, done.stdout
    assert f"127.0.0.1:{port} is reachable" in done.stdout


def test_unreachable_api_fails_before_anything_changes(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]  # closed again below: nothing listens there
    done = _script("check_api_reachable.py", "--stack", "acme/prod", "--timeout", "1", "--tries", "2",
                   path=[_pulumi(tmp_path, f"https://127.0.0.1:{port}")])
    assert done.returncode == 1
    assert "::error title=prod's Kubernetes API is unreachable::" in done.stdout
    assert "apiAllowedCidrs" in done.stdout and "Nothing was changed" in done.stdout


def test_first_deploy_has_nothing_to_reach(tmp_path: Path) -> None:
    done = _script("check_api_reachable.py", "--stack", "acme/prod", path=[_pulumi(tmp_path, None)])
    assert done.returncode == 0
    assert "::notice title=no cluster yet::" in done.stdout


# --- check_promoted_images.py ---------------------------------------------------------------

DEV = {"model-cache": "ghcr.io/acme/gpu-platform/model-cache@sha256:" + "a" * 64,
       "hf-server": "ghcr.io/acme/gpu-platform/hf-server@sha256:" + "b" * 64}


@pytest.mark.parametrize(("prod", "rc"), [
    ({"model-cache": DEV["model-cache"]}, 0),  # a subset: prod runs no hf-server model
    (DEV, 0),
    ({"model-cache": "ghcr.io/acme/gpu-platform/model-cache@sha256:" + "c" * 64}, 1),  # rebuilt by prod
    ({}, 0),
])
def test_prod_images_must_be_devs(prod: dict, rc: int) -> None:
    done = _script("check_promoted_images.py", env={"DEV_IMAGES": json.dumps(DEV), "PROD_IMAGES": json.dumps(prod)})
    assert done.returncode == rc, done.stdout
    if rc:
        assert "prod runs images dev did not promote" in done.stdout and "c" * 64 in done.stdout


def test_promoted_images_bad_input_is_an_error() -> None:
    done = _script("check_promoted_images.py", env={"DEV_IMAGES": "[1]", "PROD_IMAGES": "{}"})
    assert done.returncode == 2 and "DEV_IMAGES must be a JSON object" in done.stdout


# --- workflow run steps ----------------------------------------------------------------------


def _trust(visibility: str, private_attestations: str = "") -> tuple[subprocess.CompletedProcess[str], dict, str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out, summary = Path(tmp) / "out", Path(tmp) / "summary"
        out.touch()
        summary.touch()
        step = next(s for s in load("images.yml")["jobs"]["list"]["steps"] if s.get("id") == "trust")
        done = run_script(step["run"], {"VISIBILITY": visibility, "PRIVATE_ATTESTATIONS": private_attestations,
                                        "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)})
        return done, _outputs(out), summary.read_text()


def test_public_repositories_sign_and_attest() -> None:
    done, out, _ = _trust("public")
    assert done.returncode == 0 and out == {"sign": "true", "attest": "true"}


def test_private_repositories_skip_keyless_signing_and_say_why() -> None:
    done, out, summary = _trust("private")
    assert done.returncode == 0 and out == {"sign": "false", "attest": "false"}
    assert "public transparency log" in summary and "GitHub Enterprise Cloud" in summary
    assert "::notice title=cosign signature skipped::" in done.stdout


def test_private_repositories_on_enterprise_cloud_attest() -> None:
    _, out, summary = _trust("internal", "true")
    assert out == {"sign": "false", "attest": "true"}
    assert "private Sigstore instance" in summary


def test_unknown_visibility_fails() -> None:
    done, _, _ = _trust("")
    assert done.returncode == 1 and "unknown repository visibility" in done.stdout


def _result(tmp_path: Path, needs: dict) -> tuple[subprocess.CompletedProcess[str], str]:
    summary = tmp_path / "summary"
    summary.touch()
    step = load("preview.yml")["jobs"]["result"]["steps"][0]
    done = run_script(step["run"], {"NEEDS": json.dumps(needs), "GITHUB_STEP_SUMMARY": str(summary)})
    return done, summary.read_text()


def _needs(mode: str | None, test="success", route="success", preview="skipped", offline="skipped") -> dict:
    outputs = {"mode": mode, "reason": "this pull request comes from the fork m/x"} if mode else {}
    return {"test": {"result": test, "outputs": {}}, "route": {"result": route, "outputs": outputs},
            "preview": {"result": preview, "outputs": {}}, "offline-preview": {"result": offline, "outputs": {}}}


def test_result_passes_a_real_preview(tmp_path: Path) -> None:
    done, summary = _result(tmp_path, _needs("real", preview="success"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "A real `pulumi preview` of dev and prod ran" in summary


def test_result_passes_an_offline_preview_and_says_no_real_one_ran(tmp_path: Path) -> None:
    done, summary = _result(tmp_path, _needs("offline", offline="success"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "**No real `pulumi preview` ran for this pull request**: this pull request comes from the fork" in summary


@pytest.mark.parametrize("needs", [
    _needs("offline", offline="failure"),
    _needs("offline", offline="skipped"),
    _needs("real", preview="failure"),
    _needs("real", preview="cancelled"),
    _needs("real", test="failure", preview="success"),
    _needs(None, route="failure"),
], ids=["offline-failed", "offline-skipped", "real-failed", "real-cancelled", "tests-failed", "no-route"])
def test_result_fails_when_the_routed_preview_or_the_tests_did(tmp_path: Path, needs: dict) -> None:
    done, _ = _result(tmp_path, needs)
    assert done.returncode == 1
    assert "::error title=preview failed::" in done.stdout


FAKE_GH = """\
echo "$*" >> "$CALLS"
case "$1 $2" in
  "run download")
    [ "$ARTIFACT" = yes ] || { echo "no artifact matches" >&2; exit 1; }
    dir="${@: -1}"; printf '%s' "$COMMENT" > "$dir/comment.md" ;;
  "api -X")
    if [ "$3" = GET ]; then printf '%s\\n' "$PR"
    else for a in "$@"; do case "$a" in body=@*) cp "${a#body=@}" "$POSTED" ;; esac; done; fi ;;
  "api --paginate") printf '%s\\n' "$EXISTING" ;;
  *) exit 3 ;;
esac
"""


def _comment(tmp_path: Path, *, artifact: str = "yes", pr: str = "42", existing: str = "",
             comment: str = "## plan\n```\nx\n```\n") -> tuple[subprocess.CompletedProcess[str], list[str], str]:
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "gh", FAKE_GH)
    calls, posted = tmp_path / "calls", tmp_path / "posted.md"
    step = load("preview-comment.yml")["jobs"]["comment"]["steps"][0]
    env = {"CALLS": str(calls), "POSTED": str(posted), "ARTIFACT": artifact, "PR": pr, "EXISTING": existing,
           "COMMENT": comment, "RUNNER_TEMP": str(tmp_path / "tmp"), "GH_TOKEN": "x", "REPO": "acme/gpu-platform",
           "RUN_ID": "777", "HEAD_SHA": "c0ffee" * 6 + "abcd", "HEAD_OWNER": "mallory", "HEAD_BRANCH": "patch-1"}
    done = run_script(step["run"], env, path_prepend=[bin_dir])
    return done, calls.read_text().splitlines() if calls.exists() else [], posted.read_text() if posted.exists() else ""


def test_comment_is_posted_on_the_pr_whose_head_is_the_runs_commit(tmp_path: Path) -> None:
    done, calls, posted = _comment(tmp_path, comment="## plan\n`````\nsneaky\n`````\n@everyone\n")
    assert done.returncode == 0, done.stdout + done.stderr
    lookup = next(c for c in calls if c.startswith("api -X GET"))
    assert "head=mallory:patch-1" in lookup and "state=open" in lookup
    assert ("c0ffee" * 6 + "abcd") in lookup  # matched on the exact head commit
    assert any(c.startswith("api -X POST repos/acme/gpu-platform/issues/42/comments") for c in calls)
    assert posted.startswith("<!-- gpu-platform:offline-preview -->\n**No real `pulumi preview` ran")
    # The PR's text sits inside a fence longer than any backtick run in it: it cannot break out.
    assert "``````markdown\n## plan\n`````\nsneaky" in posted
    assert posted.rstrip().endswith("``````")


def test_an_existing_comment_is_edited_not_duplicated(tmp_path: Path) -> None:
    done, calls, _ = _comment(tmp_path, existing="98765")
    assert done.returncode == 0, done.stderr
    assert any(c.startswith("api -X PATCH repos/acme/gpu-platform/issues/comments/98765") for c in calls)
    assert not any(c.startswith("api -X POST") for c in calls)


@pytest.mark.parametrize(("artifact", "pr", "says"), [
    ("no", "42", "has no offline-preview artifact"),
    ("yes", "", "no open pull request has head"),
])
def test_nothing_is_posted_without_an_artifact_or_a_matching_pr(tmp_path: Path, artifact: str, pr: str,
                                                                says: str) -> None:
    done, calls, _ = _comment(tmp_path, artifact=artifact, pr=pr)
    assert done.returncode == 0, done.stderr
    assert says in done.stdout
    assert not any(c.startswith(("api -X POST", "api -X PATCH")) for c in calls)


def test_verify_images_pins_the_identity_for_every_ref(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "cosign", 'echo "$*" >> "$CALLS"\n')
    step = load_action("verify-images")["runs"]["steps"][0]
    identity = "https://github.com/acme/gpu-platform/.github/workflows/images.yml@refs/heads/main"
    refs = [DEV["model-cache"], DEV["hf-server"]]
    calls = tmp_path / "calls"
    done = run_script(step["run"], {"REFS": " ".join(refs), "IDENTITY": identity, "CALLS": str(calls)},
                      path_prepend=[bin_dir])
    assert done.returncode == 0, done.stderr
    lines = calls.read_text().splitlines()
    assert [ln.split()[1] for ln in lines] == refs
    for ln in lines:
        assert f"--certificate-identity {identity}" in ln
        assert "--certificate-oidc-issuer https://token.actions.githubusercontent.com" in ln
    empty = run_script(step["run"], {"REFS": " ", "IDENTITY": identity, "CALLS": str(calls)}, path_prepend=[bin_dir])
    assert empty.returncode == 1 and "nothing to verify" in empty.stdout


def test_the_promoted_refs_step_lists_devs_digests(tmp_path: Path) -> None:
    out = tmp_path / "out"
    step = step_named(load("up.yml")["jobs"]["prod"], "The digests prod will run")
    done = run_script(step["run"], {"DEV_IMAGES": json.dumps(DEV), "GITHUB_OUTPUT": str(out)})
    assert done.returncode == 0, done.stderr
    assert sorted(_outputs(out)["refs"].split()) == sorted(DEV.values())
    empty = run_script(step["run"], {"DEV_IMAGES": "", "GITHUB_OUTPUT": str(out)})
    assert empty.returncode == 0
