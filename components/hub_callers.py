"""HubCallers: one hub-gateway token per app team, generated, and handed to the gateway and the team.

The gateway holds the Hugging Face token so no team has to; teams authenticate to the gateway
with a token of their own. This component generates those tokens (pulumi-random: a 48-character
``RandomPassword`` each, no special characters so they travel in a header unquoted), writes the
gateway's callers document (``callers.json``: each team's token and its write/delete patterns,
docs/hub-gateway.md) into a Secret the gateway mounts, and gives each team its token in a Secret
of the team's namespace, ``hub-gateway`` (keys ``HF_TOKEN`` and ``HF_ENDPOINT``: a pod that
``envFrom``s it talks to the gateway through ``huggingface_hub`` unchanged).

Rotating a team's token: ``pulumi up --replace <its RandomPassword URN>``; the callers Secret is
auto-named, so the gateway's pods roll onto the new document. Tokens are Pulumi secrets end to end
and appear in no stack output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config.types import TeamSettings
from components.hub_gateway import CALLERS_KEY
from components.kubernetes import standard_labels

TEAM_SECRET_NAME: Final = "hub-gateway"
TOKEN_LENGTH: Final = 48


@dataclass(frozen=True)
class HubCallersArgs:
    gateway_namespace: pulumi.Input[str]
    """Where the gateway runs (its callers Secret lives there)."""
    endpoint: pulumi.Input[str]
    """The gateway's in-cluster URL, written beside each team's token."""
    teams: Sequence[TeamSettings]
    team_namespaces: Mapping[str, pulumi.Input[str]]
    """Team name -> its namespace (an Output of the team's Namespace, so the Secret waits for it)."""


def callers_document(teams: Sequence[TeamSettings], tokens: Sequence[str]) -> str:
    """The gateway's callers file: ``{team: {token, write, delete}}`` (docs/hub-gateway.md)."""
    return json.dumps({
        team.name: {"token": token, "write": list(team.hub_write), "delete": list(team.hub_delete)}
        for team, token in zip(teams, tokens, strict=True)
    }, sort_keys=True)


class HubCallers(pulumi.ComponentResource):
    """Team tokens for the hub-gateway: generated, in the gateway's callers Secret and each team's Secret."""

    callers_secret_name: pulumi.Output[str]

    def __init__(self, name: str, args: HubCallersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-platform:index:HubCallers", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tokens: list[pulumi.Output[str]] = []
        self.team_secrets: dict[str, k8s.core.v1.Secret] = {}
        for team in args.teams:
            password = random.RandomPassword(f"{name}-{team.name}", length=TOKEN_LENGTH, special=False, opts=child)
            # The provider marks `result` secret itself; the wrapping here does not depend on that.
            token = pulumi.Output.secret(password.result)
            tokens.append(token)
            self.team_secrets[team.name] = k8s.core.v1.Secret(
                f"{name}-{team.name}-token",
                # A fixed name: the team's workloads reference it (envFrom: secretRef: hub-gateway).
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=TEAM_SECRET_NAME, namespace=args.team_namespaces[team.name],
                    labels=standard_labels(TEAM_SECRET_NAME, "hub-gateway-caller"),
                ),
                type="Opaque",
                string_data={"HF_TOKEN": token, "HF_ENDPOINT": args.endpoint},
                opts=child,
            )
        document = pulumi.Output.all(*tokens).apply(lambda values: callers_document(args.teams, values))
        self.callers_secret = k8s.core.v1.Secret(
            f"{name}-callers",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                namespace=args.gateway_namespace, labels=standard_labels("hub-gateway", "hub-gateway-callers"),
            ),
            type="Opaque",
            string_data={CALLERS_KEY: pulumi.Output.secret(document)},
            opts=child,
        )
        self.callers_secret_name = self.callers_secret.metadata.apply(lambda m: m.name)
        self.register_outputs({"callersSecretName": self.callers_secret_name})
