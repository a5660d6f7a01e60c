#!/usr/bin/env python3
"""Refuse a GitHub credential for the pulumi-github provider that is the wrong kind.

The provider writes Actions secrets, variables and environment secrets, which the workflow's own
token may not. Accepted: a GitHub App installation token minted in this run
(actions/create-github-app-token; APP_TOKEN_MINTED=true), or a fine-grained personal access
token (`github_pat_...`) in the secret GH_PROVIDER_TOKEN, limited to this repository.
Refused, each with the reason: a stored App installation token (`ghs_`: it expires within an
hour, so the next run fails), a classic PAT (`ghp_`: every repository its owner can reach), an
OAuth or user-to-server token (`gho_`, `ghu_`), anything else, or nothing.

Input (environment): GH_PROVIDER_TOKEN, APP_TOKEN_MINTED. The token is never printed.
Exit 0: usable. 1: refused (one ::error line with the fix).
"""

from __future__ import annotations

import os
import sys

FIX = ("Fix: store a fine-grained PAT (this repository only; Secrets, Variables, Environments: read and write) "
       "as the secret GH_PROVIDER_TOKEN, or set the variable GH_APP_CLIENT_ID and the secret GH_APP_PRIVATE_KEY "
       "so each run mints its own App token (docs/ci-cd.md, credentials)")
REFUSED = {
    "ghs_": "it is a GitHub App installation token, which expires within an hour of being minted, so a stored "
            "one breaks the next run",
    "ghp_": "it is a classic personal access token, which reaches every repository its owner can",
    "gho_": "it is an OAuth app token",
    "ghu_": "it is a GitHub App user-to-server token",
}


def verdict(token: str, app_token_minted: bool) -> str | None:
    """None when usable, else why not (without the token)."""
    if app_token_minted:
        return None
    if not token:
        return "no credential: the secret GH_PROVIDER_TOKEN is empty and no App token was minted in this run"
    if token.startswith("github_pat_"):
        return None
    for prefix, why in REFUSED.items():
        if token.startswith(prefix):
            return f"GH_PROVIDER_TOKEN is refused: {why}"
    return "GH_PROVIDER_TOKEN is not a fine-grained personal access token (those start with github_pat_)"


def main() -> int:
    problem = verdict(os.environ.get("GH_PROVIDER_TOKEN", ""), os.environ.get("APP_TOKEN_MINTED") == "true")
    if problem:
        print(f"::error title=GitHub credential refused::{problem}. {FIX}")
        return 1
    kind = "App token minted in this run" if os.environ.get("APP_TOKEN_MINTED") == "true" else "fine-grained PAT"
    print(f"GitHub credential for pulumi-github: {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
