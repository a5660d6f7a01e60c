"""Byte progress for download/upload/restore: a tqdm bar on a terminal, periodic log lines otherwise.

With DISABLE_PROGRESS there is no bar; a log line with bytes, throughput and ETA still appears
every `interval` seconds so a person reading `kubectl logs` sees the transfer moving.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

log = logging.getLogger("model_cache")


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


class Progress:
    def __init__(self, label: str, total: int, *, disabled: bool, interval: float = 15.0, position: int = 0):
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._bar = None
        self._interval = interval
        self._next_log = self.start + interval
        if not disabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                             position=position, leave=True, file=sys.stderr, dynamic_ncols=True,
                             mininterval=0.5)
        elif not disabled:
            self._interval = min(interval, 10.0)
            self._next_log = self.start + self._interval

    def update(self, n: int) -> None:
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)
                return
            now = time.monotonic()
            if now >= self._next_log:
                self._next_log = now + self._interval
                log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.start, 1e-6)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 and self.total else 0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (f"{self.label}: {human(self.done)} / {human(self.total)} ({pct:.0f}%), "
                f"{human(rate)}/s, ETA {duration(eta)}")

    def close(self) -> float:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
        elapsed = time.monotonic() - self.start
        return elapsed
