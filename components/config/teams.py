"""The ``teams`` stack config: one entry per app team, parsed and validated.

``components/config/settings.py`` calls :func:`parse_teams` after the models, so a team that
names a model that does not exist is reported with every other problem, before any resource
is registered. One entry (``Pulumi.<stack>.yaml``; ``name`` and ``repository`` are required)::

    gpu-platform:teams:
      - name: search                 # DNS-1035 label: names the team's objects
        namespace: team-search       # default team-<name>; Pod Security restricted
        repository: acme/search-app  # GitHub owner/repo: gets the Actions secret KUBECONFIG
        models: [qwen-small]         # models entries the namespace may call; all others unreachable

What a team gets is built by ``components/app_team.py``; docs/app-teams.md explains it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from components.config.patterns import DNS_LABEL, HUB_REPO_PATTERN, github_repository_problem
from components.config.reader import ConfigReader, did_you_mean
from components.config.types import TeamSettings

#: Namespaces a team may never take: the cluster's own and the platform's.
RESERVED_NAMESPACES: Final = frozenset({"default", "kube-system", "kube-public", "kube-node-lease", "gpu-operator"})
MAX_NAME_LENGTH: Final = 40
DEFAULTS: Final[dict[str, Any]] = {"namespace": None, "models": [], "hubWrite": [], "hubDelete": []}
FIELDS: Final = ("name", "repository", *DEFAULTS)


def parse_teams(raw: Any, *, model_names: Iterable[str], model_namespace: str, problems: list[str],
                project: str = "gpu-platform") -> tuple[TeamSettings, ...]:
    """Validate the ``teams`` list; append one problem per bad field; return the good entries.

    ``model_names`` are the valid names written in ``models`` (an invalid name is reported on its
    own models entry; a team naming it is then told it names no model).
    """
    models = tuple(model_names)
    teams: list[TeamSettings] = []
    names: dict[str, int] = {}
    namespaces: dict[str, int] = {}
    repositories: dict[str, int] = {}
    for reader, item in ConfigReader.entries(raw, "teams", DEFAULTS, problems, project,
                                             what="team objects (name, repository, models)",
                                             example="`- name: search` / `  repository: owner/repo`"):
        team = _parse_entry(reader, item, reader.index, models, model_namespace, names, namespaces, repositories)
        if team is not None:
            teams.append(team)
    return tuple(teams)


def _parse_entry(e: ConfigReader, raw: dict[str, Any], i: int, models: tuple[str, ...], model_namespace: str,
                 names: dict[str, int], namespaces: dict[str, int],
                 repositories: dict[str, int]) -> TeamSettings | None:
    e.refuse_unknown(raw, FIELDS)
    name = e.entry_name(raw, names, max_length=MAX_NAME_LENGTH, names_what="the team's objects", example="search")

    namespace = e.get("namespace")
    if namespace is None:
        namespace = f"team-{name}"
    _check_namespace(e, i, namespace, model_namespace, namespaces)

    slug = raw.get("repository")
    owner = repository = ""
    if not isinstance(slug, str) or not slug:
        e.fail("repository", slug, "is required: the team's GitHub repository owner/repo (it gets the Actions "
               "secret KUBECONFIG)", f"set teams[{i}].repository, e.g. acme/search-app")
    else:
        owner, sep, repository = slug.strip().partition("/")
        why = "expected exactly one '/' (owner/repo)" if not sep or "/" in repository \
            else github_repository_problem(owner, repository)
        if why:
            e.fail("repository", slug, f"not a GitHub repository ({why})",
                   f"set teams[{i}].repository to owner/repo, e.g. acme/search-app")
        elif slug.lower() in repositories:
            e.fail("repository", slug, f"already belongs to teams[{repositories[slug.lower()]}]; each repository "
                   "holds one team's KUBECONFIG secret", f"give teams[{i}] its own repository")
        else:
            repositories[slug.lower()] = i

    allowed = e.strings("models")
    for model in allowed:
        if model not in models:
            known = ", ".join(models) or "none: the stack serves no models"
            e.fail("models", model, f"no model of that name{did_you_mean(model, models)}; models: {known}",
                   f"list names from gpu-platform:models in teams[{i}].models")
    if len(set(allowed)) != len(allowed):
        e.fail("models", list(allowed), "lists a model twice", f"remove the repeat from teams[{i}].models")

    if e.failed:
        return None
    hub_write = e.strings("hubWrite")
    hub_delete = e.strings("hubDelete")
    for field, patterns, example in (("hubWrite", hub_write, "acme-search"),
                                     ("hubDelete", hub_delete, "acme-search/scratch-*")):
        for pattern in patterns:
            if not HUB_REPO_PATTERN.fullmatch(pattern) or (field == "hubWrite" and "/" in pattern):
                what = "a Hub user or organisation (pattern)" if field == "hubWrite" else "a repo id pattern owner/name"
                e.fail(field, pattern, f"must be {what} for the hub-gateway (letters, digits, '.', '_', '-', '*', '?')",
                       f"set teams[{i}].{field} to e.g. [{example!r}]")
    if hub_delete and not hub_write:
        e.fail("hubDelete", list(hub_delete), "deleting through the hub-gateway needs write rights too",
               f"add the repos' namespace to teams[{i}].hubWrite")
    return TeamSettings(name=name, namespace=namespace, owner=owner, repository=repository,
                        models=tuple(dict.fromkeys(allowed)), hub_write=hub_write, hub_delete=hub_delete)


def _check_namespace(e: ConfigReader, i: int, namespace: object, model_namespace: str,
                     namespaces: dict[str, int]) -> None:
    fix = f"set teams[{i}].namespace to a namespace of its own, e.g. team-<name>"
    if not isinstance(namespace, str) or not DNS_LABEL.fullmatch(namespace):
        e.fail("namespace", namespace, "must be a DNS label (a-z, 0-9, '-', at most 63 characters)", fix)
    elif namespace == model_namespace:
        e.fail("namespace", namespace, "is the model namespace (modelNamespace): a team gets a namespace of its "
               "own and calls models over their Services", fix)
    elif namespace in RESERVED_NAMESPACES or namespace.startswith("kube-"):
        e.fail("namespace", namespace, "is a namespace of the cluster or the platform (kube-*, default, "
               "gpu-operator)", fix)
    elif namespace in namespaces:
        e.fail("namespace", namespace, f"is already teams[{namespaces[namespace]}]'s namespace", fix)
    else:
        namespaces[namespace] = i
