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
from typing import Any

from . import s3
from .config import Settings
from .errors import IntegrityError, ModelCacheError, NotCachedError
from .layout import MARKER_NAME, Layout, local_path
from .localfs import check_writable_dir
from .manifest import read_manifest, resolve_cached_sha
from .progress import Progress, duration, human

log = logging.getLogger("model_cache")
READ_BLOCK = 8 * 1024 * 1024
MiB = 1024 * 1024
BLOCK = 1024 * 1024        # bytes read from a GET response at a time
HASH_BLOCK = 4 * 1024 * 1024


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(READ_BLOCK):
            h.update(block)
    return h.hexdigest()


@dataclass
class FileJob:
    """One file being assembled from ranged GETs written at their offsets.

    sha256 is fed strictly in order: whenever the parts from the start of the file are complete,
    the newly contiguous bytes are hashed right away (read back from the page cache they were
    just written to), so hashing runs while the rest of the file is still streaming, and memory
    stays at one small block per connection instead of whole parts.
    """

    entry: dict
    key: str
    final: Path
    tmp: Path
    size: int
    part_size: int
    parts: int
    fd: int = -1
    done: set = field(default_factory=set)   # finished part indexes
    next_part: int = 0                       # first part not yet hashed
    sha: Any = field(default_factory=hashlib.sha256)
    lock: threading.Lock = field(default_factory=threading.Lock)
    failed: bool = False
    finishing: bool = False
    inline: set = field(default_factory=set)  # parts hashed while they streamed (no read-back)


def _claim_finish(j: FileJob, complete: bool) -> bool:
    """Exactly one worker finishes a file (call with j.lock held)."""
    if complete and not j.finishing:
        j.finishing = True
        return True
    return False


def restore(s: Settings, dest: Path) -> int:
    check_writable_dir(dest, "--dest")
    client = s3.make_client(s)
    layout = Layout(s.prefix, s.repo_id)
    started = time.monotonic()
    s3.check_bucket(client, s)
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
        level = _present_and_correct(final, e, recorded.get(e["path"]), s.verify)
        if level is not None:
            done_entries.append(_record(final, e, level))
            continue
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.model-cache-partial"
        jobs.append(FileJob(entry=e, key=layout.file_key(manifest["sha"], e["path"]), final=final, tmp=tmp,
                            size=size, part_size=1, parts=1))
    if marker.exists():
        marker.unlink()  # the marker says "complete"; it is rewritten when this run completes
    _plan_parts(jobs, s)
    total = sum(j.size for j in jobs)
    if jobs:
        log.info("restoring %d file(s), %s from s3://%s/%s into %s (%d already present)", len(jobs), human(total),
                 s.bucket, layout.snapshot(manifest["sha"]), dest, len(done_entries))
        _fetch_all(client, s, jobs, total)
        done_entries.extend(_record(j.final, j.entry, _checked(j.entry, s.verify)) for j in jobs)
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


def _checked(e: dict, verify: str) -> str:
    """What a fresh download of ``e`` was checked against: its sha256, or only size (+ ETag)."""
    return "sha256" if verify == "sha256" and e.get("sha256") else "size+etag"


def _record(path: Path, e: dict, checked: str) -> dict:
    """The marker's entry for a file: only what was checked is recorded as checked.

    ``sha256`` is written only when those bytes were hashed and matched it, so a later sha256
    restore never trusts a file that an ETag restore (which hashes nothing) wrote. ``ctime_ns`` and
    ``ino`` change on any write and cannot be set back by a user (unlike mtime).
    """
    st = path.stat()
    rec = {"path": e["path"], "size": st.st_size, "checked": checked, "mtime_ns": st.st_mtime_ns,
           "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}
    if checked == "sha256":
        rec["sha256"] = e.get("sha256")
    else:
        rec["etag"] = e.get("etag")
    return rec


def _present_and_correct(path: Path, e: dict, rec: dict | None, verify: str) -> str | None:
    """How a file already in place is known correct ("sha256" or "size+etag"), or None to fetch it.

    A file recorded by an earlier restore and untouched since (same size, mtime, ctime, inode) is
    trusted at the level that restore checked it, if that level is at least the one asked for now.
    Anything else is re-hashed; a file that has no sha256 in the manifest is fetched again.
    """
    try:
        st = path.stat()
    except OSError:
        return None
    if not path.is_file() or st.st_size != int(e["size"]):
        return None
    untouched = bool(rec) and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns \
        and rec.get("ctime_ns") == st.st_ctime_ns and rec.get("ino") == st.st_ino
    if untouched:
        if rec.get("checked") == "sha256" and e.get("sha256") and rec.get("sha256") == e.get("sha256"):
            return "sha256"
        if verify == "etag" and rec.get("checked") == "size+etag" and e.get("etag") \
                and rec.get("etag") == e.get("etag"):
            return "size+etag"
    if e.get("sha256") and _hash_file(path) == e["sha256"]:
        return "sha256"
    return None


def _plan_parts(jobs: list[FileJob], s: Settings) -> None:
    """Split files into ranges so that all connections are busy: few big files get several
    streams each, many files get one stream each. Ranges are at least one chunk (MODEL_CACHE_CHUNK_MB)."""
    streams = s.part_concurrency
    per_file = max(1, -(-streams // max(len(jobs), 1)))
    for j in jobs:
        part = max(s.chunk_size, -(-j.size // per_file))
        part = -(-part // MiB) * MiB
        j.part_size = part
        j.parts = max(1, -(-j.size // part))


def _fetch_all(client, s: Settings, jobs: list[FileJob], total: int) -> None:
    """Parallel ranged GETs over all files, each range streamed to disk in small blocks.

    Hand-written instead of s3transfer's download_file because s3transfer writes ranges out of
    order and hashes nothing (verifying would need a second full read of each file after the
    download), and buffers whole parts in memory. Here a range that breaks mid-stream is
    re-requested from the byte where it stopped.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    concurrency = s.part_concurrency
    tasks: queue.Queue = queue.Queue()
    for j in jobs:
        j.fd = os.open(j.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        if j.size:
            os.ftruncate(j.fd, j.size)
        for idx in range(j.parts):
            tasks.put((j, idx))
    errors: list[BaseException] = []
    stop = threading.Event()
    progress = Progress("restore", total, disabled=s.disable_progress)

    def get_range(j: FileJob, idx: int) -> None:
        start = idx * j.part_size
        end = min(start + j.part_size, j.size) - 1
        pos = start
        attempt = 0
        # The part at the head of the file (everything before it hashed) is hashed as it streams:
        # nobody else touches the hash until this part is marked done. Other parts are hashed by
        # advance_hash, from the page cache, once the parts before them are complete.
        with j.lock:
            inline = s.verify == "sha256" and j.next_part == idx
            if inline:
                j.inline.add(idx)
        while True:
            try:
                kwargs = {"Range": f"bytes={pos}-{end}"} if j.size > 0 else {}
                resp = client.get_object(Bucket=s.bucket, Key=j.key, **kwargs)
                etag = resp.get("ETag", "")
                if s.verify == "etag" and j.entry.get("etag") and etag and etag != j.entry["etag"]:
                    raise IntegrityError(f"{j.entry['path']}: object ETag {etag} differs from the manifest's "
                                         f"{j.entry['etag']} (changed or corrupted in the bucket)")
                body = resp["Body"]
                for block in body.iter_chunks(BLOCK):
                    if stop.is_set():
                        return
                    if pos + len(block) > end + 1:
                        raise IntegrityError(f"{j.entry['path']}: S3 sent more bytes than the manifest's size")
                    os.pwrite(j.fd, block, pos)
                    if inline:
                        j.sha.update(block)
                    pos += len(block)
                    progress.update(len(block))
                if pos != end + 1 and j.size > 0:
                    raise OSError(f"short read: range ended at {pos}, expected {end + 1}")
                return
            except ClientError as exc:
                if s3.is_not_found(exc):
                    raise IntegrityError(f"{j.entry['path']}: object s3://{s.bucket}/{j.key} is missing "
                                         "although the manifest lists it") from None
                if s3.error_code(exc) in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                                          "NoSuchBucket"):
                    raise  # not transient: the CLI names the setting to fix
                last: BaseException = exc  # botocore already retried 5xx/throttling; a few more rounds here
            except (BotoCoreError, OSError) as exc:  # stalled or broken body: resume where it stopped
                last = exc
            attempt += 1
            if attempt > s.file_retries or stop.is_set():
                raise ModelCacheError(f"{j.entry['path']}: S3 GET of bytes {pos}-{end} failed after "
                                      f"{attempt} attempt(s): {last}")
            log.warning("%s: S3 GET at byte %d failed (%s); retrying", j.entry["path"], pos, last)
            time.sleep(min(2 ** attempt * 0.2, 5))

    def advance_hash(j: FileJob) -> bool:
        """Hash parts that are now contiguous from the start; True when the file is complete."""
        with j.lock:
            rfd = None
            try:
                while j.next_part in j.done:
                    if j.next_part in j.inline:
                        j.next_part += 1
                        continue
                    off = j.next_part * j.part_size
                    stop_at = min(off + j.part_size, j.size)
                    if rfd is None:
                        rfd = os.open(j.tmp, os.O_RDONLY)
                    while off < stop_at:
                        block = os.pread(rfd, min(HASH_BLOCK, stop_at - off), off)
                        if not block:
                            raise IntegrityError(f"{j.entry['path']}: local file shorter than written")
                        j.sha.update(block)
                        off += len(block)
                    j.next_part += 1
            finally:
                if rfd is not None:
                    os.close(rfd)
            return _claim_finish(j, j.next_part == j.parts)

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
        while not stop.is_set():
            try:
                j, idx = tasks.get_nowait()
            except queue.Empty:
                return
            try:
                if j.failed:
                    continue
                get_range(j, idx)
                if stop.is_set():
                    return
                with j.lock:
                    j.done.add(idx)
                if s.verify == "sha256":
                    complete = advance_hash(j)
                else:
                    with j.lock:
                        complete = _claim_finish(j, len(j.done) == j.parts)
                if complete:
                    finish(j)
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                j.failed = True
                errors.append(exc)
                stop.set()

    threads = [threading.Thread(target=worker, name=f"restore-{i}", daemon=True)
               for i in range(min(concurrency, tasks.qsize()) or 1)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        progress.close()
        for j in jobs:
            if j.fd >= 0:
                os.close(j.fd)
                j.fd = -1
            if errors or not j.final.exists():
                j.tmp.unlink(missing_ok=True)
    if errors:
        first = errors[0]
        if isinstance(first, (ModelCacheError, OSError, BotoCoreError, ClientError)):
            raise first  # the CLI turns these into one line naming the cause and the fix
        raise ModelCacheError(f"restore failed: {type(first).__name__}: {first}") from first
