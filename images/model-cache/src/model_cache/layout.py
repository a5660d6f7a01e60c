"""Names: repo ids, revisions, file paths and the object keys they become.

Everything the Hub (or a manifest read back from the bucket) says is untrusted: a name is
validated here before it becomes a local path or an object key.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from urllib.parse import quote

from .errors import ValidationError

REPO_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$")
REVISION = re.compile(r"^[A-Za-z0-9._/-]{1,256}$")
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
PREFIX = re.compile(r"^[A-Za-z0-9._/-]*$")
MAX_REPO_ID = 96
MAX_KEY_BYTES = 1024

MANIFEST_NAME = "manifest.json"
# Names this tool writes into a restore destination; a repo file may not use them.
MARKER_NAME = ".model-cache-complete.json"
RESERVED_PREFIX = ".model-cache"


def validate_repo_id(repo_id: str | None, *, source: str = "MODEL_NAME") -> str:
    if not repo_id:
        raise ValidationError(f"{source} is not set: give the Hugging Face repo id as owner/name (or a "
                              "root-level name such as gpt2)")
    problem = None
    if len(repo_id) > MAX_REPO_ID:
        problem = f"longer than {MAX_REPO_ID} characters"
    elif repo_id.startswith("/") or "\\" in repo_id:
        problem = "absolute paths and backslashes are not allowed"
    elif ".." in repo_id or "--" in repo_id:
        problem = "'..' and '--' are not allowed"
    elif repo_id.count("/") > 1:
        problem = "expected owner/name, or a root-level name such as gpt2 (at most one '/')"
    elif not all(REPO_PART.fullmatch(part) for part in repo_id.split("/")) or repo_id.endswith(".git"):
        problem = "owner and name may use letters, digits, '-', '_' and '.' only (not first or last)"
    if problem:
        raise ValidationError(f"{source}={repo_id!r} is not a valid repo id: {problem}; set {source} to the id "
                              "shown on the model's Hub page, e.g. Qwen/Qwen2.5-0.5B or gpt2")
    return repo_id


def validate_revision(revision: str | None, *, source: str = "MODEL_REVISION") -> str:
    if not revision:
        return "main"
    if (not REVISION.fullmatch(revision) or ".." in revision or revision.startswith("/")
            or revision.endswith("/") or "//" in revision):
        raise ValidationError(
            f"{source}={revision!r} is not a valid revision (branch, tag or commit sha; "
            "letters, digits, '.', '_', '-', '/'; no '..')")
    return revision


def normalize_prefix(prefix: str | None) -> str:
    if prefix is None:
        return "models/"
    prefix = prefix.strip()
    if not prefix:
        return ""
    if prefix.startswith("/") or ".." in prefix or not PREFIX.fullmatch(prefix):
        raise ValidationError(
            f"S3_PREFIX={prefix!r} is not valid: relative, letters/digits/'.'/'_'/'-'/'/' only, no '..'")
    return prefix if prefix.endswith("/") else prefix + "/"


def validate_file_path(path: object, *, origin: str = "the Hub") -> str:
    """A repo-relative POSIX path that is safe as an object key suffix and a local relative path."""
    if not isinstance(path, str) or not path:
        raise ValidationError(f"rejected an empty or non-string file name from {origin}")
    bad = None
    if path.startswith("/") or "\\" in path or re.match(r"^[A-Za-z]:", path):
        bad = "absolute path"
    elif any(ord(c) < 32 or ord(c) == 127 for c in path):
        bad = "control character"
    elif len(path.encode()) > 900:
        bad = "too long"
    else:
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts):
            bad = "path traversal or empty segment"
        elif parts[0].startswith(RESERVED_PREFIX):
            bad = f"name reserved by model-cache ({RESERVED_PREFIX}*)"
        elif posixpath.normpath(path) != path:
            bad = "not a normalized path"
    if bad:
        raise ValidationError(f"rejected file name {path!r} from {origin}: {bad}; nothing was written")
    return path


def local_path(root: Path, rel: str) -> Path:
    """Join and re-check containment (defence in depth after validate_file_path)."""
    root = root.resolve()
    target = (root / rel).resolve()
    if root != target and root not in target.parents:
        raise ValidationError(f"rejected file name {rel!r}: resolves outside {root}")
    return target


class Layout:
    """Object keys of one repo in the bucket.

    {prefix}{repo}/{sha}/{path}          the snapshot's files
    {prefix}{repo}/{sha}/manifest.json   written last; its presence means "complete"
    {prefix}{repo}/refs/{revision}       revision -> sha (JSON), written after the manifest
    {prefix}{repo}/leases/{sha}.json     the download lease (conditional create)
    """

    def __init__(self, prefix: str, repo_id: str):
        self.prefix = prefix
        self.repo_id = repo_id
        self.base = f"{prefix}{repo_id}/"

    def snapshot(self, sha: str) -> str:
        return f"{self.base}{sha}/"

    def file_key(self, sha: str, path: str) -> str:
        key = f"{self.base}{sha}/{path}"
        if len(key.encode()) > MAX_KEY_BYTES:
            raise ValidationError(f"object key for {path!r} would exceed {MAX_KEY_BYTES} bytes")
        return key

    def manifest_key(self, sha: str) -> str:
        return f"{self.base}{sha}/{MANIFEST_NAME}"

    def ref_key(self, revision: str) -> str:
        return f"{self.base}refs/{quote(revision, safe='')}"

    def lease_key(self, sha: str) -> str:
        return f"{self.base}leases/{sha}.json"
