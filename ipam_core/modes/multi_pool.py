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

This module holds the whole mode: its scenario settings (:func:`layout`, :func:`check`,
:data:`MODE`) and its agent and operator rules, registered with the loop through
:mod:`ipam_core.engine.hooks` for :class:`MultiPoolState`. Node-CIDR carving and the
pod-address bitmaps are shared with the node-CIDR modes (:mod:`ipam_core.engine.core`);
pods pick their address from the first CIDR of their pool with a free address
(``pkg/ipam/pool.go``).
"""

from __future__ import annotations


import numpy as np

from ipam_core.engine import hooks
from ipam_core.engine.core import (
    LOUD,
    _agent_start,
    _carve_slot,
    _fc,
    _find_slot,
    _free_slot,
    _loud,
    _push,
    _quiet_at,
    _sched_addresses_changed,
    _set_wake,
    give_slot_addresses,
    slot_address_room,
    take_slot_addresses,
)
from ipam_core.engine.sampling import pool_node_rows
from ipam_core.engine.state import family_state
from ipam_core.engine.tables import (
    C_OPERATOR_DELAY,
    C_PENDING_TTL,
    C_REFRESH,
    C_RETRY,
    C_UPDATE_RATE,
    D_NEXT,
    D_PENDING_FAMILY,
    D_POOL,
    D_STATE,
    F_FREE,
    I_FAMILY,
    I_RELEASED_CIDRS,
    L_FAMILY,
    L_MAX,
    L_NODE,
    L_POOL,
    L_STATE,
    L_USED,
    N_GEN,
    N_HEAD,
    N_NSLOTS,
    N_PENDING,
    N_READY,
    N_STATUS,
    N_SYNC_ARMED,
    P_PRE_ALLOC,
    P_SET_HI,
    P_SET_LO,
    POD_PENDING,
    POLICY_MULTI_POOL,
    RELEASED_CIDRS_FREED,
    RELEASED_CIDRS_RECLAIMED,
    S_SLOT_MAX,
    SLOT_LIVE,
    SLOT_RELEASED,
    SLOT_STRANDED,
    STATUS_OK,
    STATUS_POOL_EMPTY,
    T_AGENT_SYNC,
    T_CARVE,
    T_REFRESH,
)
from ipam_core.engine.layout import Layout
from ipam_core.kernels._jit import kjit
from ipam_core.modes._common import families, sets_for
from ipam_core.modes.spec import RULES_MULTI_POOL, ModeSpec

NAME = "multi-pool"
UPSTREAM = (
    "cilium pkg/ipam/multipool_manager.go",
    "cilium pkg/ipam/pool.go",
    "cilium pkg/ipam/allocator/multipool/pool_allocator.go",
    "cilium pkg/ipam/metadata/manager.go",
)


MultiPoolState = family_state("MultiPoolState", __name__)


@kjit
def needed_ip_ceil(n, pre_alloc):
    """Multi-pool demand rounding (``neededIPCeil`` in cilium ``pkg/ipam/multipool_manager.go``).

    Parameters
    ----------
    n : int
        Addresses in use plus pending requests.
    pre_alloc : int
        The pool's pre-allocation (``default=8``).

    Returns
    -------
    int
        ``n`` when ``pre_alloc`` is 0; otherwise the next multiple of
        ``pre_alloc`` strictly above ``n`` when it divides ``n``, and the one
        after that when it does not (a free buffer of ``pre_alloc`` to
        ``2 * pre_alloc - 1``).
    """
    if pre_alloc == 0:
        return n
    quotient = n // pre_alloc
    if n % pre_alloc == 0:
        return (quotient + 1) * pre_alloc
    return (quotient + 2) * pre_alloc


@kjit(inline=True)
def gives_back_unused(used, free, total_free, threshold):
    """Whether the agent gives a node CIDR back (``pkg/ipam/multipool_manager.go``, release of unused CIDRs).

    The agent walks a pool's CIDRs last first and gives one back when no
    address in it is used and the free addresses left without it still
    cover the buffer; each give-back lowers ``total_free`` by the CIDR's free
    addresses. The engine's refresh (:func:`_agent_sync`) and the migration's
    agents (``migration/_agents.py``) both decide with this function.

    Parameters
    ----------
    used, free : int
        Addresses in use and free in the CIDR.
    total_free : int
        Free addresses in the node's CIDRs of the pool and family not given back yet.
    threshold : int
        ``max(neededIPCeil(...) - inUse, 0)``: the free buffer to keep.

    Returns
    -------
    bool
    """
    return used == 0 and total_free - free >= threshold


@kjit(inline=True)
def cidrs_to_carve(have, needed, per_cidr):
    """How many node CIDRs the operator carves for one pool of a node (``pool_allocator.go`` ``AllocateToNode``).

    Whole CIDRs of the pool's mask until the node's usable addresses cover what
    its agent asked for. The engine's operator pass (:func:`_operator_multi_pool`)
    and the migration's (``migration/operator.py`` ``MultiPoolOperator.upsert``)
    both carve this many, stopping early when the pool runs out.

    Parameters
    ----------
    have : int
        Usable addresses in the node's CIDRs of the pool and family.
    needed : int
        What the agent asked for (``neededIPCeil``).
    per_cidr : int
        Usable addresses in one CIDR of the pool's mask (0 when the pool has none of the family).

    Returns
    -------
    int
        0 when ``have`` covers ``needed``; otherwise enough CIDRs to cover it, and 1 when
        a CIDR holds no usable address (the carve that shows the pool cannot cover it).
    """
    if have >= needed:
        return 0
    if per_cidr <= 0:
        return 1
    return (needed - have + per_cidr - 1) // per_cidr


@kjit(inline=True)
def still_pending(since_failure, retry, ttl):
    """Whether a pod's failed address request still adds to its agent's demand (``pendingAllocationTTL``).

    A failed ``allocateNext`` puts the request in the agent's pending map for
    the TTL (cilium ``pkg/ipam/multipool_manager.go``); each retry of the pod
    fails again and refreshes it, and a success removes it. So while pods
    retry at least once per TTL every pending pod's request counts; otherwise
    one counts only within the TTL of its last failure. The engine's refresh
    (:func:`_pending_demand`) and the migration's agents
    (``migration/_agents.py`` ``_multi_pool_sync``) both count with this.

    Parameters
    ----------
    since_failure : float or numpy.ndarray of float
        Seconds since the request last failed.
    retry : float
        Seconds between a pending pod's retries.
    ttl : float
        ``pendingAllocationTTL`` in seconds.

    Returns
    -------
    bool or numpy.ndarray of bool
    """
    return retry <= ttl or since_failure <= ttl


@kjit
def _arm_sync(st, node, now):
    core = st.core
    # CiliumNode update debounce (CiliumNodeUpdateRate); the node's demand changed: its refresh must run
    _loud(core.quiet, node)
    if core.nodes[node, N_SYNC_ARMED] == 0:
        core.nodes[node, N_SYNC_ARMED] = 1
        _push(core.timer, core.cnt, now + core.cfg[C_UPDATE_RATE], T_AGENT_SYNC, node, core.nodes[node, N_GEN])


@kjit
def _pending_demand(nodes, pod_tables, cidr, cfg, node, pool, family, now):
    """Pending requests still counted as demand (``pendingAllocationTTL``, pkg/ipam/multipool_manager.go).

    A failed request stays in the agent's pending map for the TTL and is
    refreshed by every retry, so while pods retry more often than the TTL
    the running count is exact; otherwise only requests that failed within
    the TTL count.
    """
    retry = cfg[C_RETRY]
    ttl = cfg[C_PENDING_TTL]
    if still_pending(np.inf, retry, ttl):  # a request of any age counts: the running count is exact
        return cidr.np_pending[node, pool, family]
    count = 0
    pods = pod_tables.pods
    pod = nodes[node, N_HEAD]
    while pod >= 0:
        if (
            pods[pod, D_STATE] == POD_PENDING
            and pods[pod, D_PENDING_FAMILY] == family
            and pods[pod, D_POOL + family] == pool
            and still_pending(now - pod_tables.pod_failed_at[pod], retry, ttl)
        ):
            count += 1
        pod = pods[pod, D_NEXT]
    return count


@kjit
def _agent_sync(st, node, now):
    """Compute demand, give back excess CIDRs (last first) and ask the operator."""
    core = st.core
    core.nodes[node, N_SYNC_ARMED] = 0
    sl = core.cidr.slots
    for pool in range(core.cidr.pools.shape[0]):
        pre_alloc = core.cidr.pools[pool, P_PRE_ALLOC]
        for family in range(2):
            if core.icfg[I_FAMILY + family] == 0:
                continue
            in_use = core.cidr.np_inuse[node, pool, family]
            pending = _pending_demand(core.nodes, core.pod_tables, core.cidr, core.cfg, node, pool, family, now)
            needed = needed_ip_ceil(in_use + pending, pre_alloc)
            core.cidr.np_requested[node, pool, family] = needed
            total_free = 0
            for k in range(core.nodes[node, N_NSLOTS]):
                slot = core.cidr.node_slots[node, k]
                if sl[slot, L_STATE] == SLOT_LIVE and sl[slot, L_POOL] == pool and sl[slot, L_FAMILY] == family:
                    total_free += sl[slot, L_MAX] - sl[slot, L_USED]
            threshold = max(needed - in_use, 0)
            if total_free < threshold and core.icfg[I_RELEASED_CIDRS] == RELEASED_CIDRS_RECLAIMED:
                total_free = _reclaim_stranded(st, node, pool, family, total_free, threshold)
            for k in range(core.nodes[node, N_NSLOTS] - 1, -1, -1):
                slot = core.cidr.node_slots[node, k]
                if sl[slot, L_STATE] != SLOT_LIVE or sl[slot, L_POOL] != pool or sl[slot, L_FAMILY] != family:
                    continue
                free = sl[slot, L_MAX] - sl[slot, L_USED]
                if gives_back_unused(sl[slot, L_USED], free, total_free, threshold):
                    sl[slot, L_STATE] = SLOT_RELEASED
                    total_free -= free
                    core.cnt[_fc(family, F_FREE)] -= free
                    core.cidr.pool_free[pool, family] -= free
    _sched_addresses_changed(st, node)
    _push(core.timer, core.cnt, now + core.cfg[C_OPERATOR_DELAY], T_CARVE, node, core.nodes[node, N_GEN])


@kjit
def _pools_ready(st, node):
    core = st.core
    # waitForAllPools: every pool with pre-allocation has a free address per family
    for pool in range(core.cidr.pools.shape[0]):
        if core.cidr.pools[pool, P_PRE_ALLOC] == 0:
            continue
        for family in range(2):
            if core.icfg[I_FAMILY + family] != 0 and _find_slot(st, node, pool, family) < 0:
                return False
    return True


@kjit
def _operator_multi_pool(st, node):
    core = st.core
    sl = core.cidr.slots
    k = 0
    while k < core.nodes[node, N_NSLOTS]:
        slot = core.cidr.node_slots[node, k]
        if sl[slot, L_STATE] == SLOT_RELEASED and core.icfg[I_RELEASED_CIDRS] != RELEASED_CIDRS_FREED:
            sl[slot, L_STATE] = SLOT_STRANDED  # fault model: the operator keeps it on the node, unused
            k += 1
        elif sl[slot, L_STATE] == SLOT_RELEASED:
            _free_slot(st, slot)
        else:
            k += 1
    status = STATUS_OK
    for pool in range(core.cidr.pools.shape[0]):
        for family in range(2):
            needed = core.cidr.np_requested[node, pool, family]
            if needed <= 0:
                continue
            have = 0
            for j in range(core.nodes[node, N_NSLOTS]):
                slot = core.cidr.node_slots[node, j]
                if sl[slot, L_POOL] == pool and sl[slot, L_FAMILY] == family:
                    have += sl[slot, L_MAX]
            first = core.cidr.pools[pool, P_SET_LO + family]
            per_cidr = core.cidr.sets[first, S_SLOT_MAX] if first < core.cidr.pools[pool, P_SET_HI + family] else 0
            for _ in range(cidrs_to_carve(have, needed, per_cidr)):  # a pool's sets share its mask
                slot = _carve_slot(st, node, pool, family)
                if slot < 0 or sl[slot, L_MAX] == 0:
                    status = STATUS_POOL_EMPTY
                    break
    core.nodes[node, N_STATUS] = status
    if core.nodes[node, N_READY] == 0 and _pools_ready(st, node):
        _agent_start(st, node)


@kjit
def _multi_pool_quiet(nodes, cidr, icfg, node):
    """Whether the agent's refresh, and the operator's pass after it, would change nothing now.

    Called just after a refresh (``_agent_sync``): the node is ready, has no
    pending pod, no debounced update and no CIDR given back; for every pool and
    family the demand equals what the agent asked for, no unused CIDR would be
    given back, and the node holds what it asked for (so the operator neither
    frees nor carves, and reads no shared pool). Mirrors ``_agent_sync`` and
    ``_operator_multi_pool``.
    """
    if (nodes[node, N_READY] == 0 or nodes[node, N_SYNC_ARMED] != 0 or nodes[node, N_PENDING] != 0
            or nodes[node, N_STATUS] != STATUS_OK):
        return False
    sl = cidr.slots
    n_slots = nodes[node, N_NSLOTS]
    for k in range(n_slots):
        if sl[cidr.node_slots[node, k], L_STATE] != SLOT_LIVE:  # given back, or stranded (icfg I_RELEASED_CIDRS)
            return False
    for pool in range(cidr.pools.shape[0]):
        pre_alloc = cidr.pools[pool, P_PRE_ALLOC]
        for family in range(2):
            if icfg[I_FAMILY + family] == 0:
                continue
            in_use = cidr.np_inuse[node, pool, family]
            needed = needed_ip_ceil(in_use, pre_alloc)  # no pending pod: no pending demand
            if needed != cidr.np_requested[node, pool, family]:
                return False
            total_free = 0
            have = 0
            for k in range(n_slots):
                slot = cidr.node_slots[node, k]
                if sl[slot, L_POOL] == pool and sl[slot, L_FAMILY] == family:
                    total_free += sl[slot, L_MAX] - sl[slot, L_USED]
                    have += sl[slot, L_MAX]
            if needed > 0 and have < needed:
                return False
            threshold = max(needed - in_use, 0)
            for k in range(n_slots):
                slot = cidr.node_slots[node, k]
                if (sl[slot, L_POOL] == pool and sl[slot, L_FAMILY] == family
                        and gives_back_unused(sl[slot, L_USED], sl[slot, L_MAX] - sl[slot, L_USED], total_free,
                                              threshold)):
                    return False  # the agent would give this CIDR back
    return True


# --------------------------------------------------------------------------- the stranded-CIDR fault (workload.lifecycle)
@kjit
def _reclaim_stranded(st, node, pool, family, total_free, threshold):
    """PR #46674: the agent takes released, still advertised CIDRs back while its free addresses are short."""
    core = st.core
    sl = core.cidr.slots
    for k in range(core.nodes[node, N_NSLOTS]):
        slot = core.cidr.node_slots[node, k]
        if total_free >= threshold:
            break
        if sl[slot, L_STATE] == SLOT_STRANDED and sl[slot, L_POOL] == pool and sl[slot, L_FAMILY] == family:
            total_free += _unstrand(st, slot)
    return total_free


@kjit
def _unstrand(st, slot):
    core = st.core
    sl = core.cidr.slots
    sl[slot, L_STATE] = SLOT_LIVE
    free = sl[slot, L_MAX] - sl[slot, L_USED]
    core.cnt[_fc(sl[slot, L_FAMILY], F_FREE)] += free
    core.cidr.pool_free[sl[slot, L_POOL], sl[slot, L_FAMILY]] += free
    _sched_addresses_changed(st, sl[slot, L_NODE])
    return free


@kjit
def _agent_restart(st, node, now):
    """The agent restarts: its released set starts empty, so stranded CIDRs are allocated from again."""
    core = st.core
    sl = core.cidr.slots
    for k in range(core.nodes[node, N_NSLOTS]):
        slot = core.cidr.node_slots[node, k]
        if sl[slot, L_STATE] == SLOT_STRANDED:
            _unstrand(st, slot)
    _arm_sync(st, node, now)


@kjit
def node_added(st, node, now):
    """The agent starts: it asks for its pools at once and refreshes every ``refresh`` seconds."""
    core = st.core
    _agent_sync(st, node, now)
    _push(core.timer, core.cnt, now + core.cfg[C_REFRESH], T_REFRESH, node, core.nodes[node, N_GEN])


@kjit
def node_timer(st, kind, node, gen, now):
    """The operator's pass (T_CARVE), the debounced CiliumNode write (T_AGENT_SYNC), the refresh (T_REFRESH)."""
    core = st.core
    if kind == T_CARVE:
        if not _quiet_at(core.quiet, node, now):  # quiet: the operator would find nothing to do
            _operator_multi_pool(st, node)
    elif kind == T_AGENT_SYNC:
        _agent_sync(st, node, now)
    elif kind == T_REFRESH:
        _agent_sync(st, node, now)
        _set_wake(core.quiet, node, np.inf if _multi_pool_quiet(core.nodes, core.cidr, core.icfg, node) else LOUD, now)
        _push(core.timer, core.cnt, now + core.cfg[C_REFRESH], T_REFRESH, node, gen)


@kjit
def quiet_refresh(st, node, gen, now):
    """A refresh that changes nothing still sets the operator's pass after it, and the next refresh."""
    core = st.core
    _push(core.timer, core.cnt, now + core.cfg[C_OPERATOR_DELAY], T_CARVE, node, gen)  # as _agent_sync would
    _push(core.timer, core.cnt, now + core.cfg[C_REFRESH], T_REFRESH, node, gen)


@kjit
def refresh_period(st):
    """Seconds between an agent's refreshes."""
    return st.core.cfg[C_REFRESH]


@kjit
def carve_follows_refresh(st):
    """Every refresh sets an operator pass."""
    return True


hooks.register(
    MultiPoolState,
    POLICY_MULTI_POOL,
    take_pod_addresses=take_slot_addresses,
    give_pod_addresses=give_slot_addresses,
    pod_changed=_arm_sync,
    agent_restarted=_agent_restart,
    node_added=node_added,
    node_timer=node_timer,
    quiet_refresh=quiet_refresh,
    refresh_period=refresh_period,
    carve_follows_refresh=carve_follows_refresh,
    address_room=slot_address_room,
    sample_nodes=pool_node_rows,
    agent_can_start=_pools_ready,
    carves_on_demand=hooks.always,
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
