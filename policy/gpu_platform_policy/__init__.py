"""gpu-platform's policy pack: the platform's rules, enforced by Pulumi CrossGuard (docs/policy.md)."""

from __future__ import annotations

PACK_NAME = "gpu-platform"
