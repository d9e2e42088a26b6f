"""The node-CIDR rules family (``kubernetes``, ``cluster-pool``, ``gke``): one node CIDR per family per node.

Registered with the loop through :mod:`ipam_core.engine.hooks` for
:class:`NodeCidrState`. The operator (kube-controller-manager's range
allocator, or the Cilium operator in cluster-pool mode) gives a new node one
CIDR per family from the first set that is not full (kubernetes
``pkg/controller/nodeipam/ipam/range_allocator.go`` over ``cidrset/cidr_set.go``;
cilium ``pkg/ipam/allocator/podcidr/podcidr.go`` ``allocateFirstFreeCIDR``) and
retries after ``carveRetry`` when a pool is exhausted. Cilium reverts the IPv4
CIDR when IPv6 fails; kube-controller-manager keeps it. The agent waits for
its CIDRs (``pkg/k8s/init.go``), then allocates pod addresses only from its
first CIDR per family (``pkg/ipam/ipam.go``); the CIDRs go back when the node
is deleted. Carving and the pod-address bitmaps are the shared machinery of
:mod:`ipam_core.engine.core`.
"""

from __future__ import annotations


from ipam_core.engine import hooks
from ipam_core.engine.core import (
    _agent_start,
    _carve_slot,
    _free_slot,
    _holds_family,
    _push,
    give_slot_addresses,
    slot_address_room,
    take_slot_addresses,
)
from ipam_core.engine.sampling import pool_node_rows
from ipam_core.engine.state import family_state
from ipam_core.engine.tables import (
    C_CARVE_RETRY,
    C_OPERATOR_DELAY,
    I_FAMILY,
    I_REVERT_PARTIAL,
    N_GEN,
    N_NSLOTS,
    N_READY,
    N_STATUS,
    POLICY_ONE_PER_FAMILY,
    STATUS_OK,
    STATUS_POOL_EXHAUSTED,
    T_CARVE,
)
from ipam_core.kernels._jit import kjit

NodeCidrState = family_state("NodeCidrState", __name__)


@kjit
def _operator_one_per_family(st, node, now):
    core = st.core
    missing = False
    for family in range(2):
        if core.icfg[I_FAMILY + family] == 0:
            continue
        if not _holds_family(core.nodes, core.cidr, node, family) and _carve_slot(st, node, 0, family) < 0:
            missing = True
    if missing:
        if core.icfg[I_REVERT_PARTIAL] != 0:
            while core.nodes[node, N_NSLOTS] > 0:
                _free_slot(st, core.cidr.node_slots[node, 0])
        core.nodes[node, N_STATUS] = STATUS_POOL_EXHAUSTED
        _push(core.timer, core.cnt, now + core.cfg[C_CARVE_RETRY], T_CARVE, node, core.nodes[node, N_GEN])
        return
    core.nodes[node, N_STATUS] = STATUS_OK
    if core.nodes[node, N_READY] == 0:
        _agent_start(st, node)


@kjit
def _holds_every_family(st, node):
    """The ``agent_can_start`` hook: the node holds a CIDR of every enabled family (the operator's pass done)."""
    core = st.core
    for family in range(2):
        if core.icfg[I_FAMILY + family] != 0 and not _holds_family(core.nodes, core.cidr, node, family):
            return False
    return True


@kjit
def node_added(st, node, now):
    """The operator sees the new node after its reaction delay."""
    core = st.core
    _push(core.timer, core.cnt, now + core.cfg[C_OPERATOR_DELAY], T_CARVE, node, core.nodes[node, N_GEN])


@kjit
def node_timer(st, kind, node, gen, now):
    """The operator's pass (the only timer of this family)."""
    if kind == T_CARVE:
        _operator_one_per_family(st, node, now)


hooks.register(
    NodeCidrState,
    POLICY_ONE_PER_FAMILY,
    take_pod_addresses=take_slot_addresses,
    give_pod_addresses=give_slot_addresses,
    node_added=node_added,
    node_timer=node_timer,
    address_room=slot_address_room,
    sample_nodes=pool_node_rows,
    agent_can_start=_holds_every_family,
    one_cidr_per_family=hooks.always,  # host scope: the agent draws from its node's first CIDR only
)
