"""Offline plan: run the real ``__main__.py`` under Pulumi's mock runtime with a stack's config.

``python -m tools.offline_plan --stack dev --out out/plan/dev`` prints the resource tree (type,
logical name, parent, key inputs; secrets as ``[secret]``), writes every rendered Kubernetes
object as YAML to ``--out`` and the stack outputs to ``outputs.json``. No Pulumi CLI, plugin or
cloud credential is needed. Secret config (``hfToken``, ``registryPassword``, ``pipIndex``) comes from
the environment (``HF_TOKEN``, ``REGISTRY_PASSWORD``, ``PIP_INDEX``) or, for the first two, a
placeholder, and is always masked.
On invalid config it prints the settings error alone and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import runpy
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret
from pulumi.runtime.sync_await import _sync_await

from components.config.settings import SettingsError
from tools.plan_mocks import PlatformMocks, ResourceRecord, install_mocks, run_program

REPO = Path(__file__).resolve().parent.parent
PROJECT = "gpu-platform"
SECRET = "[secret]"
UNKNOWN = "[unknown]"
#: Secret config keys and the environment variables the offline plan reads them from.
SECRET_CONFIG_ENV: Mapping[str, str] = {"hfToken": "HF_TOKEN", "registryPassword": "REGISTRY_PASSWORD",
                                        "pipIndex": "PIP_INDEX"}
#: Secret keys a stack normally has: a placeholder stands in when neither the file nor the environment sets one.
PLACEHOLDER_KEYS: tuple[str, ...] = ("hfToken", "registryPassword")


@dataclass
class PlanResult:
    stack: str
    resources: list[ResourceRecord]
    outputs: dict[str, Any]
    """Stack outputs, resolved; secret ones replaced by ``[secret]``."""
    secret_outputs: set[str]
    raw_outputs: dict[str, Any] = field(repr=False, default_factory=dict)
    """Stack outputs with secret values unmasked (tests only; never printed)."""
    warnings: list[str] = field(default_factory=list)

    def by_type(self, type_token: str) -> list[ResourceRecord]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> ResourceRecord:
        found = [r for r in self.by_type(type_token) if name is None or r.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one {type_token} {name or ''}, found {[r.name for r in found]}")
        return found[0]

    def manifests(self) -> list[dict[str, Any]]:
        return [render_manifest(r) for r in self.resources if is_kubernetes_object(r)]


def stack_config(stack: str, overrides: Mapping[str, Any] | None = None,
                 secrets: Mapping[str, str] | None = None, root: Path = REPO) -> tuple[dict[str, str], list[str]]:
    """The config the CLI would hand the program: project defaults, the stack file, overrides."""
    project = load_yaml(root / "Pulumi.yaml")
    values: dict[str, Any] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            values[f"{PROJECT}:{key}"] = decl["default"]
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        known = sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))
        raise SettingsError([f"no stack file {stack_file.name}; known stacks: {', '.join(known)}"])
    secret_keys: list[str] = []
    stack_values = load_yaml(stack_file).get("config") or {}
    if not isinstance(stack_values, dict):
        raise SettingsError([f"{stack_file.name}: `config` must be a mapping of keys to values"])
    for key, value in stack_values.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            secret_keys.append(key)
            value = f"placeholder-{key.split(':')[-1]}"
        values[key] = value
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            values.pop(full, None)
        else:
            values[full] = value
    supplied = dict(secrets) if secrets is not None else {
        key: os.environ[env] for key, env in SECRET_CONFIG_ENV.items() if os.environ.get(env)
    }
    for key in SECRET_CONFIG_ENV:
        full = f"{PROJECT}:{key}"
        if key in supplied:
            values[full] = supplied[key]
            secret_keys.append(full)
        elif full not in values and secrets is None and key in PLACEHOLDER_KEYS:
            values[full] = f"placeholder-{key}"
            secret_keys.append(full)
        # A value written in plain text in the stack file stays plain: settings refuse it.
    as_strings = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    return as_strings, sorted(set(secret_keys))


class _StrictLoader(yaml.SafeLoader):
    """YAML as the stack files must be: a key given twice is an error, not "the last one wins"."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (the second would silently win)", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_yaml(path: Path) -> dict[str, Any]:
    """A Pulumi YAML file; a syntax error or a duplicate key is one problem naming the file and line."""
    try:
        data = yaml.load(path.read_text(), Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SettingsError([f"{path.name}{line}: not valid YAML ({what}). Fix: correct {path.name}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError([f"{path.name}: must be a YAML mapping (config: ...). Fix: correct {path.name}"])
    return data


def run_plan(stack: str, overrides: Mapping[str, Any] | None = None,
             secrets: Mapping[str, str] | None = None, root: Path = REPO) -> PlanResult:
    """Run ``__main__.py`` under mocks; raise :class:`SettingsError` on invalid config.

    ``overrides`` change config keys (``None`` removes one); ``secrets`` replaces the secret
    config taken from the environment (``{}`` means: no secret config at all).
    """
    config, secret_keys = stack_config(stack, overrides, secrets, root)
    # A stack that reads another stack's outputs (promoteImagesFrom) gets them from that stack's own
    # offline plan, run first: the promotion path is tested end to end, offline.
    referenced = {name: _referenced_outputs(name, stack, secrets, root)
                  for name in referenced_stacks(config)}
    pulumi.runtime.set_all_config(config, secret_keys)
    warnings: list[str] = []
    monitor = install_mocks(PlatformMocks(PROJECT, stack, referenced), project=PROJECT, stack=stack,
                            logger=_collecting_logger(warnings))
    program = str(root / "__main__.py")
    sys.path.insert(0, str(root))
    try:
        run_program(lambda: runpy.run_path(program, run_name="__main__"))
        stack_resource = runtime_settings.get_root_resource()
        outputs, raw, secret_names = _sync_await(_resolve_outputs(stack_resource.outputs))  # type: ignore[union-attr]
    finally:
        sys.path.remove(str(root))
    # Registration happens on worker threads, so its order varies: sort for stable diffs.
    resources = [monitor.records[urn] for urn in sorted(monitor.order)]
    return PlanResult(stack, resources, outputs, secret_names, raw, warnings)


def referenced_stacks(config: Mapping[str, str]) -> list[str]:
    """The ``org/project/stack`` names the program will read through a StackReference."""
    value = config.get(f"{PROJECT}:promoteImagesFrom", "")
    return [value] if value.count("/") == 2 else []


def _referenced_outputs(name: str, referrer: str, secrets: Mapping[str, str] | None,
                        root: Path) -> tuple[dict[str, Any], set[str]]:
    """The raw outputs (and secret names) of another stack of this project, from its offline plan."""
    _org, project, other = name.split("/")
    if project != PROJECT or other == referrer:
        return {}, set()  # settings reject it with a clear line; nothing to plan
    try:
        result = run_plan(other, secrets=secrets, root=root)
    except SettingsError as exc:
        raise SettingsError([(f"{PROJECT}:promoteImagesFrom = {name!r}: the offline plan of stack {other!r} "
                             f"failed: {'; '.join(exc.problems)}")]) from None
    return result.raw_outputs, result.secret_outputs


def _collecting_logger(sink: list[str]) -> Any:
    import logging

    class _Sink(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                sink.append(record.getMessage())

    logger = logging.getLogger("gpu-platform.offline-plan")
    logger.handlers[:] = [_Sink()]
    logger.propagate = False
    return logger


async def _resolve_outputs(exports: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    masked: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    for name, value in exports.items():
        out = pulumi.Output.from_input(value)
        known = await out.is_known()
        resolved = await out.future(with_unknowns=True) if known else None
        raw[name] = resolved if known else UNKNOWN
        if await out.is_secret():
            secret.add(name)
            masked[name] = SECRET
        else:
            masked[name] = mask(resolved) if known else UNKNOWN
    return masked, raw, secret


def mask(value: Any) -> Any:
    """Replace every secret envelope in a value by ``[secret]``."""
    if is_rpc_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v) for v in value]
    return value


def contains_secret(value: Any) -> bool:
    if is_rpc_secret(value):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_secret(v) for v in value)
    return False


def is_kubernetes_object(record: ResourceRecord) -> bool:
    return record.custom and record.type.startswith("kubernetes:") and not record.type.startswith(
        ("kubernetes:helm.sh/", "pulumi:providers:"))


_MASKED_B64 = base64.b64encode(SECRET.encode()).decode()


def render_manifest(record: ResourceRecord) -> dict[str, Any]:
    """The object the provider would send to the API server, secrets masked."""
    state = {**record.inputs, "metadata": record.state.get("metadata", record.inputs.get("metadata"))}
    manifest: dict[str, Any] = {"apiVersion": state.pop("apiVersion"), "kind": state.pop("kind")}
    for key, value in state.items():
        if value is None:
            continue
        if key == "data" and manifest["kind"] == "Secret":
            manifest[key] = {k: _MASKED_B64 for k in (unwrap_rpc_secret(value) if is_rpc_secret(value) else value)}
        elif key == "stringData":
            inner = unwrap_rpc_secret(value) if is_rpc_secret(value) else value
            manifest[key] = {k: SECRET for k in inner}
        else:
            manifest[key] = mask(value)
    return tidy_numbers(manifest)


def tidy_numbers(value: Any) -> Any:
    """Mocks see numbers as floats (as the engine sends them); show 2 rather than 2.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: tidy_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [tidy_numbers(v) for v in value]
    return value


def _summarise(value: Any, width: int = 90) -> str:
    text = json.dumps(tidy_numbers(mask(value)), sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


#: Inputs worth a reviewer's eye per resource type (everything else is in the manifests).
KEY_INPUTS: Mapping[str, tuple[str, ...]] = {
    "civo:index/network:Network": ("label", "region"),
    "civo:index/firewall:Firewall": ("name", "createDefaultRules", "ingressRules"),
    "civo:index/kubernetesCluster:KubernetesCluster": ("name", "region", "clusterType", "cni",
                                                       "kubernetesVersion", "writeKubeconfig", "pools"),
    "civo:index/kubernetesNodePool:KubernetesNodePool": ("size", "nodeCount", "labels", "taints"),
    "civo:index/objectStoreCredential:ObjectStoreCredential": ("name", "region"),
    "civo:index/objectStore:ObjectStore": ("name", "region", "maxSizeGb"),
    "pulumi:providers:kubernetes": ("kubeconfig", "enableServerSideApply", "deleteUnreachable"),
    "kubernetes:helm.sh/v3:Release": ("chart", "version", "namespace", "values"),
    "docker-build:index:Image": ("tags", "push", "secrets", "buildArgs", "platforms", "buildOnPreview"),
}


def format_tree(result: PlanResult) -> str:
    children: dict[str, list[ResourceRecord]] = {}
    for record in result.resources:
        children.setdefault(record.parent, []).append(record)
    root_urns = {r.parent for r in result.resources} - {r.urn for r in result.resources}
    lines = [f"Offline plan of stack '{result.stack}' ({len(result.resources)} resources)", ""]

    def walk(record: ResourceRecord, depth: int) -> None:
        pad = "    " * depth
        flags = [f for f, on in (("protect", record.protect), ("retainOnDelete", record.retain_on_delete)) if on]
        if record.replace_on_changes:
            flags.append(f"replaceOnChanges={','.join(record.replace_on_changes)}")
        parent = record.parent.rsplit("::", 1)[-1] if record.parent else "-"
        lines.append(f"{pad}+ {record.type}  {record.name}  (parent: {parent})"
                     + (f"  [{' '.join(flags)}]" if flags else ""))
        keys = KEY_INPUTS.get(record.type)
        if keys is None and record.type.startswith("kubernetes:"):
            meta = record.state.get("metadata") or {}
            lines.append(f"{pad}      name: {meta.get('namespace', '')}/{meta.get('name', '')}".replace(" /", " "))
            keys = ()
        for key in keys if keys is not None else sorted(record.inputs):
            if key in record.inputs and record.inputs[key] not in (None, "", [], {}):
                lines.append(f"{pad}      {key}: {_summarise(record.inputs[key])}")
        for child in children.get(record.urn, []):
            walk(child, depth + 1)

    for root in sorted(root_urns):
        for record in children.get(root, []):
            walk(record, 0)
    lines += ["", "Outputs:"]
    for name, value in result.outputs.items():
        lines.append(f"    {name}: {_summarise(value, 120)}")
    if result.warnings:
        lines += ["", "Warnings:"] + [f"    {w}" for w in result.warnings]
    return "\n".join(lines)


def clear_outputs(out_dir: Path) -> int:
    """Remove what an earlier plan wrote (its manifests and outputs.json); return how many files."""
    if not out_dir.is_dir():
        return 0
    old = list(out_dir.glob("*.yaml")) + list(out_dir.glob("*.json"))
    for path in old:
        path.unlink()
    return len(old)


def write_outputs(result: PlanResult, out_dir: Path) -> list[Path]:
    """Rendered Kubernetes objects (one YAML each), Helm releases, and outputs.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_outputs(out_dir)
    written: list[Path] = []
    for i, manifest in enumerate(result.manifests(), start=1):
        meta = manifest.get("metadata") or {}
        ns = meta.get("namespace") or "cluster"
        path = out_dir / f"{i:03d}-{manifest['kind'].lower()}-{ns}-{meta.get('name')}.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        written.append(path)
    for record in result.by_type("kubernetes:helm.sh/v3:Release"):
        path = out_dir / f"helm-{record.name}.values.yaml"
        path.write_text(yaml.safe_dump({k: mask(record.inputs.get(k)) for k in
                                        ("chart", "version", "namespace", "repositoryOpts", "values")},
                                       sort_keys=False))
        written.append(path)
    outputs_path = out_dir / "outputs.json"
    outputs_path.write_text(json.dumps(result.outputs, indent=2, sort_keys=True, default=str) + "\n")
    written.append(outputs_path)
    return written


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items as config overrides (a JSON value where it parses, else the string)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--config expects KEY=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default: dev)")
    parser.add_argument("--out", type=Path, help="folder for rendered manifests (default: out/plan/<stack>)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key for this plan only (JSON values allowed), e.g. gpuNodeCount=3")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.config)
    except ValueError as exc:
        parser.error(str(exc))
    out_dir = args.out or REPO / "out" / "plan" / args.stack
    started = time.perf_counter()
    # Nothing from an earlier run may be mistaken for this one's result, whatever happens below.
    removed = clear_outputs(out_dir)
    try:
        result = run_plan(args.stack, overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if removed:
            print(f"(removed {removed} files of an earlier plan from {out_dir})", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one readable line, not a traceback
        print(f"error: the program failed under the offline plan: {exc}", file=sys.stderr)
        return 1
    print(format_tree(result))
    written = write_outputs(result, out_dir)
    print(f"\nWrote {len(written)} files to {out_dir} in {time.perf_counter() - started:.2f}s")
    return 0


if __name__ == "__main__":
    asyncio.set_event_loop(asyncio.new_event_loop())
    sys.exit(main())
