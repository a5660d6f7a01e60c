"""The pack loads as Pulumi loads it, and answers the engine's calls over gRPC.

Pulumi runs a Python pack as ``<venv>/bin/python <pack dir> <engine address>`` from the project
directory; the PolicyPack constructed in ``__main__`` starts the SDK's analyzer server on
127.0.0.1 and prints its port. These tests do the same (under ``timeout``, so the server stops by
itself even if a test dies), then call it as the engine does: GetAnalyzerInfo, Configure, Analyze
with a real recorded resource (secrets wrapped as the engine marshals them), AnalyzeStack.
"""

from __future__ import annotations

import copy
import json
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import jsonschema
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from gpu_platform_policy import PACK_NAME
from gpu_platform_policy.rules import build_policies
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi.runtime.rpc import unwrap_rpc_secret
from pulumi_policy import EnforcementLevel

from tests.policy.adapter import (
    STACK_TYPE,
    admin_kubeconfig,
    outputs_with,
    root_stack_urn,
    stack_outputs_wire,
)
from tests.policy.conftest import POLICY_DIR
from tools.offline_plan import REPO, PlanResult
from tools.plan_mocks import ResourceRecord

SERVER_LIFETIME_S = 120
LEVELS = {EnforcementLevel.MANDATORY: analyzer_pb2.MANDATORY, EnforcementLevel.ADVISORY: analyzer_pb2.ADVISORY}


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    proc = subprocess.Popen(["timeout", str(SERVER_LIFETIME_S), sys.executable, "-u", str(POLICY_DIR),
                             "127.0.0.1:0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline().strip() if ready else ""  # type: ignore[union-attr]
        if not line.isdigit():
            proc.kill()
            pytest.fail(f"the pack did not print its port: {line!r} {proc.stderr.read()}")  # type: ignore[union-attr]
        with grpc.insecure_channel(f"127.0.0.1:{line}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def analyze_request(record: ResourceRecord) -> analyzer_pb2.AnalyzeRequest:
    return analyzer_pb2.AnalyzeRequest(
        type=record.type, urn=record.urn, name=record.name, properties=struct(record.inputs),
        options=analyzer_pb2.AnalyzerResourceOptions(protect=record.protect, parent=record.parent))


def stack_request(plan: PlanResult, outputs: dict[str, Any]) -> analyzer_pb2.AnalyzeStackRequest:
    root = root_stack_urn(plan.stack)
    resources = [analyzer_pb2.AnalyzerResource(type=STACK_TYPE, urn=root, name=root.rsplit("::", 1)[-1],
                                               properties=struct(stack_outputs_wire(plan, outputs)))]
    resources += [analyzer_pb2.AnalyzerResource(type=r.type, urn=r.urn, name=r.name, parent=r.parent,
                                                properties=struct(r.state or r.inputs),
                                                options=analyzer_pb2.AnalyzerResourceOptions(protect=r.protect))
                  for r in plan.resources]
    return analyzer_pb2.AnalyzeStackRequest(resources=resources)


def configure(analyzer: analyzer_pb2_grpc.AnalyzerStub, config: dict[str, dict[str, Any]]) -> None:
    levels = {p.name: LEVELS[p.enforcement_level] for p in build_policies()}  # type: ignore[index]
    analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={
        name: analyzer_pb2.PolicyConfig(enforcementLevel=levels[name], properties=struct(props))
        for name, props in config.items()}))


def test_pack_describes_its_policies(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    expected = {p.name: p for p in build_policies()}
    names = [p.name for p in info.policies]
    assert info.name == PACK_NAME and info.supportsConfig
    assert len(names) == len(set(names)) and set(names) == set(expected)
    for policy in info.policies:
        assert policy.enforcementLevel == LEVELS[expected[policy.name].enforcement_level]  # type: ignore[index]
        properties = json_format.MessageToDict(policy.configSchema.properties)
        # As the engine does (plugin.convertConfigSchema), then validate the way the CLI validates config.
        full = {"type": "object", "additionalProperties": False, "properties": {
            **properties, "enforcementLevel": {"type": "string", "enum": ["advisory", "mandatory", "remediate", "disabled"]}}}
        jsonschema.Draft7Validator.check_schema(full)
        defaults = {key: prop["default"] for key, prop in properties.items()}
        jsonschema.validate(defaults, full)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"enforcementLevel": "sometimes"}, full)


def test_analyze_sees_plaintext_through_the_engine_path(analyzer: analyzer_pb2_grpc.AnalyzerStub,
                                                        stack_plan: Callable[[str], PlanResult]) -> None:
    """The secret markers work in the real server: a Pulumi secret passes, the same value in plaintext fails."""
    configure(analyzer, {})
    record = stack_plan("dev").one("kubernetes:core/v1:Secret", "platform-s3")
    assert analyzer.Analyze(analyze_request(record)).diagnostics == []
    plaintext = copy.deepcopy(record)
    plaintext.inputs["stringData"] = unwrap_rpc_secret(plaintext.inputs["stringData"])
    diagnostics = analyzer.Analyze(analyze_request(plaintext)).diagnostics
    assert [(d.policyName, d.enforcementLevel) for d in diagnostics] == [
        ("secrets-are-pulumi-secrets", analyzer_pb2.MANDATORY)]
    assert "'platform-s3'" in diagnostics[0].message and "offline-" not in diagnostics[0].message


def test_analyze_stack_and_policy_config(analyzer: analyzer_pb2_grpc.AnalyzerStub,
                                         stack_plan: Callable[[str], PlanResult]) -> None:
    plan = stack_plan("prod")
    request = stack_request(plan, outputs_with(plan, kubeconfig=admin_kubeconfig(plan)))
    configure(analyzer, {})
    found = {(d.policyName, d.urn.rsplit("::", 1)[-1]) for d in analyzer.AnalyzeStack(request).diagnostics}
    assert found == {("prod-no-kubeconfig-output", "gpu-platform-prod"),
                     ("network-policy-per-namespace", "gpu-gpu-operator-ns")}
    configure(analyzer, {"prod-no-kubeconfig-output": {"allowKubeconfigOutput": True},
                         "network-policy-per-namespace": {"exemptNamespaces": ["gpu-operator"]}})
    try:
        assert list(analyzer.AnalyzeStack(request).diagnostics) == []
    finally:
        configure(analyzer, {})


def test_policy_config_file_example_is_valid() -> None:
    """docs/policy.md's example config (policy/config.example.json) fits the schemas the pack publishes."""
    example = json.loads((POLICY_DIR / "config.example.json").read_text())
    policies = {p.name: p for p in build_policies()}
    for name, config in example.items():
        assert name in policies, f"{name} is not a policy of the pack"
        properties = policies[name].config_schema.properties  # type: ignore[union-attr]
        jsonschema.validate(config, {"type": "object", "additionalProperties": False, "properties": {
            **properties, "enforcementLevel": {"type": "string", "enum": ["advisory", "mandatory", "remediate", "disabled"]}}})
