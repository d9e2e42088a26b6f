"""Invariants of the engine's state, recomputed from scratch with numpy.

:func:`check_invariants` is what the tests run after every simulation: no
address held twice, no node CIDR held twice, and every counter the traces
report equal to what the tables say. It reads the bitmaps themselves
(``np.bitwise_count``), not the engine's bookkeeping.
"""

from __future__ import annotations

import numpy as np

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
    problems: list[str] = []
    sets, slots, pods, nodes = st.sets, st.slots, st.pods, st.nodes
    held = np.flatnonzero(slots[:, T.L_STATE] != T.SLOT_FREE)
    live = slots[:, T.L_STATE] == T.SLOT_LIVE

    # node CIDRs: each (set, index) held once, and the set bitmaps say exactly that
    keys = slots[held, T.L_SET] * (1 << 40) + slots[held, T.L_INDEX]
    if np.unique(keys).size != keys.size:
        problems.append("a node CIDR is held by two slots")
    set_bits = _popcounts(st.set_words, sets[:, T.S_W_OFF], sets[:, T.S_W_LEN])
    pad = sets[:, T.S_W_LEN] * 64 - sets[:, T.S_N]
    held_per_set = np.bincount(slots[held, T.L_SET], minlength=sets.shape[0])
    if not np.array_equal(set_bits - pad, sets[:, T.S_ALLOCATED]):
        problems.append("a set's bitmap disagrees with its allocated count")
    if not np.array_equal(held_per_set, sets[:, T.S_ALLOCATED]):
        problems.append("a set's allocated count differs from the slots holding its CIDRs")

    # pod addresses: one per running pod and family, none shared, bitmaps agree
    running = np.flatnonzero(pods[:, T.D_STATE] == T.POD_RUNNING)
    for family in range(2):
        if st.cfg[T.C_FAMILY + family] == 0.0:
            continue
        slot = pods[running, T.D_SLOT + family]
        if np.any(slot < 0):
            problems.append(f"a running pod has no IPv{4 if family == 0 else 6} address")
            continue
        address = slot * (1 << 32) + pods[running, T.D_OFF + family]
        if np.unique(address).size != address.size:
            problems.append(f"two running pods hold one IPv{4 if family == 0 else 6} address")
        if np.any(slots[slot, T.L_STATE] != T.SLOT_LIVE):
            problems.append("a running pod's address lies in a CIDR that is not live")
        fc = T.K_FAMILY_BASE + T.FAMILY_STRIDE * family
        if st.cnt[fc + T.F_USED] != running.size:
            problems.append(f"IPv{4 if family == 0 else 6} used counter {st.cnt[fc + T.F_USED]} != running pods {running.size}")
        mine = held[slots[held, T.L_FAMILY] == family]
        pods_per_slot = np.bincount(slot, minlength=slots.shape[0])
        if not np.array_equal(pods_per_slot[mine] + slots[mine, T.L_RESERVED], slots[mine, T.L_USED]):
            problems.append("a node CIDR's used count differs from its pods plus router/health")
        s = slots[mine, T.L_SET]
        nw = sets[s, T.S_SLOT_WORDS]
        start = sets[s, T.S_IPW_OFF] + slots[mine, T.L_CHUNK] * nw
        bits = _popcounts(st.ip_words, start, nw) - (nw * 64 - slots[mine, T.L_MAX])
        if not np.array_equal(bits, slots[mine, T.L_USED]):
            problems.append("a node CIDR's bitmap disagrees with its used count")
        free = np.sum((slots[mine, T.L_MAX] - slots[mine, T.L_USED])[live[mine]])
        if st.cnt[fc + T.F_FREE] != free:
            problems.append(f"free counter {st.cnt[fc + T.F_FREE]} != free addresses in live CIDRs {free}")
        carved = np.sum(sets[s, T.S_ADDRS])
        if st.cnt[fc + T.F_CARVED] != carved:
            problems.append(f"carved counter {st.cnt[fc + T.F_CARVED]} != {carved}")
        reserved = np.sum(sets[s, T.S_ADDRS] - slots[mine, T.L_MAX] + slots[mine, T.L_RESERVED])
        if st.cnt[fc + T.F_RESERVED] != reserved:
            problems.append(f"reserved counter {st.cnt[fc + T.F_RESERVED]} != {reserved}")
        if st.cnt[fc + T.F_NODE_CIDRS] != mine.size:
            problems.append("node-CIDR counter differs from the slots held")

    # pods and nodes
    states = pods[:, T.D_STATE]
    if st.cnt[T.K_RUNNING] != running.size:
        problems.append("running counter differs from the pods table")
    if st.cnt[T.K_PENDING] != np.count_nonzero(states == T.POD_PENDING):
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
    if st.cnt[T.K_NODES] != np.count_nonzero(present) or st.cnt[T.K_READY] != np.count_nonzero(nodes[:, T.N_READY]):
        problems.append("node counters differ from the nodes table")
    return problems
