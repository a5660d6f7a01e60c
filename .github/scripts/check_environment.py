#!/usr/bin/env python3
"""Refuse to deploy into a GitHub environment that is missing or has no required reviewers.

GitHub creates an environment named by a job on first use, silently and with no protection, so
`environment: prod` alone does not make prod wait for an approval. This asks the REST API
(`GET /repos/{repo}/environments/{name}`, readable with the workflow token and `actions: read`)
and fails unless the environment exists with a `required_reviewers` rule naming at least one
reviewer. Run it in a job *before* the job that uses the environment, so nothing has been
created or approved yet when it fails.

    GITHUB_TOKEN=... GITHUB_REPOSITORY=acme/gpu-platform python3 .github/scripts/check_environment.py prod

Exit 0: protected. 1: missing or unprotected (one ::error line says what to set, and where).
2: the API could not be asked (token, network).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

FIX = ("Fix: Settings -> Environments -> '{name}': add Required reviewers (and Deployment branches: main); "
       "see docs/ci-cd.md, first-run checklist")


def problems(env: dict, name: str) -> list[str]:
    """What keeps this environment (the API's JSON) from gating a deploy; empty when it gates."""
    found = []
    rules = env.get("protection_rules") or []
    reviewers = [r for rule in rules if rule.get("type") == "required_reviewers" for r in rule.get("reviewers") or []]
    if not reviewers:
        found.append(f"environment '{name}' has no required reviewers, so a deploy would not wait for approval")
    if env.get("deployment_branch_policy") is None:
        found.append(f"environment '{name}' accepts deployments from any branch (set Deployment branches: main)")
    return found


def fetch(api: str, repo: str, name: str, token: str) -> tuple[int, dict]:
    url = f"{api}/repos/{repo}/environments/{urllib.parse.quote(name, safe='')}"
    req = urllib.request.Request(url, headers={
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": "2022-11-28",
    })
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: check_environment.py ENVIRONMENT", file=sys.stderr)
        return 2
    name = args[0]
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    repo, token = os.environ.get("GITHUB_REPOSITORY", ""), os.environ.get("GITHUB_TOKEN", "")
    if not repo or not token:
        print("::error title=cannot check the environment::GITHUB_REPOSITORY and GITHUB_TOKEN must be set")
        return 2
    try:
        status, env = fetch(api, repo, name, token)
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
        print(f"::error title=cannot check the environment::GET environments/{name} failed: {exc}")
        return 2
    if status == 404:
        print(f"::error title=environment '{name}' does not exist::GitHub would create it on first use with "
              f"no protection. {FIX.format(name=name)}")
        return 1
    if status != 200:
        print(f"::error title=cannot check the environment::GET environments/{name} answered HTTP {status} "
              "(the job needs `permissions: actions: read`)")
        return 2
    found = problems(env, name)
    for line in found:
        print(f"::error title=environment '{name}' is not protected::{line}. {FIX.format(name=name)}")
    if not found:
        rules = [r.get("type") for r in env.get("protection_rules") or []]
        print(f"environment '{name}' is protected: {', '.join(rules)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
