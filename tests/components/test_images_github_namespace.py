"""ContainerImage, GitHubSecrets and ModelNamespace on their own: what they refuse, before registering."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

from components.github import GitHubSecrets, GitHubSecretsArgs, owns_repository_level
from components.images import (
    ContainerImage,
    ContainerImageArgs,
    ImageBuildError,
    RegistryLogin,
    credential_like,
    validate,
)
from components.model_namespace import ModelNamespace, ModelNamespaceArgs, dockerconfigjson
from tests.support.mocks import is_secret, record_secret_data, register_in


def image_args(ctx: Path, **changes) -> ContainerImageArgs:
    values = {"name": "demo", "context": str(ctx), "repository": "ghcr.io/acme/gpu-platform",
              "registry": RegistryLogin("ghcr.io", "bot", "pw"), "secrets": {"hf_token": "t"}}
    values.update(changes)
    return ContainerImageArgs(**values)


@pytest.mark.parametrize("name", ["HF_TOKEN", "hf_token", "pipPassword", "api-key", "NPM_AUTH", "GITHUB_SECRET",
                                  "DB_PASSWD", "AWS_SECRET_ACCESS_KEY", "REGISTRY_CREDENTIALS", "hfToken",
                                  "ACCESS_TOKEN", "MY_APIKEY",
                                  # One word ending in a credential word: only the suffix rule sees them.
                                  "HFTOKEN", "DBPASSWORD", "GHSECRET", "npmtoken"])
def test_credential_looking_build_arg_names_are_refused(context: Path, name: str) -> None:
    assert credential_like(name)
    with pytest.raises(ImageBuildError, match=rf"build arg '{name}' looks like a credential.*BuildKit secret"):
        validate(image_args(context, build_args={name: "x"}))


@pytest.mark.parametrize("name", ["BASE_IMAGE", "REQUIREMENTS", "PYTHON_VERSION", "REVISION", "SOURCE",
                                  "PREFETCH_MODEL", "TOKENIZERS_PARALLELISM", "MONKEY"])
def test_ordinary_build_args_are_accepted(context: Path, name: str) -> None:
    assert not credential_like(name)
    validate(image_args(context, build_args={name: "x"}))


def test_a_url_with_credentials_is_refused_as_a_build_arg_value(context: Path) -> None:
    with pytest.raises(ImageBuildError, match="user:password@"):
        validate(image_args(context, build_args={"INDEX": "https://bot:s3cret@pypi.example.com/simple"}))


def test_dockerfile_outside_the_context_fails_before_anything_registers(context: Path, monitor) -> None:
    with pytest.raises(ImageBuildError, match="outside the build context"):
        ContainerImage("demo", image_args(context, dockerfile=str(context.parent / "Dockerfile.outside")))
    with pytest.raises(ImageBuildError, match="outside the build context"):
        ContainerImage("demo", image_args(context, dockerfile=str(context / ".." / "Dockerfile.outside")))
    assert monitor.records == {}


@pytest.mark.parametrize(("changes", "needle"), [
    ({"context": "/nonexistent/ctx"}, "is not a directory"),
    ({"dockerfile": "ctx/Missing.Dockerfile"}, "does not exist"),
    ({"name": "Bad_Name"}, "image name"),
    ({"platforms": ["windows/amd64"]}, "platform"),
    ({"secrets": {"hf token": "x"}}, "secret id"),
    ({"registry": None}, "needs registry credentials"),
])
def test_other_bad_image_input_is_refused(context: Path, changes: dict, needle: str) -> None:
    if changes.get("dockerfile"):
        changes = {**changes, "root": str(context.parent)}
    with pytest.raises(ImageBuildError, match=needle):
        validate(image_args(context, **changes))


@pulumi.runtime.test
def test_container_image_passes_secrets_only_as_buildkit_secrets(context: Path, monitor):
    image = ContainerImage("demo", image_args(context, secrets={"hf_token": "tok", "pip_index": "PIP_INDEX_URL=x"},
                                              build_args={"REQUIREMENTS": "r.txt"}, revision="abc123",
                                              source_url="https://github.com/acme/gpu-platform"))

    def check(ref: str) -> None:
        [record] = [r for r in monitor.records.values() if r.type == "docker-build:index:Image"]
        assert is_rpc_secret(record.inputs["secrets"])
        assert unwrap_rpc_secret(record.inputs["secrets"]) == {"hf_token": "tok", "pip_index": "PIP_INDEX_URL=x"}
        assert record.inputs["buildArgs"] == {"REQUIREMENTS": "r.txt"}
        # Rotating a token or an index credential must not rebuild (and roll) every image.
        assert record.inputs["ignoreSecretsInDiffCalculation"] == ["hf_token", "pip_index"]
        assert record.inputs["buildOnPreview"] is False
        assert record.inputs["labels"]["org.opencontainers.image.revision"] == "abc123"
        assert ref.startswith("ghcr.io/acme/gpu-platform/demo@sha256:")
        component = next(r for r in monitor.records.values() if r.type == "gpu-platform:index:ContainerImage")
        assert record.parent == component.urn

    return image.ref.apply(check)


@pulumi.runtime.test
def test_platform_secrets_outputs_are_names_and_secrets_stay_secret(monitor):
    component = ModelNamespace("t", ModelNamespaceArgs(
        namespace="models", bucket="b", endpoint="https://e", prefix="models/",
        access_key_id=pulumi.Output.secret("AKIA"), secret_access_key="plain-looking-key",
        hf_token="hf_x", registry_server="ghcr.io", registry_username="u", registry_password="p"))

    def check(values: list) -> None:
        namespace, s3, hf, pull, store = values
        assert namespace == "models"
        records = {r.name: r for r in monitor.records.values()}
        for name, expected in (("t-s3", s3), ("t-hf-token", hf), ("t-pull", pull)):
            assert records[name].state["metadata"]["name"] == expected
            # even a plain input (secret_access_key above) is wrapped by the component
            assert is_rpc_secret(records[name].inputs["stringData"])
        assert records["t-store"].state["metadata"]["name"] == store

    return pulumi.Output.all(component.namespace, component.s3_secret_name, component.hf_token_secret_name,
                             component.pull_secret_name, component.store_config_name).apply(check)


def test_platform_secrets_refuses_an_unknown_pod_security_level(monitor) -> None:
    with pytest.raises(ValueError, match="pod_security"):
        ModelNamespace("t", ModelNamespaceArgs(namespace="m", bucket="b", endpoint="e", prefix="p/",
                                                 access_key_id="a", secret_access_key="s", pod_security="lax"))
    assert monitor.records == {}


def test_dockerconfigjson_is_what_kubelet_reads() -> None:
    config = json.loads(dockerconfigjson("ghcr.io", "bot", "pw"))
    assert config == {"auths": {"ghcr.io": {"username": "bot", "password": "pw",
                                            "auth": base64.b64encode(b"bot:pw").decode()}}}


@pytest.mark.parametrize(("owner", "repo", "needle"), [
    ("-acme", "repo", "owner"), ("acme", "owner/repo", "repository"), ("acme", "..", "repository"),
])
def test_github_secrets_validates_owner_and_repository(monitor, owner: str, repo: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        GitHubSecrets("gh", GitHubSecretsArgs(owner=owner, repository=repo, hf_token="t"))
    assert monitor.records == {}


def test_github_variable_names_are_checked(monitor) -> None:
    with pytest.raises(ValueError, match="GITHUB_"):
        GitHubSecrets("gh", GitHubSecretsArgs(owner="acme", repository="r", hf_token="t",
                                              repository_variables={"GITHUB_X": "v"}))


def test_one_stack_owns_the_repository_level_values() -> None:
    assert owns_repository_level("prod", ("prod",))
    assert owns_repository_level("dev", ())
    assert not owns_repository_level("dev", ("dev",))


def test_model_namespace_wraps_every_credential_it_builds_itself(monitor, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the component hands to ``Secret`` must already be secret: pulumi-kubernetes' own
    wrapping of ``stringData`` must not be what keeps a plain credential out of the state."""
    from components import model_namespace

    built = record_secret_data(monkeypatch, model_namespace)
    # Plain inputs, as a caller might pass them: the component's wrapping is all that protects them.
    register_in(monitor, lambda: ModelNamespace("unit", ModelNamespaceArgs(
        namespace="models", bucket="b", endpoint="https://e", prefix="models/", access_key_id="AKID",
        secret_access_key="sk-plain", hf_token="hf-plain", registry_server="ghcr.io",
        registry_username="bot", registry_password="pw-plain")))
    assert len(built) == 3
    for string_data in built:
        for key, value in string_data.items():
            assert is_secret(value), f"{key} is handed to the Secret in plain text"
