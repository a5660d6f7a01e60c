"""The download lease: one holder per (repo, sha), everyone else waits for the manifest.

Protocol (all on one object, `{prefix}{repo}/leases/{sha}.json`):
- acquire: PUT with `If-None-Match: *` (fails with 412/409 if the lease exists);
- heartbeat: every ttl/3 the holder rewrites it with `If-Match: <its ETag>`, pushing `expires` on;
  a 412 there means someone took the lease over: the holder stops (LeaseLost);
- stale: `expires` (holder's clock) is past by more than the allowed clock skew, or the waiter
  has itself seen the same ETag for longer than ttl + skew (immune to clock differences);
- takeover: PUT with `If-Match: <stale ETag>`, so of several waiters only one wins; a store
  without If-Match on PUT gets DELETE `If-Match` + PUT `If-None-Match: *` instead;
- after every successful write the holder re-reads the lease after a short settle time and
  checks it is still its own (guards against stores whose conditional PUT is not atomic);
- release: DELETE `If-Match: <ETag>` after the manifest is written (or on failure).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid

from . import __version__
from .config import Settings
from .errors import LeaseLost
from .s3 import error_code, get_json, is_not_found, is_not_implemented, is_precondition_failed, put_json

log = logging.getLogger("model_cache.lease")


def holder_id() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, client, s: Settings, key: str):
        self.client = client
        self.s = s
        self.key = key
        self.id = holder_id()
        self.etag: str | None = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: tuple[str, float] | None = None  # (etag, first seen, monotonic) of someone else's lease
        self._lock = threading.Lock()
        self._conditional = True  # renew with If-Match (off if the store answers NotImplemented)

    # --- documents ---------------------------------------------------------------------------
    def _doc(self) -> dict:
        now = time.time()
        return {"holder": self.id, "host": socket.gethostname(), "pid": os.getpid(),
                "renewed": now, "expires": now + self.s.lease_ttl, "ttl": self.s.lease_ttl,
                "tool": f"model-cache {__version__}"}

    def read(self) -> tuple[dict, str] | None:
        # An unreadable lease reads as {} (no expiry): stale at once, taken over with If-Match.
        return get_json(self.client, self.s.bucket, self.key, invalid_ok=True)

    def stale(self, doc: dict, etag: str) -> bool:
        now = time.time()
        try:
            expires = float(doc.get("expires", 0))
            ttl = float(doc.get("ttl", self.s.lease_ttl))
        except (TypeError, ValueError):
            return True  # unreadable lease: treat as abandoned
        if not (math.isfinite(expires) and math.isfinite(ttl)):
            return True  # NaN would never compare as past: abandoned too
        if expires + self.s.clock_skew < now:
            return True
        mono = time.monotonic()
        if self._seen is None or self._seen[0] != etag:
            self._seen = (etag, mono)
            return False
        return mono - self._seen[1] > ttl + self.s.clock_skew

    # --- acquire -----------------------------------------------------------------------------
    def try_acquire(self) -> bool:
        """True if we now hold the lease; False if someone else validly holds it."""
        from botocore.exceptions import ClientError

        # Look first: a valid lease means wait, without a write. This also narrows the race on
        # stores that ignore If-None-Match (the re-read in _confirm settles what remains).
        current = self.read()
        if current is not None and not self.stale(*current):
            return False
        try:
            etag = put_json(self.client, self.s.bucket, self.key, self._doc(), IfNoneMatch="*")
        except ClientError as exc:
            if is_not_implemented(exc):
                # No conditional writes on this store: plain PUT over a free lease or an abandoned
                # one (a valid lease returned above); the settle + re-read in _confirm decides
                # between replicas that raced inside the window, as for a free lease. Raising here
                # instead would leave an abandoned lease in place for good: every replica would fail.
                log.warning("the store does not support If-None-Match; using write-then-verify for the lease")
                if current is not None:
                    self._announce_takeover(current[0])
                etag = put_json(self.client, self.s.bucket, self.key, self._doc())
                return self._confirm(etag)
            if not is_precondition_failed(exc):
                raise
            current = self.read()
            if current is None:
                return False  # released between our PUT and GET: next poll retries at once
            doc, cur_etag = current
            if not self.stale(doc, cur_etag):
                return False
            self._announce_takeover(doc)
            etag = self._takeover(cur_etag)
            if etag is None:
                return False
        return self._confirm(etag)

    @staticmethod
    def _announce_takeover(doc: dict) -> None:
        log.warning("lease held by %s expired (expires=%s); taking it over", doc.get("holder", "?"),
                    _iso(doc.get("expires")))

    def _takeover(self, stale_etag: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return put_json(self.client, self.s.bucket, self.key, self._doc(), IfMatch=stale_etag)
        except ClientError as exc:
            if is_precondition_failed(exc) or is_not_found(exc):
                return None  # another waiter won the takeover, or the holder released it
            if not is_not_implemented(exc) and error_code(exc) not in ("InvalidArgument", "400"):
                raise
        # Store without conditional overwrite: delete exactly the stale version, then create.
        try:
            self.client.delete_object(Bucket=self.s.bucket, Key=self.key, IfMatch=stale_etag)
            return put_json(self.client, self.s.bucket, self.key, self._doc(), IfNoneMatch="*")
        except ClientError as exc:
            if is_precondition_failed(exc) or is_not_found(exc):
                return None
            raise

    def _confirm(self, etag: str) -> bool:
        if self.s.lease_settle > 0:
            time.sleep(self.s.lease_settle)
        current = self.read()
        if current is None or current[0].get("holder") != self.id:
            log.info("lease write was overtaken by another process; waiting instead")
            return False
        self.etag = current[1] or etag
        self._seen = None
        self._thread = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
        self._thread.start()
        log.info("holding the download lease (%s, ttl %.0fs)", self.id, self.s.lease_ttl)
        return True

    # --- heartbeat / release -----------------------------------------------------------------
    def _heartbeat(self) -> None:
        from botocore.exceptions import ClientError

        interval = max(self.s.lease_ttl / 3.0, 0.2)
        last_ok = time.monotonic()
        while not self._stop.wait(interval):
            try:
                with self._lock:
                    if self._stop.is_set():
                        return
                    if self._conditional:
                        self.etag = put_json(self.client, self.s.bucket, self.key, self._doc(), IfMatch=self.etag)
                    else:
                        self.etag = put_json(self.client, self.s.bucket, self.key, self._doc())
                last_ok = time.monotonic()
            except ClientError as exc:
                if is_not_implemented(exc) and self._conditional:
                    log.warning("the store does not support If-Match on PUT; renewing the lease unconditionally")
                    self._conditional = False
                    continue
                if is_precondition_failed(exc) or is_not_found(exc):
                    log.error("lost the download lease (another process took it over)")
                    self.lost.set()
                    return
                log.warning("lease heartbeat failed (%s); retrying", error_code(exc))
            except Exception as exc:  # noqa: BLE001 - transient network trouble; retried next beat
                log.warning("lease heartbeat failed (%s); retrying", type(exc).__name__)
            if time.monotonic() - last_ok > self.s.lease_ttl:
                log.error("could not renew the lease for longer than its ttl; giving it up")
                self.lost.set()
                return

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost("the download lease was taken over by another process")

    def release(self) -> None:
        from botocore.exceptions import ClientError

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.etag is None or self.lost.is_set():
            return
        with self._lock:
            try:
                self.client.delete_object(Bucket=self.s.bucket, Key=self.key, IfMatch=self.etag)
            except ClientError as exc:
                if not (is_precondition_failed(exc) or is_not_found(exc)):
                    log.warning("could not release the lease (%s); it expires by itself", error_code(exc))
            except Exception as exc:  # noqa: BLE001
                log.warning("could not release the lease (%s); it expires by itself", type(exc).__name__)
        self.etag = None


def _iso(ts) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(ts)))
    except (TypeError, ValueError):
        return "?"
