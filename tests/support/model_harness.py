"""Run ModelDeployment alone under the offline plan's mocks, with literal Secret/ConfigMap names.

The component takes its inputs by name, so these tests need neither ModelNamespace nor the
cluster: they register one ModelDeployment and read back what each Kubernetes object got.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from components.cluster import gpu_node_selector, gpu_tolerations
from components.config.types import ModelSettings
from components.model_deployment import ModelDeployment, ModelDeploymentArgs
from components.model_pod import PodSources
from tests.support.mocks import register, resolve
from tools.offline_plan import is_kubernetes_object, render_manifest
from tools.plan_mocks import ResourceRecord

NAMESPACE = "models"
S3_SECRET = "s3-credentials-abc"
HF_SECRET = "hf-token-abc"
STORE_CONFIG = "model-store-abc"
PULL_SECRET = "ghcr-pull-abc"
MODEL_CACHE_IMAGE = "ghcr.io/acme/gpu-platform/model-cache@sha256:" + "a" * 64
HF_SERVER_IMAGE = "ghcr.io/acme/gpu-platform/hf-server@sha256:" + "b" * 64

SMALL = ModelSettings(name="qwen-small", repo="Qwen/Qwen2.5-0.5B-Instruct",
                      revision="7ae557604adf67be50417f59c2c2f167def9a775")


@dataclass
class Rendered:
    records: list[ResourceRecord]
    url: str

    def manifests(self) -> list[dict[str, Any]]:
        return [render_manifest(r) for r in self.records if is_kubernetes_object(r)]

    def one(self, kind: str) -> dict[str, Any]:
        found = [m for m in self.manifests() if m["kind"] == kind]
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    def record(self, kind: str) -> ResourceRecord:
        found = [r for r in self.records if r.type.endswith(f":{kind}")]
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    def kinds(self) -> list[str]:
        return [m["kind"] for m in self.manifests()]


def render(model: ModelSettings = SMALL, **overrides: Any) -> Rendered:
    """Register one ModelDeployment under mocks and return what the engine saw."""
    sources = PodSources(
        s3_secret_name=S3_SECRET,
        store_config_name=STORE_CONFIG,
        model_cache_image=MODEL_CACHE_IMAGE,
        hf_server_image=HF_SERVER_IMAGE,
        hf_token_secret_name=HF_SECRET,
        pull_secret_name=PULL_SECRET,
        node_selector=gpu_node_selector(),
        tolerations=gpu_tolerations(),
    )
    args = ModelDeploymentArgs(model=model, namespace=NAMESPACE, sources=replace(sources, **overrides))
    deployment, records = register(lambda: ModelDeployment(f"model-{model.name}", args),  # as __main__.py names it
                                   stack="test")
    return Rendered(records, resolve(deployment.url))


def model(**changes: Any) -> ModelSettings:
    return replace(SMALL, **changes)
