"""Settings behaviours a mutation run (scripts/mutation.sh, docs/testing.md) showed no other test pinned."""

from __future__ import annotations

import pytest

from components.config import catalog
from tests.support.config import load, problems_of

OFFICE = "198.51.100.0/24"


@pytest.mark.parametrize("public", ["0.0.0.0/0", "::/0"])
def test_prod_refuses_either_half_of_the_internet_even_beside_a_narrow_cidr(public: str) -> None:
    problems = problems_of({"environment": "prod", "apiAllowedCidrs": [OFFICE, public]})
    assert len(problems) == 1
    family = "IPv4" if public == "0.0.0.0/0" else "IPv4 and IPv6"  # ::/0 holds the IPv4-mapped range too
    assert problems[0] == (
        f'gpu-platform:apiAllowedCidrs = ["{OFFICE}", "{public}"]: together these admit the whole {family} '
        "internet to the Kubernetes API (port 6443), and allowPublicApiAccess is false (prod guards its API; "
        "only dev may leave it open). Fix: list only your office/VPN/CI CIDRs, or set `pulumi config set "
        "allowPublicApiAccess true` to accept the risk explicitly")


@pytest.mark.parametrize("public", ["0.0.0.0/0", "::/0"])
def test_prod_opens_the_api_only_when_told_to(public: str) -> None:
    settings = load({"environment": "prod", "apiAllowedCidrs": [public], "allowPublicApiAccess": True})
    assert settings.cluster.api_allowed_cidrs == (public,)


@pytest.mark.parametrize("public", ["0.0.0.0/0", "::/0"])
def test_only_dev_may_open_the_api(public: str) -> None:
    settings = load({"environment": "dev", "apiAllowedCidrs": [public]})
    assert public in settings.cluster.api_allowed_cidrs
    # staging is shared, so it is guarded like prod (issue 13).
    assert any("allowPublicApiAccess" in p for p in problems_of({"environment": "staging", "apiAllowedCidrs": [public]}))


def test_a_narrow_cidr_is_fine_in_prod() -> None:
    settings = load({"environment": "prod", "apiAllowedCidrs": [OFFICE, "2001:db8::/32"]})
    assert settings.cluster.api_allowed_cidrs == (OFFICE, "2001:db8::/32")


def test_every_cidr_problem_is_reported_at_once() -> None:
    problems = problems_of({"apiAllowedCidrs": ["10.1.2.3/8", "not-a-cidr", OFFICE]})
    assert len(problems) == 2
    assert any("10.1.2.3/8" in p and "host bits" in p for p in problems)
    assert any("not-a-cidr" in p for p in problems)


def test_a_misspelt_key_is_named_with_the_key_it_probably_meant() -> None:
    assert problems_of({"gpuNodeCont": 3, "zzzqqq": "x"}) == [
        ("gpu-platform:gpuNodeCont = '3': unknown key; did you mean gpuNodeCount? known keys are listed in "
         "Pulumi.yaml. Fix: pulumi config rm gpuNodeCont && pulumi config set gpuNodeCount <value>"),
        "gpu-platform:zzzqqq = 'x': unknown key; known keys are listed in Pulumi.yaml. Fix: pulumi config rm zzzqqq",
    ]


_KV = catalog.DEFAULT_KUBERNETES_VERSION
_CPU, _GPU = ", ".join(catalog.CPU_SIZES), ", ".join(catalog.GPU_SIZES)
_GPU_LABEL = ("'-gpu' k3s labels are rejected by pulumi-civo 2.4.8 (terraform-provider-civo v1.1.4); GPU support "
              "comes from the NVIDIA GPU operator instead")


@pytest.mark.parametrize(("values", "line_start", "says", "fix"), [
    ({"region": "AMS3"}, "region = 'AMS3'", "unknown Civo region; known: LON1, FRA1, NYC1, PHX1, MUM1",
     "pulumi config set region LON1"),
    ({"region": "lon1 "}, "region = 'lon1 '", "has leading or trailing whitespace (a space, tab or newline)",
     "pulumi config set region lon1"),
    ({"region": "FRA1"}, "region = 'FRA1'", "Civo offers GPU Kubernetes only in LON1",
     "pulumi config set region LON1"),
    ({"kubernetesVersion": "1.32.5-k3s1-gpu"}, "kubernetesVersion = '1.32.5-k3s1-gpu'",
     _GPU_LABEL, f"pulumi config set kubernetesVersion {_KV}"),
    ({"kubernetesVersion": "v1.32.5-k3s1-gpu"}, "kubernetesVersion = '1.32.5-k3s1-gpu'",
     _GPU_LABEL, f"pulumi config set kubernetesVersion {_KV}"),
    ({"kubernetesVersion": "1.32"}, "kubernetesVersion = '1.32'",
     "must look like 1.32.5-k3s1 (a Civo k3s version label)",
     f"pulumi config set kubernetesVersion {_KV}"),
    ({"kubernetesVersion": "1.20.0-k3s1"}, "kubernetesVersion = '1.20.0-k3s1'",
     "not an offered version; offered: 1.32.5-k3s1, 1.31.9-k3s1, 1.30.5-k3s1",
     f"pulumi config set kubernetesVersion {_KV} (or leave it unset for Civo's default)"),
    ({"systemNodeSize": "an.g1.l40s.kube.x1"}, "systemNodeSize = 'an.g1.l40s.kube.x1'",
     f"is a GPU size; the system pool runs only CPU workloads; allowed: {_CPU}",
     "pulumi config set systemNodeSize g4s.kube.medium"),
    ({"systemNodeSize": "nope"}, "systemNodeSize = 'nope'", f"unknown Kubernetes node size; allowed: {_CPU}",
     "pulumi config set systemNodeSize g4s.kube.medium"),
    ({"gpuNodeSize": "g4s.kube.large"}, "gpuNodeSize = 'g4s.kube.large'",
     f"is a CPU-only size (no GPU); GPU sizes: {_GPU}", "pulumi config set gpuNodeSize an.g1.l40s.kube.x1"),
    ({"gpuNodeSize": "nope"}, "gpuNodeSize = 'nope'", f"unknown GPU node size; GPU sizes: {_GPU}",
     "pulumi config set gpuNodeSize an.g1.l40s.kube.x1"),
    ({"apiAllowedCidrs": []}, "apiAllowedCidrs = []",
     "must list at least one CIDR allowed to reach the Kubernetes API",
     "pulumi config set --path 'apiAllowedCidrs[0]' 203.0.113.0/24"),
    ({"gpuOperatorVersion": "25.1"}, "gpuOperatorVersion = '25.1'", "must be a chart version like v25.10.1",
     f"pulumi config set gpuOperatorVersion {catalog.GPU_OPERATOR_CHART_VERSION}"),
])
def test_each_cluster_problem_names_key_value_what_is_allowed_and_the_exact_fix(
        values: dict, line_start: str, says: str, fix: str) -> None:
    (problem,) = problems_of(values)
    # The whole line: where, the value, what is allowed (each word of it), and the exact fix.
    assert problem == f"gpu-platform:{line_start}: {says}. Fix: {fix}"


def test_a_gpu_region_without_an_object_store_is_refused(monkeypatch) -> None:
    # No such region today (LON1 has both); the rule keeps a future catalog entry from passing.
    monkeypatch.setitem(catalog.REGIONS, "GPU9", catalog.Region("GPU9", gpu_kubernetes=True, object_store=False))
    assert problems_of({"region": "gpu9"}) == [
        "gpu-platform:region = 'GPU9': Civo offers no object store in this region. Fix: pulumi config set region LON1"]


def test_the_cluster_settings_as_read() -> None:
    """Every field _cluster returns, from non-default values (a default could hide a swapped key)."""
    settings = load({"region": "lon1", "kubernetesVersion": "v1.31.9-k3s1", "cni": "flannel",
                     "systemNodeSize": "g4s.kube.large", "systemNodeCount": 2, "gpuNodeSize": "an.g1.l40s.kube.x1",
                     "gpuNodeCount": 3, "apiAllowedCidrs": [OFFICE], "gpuOperatorVersion": "v25.3.0"})
    c = settings.cluster
    assert (c.region, c.kubernetes_version, c.cni, c.system_node_size, c.system_node_count, c.gpu_node_size,
            c.gpu_node_count, c.api_allowed_cidrs, c.gpu_operator_version) == (
        "LON1", "1.31.9-k3s1", "flannel", "g4s.kube.large", 2, "an.g1.l40s.kube.x1", 3, (OFFICE,), "v25.3.0")
    assert load({}).cluster.kubernetes_version is None  # unset: Civo's default, not an empty string


def test_a_non_gpu_region_lists_every_gpu_region(monkeypatch) -> None:
    monkeypatch.setitem(catalog.REGIONS, "GPU8", catalog.Region("GPU8", gpu_kubernetes=True, object_store=True))
    assert problems_of({"region": "FRA1"}) == [("gpu-platform:region = 'FRA1': Civo offers GPU Kubernetes only in "
                                                 "LON1, GPU8. Fix: pulumi config set region LON1")]
