"""Canary secrets: values no output, log, manifest or file may ever show in clear (nor base64-encoded)."""

from __future__ import annotations

import base64
from collections.abc import Iterable

CANARY_HF_TOKEN = "hf_canary_wiredProgram0123456789abcdef"  # pragma: allowlist secret
CANARY_REGISTRY_PASSWORD = "ghp_canaryRegistryWired0123456789abcdef"  # pragma: allowlist secret
CANARY_PIP_INDEX = "PIP_INDEX_URL=https://bot:pipCanaryWired0123456789@pypi.example.com/simple"  # pragma: allowlist secret
#: Secret config keys -> canary value.
CANARY_CONFIG = {"hfToken": CANARY_HF_TOKEN, "registryPassword": CANARY_REGISTRY_PASSWORD,
                 "pipIndex": CANARY_PIP_INDEX}


def leaked_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret as it could leak: raw, and base64 of it (a Kubernetes Secret's ``data``)."""
    forms: list[str] = []
    for secret in secrets:
        forms += [secret, base64.b64encode(secret.encode()).decode()]
    return forms


def assert_no_leak(text: str, secrets: Iterable[str]) -> None:
    for form in leaked_forms(secrets):
        assert form not in text, "a canary secret leaked"
