"""Big LFS files: several ranged GETs in parallel, each range becoming one multipart part.

Real endpoints cap what one connection carries (the Hub's CDN, S3-compatible stores); one GET
per file leaves a few big shards crawling at that cap. Here part i of the multipart upload is
byte range i of the file: a worker GETs the range (Range on the URL the Hub redirected to) into
memory and uploads it as that part, so many connections run per file in both directions and
the bytes never touch the disk.

sha256 cannot be combined from pieces, so it is computed in order: a range that completes when
every earlier range is hashed is hashed at once (together with any later ranges already waiting),
otherwise it waits in memory. Memory is bounded by a global number of part buffers (`Slots`),
taken in file order, so the range the hash is waiting for is always already in flight: no
deadlock, and at most slots x part size bytes held. The upload is completed only when the whole
file's sha256 equals the Hub's; on any failure it is aborted.

A range that breaks or stalls mid-stream is re-requested from the byte where it stopped. A
server that ignores Range (200 instead of 206) raises RangeUnsupported: the caller falls back to
one streaming GET per file.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from .config import Settings
from .errors import HubUnreachable, IntegrityError, ModelCacheError
from .hub import Source, translate
from .streaming import part_size_for

log = logging.getLogger("model_cache")

MiB = 1024 * 1024
RESUMES = 5          # like huggingface_hub's http_get: resumes of one range before the file is retried


class RangeUnsupported(Exception):
    """The server answered a ranged GET with the whole file."""


class _Stopped(Exception):
    """A sibling range failed (or the run was cancelled): this one stops too."""


class Slots:
    """Memory for part buffers, in units of the configured chunk, shared by all files.

    A part bigger than a chunk (S3's 10,000-part limit on huge files) takes several units; one
    part is always allowed when nothing is held. Waiters are served by priority (the file's
    place in the big-first order), so the connections work on one file after the other instead
    of all files at once: the first file completes (CompleteMultipartUpload, which some stores
    pay for by concatenating the parts) while the next one is still streaming, instead of every
    file completing together at the very end. acquire is cancellable.
    """

    def __init__(self, units: int, unit: int):
        self.units, self.unit = max(1, units), unit
        self.used = 0
        self._waiting: list[int] = []
        self._cond = threading.Condition()

    def size_of(self, nbytes: int) -> int:
        return max(1, -(-nbytes // self.unit))

    def acquire(self, n: int, cancelled: threading.Event, priority: int = 0) -> None:
        with self._cond:
            self._waiting.append(priority)
            try:
                while (self.used > 0 and self.used + n > self.units) or priority > min(self._waiting):
                    if cancelled.is_set():
                        raise ModelCacheError("cancelled")
                    self._cond.wait(0.25)
                self.used += n
            finally:
                self._waiting.remove(priority)
                self._cond.notify_all()

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


class RangedUpload:
    def __init__(self, s: Settings, client, bucket: str, key: str, path: str, src: Source, chunk: int,
                 pool: ThreadPoolExecutor, slots: Slots, extra: dict, cancelled: threading.Event,
                 on_down: Callable[[int], None], on_up: Callable[[int], None],
                 before_complete: Callable[[], None] = lambda: None, priority: int = 0, attempts: int = 3):
        from huggingface_hub import constants

        assert src.size is not None and src.sha256 is not None
        self.s, self.client, self.bucket, self.key, self.path, self.src = s, client, bucket, key, path, src
        self.size = src.size
        self.part = part_size_for(self.size, chunk)
        self.parts = max(1, -(-self.size // self.part))
        self.units = slots.size_of(self.part)
        self.pool, self.slots, self.extra, self.cancelled = pool, slots, extra, cancelled
        self.on_down, self.on_up, self.attempts = on_down, on_up, attempts
        self.before_complete = before_complete
        self.priority = priority
        self.timeout = constants.HF_HUB_DOWNLOAD_TIMEOUT
        self.failed = threading.Event()
        self.lock = threading.Lock()
        self.sha = hashlib.sha256()
        self.next_hash = 0
        self.hashing = False
        self.ready: dict[int, bytearray] = {}   # downloaded, not yet hashed
        self.uploaded: set[int] = set()
        self.hashed: set[int] = set()
        self.held: set[int] = set()              # parts holding a slot
        self.etags: dict[int, str] = {}
        self.remote_etag: str | None = None
        self.upload_id: str | None = None

    # --- the file's thread -------------------------------------------------------------------
    def run(self) -> str:
        """Download, hash and upload every part; complete the upload only if the sha256 matches.
        Returns the sha256. Raises (after aborting) on any failure."""
        self.upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key,
                                                             **self.extra)["UploadId"]
        futures: list[Future] = []
        try:
            for i in range(self.parts):
                if self.failed.is_set() or self.cancelled.is_set():
                    break
                self.slots.acquire(self.units, self.cancelled, self.priority)
                with self.lock:
                    self.held.add(i)
                futures.append(self.pool.submit(self._part, i))
            wait(futures)  # a failing range sets `failed`: the others stop at their next block
            errors = [f.exception() for f in futures if f.exception() is not None]
            real = [e for e in errors if not isinstance(e, _Stopped)]
            if real:
                raise real[0]
            if errors or len(futures) != self.parts:
                raise ModelCacheError("cancelled")
            got = self.sha.hexdigest()
            if self.next_hash != self.parts:
                raise IntegrityError(f"{self.path}: only {self.next_hash} of {self.parts} ranges were hashed")
            if got != self.src.sha256:
                raise IntegrityError(f"{self.path}: sha256 {got} does not match the Hub's LFS sha256 {self.src.sha256}")
            self.before_complete()  # e.g. the lease is still ours
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": self.etags[i]} for i in range(self.parts)]})
            return got
        except BaseException:
            self.failed.set()
            for f in futures:
                f.cancel()
            wait(futures)
            self._abort()
            raise
        finally:
            with self.lock:
                held, self.held = self.held, set()
                self.ready.clear()
            for _ in held:
                self.slots.release(self.units)

    def _abort(self) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception as exc:  # noqa: BLE001 - best effort; a bucket lifecycle rule cleans leftovers
            log.warning("could not abort the multipart upload of %s (%s)", self.key, type(exc).__name__)

    def _release(self, i: int) -> None:
        with self.lock:
            if i not in self.held:
                return
            self.held.discard(i)
        self.slots.release(self.units)

    # --- pool threads ------------------------------------------------------------------------
    def _part(self, i: int) -> None:
        try:
            buf = self._download(i)
            with self.lock:
                self.ready[i] = buf
            self._advance_hash()
            self.etags[i] = self._upload(i, buf)
            del buf
            with self.lock:
                self.uploaded.add(i)
                done = i in self.hashed
            if done:
                self._release(i)
        except BaseException:
            self.failed.set()
            raise

    def _advance_hash(self) -> None:
        """Hash the ranges that are now contiguous from the start (one thread at a time, in order)."""
        with self.lock:
            if self.hashing:
                return  # the thread hashing will find our range when it gets there
            self.hashing = True
        try:
            while True:
                with self.lock:
                    buf = self.ready.pop(self.next_hash, None)
                    if buf is None or self.failed.is_set():
                        self.hashing = False
                        return
                    i = self.next_hash
                self.sha.update(buf)
                del buf
                with self.lock:
                    self.next_hash += 1
                    self.hashed.add(i)
                    done = i in self.uploaded
                if done:
                    self._release(i)
        except BaseException:
            with self.lock:
                self.hashing = False
            raise

    def _download(self, i: int) -> bytearray:
        import httpx2
        from huggingface_hub.utils import get_session, hf_raise_for_status

        start = i * self.part
        end = min(start + self.part, self.size) - 1
        buf = bytearray(end - start + 1)
        view = memoryview(buf)
        pos = start
        tries = 0
        session = get_session()
        headers = dict(self.src.headers, **{"Accept-Encoding": "identity"})
        while pos <= end:
            self._check()
            headers["Range"] = f"bytes={pos}-{end}"
            try:
                with session.stream("GET", self.src.url, headers=headers, timeout=self.timeout) as resp:
                    if resp.status_code == 200:
                        raise RangeUnsupported(f"{self.path}: the server ignored Range")
                    hf_raise_for_status(resp)
                    if resp.status_code != 206:
                        raise RangeUnsupported(f"{self.path}: HTTP {resp.status_code} to a ranged GET")
                    cr = resp.headers.get("content-range", "")
                    if not cr.startswith(f"bytes {pos}-{end}/") or cr.rsplit("/", 1)[-1] not in (str(self.size), "*"):
                        raise IntegrityError(f"{self.path}: asked for bytes {pos}-{end}/{self.size}, got {cr!r}")
                    etag = resp.headers.get("etag")
                    with self.lock:
                        if self.remote_etag is None:
                            self.remote_etag = etag
                        elif etag and etag != self.remote_etag:
                            raise IntegrityError(f"{self.path}: the file changed while downloading "
                                                 f"(ETag {etag}, was {self.remote_etag})")
                    for chunk in resp.iter_raw():
                        n = len(chunk)
                        if pos + n > end + 1:
                            raise IntegrityError(f"{self.path}: the Hub sent more bytes than asked for")
                        view[pos - start:pos - start + n] = chunk
                        pos += n
                        tries = 0  # progress: the resume count starts again
                        self.on_down(n)
                        self._check()
                if pos <= end:
                    raise httpx2.RemoteProtocolError(f"range ended at byte {pos}, expected {end + 1}")
            except (httpx2.ConnectError, httpx2.TimeoutException, httpx2.NetworkError,
                    httpx2.RemoteProtocolError) as exc:
                tries += 1
                if tries > RESUMES:
                    raise translate(exc, self.s, f"downloading {self.path}") from exc
                log.warning("%s: range at byte %d broke (%s: %s); resuming", self.path, pos, type(exc).__name__, exc)
                time.sleep(min(0.5 * tries, 2))
            except (IntegrityError, RangeUnsupported, ModelCacheError, _Stopped):
                raise
            except Exception as exc:  # HTTP errors: 5xx/429 retried here, others raised
                err = translate(exc, self.s, f"downloading {self.path}")
                tries += 1
                if not isinstance(err, HubUnreachable) or tries > RESUMES:
                    raise err from exc
                log.warning("%s: range at byte %d failed (%s); retrying", self.path, pos, str(err))
                time.sleep(min(0.5 * tries, 2))
        return buf

    def _check(self) -> None:
        if self.failed.is_set() or self.cancelled.is_set():
            raise _Stopped(self.path)

    def _upload(self, i: int, buf: bytearray) -> str:
        last: Exception | None = None
        for _ in range(self.attempts):  # botocore already retried 5xx/throttling/timeouts inside
            self._check()
            try:
                resp = self.client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                               PartNumber=i + 1, Body=buf)
                self.on_up(len(buf))
                return resp["ETag"]
            except Exception as exc:  # noqa: BLE001 - retried, then raised
                last = exc
                log.warning("upload of part %d of %s failed (%s); retrying", i + 1, self.key, type(exc).__name__)
        assert last is not None
        raise last
