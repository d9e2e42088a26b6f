"""Invariants of the engine's state, recomputed from scratch with numpy.

:func:`check_invariants` is what the tests run after every simulation: no
address held twice, no node CIDR held twice, and every counter the traces
report equal to what the tables say. It reads the bitmaps themselves
(``np.bitwise_count``), not the engine's bookkeeping.
"""

from __future__ import annotations

import numpy as np

from ipam_core.cloud.limits import SUBNET_RESERVED_HIGH, SUBNET_RESERVED_LOW
from ipam_core.engine import tables as T


def _popcounts(words: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Set bits in each ``words[starts[i] : starts[i] + lengths[i]]``."""
    if starts.size == 0:
        return np.zeros(0, dtype=np.int64)
    bits = np.bitwise_count(words).astype(np.int64)
    cumulative = np.concatenate([[0], np.cumsum(bits)])
    return cumulative[starts + lengths] - cumulative[starts]


def check_invariants(st) -> list[str]:
    """Every broken invariant of a state, as one line each (empty when all hold).

    Parameters
    ----------
    st : ipam_core.engine.state.State

    Returns
    -------
    list of str
    """
    core = st.core
    problems: list[str] = []
    sets, slots, pods = core.cidr.sets, core.cidr.slots, core.pod_tables.pods
    held = np.flatnonzero(slots[:, T.L_STATE] != T.SLOT_FREE)
    live = slots[:, T.L_STATE] == T.SLOT_LIVE

    # node CIDRs: each (set, index) held once, and the set bitmaps say exactly that
    keys = slots[held, T.L_SET] * (1 << 40) + slots[held, T.L_INDEX]
    if np.unique(keys).size != keys.size:
        problems.append("a node CIDR is held by two slots")
    set_bits = _popcounts(core.cidr.set_words, sets[:, T.S_W_OFF], sets[:, T.S_W_LEN])
    pad = sets[:, T.S_W_LEN] * 64 - sets[:, T.S_N]
    held_per_set = np.bincount(slots[held, T.L_SET], minlength=sets.shape[0])
    if not np.array_equal(set_bits - pad, sets[:, T.S_ALLOCATED]):
        problems.append("a set's bitmap disagrees with its allocated count")
    cloud = core.icfg[T.I_POLICY] == T.POLICY_CLOUD
    if not cloud and not np.array_equal(held_per_set, sets[:, T.S_ALLOCATED]):
        problems.append("a set's allocated count differs from the slots holding its CIDRs")
    if cloud:  # cloud modes: subnets, interfaces, units and pods (below); no node-CIDR slots
        problems += _check_cloud(st)
        return problems + _check_pods_and_nodes(st, np.flatnonzero(pods[:, T.D_STATE] == T.POD_RUNNING))

    # pod addresses: one per running pod and family, none shared, bitmaps agree
    running = np.flatnonzero(pods[:, T.D_STATE] == T.POD_RUNNING)
    for family in range(2):
        if core.icfg[T.I_FAMILY + family] == 0:
            continue
        slot = pods[running, T.D_SLOT + family]
        if np.any(slot < 0):
            problems.append(f"a running pod has no IPv{4 if family == 0 else 6} address")
            continue
        address = slot.astype(np.int64) * (1 << 32) + pods[running, T.D_OFF + family]  # int32 table
        if np.unique(address).size != address.size:
            problems.append(f"two running pods hold one IPv{4 if family == 0 else 6} address")
        if np.any(slots[slot, T.L_STATE] != T.SLOT_LIVE):
            problems.append("a running pod's address lies in a CIDR that is not live")
        fc = T.K_FAMILY_BASE + T.FAMILY_STRIDE * family
        if core.cnt[fc + T.F_USED] != running.size:
            problems.append(f"IPv{4 if family == 0 else 6} used counter {core.cnt[fc + T.F_USED]} "
                            f"!= running pods {running.size}")
        mine = held[slots[held, T.L_FAMILY] == family]
        pods_per_slot = np.bincount(slot, minlength=slots.shape[0])
        if not np.array_equal(pods_per_slot[mine] + slots[mine, T.L_RESERVED], slots[mine, T.L_USED]):
            problems.append("a node CIDR's used count differs from its pods plus router/health")
        s = slots[mine, T.L_SET]
        nw = sets[s, T.S_SLOT_WORDS]
        start = sets[s, T.S_IPW_OFF] + slots[mine, T.L_CHUNK] * nw
        bits = _popcounts(core.cidr.ip_words, start, nw) - (nw * 64 - slots[mine, T.L_MAX])
        if not np.array_equal(bits, slots[mine, T.L_USED]):
            problems.append("a node CIDR's bitmap disagrees with its used count")
        free = np.sum((slots[mine, T.L_MAX] - slots[mine, T.L_USED])[live[mine]])
        if core.cnt[fc + T.F_FREE] != free:
            problems.append(f"free counter {core.cnt[fc + T.F_FREE]} != free addresses in live CIDRs {free}")
        carved = np.sum(sets[s, T.S_ADDRS])
        if core.cnt[fc + T.F_CARVED] != carved:
            problems.append(f"carved counter {core.cnt[fc + T.F_CARVED]} != {carved}")
        reserved = np.sum(sets[s, T.S_ADDRS] - slots[mine, T.L_MAX] + slots[mine, T.L_RESERVED])
        if core.cnt[fc + T.F_RESERVED] != reserved:
            problems.append(f"reserved counter {core.cnt[fc + T.F_RESERVED]} != {reserved}")
        if core.cnt[fc + T.F_NODE_CIDRS] != mine.size:
            problems.append("node-CIDR counter differs from the slots held")

    return problems + _check_pods_and_nodes(st, running)


def _check_pods_and_nodes(st, running: np.ndarray) -> list[str]:
    """Pod and node counters against the pods and nodes tables (every policy)."""
    core = st.core
    problems: list[str] = []
    pods, nodes = core.pod_tables.pods, core.nodes
    states = pods[:, T.D_STATE]
    if core.cnt[T.K_RUNNING] != running.size:
        problems.append("running counter differs from the pods table")
    if core.cnt[T.K_PENDING] != np.count_nonzero(states == T.POD_PENDING):
        problems.append("pending counter differs from the pods table")
    bound = pods[:, T.D_NODE]
    on_node = np.bincount(bound[bound >= 0], minlength=nodes.shape[0])
    if not np.array_equal(on_node, nodes[:, T.N_PODS]):
        problems.append("a node's pod count differs from the pods bound to it")
    if np.any((bound >= 0) & (states != T.POD_RUNNING) & (states != T.POD_PENDING)):
        problems.append("a deleted or failed pod is still bound to a node")
    present = nodes[:, T.N_PRESENT] == 1
    if np.any(on_node[~present] > 0):
        problems.append("pods are bound to a node that is not present")
    live = np.flatnonzero((states == T.POD_RUNNING) | (states == T.POD_PENDING))
    if not np.array_equal(core.pod_tables.pod_row[pods[live, T.D_ID]], live):
        problems.append("a live pod's row is not the one its pod id maps to")
    if live.size + core.cnt[T.K_ROW_TOP] != pods.shape[0]:
        problems.append("pod rows are neither live nor on the free-row stack")
    if core.cnt[T.K_NODES] != np.count_nonzero(present) or core.cnt[T.K_READY] != np.count_nonzero(nodes[:, T.N_READY]):
        problems.append("node counters differ from the nodes table")
    return problems


# ---------------------------------------------------------------------------- cloud modes
def _cloud_addresses(st) -> tuple[np.ndarray, np.ndarray]:
    """Every subnet address held: (set, offset) of unit addresses, interface primaries and cloud reservations."""
    core = st.core
    present = np.flatnonzero(core.nodes[:, T.N_PRESENT] == 1)
    units = st.cl_unit[present].reshape(-1, T.CU_NCOL)
    units = units[units[:, T.CU_SET] >= 0]
    sizes = units[:, T.CU_SIZE]
    unit_set = np.repeat(units[:, T.CU_SET], sizes)
    starts = np.repeat(units[:, T.CU_OFF], sizes)
    within = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    ifaces = st.cl_iface[present].reshape(-1, T.CI_NCOL)
    ifaces = ifaces[(ifaces[:, T.CI_ATTACHED] == 1) & (ifaces[:, T.CI_PRIMARY] >= 0)]
    sets = [unit_set, ifaces[:, T.CI_SET]]
    offsets = [starts + within, ifaces[:, T.CI_PRIMARY]]

    if core.icfg[T.I_CL_SUBNET_RESERVED] != 0:
        for s, n in enumerate(core.cidr.sets[:, T.S_N]):
            if n >= 8:
                edge = list(range(SUBNET_RESERVED_LOW)) + [n - 1 - k for k in range(SUBNET_RESERVED_HIGH)]
                sets.append(np.full(len(edge), s))
                offsets.append(np.array(edge, dtype=np.int64))
    return np.concatenate(sets).astype(np.int64), np.concatenate(offsets).astype(np.int64)


def _check_cloud(st) -> list[str]:
    """Invariants of the cloud tables: no address held twice, subnet bitmaps equal what is held, counters."""
    core = st.core
    problems: list[str] = []
    sets = core.cidr.sets
    subnet, offset = _cloud_addresses(st)
    keys = subnet * (1 << 40) + offset
    if np.unique(keys).size != keys.size:
        problems.append("a subnet address is held twice")
    if np.any(offset < 0) or np.any(offset >= sets[subnet, T.S_N]):
        problems.append("a held address lies outside its subnet")
        return problems
    words = sets[subnet, T.S_W_OFF] + (offset >> 6)
    bits = (core.cidr.set_words[words] >> (offset & 63).astype(np.uint64)) & np.uint64(1)
    if np.any(bits != 1):
        problems.append("a held address is free in its subnet bitmap")
    n = core.nodes.shape[0]  # subnet rows below the node rows: what other consumers held from the start
    others = st.cl_node[n : n + sets.shape[0], T.CS_OTHERS]
    if not np.array_equal(np.bincount(subnet, minlength=sets.shape[0]) + others, sets[:, T.S_ALLOCATED]):
        problems.append("a subnet bitmap holds addresses no node, interface or reservation holds")
    present = np.flatnonzero(core.nodes[:, T.N_PRESENT] == 1)
    cn = st.cl_node[present]
    units = st.cl_unit[present]
    live = units[:, :, T.CU_SET] >= 0
    masks = np.where(live, units[:, :, T.CU_MASK], 0)
    used = np.where(live, units[:, :, T.CU_USED], 0)
    if not np.array_equal(np.bitwise_count(masks.astype(np.uint64)).astype(np.int64), used):
        problems.append("a unit's used count differs from its mask")
    if np.any(masks >> np.where(live, units[:, :, T.CU_SIZE], 64).clip(max=63) > 0):
        problems.append("a unit's mask has bits past its size")
    held = np.where(live, units[:, :, T.CU_SIZE], 0).sum(axis=1)
    if not np.array_equal(held, cn[:, T.CN_HELD]) or not np.array_equal(used.sum(axis=1), cn[:, T.CN_USED]):
        problems.append("a node's held or used count differs from its units")
    if not np.array_equal(live.sum(axis=1), cn[:, T.CN_UNITS]):
        problems.append("a node's unit count differs from its units")
    running = np.flatnonzero(core.pod_tables.pods[:, T.D_STATE] == T.POD_RUNNING)
    node_of = core.pod_tables.pods[running, T.D_NODE].astype(np.int64)  # int32 table: keys below go past 2**31
    per_node = np.bincount(node_of, minlength=core.nodes.shape[0])[present]
    if not np.array_equal(per_node + cn[:, T.CN_RESERVED], cn[:, T.CN_USED]):
        problems.append("a node's used addresses differ from its running pods plus the agent's reservations")
    j = core.pod_tables.pods[running, T.D_SLOT]
    bit = core.pod_tables.pods[running, T.D_OFF]
    if np.any(j < 0):
        problems.append("a running pod has no address")
    else:
        unit = st.cl_unit[node_of, j]
        if np.any(unit[:, T.CU_SET] < 0) or np.any((unit[:, T.CU_MASK] >> bit) & 1 != 1):
            problems.append("a running pod's address is not taken in its node's pool")
        pod_keys = (node_of * st.cl_unit.shape[1] + j) * 64 + bit
        if np.unique(pod_keys).size != pod_keys.size:
            problems.append("two running pods hold one address")
    fc = T.K_FAMILY_BASE
    counters = {
        "used": (core.cnt[fc + T.F_USED], running.size),
        "free": (core.cnt[fc + T.F_FREE], int((cn[:, T.CN_HELD] - cn[:, T.CN_USED]).sum())),
        "carved": (core.cnt[fc + T.F_CARVED], int(sets[:, T.S_ALLOCATED].sum())),
        "carvable": (core.cnt[fc + T.F_CARVABLE], int((sets[:, T.S_N] - sets[:, T.S_ALLOCATED]).sum())),
        "node CIDRs": (core.cnt[fc + T.F_NODE_CIDRS], int(live.sum())),
        "interfaces": (core.cnt[T.K_CL_IFACES], int(cn[:, T.CN_IFACES].sum())),
        "prefixes": (core.cnt[T.K_CL_PREFIXES], int((np.where(live, units[:, :, T.CU_SIZE], 0) > 1).sum())),
        "pool free": (core.cidr.pool_free[0, 0], int((cn[:, T.CN_HELD] - cn[:, T.CN_USED]).sum())),
        "pool carvable": (core.cidr.pool_carvable[0, 0], int((sets[:, T.S_N] - sets[:, T.S_ALLOCATED]).sum())),
    }
    cnt = core.cnt
    reserved = cnt[fc + T.F_CARVED] - cnt[fc + T.F_RESERVED] - cnt[fc + T.F_USED] - cnt[fc + T.F_FREE]
    if reserved != 0:
        problems.append(f"carved {core.cnt[fc + T.F_CARVED]} != reserved + used + free ({reserved} apart)")
    for name, (counter, actual) in counters.items():
        if counter != actual:
            problems.append(f"cloud {name} counter {counter} != {actual}")
    return problems
