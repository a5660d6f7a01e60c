"""How the pack reads resource properties: plain data, secrets marked, unknowns recognised.

pulumi-policy 1.21.0 receives properties from the engine with secrets still wrapped (the engine
marshals them with ``KeepSecrets: true``), but its ``Analyze``/``AnalyzeStack`` unwrap every secret
to its plaintext, so a policy cannot tell a Pulumi secret from a literal (pulumi/pulumi-policy#241).
The rule "secrets take their values from Pulumi secrets" needs exactly that distinction, so
:func:`install_secret_markers` swaps the SDK's deserializer for :func:`deserialize_keeping_secrets`,
which turns each secret envelope into the SDK's own :class:`pulumi_policy.Secret` marker. Every rule
reads properties through :func:`plain` and :func:`reveal`, so none of them depends on the swap
except the one that asks :func:`is_secret`.

Unknown values (computed by another resource, during preview) arrive as the SDK's sentinel strings;
rules skip what they cannot judge yet (:func:`is_unknown`) and the same rule sees the value during
``pulumi up``, where it is known.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pulumi_policy.deserialize as sdk_deserialize
import pulumi_policy.policy as sdk_policy
from pulumi_policy import Secret
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    _DictProxy,
    _ListProxy,
)

UNKNOWNS = frozenset({UNKNOWN_BOOLEAN_VALUE, UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE, UNKNOWN_ARRAY_VALUE,
                      UNKNOWN_ASSET_VALUE, UNKNOWN_ARCHIVE_VALUE, UNKNOWN_OBJECT_VALUE})
_SIG_KEY = sdk_deserialize.SPECIAL_SIG_KEY
_SECRET_SIG = sdk_deserialize.SPECIAL_SECRET_SIG
_SDK_DESERIALIZE = sdk_deserialize.deserialize_properties

#: Kubernetes kinds that carry a pod template, and where it sits in their spec.
WORKLOAD_KINDS: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "Pod": (),
}


def deserialize_keeping_secrets(props: dict[str, Any], proxy_secrets: bool = False) -> dict[str, Any]:
    """The SDK's deserializer, except that a secret becomes ``Secret(value)`` instead of its plaintext.

    Hand-written because the SDK's own ``proxy_secrets=True`` mode (made for remediations) wraps the
    result in proxies that unwrap every secret again on access, and skips the unknown checks.
    """
    if proxy_secrets:  # Remediate's path: the SDK's own proxies (this pack has no remediations).
        return _SDK_DESERIALIZE(props, proxy_secrets)
    return {key: _deserialize(value) for key, value in props.items()}


def _deserialize(value: Any) -> Any:
    if isinstance(value, list):
        return [_deserialize(item) for item in value]
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return Secret(_deserialize(value.get("value")))
        if _SIG_KEY in value:  # assets and archives: the SDK knows them
            return sdk_deserialize._deserialize_property(value)
        return {key: _deserialize(item) for key, item in value.items()}
    return value


def install_secret_markers() -> None:
    """Make the SDK hand secrets to the policies as ``Secret`` markers (see the module docstring)."""
    current = sdk_policy.deserialize_properties
    if current is deserialize_keeping_secrets:
        return
    if current is not _SDK_DESERIALIZE:
        raise RuntimeError("pulumi_policy.policy.deserialize_properties is not the SDK's own function; this pack "
                           "supports pulumi-policy 1.21.x (see policy/requirements.txt)")
    sdk_policy.deserialize_properties = deserialize_keeping_secrets


def plain(value: Any) -> Any:
    """Resource properties as plain dicts and lists (the SDK's unknown-checking proxies removed).

    ``Secret`` markers and unknown sentinels are kept, so rules can tell them apart.
    """
    if isinstance(value, Secret):
        return Secret(plain(value.value))
    if isinstance(value, (_DictProxy, _ListProxy)):  # they hand out their raw container as "__target"
        return plain(value["__target"])
    if isinstance(value, Mapping):
        return {key: plain(value[key]) for key in value}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def reveal(value: Any) -> Any:
    """``value`` with every ``Secret`` marker replaced by what it wraps (never print the result)."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if isinstance(value, dict):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value


def is_secret(value: Any) -> bool:
    return isinstance(value, Secret)


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in UNKNOWNS


def dig(value: Any, *path: str | int) -> Any:
    """``value[path[0]][path[1]]...`` through secrets; ``None`` where a step is missing or unknown."""
    for step in path:
        value = _unwrap(value)
        if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value


def _unwrap(value: Any) -> Any:
    """The value inside a ``Secret`` marker (one level: markers nested deeper stay)."""
    while isinstance(value, Secret):
        value = value.value
    return value


def as_list(value: Any) -> list[Any]:
    value = _unwrap(value)
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    value = _unwrap(value)
    return value if isinstance(value, dict) else {}


def stack_of(urn: str) -> str:
    """The stack name in a URN (``urn:pulumi:<stack>::<project>::<type>::<name>``)."""
    parts = urn.split("::")
    return parts[0].rsplit(":", 1)[-1] if parts and parts[0].startswith("urn:pulumi:") else ""


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def kubernetes_kind(resource_type: str) -> str | None:
    """``Deployment`` for ``kubernetes:apps/v1:Deployment``; ``None`` for non-Kubernetes types."""
    if not resource_type.startswith("kubernetes:") or resource_type.startswith("kubernetes:helm.sh/"):
        return None
    return resource_type.rsplit(":", 1)[-1]


def pod_template(resource_type: str, props: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod template (``{"metadata":..., "spec":...}``) of a workload, or ``None``."""
    kind = kubernetes_kind(resource_type)
    if kind not in WORKLOAD_KINDS:
        return None
    template = dig(props, *WORKLOAD_KINDS[kind]) if WORKLOAD_KINDS[kind] else props
    return template if isinstance(template, dict) else None


def containers(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every container of a pod spec, init containers included, with its kind for messages."""
    for field, label in (("initContainers", "init container"), ("containers", "container"),
                         ("ephemeralContainers", "ephemeral container")):
        for container in as_list(pod_spec.get(field)):
            if isinstance(container, dict):
                yield label, container


def object_name(resource_type: str, name: str, props: Mapping[str, Any]) -> str:
    """How a message names a resource: its type, logical name and, for Kubernetes, namespace/name."""
    label = f"{resource_type} '{name}'"
    meta = as_dict(props.get("metadata"))
    k8s_name, namespace = meta.get("name"), meta.get("namespace")
    if kubernetes_kind(resource_type) and isinstance(k8s_name, str) and not is_unknown(k8s_name):
        where = f"{namespace}/{k8s_name}" if isinstance(namespace, str) and not is_unknown(namespace) else k8s_name
        label += f" ({where})"
    return label
