"""Upload a file to S3 as multipart *while it is still being downloaded*.

s3transfer uploads only complete files (or non-seekable streams it buffers in memory), so a
big shard would sit on disk until its download ends before any byte goes to S3. Here each
part is uploaded as soon as the download has written it (read back from the page cache), so
upload overlaps download inside one file, not only across files. The object becomes visible
only at CompleteMultipartUpload, which is called after the whole file's sha256 matched the
Hub's; on any failure the multipart upload is aborted, so a corrupt or partial object never
appears under its key.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

log = logging.getLogger("model_cache")

MiB = 1024 * 1024
MAX_PARTS = 10_000


def part_size_for(size: int, chunk: int) -> int:
    """The configured chunk, grown (in MiB steps) if needed to stay under S3's 10,000-part limit."""
    need = -(-size // (MAX_PARTS - 100))
    return max(chunk, -(-need // MiB) * MiB)


class StreamingMultipart:
    def __init__(self, client, bucket: str, key: str, path: Path, size: int, chunk: int,
                 pool: ThreadPoolExecutor, extra: dict, on_uploaded: Callable[[int], None], attempts: int = 3):
        self.client = client
        self.bucket = bucket
        self.key = key
        self.path = path
        self.size = size
        self.chunk = part_size_for(size, chunk)
        self.pool = pool
        self.on_uploaded = on_uploaded
        self.attempts = attempts
        self.lock = threading.Lock()
        self.futures: dict[int, Future] = {}
        self.submitted = 0
        self.upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]

    # --- called from the download thread -----------------------------------------------------
    def written(self, count: int) -> None:
        """`count` bytes of the file are on disk: submit every complete part not yet submitted."""
        while count - self.submitted >= self.chunk and self.submitted + self.chunk < self.size:
            self._submit(self.submitted, self.chunk)

    def rewound(self) -> None:
        """The download restarted from byte 0: parts will be re-sent (same numbers replace them)."""
        wait(list(self.futures.values()))
        with self.lock:
            self.futures.clear()
            self.submitted = 0

    def _submit(self, offset: int, length: int) -> None:
        number = offset // self.chunk + 1
        with self.lock:
            self.futures[number] = self.pool.submit(self._upload_part, number, offset, length)
            self.submitted = offset + length

    # --- part upload (pool threads) ----------------------------------------------------------
    def _upload_part(self, number: int, offset: int, length: int) -> str:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        if len(data) != length:
            raise OSError(f"part {number} of {self.key}: read {len(data)} of {length} bytes")
        last: Exception | None = None
        for _ in range(self.attempts):  # botocore already retried 5xx/throttling/timeouts inside
            try:
                resp = self.client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                               PartNumber=number, Body=data)
                self.on_uploaded(length)
                return resp["ETag"]
            except Exception as exc:  # noqa: BLE001 - retried, then raised
                last = exc
                log.warning("upload of part %d of %s failed (%s); retrying", number, self.key, type(exc).__name__)
        assert last is not None
        raise last

    # --- end ---------------------------------------------------------------------------------
    def complete(self) -> None:
        """Send the tail part, wait for all parts, then make the object visible."""
        if self.submitted < self.size or not self.futures:
            self._submit(self.submitted, self.size - self.submitted)
        parts = [{"PartNumber": n, "ETag": f.result()} for n, f in sorted(self.futures.items())]
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                              MultipartUpload={"Parts": parts})

    def abort(self) -> None:
        for f in self.futures.values():
            f.cancel()
        wait(list(self.futures.values()))
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception as exc:  # noqa: BLE001 - best effort; a bucket lifecycle rule cleans leftovers
            log.warning("could not abort the multipart upload of %s (%s)", self.key, type(exc).__name__)
