"""restore: copy the cached snapshot from the bucket into a directory, verified. Never calls the Hub."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import s3
from .config import Settings
from .ensure import read_manifest, resolve_cached_sha
from .errors import IntegrityError, ModelCacheError, NotCachedError
from .layout import MARKER_NAME, Layout, local_path
from .progress import Progress, duration, human

log = logging.getLogger("model_cache")
READ_BLOCK = 8 * 1024 * 1024


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(READ_BLOCK):
            h.update(block)
    return h.hexdigest()


@dataclass
class FileJob:
    """One file being assembled from ranged GETs.

    Parts may arrive in any order; they are written at their offset at once and fed to sha256
    strictly in order, so the hash is computed while bytes stream (no second pass over the file).
    """

    entry: dict
    key: str
    final: Path
    tmp: Path
    size: int
    parts: int
    fd: int = -1
    next_part: int = 0                     # next part index to hash
    pending: dict = field(default_factory=dict)
    sha: hashlib._Hash = field(default_factory=hashlib.sha256)
    lock: threading.Lock = field(default_factory=threading.Lock)
    failed: bool = False


def restore(s: Settings, dest: Path) -> int:
    client = s3.make_client(s)
    layout = Layout(s.prefix, s.repo_id)
    started = time.monotonic()
    sha = resolve_cached_sha(client, s, layout)
    manifest = read_manifest(client, s, layout, sha) if sha else None
    if manifest is None:
        raise NotCachedError(
            f"{s.repo_id}@{s.revision} is not cached in s3://{s.bucket}/{layout.base} "
            f"({'no ref for this revision' if not sha else 'no manifest for ' + sha}): run `model-cache ensure` first")
    files = manifest["files"]
    if s.allow_patterns or s.ignore_patterns:
        from huggingface_hub.utils import filter_repo_objects

        files = list(filter_repo_objects(files, allow_patterns=s.allow_patterns,
                                         ignore_patterns=s.ignore_patterns, key=lambda e: e["path"]))
    dest.mkdir(parents=True, exist_ok=True)
    marker = dest / MARKER_NAME
    previous = _read_marker(marker)
    if previous.get("sha") != manifest["sha"] or previous.get("repo") != s.repo_id:
        previous = {}
    recorded = {e["path"]: e for e in previous.get("files", [])}

    jobs: list[FileJob] = []
    done_entries: list[dict] = []
    for e in files:
        try:
            size = int(e["size"])
        except (KeyError, TypeError, ValueError):
            raise IntegrityError(f"manifest entry for {e.get('path')!r} has no valid size") from None
        final = local_path(dest, e["path"])
        if _present_and_correct(final, e, recorded.get(e["path"]), s.verify):
            done_entries.append(_record(final, e))
            continue
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.model-cache-partial"
        parts = max(1, -(-size // s.chunk_size))
        jobs.append(FileJob(entry=e, key=Layout(s.prefix, s.repo_id).file_key(manifest["sha"], e["path"]),
                            final=final, tmp=tmp, size=size, parts=parts))
    if marker.exists():
        marker.unlink()  # the marker says "complete"; it is rewritten when this run completes
    total = sum(j.size for j in jobs)
    if jobs:
        log.info("restoring %d file(s), %s from s3://%s/%s into %s (%d already present)", len(jobs), human(total),
                 s.bucket, layout.snapshot(manifest["sha"]), dest, len(done_entries))
        _fetch_all(client, s, jobs, total)
        done_entries.extend(_record(j.final, j.entry) for j in jobs)
    else:
        log.info("all %d file(s) already present and verified in %s", len(done_entries), dest)
    tmp_marker = dest / f"{MARKER_NAME}.tmp"
    tmp_marker.write_text(json.dumps({
        "repo": s.repo_id, "revision": s.revision, "sha": manifest["sha"], "verify": s.verify,
        "completed": time.time(), "files": sorted(done_entries, key=lambda e: e["path"]),
    }, indent=1))
    os.replace(tmp_marker, marker)
    elapsed = time.monotonic() - started
    log.info("restored %s@%s (%s) into %s in %s (%s, %s/s)", s.repo_id, s.revision, manifest["sha"], dest,
             duration(elapsed), human(total), human(total / max(elapsed, 1e-6)))
    return 0


def _read_marker(marker: Path) -> dict:
    try:
        doc = json.loads(marker.read_text())
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def _record(path: Path, e: dict) -> dict:
    st = path.stat()
    return {"path": e["path"], "size": st.st_size, "sha256": e.get("sha256"), "mtime_ns": st.st_mtime_ns}


def _present_and_correct(path: Path, e: dict, rec: dict | None, verify: str) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    if not path.is_file() or st.st_size != int(e["size"]):
        return False
    # Verified by an earlier restore and untouched since: trust it without re-reading.
    if rec and rec.get("sha256") == e.get("sha256") and rec.get("mtime_ns") == st.st_mtime_ns \
            and rec.get("size") == st.st_size:
        return True
    return bool(e.get("sha256")) and _hash_file(path) == e["sha256"]


def _fetch_all(client, s: Settings, jobs: list[FileJob], total: int) -> None:
    """Parallel ranged GETs over all files.

    Hand-written instead of s3transfer's download_file because s3transfer writes ranges out of order
    and hashes nothing, so verifying sha256 would need a second full read of every file. Memory is
    bounded: a part holds a permit from the moment its GET is issued until its bytes are hashed,
    and parts are issued in file order, so the earliest unhashed part always holds a permit (no
    deadlock) and at most `permits` x chunk bytes are buffered.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    concurrency = s.part_concurrency
    permits = threading.Semaphore(max(concurrency * 2, 2))
    tasks: queue.Queue = queue.Queue(maxsize=concurrency * 2)
    errors: list[BaseException] = []
    stop = threading.Event()
    progress = Progress("restore", total, disabled=s.disable_progress)

    for j in jobs:
        j.fd = os.open(j.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def get_part(j: FileJob, idx: int) -> bytes:
        start = idx * s.chunk_size
        end = min(start + s.chunk_size, j.size) - 1
        last: BaseException | None = None
        for attempt in range(1, s.file_retries + 2):
            try:
                kwargs = {"Range": f"bytes={start}-{end}"} if j.size > 0 else {}
                resp = client.get_object(Bucket=s.bucket, Key=j.key, **kwargs)
                etag = resp.get("ETag", "")
                if s.verify == "etag" and j.entry.get("etag") and etag and etag != j.entry["etag"]:
                    raise IntegrityError(f"{j.entry['path']}: object ETag {etag} differs from the manifest's "
                                         f"{j.entry['etag']} (changed or corrupted in the bucket)")
                data = resp["Body"].read()
                if len(data) != end - start + 1 and j.size > 0:
                    raise IntegrityError(f"{j.entry['path']}: short read at {start} ({len(data)} bytes)")
                return data
            except ClientError as exc:
                if s3.is_not_found(exc):
                    raise IntegrityError(f"{j.entry['path']}: object s3://{s.bucket}/{j.key} is missing "
                                         "although the manifest lists it") from None
                if s3.error_code(exc) in ("InvalidRange",) and j.size == 0:
                    return b""
                last = exc  # botocore already retried 5xx/throttling; one more round here
            except (BotoCoreError, OSError) as exc:  # stalled/broken body: retry the range
                last = exc
            if stop.is_set():
                break
            time.sleep(min(2 ** attempt * 0.2, 5))
        raise ModelCacheError(f"{j.entry['path']}: S3 GET of bytes {start}-{end} failed after retries: {last}")

    def finish(j: FileJob) -> None:
        os.close(j.fd)
        j.fd = -1
        got = j.sha.hexdigest()
        if s.verify == "sha256" and j.entry.get("sha256") and got != j.entry["sha256"]:
            j.tmp.unlink(missing_ok=True)
            raise IntegrityError(f"{j.entry['path']}: sha256 of the bytes in the bucket is {got}, the manifest "
                                 f"says {j.entry['sha256']}: the cached object is corrupted; delete "
                                 f"{j.key} (and its manifest) and run ensure again")
        os.replace(j.tmp, j.final)  # atomic: the file appears complete or not at all

    def worker() -> None:
        while True:
            item = tasks.get()
            if item is None:
                return
            j, idx = item
            try:
                if stop.is_set() or j.failed:
                    permits.release()
                    continue
                data = get_part(j, idx)
                os.pwrite(j.fd, data, idx * s.chunk_size)
                progress.update(len(data))
                ready = []
                with j.lock:
                    j.pending[idx] = data
                    while j.next_part in j.pending:
                        ready.append(j.pending.pop(j.next_part))
                        j.next_part += 1
                    # Hash under the lock: keeps the order; hashlib releases the GIL on big blocks.
                    for block in ready:
                        j.sha.update(block)
                        permits.release()
                    complete = j.next_part == j.parts
                if complete:
                    finish(j)
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                j.failed = True
                errors.append(exc)
                stop.set()
                permits.release()

    threads = [threading.Thread(target=worker, name=f"restore-{i}", daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    try:
        for j in jobs:
            for idx in range(j.parts):
                if stop.is_set():
                    break
                while not permits.acquire(timeout=0.5):
                    if stop.is_set():
                        break
                else:
                    tasks.put((j, idx))
                    continue
                break
            if stop.is_set():
                break
    finally:
        for _ in threads:
            tasks.put(None)
        for t in threads:
            t.join()
        progress.close()
        for j in jobs:
            if j.fd >= 0:
                os.close(j.fd)
                j.fd = -1
            if not j.final.exists() or errors:
                j.tmp.unlink(missing_ok=True)
    if errors:
        first = errors[0]
        if isinstance(first, ModelCacheError):
            raise first
        raise ModelCacheError(f"restore failed: {type(first).__name__}: {first}") from first
