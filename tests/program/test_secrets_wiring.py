"""Secrets end to end in the real program under mocks (the offline plan): ModelNamespace,
GitHubSecrets and the images, with canary secret config that must never show in clear."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

from components.config import outputs as contract
from components.config.settings import SettingsError
from tests.support.canary import CANARY_CONFIG, CANARY_HF_TOKEN, CANARY_PIP_INDEX, CANARY_REGISTRY_PASSWORD
from tools.offline_plan import PlanResult, format_tree, run_plan

CANARY_TOKEN = CANARY_HF_TOKEN
CANARY_REGISTRY = CANARY_REGISTRY_PASSWORD
CANARIES = CANARY_CONFIG
SECRET = "kubernetes:core/v1:Secret"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
NAMESPACE = "kubernetes:core/v1:Namespace"
IMAGE = "docker-build:index:Image"
GH_SECRET = "github:index/actionsSecret:ActionsSecret"
GH_ENV_SECRET = "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
GH_VARIABLE = "github:index/actionsVariable:ActionsVariable"
GH_ENV_VARIABLE = "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"
CREDENTIAL = "civo:index/objectStoreCredential:ObjectStoreCredential"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SA_TOKEN = "kubernetes.io/service-account-token"
#: dev's model plus one served by hf-server (on a second GPU node): the stack builds both images.
WITH_HF_SERVER = {"gpuNodeCount": 2, "models": [
    {"name": "qwen-small", "repo": "Qwen/Qwen2.5-0.5B-Instruct", "revision": "7ae557604adf67be50417f59c2c2f167def9a775",
     "runtime": "vllm", "maxModelLen": 8192, "cpu": "4", "memory": "16Gi", "shmSize": "2Gi", "cacheSize": "20Gi"},
    {"name": "qwen-4bit", "repo": "Qwen/Qwen2.5-0.5B-Instruct", "revision": "7ae557604adf67be50417f59c2c2f167def9a775",
     "runtime": "hf-server", "quantization": "4bit", "cpu": "4", "memory": "16Gi", "cacheSize": "20Gi"},
]}


@pytest.fixture(scope="module")
def plans() -> Callable[..., PlanResult]:
    cache: dict[tuple, PlanResult] = {}

    def plan(stack: str = "dev", **overrides: object) -> PlanResult:
        key = (stack, json.dumps(overrides, sort_keys=True))
        if key not in cache:
            cache[key] = run_plan(stack, overrides=overrides, secrets=CANARIES)
        return cache[key]

    return plan


def _owned_by(plan: PlanResult, component: str) -> list:
    parent = next(r.urn for r in plan.resources if r.type == f"gpu-platform:index:{component}")
    return [r for r in plan.resources if r.parent == parent]


def _secret_values(record) -> dict[str, str]:
    assert is_rpc_secret(record.inputs["stringData"]), f"{record.name}: stringData is not a Pulumi secret"
    return unwrap_rpc_secret(record.inputs["stringData"])


def _secret_named(plan: PlanResult, name: str):
    return plan.one(SECRET, name)


def test_model_namespace_enforces_restricted_pod_security(plans) -> None:
    ns = plans().one(NAMESPACE, "platform-namespace")
    labels = ns.inputs["metadata"]["labels"]
    assert ns.inputs["metadata"]["name"] == "models"
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert labels["app.kubernetes.io/part-of"] == "gpu-platform"
    assert labels["app.kubernetes.io/managed-by"] == "pulumi"


def test_every_object_is_a_labelled_child_on_the_cluster_provider(plans) -> None:
    plan = plans()
    provider = plan.one("pulumi:providers:kubernetes")
    children = _owned_by(plan, "ModelNamespace")
    assert {r.type for r in children} == {NAMESPACE, SECRET, CONFIGMAP, NETWORK_POLICY}
    for record in children:
        assert record.provider.startswith(provider.urn), record.name
        labels = record.inputs["metadata"]["labels"]
        assert {"app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"} <= set(labels)
        if record.type != NAMESPACE:
            assert record.inputs["metadata"]["namespace"] == "models"


def test_s3_secret_holds_the_store_credential_as_a_pulumi_secret(plans) -> None:
    plan = plans()
    values = _secret_values(_secret_named(plan, "platform-s3"))
    credential = plan.one(CREDENTIAL)
    assert values == {"AWS_ACCESS_KEY_ID": credential.state["accessKeyId"],
                      "AWS_SECRET_ACCESS_KEY": credential.state["secretAccessKey"]}
    assert _secret_named(plan, "platform-s3").inputs["type"] == "Opaque"


def test_hf_token_secret_comes_from_the_secret_config(plans) -> None:
    values = _secret_values(_secret_named(plans(), "platform-hf-token"))
    assert values == {"HF_TOKEN": CANARY_TOKEN}


def test_pull_secret_is_a_dockerconfigjson_for_the_registry(plans) -> None:
    record = _secret_named(plans(), "platform-pull")
    assert record.inputs["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(_secret_values(record)[".dockerconfigjson"])
    entry = config["auths"]["ghcr.io"]
    assert entry["username"] == "acme-bot" and entry["password"] == CANARY_REGISTRY
    assert base64.b64decode(entry["auth"]).decode() == f"acme-bot:{CANARY_REGISTRY}"


def test_store_configmap_has_the_non_secret_settings(plans) -> None:
    plan = plans()
    data = plan.one(CONFIGMAP, "platform-store").inputs["data"]
    assert data == {"S3_ENDPOINT_URL": plan.raw_outputs[contract.MODEL_STORE_ENDPOINT],
                    "S3_BUCKET": plan.raw_outputs[contract.MODEL_BUCKET], "S3_PREFIX": "models/"}


#: A digest-pinned ref as CI would hand to a stack that does not build images itself.
DIGEST_REF = "ghcr.io/acme/gpu-platform/model-cache@sha256:" + "1" * 64
GATEWAY_REF = "ghcr.io/acme/gpu-platform/hub-gateway@sha256:" + "3" * 64


def test_no_token_and_no_registry_login_means_no_such_secrets(plans) -> None:
    plan = run_plan("dev", overrides={"githubRepository": None, "githubEnvironments": None,
                                      "registryUsername": None, "buildImages": False, "teams": [],
                                      "modelCacheImage": DIGEST_REF, "hubGateway": False}, secrets={})
    names = {r.name for r in plan.by_type(SECRET)}
    assert names == {"platform-s3"}
    assert plan.raw_outputs[contract.HF_TOKEN_SECRET] is None
    assert not [r for r in plan.resources if r.type.startswith("github:")]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_rendered_manifests_and_the_printed_plan_hold_no_plaintext(plans, stack: str) -> None:
    plan = plans(stack, buildImages=True, promoteImagesFrom=None)
    credential = plan.one(CREDENTIAL).state["secretAccessKey"]
    rendered = json.dumps(plan.manifests()) + format_tree(plan) + json.dumps(plan.outputs)
    for secret in (CANARY_TOKEN, CANARY_REGISTRY, CANARY_PIP_INDEX, credential,
                   base64.b64encode(CANARY_TOKEN.encode()).decode(),
                   base64.b64encode(f"acme-bot:{CANARY_REGISTRY}".encode()).decode()):
        assert secret not in rendered
    secrets = [m for m in plan.manifests() if m["kind"] == "Secret" and m["type"] != SA_TOKEN]
    # S3, HF token, registry pull; the hub-gateway's callers document and the team's gateway token.
    assert len(secrets) == 5
    for manifest in secrets:
        assert set(manifest["stringData"].values()) == {"[secret]"}
    # A team's token Secret is filled in by the cluster: the platform never writes a token into it.
    [token] = [m for m in plan.manifests() if m["kind"] == "Secret" and m["type"] == SA_TOKEN]
    assert "data" not in token and "stringData" not in token


def test_secret_outputs_are_namespace_slash_name_never_values(plans) -> None:
    plan = plans()
    s3 = plan.one(SECRET, "platform-s3").state["metadata"]["name"]
    hf = plan.one(SECRET, "platform-hf-token").state["metadata"]["name"]
    assert plan.raw_outputs[contract.S3_CREDENTIALS_SECRET] == f"models/{s3}"
    assert plan.raw_outputs[contract.HF_TOKEN_SECRET] == f"models/{hf}"
    assert plan.raw_outputs[contract.MODEL_NAMESPACE] == "models"
    assert CANARY_TOKEN not in json.dumps(plan.raw_outputs)


def test_github_secret_value_is_the_secret_config(plans) -> None:
    plan = plans("dev")
    [env_secret] = plan.by_type(GH_ENV_SECRET)
    assert env_secret.inputs["secretName"] == "HF_TOKEN" and env_secret.inputs["environment"] == "dev"
    assert env_secret.inputs["repository"] == "gpu-platform"
    assert is_rpc_secret(env_secret.inputs["value"]) and unwrap_rpc_secret(env_secret.inputs["value"]) == CANARY_TOKEN
    assert "value" in env_secret.additional_secret_outputs
    provider = plan.one("pulumi:providers:github", "github-provider")
    assert provider.inputs["owner"] == "acme"
    assert all(r.provider.startswith(provider.urn) for r in _owned_by(plan, "GitHubSecrets") if r is not provider)


def test_repository_level_values_belong_to_prod_only(plans) -> None:
    dev, prod = plans("dev"), plans("prod")

    def platform_secrets(plan: PlanResult) -> list:  # the teams' KUBECONFIG secrets are tested in tests/components
        return [r for r in plan.by_type(GH_SECRET) if "GitHubSecrets$" in r.urn]

    assert not platform_secrets(dev) and not dev.by_type(GH_VARIABLE)
    [repo_secret] = platform_secrets(prod)
    assert is_rpc_secret(repo_secret.inputs["value"]) and unwrap_rpc_secret(repo_secret.inputs["value"]) == CANARY_TOKEN
    assert {r.inputs["variableName"]: r.inputs["value"] for r in prod.by_type(GH_VARIABLE)} == {
        "REGISTRY": "ghcr.io", "IMAGE_REPOSITORY": "ghcr.io/acme/gpu-platform"}
    env_vars = {r.inputs["variableName"]: r.inputs["value"] for r in prod.by_type(GH_ENV_VARIABLE)}
    assert env_vars["MODEL_BUCKET"] == prod.raw_outputs[contract.MODEL_BUCKET]
    assert set(env_vars) == {"MODEL_BUCKET", "MODEL_STORE_ENDPOINT", "MODEL_PREFIX"}
    assert not any(is_rpc_secret(r.inputs["value"]) for r in prod.by_type(GH_ENV_VARIABLE))


def test_images_get_the_index_as_a_buildkit_secret_and_never_the_hf_token(plans) -> None:
    plan = plans("dev", buildImages=True, **WITH_HF_SERVER)
    images = plan.by_type(IMAGE)
    assert sorted(r.name for r in images) == ["hf-server-image", "hub-gateway-image", "model-cache-image"]
    for image in images:
        inputs = image.inputs
        assert is_rpc_secret(inputs["secrets"])
        # No image needs the Hugging Face token to build; the private index travels as a BuildKit secret.
        assert unwrap_rpc_secret(inputs["secrets"]) == {"pip_index": CANARY_PIP_INDEX}
        assert CANARY_TOKEN not in json.dumps(inputs, default=str)
        assert "pip" not in json.dumps(inputs.get("buildArgs") or {}).lower()
        assert not any("token" in k.lower() for k in (inputs.get("buildArgs") or {}))
        assert is_rpc_secret(inputs["registries"])  # the registry password makes the list secret
        [registry] = unwrap_rpc_secret(inputs["registries"])
        assert registry == {"address": "ghcr.io", "username": "acme-bot", "password": CANARY_REGISTRY}
        assert "secrets" in image.additional_secret_outputs


def test_images_push_with_registry_cache_labels_and_no_preview_build(plans) -> None:
    plan = plans("dev", buildImages=True, **WITH_HF_SERVER)
    for image in plan.by_type(IMAGE):
        name = image.name.removesuffix("-image")
        repo = f"ghcr.io/acme/gpu-platform/{name}"
        inputs = image.inputs
        assert inputs["push"] is True and inputs["buildOnPreview"] is False
        assert inputs["tags"][0].startswith(f"{repo}:")
        assert inputs["cacheFrom"] == [{"registry": {"ref": f"{repo}:buildcache"}}]
        [cache_to] = inputs["cacheTo"]
        assert cache_to["registry"]["ref"] == f"{repo}:buildcache" and cache_to["registry"]["mode"] == "max"
        assert inputs["ignoreSecretsInDiffCalculation"] == ["pip_index"]
        assert inputs["platforms"] == ["linux/amd64"]
        assert inputs["labels"]["org.opencontainers.image.source"] == "https://github.com/acme/gpu-platform"
        assert "org.opencontainers.image.revision" in inputs["labels"]
        # The hub-gateway's context is images/: it installs model-cache too.
        assert inputs["context"]["location"] == ("images" if name == "hub-gateway" else f"images/{name}")
    refs = plan.raw_outputs[contract.IMAGES]
    assert set(refs) == {"model-cache", "hf-server", "hub-gateway"}
    for name, ref in refs.items():
        assert ref.startswith(f"ghcr.io/acme/gpu-platform/{name}@sha256:")
    assert contract.IMAGES not in plan.secret_outputs


def test_without_build_images_the_images_output_is_the_configured_refs(plans) -> None:
    plan = plans("dev", buildImages=False, modelCacheImage=DIGEST_REF, hubGatewayImage=GATEWAY_REF)
    assert not plan.by_type(IMAGE)
    assert plan.raw_outputs[contract.IMAGES] == {"model-cache": DIGEST_REF, "hub-gateway": GATEWAY_REF}
    bare = run_plan("dev", overrides={"models": [], "teams": [], "buildImages": False, "hubGateway": False},
                    secrets=CANARIES)
    assert bare.raw_outputs[contract.IMAGES] == {}


def test_images_built_by_the_stack_win_over_configured_refs(plans) -> None:
    refs = plans("dev", buildImages=True, modelCacheImage=DIGEST_REF).raw_outputs[contract.IMAGES]
    assert refs["model-cache"] != DIGEST_REF
    assert refs["model-cache"].startswith("ghcr.io/acme/gpu-platform/model-cache@sha256:")


@pytest.mark.parametrize(("overrides", "secrets", "needle"), [
    ({}, {"registryPassword": "x"}, "pulumi config set --secret hfToken"),
    ({"githubRepository": "not a repo"}, CANARIES, "githubRepository"),
    ({"githubRepository": "-bad-/repo"}, CANARIES, "<owner>/<repo>"),
    ({"buildImages": True, "registryUsername": None}, CANARIES, "registryPassword"),
    ({"buildImages": True}, {"hfToken": "x"}, "pulumi config set --secret registryPassword"),
])
def test_bad_input_fails_before_any_resource(overrides: dict, secrets: dict, needle: str) -> None:
    with pytest.raises(SettingsError) as caught:
        run_plan("dev", overrides=overrides, secrets=secrets)
    assert needle in str(caught.value)


def test_building_images_needs_no_hf_token() -> None:
    plan = run_plan("dev", overrides={"buildImages": True, "githubRepository": None, "githubEnvironments": None},
                    secrets={"registryPassword": "x"})
    for image in plan.by_type(IMAGE):
        assert "secrets" not in image.inputs or not unwrap_rpc_secret(image.inputs["secrets"])
