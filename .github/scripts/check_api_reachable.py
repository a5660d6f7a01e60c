#!/usr/bin/env python3
"""Before `pulumi up` of prod: is prod's Kubernetes API reachable from this runner?

prod's firewall admits the API port only from `apiAllowedCidrs`. The prod jobs run on a runner
whose egress address is in that list (docs/ci-cd.md, "How CI reaches prod's API"). When that is
broken (wrong runner, address changed, list edited) an `up` would change the Civo resources and
then fail at the first Kubernetes object, half-applied. This fails first, with the fix.

Reads `pulumi stack output apiEndpoint` (https://host:port). A stack with no cluster yet (first
deploy) has nothing to reach: that passes with a notice.

    python3 .github/scripts/check_api_reachable.py --stack acme/prod [--timeout 10] [--tries 3]

Exit 0: reachable (or first deploy). 1: unreachable.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit


def api_endpoint(stack: str) -> str | None:
    pulumi = os.environ.get("PULUMI", "pulumi")
    done = subprocess.run([pulumi, "stack", "output", "apiEndpoint", "--stack", stack],
                          capture_output=True, text=True, check=False)
    value = done.stdout.strip()
    return value if done.returncode == 0 and value else None


def reachable(host: str, port: int, timeout: float, tries: int) -> str | None:
    """None when a TCP connection opens, else the last error."""
    error = "no attempt"
    for attempt in range(tries):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return None
        except OSError as exc:
            error = str(exc) or type(exc).__name__
            if attempt + 1 < tries:
                time.sleep(min(5.0, timeout))
    return error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args(argv)
    endpoint = api_endpoint(args.stack)
    if endpoint is None:
        print(f"::notice title=no cluster yet::{args.stack} has no apiEndpoint output (first deploy): nothing to "
              "reach yet. The cluster's firewall will admit apiAllowedCidrs from the stack config, which must "
              "hold this runner's egress address")
        return 0
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    host, port = parts.hostname or "", parts.port or 6443
    error = reachable(host, port, args.timeout, args.tries)
    if error is None:
        print(f"prod's Kubernetes API {host}:{port} is reachable from this runner")
        return 0
    print(f"::error title=prod's Kubernetes API is unreachable::{host}:{port} from this runner: {error}. "
          "The prod jobs must run on the runner whose egress address is in apiAllowedCidrs (Pulumi.prod.yaml); "
          "see docs/ci-cd.md, 'How CI reaches prod's API'. Nothing was changed")
    return 1


if __name__ == "__main__":
    sys.exit(main())
