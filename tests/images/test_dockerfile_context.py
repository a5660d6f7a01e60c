"""Every file a Dockerfile COPYs is one a fresh clone has (tracked, or addable: not git-ignored).

CI builds from a fresh clone: a COPY source that exists here only because it is ignored by
.gitignore builds locally and breaks there.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from scripts.lint_secrets import logical_lines
from tests.images.buildah import REPO

DOCKERFILES = {
    "images/model-cache/Dockerfile": "images/model-cache",
    "images/hf-server/Dockerfile.hf": "images/hf-server",
}


def copy_sources(dockerfile: Path, build_args: dict[str, str]) -> list[str]:
    sources = []
    args = dict(build_args)
    for _, line in logical_lines(dockerfile.read_text()):
        op, _, rest = line.partition(" ")
        if op.upper() == "ARG" and "=" in rest:
            key, _, value = rest.strip().partition("=")
            args.setdefault(key, value.strip("\"'"))
        if op.upper() not in ("COPY", "ADD"):
            continue
        words = rest.split()
        if any(w.startswith("--from=") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")][:-1]
        sources += [re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), p) for p in paths]
    return sources


def committable() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    return {p for p in listed if p}


@pytest.mark.parametrize("dockerfile", sorted(DOCKERFILES))
@pytest.mark.parametrize("requirements", ["requirements.txt", "requirements-buildtest.txt"])
def test_copy_sources_exist_in_a_fresh_clone(dockerfile: str, requirements: str) -> None:
    files = committable()
    context = DOCKERFILES[dockerfile]
    missing = []
    for source in copy_sources(REPO / dockerfile, {"REQUIREMENTS": requirements}):
        path = f"{context}/{source}".rstrip("/").replace("/./", "/").removesuffix("/.")
        if path not in files and not any(f.startswith(path + "/") for f in files):
            missing.append(source)
    assert not missing, (f"{dockerfile} copies {missing}, which a fresh clone lacks (git-ignored or absent); "
                         "commit it (git add -f) or fix .gitignore")
