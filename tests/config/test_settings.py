"""Settings: every key parsed once, bad values rejected together, each with its fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import catalog
from components.config.settings import DEFAULTS, SettingsError
from tests.support.config import load, problems_of

REPO = Path(__file__).resolve().parents[2]


def test_defaults_make_a_valid_dev_stack() -> None:
    settings = load({})  # with a pinned hub-gateway image: the only image a stack without models runs
    assert settings.environment == "dev"
    assert settings.cluster.region == "LON1"
    assert settings.cluster.gpu_size.is_gpu
    assert settings.store.protect is False
    assert settings.name_prefix == "gpu-platform-test"


def test_prod_protects_data_even_without_the_flag() -> None:
    settings = load({"environment": "prod", "apiAllowedCidrs": ["198.51.100.0/24"]})
    assert settings.is_prod and settings.store.protect is True


def test_settings_are_frozen() -> None:
    settings = load({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.cluster.gpu_node_count = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("values", "key", "needle"),
    [
        ({"region": "AMS3"}, "region", "known: LON1"),
        ({"region": "FRA1"}, "region", "GPU Kubernetes only in LON1"),
        ({"environment": "qa"}, "environment", "must be one of dev, staging, prod"),
        ({"gpuNodeSize": "g4s.kube.large"}, "gpuNodeSize", "CPU-only size"),
        ({"gpuNodeSize": "an.g1.l40s.x1"}, "gpuNodeSize", "unknown GPU node size"),
        ({"systemNodeSize": "an.g1.l40s.kube.x1"}, "systemNodeSize", "is a GPU size"),
        ({"gpuNodeCount": 0}, "gpuNodeCount", "between 1 and 20"),
        ({"systemNodeCount": 2.5}, "systemNodeCount", "whole number"),
        ({"gpuNodeCount": "three"}, "gpuNodeCount", "must be JSON"),
        ({"kubernetesVersion": "1.32"}, "kubernetesVersion", "must look like 1.32.5-k3s1"),
        ({"kubernetesVersion": "1.32.5-k3s1-gpu"}, "kubernetesVersion", "'-gpu' k3s labels are rejected"),
        ({"kubernetesVersion": "1.20.0-k3s1"}, "kubernetesVersion", "not an offered version"),
        ({"apiAllowedCidrs": ["10.0.0.300/8"]}, "apiAllowedCidrs", "not a valid CIDR"),
        ({"apiAllowedCidrs": ["10.1.2.3/8"]}, "apiAllowedCidrs", "host bits"),
        ({"apiAllowedCidrs": []}, "apiAllowedCidrs", "at least one CIDR"),
        ({"environment": "prod"}, "apiAllowedCidrs", "admit the whole IPv4 internet to the Kubernetes API"),
        ({"bucketMaxSizeGb": 750}, "bucketMaxSizeGb", "steps of 500"),
        ({"bucketMaxSizeGb": 100}, "bucketMaxSizeGb", "between 500 and 10000"),
        ({"modelPrefix": "/models"}, "modelPrefix", "relative key prefix ending in '/'"),
        ({"modelPrefix": "a/../b/"}, "modelPrefix", "without '..'"),
        ({"cni": "calico"}, "cni", "must be one of cilium, flannel"),
        ({"modelNamespace": "Models_NS"}, "modelNamespace", "DNS label"),
        ({"githubRepository": "acme"}, "githubRepository", "<owner>/<repo>"),
        ({"githubRepository": "-acme-/repo"}, "githubRepository", "<owner>/<repo>"),
        ({"githubEnvironments": ["dev"]}, "githubEnvironments", "needs githubRepository"),
        ({"allowPublicApiAccess": "yes", "environment": "prod"}, "allowPublicApiAccess", "true or false"),
        ({"gpuOperatorVersion": "25.10"}, "gpuOperatorVersion", "like v25.10.1"),
        ({"buildImages": True}, "imageRepository", "need a repository"),
        ({"imageRepository": "GHCR.io/Acme Repo"}, "imageRepository", "<registry>/<path>"),
    ],
)
def test_bad_value_is_rejected_with_key_value_and_fix(values: dict[str, Any], key: str, needle: str) -> None:
    problems = problems_of(values)
    mine = [p for p in problems if p.startswith(f"gpu-platform:{key} ")]
    assert mine, f"no problem reported for {key}: {problems}"
    assert any(needle in p for p in mine), mine
    assert all("Fix:" in p for p in mine)


def test_all_problems_are_reported_at_once() -> None:
    problems = problems_of({"region": "NOPE", "gpuNodeCount": 99, "bucketMaxSizeGb": 501, "cni": "x"})
    keys = {p.split(" ", 1)[0] for p in problems}
    assert {"gpu-platform:region", "gpu-platform:gpuNodeCount", "gpu-platform:bucketMaxSizeGb",
            "gpu-platform:cni"} <= keys
    message = str(SettingsError(problems))
    assert message.startswith(f"invalid stack configuration ({len(problems)} problem(s))")


def test_prod_accepts_public_api_only_with_explicit_override() -> None:
    settings = load({"environment": "prod", "allowPublicApiAccess": True})
    assert settings.cluster.api_allowed_cidrs == ("0.0.0.0/0",)


def test_github_repository_needs_the_hf_token() -> None:
    problems = problems_of({"githubRepository": "acme/gpu-platform"})
    assert any("pulumi config set --secret hfToken" in p for p in problems)
    settings = load({"githubRepository": "acme/gpu-platform"}, secrets={"hfToken": "hf_placeholder"})
    assert settings.github is not None and settings.github.repository == "gpu-platform"


def test_building_images_needs_registry_credentials() -> None:
    problems = problems_of({"buildImages": True, "imageRepository": "ghcr.io/acme/gpu-platform"})
    assert any(p.startswith("gpu-platform:registryUsername") and "registryPassword" in p for p in problems)


def test_region_is_case_insensitive() -> None:
    assert load({"region": "lon1"}).cluster.region == "LON1"


def _declared_config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]


def test_pulumi_yaml_declares_every_plain_key_with_the_same_default() -> None:
    declared = _declared_config()
    undeclared_on_purpose = {"models", "teams"}  # lists of objects: Pulumi.yaml's types cannot express it
    assert set(declared) == set(DEFAULTS) - undeclared_on_purpose
    for key, decl in declared.items():
        assert decl["default"] == DEFAULTS[key], key
        assert decl["description"], key
        expected_type = {bool: "boolean", int: "integer", str: "string", list: "array"}[type(DEFAULTS[key])]
        assert decl["type"] == expected_type, key


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stack_files_are_valid(stack: str) -> None:
    raw = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    # Every Kubernetes and Civo resource names its provider: none may fall back to ambient settings.
    assert raw["pulumi:disable-default-providers"] == ["kubernetes", "civo"]
    values = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("gpu-platform:")}
    settings = load(values, secrets={"hfToken": "hf_placeholder", "registryPassword": "placeholder"})
    assert settings.environment == stack
    assert catalog.REGIONS[settings.cluster.region].gpu_kubernetes


@pytest.mark.parametrize(
    ("values", "key", "needle"),
    [
        ({"promoteImagesFrom": "dev"}, "promoteImagesFrom", "must name a stack as <org>/<project>/<stack>"),
        ({"promoteImagesFrom": "acme/other-project/dev"}, "promoteImagesFrom", "must be a stack of this project"),
        ({"promoteImagesFrom": "acme/gpu-platform/test"}, "promoteImagesFrom", "names this stack itself"),
        ({"promoteImagesFrom": "acme/gpu-platform/dev", "buildImages": True, "imageRepository": "ghcr.io/a/b",
          "registryUsername": "bot"}, "promoteImagesFrom", "cannot be combined with buildImages true"),
        ({"gpuFirstPoolNodeCount": 3, "gpuNodeCount": 2}, "gpuFirstPoolNodeCount", "cannot hold more nodes"),
        ({"gpuFirstPoolNodeCount": 0}, "gpuFirstPoolNodeCount", "between 1 and 20"),
        ({"gpuRuntimeClass": "NVIDIA_runtime"}, "gpuRuntimeClass", "must be a RuntimeClass name"),
        ({"publishImages": ["vllm"]}, "publishImages", "must be one of model-cache, hf-server"),
    ],
)
def test_day_two_keys_are_checked_with_a_fix(values: dict[str, Any], key: str, needle: str) -> None:
    found = problems_of(values, secrets={"hfToken": "hf_x", "registryPassword": "x"})
    mine = [p for p in found if p.startswith(f"gpu-platform:{key} = ")]
    assert len(mine) == 1 and needle in mine[0] and "Fix: " in mine[0], found


def test_day_two_defaults_and_values() -> None:
    settings = load({})
    assert settings.cluster.gpu_runtime_class == "nvidia"
    assert settings.cluster.gpu_pool_node_counts == (1,)
    assert settings.images.promote_from is None
    grown = load({"gpuNodeCount": 4, "gpuFirstPoolNodeCount": 2, "gpuRuntimeClass": ""})
    assert grown.cluster.gpu_pool_node_counts == (2, 1, 1)
    assert grown.cluster.gpu_runtime_class is None  # empty: the node's default runtime
    assert load({"publishImages": ["hf-server"]}).images.publish == ("hf-server",)


def test_promoted_images_need_no_image_keys() -> None:
    models = [{"name": "qwen", "repo": "Qwen/Qwen2.5-0.5B-Instruct"}]
    promoted = load({"models": models, "promoteImagesFrom": "acme/gpu-platform/dev", "hubGatewayImage": None})
    assert promoted.images.promote_from == "acme/gpu-platform/dev" and promoted.model_images == {}
    assert any("modelCacheImage is not set" in p for p in problems_of({"models": models}))


def test_the_hub_gateway_needs_an_image_source_like_every_image() -> None:
    problems = problems_of({"hubGatewayImage": None})
    assert len(problems) == 1 and problems[0].startswith("gpu-platform:hubGatewayImage is not set")
    assert "set buildImages true" in problems[0]
    assert load({"hubGatewayImage": None, "hubGateway": False}).hub_gateway.enabled is False
    settings = load({"hubGatewayReplicas": 2, "hubGatewayAllowRepos": ["acme/*", "gpt2"]})
    assert settings.hub_gateway.replicas == 2 and settings.hub_gateway.allow_repos == ("acme/*", "gpt2")
