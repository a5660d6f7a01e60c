"""Credential masking for every line this program writes.

A logging.Formatter masks the fully formatted record, traceback included, so a secret that
ends up inside an exception message (botocore, httpx) is masked too; the CLI's top-level
handler and sys.excepthook route through the same function.
"""

from __future__ import annotations

import logging
import os
import re
import threading

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

# Environment variables whose values are always treated as secrets.
SECRET_ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "HF_TOKEN",
                   "HUGGING_FACE_HUB_TOKEN")


def mask_value(value: str) -> str:
    """First and last 4 characters, the rest starred; short values are starred entirely."""
    if len(value) <= 12:
        return "****"
    return f"{value[:4]}****{value[-4:]}"


def register_secret(value: str | None) -> None:
    global _pattern
    if not value or len(value) < 4:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first so a secret containing another is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_env_secrets(environ: dict[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    for name in SECRET_ENV_VARS:
        register_secret(env.get(name))


def mask(text: str) -> str:
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(lambda m: mask_value(m.group(0)), text)


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))

    def formatException(self, ei) -> str:
        return mask(super().formatException(ei))
