#!/usr/bin/env python3
"""Decide which preview a pull request gets: the real `pulumi preview`, or the offline plan + diff.

A real preview needs the repository's Actions secrets. GitHub withholds them from pull requests
from forks and from runs Dependabot triggers (those get Dependabot secrets only), so those are
routed to the offline plan and diff, which need no credentials. Any other run without the
secrets goes the same way, with a warning, since it means the secrets were never set.

Input (environment): HEAD_REPO, BASE_REPO, ACTOR, HAS_PULUMI_TOKEN ('true'/'false', from
`secrets.PULUMI_ACCESS_TOKEN != ''`, so the secret itself never reaches this script).
Output: `mode=real|offline` and `reason=...` appended to $GITHUB_OUTPUT (stdout when unset).
"""

from __future__ import annotations

import os
import sys

DEPENDABOT = "dependabot[bot]"


def route(head_repo: str, base_repo: str, actor: str, has_pulumi_token: bool) -> tuple[str, str, bool]:
    """(mode, reason, misconfigured): misconfigured is True when the secrets should have been there."""
    if head_repo != base_repo:
        return ("offline", (f"this pull request comes from the fork {head_repo}, and GitHub gives "
                "pull requests from forks no secrets"), False)
    if actor == DEPENDABOT:
        return ("offline", ("this run was triggered by Dependabot, and GitHub gives Dependabot's runs "
                "only Dependabot secrets, not the Actions secrets a preview needs"), False)
    if not has_pulumi_token:
        return ("offline", ("the repository secret PULUMI_ACCESS_TOKEN is not available to this run "
                "(set it: docs/ci-cd.md, first-run checklist)"), True)
    return ("real", "the repository secrets are available to this same-repository pull request", False)


def main() -> int:
    env = os.environ
    mode, reason, misconfigured = route(
        env.get("HEAD_REPO", ""), env.get("BASE_REPO", ""), env.get("ACTOR", ""),
        env.get("HAS_PULUMI_TOKEN", "false") == "true",
    )
    if misconfigured:
        print(f"::warning title=no real preview::{reason}")
    print(f"preview mode: {mode} ({reason})")
    lines = f"mode={mode}\nreason={reason}\n"
    out = env.get("GITHUB_OUTPUT")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(lines)
    else:
        sys.stdout.write(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
