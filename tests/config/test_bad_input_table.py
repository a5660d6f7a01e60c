"""Bad configuration, table-driven, through the offline plan's command line (what `make plan` runs).

Every case must: exit 2 before anything is registered; name the key (or models entry and field)
in one line with its fix; write nothing to the output folder (not even a stale file of an earlier
run); show no secret, raw or base64; and never print a Python traceback. Where a fix is a concrete
`pulumi config set KEY VALUE`, applying it must make that problem go away (a fix that is itself
invalid would send the user round in circles).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config.settings import SettingsError
from tests.support.canary import CANARY_HF_TOKEN, CANARY_REGISTRY_PASSWORD, leaked_forms
from tests.support.config import DictConfig, problems_of
from tools import offline_plan
from tools.offline_plan import REPO, load_yaml, stack_config

SHA = "7ae557604adf67be50417f59c2c2f167def9a775"
LONG = "x" * 300


def model(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "qwen-small", "repo": "Qwen/Qwen2.5-0.5B-Instruct", "revision": SHA, **fields}]


#: (stack, key, value, what the message must name). Values are what `--config KEY=<json>` passes.
TOP_LEVEL: list[tuple[str, str, Any, str]] = [
    *[("dev", "environment", v, "environment") for v in ["qa", "", "PROD", 1, True, ["dev"], "dev\n"]],
    *[("dev", "region", v, "region") for v in ["MARS", "FRA1", "AMS3", "", 7, "lon1 ", ["LON1"]]],
    *[("dev", "kubernetesVersion", v, "kubernetesVersion")
      for v in ["1.32", "1.32.5-k3s1-gpu", "latest", "1.99.0-k3s1", "v1.32.5", 1.32, "1.32.5-k3s1\n"]],
    *[("dev", "cni", v, "cni") for v in ["calico", "", "Cilium", 3, None if False else "flannel\n"]],
    *[("dev", "systemNodeSize", v, "systemNodeSize")
      for v in ["an.g1.l40s.kube.x1", "g4s.kube.huge", "", 5, "g4s.kube.medium\n"]],
    *[("dev", key, v, key) for key in ("systemNodeCount", "gpuNodeCount")
      for v in [0, 21, -1, 2.5, "three", True, math.nan, math.inf, -math.inf, "1e999", [1]]],
    *[("dev", "gpuNodeSize", v, "gpuNodeSize")
      for v in ["g4s.kube.large", "an.g1.l40s.x1", "", 1, "an.g1.l40s.kube.x1 "]],
    *[("dev", "apiAllowedCidrs", v, "apiAllowedCidrs")
      for v in [[], ["10.0.0.1/8"], ["not-a-cidr"], ["300.0.0.0/8"], [1], [""], "10.0.0.0/33", ["::/129"]]],
    *[("dev", "gpuOperatorVersion", v, "gpuOperatorVersion") for v in ["25.10.1", "v25", "latest", 25, "v25.10.1\n"]],
    *[("dev", "bucketMaxSizeGb", v, "bucketMaxSizeGb")
      for v in [0, 499, 750, 10_500, -500, 1.5, "big", math.nan, math.inf, True]],
    *[("dev", "modelPrefix", v, "modelPrefix") for v in ["/models/", "a/../b/", "models", "mo dels/", 3, "models/\n"]],
    *[("dev", "protectData", v, "protectData") for v in ["yes", 1, "True", [True]]],
    *[("dev", "modelNamespace", v, "modelNamespace")
      for v in ["default", "kube-system", "kube-public", "kube-node-lease", "gpu-operator", "Models", "models\n",
                "-models", "m" * 64, "kube-models", "", "models_1"]],
    *[("dev", "githubRepository", v, "githubRepository")
      for v in ["acme", "acme/gpu/platform", "-acme/repo", "acme/..", "ac me/repo", "acme/" + "r" * 101, 7]],
    *[("dev", "githubEnvironments", v, "githubEnvironments") for v in [["qa"], [1], "prod,qa", [""]]],
    *[("dev", "registry", v, "registry") for v in ["https://ghcr.io", "ghcr io", "", "GHCR.io/x"]],
    *[("dev", "imageRepository", v, "imageRepository") for v in ["ghcr.io", "GHCR.IO/Acme x", "ghcr.io/acme/", 9]],
    *[("dev", "buildImages", v, "buildImages") for v in ["yes", 0, "maybe"]],
    *[("dev", "imagePlatforms", v, "imagePlatforms") for v in [["linux/s390x"], ["windows/amd64"], [1], [""]]],
    *[("dev", "allowPublicApiAccess", v, "allowPublicApiAccess") for v in ["no", 2]],
    *[("dev", key, "nope", key) for key in ("modelCacheImage", "hfServerImage")],
    *[("dev", key, "ghcr.io/acme/x:latest", key) for key in ("modelCacheImage", "hfServerImage")],
    # Misspelt and unknown keys are refused, with a suggestion where one is close.
    *[("dev", key, 2, key) for key in ("gpuNodeCont", "regoin", "modelz", "systemNodeCounts", "bucketMaxSize",
                                       "hfTokenn", "totallyUnknown")],
    *[("prod", "apiAllowedCidrs", v, "apiAllowedCidrs") for v in [["0.0.0.0/0"], ["::/0"]]],
    ("prod", "models", model(revision="main"), "revision"),
    ("prod", "models", [{"name": "qwen-small", "repo": "Qwen/Qwen2.5-0.5B-Instruct"}], "revision"),
]

#: Bad ``models`` entries: (entry fields, the field the message must name).
MODEL_FIELDS: list[tuple[dict[str, Any], str]] = [
    *[({"name": v}, "name") for v in ["Qwen", "qwen_small", "1qwen", "qwen-small\n", "q" * 41, "", 5, None]],
    *[({"repo": v}, "repo") for v in ["a/b/c", "https://huggingface.co/x/y", "../etc/passwd", "o/n--x",
                                       "owner/na me", "/abs/path", "owner/name.git", "", "o/" + "n" * 100,
                                       "owner/name\n", 5]],
    *[({"revision": v}, "revision") for v in ["a..b", "/main", "main/", "A" * 40, "x" * 300, 5, "rev ision"]],
    *[({"runtime": v}, "runtime") for v in ["tgi", "VLLM", 1, "vllm\n"]],
    *[({"gpus": v}, "gpus") for v in [0, -1, 1.5, "one", 9, math.nan, math.inf, True]],
    *[({"replicas": v}, "replicas") for v in [0, 21, 1.5, "two", math.nan, -math.inf]],
    *[({"maxModelLen": v}, "maxModelLen") for v in [64, 10**7, "long", 1.5, math.nan]],
    *[({"extraArgs": v}, "extraArgs") for v in ["--x", [1], ["--model=x"], ["--port", "1"], [""]]],
    *[({"quantization": v}, "quantization") for v in ["8bit", "4bit", 4]],
    *[({"allowPatterns": v}, "allowPatterns") for v in ["*.json", ["a,b"], ["/abs"], ["../x"], [1]]],
    *[({"cpu": v}, "cpu") for v in ["lots", "0", "1000", "-1", "4 cores", math.nan, math.inf]],
    *[({"memory": v}, "memory") for v in ["1Mi", "100Ti", "big", "", math.nan]],
    *[({"shmSize": v}, "shmSize") for v in ["1Ki", "64Gi", "x"]],
    *[({"cache": v}, "cache") for v in ["pvc", "hostpath", 1]],
    *[({"cacheSize": v}, "cacheSize") for v in ["1Mi", "100Ti", "lots"]],
    *[({"cache": "hostPath", "hostPath": v}, "hostPath") for v in ["/etc", "/var/lib/", "/var/lib/../etc", None, 5]],
    *[({"hostPath": "/var/lib/x"}, "hostPath")],
    *[({"warmCache": v}, "warmCache") for v in ["yes", 1]],
    *[({"maxSurge": v}, "maxSurge") for v in [-1, 21, "one", math.nan]],
    *[({"maxUnavailable": v}, "maxUnavailable") for v in [-1, 2, 1.5]],
    *[({"maxSurge": 0, "maxUnavailable": 0}, "maxUnavailable")],
    *[({"terminationGracePeriodSeconds": v}, "terminationGracePeriodSeconds") for v in [-1, 3601, "x", math.inf]],
    *[({"startupTimeoutSeconds": v}, "startupTimeoutSeconds") for v in [59, 14_401, "slow", math.nan]],
    *[({"gated": v}, "gated") for v in ["yes", 0]],
    *[({key: 1}, key) for key in ("nmae", "repository", "gpu", "replica", "unknownField")],
]

CASES = [pytest.param(stack, {key: value}, needle, id=f"{stack}-{key}-{i}")
         for i, (stack, key, value, needle) in enumerate(TOP_LEVEL)]
CASES += [pytest.param("dev", {"models": model(**fields)}, needle, id=f"models-{needle}-{i}")
          for i, (fields, needle) in enumerate(MODEL_FIELDS)]


def test_the_table_is_large() -> None:
    assert len(CASES) >= 150, len(CASES)


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("HF_TOKEN", CANARY_HF_TOKEN)
    monkeypatch.setenv("REGISTRY_PASSWORD", CANARY_REGISTRY_PASSWORD)
    return leaked_forms([CANARY_HF_TOKEN, CANARY_REGISTRY_PASSWORD])


def _arg(key: str, value: Any) -> str:
    text = value if isinstance(value, str) and not value.strip().startswith(("[", "{")) else None
    if isinstance(value, float) and not math.isfinite(value):
        text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    elif text is None or value != value.strip() or value in ("", "yes", "no", "True"):
        text = json.dumps(value, allow_nan=True)
    return f"{key}={text}"


@pytest.mark.parametrize(("stack", "overrides", "needle"), CASES)
def test_bad_input_is_refused_in_one_line_with_its_key(stack: str, overrides: dict[str, Any], needle: str,
                                                       canaries: list[str], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan"
    out.mkdir()
    (out / "001-stale-from-an-earlier-run.yaml").write_text("kind: Stale\n")
    argv = ["--stack", stack, "--out", str(out)]
    for key, value in overrides.items():
        argv += ["--config", _arg(key, value)]
    code = offline_plan.main(argv)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 2, text[-3000:]
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip().startswith("- ")]
    named = [line for line in lines if needle in line]
    assert named, f"no problem names {needle!r}:\n{text}"
    assert all("Fix:" in line for line in named), named
    assert list(out.iterdir()) == [], "the output folder must not hold manifests of an earlier run"
    for form in canaries:
        assert form not in text


def _stack_values(stack: str) -> dict[str, Any]:
    config, _ = stack_config(stack, secrets={})
    values: dict[str, Any] = {}
    for full, text in config.items():
        if not full.startswith("gpu-platform:"):
            continue
        try:
            values[full.split(":", 1)[1]] = json.loads(text)
        except json.JSONDecodeError:
            values[full.split(":", 1)[1]] = text
    return values


_CONCRETE_FIX = re.compile(r"Fix: pulumi config set (?P<key>[A-Za-z]+) (?P<value>[^\s<>`]+)$")


@pytest.mark.parametrize(("stack", "overrides", "needle"), [c for c in CASES if "models" not in c.values[1]])
def test_a_concrete_fix_makes_its_problem_go_away(stack: str, overrides: dict[str, Any], needle: str) -> None:
    secrets = {"hfToken": "t", "registryPassword": "p"}
    values = {**_stack_values(stack), **overrides}
    for problem in problems_of(values, secrets):
        fix = _CONCRETE_FIX.search(problem)
        if fix is None or fix["key"] != needle:
            continue
        try:
            fixed_value: Any = json.loads(fix["value"])
        except json.JSONDecodeError:
            fixed_value = fix["value"]
        fixed = {**values, fix["key"]: fixed_value}
        try:
            after = problems_of(fixed, secrets)
        except AssertionError:
            after = []  # accepted outright
        assert not [p for p in after if p.startswith(f"gpu-platform:{needle} =")], (problem, after)


def test_plaintext_credentials_in_a_stack_file_are_refused_without_echoing_them() -> None:
    config = DictConfig({"hfToken": CANARY_HF_TOKEN, "registryPassword": CANARY_REGISTRY_PASSWORD})
    with pytest.raises(SettingsError) as caught:
        from components.config.settings import load_settings

        load_settings(config, project="gpu-platform", stack="test")
    text = str(caught.value)
    assert "pulumi config set --secret hfToken" in text
    assert "pulumi config set --secret registryPassword" in text
    for form in leaked_forms([CANARY_HF_TOKEN, CANARY_REGISTRY_PASSWORD]):
        assert form not in text


def _project_copy(tmp_path: Path, stack_text: str) -> Path:
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "Pulumi.bad.yaml").write_text(stack_text)
    return tmp_path


@pytest.mark.parametrize(("text", "needle"), [
    ("config:\n  gpu-platform:region: LON1\n  gpu-platform:region: FRA1\n", "duplicate key 'gpu-platform:region'"),
    ("config:\n  gpu-platform:region: [LON1\n", "not valid YAML"),
    ("config:\n\tgpu-platform:region: LON1\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping"),
    ("config: [1, 2]\n", "must be a mapping"),
])
def test_a_broken_stack_file_is_named(tmp_path: Path, text: str, needle: str) -> None:
    root = _project_copy(tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        stack_config("bad", root=root)
    assert "Pulumi.bad.yaml" in str(caught.value) and needle in str(caught.value)


def test_a_plaintext_token_in_the_stack_file_stays_plain_for_settings_to_refuse(tmp_path: Path) -> None:
    root = _project_copy(tmp_path, yaml.safe_dump({"config": {"gpu-platform:hfToken": "hf_plain"}}))
    _, secret_keys = stack_config("bad", secrets={}, root=root)
    assert "gpu-platform:hfToken" not in secret_keys


def test_committed_stack_files_parse_strictly() -> None:
    for path in sorted(REPO.glob("Pulumi*.yaml")):
        assert isinstance(load_yaml(path), dict)
