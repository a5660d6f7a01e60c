"""Errors the CLI turns into one readable line and exit code 1 (no traceback)."""


class ModelCacheError(Exception):
    """A failure with a message meant for the person reading the init container's log."""


class ConfigError(ModelCacheError):
    """Missing or invalid setting; the message names the variable or flag."""


class ValidationError(ModelCacheError):
    """Untrusted input (repo id, a file name from the Hub or the manifest) was rejected."""


class HubError(ModelCacheError):
    """The Hub refused or failed a request; carries the HTTP status where there is one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class HubUnreachable(HubError):
    """The Hub could not be reached at all (connection refused, DNS, timeout)."""


class IntegrityError(ModelCacheError):
    """Bytes did not match the size/sha256/ETag they were promised to have."""


class NotCachedError(ModelCacheError):
    """restore/status: the bucket holds no complete snapshot for this model."""


class LeaseLost(ModelCacheError):
    """Another process took the lease over while we held it (we were presumed dead)."""
