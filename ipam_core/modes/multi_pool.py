"""Cilium multi-pool IPAM (``ipam: multi-pool``).

Named ``CiliumPodIPPool`` pools, each a list of CIDRs carved into
``maskSize`` node CIDRs by next-fit CIDR sets (cilium
``pkg/ipam/allocator/multipool/pool_allocator.go``). A pod's pool comes from
its annotation, its namespace's annotation, the pools' selectors or the
default pool (``pkg/ipam/metadata/manager.go``). Each agent asks for
``neededIPCeil(inUse + pending, preAlloc)`` addresses per pool and family,
debounced by ``CiliumNodeUpdateRate`` and refreshed every minute, and gives
back unused CIDRs last first while the free buffer holds; the operator frees
returned CIDRs and carves whole CIDRs from the pool's first non-full entry
until the node's usable addresses cover the demand
(``pkg/ipam/multipool_manager.go``, ``pkg/ipam/pool.go``). Pre-allocation
defaults to ``default=8``.

Not modelled: the slice-order flip of the agent's CIDR list on each release
pass (a bug-level detail), per-pool ``allowFirstIP``/``allowLastIP``, and
orphaned CIDRs of deleted pools.
"""

from __future__ import annotations

from ipam_core.engine.layout import Layout
from ipam_core.engine.tables import POLICY_MULTI_POOL
from ipam_core.modes._common import families, sets_for

NAME = "multi-pool"
UPSTREAM = (
    "cilium pkg/ipam/multipool_manager.go",
    "cilium pkg/ipam/pool.go",
    "cilium pkg/ipam/allocator/multipool/pool_allocator.go",
    "cilium pkg/ipam/metadata/manager.go",
)


def layout(scenario) -> Layout:
    """Every CiliumPodIPPool as a pool with its own CIDR sets.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        Validated scenario (its ``ipam.pools`` hold the pools, the default
        pool included).

    Returns
    -------
    Layout
    """
    ipam = scenario.ipam
    enabled = families(ipam)
    pools = ipam.pools
    names = tuple(p.name for p in pools)
    sets = []
    for pool_id, pool in enumerate(pools):
        by_family = {
            0: (tuple(pool.ipv4_cidrs), pool.ipv4_mask_size or 0),
            1: (tuple(pool.ipv6_cidrs), pool.ipv6_mask_size or 0),
        }
        sets.extend(sets_for(pool_id, by_family, enabled))
    return Layout(
        mode=NAME,
        policy=POLICY_MULTI_POOL,
        families=enabled,
        pool_names=names,
        pre_allocation=tuple(int(ipam.pre_allocation.get(n, 0)) for n in names),
        sets=tuple(sets),
        default_pool=names.index(ipam.default_pool) if ipam.default_pool in names else -1,
        revert_partial=True,
    )
