"""Local directories: refuse an unusable DOWNLOAD_DIR / --dest before anything else happens."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .errors import ConfigError


def check_writable_dir(path: Path, setting: str) -> None:
    """Fail in one line, naming the setting, unless ``path`` is (or can become) a writable directory.

    Creates nothing that stays: a missing directory is judged by its nearest existing parent, and
    writability is proven by creating and deleting a temporary file (``os.access`` says yes to root
    on a read-only file system).
    """
    fix = f"set {setting} to a writable directory (with a read-only root file system, mount an emptyDir there)"
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "is not a directory" if existing == path else f"is inside {existing}, which is a file"
        raise ConfigError(f"{setting}={str(path)!r} {what}: {fix}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".model-cache-write-test-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = "read-only file system" if exc.errno == errno.EROFS else (exc.strerror or str(exc))
        raise ConfigError(f"{setting}={str(path)!r} is not writable ({reason} at {existing}): {fix}") from None
