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

from ipam_core.modes._common import families, sets_for
from ipam_core.modes.layout import POLICY_MULTI_POOL, Layout
from ipam_core.modes.spec import RULES_MULTI_POOL, ModeSpec

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


def check(ipam, root) -> None:
    """What the mode needs: a pool per enabled family, and pre-allocated pools that exist.

    Parameters
    ----------
    ipam : ipam_core.scenario.IPAMSpec
        The scenario's resolved IPAM settings.
    root : ipam_core.scenario._where.Where
        The document root: errors name its keys and lines.

    Raises
    ------
    ConfigError
        No pool with CIDRs of an enabled family, or a pre-allocated pool that does not exist
        or lacks an enabled family (the agent's ``waitForAllPools`` never returns).
    """
    for_mode = f"(needed by mode {NAME})"
    cilium_ipam = root / "cilium" / "ipam"
    for family in ipam.families:
        if not any(p.has_family(family) for p in ipam.pools):
            where = (cilium_ipam / "operator" / f"clusterPoolIPv{family}PodCIDRList" if ipam.pools_derived
                     else root / "manifests")
            where.fail(f"no pool has IPv{family} CIDRs (pools: {', '.join(p.name for p in ipam.pools) or 'none'}) "
                       f"but cilium.ipv{family}.enabled is true; expected a CiliumPodIPPool with spec.ipv{family} "
                       f"{for_mode}")
    names = ", ".join(p.name for p in ipam.pools) or "none"
    for pool_name, count in ipam.pre_allocation.items():
        if count <= 0:
            continue
        pool = ipam.pool(pool_name)
        missing = ([] if pool is not None else list(ipam.families)) or [f for f in ipam.families
                                                                          if not pool.has_family(f)]
        if missing:
            what = ("which no pool defines" if pool is None
                    else f"which has no IPv{missing[0]} CIDRs while cilium.ipv{missing[0]}.enabled is true")
            (cilium_ipam / "multiPoolPreAllocation").fail(
                f"'{pool_name}={count}' pre-allocates from pool {pool_name!r}, {what} (pools: {names}); expected "
                f"only pools that exist with every enabled family: the agent waits for each pre-allocated pool "
                f"('Waiting for cidr pool to become available') and never becomes ready {for_mode}")


MODE = ModeSpec(
    name=NAME, rules=RULES_MULTI_POOL, settings="manifests", helm_mode="multi-pool",
    migration=True, cloud=False, check=check, upstream=UPSTREAM,
    summary="named CiliumPodIPPools; each agent asks for node CIDRs per pool as its pods need addresses",
)
