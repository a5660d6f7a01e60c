"""The offline plan as a stable, reviewable snapshot: every resource, its inputs and options.

A refactor must not change what a live stack sees. ``tests/snapshots/plan-<stack>.json`` holds
the plan of each committed stack; a test compares the program's plan with it, so a change that
adds, removes, renames or re-parameterises a resource fails until the snapshot is updated on
purpose (``python -m tools.plan_snapshot --update``), and the diff of that file is what a reviewer
reads. A resource is identified as the engine identifies it: by its URN's qualified type (the
parent chain) and name. Renames carry ``aliases``, which the snapshot records.

Nothing in the plan depends on the git commit: images are tagged and labelled by the hash of
their build inputs (components/images.py), so the snapshot is the same on every commit that does
not change what a stack deploys. ``tools/plan_diff.py`` compares two snapshots.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.offline_plan import REPO, PlanResult, mask, run_plan, tidy_numbers
from tools.plan_mocks import ResourceRecord

SNAPSHOT_DIR = REPO / "tests" / "snapshots"
STACKS: tuple[str, ...] = ("dev", "prod")


def resource_id(urn: str) -> str:
    """``qualified$type::name`` of a URN (project and stack dropped: they differ between stacks)."""
    if not urn:
        return ""
    _, _, rest = urn.partition("::")  # drop urn:pulumi:<stack>
    _, _, rest = rest.partition("::")  # drop <project>
    return rest


def _provider_id(ref: str) -> str:
    # A provider reference is "<urn>::<id>"; the id is the provider's own, keep the URN part.
    return resource_id(ref.rsplit("::", 1)[0]) if ref else ""


def record_entry(record: ResourceRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": resource_id(record.urn),
        "custom": record.custom,
        "inputs": tidy_numbers(mask(record.inputs)),
    }
    if record.provider:
        entry["provider"] = _provider_id(record.provider)
    options = {
        "protect": record.protect,
        "retainOnDelete": record.retain_on_delete,
        "replaceOnChanges": sorted(record.replace_on_changes),
        "ignoreChanges": sorted(record.ignore_changes),
        "additionalSecretOutputs": sorted(record.additional_secret_outputs),
        "dependsOn": sorted(resource_id(d) for d in record.dependencies),
        "aliases": record.aliases,
        "read": record.read,
    }
    entry.update({k: v for k, v in options.items() if v})
    return entry


def snapshot(result: PlanResult) -> dict[str, Any]:
    """The plan as plain JSON data: resources sorted by id, outputs masked."""
    resources = sorted((record_entry(r) for r in result.resources), key=lambda e: e["id"])
    return {
        "stack": result.stack,
        "resources": resources,
        "outputs": tidy_numbers(result.outputs),
    }


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True, default=str) + "\n"


def snapshot_path(stack: str) -> Path:
    return SNAPSHOT_DIR / f"plan-{stack}.json"


def diff(stack: str, fresh: str) -> str:
    """A unified diff of the committed snapshot against ``fresh`` ('' when equal)."""
    path = snapshot_path(stack)
    old = path.read_text() if path.exists() else ""
    if old == fresh:
        return ""
    return "".join(difflib.unified_diff(old.splitlines(True), fresh.splitlines(True),
                                        f"{path.relative_to(REPO)} (committed)", "plan (this tree)", n=2))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare or update the offline-plan snapshots.")
    parser.add_argument("--update", action="store_true", help="rewrite tests/snapshots/plan-<stack>.json")
    parser.add_argument("stacks", nargs="*", default=list(STACKS))
    args = parser.parse_args(argv)
    status = 0
    for stack in args.stacks:
        fresh = render(snapshot(run_plan(stack)))
        if args.update:
            SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
            snapshot_path(stack).write_text(fresh)
            print(f"wrote {snapshot_path(stack).relative_to(REPO)}")
            continue
        changes = diff(stack, fresh)
        if changes:
            print(changes)
            status = 1
        else:
            print(f"{stack}: plan matches {snapshot_path(stack).relative_to(REPO)}")
    return status


if __name__ == "__main__":
    asyncio.set_event_loop(asyncio.new_event_loop())
    sys.exit(main())
