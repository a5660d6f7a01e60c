"""Hugging Face Hub access through huggingface_hub (model_info + per-file HEAD/GET).

huggingface_hub reads HF_ENDPOINT/HF_HOME/timeouts at import time, so this module imports it
lazily, after the CLI has set up the environment.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from . import __version__
from .config import Settings
from .errors import HubError, HubUnreachable, IntegrityError, ValidationError
from .layout import COMMIT_SHA, SHA256, validate_file_path

log = logging.getLogger("model_cache.hub")

TOKEN_HINT = ("set HF_TOKEN to a token that can read this repo (gated models also need the licence "
              "accepted on the Hub), and check MODEL_NAME / MODEL_REVISION")


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int | None
    sha256: str | None      # LFS sha256 when the Hub gives one
    git_oid: str | None     # git blob sha1 (for files not in LFS)


@dataclass(frozen=True)
class Snapshot:
    repo_id: str
    revision: str
    sha: str
    files: list[RemoteFile]


def _status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def translate(exc: BaseException, s: Settings, what: str) -> Exception:
    """Map huggingface_hub/httpx errors to one readable HubError."""
    import httpx2
    from huggingface_hub import errors as hf_errors

    if isinstance(exc, (httpx2.ConnectError, httpx2.TimeoutException, httpx2.NetworkError)):
        from .masking import redact_url

        detail = str(exc).splitlines()[0] if str(exc) else ""
        return HubUnreachable(f"Hub {redact_url(s.hf_endpoint)} unreachable while {what}: {type(exc).__name__}: "
                              f"{detail}: check HF_ENDPOINT and the network")
    status = _status_of(exc)
    if isinstance(exc, hf_errors.HfHubHTTPError) or status is not None:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if status in (401, 403) or isinstance(exc, (hf_errors.GatedRepoError,)):
            kind = "gated or private" if status == 403 or isinstance(exc, hf_errors.GatedRepoError) else "unauthorized"
            return HubError(f"Hub returned HTTP {status} ({kind}) while {what} for {s.repo_id}@{s.revision}: "
                            f"{first}. Hint: {TOKEN_HINT}", status)
        if status == 404 or isinstance(exc, (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError)):
            return HubError(f"Hub returned HTTP {status or 404} (not found) while {what} for {s.repo_id}@{s.revision}: "
                            f"{first}. Hint: the repo or revision does not exist or is private; {TOKEN_HINT}", 404)
        if status is not None and (status >= 500 or status == 429):
            return HubUnreachable(f"Hub returned HTTP {status} while {what}: {first}", status)
        return HubError(f"Hub error while {what}: HTTP {status}: {first}", status)
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def resolve(s: Settings) -> Snapshot:
    """Revision -> commit sha and the file list (with sizes and LFS sha256) in one API call."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=s.hf_endpoint, token=s.hf_token or False, library_name="model-cache",
                library_version=__version__)
    try:
        info = api.model_info(s.repo_id, revision=s.revision, files_metadata=True, timeout=s.read_timeout)
    except Exception as exc:
        raise translate(exc, s, "resolving the revision") from exc
    sha = getattr(info, "sha", None)
    if not isinstance(sha, str) or not COMMIT_SHA.fullmatch(sha):
        raise HubError(f"Hub answered without a valid commit sha for {s.repo_id}@{s.revision}: {sha!r}")
    files: list[RemoteFile] = []
    for sib in info.siblings or []:
        path = validate_file_path(sib.rfilename, origin="the Hub")
        lfs = sib.lfs
        sha256 = None
        size = sib.size
        if lfs is not None:
            sha256 = str(lfs.sha256 or "").lower() or None
            size = lfs.size if lfs.size is not None else size
            if sha256 is not None and not SHA256.fullmatch(sha256):
                raise ValidationError(f"Hub gave an invalid sha256 {sha256!r} for {path!r}")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise ValidationError(f"Hub gave an invalid size {size!r} for {path!r}")
        oid = sib.blob_id if isinstance(sib.blob_id, str) and COMMIT_SHA.fullmatch(sib.blob_id or "") else None
        files.append(RemoteFile(path=path, size=size, sha256=sha256, git_oid=oid))
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise ValidationError("Hub listed the same file twice")
    return Snapshot(repo_id=s.repo_id, revision=s.revision, sha=sha, files=files)


def select(files: list[RemoteFile], allow: list[str] | None, ignore: list[str] | None) -> list[RemoteFile]:
    from huggingface_hub.utils import filter_repo_objects

    return list(filter_repo_objects(files, allow_patterns=allow, ignore_patterns=ignore, key=lambda f: f.path))


class HashingWriter:
    """File object handed to huggingface_hub's http_get: hashes bytes as they stream to disk.

    sha256 always; git blob sha1 too when the file is not in LFS (the Hub's only checksum then).
    http_get may rewind to the start when a server ignores a resume Range: that resets the hashes.
    """

    def __init__(self, fh, size: int | None, git: bool, on_bytes: Callable[[int], None],
                 on_write: Callable[[int], None] | None = None, on_rewind: Callable[[], None] | None = None):
        self._fh = fh
        self._size = size
        self._git = git and size is not None
        self._on_bytes = on_bytes
        self._on_write = on_write      # told how many bytes are on disk (flushed) after each write
        self._on_rewind = on_rewind
        self._reset()

    def _reset(self) -> None:
        self.sha256 = hashlib.sha256()
        self.sha1 = hashlib.sha1(f"blob {self._size}\0".encode()) if self._git else None
        self.count = 0

    def write(self, data) -> int:
        self._fh.write(data)
        self.sha256.update(data)
        if self.sha1 is not None:
            self.sha1.update(data)
        self.count += len(data)
        self._on_bytes(len(data))
        if self._on_write is not None:
            self._fh.flush()  # readers of the file (part uploads) must see these bytes
            self._on_write(self.count)
        return len(data)

    def tell(self) -> int:
        return self._fh.tell()

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos != 0:
            raise OSError("model-cache: only a rewind to the start is supported while hashing")
        self._on_bytes(-self.count)
        if self._on_rewind is not None:
            self._on_rewind()
        self._reset()
        return self._fh.seek(0)

    def truncate(self, size: int | None = None) -> int:
        return self._fh.truncate(size)

    def flush(self) -> None:
        self._fh.flush()


@dataclass
class Downloaded:
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class Source:
    """Where a file's bytes are: the resolved URL (after the Hub's redirect) and what to expect."""

    url: str
    headers: dict
    size: int | None
    sha256: str | None


def locate(s: Settings, snap: Snapshot, f: RemoteFile) -> Source:
    """HEAD of the file pinned to the commit (huggingface_hub's get_hf_file_metadata: the Hub's
    redirect/X-Linked-* handling): its resolved location, size and expected sha256."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(s.repo_id, f.path, revision=snap.sha, endpoint=s.hf_endpoint)
    try:
        meta = get_hf_file_metadata(url, token=s.hf_token or False, endpoint=s.hf_endpoint,
                                    library_name="model-cache", library_version=__version__,
                                    timeout=s.read_timeout, retry_on_errors=True)
    except Exception as exc:
        raise translate(exc, s, f"reading metadata of {f.path}") from exc
    if meta.commit_hash and meta.commit_hash != snap.sha:
        raise IntegrityError(f"{f.path}: Hub served commit {meta.commit_hash}, expected {snap.sha}")
    size = f.size if f.size is not None else meta.size
    if f.size is not None and meta.size is not None and f.size != meta.size:
        raise IntegrityError(f"{f.path}: Hub metadata says {meta.size} bytes, the file list says {f.size}")
    expected_sha256 = f.sha256
    if expected_sha256 is None and meta.etag and SHA256.fullmatch(meta.etag.lower()):
        expected_sha256 = meta.etag.lower()  # X-Linked-Etag of an LFS file is its sha256

    headers = build_hf_headers(token=s.hf_token or False, library_name="model-cache", library_version=__version__)
    location = meta.location or url
    if urlparse(location).netloc != urlparse(url).netloc:
        headers.pop("authorization", None)  # signed CDN URL: never send the token to a third host
    return Source(url=location, headers=headers, size=size, sha256=expected_sha256)


def download(s: Settings, snap: Snapshot, f: RemoteFile, dest: Path, on_bytes: Callable[[int], None],
             on_write: Callable[[int], None] | None = None,
             on_rewind: Callable[[], None] | None = None, source: Source | None = None) -> Downloaded:
    """One file, pinned to the commit sha, streamed to `dest` while hashing; verified before returning.

    Uses huggingface_hub's own building blocks (hf_hub_url, get_hf_file_metadata = the HEAD with the
    Hub's redirect/X-Linked-* handling, http_get = the GET with resume-on-stall retries) instead of
    hf_hub_download, because hf_hub_download writes into its own cache layout and gives no access
    to the bytes as they stream, so hashing would need a second pass over the file.
    """
    from huggingface_hub.file_download import http_get

    src = source or locate(s, snap, f)
    size, expected_sha256, location, headers = src.size, src.sha256, src.url, dict(src.headers)

    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as fh:
        writer = HashingWriter(fh, size, git=expected_sha256 is None and f.git_oid is not None, on_bytes=on_bytes,
                               on_write=on_write, on_rewind=on_rewind)
        try:
            http_get(location, writer, headers=headers, expected_size=size, displayed_filename=f.path)
        except Exception as exc:
            raise translate(exc, s, f"downloading {f.path}") from exc
    got = writer.sha256.hexdigest()
    if size is not None and writer.count != size:
        raise IntegrityError(f"{f.path}: got {writer.count} bytes from the Hub, expected {size}")
    if expected_sha256 is not None and got != expected_sha256:
        raise IntegrityError(f"{f.path}: sha256 {got} does not match the Hub's LFS sha256 {expected_sha256}")
    if expected_sha256 is None and writer.sha1 is not None and writer.sha1.hexdigest() != f.git_oid:
        raise IntegrityError(f"{f.path}: git blob id {writer.sha1.hexdigest()} does not match the Hub's {f.git_oid}")
    return Downloaded(path=dest, size=writer.count, sha256=got)
