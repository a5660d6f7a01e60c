"""The ``models`` config: every bad entry is one clear problem naming the model and the field,
reported with all other config problems before any resource is registered."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from components.config.settings import SettingsError
from components.config.types import ModelSettings
from components.kubernetes import parse_quantity
from tests.support.config import load as load_values

SHA = "a09a35458c702b33eeacc393d103063234e8bc28"
CACHE_IMAGE = "ghcr.io/acme/gpu-platform/model-cache@sha256:" + "1" * 64
HF_IMAGE = "ghcr.io/acme/gpu-platform/hf-server:v1@sha256:" + "2" * 64
PROD = {"environment": "prod", "apiAllowedCidrs": ["198.51.100.0/24"]}


def load(models: Any, base: dict[str, Any] | None = None, secrets: dict[str, str] | None = None):
    values = {"modelCacheImage": CACHE_IMAGE, "hfServerImage": HF_IMAGE, **(base or {}), "models": models}
    # load_values adds the pinned hub-gateway image (the gateway is on by default).
    return load_values(values, secrets)


def problems(models: Any, base: dict[str, Any] | None = None, secrets: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(models, base, secrets)
    return caught.value.problems


def entry(**fields: Any) -> dict[str, Any]:
    return {"name": "qwen", "repo": "Qwen/Qwen2.5-0.5B-Instruct", **fields}


def only_problem(models: Any, base: dict[str, Any] | None = None, secrets: dict[str, str] | None = None) -> str:
    found = problems(models, base, secrets)
    assert len(found) == 1, found
    return found[0]


def test_minimal_entry_gets_the_documented_defaults() -> None:
    [model] = load([entry()]).models
    assert model == ModelSettings(name="qwen", repo="Qwen/Qwen2.5-0.5B-Instruct")
    assert (model.runtime, model.gpus, model.replicas, model.revision) == ("vllm", 1, 1, "main")
    assert (model.max_surge, model.max_unavailable, model.cache, model.warm_cache) == (0, 1, "emptyDir", True)
    assert dataclasses.is_dataclass(model) and model.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_no_models_is_valid() -> None:
    assert load([]).models == ()


def test_full_entry_is_parsed() -> None:
    [model] = load([entry(revision=SHA, runtime="vllm", gpus=2, replicas=1, maxModelLen=8192,
                          extraArgs=["--gpu-memory-utilization", "0.9"], allowPatterns=["*.json", "*.safetensors"],
                          ignorePatterns=["*.bin"], cpu="6", memory="48Gi", shmSize="16Gi", cacheSize="150Gi",
                          warmCache=False, maxSurge=0, maxUnavailable=1, terminationGracePeriodSeconds=60,
                          startupTimeoutSeconds=3600)],
                   {"gpuNodeSize": "an.g1.l40s.kube.x2"}).models
    assert model.gpus == 2 and model.max_model_len == 8192 and model.extra_args == ("--gpu-memory-utilization", "0.9")
    assert model.allow_patterns == ("*.json", "*.safetensors") and model.ignore_patterns == ("*.bin",)
    assert (model.cpu, model.memory, model.shm_size, model.cache_size) == ("6", "48Gi", "16Gi", "150Gi")
    assert model.warm_cache is False and model.startup_timeout_seconds == 3600


def test_hf_server_entry_with_quantization() -> None:
    [model] = load([entry(runtime="hf-server", quantization="4bit")]).models
    assert model.runtime == "hf-server" and model.quantization == "4bit"


def test_unknown_runtime() -> None:
    text = only_problem([entry(runtime="tgi")])
    assert text.startswith("gpu-platform:models[0] (name 'qwen'): runtime = 'tgi'")
    assert "vllm, hf-server" in text


def test_more_gpus_than_a_gpu_node_has() -> None:
    text = only_problem([entry(name="llama", repo="meta-llama/Llama-3.1-8B-Instruct", gpus=4)])
    assert text.startswith("gpu-platform:models[0] (name 'llama'): gpus = 4")
    assert "an.g1.l40s.kube.x1 node has 1 GPU" in text and "Fix:" in text


def test_gpus_fit_a_larger_node() -> None:
    [model] = load([entry(gpus=4)], {"gpuNodeSize": "an.g1.h100.kube.x4"}).models
    assert model.gpus == 4


@pytest.mark.parametrize("repo", ["gpt2", "bert-base-uncased", "openai-community/gpt2"])
def test_root_level_and_owner_repo_ids_are_accepted(repo: str) -> None:
    [model] = load([entry(repo=repo)]).models
    assert model.repo == repo


@pytest.mark.parametrize("repo", ["a/b/c", "https://huggingface.co/Qwen/x", "../etc/passwd", "o/n--x",
                                  "owner/na me", "/abs/path", "owner/name.git", ""])
def test_bad_repo_id(repo: str) -> None:
    text = only_problem([entry(repo=repo)])
    assert "models[0] (name 'qwen'): repo = " in text


def test_missing_repo_and_name() -> None:
    found = problems([{"revision": "main"}])
    assert any("models[0]: name = null: is required" in p for p in found)
    assert any("models[0]: repo = null: is required" in p for p in found)


def test_duplicate_names() -> None:
    text = only_problem([entry(), entry(repo="Qwen/Qwen3-8B")])
    assert text.startswith("gpu-platform:models[1] (name 'qwen'): name = 'qwen': duplicates models[0].name")


@pytest.mark.parametrize("name", ["Qwen", "1qwen", "qwen_small", "qwen.small", "-qwen", "qwen-", "q" * 41])
def test_name_must_be_a_dns_1035_label(name: str) -> None:
    text = only_problem([entry(name=name)])
    assert f"name = '{name}': must be a DNS-1035 label" in text


def test_prod_needs_a_pinned_revision() -> None:
    text = only_problem([entry()], PROD)
    assert text.startswith("gpu-platform:models[0] (name 'qwen'): revision = (not set): prod must pin")


@pytest.mark.parametrize("revision", ["main", "master", "refs/heads/main", "refs/pr/3"])
def test_prod_refuses_moving_branches(revision: str) -> None:
    assert f"revision = '{revision}': prod must pin" in only_problem([entry(revision=revision)], PROD)


@pytest.mark.parametrize("revision", [SHA, "v1.0", "2024-06-release"])
def test_prod_accepts_a_commit_or_a_tag(revision: str) -> None:
    assert load([entry(revision=revision)], PROD).models[0].revision == revision


def test_dev_may_follow_main() -> None:
    assert load([entry(revision="main")]).models[0].revision == "main"


@pytest.mark.parametrize("revision", ["../x", "a b", "/main", SHA.upper()])
def test_bad_revision(revision: str) -> None:
    assert f"revision = '{revision}'" in only_problem([entry(revision=revision)])


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("replicas", 0, "between 1 and 20"),
    ("replicas", 21, "between 1 and 20"),
    ("replicas", "2", "whole number"),
    ("maxModelLen", 64, "between 128 and 1048576"),
    ("maxModelLen", 2_000_000, "between 128 and 1048576"),
    ("startupTimeoutSeconds", 10, "between 60 and 14400"),
    ("terminationGracePeriodSeconds", -1, "between 0 and 3600"),
    ("cpu", "lots", "Kubernetes quantity"),
    ("cpu", "64", "CPUs of a an.g1.l40s.kube.x1 node"),
    ("memory", "512Gi", "RAM of a an.g1.l40s.kube.x1 node"),
    ("memory", "512Mi", "between 1Gi"),
    ("cacheSize", "10Ti", "disk of a an.g1.l40s.kube.x1 node"),
    ("gpus", 0, "at least 1"),
    ("gpus", 1.5, "at least 1"),
    ("warmCache", "yes", "true or false"),
])
def test_bounds(field: str, value: Any, needle: str) -> None:
    text = only_problem([entry(**{field: value})])
    assert f"models[0] (name 'qwen'): {field} = " in text and needle in text, text


@pytest.mark.parametrize(("field", "value"), [
    ("allowPatterns", "*.safetensors"),
    ("allowPatterns", ["*.json", 3]),
    ("ignorePatterns", [""]),
    ("allowPatterns", ["a,b"]),
    ("allowPatterns", ["../x"]),
    ("extraArgs", "--enforce-eager"),
])
def test_list_fields_must_be_lists_of_strings(field: str, value: Any) -> None:
    assert f"{field} = " in only_problem([entry(**{field: value})])


@pytest.mark.parametrize("flag", ["--port=9000", "--model", "--served-model-name", "--tensor-parallel-size=2"])
def test_extra_args_cannot_override_managed_flags(flag: str) -> None:
    assert "is set by ModelDeployment" in only_problem([entry(extraArgs=[flag, "x"])])


def test_runtime_specific_fields() -> None:
    assert "only the vllm runtime" in only_problem([entry(runtime="hf-server", maxModelLen=4096)])
    assert "only the vllm runtime" in only_problem([entry(runtime="hf-server", extraArgs=["--x"])])
    assert "only hf-server takes it" in only_problem([entry(quantization="4bit")])
    assert "quantization = 'int3'" in only_problem([entry(runtime="hf-server", quantization="int3")])
    assert "hf-server serves from one GPU" in only_problem([entry(runtime="hf-server", gpus=2)],
                                                          {"gpuNodeSize": "an.g1.l40s.kube.x2"})


def test_shm_must_fit_in_the_memory_limit() -> None:
    assert "shmSize = '16Gi'" in only_problem([entry(memory="16Gi", shmSize="16Gi")])


def test_rollout_must_be_able_to_make_progress() -> None:
    assert "maxUnavailable = 0" in only_problem([entry(maxSurge=0, maxUnavailable=0)])
    assert "maxUnavailable = 2: is more than the 1 replica" in only_problem([entry(maxUnavailable=2)])


def test_host_path_cache_is_opt_in_and_confined() -> None:
    [model] = load([entry(cache="hostPath", hostPath="/var/lib/gpu-platform/models")]).models
    assert model.cache == "hostPath" and model.host_path == "/var/lib/gpu-platform/models"
    for path in ("/etc", "/var/lib", "/var/lib/../etc", None, "relative"):
        assert "hostPath = " in only_problem([entry(cache="hostPath", hostPath=path)])
    assert "only used with cache: hostPath" in only_problem([entry(hostPath="/var/lib/x")])
    assert "cache = 'pvc'" in only_problem([entry(cache="pvc")])


def test_unknown_field_is_reported() -> None:
    assert "gpu = 1: unknown field" in only_problem([entry(gpu=1)])


def test_gated_model_needs_the_hf_token() -> None:
    assert "hfToken is not set" in only_problem([entry(gated=True)])
    assert load([entry(gated=True)], secrets={"hfToken": "hf_x"}).models[0].gated is True


def test_the_pool_must_hold_every_replica() -> None:
    text = only_problem([entry(replicas=1), entry(name="other", repo="Qwen/Qwen3-8B", replicas=1)])
    assert "the models need 2 GPUs" in text and "GPU pool has 1" in text
    assert len(load([entry(replicas=2)], {"gpuNodeCount": 2}).models) == 1


def test_models_must_be_a_list_of_objects() -> None:
    assert "must be a list of model objects" in only_problem({"name": "x"})
    assert "models[0] = 'qwen': must be an object" in only_problem(["qwen"])


def test_every_bad_entry_is_reported_together_with_other_keys() -> None:
    found = problems([entry(runtime="tgi"), entry(name="Two", repo="x/y/z")], {"region": "MARS"})
    assert any(p.startswith("gpu-platform:region") for p in found)
    assert any("models[0] (name 'qwen'): runtime" in p for p in found)
    assert any("models[1] (name 'Two'): name" in p for p in found)
    assert any("models[1] (name 'Two'): repo" in p for p in found)


def test_each_problem_names_model_field_value_and_fix() -> None:
    for text in problems([entry(gpus=4, runtime="x", revision="a b", replicas=0, cpu="x")]):
        assert text.startswith("gpu-platform:models[0] (name 'qwen'): ") and " = " in text and "Fix: " in text


@pytest.mark.parametrize(("text", "value"), [("500m", 0.5), ("4", 4), ("32Gi", 32 * 2**30), ("1.5G", 1.5e9)])
def test_quantities(text: str, value: float) -> None:
    assert float(parse_quantity(text)) == value


def test_images_come_from_config_when_not_built() -> None:
    settings = load([entry(runtime="hf-server")], {"hubGateway": False, "hubGatewayImage": None})
    assert settings.model_images == {"model-cache": CACHE_IMAGE, "hf-server": HF_IMAGE}
    assert "modelCacheImage is not set" in only_problem([entry()], {"modelCacheImage": None})
    assert "hfServerImage is not set" in only_problem([entry(runtime="hf-server")], {"hfServerImage": None})
    assert load([entry()], {"hfServerImage": None}).models  # vllm models need no hf-server image
    assert load([], {"modelCacheImage": None, "hubGateway": False, "hubGatewayImage": None}).model_images == {
        "hf-server": HF_IMAGE}


@pytest.mark.parametrize("ref", ["ghcr.io/acme/model-cache:latest", "model-cache@sha256:abc",
                                 "ghcr.io/acme/model-cache@sha256:" + "A" * 64])
def test_image_refs_must_be_digest_pinned(ref: str) -> None:
    assert "must be a digest-pinned image ref" in only_problem([entry()], {"modelCacheImage": ref})


def test_trust_remote_code_is_a_flag_off_by_default() -> None:
    [model] = load([entry()]).models
    assert model.trust_remote_code is False
    [model] = load([entry(trustRemoteCode=True)]).models
    assert model.trust_remote_code is True
    assert "trustRemoteCode" in only_problem([entry(trustRemoteCode="yes")])
    assert "--trust-remote-code is set by ModelDeployment" in only_problem([entry(extraArgs=["--trust-remote-code"])])
