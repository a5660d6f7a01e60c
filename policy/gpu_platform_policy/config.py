"""Policy config: each policy's JSON schema, with the defaults the platform itself runs with.

Pulumi keeps config per policy (``{"<policy-name>": {"<key>": value}}`` in the file passed with
``--policy-pack-config``), so a setting two policies share (which stacks count as production) is
declared in both, from the one definition here. Defaults live in the schema only; :func:`settings`
fills them in, so the schema an app team reads is the behaviour it gets.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pulumi_policy import PolicyConfigSchema

STRING_LIST: Mapping[str, Any] = {"type": "array", "items": {"type": "string"}}

PRODUCTION_STACKS: Mapping[str, Any] = {
    **STRING_LIST,
    "description": "Stack names (glob patterns) that count as production; the stack name is read from each "
                   "resource's URN.",
    "default": ["prod", "production", "prod-*", "*-prod"],
}

WORKLOAD_NAMESPACES: Mapping[str, Any] = {
    **STRING_LIST,
    "description": "Namespaces (glob patterns) whose workloads this rule covers: the model namespace and the "
                   "app teams' namespaces.",
    "default": ["models", "team-*"],
}

EXEMPT_NAMES: Mapping[str, Any] = {
    **STRING_LIST,
    "description": "Pulumi logical resource names (glob patterns) this rule skips; say why next to the entry.",
    "default": [],
}


def schema(properties: Mapping[str, Mapping[str, Any]]) -> PolicyConfigSchema:
    """A policy's config schema; every property carries its default."""
    missing = [key for key, prop in properties.items() if "default" not in prop]
    if missing:
        raise ValueError(f"config properties without a default: {missing}")
    return PolicyConfigSchema(properties={key: copy.deepcopy(dict(prop)) for key, prop in properties.items()})


def settings(config_schema: PolicyConfigSchema | None, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The policy's effective config: the schema's defaults, overridden by what the stack set."""
    values = {key: copy.deepcopy(prop["default"])
              for key, prop in (config_schema.properties if config_schema else {}).items()}
    values.update({key: value for key, value in (given or {}).items() if key != "enforcementLevel"})
    return values
