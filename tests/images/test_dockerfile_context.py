"""Every file a Dockerfile COPYs is one a fresh clone has (tracked, or addable: not git-ignored).

CI builds from a fresh clone: a COPY source that exists here only because it is ignored by
.gitignore builds locally and breaks there.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from components.config.images import PLATFORM_IMAGES
from scripts.lint_secrets import logical_lines
from tests.images.buildah import REPO

DOCKERFILES = {spec.dockerfile: spec.context for spec in PLATFORM_IMAGES}


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
    sources = copy_sources(REPO / dockerfile, {"REQUIREMENTS": requirements})
    # A parser that finds nothing would pass every Dockerfile: each one copies its program in.
    assert sources, f"no COPY/ADD source found in {dockerfile}: the parser is broken or the Dockerfile changed"
    for source in sources:
        path = f"{context}/{source}".rstrip("/").replace("/./", "/").removesuffix("/.")
        if path not in files and not any(f.startswith(path + "/") for f in files):
            missing.append(source)
    assert not missing, (f"{dockerfile} copies {missing}, which a fresh clone lacks (git-ignored or absent); "
                         "commit it (git add -f) or fix .gitignore")


def test_copy_sources_are_read_from_continued_and_flagged_lines(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM x AS a\nARG R=req.txt\nCOPY --chown=1:1 ${R} \\\n  src /app/\n"
                          "COPY --from=a /x /y\nADD data.tar /d\n")
    assert copy_sources(dockerfile, {}) == ["req.txt", "src", "data.tar"]
