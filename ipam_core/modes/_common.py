"""Helpers shared by the mode modules."""

from __future__ import annotations

from ipam_core.addr import parse_cidr
from ipam_core.engine.layout import SetSpec


def families(ipam) -> tuple[int, ...]:
    """Enabled families of a scenario's IPAM settings (0 = IPv4, 1 = IPv6)."""
    return tuple(f for f, on in ((0, ipam.ipv4), (1, ipam.ipv6)) if on)


def sets_for(pool: int, cidrs_by_family: dict[int, tuple[tuple[str, ...], int]], enabled: tuple[int, ...]):
    """One SetSpec per CIDR of each enabled family, in list order."""
    out: list[SetSpec] = []
    for family in enabled:
        cidrs, mask = cidrs_by_family.get(family, ((), 0))
        out.extend(SetSpec(pool, parse_cidr(c, 4 if family == 0 else 6), mask) for c in cidrs)
    return out
