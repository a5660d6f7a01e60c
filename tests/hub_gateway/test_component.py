"""HubGateway under Pulumi's mock runtime: what each Kubernetes object gets, and the endpoint output.

Self-contained: the mocks echo inputs back as outputs (what the Kubernetes provider does for
these objects) and give Services their fixed name, so the test needs neither a cluster nor
the offline plan.
"""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.sync_await import _sync_await

from components.hub_gateway import CALLERS_KEY, PORT, RUN_AS_USER, HubGateway, HubGatewayArgs

NAMESPACE = "platform"
IMAGE = "ghcr.io/acme/gpu-platform/hub-gateway@sha256:" + "c" * 64


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        outputs = dict(args.inputs)
        meta = dict(outputs.get("metadata") or {})
        meta.setdefault("name", f"{args.name}-abc123")  # Kubernetes auto-naming, as the provider does
        outputs["metadata"] = meta
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


def render(**overrides: Any) -> tuple[Mocks, dict[str, dict], str]:
    mocks = Mocks()
    runtime_settings.set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(mocks, project="gpu-platform", stack="test", preview=False)
    args = HubGatewayArgs(**{
        "namespace": NAMESPACE, "image": IMAGE, "s3_secret_name": "s3-abc", "store_config_name": "store-abc",
        "callers_secret_name": "callers-abc", "hf_token_secret_name": "hf-abc",
        "allow_repos": ("Qwen/Qwen2.5-0.5B-Instruct",), "caller_namespaces": ("team-a", "team-b"),
        **overrides})
    holder: dict[str, Any] = {}

    def program() -> None:
        gw = HubGateway("hub-gateway", args)
        holder["endpoint"] = gw.endpoint
        holder["children"] = [gw.deployment, gw.service, gw.pdb, gw.network_policy, gw.service_account]

    _sync_await(pulumi.runtime.stack.run_pulumi_func(program))  # registers everything
    endpoint = _output_value(holder["endpoint"])
    urns = [_output_value(child.urn) for child in holder["children"]]
    assert all("gpu-platform:index:HubGateway$kubernetes:" in urn for urn in urns), urns  # parent=self
    by_kind = {a.typ.rsplit(":", 1)[-1]: a.inputs for a in mocks.resources if a.typ.startswith("kubernetes:")}
    return mocks, by_kind, endpoint


def _output_value(output: pulumi.Output) -> Any:
    return _sync_await(output.future())


def test_objects_and_endpoint():
    mocks, objs, endpoint = render()
    assert endpoint == f"http://hub-gateway.{NAMESPACE}.svc.cluster.local:{PORT}"
    assert set(objs) == {"ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}
    # Every child is parented to the component.
    component = next(a for a in mocks.resources if a.typ == "gpu-platform:index:HubGateway")
    assert component.name == "hub-gateway"
    for a in mocks.resources:
        if a.typ.startswith("kubernetes:"):
            assert a.inputs["metadata"]["namespace"] == NAMESPACE
            assert a.inputs["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gpu-platform"
    svc = objs["Service"]
    assert svc["metadata"]["name"] == "hub-gateway"
    assert svc["spec"]["ports"] == [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]


def test_pod_is_hardened_on_the_cpu_pool_with_probes():
    _, objs, _ = render()
    dep = objs["Deployment"]
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = dep["spec"]["template"]["spec"]
    # No selector: the inline (CPU) pool carries no label (pulumi-civo never reads it back); tolerating
    # nothing keeps the gateway off the tainted GPU pool.
    assert not pod.get("nodeSelector")
    assert "tolerations" not in pod
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == RUN_AS_USER
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    (c,) = pod["containers"]
    assert c["image"] == IMAGE
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp", "/etc/hub-gateway/callers"}
    callers = next(v for v in pod["volumes"] if v["name"] == "callers")
    assert callers["secret"]["secretName"] == "callers-abc"
    assert callers["secret"]["items"] == [{"key": CALLERS_KEY, "path": CALLERS_KEY}]
    assert dep["metadata"]["annotations"]["checkov.io/skip1"].startswith("CKV_K8S_35=")


def test_secrets_by_reference_only_and_the_allow_list():
    _, objs, _ = render()
    env = {e["name"]: e for e in objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-abc", "key": "HF_TOKEN"}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-abc"
    assert env["S3_BUCKET"]["valueFrom"]["configMapKeyRef"]["name"] == "store-abc"
    assert env["GATEWAY_ALLOW_REPOS"]["value"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert env["GATEWAY_CALLERS_FILE"]["value"] == f"/etc/hub-gateway/callers/{CALLERS_KEY}"
    assert all("value" not in e or e["name"] not in ("HF_TOKEN", "AWS_SECRET_ACCESS_KEY") for e in env.values())
    # Without an HF token Secret the gateway still mirrors the bucket.
    _, objs, _ = render(hf_token_secret_name=None)
    names = {e["name"] for e in objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "HF_TOKEN" not in names


def test_network_policy_admits_the_team_namespaces_and_its_own_only():
    _, objs, _ = render()
    spec = objs["NetworkPolicy"]["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": PORT}]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["platform", "team-a", "team-b"]}]
    egress_ports = sorted(p["port"] for r in spec["egress"] for p in r["ports"])
    assert egress_ports == [53, 53, 443]


def test_pdb_and_single_replica():
    _, objs, _ = render(replicas=1)
    assert objs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert "topologySpreadConstraints" not in objs["Deployment"]["spec"]["template"]["spec"]


@pytest.mark.parametrize(("overrides", "says"), [
    ({"replicas": 0}, "replicas=0"),
    ({"allow_repos": ("acme/x/y",)}, "allow_repos entry 'acme/x/y'"),
    ({"caller_namespaces": ("Team_A",)}, "caller_namespaces entry 'Team_A'"),
    ({"hf_endpoint": "huggingface.co"}, "hf_endpoint"),
])
def test_bad_args_are_refused_before_anything_is_registered(overrides, says):
    args = HubGatewayArgs(namespace="x", image=IMAGE, s3_secret_name="s", store_config_name="c",
                          callers_secret_name="k", **overrides)
    with pytest.raises(ValueError, match=re.escape(says)):
        HubGateway("gw", args)
