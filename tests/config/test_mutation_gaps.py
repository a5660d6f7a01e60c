"""Settings behaviours a mutation run (scripts/mutation.sh, docs/testing.md) showed no other test pinned."""

from __future__ import annotations

import pytest

from tests.support.config import load, problems_of

OFFICE = "198.51.100.0/24"


@pytest.mark.parametrize("public", ["0.0.0.0/0", "::/0"])
def test_prod_refuses_either_half_of_the_internet_even_beside_a_narrow_cidr(public: str) -> None:
    problems = problems_of({"environment": "prod", "apiAllowedCidrs": [OFFICE, public]})
    assert len(problems) == 1
    assert problems[0] == (
        f"gpu-platform:apiAllowedCidrs = {public!r}: prod refuses to open the Kubernetes API (port 6443) to the "
        "whole internet. Fix: list your office/VPN/CI CIDRs, or set `pulumi config set allowPublicApiAccess "
        "true` to accept the risk explicitly")


@pytest.mark.parametrize("public", ["0.0.0.0/0", "::/0"])
def test_prod_opens_the_api_only_when_told_to(public: str) -> None:
    settings = load({"environment": "prod", "apiAllowedCidrs": [public], "allowPublicApiAccess": True})
    assert settings.cluster.api_allowed_cidrs == (public,)


@pytest.mark.parametrize("public", ["0.0.0.0/0", "::/0"])
def test_other_stacks_may_open_the_api(public: str) -> None:
    for environment in ("dev", "staging"):
        settings = load({"environment": environment, "apiAllowedCidrs": [public]})
        assert public in settings.cluster.api_allowed_cidrs


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
