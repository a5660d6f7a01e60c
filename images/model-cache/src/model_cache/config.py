"""Settings from flags and environment (flags win), validated once with errors naming the variable."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError
from .layout import normalize_prefix, validate_repo_id, validate_revision

MiB = 1024 * 1024
TRUE = {"1", "true", "yes", "on", "y"}
FALSE = {"0", "false", "no", "off", "n"}


def _patterns(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [p.strip() for p in value.split(",") if p.strip()]
    return items or None


def _number(env: dict, name: str, default: float, minimum: float, maximum: float, integer: bool) -> float:
    """A finite number in [minimum, maximum]; anything else is refused naming the variable and the range.

    float() alone accepts 'nan', 'inf' and '1e999' (= inf), which would slip past a '>= minimum' check
    (NaN compares false) or crash int() with an OverflowError.
    """
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    kind = "a whole number" if integer else "a number"
    allowed = f"{kind} from {minimum:g} to {maximum:g}"
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (integer and value != int(value)):
        raise ConfigError(f"{name}={raw!r} is not {kind}: allowed is {allowed}; set {name} to such a value or "
                          f"unset it for the default {default:g}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={raw!r} is out of range: allowed is {allowed}; set {name} to such a value or "
                          f"unset it for the default {default:g}")
    return int(value) if integer else value


def _int(env: dict, name: str, default: int, minimum: int = 0, maximum: int = 1_000_000) -> int:
    return int(_number(env, name, default, minimum, maximum, integer=True))


def _float(env: dict, name: str, default: float, minimum: float = 0.0, maximum: float = 30 * 86400.0) -> float:
    return _number(env, name, default, minimum, maximum, integer=False)


def _bool(env: dict, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: allowed are 1/true/yes/on and 0/false/no/off; "
                      f"set {name} to one of them or unset it")


def check_url(name: str, url: str) -> str:
    """An http(s) URL with a host and a valid port, nothing else (no whitespace, query or fragment)."""
    from .masking import redact_url

    shown = redact_url(url)
    problem = None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        parts, port, problem = None, None, f"it does not parse ({exc})"
    if problem is None:
        if parts.scheme not in ("http", "https"):
            problem = "it must start with http:// or https://"
        elif not parts.hostname:
            problem = "it has no host name"
        elif any(c.isspace() or ord(c) < 32 for c in url):
            problem = "it contains whitespace or control characters"
        elif parts.query or parts.fragment:
            problem = "it may not have a query (?...) or fragment (#...)"
        elif port == 0:
            problem = "port 0 is not a valid port"
    if problem:
        raise ConfigError(f"{name}={shown!r} is not a valid endpoint URL: {problem}; "
                          f"set {name} to e.g. https://host[:port]")
    return url


@dataclass(frozen=True)
class Settings:
    repo_id: str
    revision: str
    bucket: str
    endpoint_url: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str
    addressing_style: str
    prefix: str
    hf_token: str | None = field(repr=False)
    hf_endpoint: str
    download_dir: Path
    disable_progress: bool
    allow_patterns: list[str] | None
    ignore_patterns: list[str] | None
    hf_max_workers: int
    s3_concurrency: int
    chunk_size: int
    memory_budget: int
    max_disk: int
    s3_max_attempts: int
    s3_retry_mode: str
    connect_timeout: float
    read_timeout: float
    file_retries: int
    lease_ttl: float
    lease_settle: float
    clock_skew: float
    poll_interval: float
    wait_timeout: float
    verify: str
    payload_signing: bool = False
    ranged: bool = True

    @property
    def part_concurrency(self) -> int:
        """Concurrent S3 part transfers, capped so concurrency x chunk fits the memory budget."""
        return max(1, min(self.s3_concurrency, self.memory_budget // max(self.chunk_size, 1)))


def load(args, command: str, environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)

    def pick(flag: str, *names: str, default: str | None = None) -> str | None:
        value = getattr(args, flag, None)
        if value not in (None, ""):
            return value
        for name in names:
            if env.get(name):
                return env[name]
        return default

    missing = []

    def require(flag: str, name: str, hint: str) -> str:
        value = pick(flag, name)
        if not value:
            missing.append(f"{name} ({hint})")
        return value or ""

    repo_raw = pick("model", "MODEL_NAME")
    bucket = require("bucket", "S3_BUCKET", "bucket name, or --bucket")
    endpoint = require("endpoint_url", "S3_ENDPOINT_URL", "S3 endpoint URL, or --endpoint-url")
    access_key = env.get("AWS_ACCESS_KEY_ID", "")
    secret_key = env.get("AWS_SECRET_ACCESS_KEY", "")
    if not access_key:
        missing.append("AWS_ACCESS_KEY_ID (S3 access key)")
    if not secret_key:
        missing.append("AWS_SECRET_ACCESS_KEY (S3 secret key)")
    if not repo_raw:
        missing.insert(0, "MODEL_NAME (Hugging Face repo id owner/name, or --model)")
    if missing:
        raise ConfigError("missing required setting(s): " + "; ".join(missing))
    endpoint_name = "--endpoint-url" if getattr(args, "endpoint_url", None) else "S3_ENDPOINT_URL"
    check_url(endpoint_name, endpoint)
    if urlsplit(endpoint).username is not None or urlsplit(endpoint).password is not None:
        raise ConfigError(f"{endpoint_name} carries user:password@: S3 credentials go in AWS_ACCESS_KEY_ID / "
                          f"AWS_SECRET_ACCESS_KEY; remove them from {endpoint_name}")

    repo_id = validate_repo_id(repo_raw, source="MODEL_NAME" if not getattr(args, "model", None) else "--model")
    revision = validate_revision(pick("revision", "MODEL_REVISION", default="main"),
                                 source="MODEL_REVISION" if not getattr(args, "revision", None) else "--revision")
    # An explicitly empty S3_PREFIX means "bucket root", so no pick() (which skips empty values).
    flag_prefix = getattr(args, "prefix", None)
    prefix = normalize_prefix(flag_prefix if flag_prefix is not None else env.get("S3_PREFIX", "models/"))

    # Patterns: MODEL_* (ours) win; the old tool's ALLOW_PATTERNS/IGNORE_PATTERNS are honoured,
    # with its rule that an allow list makes the ignore list unused.
    allow = _patterns(pick("allow_patterns", "MODEL_ALLOW_PATTERNS"))
    ignore = _patterns(pick("ignore_patterns", "MODEL_IGNORE_PATTERNS"))
    if allow is None and ignore is None:
        allow = _patterns(env.get("ALLOW_PATTERNS"))
        ignore = None if allow else _patterns(env.get("IGNORE_PATTERNS"))

    addressing = (env.get("S3_ADDRESSING_STYLE") or "path").lower()
    if addressing not in ("path", "virtual", "auto"):
        raise ConfigError(f"S3_ADDRESSING_STYLE={addressing!r} must be path, virtual or auto")
    retry_mode = (env.get("S3_RETRY_MODE") or "standard").lower()
    if retry_mode not in ("standard", "adaptive", "legacy"):
        raise ConfigError(f"S3_RETRY_MODE={retry_mode!r} must be standard, adaptive or legacy")
    verify = (getattr(args, "verify", None) or env.get("MODEL_CACHE_VERIFY") or "sha256").lower()
    if verify not in ("sha256", "etag"):
        raise ConfigError(f"--verify/MODEL_CACHE_VERIFY={verify!r} must be sha256 or etag")

    chunk_mib = _int(env, "MODEL_CACHE_CHUNK_MB", 16, minimum=5, maximum=5120)
    settings = Settings(
        repo_id=repo_id,
        revision=revision,
        bucket=bucket,
        endpoint_url=endpoint.rstrip("/"),
        access_key=access_key,
        secret_key=secret_key,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or env.get("S3_REGION") or "us-east-1",
        addressing_style=addressing,
        prefix=prefix,
        hf_token=env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or None,
        hf_endpoint=(pick("hf_endpoint", "HF_ENDPOINT", default="https://huggingface.co") or "").rstrip("/"),
        download_dir=Path(pick("download_dir", "DOWNLOAD_DIR", default="/tmp") or "/tmp"),
        disable_progress=bool(getattr(args, "no_progress", False)) or _bool(env, "DISABLE_PROGRESS", False),
        allow_patterns=allow,
        ignore_patterns=ignore,
        hf_max_workers=_int(env, "HF_MAX_WORKERS", 8, minimum=1, maximum=256),
        s3_concurrency=_int(env, "MODEL_CACHE_S3_CONCURRENCY", 16, minimum=1, maximum=256),
        chunk_size=chunk_mib * MiB,
        memory_budget=_int(env, "MODEL_CACHE_MEMORY_MB", 384, minimum=16, maximum=1 << 20) * MiB,
        max_disk=_int(env, "MODEL_CACHE_MAX_DISK_MB", 0, maximum=1 << 30) * MiB,
        s3_max_attempts=_int(env, "S3_MAX_ATTEMPTS", 8, minimum=1, maximum=100),
        s3_retry_mode=retry_mode,
        connect_timeout=_float(env, "S3_CONNECT_TIMEOUT", 10.0, minimum=0.1, maximum=3600.0),
        read_timeout=_float(env, "S3_READ_TIMEOUT", 60.0, minimum=0.1, maximum=3600.0),
        file_retries=_int(env, "MODEL_CACHE_FILE_RETRIES", 3, minimum=1, maximum=100),
        lease_ttl=_float(env, "MODEL_CACHE_LEASE_TTL", 60.0, minimum=1.0),
        lease_settle=_float(env, "MODEL_CACHE_LEASE_SETTLE", 0.5, maximum=60.0),
        clock_skew=_float(env, "MODEL_CACHE_CLOCK_SKEW", 5.0, maximum=3600.0),
        poll_interval=_float(env, "MODEL_CACHE_POLL_INTERVAL", 1.0, minimum=0.05, maximum=3600.0),
        wait_timeout=_float(env, "MODEL_CACHE_WAIT_TIMEOUT", 4 * 3600.0, minimum=1.0),
        verify=verify,
        payload_signing=_bool(env, "S3_PAYLOAD_SIGNING", False),
        ranged=_bool(env, "MODEL_CACHE_RANGED", True),
    )
    if command in ("ensure", "status"):
        check_url("--hf-endpoint" if getattr(args, "hf_endpoint", None) else "HF_ENDPOINT", settings.hf_endpoint)
        # Read by huggingface_hub itself at import: refused here with their names instead of failing there.
        _float(env, "HF_HUB_DOWNLOAD_TIMEOUT", 30.0, minimum=1.0, maximum=3600.0)
        _float(env, "HF_HUB_ETAG_TIMEOUT", 30.0, minimum=1.0, maximum=3600.0)
    return settings
