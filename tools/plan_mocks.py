"""Pulumi mocks that stand in for Civo, Kubernetes, GitHub and docker-build offline.

They answer like the real providers would after a create: ids, auto-generated names,
Civo's kubeconfig (plain, as the provider returns it) and bucket URL, digests of pushed
images. Invokes are answered from ``components.config.catalog``, the same table settings validate
against. A recording monitor keeps what the engine would see for every resource (parent,
provider, protect, retainOnDelete, ...) so the plan can print a tree and tests can assert it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.rpc import wrap_rpc_secret
from pulumi.runtime.sync_await import _sync_await


def _digest(*parts: str, length: int = 64) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


def fake_kubeconfig(cluster: str, endpoint: str) -> str:
    token = "offline-" + _digest("kubeconfig", cluster, length=24)
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- cluster:\n    server: {endpoint}\n  name: {cluster}\n"
        f"contexts:\n- context:\n    cluster: {cluster}\n    user: {cluster}-admin\n  name: {cluster}\n"
        f"current-context: {cluster}\n"
        f"users:\n- name: {cluster}-admin\n  user:\n    token: {token}\n"
    )


@dataclass
class ResourceRecord:
    """One registered resource, as the engine would see it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    provider: str
    inputs: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    protect: bool = False
    retain_on_delete: bool = False
    replace_on_changes: list[str] = field(default_factory=list)
    additional_secret_outputs: list[str] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    """The resource's aliases as ``type::name`` / URN strings (what a rename keeps the old identity by)."""
    read: bool = False
    """Read, not managed (``ReadResource``: a StackReference): the engine never creates or deletes it."""


class RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, plus a record of each registration's options."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.records: dict[str, ResourceRecord] = {}
        self.order: list[str] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        registration = self.resources.get(response.urn)
        record = ResourceRecord(
            urn=response.urn,
            type=request.type,
            name=request.name,
            parent=request.parent,
            custom=bool(request.custom),
            provider=request.provider,
            inputs=rpc.deserialize_properties(request.object),
            state=dict(registration.state) if registration else {},
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            replace_on_changes=list(request.replaceOnChanges),
            additional_secret_outputs=list(request.additionalSecretOutputs),
            ignore_changes=list(request.ignoreChanges),
            dependencies=list(request.dependencies),
            aliases=[_describe_alias(a) for a in request.aliases],
        )
        self.records[response.urn] = record
        self.order.append(response.urn)
        return response


    def ReadResource(self, request):
        # A read (e.g. a StackReference): recorded with what the program asked for, not the
        # state read back (another stack's outputs are that stack's business).
        response = super().ReadResource(request)
        self.records[response.urn] = ResourceRecord(
            urn=response.urn, type=request.type, name=request.name, parent=request.parent, custom=True,
            provider=request.provider, inputs={"id": request.id, **rpc.deserialize_properties(request.properties)},
            dependencies=list(request.dependencies), read=True,
        )
        self.order.append(response.urn)
        return response


def install_mocks(mocks: pulumi.runtime.Mocks, *, project: str, stack: str,
                  logger: Any = None) -> RecordingMonitor:
    """The one way this project puts Pulumi's runtime under mocks: a fresh root stack, a recording
    monitor, no RPCs left over from an earlier program. Returns the monitor (what the engine saw)."""
    runtime_settings.set_root_resource(None)  # type: ignore[arg-type]
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor, logger=logger)
    runtime_settings.SETTINGS.rpc_manager.clear()
    return monitor


def run_program(program: Any) -> None:
    """Run ``program`` as a Pulumi program under the installed mocks, waiting for every registration."""
    _sync_await(pulumi.runtime.stack.run_pulumi_func(program))


def _describe_alias(alias: Any) -> str:
    """An alias as the engine receives it: a full URN, or a spec of the fields that differ."""
    if alias.urn:
        return alias.urn
    spec = alias.spec
    parts = [f"{field}={getattr(spec, field)}" for field in ("name", "type", "project", "stack", "parentUrn")
             if getattr(spec, field)]
    if spec.noParent:
        parts.append("noParent")
    return ",".join(parts)


class PlatformMocks(pulumi.runtime.Mocks):
    """Provider stand-ins: deterministic ids and names, secrets where providers mark them."""

    def __init__(self, project: str, stack: str,
                 stack_outputs: Mapping[str, tuple[Mapping[str, Any], Iterable[str]]] | None = None) -> None:
        self.project = project
        self.stack = stack
        self.stack_outputs = dict(stack_outputs or {})
        """``{org/project/stack: (outputs, secret output names)}``: what StackReferences read (the
        offline plans of those stacks, run first by tools.offline_plan)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        rid = f"{args.name}-{_digest(self.stack, args.typ, args.name, length=8)}"
        state = dict(inputs)
        typ = args.typ
        if typ == "pulumi:pulumi:StackReference":
            name = str(inputs.get("name") or args.name)
            if name not in self.stack_outputs:
                raise LookupError(f"the offline plan has no outputs for stack {name!r}; tools.offline_plan "
                                  "plans a referenced stack of this project first")
            outputs, secret_names = self.stack_outputs[name]
            secret = set(secret_names)
            # As the engine answers: every output, secret ones as secrets, and their names.
            return name, {"name": name, "secretOutputNames": sorted(secret),
                          "outputs": {k: wrap_rpc_secret(v) if k in secret else v for k, v in outputs.items()}}
        if typ == "civo:index/network:Network":
            state.update(name=inputs.get("label"), default=False)
        elif typ == "civo:index/kubernetesCluster:KubernetesCluster":
            name = inputs.get("name") or rid
            endpoint = f"https://{_digest(name, length=8)}.k8s.civo.com:6443"
            state.update(
                name=name,
                apiEndpoint=endpoint,
                # Plain, as the provider returns it: the SDK asks the engine to mark it secret
                # (additionalSecretOutputs), which mocks do not do. So what a test sees as secret
                # is the component's own wrapping.
                kubeconfig=fake_kubeconfig(name, endpoint),
                status="ACTIVE",
                ready=True,
                masterIp="203.0.113.10",
                dnsEntry=f"{_digest(name, length=8)}.k8s.civo.com",
            )
            rid = _uuid(name)
        elif typ == "civo:index/kubernetesNodePool:KubernetesNodePool":
            count = int(inputs.get("nodeCount", 1))
            state.update(instanceNames=[f"{args.name}-node-{i}" for i in range(count)])
        elif typ == "civo:index/objectStoreCredential:ObjectStoreCredential":
            # The provider does not mark the secret key secret: components must wrap it.
            state.update(
                accessKeyId="OFFLINE" + _digest("ak", args.name, length=13).upper(),
                secretAccessKey="offline-" + _digest("sk", args.name, length=32),
                status="ready",
            )
        elif typ == "civo:index/objectStore:ObjectStore":
            region = str(inputs.get("region") or "LON1")
            state.update(
                name=f"{inputs.get('name') or args.name}-{_digest('bucket', args.name, length=6)}",
                bucketUrl=f"objectstore.{region.lower()}.civo.com",
                status="ready",
            )
        elif typ.startswith("kubernetes:") and not typ.startswith("kubernetes:helm.sh") \
                and not typ.startswith("pulumi:providers"):
            metadata = dict(inputs.get("metadata") or {})
            if not metadata.get("name"):
                metadata["name"] = f"{args.name}-{_digest('k8s', args.name, length=8)}"
            if _is_namespaced(typ) and not metadata.get("namespace"):
                metadata["namespace"] = "default"
            inputs["metadata"] = metadata
            state["metadata"] = metadata
            if typ == "kubernetes:core/v1:Secret" and inputs.get("type") == "kubernetes.io/service-account-token":
                # The token controller fills these in; the provider waits for them (pulumi-kubernetes#2048).
                b64 = base64.b64encode
                state["data"] = wrap_rpc_secret({
                    "token": b64(("offline-sa-token-" + _digest("sa", args.name, length=24)).encode()).decode(),
                    "ca.crt": b64(b"-----BEGIN CERTIFICATE-----\noffline\n-----END CERTIFICATE-----\n").decode(),
                    "namespace": b64(str(metadata.get("namespace")).encode()).decode(),
                })
        elif typ == "kubernetes:helm.sh/v3:Release":
            state.update(status={"status": "deployed", "name": inputs.get("name") or rid,
                                 "namespace": inputs.get("namespace"), "version": inputs.get("version")})
        elif typ == "docker-build:index:Image":
            tags = inputs.get("tags") or [args.name]
            repo = str(tags[0]).rsplit(":", 1)[0] if ":" in str(tags[0]).split("/")[-1] else str(tags[0])
            # A registry digest is a hash of the image's bits; what decides the bits here is what the
            # program hands the build: context, Dockerfile, tags and labels (which carry the hash of
            # the build inputs), build args, platforms and target.
            built_from = {k: inputs.get(k) for k in ("context", "dockerfile", "tags", "labels", "buildArgs",
                                                     "platforms", "target")}
            digest = "sha256:" + _digest("image", args.name, json.dumps(built_from, sort_keys=True, default=str))
            push = bool(inputs.get("push"))
            state.update(digest=digest, ref=f"{repo}@{digest}" if push else str(tags[0]),
                         contextHash=_digest("ctx", args.name))
        elif typ == "random:index/randomPassword:RandomPassword":
            # Plain, as the provider returns it (the SDK asks the engine to mark `result` secret).
            length = int(inputs.get("length") or 16)
            state.update(result=("offline" + _digest("password", self.stack, args.name, length=64))[:length])
        elif typ.startswith("github:"):
            state.update(createdAt="2026-01-01T00:00:00Z", updatedAt="2026-01-01T00:00:00Z")
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        catalog = _catalog()
        if args.token == "civo:index/getSize:getSize":
            sizes = [catalog.size_as_api_result(s) for s in catalog.SIZES.values()]
            return {"sizes": _apply_filters(sizes, args.args.get("filters") or [])}
        if args.token == "civo:index/getKubernetesVersion:getKubernetesVersion":
            versions = [
                {"version": v, "label": f"v{v}", "type": "k3s", "default": v == catalog.DEFAULT_KUBERNETES_VERSION}
                for v in catalog.KUBERNETES_VERSIONS
            ]
            return {"versions": _apply_filters(versions, args.args.get("filters") or [])}
        raise NotImplementedError(f"the offline plan has no answer for invoke {args.token!r}; add it to tools/plan_mocks.py")


def _catalog() -> Any:
    """The catalog of the program being planned (tools.plan_diff plans two revisions in one process,
    each with its own ``components`` package), looked up when asked."""
    return importlib.import_module("components.config.catalog")


def _apply_filters(rows: list[dict[str, Any]], filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Civo's data-source filters: key, values, matchBy (exact|re|substring)."""

    def keep(row: dict[str, Any], flt: dict[str, Any]) -> bool:
        key = flt.get("key")
        values = [str(v) for v in flt.get("values") or []]
        mode = flt.get("matchBy") or flt.get("match_by") or "exact"
        actual = str(row.get(key, "")).lower() if isinstance(row.get(key), bool) else str(row.get(key, ""))
        if mode == "substring":
            return any(v in actual for v in values)
        if mode == "re":
            return any(re.search(v, actual) for v in values)
        return actual in values

    return [row for row in rows if all(keep(row, f) for f in filters)]


def _uuid(seed: str) -> str:
    h = _digest("uuid", seed, length=32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                   "PriorityClass", "StorageClass", "RuntimeClass", "PersistentVolume",
                   "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def _is_namespaced(typ: str) -> bool:
    return typ.rsplit(":", 1)[-1] not in _CLUSTER_SCOPED
