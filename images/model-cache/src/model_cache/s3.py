"""S3 client for S3-compatible stores (Civo, Ceph RGW, MinIO, moto) and small helpers."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from .config import Settings
from .errors import ModelCacheError

log = logging.getLogger("model_cache.s3")

PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
NOT_IMPLEMENTED_CODES = {"NotImplemented", "501"}  # e.g. conditional writes on a store without them
BODY_ATTEMPTS = 4


def make_client(s: Settings):
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=s.region,
        # boto3 >= 1.36 adds CRC checksums by default; S3-compatible stores (Civo) reject them.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # payload_signing_enabled=False sends UNSIGNED-PAYLOAD: otherwise botocore hashes every
        # uploaded byte once more for SigV4 (always over http, and over https too when no checksum
        # header is sent, which is our case with "when_required"). Integrity is end to end instead:
        # sha256 checked against the Hub before upload, recorded, and re-checked on restore.
        s3={"addressing_style": s.addressing_style, "payload_signing_enabled": s.payload_signing},
        retries={"mode": s.s3_retry_mode, "max_attempts": s.s3_max_attempts},
        connect_timeout=s.connect_timeout,
        read_timeout=s.read_timeout,
        max_pool_connections=max(16, s.part_concurrency + s.hf_max_workers + 4),
        tcp_keepalive=True,
        user_agent_extra="model-cache",
    )
    session = boto3.session.Session(
        aws_access_key_id=s.access_key,
        aws_secret_access_key=s.secret_key,
        region_name=s.region,
    )
    return session.client("s3", endpoint_url=s.endpoint_url, config=config)


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code or (str(status) if status else "")


def is_precondition_failed(exc: BaseException) -> bool:
    response = getattr(exc, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(exc) in PRECONDITION_CODES or status in (409, 412)


def is_not_found(exc: BaseException) -> bool:
    response = getattr(exc, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(exc) in NOT_FOUND_CODES or status == 404


def is_not_implemented(exc: BaseException) -> bool:
    return error_code(exc) in NOT_IMPLEMENTED_CODES


def describe(exc: BaseException, what: str, s: Settings) -> ModelCacheError:
    """One line for any S3 failure: what failed, where, the cause, and the setting that fixes it."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from .masking import redact_url

    where = redact_url(s.endpoint_url)
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Message") or "")
        cause = f"{code}" + (f" ({message})" if message and message != code else "")
        if code in ("NoSuchBucket",):
            return ModelCacheError(f"S3 {what}: no such bucket {s.bucket!r} at {where}: check S3_BUCKET "
                                   "(create the bucket, or fix its name)")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden"):
            return ModelCacheError(f"S3 {what} at {where} was refused: {cause}: check AWS_ACCESS_KEY_ID / "
                                   f"AWS_SECRET_ACCESS_KEY and that the key may read and write bucket {s.bucket!r}")
        return ModelCacheError(f"S3 {what} at {where} failed: {cause}: check S3_ENDPOINT_URL and S3_BUCKET, "
                               "or retry if the store is having trouble")
    if isinstance(exc, EndpointConnectionError):
        return ModelCacheError(f"S3 endpoint {where} unreachable during {what}: check S3_ENDPOINT_URL "
                               "(host, port, http vs https) and the network")
    if isinstance(exc, NoCredentialsError):
        return ModelCacheError("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    return ModelCacheError(f"S3 {what} at {where} failed: {type(exc).__name__}: {exc}: check S3_ENDPOINT_URL "
                           "and the network")


def check_bucket(client, s: Settings) -> None:
    """Fail early, in one line, when the bucket is missing or the credentials may not use it.

    HEAD bucket has no body, so a missing bucket is a bare 404 (no NoSuchBucket code) there.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.head_bucket(Bucket=s.bucket)
    except ClientError as exc:
        if is_not_found(exc) or error_code(exc) == "NoSuchBucket":
            from .masking import redact_url

            raise ModelCacheError(f"no such bucket {s.bucket!r} at {redact_url(s.endpoint_url)}: check S3_BUCKET "
                                  "(create the bucket, or fix its name)") from None
        raise describe(exc, f"access to bucket {s.bucket!r}", s) from None
    except BotoCoreError as exc:
        raise describe(exc, f"access to bucket {s.bucket!r}", s) from None


def head(client, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def get_json(client, bucket: str, key: str, *, invalid_ok: bool = False) -> tuple[dict[str, Any], str] | None:
    """(document, ETag) or None when the key does not exist.

    invalid_ok: a body that is not a JSON object gives ({}, ETag) instead of an error (the lease:
    an unreadable lease is an abandoned one, replaced with If-Match on that ETag)."""
    from botocore.exceptions import ClientError, ResponseStreamingError

    for attempt in range(1, BODY_ATTEMPTS + 1):
        try:
            resp = client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        try:
            body = resp["Body"].read()
            break
        except (ResponseStreamingError, OSError):
            # botocore retries the request, not a body that breaks while it is read (a loaded
            # server closing the connection early): these documents are small, read them again.
            if attempt == BODY_ATTEMPTS:
                raise
            time.sleep(0.1 * attempt)
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        if invalid_ok:
            return {}, resp.get("ETag", "")
        raise ModelCacheError(f"s3://{bucket}/{key} is not a JSON object (damaged or written by another tool): "
                              "delete it and run model-cache ensure again")
    return doc, resp.get("ETag", "")


def put_json(client, bucket: str, key: str, doc: dict[str, Any], **conditions) -> str:
    body = json.dumps(doc, indent=1, sort_keys=True).encode()
    resp = client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", **conditions)
    return resp.get("ETag", "")
