"""Start a cloud mode's run (``eni``, ``azure``, ``crd``) from a cluster's own state at t=0.

The CiliumNodes of a cloud cluster say which interfaces each node has, which addresses
and /28 prefixes the operator put on them (``status.eni.enis``, ``status.azure.interfaces``,
``spec.ipam.pool``) and which addresses are in use (``status.ipam.used``; the pods' own
``status.podIPs``). :mod:`ipam_core.scenario.initial_cloud` places them in the mode's
subnets; here, before the first event, the compiled :func:`cloud_start_from_state`
rebuilds the engine's cloud tables from them the way a restarted operator finds a
running cluster (its ``ResyncInterfacesAndIPs`` reads each instance's interfaces and
addresses back from the cloud: cilium ``pkg/aws/eni/node.go``, ``pkg/azure/ipam/node.go``):

* each node joins (its manager's timers armed as for any new node, ``cloud_hooks.node_added``),
  with **exactly its dumped interfaces** instead of a fresh eth0: each interface in its
  subnet, holding its primary address, and its secondary addresses and prefixes as units
  at their own offsets in the subnet bitmaps, so the subnets are used exactly as dumped (an
  Azure NIC's primary address is not in ``status.azure.interfaces``: it takes a free one);
* each pod alive at t=0 holds **exactly its dumped address** (its bit in the unit that
  holds it);
* the agent takes the router and health addresses the CiliumNode names where the node
  holds them, else free ones of its pool, once its pool holds the ready minimum (as
  ``cloud_agent_start``), and writes its status: the operator's first pass, after its
  delay, applies the watermarks (``pre-allocate``, ``max-above-watermark``, the
  excess release) to the dumped pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipam_core.modes.cloud_pool import (
    _detach,
    _fc,
    _add_unit,
    _reservation_end,
    _single_address,
    _subnet,
    _subnet_row,
    _take_subnet,
    cloud_attached,
    cloud_hold,
    cloud_pool_ready,
    cloud_primary_held,
    cloud_reserve,
)
from ipam_core.engine.core import _agent_ready, _bind, _node_add, _row_alloc, _sched_addresses_changed
from ipam_core.engine.hooks import pod_changed
from ipam_core.engine.initial import PR_FAMILY, PR_NODE, PR_POD, START_ADDRESS_TAKEN, start_arrays, started_nodes
from ipam_core.engine.tables import (
    CI_SET,
    CN_HELD,
    CN_RESERVED,
    CN_SUBNET,
    CS_RESV_COUNT,
    CS_RESV_FIRST,
    CS_RESV_FREE,
    CU_MASK,
    CU_OFF,
    CU_SET,
    CU_SIZE,
    D_OFF,
    D_PIN,
    D_SLOT,
    D_STATE,
    F_IP_ALLOCS,
    F_RESERVED,
    F_USED,
    I_CL_AGENT_RESERVED,
    I_CL_NIC,
    I_CL_PRIMARY,
    K_ERROR,
    K_RUNNING,
    N_READY,
    POD_RUNNING,
)
from ipam_core.errors import IPAMBenchError
from ipam_core.kernels._jit import kjit
from ipam_core.kernels.slots import bm_set, bm_test


#: ``CloudStart.ifaces`` columns: node index, interface index, subnet (set), primary address offset (-1: none)
IF_NODE, IF_INDEX, IF_SET, IF_PRIMARY = 0, 1, 2, 3
#: ``CloudStart.units`` columns: node index, interface index, subnet (set), first address offset, size (1 or 16)
UN_NODE, UN_IFACE, UN_SET, UN_OFF, UN_SIZE = 0, 1, 2, 3, 4


@dataclass(frozen=True, eq=False)
class CloudStart:
    """The interfaces and address units of a cloud cluster's nodes, in subnet offsets.

    Attributes
    ----------
    ifaces : numpy.ndarray
        int64 [interfaces, 4]: ``IF_*`` columns.
    units : numpy.ndarray
        int64 [units, 5]: ``UN_*`` columns; a secondary address (size 1) or a /28 prefix (16).
    """

    ifaces: np.ndarray
    units: np.ndarray


class InitialStateError(IPAMBenchError):
    """The engine could not take a cluster's state (an address another consumer of the subnet holds)."""


def start_cloud(state, initial, workload):
    """Apply a cloud cluster's state to a freshly prepared cloud state (``cloud_hooks.prepare``).

    Parameters
    ----------
    state : State
        After :func:`~ipam_core.modes.cloud_pool.init_cloud`.
    initial : ipam_core.scenario.initial_state.InitialState
        With its ``cloud`` interfaces and units.
    workload : ipam_core.workloads.events.Workload

    Returns
    -------
    State
        The same state, the nodes the workload adds at t=0 restored.

    Raises
    ------
    InitialStateError
        A dumped address is held already (``cloud.subnets[].sharedUsed`` placed another
        consumer there) or a table ran out of room.
    """
    code = cloud_start_from_state(state, *cloud_start_arrays(initial, workload))
    if code:
        raise InitialStateError(f"initialState: {initial.path.name}: the engine could not take the cluster's "
                                f"addresses in mode {initial.mode} (code {code}: an address other consumers of the "
                                "subnet hold, cloud.subnets[].sharedUsed; expected the dumped addresses free)")
    return state


def cloud_start_arrays(initial, workload) -> tuple[np.ndarray, ...]:
    """The nodes, interfaces, units, pods and agents of a cloud state in one workload's ids.

    Parameters
    ----------
    initial : ipam_core.scenario.initial_state.InitialState
        With its ``cloud`` interfaces and units.
    workload : ipam_core.workloads.events.Workload

    Returns
    -------
    tuple of numpy.ndarray
        ``nodes``, ``ifaces``, ``units``, ``pod_rows``, ``agents``: the arguments of
        :func:`cloud_start_from_state` (nodes and pods the workload does not add at t=0 left out).
    """
    nodes, _, pod_rows, agents = start_arrays(initial, workload)
    node_of = started_nodes(initial, workload)
    ifaces = _in_workload(initial.cloud.ifaces, IF_NODE, node_of)
    units = _in_workload(initial.cloud.units, UN_NODE, node_of)
    return nodes, ifaces, units, pod_rows, agents


def _in_workload(rows: np.ndarray, column: int, node_of: np.ndarray) -> np.ndarray:
    """``rows`` with their node index as the workload's node id, rows of nodes not started dropped."""
    out = rows.copy()
    if out.size:
        out[:, column] = node_of[out[:, column]]
    return np.ascontiguousarray(out[out[:, column] >= 0])


@kjit
def _take_exact(st, s, offset, size):
    """Take ``size`` addresses of subnet ``s`` from ``offset`` in its bitmap; False if one is held."""
    core = st.core
    words, summary = _subnet(core.cidr, s)
    for k in range(size):
        if bm_test(words, offset + k):
            return False
    for k in range(size):
        bm_set(words, summary, offset + k)
    row = st.cl_node[_subnet_row(core.nodes, s)]
    if row[CS_RESV_COUNT] > 0 and _reservation_end(st.cl_node, row[CS_RESV_FIRST], row[CS_RESV_COUNT], offset) >= 0:
        row[CS_RESV_FREE] -= size  # a prefix reservation's free count, as _take_prefix keeps it
    _take_subnet(core.cidr, core.cnt, s, size)
    return True


@kjit
def _unit_of(st, node, s, offset):
    """The node's unit holding address ``offset`` of subnet ``s`` and its bit, or (-1, -1)."""
    for j in range(st.cl_unit.shape[1]):
        unit = st.cl_unit[node, j]
        if unit[CU_SET] == s and unit[CU_OFF] <= offset < unit[CU_OFF] + unit[CU_SIZE]:
            bit = offset - unit[CU_OFF]
            if (unit[CU_MASK] >> bit) & 1:
                return -1, -1
            return j, bit
    return -1, -1


@kjit
def _start_agent(st, node, agent):
    """Router and health addresses: the dumped ones the node holds, then free ones up to the agent's count."""
    core = st.core
    want = core.icfg[I_CL_AGENT_RESERVED]
    for kind in range(2):
        s = agent[6 * kind]
        if s < 0 or st.cl_node[node, CN_RESERVED] >= want:
            continue
        j, bit = _unit_of(st, node, s, agent[6 * kind + 1])
        if j >= 0:
            cloud_hold(st, node, j, bit)
            st.cl_node[node, CN_RESERVED] += 1
            core.cnt[_fc(F_RESERVED)] += 1
    cloud_reserve(st, node, want - st.cl_node[node, CN_RESERVED])
    _agent_ready(st, node)


@kjit
def cloud_start_from_state(st, nodes, ifaces, units, pod_rows, agents):
    """Rebuild the cloud tables of the started nodes from their dumped interfaces, units, pods and agents.

    Parameters
    ----------
    st : State
        A cloud state after ``init_cloud``.
    nodes, pod_rows, agents : numpy.ndarray
        :func:`~ipam_core.engine.initial.start_arrays` (pod and agent addresses as subnet set,
        address offset, 0).
    ifaces, units : numpy.ndarray
        :class:`~ipam_core.scenario.initial_cloud.CloudStart` rows in workload node ids.

    Returns
    -------
    int
        0; an engine ``ERROR_*`` code when a table ran out of room; ``START_ADDRESS_TAKEN`` when
        an address is held already.
    """
    core = st.core
    nic = core.icfg[I_CL_NIC] != 0
    for i in range(nodes.shape[0]):
        _node_add(st, nodes[i], 0.0)  # joins; its manager's timers armed (cloud_hooks.node_added)
    if nic:  # each instance's eth0 is the dumped one (below), not the fresh one node_added gave it
        for i in range(nodes.shape[0]):
            _detach(st, nodes[i], 0)
    for r in range(ifaces.shape[0]):
        node, iface, s, primary = ifaces[r, 0], ifaces[r, 1], ifaces[r, 2], ifaces[r, 3]
        if primary >= 0 and not _take_exact(st, s, primary, 1):
            return START_ADDRESS_TAKEN
        if nic:
            cloud_attached(st, node, iface, s, primary, 0.0)
        else:  # a crd pool: the node's one row of units, attached when it joined
            st.cl_iface[node, 0, CI_SET] = s
        if iface == 0:
            st.cl_node[node, CN_SUBNET] = s
    for r in range(units.shape[0]):
        node, iface, s, offset, size = units[r, 0], units[r, 1], units[r, 2], units[r, 3], units[r, 4]
        if not _take_exact(st, s, offset, size):
            return START_ADDRESS_TAKEN
        if _add_unit(st, node, iface, s, offset, size) < 0:
            return core.cnt[K_ERROR]
    if nic and core.icfg[I_CL_PRIMARY] != 0:  # an Azure NIC's primary is not in the dump: a free one of its subnet
        for r in range(ifaces.shape[0]):
            if ifaces[r, 3] < 0:
                offset = _single_address(st, ifaces[r, 2], False)
                if offset >= 0:
                    cloud_primary_held(st, ifaces[r, 0], ifaces[r, 1], offset)
    for i in range(pod_rows.shape[0]):
        node = pod_rows[i, PR_NODE]
        j, bit = _unit_of(st, node, pod_rows[i, PR_FAMILY], pod_rows[i, PR_FAMILY + 1])
        row = _row_alloc(core.pod_tables, core.cnt, pod_rows[i, PR_POD])
        if row < 0 or j < 0:
            return core.cnt[K_ERROR] if core.cnt[K_ERROR] != 0 else START_ADDRESS_TAKEN
        core.pod_tables.pods[row, D_PIN] = node
        _bind(core.nodes, core.pod_tables, core.sched, core.icfg, core.cnt, row, node)
        cloud_hold(st, node, j, bit)
        core.pod_tables.pods[row, D_SLOT] = j
        core.pod_tables.pods[row, D_OFF] = bit
        core.pod_tables.pods[row, D_STATE] = POD_RUNNING
        core.cnt[_fc(F_USED)] += 1
        core.cnt[_fc(F_IP_ALLOCS)] += 1
        core.cnt[K_RUNNING] += 1
    for i in range(nodes.shape[0]):
        node = nodes[i]
        if core.nodes[node, N_READY] == 0 and st.cl_node[node, CN_HELD] > 0 and cloud_pool_ready(st, node):
            _start_agent(st, node, agents[i])
        else:
            _sched_addresses_changed(st, node)
        pod_changed(st, node, 0.0)  # the agent writes its status (status.ipam.used): the operator's pass follows
    return 0
