"""The Kubernetes API allow-list (``apiAllowedCidrs``) as networks, not strings.

Why networks: the public-API guard used to compare strings, so ``0.0.0.0/00``, ``0::/0``,
``::ffff:0:0/96`` (every IPv4 address, written IPv4-mapped) or the two halves ``0.0.0.0/1`` +
``128.0.0.0/1`` opened the API to the internet while the guard looked away. Here every entry is
parsed by :mod:`ipaddress` (which accepts all of those spellings and netmask forms such as
``0.0.0.0/0.0.0.0``), IPv4-mapped IPv6 networks become the IPv4 networks they stand for, and the
union is computed with ``ipaddress.collapse_addresses``. The firewall receives each entry in that
canonical form, so what it enforces is exactly what was checked.

"The whole internet" means every address that can reach the cluster from the internet:
- IPv4: all addresses except the special-purpose blocks that are never routed on the internet
  (IANA IPv4 Special-Purpose Address Registry, RFC 6890). A list that leaves out only 10.0.0.0/8
  still admits the whole internet.
- IPv6: the global unicast space 2000::/3 (RFC 4291 §2.4; everything the internet routes today).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")
_V4_ALL: Final = ipaddress.IPv4Network("0.0.0.0/0")
_V6_GLOBAL_UNICAST: Final = ipaddress.IPv6Network("2000::/3")
#: IPv4 blocks never reachable from the internet (IANA special-purpose registry, "Globally
#: Reachable: False" or not forwardable). A list that leaves out only these admits the internet.
_V4_NOT_FROM_INTERNET: Final = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
))


@dataclass(frozen=True)
class ParsedCidrs:
    canonical: tuple[str, ...]
    """Each valid entry in canonical form (IPv4-mapped IPv6 as IPv4), in the order given, no repeats."""
    invalid: tuple[tuple[str, str], ...]
    """``(entry, why)`` for each entry that is not a network."""
    admits_internet: tuple[str, ...]
    """``"IPv4"`` and/or ``"IPv6"``: the families whose whole internet the entries admit together."""


def canonical_network(text: str) -> IPNetwork:
    """One CIDR as a network: strict (host bits must be zero), IPv4-mapped IPv6 as IPv4.

    ``::ffff:0:0/96`` and its subnets are IPv4 networks written as IPv6; a network that merely
    contains the mapped block (``::/64``) stays IPv6, and :func:`_covered_v4` counts its mapped part.
    """
    network = ipaddress.ip_network(text.strip(), strict=True)
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_V4_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None  # inside ::ffff:0:0/96
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def parse_cidrs(entries: Sequence[str]) -> ParsedCidrs:
    """Parse, canonicalise and judge a list of CIDRs (see the module docstring)."""
    networks: list[IPNetwork] = []
    invalid: list[tuple[str, str]] = []
    for entry in entries:
        try:
            network = canonical_network(entry)
        except ValueError as exc:
            invalid.append((entry, str(exc)))
            continue
        if network not in networks:
            networks.append(network)
    v4 = list(_covered_v4(networks))
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    admits: list[str] = []
    if _covers(v4, [_V4_ALL], holes=_V4_NOT_FROM_INTERNET):
        admits.append("IPv4")
    if _covers(v6, [_V6_GLOBAL_UNICAST]):
        admits.append("IPv6")
    return ParsedCidrs(canonical=tuple(str(n) for n in networks), invalid=tuple(invalid),
                       admits_internet=tuple(admits))


def _covered_v4(networks: Iterable[IPNetwork]) -> Iterable[ipaddress.IPv4Network]:
    """The IPv4 space the networks admit, counting an IPv6 network that contains ::ffff:0:0/96."""
    for network in networks:
        if isinstance(network, ipaddress.IPv4Network):
            yield network
        elif network.supernet_of(_V4_MAPPED):
            yield _V4_ALL


def _covers(networks: list[IPNetwork], targets: list[IPNetwork], holes: Sequence[IPNetwork] = ()) -> bool:
    """Whether the union of ``networks`` covers ``targets``, ignoring what lies inside ``holes``."""
    remaining = list(targets)
    for network in ipaddress.collapse_addresses(networks):  # type: ignore[type-var]
        remaining = _subtract(remaining, network)
    for hole in holes:
        remaining = _subtract(remaining, hole)
    return not remaining


def _subtract(blocks: list[IPNetwork], hole: IPNetwork) -> list[IPNetwork]:
    result: list[IPNetwork] = []
    for block in blocks:
        if block.subnet_of(hole):  # type: ignore[arg-type]
            continue
        if hole.subnet_of(block):  # type: ignore[arg-type]
            result.extend(block.address_exclude(hole))  # type: ignore[arg-type]
        else:
            result.append(block)
    return result
