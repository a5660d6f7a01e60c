"""Day-two changes under the offline diff (issue 12): the real program and stack files under mocks,
compared in tools.plan_snapshot's form by tools.plan_diff.

In-process tests plan a copy of this tree (same components, changed docs/images/config) and the
tree itself; the CLI tests run ``python -m tools.plan_diff`` in a throwaway git repository made
from this tree, as a reviewer (or CI on a fork's pull request) runs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.config import outputs as contract
from tools.offline_plan import PlanResult, run_plan
from tools.plan_diff import EXIT_CHANGES, EXIT_ERROR, EXIT_NO_CHANGE, PlanDiff, compare, format_diff
from tools.plan_snapshot import snapshot

REPO = Path(__file__).resolve().parents[2]
NODE_POOL = "civo:index/kubernetesNodePool:KubernetesNodePool"
IMAGE = "docker-build:index:Image"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
SHA = "7ae557604adf67be50417f59c2c2f167def9a775"
OTHER_SHA = "0123456789abcdef0123456789abcdef01234567"


def model(name: str, runtime: str = "vllm", revision: str = SHA) -> dict[str, Any]:
    entry = {"name": name, "repo": "Qwen/Qwen2.5-0.5B-Instruct", "revision": revision, "runtime": runtime,
             "cpu": "4", "memory": "16Gi", "cacheSize": "20Gi"}
    return entry | ({"quantization": "4bit"} if runtime == "hf-server" else {"maxModelLen": 8192, "shmSize": "2Gi"})


#: Two models on two GPU nodes, one on hf-server: dev then builds and runs both images.
TWO_MODELS: dict[str, Any] = {"gpuNodeCount": 2, "teams": [], "models": [model("alpha"), model("beta", "hf-server")]}


def copy_tree(dest: Path) -> Path:
    """This tree's tracked and unignored files (what a commit of it would hold)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for relative in filter(None, listed):
        source = REPO / relative
        if source.is_file():
            (dest / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / relative)
    return dest


def diff_of(stack: str, base: PlanResult, head: PlanResult) -> PlanDiff:
    return compare(stack, snapshot(base), snapshot(head))


def names(diff: PlanDiff, kind: str, typ: str | None = None) -> list[str]:
    return sorted(c.name for c in diff.of_kind(kind) if typ is None or c.type == typ)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_docs_only_change_is_no_change(stack_plan, tmp_path: Path, stack: str) -> None:
    tree = copy_tree(tmp_path)
    for doc in ("README.md", "docs/architecture.md", "docs/models.md"):
        (tree / doc).write_text((tree / doc).read_text() + "\nA docs-only edit.\n")
    diff = diff_of(stack, stack_plan(stack), run_plan(stack, root=tree))
    assert diff.empty, format_diff(diff, "this tree")


def test_a_second_plan_of_an_unchanged_stack_shows_no_diff(stack_plan, plan_with) -> None:
    for stack in ("dev", "prod"):
        diff = diff_of(stack, stack_plan(stack), plan_with(stack))
        assert diff.empty, format_diff(diff, "first plan")


def test_scaling_the_gpu_pool_creates_a_pool_and_never_updates_a_node_count(stack_plan, plan_with) -> None:
    diff = diff_of("dev", stack_plan("dev"), plan_with("dev", gpuNodeCount=2))
    text = format_diff(diff, "gpuNodeCount 1")
    assert names(diff, "created") == ["gpu-gpu-pool-1"], text
    # The smoke test covers the new node: its Job is replaced (and runs again), nothing else changes.
    assert names(diff, "replaced") == ["gpu-smoke-job"], text
    assert not diff.of_kind("deleted") and not diff.of_kind("updated") and not diff.rolls, text
    assert "nodeCount" not in text.replace("gpu-gpu-pool-1", "")
    assert "WILL FAIL" not in text


def test_an_in_place_node_count_update_is_flagged_as_the_provider_crash() -> None:
    pool = {"id": "gpu-platform:index:GpuCluster$" + NODE_POOL + "::gpu-gpu-pool", "custom": True,
            "inputs": {"nodeCount": 1, "size": "an.g1.l40s.kube.x1"}, "replaceOnChanges": ["size"]}
    grown = pool | {"inputs": {"nodeCount": 2, "size": "an.g1.l40s.kube.x1"}}
    diff = compare("dev", {"resources": [pool]}, {"resources": [grown]})
    [change] = diff.changes
    assert change.kind == "updated"
    assert any(r.startswith("WILL FAIL") and "#381" in r for r in change.reasons)
    # With this program's replaceOnChanges it is a replacement instead: no update is sent.
    safe = compare("dev", {"resources": [pool]}, {"resources": [grown | {"replaceOnChanges": ["nodeCount", "size"]}]})
    assert [c.kind for c in safe.changes] == ["replaced"]
    assert safe.changes[0].reasons[0] == "replaceOnChanges nodeCount"


def test_the_old_single_pool_is_the_first_pool_by_alias(plan_with) -> None:
    # The snapshot form of the pre-issue-12 pool, as the committed snapshot held it.
    head = snapshot(plan_with("prod"))
    [pool] = [e for e in head["resources"] if e["id"].endswith("::gpu-gpu-pool-0")]
    old = pool | {"id": pool["id"].removesuffix("-0"), "aliases": [], "replaceOnChanges": ["size"],
                  "provider": ""}
    base = {"resources": [old], "outputs": {}}
    diff = compare("prod", base, {"resources": [pool], "outputs": {}})
    [change] = diff.changes
    assert change.kind == "updated" and change.renamed_from == old["id"]
    assert not change.inputs  # nodeCount 2 stays 2: prod keeps its pool as it is
    assert pool["inputs"]["nodeCount"] == 2


def test_a_model_revision_rolls_exactly_that_models_deployment(plan_with) -> None:
    base = plan_with("dev", **TWO_MODELS)
    bumped = {**TWO_MODELS, "models": [model("alpha"), model("beta", "hf-server", revision=OTHER_SHA)]}
    diff = diff_of("dev", base, plan_with("dev", **bumped))
    text = format_diff(diff, "before")
    assert [name for name, _ in diff.rolls] == ["model-beta-server"], text
    assert names(diff, "replaced") == ["model-beta-warm"], text  # warms the bucket before the rollout
    assert names(diff, "updated") == ["model-beta-server"], text
    assert not diff.of_kind("created") and not diff.of_kind("deleted") and not diff.outputs, text
    assert not [c for c in diff.changes if c.type == IMAGE], text


def test_a_change_inside_model_cache_changes_only_its_digest(plan_with, tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    overrides = {**TWO_MODELS, "buildImages": True}
    base = run_plan("dev", overrides=overrides, root=tree)
    source = tree / "images/model-cache/src/model_cache/__init__.py"
    source.write_text(source.read_text() + "\n# a change inside the model-cache image\n")
    ignored = tree / "images/hf-server/hf_server/__pycache__/stale.pyc"  # .dockerignore'd: not an input
    ignored.parent.mkdir(parents=True, exist_ok=True)
    ignored.write_bytes(b"\0stale")
    head = run_plan("dev", overrides=overrides, root=tree)
    before, after = base.raw_outputs[contract.IMAGES], head.raw_outputs[contract.IMAGES]
    assert after["model-cache"] != before["model-cache"]
    assert after["hf-server"] == before["hf-server"]
    # The hub-gateway installs model-cache (it reads the bucket's layout with it): it changes too.
    assert after["hub-gateway"] != before["hub-gateway"]
    diff = diff_of("dev", base, head)
    assert names(diff, "updated", IMAGE) == ["hub-gateway-image", "model-cache-image"]
    tags = {c.name: c for c in diff.changes}["model-cache-image"].inputs
    assert {path for path, _, _ in tags} == {"labels.org.opencontainers.image.revision", "tags"}
    # model-cache runs in both models' init containers and the smoke test.
    assert [name for name, _ in diff.rolls] == ["hub-gateway-deployment", "model-alpha-server", "model-beta-server"]


def test_prod_builds_nothing_and_runs_the_digests_dev_built(stack_plan) -> None:
    dev, prod = stack_plan("dev"), stack_plan("prod")
    assert dev.by_type(IMAGE) and not prod.by_type(IMAGE)
    assert not prod.by_type("gpu-platform:index:ContainerImage")
    [reference] = prod.by_type("pulumi:pulumi:StackReference")
    assert reference.read and reference.inputs["name"] == "acme/gpu-platform/dev"
    promoted = dev.raw_outputs[contract.IMAGES]["model-cache"]
    # Exactly dev's digests: model-cache for its models, hf-server published for app teams.
    assert prod.raw_outputs[contract.IMAGES] == dev.raw_outputs[contract.IMAGES]
    assert set(prod.raw_outputs[contract.IMAGES]) == {"model-cache", "hf-server", "hub-gateway"}
    images = [c["image"] for m in prod.manifests() if m["kind"] in ("Deployment", "Job")
              for c in m["spec"]["template"]["spec"].get("initContainers", []) + m["spec"]["template"]["spec"]["containers"]
              if "model-cache" in c["image"]]
    assert len(images) == 4 and set(images) == {promoted}  # ensure, restore, warm Job, smoke Job


def test_prod_fails_clearly_when_dev_has_not_built_an_image_it_needs(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path / "tree")
    dev_file = tree / "Pulumi.dev.yaml"
    dev_file.write_text(dev_file.read_text().replace("  gpu-platform:publishImages:\n    - hf-server\n", ""))
    # In its own process: a program that fails under mocks leaves errors behind in the runtime.
    hf = json.dumps([model("beta", "hf-server")])
    done = subprocess.run([sys.executable, "-m", "tools.offline_plan", "--stack", "prod", "--out", str(tmp_path / "out"),
                           "--config", f"models={hf}", "--config", "teams=[]"], cwd=tree, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stack acme/gpu-platform/dev has no digest-pinned 'hf-server' in its `images` output" in done.stderr
    assert "Fix: run `pulumi up` on acme/gpu-platform/dev first" in done.stderr


# ---- the CLI, in a throwaway git repository -----------------------------------------------------

@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    tree = copy_tree(tmp_path_factory.mktemp("repo"))
    git = ["git", "-c", "user.name=plan-diff test", "-c", "user.email=test@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run(git + args, cwd=tree, check=True, capture_output=True)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tools.plan_diff", *args], cwd=tree, capture_output=True,
                              text=True, timeout=300, check=False)

    run.tree = tree  # type: ignore[attr-defined]
    return run


def test_cli_docs_only_change_exits_0(repo_copy) -> None:
    readme = repo_copy.tree / "docs" / "architecture.md"
    readme.write_text(readme.read_text() + "\nUncommitted docs edit.\n")
    done = repo_copy("--stack", "dev")  # base: the merge base with main, i.e. the commit
    assert done.returncode == EXIT_NO_CHANGE, done.stdout + done.stderr
    assert done.stdout.strip().endswith("no change")


def test_cli_config_change_exits_2_and_names_what_changes(repo_copy) -> None:
    stack_file = repo_copy.tree / "Pulumi.dev.yaml"
    original = stack_file.read_text()
    stack_file.write_text(original.replace("gpu-platform:gpuNodeCount: 1", "gpu-platform:gpuNodeCount: 2"))
    try:
        done = repo_copy("--stack", "dev", "--base", "HEAD")
    finally:
        stack_file.write_text(original)
    assert done.returncode == EXIT_CHANGES, done.stdout + done.stderr
    assert "+  created  civo:index/kubernetesNodePool:KubernetesNodePool  gpu-gpu-pool-1" in done.stdout
    assert "+- replaced kubernetes:batch/v1:Job  gpu-smoke-job" in done.stdout
    assert "Deployments that roll (pod template changed): none" in done.stdout


def test_cli_bad_config_or_revision_exits_1_with_one_line(repo_copy) -> None:
    done = repo_copy("--stack", "dev", "--base", "no-such-revision")
    assert done.returncode == EXIT_ERROR
    assert done.stderr.startswith("error: git rev-parse") and "Traceback" not in done.stderr
    bad = repo_copy("--stack", "dev", "--base", "HEAD", "--config", "gpuNodeCount=0")
    assert bad.returncode == EXIT_ERROR
    assert "gpu-platform:gpuNodeCount = 0" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_force_new_table_covers_every_resource_type_the_program_uses(stack_plan, stack: str) -> None:
    from tools.plan_diff import FORCE_NEW

    used = {r.type for r in stack_plan(stack).resources
            if r.custom and not r.read and not r.type.startswith("pulumi:providers:")}
    missing = used - set(FORCE_NEW)
    assert not missing, f"add the provider's force-new properties (and their source) to FORCE_NEW: {missing}"
    assert all(source for _, source in FORCE_NEW.values())


def test_a_replaced_config_map_rolls_the_deployments_that_use_it(stack_plan, plan_with) -> None:
    # The store ConfigMap is auto-named and force-new on data: a new prefix gives it a new name,
    # which lands in every model pod template.
    diff = diff_of("dev", stack_plan("dev"), plan_with("dev", modelPrefix="weights/"))
    text = format_diff(diff, "models/")
    assert "platform-store" in names(diff, "replaced"), text
    assert dict(diff.rolls)["model-qwen-small-server"] == ["uses replaced platform-store (new auto-generated name)"]
