"""apiAllowedCidrs compared as networks: every spelling of "the whole internet" is refused where
the public-API guard applies, and the firewall gets each CIDR in canonical form."""

from __future__ import annotations

import pytest

from components.config.cidrs import parse_cidrs
from tests.support.config import load, problems_of

PROD = {"environment": "prod"}
WHOLE_INTERNET = [
    ["0.0.0.0/0"],
    ["0.0.0.0/00"],
    ["0.0.0.0/000"],
    ["0.0.0.0/0.0.0.0"],
    ["::/0"],
    ["0::/0"],
    ["0000:0000::/0"],
    ["::ffff:0:0/96"],  # every IPv4 address, written IPv4-mapped
    ["::ffff:0.0.0.0/96"],
    ["::/64"],  # contains ::ffff:0:0/96
    ["0.0.0.0/1", "128.0.0.0/1"],  # split halves
    ["::ffff:0.0.0.0/97", "128.0.0.0/1"],  # a mapped half and a plain half
    ["2000::/4", "3000::/4"],  # both halves of global unicast IPv6
    ["2000::/3"],
    # Everything but private space still admits every address on the internet.
    [f"{n}.0.0.0/8" for n in range(256) if n != 10],
    ["198.51.100.0/24", "0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/2"],
]


@pytest.mark.parametrize("cidrs", WHOLE_INTERNET, ids=lambda c: "+".join(c[:3]))
def test_prod_refuses_every_list_that_admits_the_whole_internet(cidrs: list[str]) -> None:
    problems = problems_of({**PROD, "apiAllowedCidrs": cidrs})
    [problem] = [p for p in problems if "apiAllowedCidrs" in p]
    assert problem.startswith("gpu-platform:apiAllowedCidrs = ")
    assert "admit the whole IPv" in problem and "allowPublicApiAccess true" in problem


@pytest.mark.parametrize("cidrs", [
    ["198.51.100.0/24", "203.0.113.16/28"],
    ["0.0.0.0/1"],  # half the internet is a lot, but it is not the whole internet
    ["10.0.0.0/8", "2001:db8::/32"],
    ["::ffff:198.51.100.0/120"],
    [f"{n}.0.0.0/8" for n in range(256) if n != 8],  # leaves out 8.0.0.0/8, which is routed
])
def test_prod_accepts_lists_that_leave_part_of_the_internet_out(cidrs: list[str]) -> None:
    assert load({**PROD, "apiAllowedCidrs": cidrs}).cluster.api_allowed_cidrs


def test_the_guard_applies_to_every_shared_environment_not_only_prod() -> None:
    assert load({"apiAllowedCidrs": ["0.0.0.0/1", "128.0.0.0/1"]}).environment == "dev"  # dev may stay open
    problems = problems_of({"environment": "staging", "apiAllowedCidrs": ["0.0.0.0/1", "128.0.0.0/1"]})
    assert any("admit the whole IPv4 internet" in p and "staging" in p for p in problems)


def test_allow_public_api_access_accepts_the_risk_explicitly() -> None:
    settings = load({**PROD, "apiAllowedCidrs": ["0::/0", "0.0.0.0/00"], "allowPublicApiAccess": True})
    assert settings.cluster.api_allowed_cidrs == ("::/0", "0.0.0.0/0")


def test_the_firewall_gets_canonical_cidrs() -> None:
    settings = load({**PROD, "apiAllowedCidrs": [
        "198.51.100.0/255.255.255.0", "::ffff:203.0.113.16/124", "2001:0DB8:0000::/48", "198.51.100.0/24"]})
    assert settings.cluster.api_allowed_cidrs == ("198.51.100.0/24", "203.0.113.16/28", "2001:db8::/48")


def test_invalid_entries_are_named_one_by_one() -> None:
    parsed = parse_cidrs(["10.0.0.0/8", "10.1.2.3/8", "nope"])
    assert parsed.canonical == ("10.0.0.0/8",)
    assert [entry for entry, _ in parsed.invalid] == ["10.1.2.3/8", "nope"]
    assert parsed.admits_internet == ()


def test_the_firewall_rule_is_built_from_the_canonical_list(plan_with) -> None:
    plan = plan_with("prod", apiAllowedCidrs=["::ffff:198.51.100.0/120", "203.0.113.16/28"])
    firewall = plan.one("civo:index/firewall:Firewall")
    [rule] = firewall.inputs["ingressRules"]
    assert rule["cidrs"] == ["198.51.100.0/24", "203.0.113.16/28"]
