"""Sample a run inside the compiled loop: one call advances to every sample time.

:func:`sample_run` runs the event loop (:func:`ipam_core.engine.core.advance`)
up to each sample time and writes that moment's trace counters, and at node
sample times every present node's row and CIDRs, into preallocated arrays.
Reading the counters from Python after each step cost more than the run itself
for small scenarios (issue #10: ~90 % of a default-sized run); here a whole
run is one compiled call, and Python only formats the CIDR text at the end
(:mod:`ipam_core.pipeline.run`).

What is written matches, column for column, what the trace and nodes tables
describe (docs/dev/contracts.md section 2).
"""

from __future__ import annotations

import numpy as np

from ipam_core.engine.core import advance
from ipam_core.engine.hooks import largest_free_block as family_free_block
from ipam_core.engine.hooks import free_is_warm_pool, sample_nodes, trace_counters
from ipam_core.engine.tables import (
    CN_HELD,
    CN_PRIMARIES,
    CN_RESERVED,
    CN_USED,
    CU_OFF,
    CU_SET,
    CU_SIZE,
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
    FAMILY_STRIDE,
    K_CL_API_ASSIGN,
    K_CL_API_ATTACH,
    K_CL_API_DELAY_US,
    K_CL_API_PREFIX,
    K_CL_API_RELEASE,
    K_CL_API_THROTTLED,
    K_CL_FRAG_FAILS,
    K_CL_IFACES,
    K_CL_PREFIXES,
    K_CORDONED,
    K_EVICTED,
    K_EVICTED_FAILED,
    K_FAILED,
    K_FAILED_FREE,
    K_FAMILY_BASE,
    K_NODES,
    K_PENDING,
    K_READY,
    K_RUNNING,
    K_START_WAIT_MS,
    K_STARTED,
    L_FAMILY,
    L_INDEX,
    L_MAX,
    L_RESERVED,
    L_SET,
    L_STATE,
    L_USED,
    N_PENDING,
    N_PRESENT,
    N_STATUS,
    S_ADDRS,
    S_FAMILY,
    S_W_LEN,
    S_W_OFF,
    SLOT_LIVE,
)
from ipam_core.engine.lifecycle import held_by_cordoned, stranded
from ipam_core.kernels._jit import kjit
from ipam_core.kernels.blocks import bm_largest_free_block

#: Trace columns after ``family`` and ``time_s``, in table order.
TRACE_COUNTERS = (
    "nodes",
    "nodes_ready",
    "pods_running",
    "pods_pending",
    "pods_failed",
    "pods_failed_free_elsewhere",
    "addrs_pool",
    "addrs_carved",
    "addrs_reserved",
    "addrs_used",
    "addrs_idle",
    "addrs_uncarved",
    "node_cidrs",
    "carvable_node_cidrs",
    "largest_free_block",
    "cidr_carves",
    "cidr_releases",
    "ip_allocs",
    "ip_alloc_failures",
    # cloud modes (0 in the pool modes): modes/cloud_pool.py
    "warm_addrs_per_node",
    "interfaces",
    "prefixes",
    "frag_failures",
    "cloud_api_attach",
    "cloud_api_assign",
    "cloud_api_release",
    # cloud API cost and pod start latency (modes/cloud_api.py, engine/core.py _count_start)
    "cloud_api_prefix",
    "cloud_api_throttled",
    "cloud_api_delay_ms",
    "pods_started",
    "pod_start_wait_ms",
    # node lifecycle (engine/lifecycle.py); in the trace only when the run uses it (LIFECYCLE_COUNTERS)
    "pods_evicted",
    "pods_evicted_failed",
    "nodes_cordoned",
    "addrs_held_cordoned",
    "cidrs_stranded",
    "addrs_stranded",
    # calico (modes/calico_hooks.py trace_counters); in the trace only when a calico mode runs (CALICO_COUNTERS)
    "calico_affine_blocks",
    "calico_blocks_per_node_max",
    "calico_empty_affine_blocks",
    "calico_stranded_addrs",
    "calico_borrowed_addrs",
    "calico_empty_block_releases",
    "calico_empty_block_wait_ms",
)
#: Trace counters of the node lifecycle, written to ``trace.arrow`` only by runs with lifecycle events or
#: the released-CIDR fault model (so the traces of other runs keep their columns and bytes).
LIFECYCLE_COUNTERS = TRACE_COUNTERS[TRACE_COUNTERS.index("pods_evicted") : TRACE_COUNTERS.index("calico_affine_blocks")]
#: Trace counters of Calico IPAM, written to ``trace.arrow`` only by runs with a calico mode.
CALICO_COUNTERS = TRACE_COUNTERS[TRACE_COUNTERS.index("calico_affine_blocks") :]
#: Trace counters that are not whole numbers (written to the float array, not the int matrix).
TRACE_FLOATS = frozenset({"warm_addrs_per_node"})

# rows of the int64 trace matrix [len(TRACE_COUNTERS), samples * families]: Numba reads
# module-level ints as constants
_TR = {name: i for i, name in enumerate(TRACE_COUNTERS)}
TR_NODES = _TR["nodes"]
TR_READY = _TR["nodes_ready"]
TR_RUNNING = _TR["pods_running"]
TR_PENDING = _TR["pods_pending"]
TR_FAILED = _TR["pods_failed"]
TR_FAILED_FREE = _TR["pods_failed_free_elsewhere"]
TR_POOL = _TR["addrs_pool"]
TR_CARVED = _TR["addrs_carved"]
TR_RESERVED = _TR["addrs_reserved"]
TR_USED = _TR["addrs_used"]
TR_IDLE = _TR["addrs_idle"]
TR_UNCARVED = _TR["addrs_uncarved"]
TR_NODE_CIDRS = _TR["node_cidrs"]
TR_CARVABLE = _TR["carvable_node_cidrs"]
TR_LARGEST = _TR["largest_free_block"]
TR_CARVES = _TR["cidr_carves"]
TR_RELEASES = _TR["cidr_releases"]
TR_IP_ALLOCS = _TR["ip_allocs"]
TR_IP_FAILS = _TR["ip_alloc_failures"]
TR_IFACES = _TR["interfaces"]
TR_PREFIXES = _TR["prefixes"]
TR_FRAG = _TR["frag_failures"]
TR_API_ATTACH = _TR["cloud_api_attach"]
TR_API_ASSIGN = _TR["cloud_api_assign"]
TR_API_RELEASE = _TR["cloud_api_release"]
TR_API_PREFIX = _TR["cloud_api_prefix"]
TR_API_THROTTLED = _TR["cloud_api_throttled"]
TR_API_DELAY = _TR["cloud_api_delay_ms"]
TR_STARTED = _TR["pods_started"]
TR_START_WAIT = _TR["pod_start_wait_ms"]
TR_EVICTED = _TR["pods_evicted"]
TR_EVICTED_FAILED = _TR["pods_evicted_failed"]
TR_CORDONED = _TR["nodes_cordoned"]
TR_HELD_CORDONED = _TR["addrs_held_cordoned"]
TR_CIDRS_STRANDED = _TR["cidrs_stranded"]
TR_ADDRS_STRANDED = _TR["addrs_stranded"]
TR_CALICO = _TR["calico_affine_blocks"]  # first of CALICO_COUNTERS, in their order

# rows of the int64 node-row matrix [NR_NCOL, capacity]: one column per (node sample, node, family)
NR_SAMPLE = 0  # index of the sample time
NR_NODE = 1
NR_FAMILY = 2  # engine family index (0 = IPv4, 1 = IPv6)
NR_USED = 3
NR_FREE = 4
NR_RESERVED = 5
NR_PENDING = 6
NR_STATUS = 7  # STATUS_* code
NR_CIDRS = 8  # how many of the following CIDR entries are this row's
NR_NCOL = 9

# rows of the int64 CIDR matrix [CD_NCOL, capacity]: a node row's CIDRs, in row order
CD_GROUP = 0  # 2 * set + 1 for a /28 prefix of a cloud mode, else 2 * set (see cidr_group_mask)
CD_INDEX = 1  # block index inside the set's network at that group's mask
CD_NCOL = 2

#: ``sample_run`` stopped because the node-row or CIDR arrays are full: grow them and call again.
NEED_ROOM = -1
PREFIX_UNIT = 16  # addresses in a cloud /28 prefix unit (cloud units are 1 or 16 addresses)


@kjit(inline=True)  # into _trace_row, its one compiled caller
def largest_free_block(st, family):
    """Addresses in the largest aligned free block left in any set of ``family`` (0 if none)."""
    core = st.core
    best = 0
    for s in range(core.cidr.sets.shape[0]):
        if core.cidr.sets[s, S_FAMILY] != family:
            continue
        w0 = core.cidr.sets[s, S_W_OFF]
        order = bm_largest_free_block(core.cidr.set_words[w0 : w0 + core.cidr.sets[s, S_W_LEN]])
        if order >= 0:
            size = (np.int64(1) << order) * core.cidr.sets[s, S_ADDRS]
            if size > best:
                best = size
    return best


@kjit
def _trace_row(st, family, pool_addrs, trace, warm, r):
    """Write the counters of ``family`` now into column ``r`` of ``trace`` (and ``warm[r]``)."""
    core = st.core
    c = core.cnt
    base = K_FAMILY_BASE + FAMILY_STRIDE * family
    carved = c[base + F_CARVED]
    reserved = c[base + F_RESERVED]
    used = c[base + F_USED]
    trace[TR_NODES, r] = c[K_NODES]
    trace[TR_READY, r] = c[K_READY]
    trace[TR_RUNNING, r] = c[K_RUNNING]
    trace[TR_PENDING, r] = c[K_PENDING]
    trace[TR_FAILED, r] = c[K_FAILED]
    trace[TR_FAILED_FREE, r] = c[K_FAILED_FREE]
    trace[TR_POOL, r] = pool_addrs[family]
    trace[TR_CARVED, r] = carved
    trace[TR_RESERVED, r] = reserved
    trace[TR_USED, r] = used
    trace[TR_IDLE, r] = carved - reserved - used
    trace[TR_UNCARVED, r] = pool_addrs[family] - carved
    trace[TR_NODE_CIDRS, r] = c[base + F_NODE_CIDRS]
    trace[TR_CARVABLE, r] = c[base + F_CARVABLE]
    largest = family_free_block(st, family)  # -1: the shared node-CIDR sets'
    trace[TR_LARGEST, r] = largest if largest >= 0 else largest_free_block(st, family)
    trace[TR_CARVES, r] = c[base + F_CARVES]
    trace[TR_RELEASES, r] = c[base + F_RELEASES]
    trace[TR_IP_ALLOCS, r] = c[base + F_IP_ALLOCS]
    trace[TR_IP_FAILS, r] = c[base + F_IP_FAILS]
    trace[TR_IFACES, r] = c[K_CL_IFACES]
    trace[TR_PREFIXES, r] = c[K_CL_PREFIXES]
    trace[TR_FRAG, r] = c[K_CL_FRAG_FAILS]
    trace[TR_API_ATTACH, r] = c[K_CL_API_ATTACH]
    trace[TR_API_ASSIGN, r] = c[K_CL_API_ASSIGN]
    trace[TR_API_RELEASE, r] = c[K_CL_API_RELEASE]
    trace[TR_API_PREFIX, r] = c[K_CL_API_PREFIX]
    trace[TR_API_THROTTLED, r] = c[K_CL_API_THROTTLED]
    trace[TR_API_DELAY, r] = c[K_CL_API_DELAY_US] // 1000
    trace[TR_STARTED, r] = c[K_STARTED]
    trace[TR_START_WAIT, r] = c[K_START_WAIT_MS]
    trace[TR_EVICTED, r] = c[K_EVICTED]
    trace[TR_EVICTED_FAILED, r] = c[K_EVICTED_FAILED]
    trace[TR_CORDONED, r] = c[K_CORDONED]
    trace[TR_HELD_CORDONED, r] = held_by_cordoned(st, family)
    cidrs, addrs = stranded(core.nodes, core.cidr, core.icfg, family)
    trace[TR_CIDRS_STRANDED, r] = cidrs
    trace[TR_ADDRS_STRANDED, r] = addrs
    trace_counters(st, family, trace, r)  # the family's own rows (calico), else nothing
    # the warm pool is a cloud figure: the pool modes' free addresses show as addrs_idle
    nodes = c[K_NODES]
    warm[r] = c[base + F_FREE] / nodes if free_is_warm_pool(st) and nodes > 0 else 0.0


@kjit(inline=True)
def _node_row(nodes, node_tab, r, sample, node, family, used, free, reserved, n_cidrs):
    node_tab[NR_SAMPLE, r] = sample
    node_tab[NR_NODE, r] = node
    node_tab[NR_FAMILY, r] = family
    node_tab[NR_USED, r] = used
    node_tab[NR_FREE, r] = free
    node_tab[NR_RESERVED, r] = reserved
    node_tab[NR_PENDING, r] = nodes[node, N_PENDING]
    node_tab[NR_STATUS, r] = nodes[node, N_STATUS]
    node_tab[NR_CIDRS, r] = n_cidrs


@kjit
def pool_node_rows(st, families, sample, node_tab, cidr_tab, fill):
    """Pool modes: per family, then per present node: its node CIDRs in the agent's order and their sums.

    Returns False, writing nothing, when the arrays lack room for this sample.
    """
    core = st.core
    r = fill[0]
    c = fill[1]
    width = core.cidr.node_slots.shape[1]
    for f in range(families.shape[0]):
        family = families[f]
        for node in range(core.nodes.shape[0]):
            if core.nodes[node, N_PRESENT] != 1:
                continue
            if r >= node_tab.shape[1]:
                return False
            used = 0
            free = 0
            reserved = 0
            first = c
            for k in range(width):
                s = core.cidr.node_slots[node, k]
                if s < 0 or core.cidr.slots[s, L_FAMILY] != family:
                    continue
                if c >= cidr_tab.shape[1]:
                    return False
                used += core.cidr.slots[s, L_USED] - core.cidr.slots[s, L_RESERVED]
                if core.cidr.slots[s, L_STATE] == SLOT_LIVE:
                    free += core.cidr.slots[s, L_MAX] - core.cidr.slots[s, L_USED]
                # the node CIDR's addresses the pool never hands out: network, last, router, health
                slots = core.cidr.slots
                reserved += core.cidr.sets[slots[s, L_SET], S_ADDRS] - slots[s, L_MAX] + slots[s, L_RESERVED]
                cidr_tab[CD_GROUP, c] = 2 * core.cidr.slots[s, L_SET]
                cidr_tab[CD_INDEX, c] = core.cidr.slots[s, L_INDEX]
                c += 1
            _node_row(core.nodes, node_tab, r, sample, node, family, used, free, reserved, c - first)
            r += 1
    fill[0] = r
    fill[1] = c
    return True


@kjit
def cloud_node_rows(st, families, sample, node_tab, cidr_tab, fill):
    """Cloud modes: per present node, its /32 addresses and /28 prefixes in unit order and its pool's sums.

    Returns False, writing nothing, when the arrays lack room for this sample.
    """
    core = st.core
    r = fill[0]
    c = fill[1]
    for node in range(core.nodes.shape[0]):
        if core.nodes[node, N_PRESENT] != 1:
            continue
        if r >= node_tab.shape[1]:
            return False
        first = c
        for j in range(st.cl_unit.shape[1]):
            s = st.cl_unit[node, j, CU_SET]
            if s < 0:
                continue
            if c >= cidr_tab.shape[1]:
                return False
            size = st.cl_unit[node, j, CU_SIZE]
            cidr_tab[CD_GROUP, c] = 2 * s + (1 if size == PREFIX_UNIT else 0)
            cidr_tab[CD_INDEX, c] = st.cl_unit[node, j, CU_OFF] // size
            c += 1
        cn = st.cl_node
        _node_row(
            core.nodes,
            node_tab,
            r,
            sample,
            node,
            0,
            cn[node, CN_USED] - cn[node, CN_RESERVED],
            cn[node, CN_HELD] - cn[node, CN_USED],
            cn[node, CN_RESERVED] + cn[node, CN_PRIMARIES],
            c - first,
        )
        r += 1
    fill[0] = r
    fill[1] = c
    return True


@kjit
def sample_run(st, ev_time, ev_op, ev_node, ev_pod, stops, node_sample, first, last, families, pool_addrs,
               trace, warm, node_tab, cidr_tab, fill):
    """Advance to ``stops[i]`` and sample, for each ``i`` in ``[first, last)``.

    Parameters
    ----------
    st : State
        The engine state, updated in place.
    ev_time, ev_op, ev_node, ev_pod : numpy.ndarray
        The workload's event columns, as for :func:`~ipam_core.engine.core.advance`.
    stops : numpy.ndarray of float64
        Per sample: the loop runs every event and timer before this time.
    node_sample : numpy.ndarray of bool
        Per sample: also write the node rows.
    first, last : int
        Samples to take.
    families : numpy.ndarray of int64
        Engine families sampled (0 = IPv4, 1 = IPv6), in trace row order.
    pool_addrs : numpy.ndarray of int64
        Addresses in the pools per engine family (``addrs_pool``).
    trace : numpy.ndarray of int64, shape (len(TRACE_COUNTERS), samples * families)
        Column ``i * len(families) + f`` receives sample ``i`` of ``families[f]``.
    warm : numpy.ndarray of float64, shape (samples * families,)
        ``warm_addrs_per_node`` per trace column.
    node_tab : numpy.ndarray of int64, shape (NR_NCOL, capacity)
        Node rows, appended from column ``fill[0]``.
    cidr_tab : numpy.ndarray of int64, shape (CD_NCOL, capacity)
        Node CIDRs of those rows, appended from column ``fill[1]``.
    fill : numpy.ndarray of int64, shape (2,)
        Node rows and CIDRs written so far; advanced after each node sample.

    Returns
    -------
    tuple of (int, int)
        ``(0, last)`` when done; ``(ERROR_*, i)`` when the loop ran out of
        room before sample ``i``; ``(GROW_TIMERS, i)`` when it stopped to have a
        timer table grown (engine/timer_room.py: grow, and call again from ``i``); ``(NEED_ROOM, i)`` when ``node_tab`` or
        ``cidr_tab`` cannot hold sample ``i``'s node rows (nothing of them is
        kept: grow the arrays and call again from ``i``; advancing to a stop
        already reached does nothing).
    """
    nf = families.shape[0]
    for i in range(first, last):
        code = advance(st, ev_time, ev_op, ev_node, ev_pod, stops[i])
        if code != 0:
            return code, i
        for f in range(nf):
            _trace_row(st, families[f], pool_addrs, trace, warm, i * nf + f)
        if node_sample[i]:
            if not sample_nodes(st, families, i, node_tab, cidr_tab, fill):  # the family's node rows
                return NEED_ROOM, i
    return 0, last


def cidr_group_mask(group: int, node_mask: int, cloud: bool) -> int:
    """Prefix length of the CIDRs of one ``CD_GROUP`` value (the set is ``group // 2``).

    Parameters
    ----------
    group : int
        A ``CD_GROUP`` value.
    node_mask : int
        The set's node-CIDR mask (pool modes).
    cloud : bool
        A cloud mode: a node's CIDRs are /32 addresses and /28 prefixes.

    Returns
    -------
    int
    """
    if not cloud:
        return node_mask
    return 28 if group % 2 else 32


@kjit
def gather_text(offsets, data, pick, out_offsets, out_data):
    """Copy strings ``pick[k]`` of an Arrow-style string column into a new one, in ``pick`` order.

    Parameters
    ----------
    offsets : numpy.ndarray of int64
        ``n + 1`` offsets into ``data`` of the input strings.
    data : numpy.ndarray of uint8
        Their bytes.
    pick : numpy.ndarray of int64
        Input string of each output string.
    out_offsets : numpy.ndarray of int64
        ``len(pick) + 1`` entries, filled.
    out_data : numpy.ndarray of uint8
        Room for the picked strings' bytes, filled.
    """
    pos = 0
    out_offsets[0] = 0
    for k in range(pick.shape[0]):
        for j in range(offsets[pick[k]], offsets[pick[k] + 1]):
            out_data[pos] = data[j]
            pos += 1
        out_offsets[k + 1] = pos
