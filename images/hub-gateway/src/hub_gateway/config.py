"""Settings from the environment, validated once at start-up; every error names the variable and the fix.

The bucket settings are model-cache's own (same variables, same parsing: the gateway reads the
same ConfigMap and Secret as the model workloads), so they are loaded with ``model_cache.config``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from model_cache import config as mc_config
from model_cache.errors import ModelCacheError
from model_cache.layout import REPO_PART

#: model-cache's loader wants a repo id; the gateway serves many, so the base settings carry a
#: placeholder that is replaced per request (``dataclasses.replace``).
PLACEHOLDER_REPO = "hub-gateway/mirror"
DEFAULT_CALLERS_FILE = "/etc/hub-gateway/callers/callers.json"
CALLER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MIN_TOKEN_CHARS = 24


class ConfigError(Exception):
    """A setting the gateway cannot start with; the message is the one line printed."""


@dataclass(frozen=True)
class Caller:
    """One team allowed to call the gateway, and what it may change on the Hub."""

    name: str
    token_sha256: bytes = field(repr=False)
    write: tuple[str, ...] = ()
    """Namespaces (owner names, fnmatch patterns) the caller may create repos in and change visibility of."""
    delete: tuple[str, ...] = ()
    """Repo ids (fnmatch patterns, e.g. ``acme/scratch-*``) the caller may delete; needs write too."""

    def may_write(self, namespace: str) -> bool:
        return any(fnmatch.fnmatchcase(namespace, p) for p in self.write)

    def may_delete(self, repo_id: str) -> bool:
        return self.may_write(repo_id.split("/", 1)[0]) and any(
            fnmatch.fnmatchcase(repo_id, p) for p in self.delete)


@dataclass(frozen=True)
class Callers:
    callers: tuple[Caller, ...] = ()

    def authenticate(self, token: str | None) -> Caller | None:
        """The caller whose token this is. Compares digests in constant time, over every caller."""
        if not token:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for caller in self.callers:
            if hmac.compare_digest(digest, caller.token_sha256):
                found = caller
        return found


@dataclass(frozen=True)
class Settings:
    store: mc_config.Settings = field(repr=False)
    """model-cache's settings: bucket, endpoint, prefix, credential, S3 timeouts and retries."""
    hf_endpoint: str
    hf_token: str | None = field(repr=False)
    allow_repos: tuple[str, ...]
    """Repos (fnmatch patterns) that may be passed through to the Hub when not cached."""
    callers: Callers = field(repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    chunk_size: int = 1024 * 1024
    prefetch_chunks: int = 2
    """Chunks read ahead from S3 per download (0 = read only when the client has taken the last one)."""
    host: str = "0.0.0.0"
    port: int = 8080

    def allowed_upstream(self, repo_id: str) -> bool:
        return any(fnmatch.fnmatchcase(repo_id, p) for p in self.allow_repos)


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds; set e.g. {name}={default:g}") from None
    if not 0 < value <= 3600:
        raise ConfigError(f"{name}={raw!r} must be > 0 and <= 3600 seconds")
    return value


def parse_callers(text: str, source: str) -> Callers:
    """``{"team-a": {"token": "...", "write": ["acme"], "delete": ["acme/scratch-*"]}, ...}``.

    ``token_sha256`` (hex) may replace ``token`` so a file need not hold the token itself.
    """
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}); expected "
                          '{"<team>": {"token": "...", "write": ["<namespace>"], "delete": ["<owner>/<pattern>"]}}'
                          ) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source} must be a JSON object of team name -> settings")
    callers: list[Caller] = []
    digests: set[bytes] = set()
    for name, entry in doc.items():
        where = f"{source}: caller {name!r}"
        if not CALLER_NAME.match(name):
            raise ConfigError(f"{where}: the name must be a DNS label (lower case letters, digits, '-')")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object with token, write and delete")
        unknown = set(entry) - {"token", "token_sha256", "write", "delete"}
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {sorted(unknown)}; allowed: token, token_sha256, "
                              "write, delete")
        token, hashed = entry.get("token"), entry.get("token_sha256")
        if (token is None) == (hashed is None):
            raise ConfigError(f"{where} needs exactly one of token or token_sha256")
        if token is not None:
            if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS:
                raise ConfigError(f"{where}: token must be a string of at least {MIN_TOKEN_CHARS} characters "
                                  "(generate one with pulumi-random or `openssl rand -hex 24`)")
            digest = hashlib.sha256(token.encode()).digest()
        else:
            if not isinstance(hashed, str) or not re.fullmatch(r"[0-9a-f]{64}", hashed):
                raise ConfigError(f"{where}: token_sha256 must be 64 lower-case hex digits")
            digest = bytes.fromhex(hashed)
        if digest in digests:
            raise ConfigError(f"{where}: the same token is given to two callers; give each team its own")
        digests.add(digest)
        lists = {}
        for key in ("write", "delete"):
            value = entry.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ConfigError(f"{where}: {key} must be a list of non-empty strings")
            lists[key] = tuple(v.strip() for v in value)
        for pattern in lists["delete"]:
            if "/" not in pattern:
                raise ConfigError(f"{where}: delete pattern {pattern!r} must name the owner, like "
                                  f"'{pattern}' -> '<owner>/{pattern}'")
        callers.append(Caller(name, digest, lists["write"], lists["delete"]))
    return Callers(tuple(callers))


def _load_callers(env: dict[str, str]) -> Callers:
    inline = env.get("GATEWAY_CALLERS", "").strip()
    if inline:
        return parse_callers(inline, "GATEWAY_CALLERS")
    explicit = env.get("GATEWAY_CALLERS_FILE", "").strip()
    path = Path(explicit or DEFAULT_CALLERS_FILE)
    if path.is_dir():  # a Secret mounted as a directory: its callers.json key
        path = path / "callers.json"
    if not path.is_file():
        if explicit:
            raise ConfigError(f"GATEWAY_CALLERS_FILE={explicit!r}: no such file; mount the callers Secret there "
                              "or set GATEWAY_CALLERS")
        return Callers()  # no callers: the mirror works, every proxy call is refused (401)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"GATEWAY_CALLERS_FILE={str(path)!r} cannot be read: {exc.strerror}") from None
    return parse_callers(text, f"GATEWAY_CALLERS_FILE={str(path)!r}")


def _repo_patterns(raw: str) -> tuple[str, ...]:
    patterns = tuple(p.strip() for p in raw.replace("\n", ",").split(",") if p.strip())
    for p in patterns:
        parts = p.split("/")
        if len(parts) > 2 or not all(REPO_PART.fullmatch(x.replace("*", "a").replace("?", "a")) for x in parts):
            raise ConfigError(f"GATEWAY_ALLOW_REPOS entry {p!r} is not a repo id or pattern (owner/name, "
                              "gpt2, acme/*)")
    return patterns


def load(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    try:
        store = mc_config.load(SimpleNamespace(model=PLACEHOLDER_REPO), "restore", env)
    except ModelCacheError as exc:
        raise ConfigError(str(exc)) from None
    endpoint = (env.get("HF_ENDPOINT") or "https://huggingface.co").strip().rstrip("/")
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"HF_ENDPOINT={endpoint!r} must start with http:// or https://")
    port_raw = env.get("PORT", "8080").strip() or "8080"
    if not port_raw.isdigit() or not 0 <= int(port_raw) < 65536:
        raise ConfigError(f"PORT={port_raw!r} must be a TCP port number (1-65535; 0 = any free port)")
    chunk_raw = env.get("GATEWAY_CHUNK_KB", "1024").strip() or "1024"
    if not chunk_raw.isdigit() or not 64 <= int(chunk_raw) <= 16384:
        raise ConfigError(f"GATEWAY_CHUNK_KB={chunk_raw!r} must be a whole number from 64 to 16384")
    prefetch_raw = env.get("GATEWAY_PREFETCH_CHUNKS", "2").strip() or "2"
    if not prefetch_raw.isdigit() or int(prefetch_raw) > 16:
        raise ConfigError(f"GATEWAY_PREFETCH_CHUNKS={prefetch_raw!r} must be a whole number from 0 to 16")
    return Settings(
        store=store,
        hf_endpoint=endpoint,
        hf_token=(env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or "").strip() or None,
        allow_repos=_repo_patterns(env.get("GATEWAY_ALLOW_REPOS", "")),
        callers=_load_callers(env),
        connect_timeout=_float(env, "GATEWAY_CONNECT_TIMEOUT", 10.0),
        read_timeout=_float(env, "GATEWAY_UPSTREAM_TIMEOUT", 60.0),
        chunk_size=int(chunk_raw) * 1024,
        prefetch_chunks=int(prefetch_raw),
        host=env.get("HOST", "0.0.0.0").strip() or "0.0.0.0",
        port=int(port_raw),
    )
