"""Kubernetes helpers every component shares: the standard labels, quantity arithmetic, and the
``depends_on`` a component hands to its children.

No resource is registered here; components build their objects from these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import pulumi

PART_OF: Final = "gpu-platform"
MANAGED_BY: Final = "pulumi"

_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?")
_UNITS: Final = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                 "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def standard_labels(name: str, component: str | None = None) -> dict[str, str]:
    """``app.kubernetes.io/{name,part-of,managed-by}`` (+ ``component`` when given), so
    ``kubectl get -l app.kubernetes.io/part-of=gpu-platform`` finds what this stack owns."""
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if component:
        labels["app.kubernetes.io/component"] = component
    return labels


def checkov_skip_annotations(skips: Mapping[str, str]) -> dict[str, str]:
    """``checkov.io/skipN: CHECK=reason`` annotations: checks that cannot pass for a workload, each
    with its reason (tests/program/test_manifests.py asserts every skip has one)."""
    return {f"checkov.io/skip{i}": f"{check}={reason}"
            for i, (check, reason) in enumerate(sorted(skips.items()), start=1)}


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("500m", "4", "32Gi", "1.5G") as a number of base units."""
    match = _QUANTITY.fullmatch(text)
    if not match:
        raise ValueError(text)
    number, unit = Decimal(match.group(1)), match.group(2)
    if unit == "m":
        return number / 1000
    return number * _UNITS[unit]


def double_cpu(cpu: str) -> str:
    """A CPU limit of twice the request: tokenisation bursts may use it, a runaway cannot take the node."""
    if cpu.endswith("m"):
        return f"{int(float(cpu[:-1]) * 2)}m"
    value = float(cpu) * 2
    return str(int(value)) if value.is_integer() else str(value)


def resources_of(depends_on: Any) -> list[pulumi.Resource]:
    """The resources in a ``depends_on`` option: a component passes them on to the children that
    need them (children do not inherit their parent's ``depends_on``)."""
    if depends_on is None:
        return []
    if isinstance(depends_on, pulumi.Resource):
        return [depends_on]
    return [d for d in depends_on if isinstance(d, pulumi.Resource)]
