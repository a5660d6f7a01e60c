"""Turn the offline plan's records into the argument objects the engine hands a policy pack.

The engine calls ``Analyze`` with a resource's inputs and options and ``AnalyzeStack`` with every
resource's outputs plus the root ``pulumi:pulumi:Stack`` resource, whose outputs are the stack
outputs. The offline plan records inputs (``record.inputs``, secrets still wrapped, as the engine
marshals them), the mocks' outputs (``record.state``), the options, and the stack outputs apart
from any resource (the recording monitor skips the root stack), so this module rebuilds the root
stack resource from ``PlanResult.raw_outputs``/``secret_outputs``. Properties pass through the
pack's own deserializer (``deserialize_keeping_secrets``) and the SDK's unknown-checking proxy,
exactly the path ``Analyze`` takes once ``__main__`` has installed the secret markers.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpu_platform_policy.values import deserialize_keeping_secrets
from pulumi.runtime.rpc import unwrap_rpc_secret, wrap_rpc_secret
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import unknown_checking_proxy

from tools.offline_plan import PROJECT, PlanResult
from tools.plan_mocks import ResourceRecord

STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class Finding:
    policy: str
    level: EnforcementLevel
    message: str
    urn: str
    """The resource the violation is about (a resource policy's own resource; a stack policy's argument)."""


def engine_props(wire_props: Mapping[str, Any]) -> Any:
    """Properties as ``Analyze`` hands them to a policy: deserialized, then behind the unknown proxy."""
    return unknown_checking_proxy(deserialize_keeping_secrets(copy.deepcopy(dict(wire_props))))


def options(record: ResourceRecord) -> PolicyResourceOptions:
    # retainOnDelete is not part of the analyzer protocol (AnalyzerResourceOptions), so it is not here either.
    return PolicyResourceOptions(
        protect=record.protect, ignore_changes=list(record.ignore_changes), delete_before_replace=None,
        aliases=[], custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=list(record.additional_secret_outputs), parent=record.parent or None)


def resource_args(record: ResourceRecord, config: Mapping[str, Any] | None = None) -> ResourceValidationArgs:
    return ResourceValidationArgs(record.type, engine_props(record.inputs), record.urn, record.name,
                                  options(record), None, dict(config) if config else None)


def root_stack_urn(stack: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{STACK_TYPE}::{PROJECT}-{stack}"


def stack_outputs_wire(plan: PlanResult, outputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The root stack's outputs as the engine marshals them: secret outputs wrapped."""
    raw = plan.raw_outputs if outputs is None else outputs
    return {name: wrap_rpc_secret(value) if name in plan.secret_outputs else value for name, value in raw.items()}


def stack_resources(plan: PlanResult, records: list[ResourceRecord] | None = None,
                    outputs: Mapping[str, Any] | None = None) -> list[PolicyResource]:
    """Every resource of the plan as ``AnalyzeStack`` sees it (outputs, parents linked), root stack first."""
    stack_urn = root_stack_urn(plan.stack)
    root = PolicyResource(STACK_TYPE, engine_props(stack_outputs_wire(plan, outputs)), stack_urn,
                          f"{PROJECT}-{plan.stack}", PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(
                              0, 0, 0), []), None, None, [], {})
    resources = [root]
    parents: dict[str, str] = {}
    for record in plan.resources if records is None else records:
        resources.append(PolicyResource(record.type, engine_props(record.state or record.inputs), record.urn,
                                        record.name, options(record), None, None, [], {}))
        parents[record.urn] = record.parent
    by_urn = {r.urn: r for r in resources}
    for resource in resources:
        resource.parent = by_urn.get(parents.get(resource.urn, ""))
    return resources


def run_policy(policy: ResourceValidationPolicy | StackValidationPolicy, plan: PlanResult,
               config: Mapping[str, Any] | None = None, records: list[ResourceRecord] | None = None,
               outputs: Mapping[str, Any] | None = None) -> list[Finding]:
    """Run one policy the way the engine would over a (possibly mutated) plan."""
    findings: list[Finding] = []
    level = policy.enforcement_level or EnforcementLevel.ADVISORY

    def reporter(default_urn: str) -> Any:
        def report(message: str, urn: str | None = None) -> None:
            findings.append(Finding(policy.name, level, message, urn or default_urn))
        return report

    records = plan.resources if records is None else records
    if isinstance(policy, ResourceValidationPolicy):
        for record in records:
            policy.validate(resource_args(record, config), reporter(record.urn))
    else:
        args = StackValidationArgs(stack_resources(plan, records, outputs), dict(config) if config else None)
        policy.validate(args, reporter(""))
    return findings


def admin_kubeconfig(plan: PlanResult) -> str:
    """The cluster's admin kubeconfig as the provider returns it (whether or not the program exports it)."""
    return unwrap_rpc_secret(plan.one("civo:index/kubernetesCluster:KubernetesCluster").state["kubeconfig"])


def outputs_with(plan: PlanResult, **extra: Any) -> dict[str, Any]:
    """The plan's stack outputs without any kubeconfig, plus ``extra``."""
    return {**{k: v for k, v in plan.raw_outputs.items() if "kubeconfig" not in k.lower()}, **extra}
