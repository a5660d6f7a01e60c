"""Server settings, read once from the environment and validated with clear errors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

QUANTIZATIONS = ("4bit", "none")
DTYPES = ("auto", "bfloat16", "float16", "float32")
ATTENTIONS = ("auto", "flash_attention_2", "sdpa", "eager")


class SettingsError(ValueError):
    """A bad environment value: the message names the variable, the value and what is allowed."""


def _int(env: Mapping[str, str], key: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise SettingsError(f"{key}={value} is out of range: must be {allowed}")
    return value


def _float(env: Mapping[str, str], key: str, default: float, minimum: float) -> float:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not a number") from None
    if not value >= minimum:
        raise SettingsError(f"{key}={value} is out of range: must be >= {minimum}")
    return value


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in _TRUE + _FALSE:
        raise SettingsError(f"{key}={raw!r} is not a boolean; allowed: true, false (also 1/0, yes/no, on/off)")
    return value in _TRUE


def _choice(env: Mapping[str, str], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(key) or default).strip().lower()
    if value not in allowed:
        raise SettingsError(f"{key}={value!r} is not supported; allowed: {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class Settings:
    model_path: str = "/models/model"
    #: The name served in /v1/models and accepted as ``model`` (env SERVED_MODEL_NAME); defaults to the
    #: last component of model_path. Not MODEL_NAME: in the pod that is model-cache's Hub repo id.
    served_model_name: str = ""
    quantization: str = "4bit"
    dtype: str = "auto"
    attention: str = "auto"
    #: Run Python code shipped in the model folder (``auto_map`` in config.json). Off by default: that
    #: code runs inside the server with its privileges (docs/hf-server.md, "trustRemoteCode").
    trust_remote_code: bool = False
    host: str = "0.0.0.0"
    port: int = 8000
    max_concurrency: int = 1
    max_queue: int = 16
    queue_timeout_s: float = 120.0
    retry_after_s: int = 1
    max_tokens_limit: int = 2048
    default_max_tokens: int = 256
    log_level: str = "info"

    @property
    def served_name(self) -> str:
        return self.served_model_name or Path(self.model_path.rstrip("/")).name or "model"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        max_tokens_limit = _int(env, "MAX_TOKENS_LIMIT", 2048, 1)
        default_max_tokens = _int(env, "DEFAULT_MAX_TOKENS", min(256, max_tokens_limit), 1)
        if default_max_tokens > max_tokens_limit:
            raise SettingsError(
                f"DEFAULT_MAX_TOKENS={default_max_tokens} is larger than MAX_TOKENS_LIMIT={max_tokens_limit}"
            )
        return cls(
            model_path=(env.get("MODEL_PATH") or "/models/model").strip(),
            served_model_name=(env.get("SERVED_MODEL_NAME") or "").strip(),
            quantization=_choice(env, "QUANTIZATION", "4bit", QUANTIZATIONS),
            dtype=_choice(env, "DTYPE", "auto", DTYPES),
            attention=_choice(env, "ATTENTION", "auto", ATTENTIONS),
            trust_remote_code=_bool(env, "TRUST_REMOTE_CODE", False),
            host=(env.get("HOST") or "0.0.0.0").strip(),
            port=_int(env, "PORT", 8000, 0, 65535),
            max_concurrency=_int(env, "MAX_CONCURRENCY", 1, 1),
            max_queue=_int(env, "MAX_QUEUE", 16, 0),
            queue_timeout_s=_float(env, "QUEUE_TIMEOUT_S", 120.0, 0.0),
            retry_after_s=_int(env, "RETRY_AFTER_S", 1, 0),
            max_tokens_limit=max_tokens_limit,
            default_max_tokens=default_max_tokens,
            log_level=_choice(env, "LOG_LEVEL", "info", ("critical", "error", "warning", "info", "debug")),
        )
