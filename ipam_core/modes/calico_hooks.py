"""The Calico rules family (``calico``): nodes claim blocks of IPPools by affinity, kube-controllers frees them.

Registered with the loop through :mod:`ipam_core.engine.hooks` for
:class:`CalicoState`. The allocator and kube-controllers' passes are
projectcalico/calico v3.31.7's (``libcalico-go/lib/ipam/ipam.go``,
``ipam_block.go``, ``ipam_block_reader_writer.go``,
``kube-controllers/pkg/controllers/node/ipam.go``), compiled in
:mod:`ipam_core.modes.calico_rules` and
:mod:`ipam_core.modes.calico_controllers` over one
:class:`~ipam_core.modes.calico_tables.CalicoTables` (the state's ``cal``
field, built by :func:`prepare`). This module turns them into the loop's
hooks:

* a pod asks ``assign`` once per family, IPv6 first, with its pool choice (its
  own ``cni.projectcalico.org/ipv4pools`` annotation, else its namespace's,
  else the Automatic pools whose selectors match); IPv6 goes back when IPv4 fails;
* a deleted pod's addresses go back with ``release`` (the CNI DEL);
* a node is ready at once (calico-node needs no operator): it takes its
  IPIP / VXLAN tunnel address per family (``pkg/allocateip/allocateip.go``);
* kube-controllers' periodic pass (``gc_leaks`` then ``release_empty_blocks``)
  runs every ``sync_period`` on one cluster-wide timer, held by a present node
  and handed to another when that node goes (upstream runs one controller for
  the cluster, not one per node; per-node timers would repeat its whole-cluster
  pass once per node);
* a deleted node's affinities go with ``node_deleted`` after its pods' and
  tunnel addresses are released.

The shared counters keep the meaning they have for the other modes: a
block is what a node CIDR is elsewhere (``node_cidrs`` counts existing
blocks, ``addrs_carved`` their addresses, ``cidr_carves`` block claims,
``cidr_releases`` blocks deleted), tunnel addresses are ``addrs_reserved``.
Calico's own figures go to the ``calico_*`` trace rows (:func:`trace_counters`)
and to nodes.arrow's show-blocks columns (:func:`sample_nodes`' extra rows).
"""

from __future__ import annotations


import numpy as np

from ipam_core.engine import hooks
from ipam_core.engine.core import _agent_ready, _fc, _push, _sched_addresses_changed
from ipam_core.engine.sampling import CD_GROUP, CD_INDEX, CD_NCOL, NR_NCOL, TR_CALICO, _node_row
from ipam_core.engine.state import family_state
from ipam_core.engine.tables import (
    ADDRESS_FILTER_FREE,
    D_ID,
    ERROR_CALICO_BLOCKS_FULL,
    F_CARVABLE,
    F_CARVED,
    F_CARVES,
    F_FREE,
    F_IP_ALLOCS,
    F_IP_FAILS,
    F_NODE_CIDRS,
    F_RELEASES,
    F_RESERVED,
    F_USED,
    I_ADDRESS_FILTER,
    I_FAMILY,
    I_MAX_PODS,
    K_ERROR,
    K_EVENT,
    N_GEN,
    N_PENDING,
    N_PODS,
    N_PRESENT,
    POLICY_CALICO,
    T_REFRESH,
)
from ipam_core.kernels._jit import kjit
from ipam_core.modes.calico_controllers import gc_leaks, node_deleted as calico_node_deleted
from ipam_core.modes.calico_controllers import node_metrics, release_empty_blocks
from ipam_core.modes.calico_rules import assign, node_added as calico_node_added, release
from ipam_core.modes.calico_tables import (ADDR_SHIFT, CFG_MAX_BLOCKS, DEFAULT_MAX_BLOCKS, E_CAPACITY, K_CLAIMS,
                                           NM_BLOCKS, NM_BORROWED, NM_EMPTY_BLOCKS, NM_FREE, NM_LENT, NM_STRANDED,
                                           NM_USED, S_DELAY_COUNT, S_DELAY_SUM)

CalicoState = family_state("CalicoState", __name__, (
    "cal",  # CalicoTables: pools, blocks, affinities (ipam_core/modes/calico_tables.py)
    "cal_addr",  # int64 [pod rows, 2]: packed address per family (-1: none)
    "cal_pod_set",  # int32 [pod ids, 2]: the pod's poolset row per family (its annotation's or namespace's choice)
    "cal_tunnel",  # int64 [nodes, 2]: the node's tunnel address per family (-1: none)
    "cal_tunnel_row",  # int64 [2]: poolset row of the tunnel pools per family (-1: no pool tunnels)
    "cal_set",  # int64 [pools]: the layout set naming the pool's blocks (-1: family off)
    "cal_pool_blocks",  # int64 [2]: blocks of the enabled pools per family (capped at 2**62)
    "cal_sync",  # float64 [2]: kube-controllers' sync period, when its next pass is due
    "cal_owner",  # int64 [1]: the node whose T_REFRESH timer carries that pass (-1: none)
    "cal_ev_time",  # float64 [events]: the workload's event times (give / node delete run at an event)
    "cal_metrics",  # int64 [nodes, 2, NM_NCOL]: scratch for node_metrics
))

_BIG = np.int64(1) << np.int64(62)

# nodes.arrow: the rows sample_nodes writes after the shared node-row and CIDR rows (the tables
# Simulation.record makes for a calico run have them; docs/calico.md "Trace columns")
NR_EMPTY_BLOCKS = NR_NCOL  # affine blocks with no address in use
NR_STRANDED = NR_NCOL + 1  # free addresses in partly used affine blocks
NR_BORROWED = NR_NCOL + 2  # addresses the node's pods hold in other nodes' blocks
NR_LENT = NR_NCOL + 3  # addresses of its blocks other nodes' pods hold
NR_CALICO_NCOL = NR_NCOL + 4
CD_IN_USE = CD_NCOL  # per block: addresses in use (any node's pods, tunnel address included)
CD_FREE = CD_NCOL + 1
CD_LENT = CD_NCOL + 2  # of in use, by other nodes' pods
CD_CALICO_NCOL = CD_NCOL + 3


# --------------------------------------------------------------------------- shared counters
@kjit
def _sync_blocks(st):
    """Block counts per family from the pools' claimed blocks (the tables keep them per pool)."""
    core = st.core
    t = st.cal
    for family in range(2):
        if core.icfg[I_FAMILY + family] == 0:
            continue
        blocks = np.int64(0)
        carved = np.int64(0)
        for pool in range(t.pool_family.shape[0]):
            if t.pool_family[pool] == family and st.cal_set[pool] >= 0:
                n = np.int64(t.pool_nclaimed[pool])
                blocks += n
                carved += n << np.int64(t.pool_block_bits[pool])
        c = core.cnt
        c[_fc(family, F_NODE_CIDRS)] = blocks
        c[_fc(family, F_CARVED)] = carved
        c[_fc(family, F_CARVABLE)] = st.cal_pool_blocks[family] - blocks
        c[_fc(family, F_RELEASES)] = c[_fc(family, F_CARVES)] - blocks  # every block claimed and gone
        free = carved - c[_fc(family, F_USED)] - c[_fc(family, F_RESERVED)]
        c[_fc(family, F_FREE)] = free
        core.cidr.pool_free[0, family] = free
        core.cidr.pool_carvable[0, family] = st.cal_pool_blocks[family] - blocks


@kjit
def _assign(st, node, row, family, now):
    """``assign`` for one family; claims are counted as carves of that family. Returns the packed address or E_*."""
    core = st.core
    t = st.cal
    claims = t.counters[K_CLAIMS]
    packed = assign(t, node, row, now)
    core.cnt[_fc(family, F_CARVES)] += t.counters[K_CLAIMS] - claims
    if packed == E_CAPACITY:
        core.cnt[K_ERROR] = ERROR_CALICO_BLOCKS_FULL
    return packed, t.counters[K_CLAIMS] != claims


@kjit
def _event_now(st):
    # give_pod_addresses and node_deleted run inside a workload event (pod or node delete, drain):
    # its time is the loop's now
    return st.cal_ev_time[st.core.cnt[K_EVENT] - 1]


# --------------------------------------------------------------------------- pods
@kjit
def take_pod_addresses(st, pod, node, now):
    """A pod's address per enabled family, IPv6 first (ipam.go ``AutoAssign`` per family, as the CNI plugin asks).

    Returns -1, or the family that got no address (IPv6 is given back when IPv4 fails).
    """
    core = st.core
    pod_id = core.pod_tables.pods[pod, D_ID]
    claimed = False
    for step in range(2):
        family = 1 - step
        if core.icfg[I_FAMILY + family] == 0:
            continue
        row = st.cal_pod_set[pod_id, family]
        packed = np.int64(-1)
        if row >= 0:
            packed, new = _assign(st, node, row, family, now)
            claimed = claimed or new
        if packed < 0:
            core.cnt[_fc(family, F_IP_FAILS)] += 1
            if step == 1 and st.cal_addr[pod, 1] >= 0:
                release(st.cal, st.cal_addr[pod, 1], now)
                st.cal_addr[pod, 1] = -1
            _sync_blocks(st)
            if claimed:
                _sched_addresses_changed(st, node)
            return family
        st.cal_addr[pod, family] = packed
    for family in range(2):
        if st.cal_addr[pod, family] >= 0:
            core.cnt[_fc(family, F_USED)] += 1
            core.cnt[_fc(family, F_IP_ALLOCS)] += 1
    _sync_blocks(st)
    if claimed:
        _sched_addresses_changed(st, node)
    return -1


@kjit
def give_pod_addresses(st, pod):
    """The pod's addresses go back (the CNI DEL): ``release`` per family; an emptied orphan block goes."""
    now = _event_now(st)
    for family in range(2):
        packed = st.cal_addr[pod, family]
        if packed >= 0:
            release(st.cal, packed, now)
            st.cal_addr[pod, family] = -1
            st.core.cnt[_fc(family, F_USED)] -= 1
    _sync_blocks(st)


# --------------------------------------------------------------------------- nodes
@kjit
def node_added(st, node, now):
    """calico-node starts: the block walk's start from the hostname, the tunnel addresses, ready at once."""
    core = st.core
    t = st.cal
    calico_node_added(t, node)
    claimed = False
    for family in range(2):
        st.cal_tunnel[node, family] = -1
        row = st.cal_tunnel_row[family]
        if core.icfg[I_FAMILY + family] == 0 or row < 0:
            continue
        packed, new = _assign(st, node, row, family, now)
        claimed = claimed or new
        if packed >= 0:
            st.cal_tunnel[node, family] = packed
            core.cnt[_fc(family, F_RESERVED)] += 1
    _sync_blocks(st)
    if st.cal_owner[0] < 0:  # kube-controllers' pass rides on this node's timer
        st.cal_owner[0] = node
        if st.cal_sync[1] < now:
            st.cal_sync[1] = now + st.cal_sync[0]
        _push(core.timer, core.cnt, st.cal_sync[1], T_REFRESH, node, core.nodes[node, N_GEN])
    _agent_ready(st, node)


@kjit
def node_deleted(st, node):
    """The node goes: its tunnel addresses, then its affinities (kube-controllers ``cleanupNode``)."""
    core = st.core
    now = _event_now(st)
    t = st.cal
    for family in range(2):
        packed = st.cal_tunnel[node, family]
        if packed >= 0:
            release(t, packed, now)
            st.cal_tunnel[node, family] = -1
            core.cnt[_fc(family, F_RESERVED)] -= 1
    calico_node_deleted(t, node, now)
    _sync_blocks(st)
    if st.cal_owner[0] == node:  # hand the controller's timer to another present node, due as before
        st.cal_owner[0] = -1
        for other in range(core.nodes.shape[0]):
            if other != node and core.nodes[other, N_PRESENT] == 1:
                st.cal_owner[0] = other
                _push(core.timer, core.cnt, st.cal_sync[1], T_REFRESH, other, core.nodes[other, N_GEN])
                break


@kjit
def controllers_pass(st, now):
    """kube-controllers' periodic IPAM sync: the leak GC, then the empty-block release."""
    core = st.core
    t = st.cal
    gc_leaks(t, now)
    if release_empty_blocks(t, now) > 0:
        for node in range(core.nodes.shape[0]):
            if core.nodes[node, N_PRESENT] == 1:
                _sched_addresses_changed(st, node)
    _sync_blocks(st)


@kjit
def node_timer(st, kind, node, gen, now):
    """The cluster-wide kube-controllers pass (T_REFRESH on the node that carries it)."""
    if kind != T_REFRESH or st.cal_owner[0] != node:
        return
    controllers_pass(st, now)
    st.cal_sync[1] = now + st.cal_sync[0]
    _push(st.core.timer, st.core.cnt, st.cal_sync[1], T_REFRESH, node, gen)


# --------------------------------------------------------------------------- scheduler and samples
@kjit
def address_room(st, node):
    """The bound pods below which ``cluster.addressFilter`` lets a pod onto the node.

    ``warm``: running pods plus the free addresses of the node's affine blocks (per enabled
    family, the fewest); ``free``: no limit while the node may still claim a block (below the
    block limit and some block unclaimed), else ``warm``. Borrowing is not counted.
    """
    core = st.core
    t = st.cal
    running = core.nodes[node, N_PODS] - core.nodes[node, N_PENDING]
    limit = t.cfg[CFG_MAX_BLOCKS]
    if limit == 0:
        limit = DEFAULT_MAX_BLOCKS
    grow = core.icfg[I_ADDRESS_FILTER] == ADDRESS_FILTER_FREE
    room = core.icfg[I_MAX_PODS] + 1
    for family in range(2):
        if core.icfg[I_FAMILY + family] == 0:
            continue
        free = 0
        blocks = 0
        for k in range(t.node_nblk[node]):
            slot = t.node_blk[node, k]
            if t.pool_family[t.blk_pool[slot]] == family:
                free += t.blk_nfree[slot]
                blocks += 1
        if grow and blocks < limit and core.cidr.pool_carvable[0, family] > 0:
            continue
        room = min(room, running + free)
    return room


@kjit
def sample_nodes(st, families, sample, node_tab, cidr_tab, fill):
    """Per family, then per present node: its affine blocks in datastore order (the node's CIDRs) and their sums.

    ``used`` counts the addresses in use in the node's blocks (its pods' and borrowers'),
    ``free`` the free ones, ``reserved`` its tunnel address when it lies in its own block;
    rows ``NR_EMPTY_BLOCKS`` ... ``NR_LENT`` and, per block, ``CD_IN_USE`` ... ``CD_LENT``
    the show-blocks view (the tables of a calico run have those rows).
    Returns False, writing nothing, when the arrays lack room for this sample.
    """
    core = st.core
    t = st.cal
    metrics = st.cal_metrics
    node_metrics(t, metrics)
    r = fill[0]
    c = fill[1]
    for f in range(families.shape[0]):
        family = families[f]
        for node in range(core.nodes.shape[0]):
            if core.nodes[node, N_PRESENT] != 1:
                continue
            if r >= node_tab.shape[1] or c + metrics[node, family, NM_BLOCKS] > cidr_tab.shape[1]:
                return False
            first = c
            for k in range(t.node_nblk[node]):
                slot = t.node_blk[node, k]
                pool = t.blk_pool[slot]
                if t.pool_family[pool] != family:
                    continue
                cidr_tab[CD_GROUP, c] = 2 * st.cal_set[pool]
                cidr_tab[CD_INDEX, c] = np.int64(t.blk_index[slot])
                cidr_tab[CD_IN_USE, c] = t.blk_size[slot] - t.blk_nfree[slot]
                cidr_tab[CD_FREE, c] = t.blk_nfree[slot]
                cidr_tab[CD_LENT, c] = t.blk_foreign[slot]
                c += 1
            reserved = 0
            tunnel = st.cal_tunnel[node, family]
            if tunnel >= 0 and t.blk_node[tunnel >> ADDR_SHIFT] == node:
                reserved = 1
            _node_row(core.nodes, node_tab, r, sample, node, family, metrics[node, family, NM_USED] - reserved,
                      metrics[node, family, NM_FREE], reserved, c - first)
            node_tab[NR_EMPTY_BLOCKS, r] = metrics[node, family, NM_EMPTY_BLOCKS]
            node_tab[NR_STRANDED, r] = metrics[node, family, NM_STRANDED]
            node_tab[NR_BORROWED, r] = metrics[node, family, NM_BORROWED]
            node_tab[NR_LENT, r] = metrics[node, family, NM_LENT]
            r += 1
    fill[0] = r
    fill[1] = c
    return True


@kjit
def trace_counters(st, family, trace, r):
    """The Calico trace rows of ``family`` (sampling.CALICO_COUNTERS, from TR_CALICO) in column ``r``.

    Affine blocks, the most one node holds, empty ones, free addresses stranded in partly used
    ones, addresses borrowed from other nodes' blocks, and the empty blocks kube-controllers
    released with how long they had been empty (cumulative, ms). One pass over the nodes' blocks.
    """
    t = st.cal
    affine = 0
    most = 0
    empty = 0
    stranded = 0
    borrowed = 0
    for node in range(t.node_nblk.shape[0]):
        blocks = 0
        for k in range(t.node_nblk[node]):
            slot = t.node_blk[node, k]
            if t.pool_family[t.blk_pool[slot]] != family:
                continue
            blocks += 1
            free = t.blk_nfree[slot]
            if free == t.blk_size[slot]:
                empty += 1
            elif free > 0:
                stranded += free
        affine += blocks
        most = max(most, blocks)
        borrowed += t.node_borrowed[node, family]
    trace[TR_CALICO, r] = affine
    trace[TR_CALICO + 1, r] = most
    trace[TR_CALICO + 2, r] = empty
    trace[TR_CALICO + 3, r] = stranded
    trace[TR_CALICO + 4, r] = borrowed
    trace[TR_CALICO + 5, r] = np.int64(t.stats[family, S_DELAY_COUNT])
    trace[TR_CALICO + 6, r] = np.int64(t.stats[family, S_DELAY_SUM] * 1000.0 + 0.5)


@kjit
def _largest_aligned(lo, hi):
    # the largest power of two 2**k such that an aligned run [x, x + 2**k) lies in [lo, hi): k, or -1
    best = -1
    x = lo
    while x < hi:
        k = 0
        while k < 62 and (x & ((np.uint64(2) << np.uint64(k)) - np.uint64(1))) == np.uint64(0) \
                and x + (np.uint64(2) << np.uint64(k)) <= hi:
            k += 1
        if k > best:
            best = k
        x += np.uint64(1) << np.uint64(k)
    return best


@kjit
def largest_free_block(st, family):
    """Addresses in the largest aligned run of unclaimed blocks of any enabled pool of ``family`` (capped at 2**62)."""
    t = st.cal
    best = np.int64(0)
    for pool in range(t.pool_family.shape[0]):
        if t.pool_family[pool] != family or st.cal_set[pool] < 0:
            continue
        lo = np.uint64(0)
        n = t.pool_nclaimed[pool]
        for k in range(n + 1):
            hi = t.pool_sorted_idx[pool, k] if k < n else t.pool_n_blocks[pool]
            order = _largest_aligned(lo, hi)
            if order >= 0:
                bits = order + t.pool_block_bits[pool]
                size = _BIG if bits >= 62 else np.int64(1) << np.int64(bits)
                if size > best:
                    best = size
            lo = hi + np.uint64(1)
    return best


# --------------------------------------------------------------------------- set-up (Python, once per run)
def prepare(state, module, scenario, workload):
    """The Calico tables for the scenario's manifests and the workload's nodes and namespaces.

    Pool choices are made once per namespace, pod pool and family (``module.engine_tables``) and
    spread to every pod id with numpy; the block table is sized by ``module.block_capacity``.
    """
    n_nodes = max(len(workload.node_names), 1)
    tables, set_of_pool, pod_rows, tunnel_rows, pool_blocks = module.engine_tables(scenario, workload)
    rows = state.core.pod_tables.pods.shape[0]
    return state._replace(
        cal=tables,
        cal_addr=np.full((rows, 2), -1, dtype=np.int64),
        cal_pod_set=pod_rows,
        cal_tunnel=np.full((n_nodes, 2), -1, dtype=np.int64),
        cal_tunnel_row=np.asarray(tunnel_rows, dtype=np.int64),
        cal_set=np.asarray(set_of_pool, dtype=np.int64),
        cal_pool_blocks=np.asarray(pool_blocks, dtype=np.int64),
        cal_sync=np.array([module.sync_period(tables), -np.inf]),
        cal_owner=np.full(1, -1, dtype=np.int64),
        cal_ev_time=np.ascontiguousarray(workload.time, dtype=np.float64),
        cal_metrics=np.zeros((n_nodes, 2, module.NM_NCOL), dtype=np.int64),
    )


hooks.register(
    CalicoState,
    POLICY_CALICO,
    prepare=prepare,
    take_pod_addresses=take_pod_addresses,
    give_pod_addresses=give_pod_addresses,
    node_added=node_added,
    node_deleted=node_deleted,
    node_timer=node_timer,
    address_room=address_room,
    sample_nodes=sample_nodes,
    largest_free_block=largest_free_block,
    trace_counters=trace_counters,
)
