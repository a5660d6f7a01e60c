"""The offline diff: what a change will do to a stack, before anyone applies it.

``python -m tools.plan_diff --stack dev [--base REV]`` (``make plan-diff STACK=dev BASE=REV``) runs
the offline plan of the base revision (default: the merge base with ``main``) and of the working
tree, and prints per resource: created, deleted, updated (which inputs; secrets as ``[secret]``),
replaced (why: the resource's ``replaceOnChanges`` or a provider force-new property from
:data:`FORCE_NEW`, which names its source), and which Deployments roll (their pod template
changed). Exit status: 0 no change, 2 changes, 1 error (e.g. invalid config on either side).

How: ``git archive BASE`` is unpacked into a temporary folder; both sides are planned in this
process (this repository's ``.venv``) by this tree's mocks and compared in the same form
(:func:`tools.plan_snapshot.snapshot`), so only the program and its config can differ
(:func:`plan_root`). No cloud, no credentials: pull requests from forks get it too.

What an offline diff cannot see: the live state (drift, a failed earlier up), secret values
(both sides show ``[secret]``), and outputs only the cloud knows. It shows what the program asks
for; ``pulumi preview`` remains the word of the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parent.parent
DEFAULT_BRANCH: Final = "main"
EXIT_NO_CHANGE, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2

#: Input paths whose change makes the provider replace a resource instead of updating it, per
#: resource type this program uses. Paths are the Pulumi input names ("spec.template" covers
#: everything below it). Each type says where the rule comes from.
FORCE_NEW: Final[Mapping[str, tuple[tuple[str, ...], str]]] = {
    "random:index/randomPassword:RandomPassword": (
        ("length", "special", "upper", "lower", "numeric", "minLower", "minUpper", "minNumeric", "minSpecial",
         "overrideSpecial", "keepers"),
        "terraform-provider-random (bundled by pulumi-random): resource_password.go, every argument RequiresReplace"),
    "civo:index/network:Network": (
        ("region",), ("terraform-provider-civo v1.1.4 (bundled by pulumi-civo 2.4.8): civo/network/resource_network.go, "
                     "ForceNew")),
    "civo:index/firewall:Firewall": (
        ("networkId", "createDefaultRules"), "terraform-provider-civo v1.1.4: civo/firewall/resource_firewall.go, ForceNew"),
    "civo:index/kubernetesCluster:KubernetesCluster": (
        (), ("terraform-provider-civo v1.1.4: no ForceNew; cni, clusterType and applications are refused in place "
            "(customizeDiff 'field is immutable'), networkId and a pool size change fail the update")),
    "civo:index/kubernetesNodePool:KubernetesNodePool": (
        (), ("terraform-provider-civo v1.1.4: no ForceNew; size is refused in place and node_count panics (#381): "
            "this program replaces on both (replaceOnChanges)")),
    "civo:index/objectStore:ObjectStore": ((), "terraform-provider-civo v1.1.4: no ForceNew"),
    "civo:index/objectStoreCredential:ObjectStoreCredential": ((), "terraform-provider-civo v1.1.4: no ForceNew"),
    "kubernetes:core/v1:ConfigMap": (
        ("metadata.name", "metadata.namespace", "data", "binaryData"),
        "pulumi-kubernetes provider/pkg/provider/diff.go forceNew table"),
    "kubernetes:core/v1:Secret": (
        ("metadata.name", "metadata.namespace", "type"), "pulumi-kubernetes provider/pkg/provider/diff.go forceNew table"),
    "kubernetes:core/v1:Service": (
        ("metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"),
        "pulumi-kubernetes provider/pkg/provider/diff.go forceNew table"),
    "kubernetes:core/v1:Namespace": (("metadata.name",), "pulumi-kubernetes diff.go: metadata.name"),
    "kubernetes:core/v1:ServiceAccount": (
        ("metadata.name", "metadata.namespace"), "pulumi-kubernetes diff.go: metadata.name/namespace"),
    "kubernetes:apps/v1:Deployment": (
        ("metadata.name", "metadata.namespace", "spec.selector"),
        ("pulumi-kubernetes diff.go (metadata) + the API server's immutable spec.selector (the provider replaces on "
        "a 'field is immutable' dry-run error)")),
    "kubernetes:batch/v1:Job": (
        ("metadata.name", "metadata.namespace", "spec.selector", "spec.template"),
        "pulumi-kubernetes diff.go (metadata) + the API server's immutable Job spec.template/spec.selector"),
    "kubernetes:policy/v1:PodDisruptionBudget": (
        ("metadata.name", "metadata.namespace"), "pulumi-kubernetes diff.go: metadata.name/namespace"),
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": (
        ("metadata.name", "metadata.namespace"), "pulumi-kubernetes diff.go: metadata.name/namespace"),
    "kubernetes:helm.sh/v3:Release": (("name", "namespace"), "pulumi-kubernetes helm Release: name, namespace"),
    "kubernetes:core/v1:ResourceQuota": (
        ("metadata.name", "metadata.namespace"), "pulumi-kubernetes diff.go: metadata.name/namespace"),
    "kubernetes:rbac.authorization.k8s.io/v1:Role": (
        ("metadata.name", "metadata.namespace"), "pulumi-kubernetes diff.go: metadata.name/namespace"),
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": (
        ("metadata.name", "metadata.namespace", "roleRef"),
        "pulumi-kubernetes diff.go (metadata) + the API server's immutable roleRef"),
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy": (
        ("metadata.name",), "pulumi-kubernetes diff.go: metadata.name (cluster-scoped)"),
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding": (
        ("metadata.name",), "pulumi-kubernetes diff.go: metadata.name (cluster-scoped)"),
    # terraform-provider-github, resource_github_actions_*.go: the name and repository are ForceNew
    # in the releases pulumi-github 6.x bundles (newer upstream releases relax repository).
    "github:index/actionsSecret:ActionsSecret": (
        ("repository", "secretName"), "terraform-provider-github resource_github_actions_secret.go, ForceNew"),
    "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret": (
        ("repository", "environment", "secretName"),
        "terraform-provider-github resource_github_actions_environment_secret.go, ForceNew"),
    "github:index/actionsVariable:ActionsVariable": (
        ("repository", "variableName"), "terraform-provider-github resource_github_actions_variable.go, ForceNew"),
    "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable": (
        ("repository", "environment", "variableName"),
        "terraform-provider-github resource_github_actions_environment_variable.go, ForceNew"),
    "docker-build:index:Image": ((), "pulumi-docker-build: no replacement, a change rebuilds and pushes"),
}
#: Updates that are known to fail rather than apply: (type, input path) -> why.
KNOWN_BAD_UPDATES: Final[Mapping[tuple[str, str], str]] = {
    ("civo:index/kubernetesNodePool:KubernetesNodePool", "nodeCount"):
        "pulumi-civo 2.4.8 panics updating node_count (civo/terraform-provider-civo#381)",
}
#: Options the engine acts on when they change (no cloud call, but a reviewer should see them).
TRACKED_OPTIONS: Final = ("protect", "retainOnDelete", "replaceOnChanges", "ignoreChanges", "additionalSecretOutputs")


@dataclass
class Change:
    kind: str
    """created, deleted, updated, replaced or read."""
    id: str
    type: str
    name: str
    inputs: list[tuple[str, Any, Any]] = field(default_factory=list)
    """(path, old, new) of each changed input."""
    reasons: list[str] = field(default_factory=list)
    """Why it is replaced, or what else changed (provider, options, a known-bad update)."""
    renamed_from: str | None = None


@dataclass
class PlanDiff:
    stack: str
    changes: list[Change]
    outputs: list[tuple[str, Any, Any]]
    rolls: list[tuple[str, list[str]]]
    """(Deployment name, the pod-template paths that changed)."""

    @property
    def empty(self) -> bool:
        return not self.changes and not self.outputs

    def of_kind(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]


# ---- comparing two snapshots ---------------------------------------------------------------------

def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaf paths of a JSON value: ``spec.template.spec.containers[0].image``."""
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from flatten(value[key], f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def changed_paths(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    before, after = dict(flatten(old)), dict(flatten(new))
    return [(path, before.get(path), after.get(path)) for path in sorted(before.keys() | after.keys())
            if before.get(path) != after.get(path)]


def _covers(rule: str, path: str) -> bool:
    return path == rule or path.startswith((rule + ".", rule + "["))


def _old_id(entry: Mapping[str, Any], alias: str) -> str | None:
    """The id a resource had under one of its aliases (``name=..`` / ``type=..`` specs)."""
    parts = dict(p.split("=", 1) for p in alias.split(",") if "=" in p)
    if not parts.keys() <= {"name", "type"}:
        return None  # a parent or project alias: not modelled here
    qualified, _, name = entry["id"].rpartition("::")
    parents, _, typ = qualified.rpartition("$")
    typ = parts.get("type", typ)
    return f"{parents}${typ}::{parts.get('name', name)}" if parents else f"{typ}::{parts.get('name', name)}"


def _alias_map(head: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """old id -> new id, through aliases and (for a component whose type changed) its children."""
    mapping: dict[str, str] = {}
    type_moves: dict[str, str] = {}
    for new_id, entry in head.items():
        for alias in entry.get("aliases") or []:
            old = _old_id(entry, alias)
            if old:
                mapping[old] = new_id
                old_type = old.rpartition("::")[0].rpartition("$")[2]
                new_type = new_id.rpartition("::")[0].rpartition("$")[2]
                if old_type != new_type:
                    type_moves[old_type] = new_type
    for new_id in head:
        qualified, _, name = new_id.rpartition("::")
        parent_type, sep, typ = qualified.partition("$")
        for old_type, new_type in type_moves.items():
            if sep and parent_type == new_type:
                mapping.setdefault(f"{old_type}${typ}::{name}", new_id)
    return mapping


def _type_and_name(resource_id: str) -> tuple[str, str]:
    qualified, _, name = resource_id.rpartition("::")
    return qualified.rpartition("$")[2], name


def compare(stack: str, base: Mapping[str, Any], head: Mapping[str, Any]) -> PlanDiff:
    """What changes from the ``base`` snapshot to the ``head`` snapshot (tools.plan_snapshot form)."""
    old = {e["id"]: e for e in base["resources"]}
    new = {e["id"]: e for e in head["resources"]}
    renamed = {o: n for o, n in _alias_map(new).items() if o in old and o not in new}
    matched = {n: o for o, n in renamed.items()} | {i: i for i in new if i in old}
    changes: list[Change] = []
    for new_id, entry in sorted(new.items()):
        typ, name = _type_and_name(new_id)
        kind_if_new = "read" if entry.get("read") else "created"
        if new_id not in matched:
            changes.append(Change(kind_if_new, new_id, typ, name))
            continue
        before = old[matched[new_id]]
        change = _compare_entry(before, entry, typ, name)
        if change is not None:
            change.renamed_from = matched[new_id] if matched[new_id] != new_id else None
            changes.append(change)
    for old_id, entry in sorted(old.items()):
        if old_id not in matched.values():
            typ, name = _type_and_name(old_id)
            changes.append(Change("read" if entry.get("read") else "deleted", old_id, typ, name))
    changes = [c for c in changes if not (c.kind == "read" and not c.inputs)]
    rolls = [(c.name, [p for p, _, _ in c.inputs if _covers("spec.template", p)])
             for c in changes if c.type == "kubernetes:apps/v1:Deployment"
             and (c.kind == "replaced" or any(_covers("spec.template", p) for p, _, _ in c.inputs))]
    rolls += _rolls_from_renamed_objects(changes, new, {name for name, _ in rolls})
    outputs = changed_paths(base.get("outputs") or {}, head.get("outputs") or {})
    return PlanDiff(stack, changes, outputs, rolls)


def _rolls_from_renamed_objects(changes: Sequence[Change], head: Mapping[str, Mapping[str, Any]],
                                rolling: set[str]) -> list[tuple[str, list[str]]]:
    """Deployments that roll because a ConfigMap or Secret they use is replaced: an auto-named
    object gets a new name (``<logical name>-<random suffix>``), which lands in the pod template.
    (The mocks name objects deterministically, so the template itself shows no change.)"""
    renamed = [c.name for c in changes if c.kind == "replaced"
               and c.type in ("kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:Secret")
               and not ((head.get(c.id) or {}).get("inputs") or {}).get("metadata", {}).get("name")]
    found: list[tuple[str, list[str]]] = []
    for entry_id, entry in sorted(head.items()):
        typ, name = _type_and_name(entry_id)
        if typ != "kubernetes:apps/v1:Deployment" or name in rolling:
            continue
        template = json.dumps((entry.get("inputs") or {}).get("spec", {}).get("template"))
        users = [obj for obj in renamed if f'"{obj}-' in template]
        if users:
            found.append((name, [f"uses replaced {obj} (new auto-generated name)" for obj in users]))
    return found


def _compare_entry(before: Mapping[str, Any], after: Mapping[str, Any], typ: str, name: str) -> Change | None:
    inputs = changed_paths(before.get("inputs") or {}, after.get("inputs") or {})
    reasons: list[str] = []
    replace: list[str] = []
    for rule in after.get("replaceOnChanges") or []:
        hit = [p for p, _, _ in inputs if _covers(rule, p)]
        if hit:
            replace.append(f"replaceOnChanges {rule}")
    force_paths, source = FORCE_NEW.get(typ, ((), ""))
    for rule in force_paths:
        if any(_covers(rule, p) for p, _, _ in inputs):
            replace.append(f"{rule} is force-new ({source})")
    if not replace:
        for path, _, _ in inputs:
            for (bad_type, bad_path), why in KNOWN_BAD_UPDATES.items():
                if typ == bad_type and _covers(bad_path, path):
                    reasons.append(f"WILL FAIL: in-place update of {path}: {why}")
    if before.get("provider") != after.get("provider"):
        reasons.append(f"provider {before.get('provider') or '(default)'} -> {after.get('provider') or '(default)'}"
                       + (" (no replacement: pulumi-civo declares no provider setting as forcing replacement)"
                          if typ.startswith("civo:") else ""))
    for option in TRACKED_OPTIONS:
        if before.get(option) != after.get(option):
            reasons.append(f"option {option}: {before.get(option)} -> {after.get(option)}")
    if not inputs and not reasons:
        return None
    kind = "replaced" if replace else ("read" if after.get("read") else "updated")
    return Change(kind, after["id"], typ, name, inputs, replace + reasons)


# ---- rendering ---------------------------------------------------------------------------------

def _short(value: Any, width: int = 70) -> str:
    text = "(absent)" if value is None else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


SYMBOLS: Final = {"created": "+", "deleted": "-", "updated": "~", "replaced": "+-", "read": ">"}


def format_diff(diff: PlanDiff, base_label: str, max_inputs: int = 12) -> str:
    lines = [f"plan-diff of stack '{diff.stack}': {base_label} -> working tree"]
    if diff.empty:
        return "\n".join(lines + ["no change"])
    for kind in ("created", "deleted", "replaced", "updated", "read"):
        for change in diff.of_kind(kind):
            renamed = f"  (was {change.renamed_from})" if change.renamed_from else ""
            lines.append(f"  {SYMBOLS[kind]:2} {kind:8} {change.type}  {change.name}{renamed}")
            for reason in change.reasons:
                lines.append(f"        ! {reason}")
            for path, old, new in change.inputs[:max_inputs]:
                lines.append(f"        {path}: {_short(old)} -> {_short(new)}")
            if len(change.inputs) > max_inputs:
                lines.append(f"        ... and {len(change.inputs) - max_inputs} more input(s)")
    if diff.outputs:
        lines.append("  outputs:")
        lines += [f"        {path}: {_short(old)} -> {_short(new)}" for path, old, new in diff.outputs]
    lines.append("  Deployments that roll (pod template changed): "
                 + (", ".join(name for name, _ in diff.rolls) if diff.rolls else "none"))
    counts = {kind: len(diff.of_kind(kind)) for kind in ("created", "deleted", "replaced", "updated")}
    lines.append("  summary: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())
                 + f", {len(diff.outputs)} output(s) changed")
    return "\n".join(lines)


# ---- planning both sides -----------------------------------------------------------------------

class PlanDiffError(RuntimeError):
    """Either side could not be planned; the message says which and why."""


def git(*args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise PlanDiffError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def default_base() -> str:
    """The merge base of HEAD with ``main`` (or ``origin/main`` in a CI checkout)."""
    for branch in (DEFAULT_BRANCH, f"origin/{DEFAULT_BRANCH}"):
        try:
            return git("merge-base", "HEAD", branch)
        except PlanDiffError:
            continue
    raise PlanDiffError(f"no {DEFAULT_BRANCH} or origin/{DEFAULT_BRANCH} branch to diff against; pass --base REV")


def export_revision(revision: str, dest: Path) -> None:
    """The tracked files of ``revision`` (``git archive``) in ``dest``."""
    archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=REPO, capture_output=True,
                             check=False, timeout=120)
    if archive.returncode != 0:
        raise PlanDiffError(f"git archive {revision}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")


def plan_root(root: Path, stack: str, overrides: Mapping[str, Any], side: str) -> dict[str, Any]:
    """The offline plan of the program in ``root``, in the comparable form, in this process.

    Both sides run here, one after the other: the providers' SDKs (most of a plan's time) are
    imported once. Only the program's own package, ``components``, is dropped from the module
    cache before each side, so each side runs its own; the mocks and the snapshot form are this
    tree's for both, so only the program and its config can make a difference.
    """
    from tools.offline_plan import run_plan
    from tools.plan_snapshot import snapshot

    for module in [m for m in sys.modules if m == "components" or m.startswith("components.")]:
        del sys.modules[module]
    importlib.invalidate_caches()
    try:
        return json.loads(json.dumps(snapshot(run_plan(stack, overrides, root=root)), default=str))
    except Exception as exc:  # noqa: BLE001 - settings errors and program failures: one message, no traceback
        raise PlanDiffError(f"the offline plan of {side} failed: {exc}") from None


def diff_revisions(stack: str, base: str, overrides: Mapping[str, Any] | None = None,
                   head_root: Path = REPO) -> PlanDiff:
    """Plan ``base`` (a git revision of this repository) and ``head_root``, and compare."""
    with tempfile.TemporaryDirectory(prefix="plan-diff-") as tmp:
        base_root = Path(tmp)
        export_revision(base, base_root)
        # The working tree first: if it fails, the base's leftovers cannot be the cause.
        head_snapshot = plan_root(head_root, stack, overrides or {}, "the working tree")
        base_snapshot = plan_root(base_root, stack, overrides or {}, base[:12])
    return compare(stack, base_snapshot, head_snapshot)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--base", help=f"git revision to compare with (default: merge base with {DEFAULT_BRANCH})")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key on both sides (JSON values allowed)")
    parser.add_argument("--json", action="store_true", help="print the diff as JSON")
    args = parser.parse_args(argv)
    from tools.offline_plan import parse_overrides

    started = time.perf_counter()
    try:
        overrides = parse_overrides(args.config)
        base = args.base or default_base()
        label = git("rev-parse", "--short=12", base)
        result = diff_revisions(args.stack, label, overrides)
    except (PlanDiffError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps({"stack": result.stack, "base": label,
                          "changes": [c.__dict__ for c in result.changes],
                          "outputs": result.outputs, "rolls": result.rolls}, indent=1, default=str))
    else:
        print(format_diff(result, label))
        print(f"  ({time.perf_counter() - started:.1f}s)", file=sys.stderr)
    return EXIT_NO_CHANGE if result.empty else EXIT_CHANGES


if __name__ == "__main__":
    asyncio.set_event_loop(asyncio.new_event_loop())
    sys.exit(main())
