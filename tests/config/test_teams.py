"""The ``teams`` list, deleteUnreachable and exportAdminKubeconfig: parsed once, bad input refused
with the key, the value and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from components.config.types import TeamSettings
from tests.support.config import load, problems_of

MODELS = [{"name": "qwen-small", "repo": "Qwen/Qwen2.5-0.5B-Instruct"},
          {"name": "qwen-large", "repo": "Qwen/Qwen3-8B"}]


def team(**fields: Any) -> dict[str, Any]:
    return {"name": "search", "repository": "acme/search-app", "models": ["qwen-small"], **fields}


def with_teams(*teams: dict[str, Any], **values: Any) -> dict[str, Any]:
    return {"models": MODELS, "modelCacheImage": "ghcr.io/acme/gpu-platform/model-cache@sha256:" + "a" * 64,
            "gpuNodeCount": 2, "teams": list(teams), **values}


def team_problems(*teams: dict[str, Any], **values: Any) -> list[str]:
    found = [p for p in problems_of(with_teams(*teams, **values)) if ":teams" in p]
    assert found, "expected a teams problem"
    return found


def test_a_team_entry_becomes_frozen_settings() -> None:
    settings = load(with_teams(team(), team(name="chat", namespace="chat-prod", repository="acme/chat",
                                            models=["qwen-small", "qwen-large"])))
    assert settings.teams == (
        TeamSettings(name="search", namespace="team-search", owner="acme", repository="search-app",
                     models=("qwen-small",)),
        TeamSettings(name="chat", namespace="chat-prod", owner="acme", repository="chat",
                     models=("qwen-small", "qwen-large")),
    )
    assert settings.teams_calling("qwen-small") == ("team-search", "chat-prod")
    assert settings.teams_calling("qwen-large") == ("chat-prod",)


def test_no_teams_by_default() -> None:
    assert load({}).teams == ()


@pytest.mark.parametrize(("namespace", "needle"), [
    ("models", "is the model namespace"),
    ("gpu-operator", "is a namespace of the cluster or the platform"),
    ("kube-system", "is a namespace of the cluster or the platform"),
    ("kube-anything", "is a namespace of the cluster or the platform"),
    ("default", "is a namespace of the cluster or the platform"),
    ("Team_Search", "must be a DNS label"),
])
def test_a_namespace_that_is_not_the_teams_own_is_refused(namespace: str, needle: str) -> None:
    [problem] = team_problems(team(namespace=namespace))
    assert problem.startswith(f"gpu-platform:teams[0] (name 'search'): namespace = {namespace!r}: {needle}")
    assert "Fix: set teams[0].namespace to a namespace of its own" in problem


def test_the_configured_model_namespace_is_the_one_refused() -> None:
    [problem] = team_problems(team(namespace="inference"), modelNamespace="inference")
    assert "is the model namespace" in problem
    assert load(with_teams(team(namespace="models"), modelNamespace="inference")).teams[0].namespace == "models"


def test_two_teams_may_not_share_a_namespace() -> None:
    [problem] = team_problems(team(namespace="apps"), team(name="chat", repository="acme/chat", namespace="apps"))
    assert problem.startswith("gpu-platform:teams[1] (name 'chat'): namespace = 'apps': is already teams[0]'s")


def test_two_teams_may_not_share_a_name_or_a_repository() -> None:
    problems = team_problems(team(), team(namespace="other", repository="ACME/search-app"))
    assert any("name = 'search': duplicates teams[0].name" in p for p in problems)
    assert any("repository = 'ACME/search-app': already belongs to teams[0]" in p for p in problems)


@pytest.mark.parametrize("repository", ["search-app", "acme/search/app", "acme/", "-acme/x", "acme/..",
                                        "https://github.com/acme/x", "acme/sp ace", ""])
def test_a_malformed_repository_is_refused(repository: str) -> None:
    [problem] = team_problems(team(repository=repository))
    assert problem.startswith("gpu-platform:teams[0] (name 'search'): repository = ")
    assert "Fix: set teams[0].repository to owner/repo" in problem or "Fix: set teams[0].repository, e.g." in problem


def test_a_model_that_does_not_exist_is_refused_with_a_suggestion() -> None:
    [problem] = team_problems(team(models=["qwen-smal"]))
    assert problem.startswith("gpu-platform:teams[0] (name 'search'): models = 'qwen-smal': no model of that name "
                              "(did you mean 'qwen-small'?); models: qwen-small, qwen-large")
    assert "Fix: list names from gpu-platform:models in teams[0].models" in problem


def test_an_unknown_field_is_refused_with_a_suggestion() -> None:
    [problem] = team_problems(team(namespce="team-x"))
    assert problem.startswith("gpu-platform:teams[0] (name 'search'): namespce = 'team-x': unknown field "
                              "(did you mean 'namespace'?)")
    assert "Fix: remove teams[0].namespce or correct its spelling" in problem


@pytest.mark.parametrize(("teams", "needle"), [
    ({"name": "search"}, "gpu-platform:teams = {\"name\": \"search\"}: must be a list"),
    ([["search"]], "teams[0] = [\"search\"]: must be an object"),
    ([{"repository": "acme/x"}], "teams[0]: name = null: is required"),
    ([{"name": "search"}], "repository = null: is required"),
    ([team(name="Search")], "must be a DNS-1035 label"),
    ([team(models="qwen-small")], "models = 'qwen-small': must be a list"),
    ([team(models=["qwen-small", "qwen-small"])], "lists a model twice"),
])
def test_other_bad_entries_are_refused(teams: Any, needle: str) -> None:
    problems = problems_of(with_teams() | {"teams": teams})
    assert any(needle in p for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(with_teams(team(namespace="kube-system", repository="x", models=["nope"])))
    assert len([p for p in problems if "teams[0]" in p]) == 3


def test_delete_unreachable_is_off_by_default_and_refused_in_prod() -> None:
    assert load({}).cluster.delete_unreachable is False
    assert load({"deleteUnreachable": True}).cluster.delete_unreachable is True
    problems = problems_of({"environment": "prod", "apiAllowedCidrs": ["198.51.100.0/24"], "deleteUnreachable": True})
    [problem] = problems
    assert problem.startswith("gpu-platform:deleteUnreachable = true: prod keeps Kubernetes resources")
    assert "Fix: pulumi config set deleteUnreachable false" in problem


def test_export_admin_kubeconfig_is_an_explicit_opt_in() -> None:
    assert load({}).export_admin_kubeconfig is False
    assert load({"environment": "prod", "apiAllowedCidrs": ["198.51.100.0/24"],
                 "exportAdminKubeconfig": True}).export_admin_kubeconfig is True
    [problem] = problems_of({"exportAdminKubeconfig": "yes"})
    assert problem.startswith("gpu-platform:exportAdminKubeconfig = 'yes': must be true or false")
