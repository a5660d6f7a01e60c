"""GPU health: the runtime class on GPU pods, and the smoke Job every model workload waits for."""

from __future__ import annotations

import subprocess

import pytest

from components.gpu_smoke import SMOKE_DEADLINE_SECONDS, SMOKE_SCRIPT, WHAT_TO_CHECK
from tools.offline_plan import PlanResult

JOB = "kubernetes:batch/v1:Job"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def model_deployments(plan: PlanResult) -> list:
    """The models' Deployments (the plan also holds the hub-gateway's, which runs no GPU work)."""
    return [d for d in plan.by_type(DEPLOYMENT) if d.name.startswith("model-")]


def smoke_job(plan: PlanResult):
    return plan.one(JOB, "gpu-smoke-job")


def test_gpu_pods_get_the_runtime_class_and_cpu_only_pods_do_not(stack_plan, plan_with) -> None:
    plan = stack_plan("dev")
    [deployment] = model_deployments(plan)
    assert deployment.inputs["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    warm = plan.one(JOB, "model-qwen-small-warm")  # ensure only: no GPU, no NVIDIA runtime needed
    assert "runtimeClassName" not in warm.inputs["spec"]["template"]["spec"]
    custom = plan_with("dev", gpuRuntimeClass="nvidia-cdi")
    assert model_deployments(custom)[0].inputs["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia-cdi"
    release = custom.one("kubernetes:helm.sh/v3:Release")
    assert release.inputs["values"]["validator"]["cuda"]["runtimeClassName"] == "nvidia-cdi"
    none = plan_with("dev", gpuRuntimeClass="")
    assert "runtimeClassName" not in model_deployments(none)[0].inputs["spec"]["template"]["spec"]


@pytest.mark.parametrize(("stack", "nodes"), [("dev", 1), ("prod", 2)])
def test_smoke_job_runs_nvidia_smi_once_on_every_gpu_node_bounded(stack_plan, stack: str, nodes: int) -> None:
    job = smoke_job(stack_plan(stack))
    spec = job.inputs["spec"]
    assert spec["completions"] == spec["parallelism"] == nodes
    assert spec["activeDeadlineSeconds"] == SMOKE_DEADLINE_SECONDS
    assert spec["backoffLimit"] == 0  # a retry might run on a node that already passed
    pod = spec["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"] == {"gpu-platform/pool": "gpu"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    [term] = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"  # one pod per node
    [container] = pod["containers"]
    # No GPU request: the models may hold every GPU; the runtime exposes them read-only to nvidia-smi.
    assert "nvidia.com/gpu" not in str(container["resources"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    assert container["image"].startswith("ghcr.io/acme/gpu-platform/model-cache@sha256:")
    assert container["securityContext"]["runAsNonRoot"] is True
    assert job.dependencies, "the smoke Job must wait for the GPU operator"
    assert any("gpu-operator" in d for d in job.dependencies)


def test_every_model_deployment_waits_for_the_smoke_job(stack_plan) -> None:
    plan = stack_plan("prod")
    job = smoke_job(plan)
    assert model_deployments(plan)
    for deployment in model_deployments(plan):
        assert job.urn in deployment.dependencies, deployment.name


def test_new_gpu_node_replaces_the_smoke_job_so_it_runs_again(stack_plan, plan_with) -> None:
    before = smoke_job(stack_plan("dev")).inputs["spec"]["template"]["metadata"]["annotations"]
    after = smoke_job(plan_with("dev", gpuNodeCount=2)).inputs["spec"]["template"]["metadata"]["annotations"]
    assert before["gpu-platform/gpu-pools"] == "an.g1.l40s.kube.x1: 1"
    assert after["gpu-platform/gpu-pools"] == "an.g1.l40s.kube.x1: 1,1"


def test_no_models_no_smoke_job(plan_with) -> None:
    assert not plan_with("dev", models=[], teams=[], buildImages=False, hubGateway=False).by_type(JOB)


def _run_script(tmp_path, nvidia_smi: str | None, expected: int) -> subprocess.CompletedProcess[str]:
    """The smoke script under a real /bin/sh, with a stand-in nvidia-smi on PATH (or none)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if nvidia_smi is not None:
        tool = bin_dir / "nvidia-smi"
        tool.write_text(f"#!/bin/sh\n{nvidia_smi}\n")
        tool.chmod(0o755)
    script = SMOKE_SCRIPT.replace("/dev/termination-log", str(tmp_path / "termination-log"))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "NODE_NAME": "gpu-node-1", "EXPECTED_GPUS": str(expected),
           "RUNTIME_CLASS": "nvidia"}
    return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=10,
                          check=False)


def test_smoke_script_passes_on_a_working_gpu(tmp_path) -> None:
    done = _run_script(tmp_path, "echo 'GPU 0: NVIDIA L40S (UUID: GPU-1)'", expected=1)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("tool", "expected", "needle"), [
    (None, 1, "nvidia-smi was not injected"),
    ("echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver'; exit 9", 1,
     "nvidia-smi -L failed (driver not loaded?)"),
    ("echo 'GPU 0: NVIDIA H100 (UUID: GPU-1)'", 2, "found 1 GPU(s), expected 2"),
])
def test_smoke_script_fails_naming_the_node_and_the_check(tmp_path, tool: str | None, expected: int,
                                                          needle: str) -> None:
    done = _run_script(tmp_path, tool, expected)
    assert done.returncode == 1
    message = (tmp_path / "termination-log").read_text()
    assert message.startswith("GPU smoke test failed on node gpu-node-1: ") and needle in message


def test_the_failure_message_says_what_to_check() -> None:
    text = WHAT_TO_CHECK.format(runtime_class="nvidia", namespace="models", selector="gpu-platform/pool=gpu")
    for step in ("kubectl -n gpu-operator get pods", "kubectl get runtimeclass nvidia",
                 "kubectl -n models describe pods -l app.kubernetes.io/component=gpu-smoke",
                 "kubectl describe nodes -l gpu-platform/pool=gpu"):
        assert step in text
