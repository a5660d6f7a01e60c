"""A ``ConfigSource`` over plain values: the stand-in for ``pulumi.Config`` in settings tests."""

from __future__ import annotations

import json
from typing import Any

import pulumi

from components.config.settings import SettingsError, load_settings
from components.config.types import PlatformSettings


class DictConfig:
    """Values JSON-encoded the way the Pulumi CLI hands them to the program; ``None`` means unset."""

    def __init__(self, values: dict[str, Any], secrets: dict[str, str] | None = None) -> None:
        self.values = values
        self.secrets = secrets or {}

    def get(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None:
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def get_secret(self, key: str) -> pulumi.Output[str] | None:
        if key in self.secrets:
            return pulumi.Output.secret(self.secrets[key])
        value = self.get(key)  # pulumi.Config.get_secret also reads a plain value, marked secret
        return None if value is None else pulumi.Output.secret(value)

    def set_keys(self) -> set[str]:
        return {k for k, v in self.values.items() if v is not None} | set(self.secrets)

    def is_secret(self, key: str) -> bool:
        return key in self.secrets


#: A hub-gateway image CI built: the gateway is on by default, and a stack that neither builds nor
#: promotes images pins each image it runs. Tests pass ``hubGatewayImage: None`` to leave it out.
GATEWAY_IMAGE = "ghcr.io/acme/gpu-platform/hub-gateway@sha256:" + "3" * 64


def load(values: dict[str, Any], secrets: dict[str, str] | None = None) -> PlatformSettings:
    """Settings of a stack named ``test`` with these values (and a pinned hub-gateway image)."""
    return load_settings(DictConfig({"hubGatewayImage": GATEWAY_IMAGE, **values}, secrets), project="gpu-platform",
                         stack="test")


def problems_of(values: dict[str, Any], secrets: dict[str, str] | None = None) -> list[str]:
    """The problems ``load`` reports; fails the test if the values are accepted."""
    try:
        load(values, secrets)
    except SettingsError as exc:
        return exc.problems
    raise AssertionError(f"settings accepted {values!r}")
