"""Name patterns the configuration and the components check, each written once.

Use them with ``fullmatch``: ``re.match`` with a ``$`` anchor would accept a trailing newline
(``"qwen-small\\n"`` would become a Service name).
"""

from __future__ import annotations

import re
from typing import Final

#: A GitHub user or organisation: letters, digits and single inner hyphens, at most 39 characters.
GITHUB_OWNER: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
#: A GitHub repository name (``.`` and ``..`` are refused separately).
GITHUB_REPO: Final = re.compile(r"[A-Za-z0-9._-]{1,100}")
#: A DNS-1123 label: a namespace name.
DNS_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
#: A DNS-1035 label: a Service name (starts with a letter).
DNS_1035: Final = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
#: A Hub repo id or an fnmatch pattern of one (``owner/name``, ``gpt2``, ``acme/*``): the hub-gateway's
#: allow-list and the teams' write/delete rights.
HUB_REPO_PATTERN: Final = re.compile(r"[A-Za-z0-9*?][A-Za-z0-9._*?-]*(/[A-Za-z0-9*?][A-Za-z0-9._*?-]*)?")


def github_repository_problem(owner: str, repository: str) -> str | None:
    """Why ``owner/repository`` is not a GitHub repository, or None."""
    if not GITHUB_OWNER.fullmatch(owner):
        return f"owner {owner!r} is not a GitHub user or organisation name"
    if not GITHUB_REPO.fullmatch(repository) or repository in (".", ".."):
        return f"repository {repository!r} is not a GitHub repository name"
    return None
