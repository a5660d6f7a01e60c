"""What this program reads from the gpu-platform stack: the output names, in one place.

The platform publishes its contract in ``components/config/outputs.py`` (see docs/app-teams.md);
copy this file along with the example, and keep only the names you use. A renamed or missing
output, a team the platform does not know or a model the team may not call fails the program up
front, naming what is wrong and what the platform does offer.

The platform's stack outputs hold no kubeconfig: your team's kubeconfig reaches you as the
Actions secret ``KUBECONFIG`` of your own repository (set by the platform), and CI hands it to
this program as the secret config value ``kubeconfig``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pulumi

# Stack outputs of gpu-platform this program uses (names as the platform exports them).
TEAMS: Final = "teams"  # {team: {"namespace": str, "models": {model: in-cluster URL}}}

USED_OUTPUTS: Final[tuple[str, ...]] = (TEAMS,)


class PlatformContractError(Exception):
    """The platform stack does not export what this program needs."""


def _require_present(stack: str, name: str, outputs: dict[str, Any]) -> bool:
    if name not in outputs:
        raise PlatformContractError(
            f"platform stack {stack!r} has no output {name!r}; it exports: {', '.join(sorted(outputs)) or 'nothing'}. "
            "A renamed or removed output is a breaking change of the platform (docs/app-teams.md)."
        )
    return True


@dataclass(frozen=True)
class TeamAccess:
    """What the platform gives one team: its namespace and the model it calls."""

    namespace: str
    model: str
    model_url: str
    """The model's in-cluster URL (``http://<model>.<namespace>.svc.cluster.local:8000``)."""


def pick_team(teams: dict[str, Any], team: str, model: str | None, stack: str) -> TeamAccess:
    """The team's entry of the ``teams`` output and the model it calls (its only one by default)."""
    if team not in teams:
        raise PlatformContractError(
            f"platform stack {stack!r} has no team {team!r}; teams: {', '.join(sorted(teams)) or 'none'}. "
            "Ask the platform team to add yours to gpu-platform:teams."
        )
    entry = teams[team]
    allowed: dict[str, str] = dict(entry.get("models") or {})
    if model is None:
        if len(allowed) != 1:
            raise PlatformContractError(
                f"team {team!r} may call {len(allowed)} models ({', '.join(sorted(allowed)) or 'none'}); "
                "choose one with `pulumi config set model <name>`"
            )
        [model] = allowed
    if model not in allowed:
        raise PlatformContractError(
            f"team {team!r} may not call model {model!r}; it may call: {', '.join(sorted(allowed)) or 'none'}. "
            "The platform's NetworkPolicy blocks every other model: ask the platform team to add it to "
            "your teams entry's models."
        )
    return TeamAccess(namespace=entry["namespace"], model=model, model_url=allowed[model])


@dataclass(frozen=True)
class Platform:
    """The platform stack's outputs this program uses, each an Output."""

    stack: str
    teams: pulumi.Output[dict[str, Any]]

    @classmethod
    def from_stack(cls, stack: str) -> Platform:
        ref = pulumi.StackReference(stack)

        def require(name: str) -> pulumi.Output[Any]:
            # require_output alone fails with a bare KeyError; check presence first so the
            # error says which output is missing and what the platform does export. The check
            # is unsecreted (it only yields True) so each value keeps its own secrecy.
            present = pulumi.Output.unsecret(
                ref.outputs.apply(lambda outs: _require_present(stack, name, outs))
            )
            value = ref.require_output(name)
            return present.apply(lambda _: value)

        return cls(stack=stack, teams=require(TEAMS))

    def team(self, team: str, model: str | None) -> pulumi.Output[TeamAccess]:
        return self.teams.apply(lambda teams: pick_team(teams, team, model, self.stack))
