"""Start a run from a cluster's own state: exact node CIDRs and pod addresses at t=0.

A scenario's ``initialState`` (:mod:`ipam_core.scenario.initial_state`) holds
each node's CIDRs and each pod's addresses, placed in the layout of the mode the
cluster runs. :func:`start_arrays` maps them onto one workload's node and pod
ids, and the compiled :func:`start_from_state` applies them before the first
event, the way a restarted operator and agents find a running cluster:

* the node joins and takes exactly its CIDRs: their bits are set in the pool's
  bitmaps at their own positions, not by the carving order (the operator's
  ``Occupy`` at restart: kubernetes ``cidr_set.go``, cilium
  ``podcidr.go`` / ``multipool/pool_allocator.go`` restoring ``allocated``);
  the next-fit cursor stays at 0 as after a restart;
* each pod alive at t=0 takes exactly its address in its node CIDR's bitmap
  (the agent restores its endpoints' addresses, ``pkg/ipam`` ``AllocateIP``);
* then the agent takes its router and health addresses: the dumped ones
  (CiliumNode ``spec.addresses`` ``CiliumInternalIP``, ``spec.health``), else
  random free ones (after the pods': they cannot land on a pod's address),
  and is ready once it holds a CIDR per family
  (multi-pool: ``waitForAllPools``); a multi-pool agent writes its demand after
  the update debounce, so the operator may carve more or take unused CIDRs
  back by the usual rules.

The workload's own t=0 node-add and pod-add events of these nodes and pods are
then no-ops (the node is present, the pod id seen). Only runs of the cluster's
mode start from the state; other modes carve by their rules.
"""

from __future__ import annotations

import ipaddress

import numpy as np

from ipam_core.engine import tables as T

from ipam_core.engine.core import (
    _agent_ready,
    _bind,
    _fc,
    _node_add,
    _occupy_slot,
    _row_alloc,
    _sched_addresses_changed,
    _set_bitmap,
    _slot_room,
    _take_offset,
    _take_reserved,
)
from ipam_core.engine.hooks import agent_can_start, pod_changed
from ipam_core.engine.tables import (
    D_OFF,
    D_PIN,
    D_POOL,
    D_SLOT,
    D_STATE,
    F_IP_ALLOCS,
    F_RESERVED,
    F_USED,
    I_DEFAULT_POOL,
    I_FAMILY,
    I_HEALTH,
    K_ERROR,
    K_RUNNING,
    L_INDEX,
    L_POOL,
    L_RESERVED,
    L_SET,
    N_NSLOTS,
    N_READY,
    POD_RUNNING,
    S_FAMILY,
    S_POOL,
)
from ipam_core.kernels._jit import kjit
from ipam_core.kernels.slots import bm_set, bm_test
from ipam_core.podiprange import range_size
from ipam_core.workloads.events import OP_NODE_ADD, OP_POD_ADD

#: ``start_from_state`` codes besides the engine's ``ERROR_*``: a CIDR or address already taken
START_CIDR_TAKEN = 101
START_ADDRESS_TAKEN = 102

#: ``pod_rows`` columns: workload pod id, node id, then per family set, CIDR index, offset
PR_POD, PR_NODE, PR_FAMILY = 0, 1, 2
PR_NCOL = 2 + 2 * 3


def start_arrays(initial, workload) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The state's nodes, CIDRs, pods and agent addresses in one workload's ids (those added at t=0).

    Parameters
    ----------
    initial : ipam_core.scenario.initial_state.InitialState
    workload : ipam_core.workloads.events.Workload

    Returns
    -------
    nodes : numpy.ndarray
        int64: node ids to start, in the file's order.
    cidr_rows : numpy.ndarray
        int64 [CIDRs, 3]: node id, set, CIDR index in the set.
    pod_rows : numpy.ndarray
        int64 [pods, PR_NCOL]: pod id, node id, per family set / CIDR index / offset (-1: none).
    agents : numpy.ndarray
        int64 [len(nodes), 12]: per node its router then health address, per family set /
        CIDR index / offset (-1: none, the agent takes a random free one).

    Notes
    -----
    A node the workload does not add at t=0 is not started (it joins when the
    workload says, carving by the rules), nor are its pods; a pod the workload
    does not create at t=0 takes an address by the rules when it is created.
    """
    at_zero = workload.time == 0.0
    node_of = started_nodes(initial, workload)
    pod_ids: dict[tuple[str, str], int] = {}
    adds = np.flatnonzero(at_zero & (workload.op == OP_POD_ADD))
    names = workload.pod_names.to_pylist() if workload.pod_names is not None else None
    for e in adds.tolist():
        pod = int(workload.pod[e])
        key = (workload.namespaces[workload.namespace[e]], names[pod] if names else f"pod-{pod}")
        pod_ids.setdefault(key, pod)
    nodes = node_of[node_of >= 0]
    agents = initial.agent_addrs[node_of >= 0].reshape(-1, 2 * 2 * 3)
    cidr_rows = initial.cidr_rows.copy()
    cidr_rows[:, 0] = node_of[cidr_rows[:, 0]] if cidr_rows.size else cidr_rows[:, 0]
    cidr_rows = cidr_rows[cidr_rows[:, 0] >= 0]
    pods = np.asarray([pod_ids.get(key, -1) for key in initial.pod_keys], dtype=np.int64)
    pod_rows = np.empty((pods.size, PR_NCOL), dtype=np.int64)
    pod_rows[:, PR_POD] = pods
    pod_rows[:, PR_NODE] = node_of[initial.pod_node] if pods.size else 0
    pod_rows[:, PR_FAMILY:] = initial.pod_addrs.reshape(-1, 6)
    keep = (pod_rows[:, PR_POD] >= 0) & (pod_rows[:, PR_NODE] >= 0)
    return nodes, cidr_rows, pod_rows[keep], agents


def started_nodes(initial, workload) -> np.ndarray:
    """Each node of the state as a workload node id, -1 for one the workload does not add at t=0.

    Parameters
    ----------
    initial : ipam_core.scenario.initial_state.InitialState
    workload : ipam_core.workloads.events.Workload

    Returns
    -------
    numpy.ndarray
        int64 [len(initial.node_names)].
    """
    node_ids = {name: i for i, name in enumerate(workload.node_names)}
    added = set(workload.node[(workload.time == 0.0) & (workload.op == OP_NODE_ADD)].tolist())
    node_of = np.full(len(initial.node_names), -1, dtype=np.int64)
    for i, name in enumerate(initial.node_names):
        node_id = node_ids.get(name, -1)
        node_of[i] = node_id if node_id in added else -1
    return node_of


@kjit
def _take_cidr(st, node, s, index):
    """Give ``node`` the node CIDR ``index`` of set ``s`` (not by the carving order); the slot, or -1."""
    core = st.core
    words, summary = _set_bitmap(core.cidr, s)
    if bm_test(words, index):
        return -1
    if not _slot_room(core.nodes, core.cidr, core.cnt, node, s):
        return -1
    bm_set(words, summary, index)
    return _occupy_slot(st, node, core.cidr.sets[s, S_POOL], core.cidr.sets[s, S_FAMILY], s, index)


@kjit
def _node_slot(nodes, cidr, node, s, index):
    """The node's slot holding CIDR ``index`` of set ``s``; -1 if it has none."""
    for k in range(nodes[node, N_NSLOTS]):
        slot = cidr.node_slots[node, k]
        if cidr.slots[slot, L_SET] == s and cidr.slots[slot, L_INDEX] == index:
            return slot
    return -1


@kjit
def _start_pod(st, row, node, where):
    """Bind a pod row to its node with the addresses ``where`` (per family: set, CIDR index, offset)."""
    core = st.core
    pods = core.pod_tables.pods
    pods[row, D_PIN] = node
    _bind(core.nodes, core.pod_tables, core.sched, core.icfg, core.cnt, row, node)
    for family in range(2):
        s = where[3 * family]
        if s < 0:
            continue
        slot = _take_exact(core.nodes, core.cidr, core.cnt, node, where[3 * family: 3 * family + 3])
        if slot < 0:
            return False
        pods[row, D_SLOT + family] = slot
        pods[row, D_OFF + family] = where[3 * family + 2]
        pods[row, D_POOL + family] = core.cidr.slots[slot, L_POOL]
        core.cnt[_fc(family, F_USED)] += 1
        core.cnt[_fc(family, F_IP_ALLOCS)] += 1
    pods[row, D_STATE] = POD_RUNNING
    core.cnt[K_RUNNING] += 1
    return True


@kjit
def _take_exact(nodes, cidr, cnt, node, where):
    """Take a dumped address (set, CIDR index, offset) of the node; its slot, or -1."""
    slot = _node_slot(nodes, cidr, node, where[0], where[1])
    if slot < 0 or not _take_offset(cidr, cnt, slot, where[2]):
        return -1
    return slot


@kjit
def _start_agent(st, node, agent):
    """The agent's router and health addresses: the dumped ones, else random free ones (``_agent_start``)."""
    core = st.core
    pool = core.icfg[I_DEFAULT_POOL]
    if pool < 0:
        return True
    for exact in (True, False):  # the dumped ones first: a random one cannot land on them
        for family in range(2):
            if core.icfg[I_FAMILY + family] == 0:
                continue
            for kind in range(2 if core.icfg[I_HEALTH] != 0 else 1):
                where = agent[6 * kind + 3 * family: 6 * kind + 3 * family + 3]
                if (where[0] >= 0) != exact:
                    continue
                if not exact:
                    _take_reserved(st, node, pool, family)
                    continue
                slot = _take_exact(core.nodes, core.cidr, core.cnt, node, where)
                if slot < 0:
                    return False
                core.cidr.slots[slot, L_RESERVED] += 1
                core.cnt[_fc(family, F_RESERVED)] += 1
    _agent_ready(st, node)
    return True


@kjit
def start_from_state(st, nodes, cidr_rows, pod_rows, agents):
    """Apply a cluster's state at t=0, before the first event.

    Parameters
    ----------
    st : State
        A fresh engine state of a pool mode (:mod:`ipam_core.engine.state`).
    nodes, cidr_rows, pod_rows, agents : numpy.ndarray
        :func:`start_arrays`.

    Returns
    -------
    int
        0; an engine ``ERROR_*`` code when a table ran out of room; ``START_CIDR_TAKEN`` or
        ``START_ADDRESS_TAKEN`` when a CIDR or address was taken twice (the scenario
        loader refuses such a state, so this is a bug).
    """
    core = st.core
    for i in range(nodes.shape[0]):
        _node_add(st, nodes[i], 0.0)
    for i in range(cidr_rows.shape[0]):
        if _take_cidr(st, cidr_rows[i, 0], cidr_rows[i, 1], cidr_rows[i, 2]) < 0:
            return core.cnt[K_ERROR] if core.cnt[K_ERROR] != 0 else START_CIDR_TAKEN
    for i in range(pod_rows.shape[0]):
        row = _row_alloc(core.pod_tables, core.cnt, pod_rows[i, PR_POD])
        if row < 0:
            return core.cnt[K_ERROR] if core.cnt[K_ERROR] != 0 else START_ADDRESS_TAKEN
        if not _start_pod(st, row, pod_rows[i, PR_NODE], pod_rows[i, PR_FAMILY:]):
            return START_ADDRESS_TAKEN
    for i in range(nodes.shape[0]):
        node = nodes[i]
        # router and health addresses after the pods': a random one cannot land on a pod's
        if core.nodes[node, N_READY] == 0 and agent_can_start(st, node):  # the family's rule (engine/hooks.py)
            if not _start_agent(st, node, agents[i]):
                return START_ADDRESS_TAKEN
        else:
            _sched_addresses_changed(st, node)
        pod_changed(st, node, 0.0)  # its pods started: multi-pool's agent writes its demand, the operator follows
    return 0


def held_addresses(state, layout, workload) -> dict[tuple[str, str], list[str]]:
    """Each running pod's addresses now, as text (IPv4 first): what a test compares with the dump.

    Parameters
    ----------
    state : State
    layout : Layout
    workload : Workload

    Returns
    -------
    dict
        ``(namespace, name) -> [address, ...]`` of every running pod.
    """
    pods, slots = state.core.pod_tables.pods, state.core.cidr.slots
    names = workload.pod_names.to_pylist() if workload.pod_names is not None else None
    namespace_of = np.full(workload.n_pods, -1, dtype=np.int64)
    adds = workload.op == OP_POD_ADD
    namespace_of[workload.pod[adds]] = workload.namespace[adds]
    out: dict[tuple[str, str], list[str]] = {}
    for row in np.flatnonzero(pods[:, D_STATE] == POD_RUNNING).tolist():
        pod = int(pods[row, T.D_ID])
        texts = []
        for family in range(2):
            slot = int(pods[row, D_SLOT + family])
            if slot < 0:
                continue
            spec = layout.sets[int(slots[slot, L_SET])]
            shift = spec.network.max_prefixlen - spec.node_mask
            network = int(spec.network.network_address) + (int(slots[slot, L_INDEX]) << shift)
            base = network + (1 if range_size(ipaddress.ip_network((network, spec.node_mask))) > 2 else 0)
            texts.append(str(ipaddress.ip_address(base + int(pods[row, D_OFF + family]))))
        out[(workload.namespaces[namespace_of[pod]], names[pod] if names else f"pod-{pod}")] = texts
    return out
