"""Entry point: validate the settings (one line and exit 2 on a mistake), then serve with uvicorn."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from . import __version__
from .config import ConfigError, load


class JsonFormatter(logging.Formatter):
    """One JSON object per line; audit records carry their fields under the top level."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info and record.levelno >= logging.ERROR:
            doc["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(doc, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Request logs name the path, never headers (no token can reach them); keep them, as JSON.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx logs every request URL at INFO; the gateway's own lines say what matters.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("huggingface_hub").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub-gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hub-gateway {__version__}")
    parser.parse_args(argv)
    configure_logging()
    try:
        settings = load()
    except ConfigError as exc:
        print(f"hub-gateway: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from .app import create_app

    app = create_app(settings)
    log = logging.getLogger("hub_gateway")
    log.info("hub-gateway %s: upstream %s, bucket %s (prefix %r), %d caller(s), allow-list %s", __version__,
             settings.hf_endpoint, settings.store.bucket, settings.store.prefix,
             len(settings.callers.callers), list(settings.allow_repos))
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, server_header=False,
                proxy_headers=False, timeout_graceful_shutdown=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
