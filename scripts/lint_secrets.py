"""Guardrail: Dockerfiles that could bake a secret in, and credential files that must not be committed.

    .venv/bin/python scripts/lint_secrets.py            # the repository (tracked + unignored files)
    .venv/bin/python scripts/lint_secrets.py PATH...    # given files only

Dockerfile rules (docs/secrets-and-images.md):
  D1 first line ``# syntax=docker/dockerfile:1`` (secret mounts need the BuildKit frontend);
  D2 no ARG or ENV whose name looks like a credential (ARG/ENV values land in the history/config);
  D3 no ARG/ENV value holding a URL with ``user:password@``;
  D4 a RUN that reads ``/run/secrets/ID`` mounts ``type=secret,id=ID`` itself (only that step sees it);
  D5 an ``hf_token`` mount is ``required=true`` (a build without the token fails at once), or
     ``required=false`` in a RUN that itself fails, naming ``--secret id=hf_token``, where it needs
     the token (hf-server needs it only to prefetch a model);
  D6 the final stage ends with a non-root USER;
  D7 no RUN sources a secret file as shell (``. /run/secrets/ID``, ``source ...``): an env-style
     secret is parsed for the keys the step expects, so a line in it is data, never code.
Credential files (any path): ``.netrc``/``_netrc``, ``.npmrc``/``.pypirc``/``pip.conf`` holding a
token or password, ``.env*`` with non-empty values (``.env.example``/``.env.sample`` with empty
values are fine), docker ``config.json`` with ``auths``, private keys.
Exit 1 with one line per finding (``path:line: RULE message``), 0 when clean.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from components.config.images import (
    BUILD_SECRET_IDS,
    HF_TOKEN_SECRET_ID,
    PIP_CA_SECRET_ID,
    PIP_INDEX_SECRET_ID,
)
from components.images import credential_like

#: The BuildKit secret ids the Dockerfiles mount (``RUN --mount=type=secret,id=...``). Python code
#: and tests take them from here; Dockerfiles, compose.yaml and build-image.sh spell them out, and
#: tests/images/test_dockerfiles.py checks those spellings against these names.
HF_TOKEN_SECRET = HF_TOKEN_SECRET_ID
PIP_INDEX_SECRET = PIP_INDEX_SECRET_ID
PIP_CA_SECRET = PIP_CA_SECRET_ID
BUILD_SECRETS = BUILD_SECRET_IDS

_URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:$]+:[^/@\s]+@", re.IGNORECASE)
_SECRET_MOUNT = re.compile(r"--mount=type=secret,([^\s]+)")
_SECRET_READ = re.compile(r"/run/secrets/([A-Za-z0-9_.-]+)")
_SECRET_SOURCED = re.compile(r"(?:^|[\s;&|(])(?:\.|source)\s+[\"']?/run/secrets/")
_NPM_AUTH = re.compile(r"(?:_authToken|_auth|_password|npmAuthToken|npmAuthIdent)\s*[=:]\s*(\S+)")
_SKIP_DIRS = {".git", ".venv", "node_modules", "out", "__pycache__", ".pytest_cache", ".ruff_cache", "build"}


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Dockerfile instructions with continuations joined, each with its first line number."""
    out: list[tuple[int, str]] = []
    current, start = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment inside a continued instruction
        if not current:
            start = number
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        out.append((start, current + stripped))
        current = ""
    if current:
        out.append((start, current))
    return out


def run_secret_mounts(run: str) -> dict[str, dict[str, str]]:
    """``{id: {"type": "secret", "id": ..., "required": ...}}`` of one RUN's secret mounts."""
    mounts = {}
    for spec in _SECRET_MOUNT.findall(run):
        fields = dict(f.split("=", 1) for f in f"type=secret,{spec}".split(",") if "=" in f)
        mounts[fields.get("id", "")] = fields
    return mounts


def secret_mounts(text: str) -> dict[str, dict[str, str]]:
    """Every secret a Dockerfile mounts, over all its RUN instructions (the last mount of an id wins)."""
    mounts: dict[str, dict[str, str]] = {}
    for _, line in logical_lines(text):
        if line.split(" ", 1)[0].upper() == "RUN":
            mounts.update(run_secret_mounts(line))
    return mounts


def _names_and_values(op: str, rest: str) -> list[tuple[str, str]]:
    if op == "ARG":
        name, _, value = rest.strip().partition("=")
        return [(name.strip(), value)]
    pairs = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\'[^\']*\'|\S*)', rest)
    if pairs:
        return pairs
    name, _, value = rest.strip().partition(" ")  # legacy ENV NAME value
    return [(name, value)]


def lint_dockerfile(path: Path, text: str | None = None) -> list[str]:
    text = path.read_text() if text is None else text
    problems: list[str] = []
    first = text.splitlines()[0].strip() if text.strip() else ""
    if not re.fullmatch(r"#\s*syntax=docker/dockerfile:1(\.\d+)*", first):
        problems.append(f"{path}:1: D1 first line must be '# syntax=docker/dockerfile:1'")
    last_user: str | None = None
    for number, line in logical_lines(text):
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            last_user = None
        elif op == "USER":
            last_user = rest.strip()
        elif op in ("ARG", "ENV"):
            for name, value in _names_and_values(op, rest):
                if credential_like(name):
                    problems.append(f"{path}:{number}: D2 {op} {name} looks like a credential: ARG/ENV values "
                                    "are stored in the image; use RUN --mount=type=secret,id=... instead")
                if _URL_CREDENTIALS.search(value):
                    problems.append(f"{path}:{number}: D3 {op} {name} holds a URL with user:password@")
        elif op == "RUN":
            mounts = run_secret_mounts(rest)
            for read in set(_SECRET_READ.findall(rest)):
                if read not in mounts:
                    problems.append(f"{path}:{number}: D4 reads /run/secrets/{read} without mounting "
                                    f"type=secret,id={read} in this RUN")
            hf = mounts.get(HF_TOKEN_SECRET)
            if hf is not None and hf.get("required") != "true" and f"--secret id={HF_TOKEN_SECRET}" not in rest:
                problems.append(f"{path}:{number}: D5 the {HF_TOKEN_SECRET} secret mount must be required=true, "
                                f"or the RUN must fail naming --secret id={HF_TOKEN_SECRET} where it needs it")
            if _SECRET_SOURCED.search(rest):
                problems.append(f"{path}:{number}: D7 a secret file is sourced as shell; read only the keys "
                                "the step expects (see the pip_index parser in images/model-cache/Dockerfile)")
    if last_user is None or last_user.split(":")[0] in ("", "root", "0"):
        problems.append(f"{path}: D6 the final stage must switch to a non-root USER")
    return problems


def lint_credential_file(path: Path, text: str) -> list[str]:
    name = path.name
    if name in (".netrc", "_netrc"):
        return [f"{path}: C1 a .netrc holds login credentials; never commit one"]
    if name in (".npmrc", ".yarnrc", ".yarnrc.yml"):
        # A value is a credential unless it only refers to the environment (``${NPM_TOKEN}``).
        literal = [n for n, line in enumerate(text.splitlines(), 1)
                   if (m := _NPM_AUTH.search(line)) and not re.fullmatch(r"""["']?\$\{\w+\}["']?""", m.group(1))]
        if literal:
            return [(f"{path}:{literal[0]}: C2 {name} holds a registry token; write ${{NPM_TOKEN}} and set "
                     "NPM_TOKEN in the environment")]
    if name in (".pypirc", "pip.conf", "pip.ini") and (re.search(r"(?im)^\s*password\s*=\s*\S", text)
                                                      or _URL_CREDENTIALS.search(text)):
        return [f"{path}: C3 {name} holds an index password"]
    if re.fullmatch(r"\.env(\..+)?", name) and not re.search(r"\.(example|sample|template|dist)$", name):
        assigned = [n for n, line in enumerate(text.splitlines(), 1)
                    if re.match(r"\s*(export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=\s*\S", line)
                    and not re.match(r"\s*(export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=\s*(\"\"|'')\s*$", line)]
        if assigned:
            return [f"{path}:{assigned[0]}: C4 {name} assigns values; commit a .env.example with empty values"]
    if name == "config.json" and path.parent.name == ".docker" and '"auths"' in text:
        return [f"{path}: C5 docker config.json with registry auths"]
    if re.search(r"-----BEGIN ((RSA|EC|DSA|OPENSSH|ENCRYPTED) )?PRIVATE KEY-----", text):
        return [f"{path}: C6 private key"]
    return []


def repository_files(root: Path) -> list[Path]:
    """Tracked and untracked-but-not-ignored files (what the next commit could contain)."""
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], capture_output=True, check=True, timeout=60).stdout
        return [root / p for p in sorted(set(listed.decode().split("\0"))) if p and (root / p).is_file()]
    except (OSError, subprocess.SubprocessError):
        return [p for p in root.rglob("*") if p.is_file() and not _SKIP_DIRS & set(p.relative_to(root).parts)]


def is_dockerfile(path: Path) -> bool:
    if path.name.endswith(".dockerignore"):  # Dockerfile.dockerignore: BuildKit's per-Dockerfile ignore file
        return False
    return path.name == "Dockerfile" or path.name.startswith("Dockerfile.") or path.suffix == ".Dockerfile"


def lint(paths: Iterable[Path]) -> list[str]:
    problems: list[str] = []
    for path in paths:
        try:
            text = path.read_text(errors="replace") if path.stat().st_size < 2_000_000 else ""
        except OSError:
            continue
        if is_dockerfile(path):
            problems += lint_dockerfile(path, text)
        problems += lint_credential_file(path, text)
    return problems


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] if argv else repository_files(REPO)
    problems = lint(paths)
    for line in problems:
        print(line)
    shown = f"{len(paths)} files" if argv else f"{len(paths)} repository files"
    print(f"lint_secrets: {len(problems)} problem(s) in {shown}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
