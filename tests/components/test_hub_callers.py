"""The hub-gateway's callers: one generated token per team, in the gateway's callers Secret and the
team's own Secret, never in plain text, and the team's NetworkPolicy lets it reach the gateway."""

from __future__ import annotations

import json

from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

from components.app_team import team_network_policy_spec
from components.config.types import TeamSettings
from components.hub_callers import TEAM_SECRET_NAME, HubCallers, HubCallersArgs, callers_document
from tests.support.mocks import is_secret, record_secret_data, register, resolve

SEARCH = TeamSettings(name="search", namespace="team-search", owner="acme", repository="search-app",
                      models=("qwen-small",), hub_write=("acme-search",), hub_delete=("acme-search/scratch-*",))
CHAT = TeamSettings(name="chat", namespace="team-chat", owner="acme", repository="chat-app")
ENDPOINT = "http://hub-gateway.models.svc.cluster.local:8080"


def _register():
    return register(lambda: HubCallers("hub-callers", HubCallersArgs(
        gateway_namespace="models", endpoint=ENDPOINT, teams=(SEARCH, CHAT),
        team_namespaces={"search": "team-search", "chat": "team-chat"})))


def test_each_team_gets_its_own_generated_token_as_a_secret() -> None:
    callers, records = _register()
    passwords = [r for r in records if r.type == "random:index/randomPassword:RandomPassword"]
    assert sorted(r.name for r in passwords) == ["hub-callers-chat", "hub-callers-search"]
    assert all(r.inputs["length"] >= 40 and r.inputs["special"] is False for r in passwords)
    secrets = {r.name: r for r in records if r.type == "kubernetes:core/v1:Secret"}
    team_secret = secrets["hub-callers-search-token"]
    assert team_secret.inputs["metadata"]["name"] == TEAM_SECRET_NAME
    assert team_secret.inputs["metadata"]["namespace"] == "team-search"
    assert is_rpc_secret(team_secret.inputs["stringData"])
    data = unwrap_rpc_secret(team_secret.inputs["stringData"])
    assert data["HF_ENDPOINT"] == ENDPOINT
    token = unwrap_rpc_secret(data["HF_TOKEN"]) if is_rpc_secret(data["HF_TOKEN"]) else data["HF_TOKEN"]
    # The gateway's document holds the same token, with the team's rights.
    document = secrets["hub-callers-callers"].inputs["stringData"]
    raw = unwrap_rpc_secret(document)["callers.json"]
    parsed = json.loads(unwrap_rpc_secret(raw) if is_rpc_secret(raw) else raw)
    assert parsed["search"] == {"token": token, "write": ["acme-search"], "delete": ["acme-search/scratch-*"]}
    assert parsed["chat"]["write"] == [] and parsed["chat"]["token"] != token
    assert resolve(callers.callers_secret_name).startswith("hub-callers-callers")


def test_the_component_marks_the_tokens_secret_itself(monkeypatch) -> None:
    """The mock returns RandomPassword.result plain (the engine's marking is not mocked)."""
    from components import hub_callers

    built = record_secret_data(monkeypatch, hub_callers)
    _register()
    assert len(built) == 3
    for data in built:
        secret_keys = [k for k in data if k != "HF_ENDPOINT"]
        assert secret_keys and all(is_secret(data[k]) for k in secret_keys)


def test_callers_document_is_the_gateways_format() -> None:
    assert json.loads(callers_document((SEARCH,), ("t" * 48,))) == {
        "search": {"token": "t" * 48, "write": ["acme-search"], "delete": ["acme-search/scratch-*"]}}


def test_a_team_may_reach_the_gateway_only_when_the_stack_runs_it() -> None:
    def gateway_rules(spec: dict) -> list[dict]:
        return [rule for rule in spec["egress"] if rule.get("ports") == [{"protocol": "TCP", "port": 8080}]]

    [rule] = gateway_rules(team_network_policy_spec(SEARCH, "models", hub_gateway=True))
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "models"}},
                           "podSelector": {"matchLabels": {"app.kubernetes.io/name": "hub-gateway"}}}]
    assert not gateway_rules(team_network_policy_spec(SEARCH, "models", hub_gateway=False))
