"""ensure: make the bucket hold a complete, verified snapshot of the model at its commit."""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path

from . import __version__, hub, s3
from .config import Settings
from .errors import HubUnreachable, IntegrityError, LeaseLost, ModelCacheError, NotCachedError
from .layout import MANIFEST_NAME, Layout
from .lease import Lease
from .localfs import check_writable_dir
from .manifest import covers, read_manifest, resolve_cached_sha, write_manifest, write_ref
from .progress import Progress, duration, human
from .ranged import RangedUpload, RangeUnsupported, Slots
from .streaming import StreamingMultipart

log = logging.getLogger("model_cache")


class DiskBudget:
    """Bytes of DOWNLOAD_DIR in use: a download waits until its file fits (one file always may)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def acquire(self, n: int, cancelled: threading.Event) -> None:
        with self._cond:
            while self.used > 0 and self.used + n > self.limit:
                if cancelled.is_set():
                    raise ModelCacheError("cancelled")
                self._cond.wait(0.5)
            self.used += n

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


FIRST_POLL = 0.2        # seconds: the shortest wait between two manifest polls
POLL_SHARE = 1 / 20     # a poll interval is at most this share of the time waited so far


def poll_delay(waited: float, longest: float) -> float:
    """Seconds until a waiter looks for the manifest again.

    A fixed interval makes a waiter finish up to one interval after the holder: with 1 s that is a
    fifth of a 5 s fill, and 8 replicas wait for the unluckiest of them. So the interval grows with
    the wait instead: 0.2 s at first, then a twentieth of the time waited (the manifest is seen at
    most ~5 % later than it appeared), never more than MODEL_CACHE_POLL_INTERVAL. Over an hour's
    wait that is fewer polls (each two small GETs) than a fixed 1 s, and far fewer in the first
    seconds than a fixed 0.2 s. Jittered by +-25 % so that replicas started together spread out.
    """
    base = min(longest, max(FIRST_POLL, waited * POLL_SHARE))
    return base * (0.75 + random.random() / 2)


def ensure(s: Settings) -> int:
    client = s3.make_client(s)
    layout = Layout(s.prefix, s.repo_id)
    s3.check_bucket(client, s)
    try:
        snap = hub.resolve(s)
    except HubUnreachable as exc:
        # Hub down: a snapshot that is already complete is still good to serve.
        sha = resolve_cached_sha(client, s, layout)
        if sha and read_manifest(client, s, layout, sha) is not None:
            log.warning("%s; using the cached snapshot %s of %s@%s", exc, sha, s.repo_id, s.revision)
            return 0
        raise
    wanted = hub.select(snap.files, s.allow_patterns, s.ignore_patterns)
    if not wanted:
        raise ModelCacheError(f"no file of {s.repo_id}@{s.revision} matches the allow/ignore patterns "
                              f"(allow={s.allow_patterns}, ignore={s.ignore_patterns})")
    if any(f.path == MANIFEST_NAME for f in wanted):
        raise ModelCacheError(f"the repo has a top-level {MANIFEST_NAME}, which collides with the cache "
                              f"manifest key; exclude it with MODEL_IGNORE_PATTERNS={MANIFEST_NAME}")
    log.info("%s@%s is commit %s: %d file(s), %s selected", s.repo_id, s.revision, snap.sha, len(wanted),
             human(sum(f.size or 0 for f in wanted)))

    lease = None
    waiting_since = time.monotonic()
    deadline = waiting_since + s.wait_timeout
    waiting_logged = 0.0
    while True:
        manifest = read_manifest(client, s, layout, snap.sha)
        if manifest is not None and covers(manifest, wanted):
            write_ref(client, s, layout, snap.sha)
            log.info("cached: s3://%s/%s (%d files)", s.bucket, layout.manifest_key(snap.sha),
                     len(manifest["files"]))
            return 0
        if lease is None:  # first time here: only a downloader needs the scratch directory
            check_writable_dir(s.download_dir, "DOWNLOAD_DIR (--download-dir)")
        lease = Lease(client, s, layout.lease_key(snap.sha))
        if lease.try_acquire():
            try:
                # Someone may have finished between our manifest check and the lease.
                manifest = read_manifest(client, s, layout, snap.sha)
                if manifest is not None and covers(manifest, wanted):
                    write_ref(client, s, layout, snap.sha)
                    return 0
                _fill(client, s, layout, snap, wanted, manifest, lease)
                write_ref(client, s, layout, snap.sha)
                return 0
            except LeaseLost as exc:
                log.warning("%s; waiting for the new holder to finish", exc)
            finally:
                lease.release()
        now = time.monotonic()
        if now > deadline:
            raise ModelCacheError(f"gave up after waiting {duration(s.wait_timeout)} for another process to "
                                  f"cache {s.repo_id}@{snap.sha} (MODEL_CACHE_WAIT_TIMEOUT)")
        if now - waiting_logged > 30:
            holder = lease.read()
            log.info("another process is caching %s@%s (%s); waiting for its manifest", s.repo_id, snap.sha,
                     (holder[0].get("holder") if holder else "lease just released"))
            waiting_logged = now
        time.sleep(poll_delay(time.monotonic() - waiting_since, s.poll_interval))


def _uploaded_ok(client, s: Settings, key: str, f: hub.RemoteFile) -> dict | None:
    """A file object from an earlier (interrupted) run, re-read and verified, or None to fetch it again.

    The object's metadata says what the uploader checked, but not that the bytes are still those:
    a damaged or replaced object can keep its size and x-amz-meta-sha256. So the bytes are read
    back from S3 and hashed (sha256, and the git blob id for non-LFS files) against the Hub's
    values before the object is trusted; reading from the bucket is cheaper than the Hub download
    it saves, and a resume is rare.
    """
    import hashlib

    h = s3.head(client, s.bucket, key)
    if h is None:
        return None
    meta = {k.lower(): v for k, v in (h.get("Metadata") or {}).items()}
    if f.size is not None and h.get("ContentLength") != f.size:
        return None
    if f.sha256 is None and f.git_oid is None:
        return None  # nothing from the Hub to compare with: upload again
    if f.sha256 is not None and meta.get("sha256") != f.sha256:
        return None
    resp = client.get_object(Bucket=s.bucket, Key=key, IfMatch=h.get("ETag", "*"))
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(f"blob {h.get('ContentLength')}\0".encode()) if f.sha256 is None else None
    n = 0
    for block in resp["Body"].iter_chunks(1 << 20):
        sha256.update(block)
        if sha1 is not None:
            sha1.update(block)
        n += len(block)
    if n != h.get("ContentLength"):
        return None
    if f.sha256 is not None and sha256.hexdigest() != f.sha256:
        log.warning("%s: the object in the bucket does not match its sha256 (damaged); fetching it again", f.path)
        return None
    if sha1 is not None and sha1.hexdigest() != f.git_oid:
        log.warning("%s: the object in the bucket does not match its git blob id (damaged); fetching it again",
                    f.path)
        return None
    return {"path": f.path, "size": n, "sha256": sha256.hexdigest(), "etag": resp.get("ETag") or h.get("ETag", "")}


def _fill(client, s: Settings, layout: Layout, snap: hub.Snapshot, wanted: list[hub.RemoteFile],
          previous: dict | None, lease: Lease) -> None:
    from boto3.s3.transfer import TransferConfig
    from s3transfer.manager import TransferManager
    from s3transfer.subscribers import BaseSubscriber

    started = time.monotonic()
    entries: dict[str, dict] = {}
    if previous:  # widening the pattern set keeps what an earlier manifest already had
        for e in previous["files"]:
            entries[e["path"]] = e
    keys = {f.path: layout.file_key(snap.sha, f.path) for f in wanted}

    # Resume: keep objects an interrupted run already uploaded and verified.
    todo: list[hub.RemoteFile] = []
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(wanted)))) as pool:
        for f, ok in zip(wanted, pool.map(lambda f: _uploaded_ok(client, s, keys[f.path], f), wanted)):
            if ok:
                entries[f.path] = ok
            else:
                todo.append(f)
    if len(todo) < len(wanted):
        log.info("resuming: %d of %d file(s) already in the bucket and verified", len(wanted) - len(todo),
                 len(wanted))
    todo.sort(key=lambda f: -(f.size or 0))  # big files first: they bound the total time
    total = sum(f.size or 0 for f in todo)
    order = {f.path: i for i, f in enumerate(todo)}

    work = Path(s.download_dir)
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="model-cache-", dir=work))
    os.chmod(tmp, 0o700)
    free = shutil.disk_usage(tmp).free
    budget = DiskBudget(s.max_disk or max(int(free * 0.9), 1))
    cancelled = threading.Event()
    down = Progress("download", total, disabled=s.disable_progress, position=0)
    up = Progress("upload", total, disabled=s.disable_progress, position=1)

    tconfig = TransferConfig(
        multipart_threshold=s.chunk_size, multipart_chunksize=s.chunk_size,
        # Only small (<= one chunk) and non-LFS files go through s3transfer; big shards use the
        # streaming multipart pool. A quarter of the connections bounds memory of both together.
        max_concurrency=max(2, s.part_concurrency // 4), use_threads=True,
        max_io_queue=max(4, s.part_concurrency // 4),
    )
    manager = TransferManager(client, tconfig)
    lock = threading.Lock()
    uploads: list[tuple[Future, dict]] = []
    done_entries: list[dict] = []

    class Upload(BaseSubscriber):
        """Counts bytes; when the upload ends (either way) frees the local file and its disk budget."""

        def __init__(self, dest: Path, n: int):
            self.dest, self.n = dest, n

        def on_progress(self, future, bytes_transferred, **kwargs):
            up.update(bytes_transferred)

        def on_done(self, future, **kwargs):
            log.debug("uploaded %s", self.dest.name)
            self.dest.unlink(missing_ok=True)
            budget.release(self.n)

    part_pool = ThreadPoolExecutor(max_workers=s.part_concurrency, thread_name_prefix="part-upload")
    # Part buffers of ranged downloads: the memory budget, and at least one per connection.
    slots = Slots(max(s.part_concurrency, s.memory_budget // s.chunk_size), s.chunk_size)

    def downloaded(n: int) -> None:
        """Progress callback of every download; also where a cancelled run stops streaming."""
        lease.check()
        if cancelled.is_set():
            raise ModelCacheError("cancelled")
        down.update(n)

    def meta_for(f: hub.RemoteFile, sha256: str) -> dict:
        meta = {"sha256": sha256, "model-cache": __version__}
        if f.git_oid:
            meta["git-oid"] = f.git_oid
        return meta

    def streamed(f: hub.RemoteFile, dest: Path) -> dict:
        """Big LFS file: parts go to S3 while the file downloads; completed only once verified."""
        mpu = StreamingMultipart(client, s.bucket, keys[f.path], dest, f.size or 0, s.chunk_size, part_pool,
                                 {"Metadata": meta_for(f, f.sha256 or ""), "ContentType": "application/octet-stream"},
                                 up.update)
        try:
            got = hub.download(s, snap, f, dest, downloaded, on_write=mpu.written, on_rewind=mpu.rewound)
            lease.check()
            mpu.complete()
        except BaseException:
            mpu.abort()
            raise
        return {"path": f.path, "size": got.size, "sha256": got.sha256}

    def ranged(f: hub.RemoteFile) -> dict:
        """Big LFS file: parallel ranged GETs, each range uploaded as its part; completed only once verified."""
        src = hub.locate(s, snap, f)
        if src.size is None or src.sha256 is None or src.size <= s.chunk_size:
            raise RangeUnsupported(f"{f.path}: no size or sha256 from the Hub to split and verify ranges with")
        counted = [0]
        count_lock = threading.Lock()

        def on_down(n: int) -> None:
            downloaded(n)
            with count_lock:
                counted[0] += n

        try:
            sha = RangedUpload(s, client, s.bucket, keys[f.path], f.path, src, s.chunk_size, part_pool, slots,
                               {"Metadata": meta_for(f, src.sha256), "ContentType": "application/octet-stream"},
                               cancelled, on_down, up.update, before_complete=lease.check,
                               priority=order[f.path]).run()
        except BaseException:
            down.update(-counted[0])  # a retry or the fallback counts these bytes again
            raise
        return {"path": f.path, "size": src.size, "sha256": sha}

    no_ranges: set[str] = set()

    def record(entry: dict) -> None:
        with lock:
            done_entries.append(entry)

    def attempt_once(f: hub.RemoteFile, attempt: int) -> None:
        """One try at caching ``f``: recorded, or its upload queued. Transient failures raise."""
        t0 = time.monotonic()
        if s.ranged and f.sha256 and (f.size or 0) > s.chunk_size and f.path not in no_ranges:
            try:
                entry = ranged(f)
            except RangeUnsupported as exc:
                log.info("%s; downloading it as one stream", exc)
                no_ranges.add(f.path)
            else:
                log.debug("cached %s (%s) in %.2fs, ranged", f.path, human(entry["size"]), time.monotonic() - t0)
                record(entry)
                return
        budget.acquire(f.size or 0, cancelled)
        dest = tmp / f"{len(f.path)}-{abs(hash(f.path))}-{attempt}"
        if f.sha256 and (f.size or 0) > s.chunk_size:
            try:
                entry = streamed(f, dest)
            finally:
                dest.unlink(missing_ok=True)
                budget.release(f.size or 0)
            log.debug("cached %s (%s) in %.2fs", f.path, human(entry["size"]), time.monotonic() - t0)
            record(entry)
            return
        try:
            got = hub.download(s, snap, f, dest, downloaded)
        except BaseException:
            budget.release(f.size or 0)
            dest.unlink(missing_ok=True)
            raise
        log.debug("downloaded %s (%s) in %.2fs", f.path, human(got.size), time.monotonic() - t0)
        lease.check()
        entry = {"path": f.path, "size": got.size, "sha256": got.sha256}
        # Small or non-LFS file: verified complete, then uploaded (s3transfer) while others download.
        future = manager.upload(str(dest), s.bucket, keys[f.path],
                                extra_args={"Metadata": meta_for(f, got.sha256),
                                            "ContentType": "application/octet-stream"},
                                subscribers=[Upload(dest, f.size or 0)])
        with lock:
            uploads.append((future, entry))

    def one(f: hub.RemoteFile):
        last: Exception | None = None
        for attempt in range(1, s.file_retries + 1):
            if cancelled.is_set():
                return
            lease.check()
            try:
                attempt_once(f, attempt)
                return
            except (IntegrityError, HubUnreachable, OSError) as exc:  # transient: retried with backoff
                last = exc
                if attempt < s.file_retries:
                    log.warning("%s (attempt %d/%d); retrying", exc, attempt, s.file_retries)
                    time.sleep(min(2 ** attempt, 10))
        raise ModelCacheError(f"could not cache {f.path} after {s.file_retries} attempts: {last}")

    log.info("caching %d file(s), %s: %d parallel download(s), %d parallel part upload(s) of %s",
             len(todo), human(total), s.hf_max_workers, s.part_concurrency, human(s.chunk_size))
    try:
        with ThreadPoolExecutor(max_workers=s.hf_max_workers, thread_name_prefix="download") as pool:
            futures = [pool.submit(one, f) for f in todo]
            try:
                done_set, pending = wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:  # SIGTERM/Ctrl-C: stop the downloads before the pool joins them
                cancelled.set()
                raise
            for fut in done_set:
                if fut.exception() is not None:
                    cancelled.set()
                    for p in pending:
                        p.cancel()
                    raise fut.exception()
        for entry in done_entries:
            h = client.head_object(Bucket=s.bucket, Key=keys[entry["path"]])
            entry["etag"] = h.get("ETag", "")
            entries[entry["path"]] = entry
        for future, entry in uploads:
            lease.check()
            future.result()
            h = client.head_object(Bucket=s.bucket, Key=keys[entry["path"]])
            if h.get("ContentLength") != entry["size"]:
                raise IntegrityError(f"{entry['path']}: S3 holds {h.get('ContentLength')} bytes, uploaded "
                                     f"{entry['size']}")
            entry["etag"] = h.get("ETag", "")
            entries[entry["path"]] = entry
        manager.shutdown()
    except BaseException:
        cancelled.set()
        # Not manager.shutdown(cancel=True): it hands its message to _shutdown as the exception
        # type, a TypeError as soon as an upload is in flight (boto/s3transfer#143, open since
        # 2019). Cancelling each future is the public way to the same end.
        for future, _entry in uploads:
            future.cancel()
        manager.shutdown()
        raise
    finally:
        part_pool.shutdown(wait=True, cancel_futures=True)
        down.close()
        up.close()
        shutil.rmtree(tmp, ignore_errors=True)

    lease.check()
    # Written last: its presence is what "cached" means.
    write_manifest(client, s, layout, snap.sha, list(entries.values()))
    elapsed = time.monotonic() - started
    log.info("cached %s@%s (%s) in %s: %s new, %s/s; manifest s3://%s/%s", s.repo_id, s.revision, snap.sha,
             duration(elapsed), human(total), human(total / max(elapsed, 1e-6)), s.bucket,
             layout.manifest_key(snap.sha))


__all__ = ["NotCachedError", "ensure"]
