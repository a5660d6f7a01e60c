"""The Hub API proxy, driven by the real huggingface_hub client and by hf-micro request bodies.

Upstream is a stand-in that records every request: the only Authorization it may ever see is
the gateway's own HF token, and refused calls must not reach it at all.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from .conftest import HF_TOKEN, TEAM_A_TOKEN, TEAM_RO_TOKEN, gateway_env


def call(gw, method: str, path: str, token: str | None = TEAM_A_TOKEN, body: object = None,
         raw: bytes | None = None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if raw is not None:
        return httpx2.request(method, f"{gw.url}{path}", headers=headers, content=raw, timeout=30)
    return httpx2.request(method, f"{gw.url}{path}", headers=headers, json=body, timeout=30)


def upstream_auth(write_hub) -> set[str | None]:
    return {r.authorization for r in write_hub.received}


def test_whoami_create_visibility_delete_with_the_real_client(proxy, write_hub):
    api = HfApi(endpoint=proxy.url, token=TEAM_A_TOKEN)
    me = api.whoami()
    assert me["name"] == "gw-owner" and "auth" not in me

    url = api.create_repo("team-a/fine-tune-1", private=True)
    assert url.repo_id == "team-a/fine-tune-1"
    assert write_hub.repos["team-a/fine-tune-1"]["private"] is True
    api.update_repo_settings("team-a/fine-tune-1", private=False)
    assert write_hub.repos["team-a/fine-tune-1"]["private"] is False
    api.create_repo("team-a/scratch-1", repo_type="dataset")
    api.delete_repo("team-a/scratch-1", repo_type="dataset")
    assert "team-a/scratch-1" not in write_hub.repos

    # What the Hub received: the Hub's own paths and bodies, with the gateway's token only.
    calls = [(r.method, r.path.split("?")[0]) for r in write_hub.received]
    assert calls == [("GET", "/api/whoami-v2"), ("POST", "/api/repos/create"),
                     ("PUT", "/api/models/team-a/fine-tune-1/settings"), ("POST", "/api/repos/create"),
                     ("DELETE", "/api/repos/delete")]
    assert write_hub.received[1].body == {"name": "fine-tune-1", "organization": "team-a", "type": "model",
                                          "visibility": "private"}
    assert write_hub.received[4].body == {"name": "scratch-1", "organization": "team-a", "type": "dataset"}
    assert upstream_auth(write_hub) == {f"Bearer {HF_TOKEN}"}

    audit = proxy.audit()
    assert [(a["caller"], a["action"], a["repo"], a["result"]) for a in audit] == [
        ("team-a", "create", "team-a/fine-tune-1", "ok"), ("team-a", "visibility", "team-a/fine-tune-1", "ok"),
        ("team-a", "create", "team-a/scratch-1", "ok"), ("team-a", "delete", "team-a/scratch-1", "ok")]


def test_hf_micro_bodies(proxy, write_hub):
    r = call(proxy, "GET", "/api/account")
    assert r.status_code == 200 and r.json()["name"] == "gw-owner" and HF_TOKEN not in r.text
    r = call(proxy, "POST", "/api/repo", body={"type": "model", "name": "team-a/micro", "private": True})
    assert r.status_code == 200, r.text
    assert write_hub.repos["team-a/micro"] == {"type": "model", "private": True}
    # A bare name lands in the gateway token's own namespace (team-a may write to gw-owner here).
    r = call(proxy, "POST", "/api/repo", body={"type": "space", "name": "bare", "private": False, "sdk": "docker"})
    assert r.status_code == 200, r.text
    assert write_hub.repos["gw-owner/bare"] == {"type": "space", "private": False}
    r = call(proxy, "PUT", "/api/repo", body={"type": "model", "namespace": "team-a/micro", "private": False})
    assert r.status_code == 200, r.text
    assert write_hub.repos["team-a/micro"]["private"] is False
    r = call(proxy, "DELETE", "/api/repo", body={"type": "model", "name": "team-a/scratch-x"})
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "RepoNotFound"  # never created: the Hub's 404
    assert upstream_auth(write_hub) == {f"Bearer {HF_TOKEN}"}


@pytest.mark.parametrize(("token", "method", "path", "body", "status"), [
    (None, "GET", "/api/account", None, 401),
    ("not-a-team-token-0123456789abcdef", "GET", "/api/whoami-v2", None, 401),
    (None, "POST", "/api/repo", {"type": "model", "name": "team-a/x"}, 401),
    ("wrong-token-0123456789abcdef0123", "DELETE", "/api/repo", {"type": "model", "name": "team-a/scratch-1"}, 401),
    (TEAM_RO_TOKEN, "POST", "/api/repo", {"type": "model", "name": "team-a/x"}, 403),
    (TEAM_RO_TOKEN, "POST", "/api/repos/create", {"name": "x", "organization": "team-a"}, 403),
    (TEAM_A_TOKEN, "POST", "/api/repo", {"type": "model", "name": "other-team/x"}, 403),
    (TEAM_A_TOKEN, "PUT", "/api/repo", {"type": "model", "namespace": "other-team/x", "private": True}, 403),
    (TEAM_A_TOKEN, "DELETE", "/api/repo", {"type": "model", "name": "team-a/production-model"}, 403),
    (TEAM_A_TOKEN, "DELETE", "/api/repos/delete", {"name": "keep", "organization": "team-a"}, 403),
    (TEAM_A_TOKEN, "PUT", "/api/models/other-team/x/settings", {"private": True}, 403),
], ids=["whoami-no-token", "whoami-wrong-token", "create-no-token", "delete-wrong-token", "create-read-only",
        "hub-create-read-only", "create-other-namespace", "visibility-other-namespace", "delete-outside-pattern",
        "hub-delete-outside-pattern", "hub-settings-other-namespace"])  # ids: no token in the test output
def test_refused_calls_reach_nothing_upstream(proxy, write_hub, token, method, path, body, status):
    r = call(proxy, method, path, token=token, body=body)
    assert r.status_code == status, r.text
    assert "error" in r.json()
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert write_hub.received == []
    if method != "GET":
        (line,) = proxy.audit()
        assert line["result"] == ("unauthenticated" if status == 401 else "denied")
        assert line["caller"] == {TEAM_RO_TOKEN: "readers", TEAM_A_TOKEN: "team-a"}.get(token)


@pytest.mark.parametrize(("method", "path", "raw", "status", "says"), [
    ("POST", "/api/repo", b"", 400, "empty"),
    ("POST", "/api/repo", b'{"name": "' + b"a" * 70_000 + b'"}', 413, "larger than 65536 bytes"),
    ("POST", "/api/repo", b"{not json", 400, "not valid JSON"),
    ("POST", "/api/repo", b'["team-a/x"]', 400, "JSON object"),
    ("POST", "/api/repo", b'{"type": "model"}', 422, "'name' is required"),
    ("POST", "/api/repo", b'{"type": "model", "name": "team-a/x", "private": "yes"}', 422, "'private'"),
    ("POST", "/api/repo", b'{"type": "modle", "name": "team-a/x"}', 422, "'type'"),
    ("POST", "/api/repo", b'{"name": "team-a/x", "privat": true}', 422, "'privat' is not accepted"),
    ("POST", "/api/repo", b'{"name": "team-a/../x"}', 422, "not a valid repo id"),
    ("PUT", "/api/repo", b'{"type": "model", "namespace": "team-a/x"}', 422, "'private' is required"),
    ("PUT", "/api/models/team-a/x/settings", b'{"gated": "auto"}', 422, "'gated' is not accepted"),
    ("PUT", "/api/models/team-a/x/settings", b"{}", 422, "visibility"),
    ("POST", "/api/repos/create", b'{"name": "x", "organization": "team-a", "private": true, "visibility": "public"}',
     422, "contradicts"),
])
def test_bad_bodies_are_400_or_422_with_the_reason(proxy, write_hub, method, path, raw, status, says):
    r = call(proxy, method, path, raw=raw)
    assert r.status_code == status, r.text
    assert says in r.json()["error"], r.json()
    assert r.headers["X-Error-Message"] == r.json()["error"]  # the Hub's error format, read by huggingface_hub
    assert write_hub.received == []


@pytest.mark.parametrize(("status", "code", "message", "headers"), [
    (404, "RepoNotFound", "Repository not found", {}),
    (401, None, "Invalid credentials in Authorization header", {}),
    (429, None, "You have been rate-limited", {"Retry-After": "17"}),
    (500, None, "Internal Error - We're working hard to fix this", {}),
    (503, None, "Service Unavailable", {}),
])
def test_hub_errors_are_passed_on(proxy, write_hub, status, code, message, headers):
    write_hub.fail_next(status, code, message, headers)
    r = call(proxy, "POST", "/api/repo", body={"type": "model", "name": "team-a/x"})
    assert r.status_code == status
    assert r.json() == {"error": message}
    assert r.headers["X-Error-Message"] == message
    if code:
        assert r.headers["X-Error-Code"] == code
    for k, v in headers.items():
        assert r.headers[k] == v
    (line,) = proxy.audit()
    assert line["status"] == status and line["result"].startswith("hub-error")
    # and through the real client: the Hub's exception types survive the gateway
    write_hub.fail_next(status, code, message, headers)
    with pytest.raises(HfHubHTTPError) as info:
        HfApi(endpoint=proxy.url, token=TEAM_A_TOKEN).create_repo("team-a/y")
    assert info.value.response.status_code == status
    if code == "RepoNotFound":
        assert isinstance(info.value, RepositoryNotFoundError)


def test_a_slow_hub_gets_a_bounded_answer(launch, write_hub, env):
    gw = launch(gateway_env(env, write_hub.url, GATEWAY_UPSTREAM_TIMEOUT="1"))
    write_hub.stall_next(4)
    started = time.monotonic()
    r = call(gw, "GET", "/api/account")
    assert r.status_code == 504 and "did not answer within 1s" in r.json()["error"]
    assert time.monotonic() - started < 3.5


def test_an_unreachable_hub_is_a_502(launch, env):
    gw = launch(gateway_env(env, "http://127.0.0.1:9"))
    r = call(gw, "POST", "/api/repo", body={"type": "model", "name": "team-a/x"})
    assert r.status_code == 502 and "cannot be reached" in r.json()["error"]


def test_root_level_repo_passes_through_with_the_gateway_token(proxy, write_hub, tmp_path):
    path = hf_hub_download("gpt2", "config.json", endpoint=proxy.url, token=False, cache_dir=tmp_path)
    assert json.loads(Path(path).read_text())["model_type"] == "gpt2"
    assert {r.path for r in write_hub.received} == {"/gpt2/resolve/main/config.json"}
    assert upstream_auth(write_hub) == {f"Bearer {HF_TOKEN}"}
    # A root-level repo not on the allow-list: the Hub's 404, nothing sent.
    before = len(write_hub.received)
    r = httpx2.get(f"{proxy.url}/distilgpt2/resolve/main/config.json", timeout=10)
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "RepoNotFound"
    r = httpx2.get(f"{proxy.url}/api/models/distilgpt2/revision/main", timeout=10)
    assert r.status_code == 404 and "distilgpt2" in r.json()["error"]
    assert len(write_hub.received) == before


def test_a_chunked_body_is_limited_too(proxy, write_hub):
    def body():
        yield b'{"name": "'
        for _ in range(100):
            yield b"a" * 1000
        yield b'"}'

    r = httpx2.post(f"{proxy.url}/api/repo", headers={"Authorization": f"Bearer {TEAM_A_TOKEN}"}, content=body(),
                    timeout=30)
    assert r.status_code == 413 and "larger than" in r.json()["error"]
    assert write_hub.received == []
