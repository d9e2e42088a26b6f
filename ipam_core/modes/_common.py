"""Helpers shared by the node-CIDR mode modules (kubernetes, cluster-pool, gke, multi-pool)."""

from __future__ import annotations

from ipam_core.addr import parse_cidr
from ipam_core.engine.layout import POLICY_ONE_PER_FAMILY, Layout, SetSpec


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


def host_scope_layout(name: str, pool_name: str, by_family, enabled, revert_partial: bool) -> Layout:
    """A single pool of node CIDRs, one per node and family (kubernetes, cluster-pool)."""
    return Layout(
        mode=name,
        policy=POLICY_ONE_PER_FAMILY,
        families=enabled,
        pool_names=(pool_name,),
        pre_allocation=(0,),
        sets=tuple(sets_for(0, by_family, enabled)),
        default_pool=0,
        revert_partial=revert_partial,
    )
