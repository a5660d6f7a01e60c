#!/usr/bin/env python3
"""After `pulumi up` of prod: prod runs only digests that dev built, scanned and signed.

prod builds no image; it reads dev's `images` output through a StackReference (config key
`promoteImagesFrom`). This compares the two `images` outputs the run itself produced (JSON maps
name -> ref@sha256:...) and fails when prod names a ref that dev's run did not hand over.

    DEV_IMAGES='{...}' PROD_IMAGES='{...}' python3 .github/scripts/check_promoted_images.py

Exit 0: every prod ref is one of dev's. 1: a prod ref is not (named). 2: bad input.
"""

from __future__ import annotations

import json
import os
import sys


def foreign_refs(dev: dict[str, str], prod: dict[str, str]) -> list[str]:
    """prod's entries whose ref is not among dev's refs."""
    promoted = set(dev.values())
    return [f"{name}={ref}" for name, ref in sorted(prod.items()) if ref not in promoted]


def _load(var: str) -> dict[str, str]:
    raw = os.environ.get(var, "")
    value = json.loads(raw) if raw.strip() else {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{var} must be a JSON object of name -> image ref, got {raw[:200]!r}")
    return value


def main() -> int:
    try:
        dev, prod = _load("DEV_IMAGES"), _load("PROD_IMAGES")
    except (ValueError, json.JSONDecodeError) as exc:
        print(f"::error title=cannot compare images::{exc}")
        return 2
    foreign = foreign_refs(dev, prod)
    if foreign:
        print("::error title=prod runs images dev did not promote::" + ", ".join(foreign)
              + ". prod must read dev's images (config promoteImagesFrom) and build none")
        return 1
    print(f"prod runs {len(prod)} image(s), each a digest dev built, scanned and signed in this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
