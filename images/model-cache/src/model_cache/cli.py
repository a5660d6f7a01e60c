"""Command line: model-cache ensure | restore --dest DIR | status.  Exit 0 = ready, 1 = failure."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from . import __version__
from .masking import MaskingFormatter, mask, register_env_secrets, register_url_secret

log = logging.getLogger("model_cache")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="model-cache", description=__doc__)
    p.add_argument("--version", action="version", version=f"model-cache {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", help="repo id owner/name (env MODEL_NAME)")
    common.add_argument("--revision", help="branch, tag or commit (env MODEL_REVISION, default main)")
    common.add_argument("--bucket", help="bucket (env S3_BUCKET)")
    common.add_argument("--endpoint-url", dest="endpoint_url", help="S3 endpoint (env S3_ENDPOINT_URL)")
    common.add_argument("--prefix", help="key prefix (env S3_PREFIX, default models/)")
    common.add_argument("--allow-patterns", dest="allow_patterns",
                        help="comma-separated globs to include (env MODEL_ALLOW_PATTERNS)")
    common.add_argument("--ignore-patterns", dest="ignore_patterns",
                        help="comma-separated globs to exclude (env MODEL_IGNORE_PATTERNS)")
    common.add_argument("--no-progress", dest="no_progress", action="store_true",
                        help="no progress bars (env DISABLE_PROGRESS)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("ensure", parents=[common], help="make the bucket hold a verified snapshot")
    e.add_argument("--hf-endpoint", dest="hf_endpoint", help="Hub URL (env HF_ENDPOINT)")
    e.add_argument("--download-dir", dest="download_dir", help="scratch directory (env DOWNLOAD_DIR, default /tmp)")
    r = sub.add_parser("restore", parents=[common], help="copy the cached snapshot into a directory")
    r.add_argument("--dest", required=True, help="destination directory")
    r.add_argument("--verify", choices=["sha256", "etag"],
                   help="sha256 of every byte (default) or the faster size+ETag check (env MODEL_CACHE_VERIFY)")
    st = sub.add_parser("status", parents=[common], help="print what the bucket holds, as JSON")
    st.add_argument("--hf-endpoint", dest="hf_endpoint", help="Hub URL (env HF_ENDPOINT)")
    st.add_argument("--no-hub", dest="no_hub", action="store_true",
                    help="never ask the Hub (by default it is asked for the sha only when the bucket has no ref)")
    return p


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3", "httpx", "httpx2", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _excepthook(exc_type, exc, tb) -> None:
    import traceback

    sys.stderr.write(mask("".join(traceback.format_exception(exc_type, exc, tb))))


def _prepare_environment(args) -> None:
    """Before huggingface_hub is imported: it reads these at import time."""
    scratch = Path(getattr(args, "download_dir", None) or os.environ.get("DOWNLOAD_DIR") or "/tmp")
    hf_home = os.environ.get("HF_HOME") or str(scratch / ".hf-home")
    os.environ.setdefault("HF_HOME", hf_home)           # read-only root fs: nothing under $HOME
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # our own aggregate bars instead
    os.environ.setdefault("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")      # a stalled read fails after this, then resumes
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "30")
    # Downloads go through huggingface_hub's plain HTTP path (hashing as bytes stream); should
    # huggingface_hub route anything through hf_xet, its memory must still fit a 1 GiB init
    # container: few concurrent range GETs, no chunk cache, no high-performance mode.
    os.environ.setdefault("HF_XET_NUM_CONCURRENT_RANGE_GETS", "4")
    os.environ.setdefault("HF_XET_CLIENT_AC_MAX_DOWNLOAD_CONCURRENCY", "4")
    os.environ.setdefault("HF_XET_CHUNK_CACHE_SIZE_BYTES", "0")
    os.environ.setdefault("HF_XET_HIGH_PERFORMANCE", "0")
    if getattr(args, "hf_endpoint", None):
        os.environ["HF_ENDPOINT"] = args.hf_endpoint


def _on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    register_env_secrets()
    sys.excepthook = _excepthook
    args = _parser().parse_args(argv)
    for url in (getattr(args, "endpoint_url", None), getattr(args, "hf_endpoint", None)):
        register_url_secret(url)
    _setup_logging(args.verbose)
    # SIGTERM (pod deletion) unwinds like Ctrl-C so the lease is released and multipart uploads aborted.
    signal.signal(signal.SIGTERM, _on_sigterm)
    from .errors import ModelCacheError

    settings = None
    try:
        _prepare_environment(args)
        from . import config

        settings = config.load(args, args.command)
        if args.command == "ensure":
            from .ensure import ensure

            return ensure(settings)
        if args.command == "restore":
            from .restore import restore

            return restore(settings, Path(args.dest))
        from .status import status

        return status(settings, ask_hub=not args.no_hub)
    except ModelCacheError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 1
    except Exception as exc:  # every failure ends in one line; a bug keeps its traceback
        line = _one_line(exc, settings)
        if line is None:
            log.exception("unexpected error (a bug in model-cache; please report it with this traceback)")
        else:
            log.error("%s", line)
        return 1


def _one_line(exc: BaseException, settings) -> str | None:
    """S3 and file system failures as one line naming the cause and the fix; None for a bug."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, (ClientError, BotoCoreError)) and settings is not None:
        from . import s3

        what = getattr(exc, "operation_name", None) or "request"
        return str(s3.describe(exc, what, settings))
    if isinstance(exc, OSError):
        where = f" on {exc.filename}" if exc.filename else ""
        return (f"file system error{where}: {exc.strerror or exc}: DOWNLOAD_DIR and --dest must be writable "
                "directories with enough free space")
    return None
