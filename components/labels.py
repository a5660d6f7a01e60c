"""Labels every Kubernetes object carries, so `kubectl get -l` finds what this stack owns."""

from __future__ import annotations

PART_OF = "gpu-platform"
MANAGED_BY = "pulumi"


def standard_labels(name: str, component: str | None = None) -> dict[str, str]:
    """``app.kubernetes.io/{name,part-of,managed-by}`` (+ ``component`` when given)."""
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if component:
        labels["app.kubernetes.io/component"] = component
    return labels
