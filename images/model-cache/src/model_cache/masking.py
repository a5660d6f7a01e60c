"""Credential masking for every line this program writes.

A logging.Formatter masks the fully formatted record, traceback included, so a secret that
ends up inside an exception message (botocore, httpx) is masked too; the CLI's top-level
handler and sys.excepthook route through the same function.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
from urllib.parse import unquote, urlsplit

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

# Environment variables whose values are always treated as secrets.
SECRET_ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "HF_TOKEN",
                   "HUGGING_FACE_HUB_TOKEN")
# URLs that may carry `user:password@` (a mirror or proxy with basic auth): the password is a secret.
URL_ENV_VARS = ("S3_ENDPOINT_URL", "HF_ENDPOINT")


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


def register_url_secret(url: str | None) -> None:
    """Mask the password of a `scheme://user:password@host` URL, raw, percent-decoded and as the
    base64 of `user:password` (what an HTTP Basic Authorization header would carry)."""
    if not url or "@" not in url:
        return
    try:
        parts = urlsplit(url.strip())
        user, password = parts.username, parts.password
    except ValueError:  # unparsable (bad port, ...): mask everything between '//' and the last '@'
        userinfo = url.split("//", 1)[-1].rsplit("@", 1)[0]
        user, _, password = userinfo.partition(":")
    if password:
        register_secret(password)
        register_secret(unquote(password))
        register_secret(f"{user or ''}:{password}")
        register_secret(base64.b64encode(f"{unquote(user or '')}:{unquote(password)}".encode()).decode())


def redact_url(url: str) -> str:
    """The URL without its userinfo, for messages (the password is also masked by `mask`)."""
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "****@" + authority.rsplit("@", 1)[1]
    return f"{scheme}://{authority}{slash}{path}"


def register_env_secrets(environ: dict[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    for name in SECRET_ENV_VARS:
        register_secret(env.get(name))
        if env.get(name):  # a token in an Authorization header or a URL could appear base64-encoded
            register_secret(base64.b64encode(env[name].encode()).decode())
    for name in URL_ENV_VARS:
        register_url_secret(env.get(name))


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
