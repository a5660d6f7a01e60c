"""A live stack must not notice a refactor: the plan of dev and prod equals the committed snapshot.

A change that adds, removes, renames or re-parameterises a resource fails here until the
snapshot is updated on purpose (``python -m tools.plan_snapshot --update``), so the diff of
tests/snapshots/plan-<stack>.json shows a reviewer exactly what a live stack will see.
"""

from __future__ import annotations

import json

import pytest

from tools.plan_snapshot import diff, render, snapshot


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_matches_the_committed_snapshot(stack_plan, stack: str) -> None:
    changes = diff(stack, render(snapshot(stack_plan(stack))))
    assert not changes, (f"the {stack} plan changed; if on purpose, run `python -m tools.plan_snapshot "
                         f"--update` and commit the snapshot:\n{changes[:6000]}")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_renamed_components_keep_their_old_identity_by_alias(stack_plan, stack: str) -> None:
    entries = {e["id"]: e for e in json.loads(render(snapshot(stack_plan(stack))))["resources"]}
    namespace = entries["pulumi:pulumi:Stack$gpu-platform:index:ModelNamespace::platform"]
    assert namespace["aliases"] == ["type=gpu-platform:index:PlatformSecrets"]
    # Children keep their own names, so the engine maps them through the parent's alias.
    assert "gpu-platform:index:ModelNamespace$kubernetes:core/v1:Namespace::platform-namespace" in entries


def test_snapshot_ids_are_the_engine_identity() -> None:
    from tools.plan_snapshot import resource_id

    urn = "urn:pulumi:dev::gpu-platform::gpu-platform:index:GpuCluster$civo:index/network:Network::gpu-network"
    assert resource_id(urn) == "gpu-platform:index:GpuCluster$civo:index/network:Network::gpu-network"
