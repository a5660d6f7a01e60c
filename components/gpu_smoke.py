"""GpuSmokeTest: a Job that runs ``nvidia-smi`` on every GPU node before any model workload rolls.

A GPU node whose driver, container runtime or runtime class is broken would otherwise show up as
model pods crash-looping for the length of their startup probe (up to 30 minutes). This Job runs
first, every ``ModelDeployment`` waits for it, and ``pulumi up`` fails with what to check.

Why it looks like this:
- **One pod per GPU node** (``completions = parallelism = gpuNodeCount``, all created at once,
  required pod anti-affinity on the hostname, the GPU pool's node selector and taint toleration),
  and ``backoffLimit: 0``: a retry could land on a node that already passed.
- **No GPU request.** On a later ``up`` (scaling, a new image) the models hold every GPU, so a pod
  requesting one would wait forever. The pod asks the NVIDIA runtime for all devices with
  ``NVIDIA_VISIBLE_DEVICES=all`` (the toolkit's default ``accept-nvidia-visible-devices-envvar-
  when-unprivileged``) and ``NVIDIA_DRIVER_CAPABILITIES=utility``, which makes the runtime inject
  ``nvidia-smi`` and NVML; ``nvidia-smi -L`` only reads, it allocates nothing.
- **The model-cache image**: small, already pulled by every model pod, digest-pinned; the
  runtime supplies ``nvidia-smi``, so its absence means the runtime is not the NVIDIA one.
- **Bounded**: ``activeDeadlineSeconds`` and Pulumi ``customTimeouts``; the template names the
  pool layout and the image, so a new node (or image) replaces the Job and tests again.
- **A failed Job fails the up with a reason**: an error hook (Pulumi error hooks, where the CLI
  supports them) logs :data:`WHAT_TO_CHECK`; the pod also writes the failing node and check to
  its termination message (``kubectl describe pod``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.proto import resource_pb2

from components.kubernetes import resources_of, standard_labels
from components.model_pod import CHECKOV_SKIPS, RUN_AS_USER, container_security

SMOKE_DEADLINE_SECONDS: Final = 900
"""The GPU operator's Helm release has already waited for the driver; a healthy node answers in seconds,
the rest of the budget is image pull."""
COMPONENT: Final = "gpu-smoke"
WHAT_TO_CHECK: Final = (
    "GPU smoke test failed: a GPU node cannot run nvidia-smi, so the model workloads were not rolled. "
    "Check, in order: (1) kubectl -n gpu-operator get pods -o wide: nvidia-driver-daemonset and "
    "nvidia-operator-validator Running on every GPU node (logs of a failing one name the cause); "
    "(2) kubectl get runtimeclass {runtime_class}: it must exist (k3s creates it when it finds the NVIDIA "
    "runtime); (3) kubectl -n {namespace} describe pods -l app.kubernetes.io/component=gpu-smoke: the "
    "termination message names the node and the failed check; (4) kubectl describe nodes -l "
    "{selector}: nvidia.com/gpu allocatable. Fix the node (or delete its pool) and run `pulumi up` again. "
    "docs/architecture.md, 'GPU smoke test'."
)
SMOKE_SCRIPT: Final = """set -u
fail() { echo "GPU smoke test failed on node ${NODE_NAME}: $1" | tee /dev/termination-log; exit 1; }
command -v nvidia-smi >/dev/null 2>&1 || fail "nvidia-smi was not injected: the pod did not run under the NVIDIA container runtime (runtimeClassName ${RUNTIME_CLASS:-<node default>})"
listing=$(nvidia-smi -L 2>&1) || fail "nvidia-smi -L failed (driver not loaded?): ${listing}"
echo "${listing}"
count=$(printf '%s\\n' "${listing}" | grep -c '^GPU ')
[ "${count}" -ge "${EXPECTED_GPUS}" ] || fail "found ${count} GPU(s), expected ${EXPECTED_GPUS}"
"""


@dataclass(frozen=True)
class GpuSmokeTestArgs:
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    """An image with a POSIX shell; ``nvidia-smi`` comes from the NVIDIA runtime."""
    node_count: int
    gpus_per_node: int
    pool_layout: str
    """What the GPU pools are (size and node counts): a change replaces the Job, so it runs again."""
    runtime_class: str | None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, str]] = ()
    pull_secret_name: pulumi.Input[str] | None = None


def smoke_pod_spec(args: GpuSmokeTestArgs, selector: Mapping[str, str]) -> dict[str, Any]:
    """The smoke pod: restricted Pod Security, one per GPU node, the NVIDIA runtime, no GPU request."""
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "nodeSelector": dict(args.node_selector),
        "tolerations": [dict(t) for t in args.tolerations],
        "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": dict(selector)}}]}},
        "containers": [{
            "name": "nvidia-smi",
            "image": args.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/sh", "-c", SMOKE_SCRIPT],
            "env": [
                {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
                {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"},
                {"name": "EXPECTED_GPUS", "value": str(args.gpus_per_node)},
                {"name": "RUNTIME_CLASS", "value": args.runtime_class or ""},
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            ],
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
            "securityContext": container_security(),
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }],
    }
    if args.runtime_class:
        spec["runtimeClassName"] = args.runtime_class
    if args.pull_secret_name is not None:
        spec["imagePullSecrets"] = [{"name": args.pull_secret_name}]
    return spec


class GpuSmokeTest(pulumi.ComponentResource):
    """The Job every model workload waits for: ``nvidia-smi`` passes on every GPU node."""

    job: k8s.batch.v1.Job

    def __init__(self, name: str, args: GpuSmokeTestArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-platform:index:GpuSmokeTest", name, None, opts)
        labels = standard_labels("gpu-smoke", COMPONENT)
        selector = {"app.kubernetes.io/component": COMPONENT, "app.kubernetes.io/name": "gpu-smoke"}
        self.job = k8s.batch.v1.Job(
            f"{name}-job",
            # Auto-named: a new layout or image replaces the Job (new one first), so it runs again.
            metadata={"namespace": args.namespace, "labels": labels, "annotations": {
                "checkov.io/skip1": f"CKV_K8S_40={CHECKOV_SKIPS['CKV_K8S_40']}"}},
            spec={
                "completions": args.node_count,
                "parallelism": args.node_count,
                # No retry: a retried pod could land on a node that already passed (anti-affinity
                # only sees pods still running), leaving the failing node untested.
                "backoffLimit": 0,
                "activeDeadlineSeconds": SMOKE_DEADLINE_SECONDS,
                "template": {
                    "metadata": {"labels": labels, "annotations": {"gpu-platform/gpu-pools": args.pool_layout}},
                    "spec": smoke_pod_spec(args, selector),
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                # Children do not inherit a component's depends_on: the GPU operator must be up.
                depends_on=resources_of(opts.depends_on if opts else None),
                custom_timeouts=pulumi.CustomTimeouts(create=f"{SMOKE_DEADLINE_SECONDS // 60 + 5}m",
                                                      update=f"{SMOKE_DEADLINE_SECONDS // 60 + 5}m"),
                hooks=_failure_hook(name, args),
            ),
        )
        # The pods need no network at all: nothing in, nothing out.
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata={"namespace": args.namespace, "labels": labels},
            spec={"podSelector": {"matchLabels": dict(selector)}, "policyTypes": ["Ingress", "Egress"]},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"jobName": self.job.metadata.name})


def _failure_hook(name: str, args: GpuSmokeTestArgs) -> pulumi.ResourceHookBinding | None:
    """An error hook that says what to check when the Job fails; None where the CLI has no error hooks
    (registering one there would fail the whole program)."""
    if not runtime_settings.monitor_supports_feature(resource_pb2.RESOURCE_MONITOR_FEATURE_ERROR_HOOKS):
        return None
    selector = ",".join(f"{k}={v}" for k, v in args.node_selector.items())

    def explain(hook_args: pulumi.ErrorHookArgs) -> bool:
        namespace = (hook_args.new_inputs or {}).get("metadata", {}).get("namespace", "<model namespace>")
        pulumi.log.error(WHAT_TO_CHECK.format(runtime_class=args.runtime_class or "<none>",
                                              namespace=namespace, selector=selector or "<gpu pool>"))
        return False  # do not retry: a broken node stays broken

    return pulumi.ResourceHookBinding(on_error=[pulumi.ErrorHook(f"{name}-explain-failure", explain)])
