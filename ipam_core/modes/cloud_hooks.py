"""The cloud rules family (``eni``, ``aws-vpc-cni``, ``azure``, ``crd``) as the loop calls it.

Registered with the loop through :mod:`ipam_core.engine.hooks`, once per pool
manager's State class (:func:`register_manager`). Each node keeps a pool of
addresses and /28 prefixes carved from subnet bitmaps by its manager; this module
says when the manager runs: each manager pass (T_CARVE, earliest request wins), the
agent's CiliumNode status write (T_AGENT_SYNC), the manager's periodic pass
(T_REFRESH), and when the agent is ready. Who the manager is follows from the
state's class when the loop compiles (:mod:`ipam_core.modes.cloud_manager`):
:class:`CloudState` is what a cloud run's state is built as, and :func:`prepare` hands
it to the class of the run's manager (``CloudConfig.kind``), so a run compiles its
own manager's pass alone. The managers' rules, with their upstream files:

* the Cilium operator (``eni``, ``azure``, ``crd`` with watermarks) and the
  interface, unit and subnet bookkeeping every manager shares:
  :mod:`ipam_core.modes.cloud_pool`;
* ipamd (``aws-vpc-cni``): :func:`ipam_core.modes.aws_vpc_cni.ipamd_pass`;
* AKS's CNS (``azure`` on AKS's dynamic pod subnet): :func:`ipam_core.modes.azure.cns_pass`;
* pools written once (AKS static blocks, a ``crd`` writer): ``cloud_pool._static_pass``.

The Cilium operator's class, :class:`CiliumOperatorState`, is registered here (three modes run
it); ipamd's, CNS's and the static pools' are registered by their mode modules.
"""

from __future__ import annotations


import numpy as np

from ipam_core.cloud.limits import PREFIX_SIZE
from ipam_core.engine import hooks
from ipam_core.engine.cloud_net import cloud_net
from ipam_core.engine.core import _loud, _push, _sched_addresses_changed, _sched_update, _set_wake
from ipam_core.engine.sampling import cloud_node_rows
from ipam_core.engine.state import family_state
from ipam_core.engine.tables import (ADDRESS_FILTER_FREE, CG_IFACES, CG_MAX_ALLOC, CG_UNITS, CI_ATTACHED, CI_UNITS,
                                     CLOUD_CILIUM, CN_GROUP, CN_HELD, CN_PD, CN_RESERVED, CN_SYNC_ARMED, CN_UNITS,
                                     CN_USED, CT_API_AT, CT_OP_AT, C_OPERATOR_DELAY, D_NODE, I_ADDRESS_FILTER,
                                     I_CL_ATTACH, I_CL_FIRST_IFACE, K_READY, N_GEN, N_PENDING, N_PODS, N_READY,
                                     POLICY_CLOUD, T_AGENT_SYNC, T_CARVE, T_REFRESH)
from ipam_core.kernels._jit import kjit
from ipam_core.modes.cloud_api import api_retry_at
from ipam_core.modes.cloud_initial import start_cloud
from ipam_core.modes.cloud_manager import add_manager, class_of_kind, manager_pass, manager_quiet_until
from ipam_core.modes.cloud_pool import (CLOUD_TABLES, INF, LOUD, _cilium_pass, _cilium_quiet_until, cloud_agent_changed,
                                        cloud_agent_start, cloud_agent_sync, cloud_alloc_pod, cloud_node_add,
                                        cloud_node_delete, cloud_period, cloud_release_pod, init_cloud)

#: What :func:`~ipam_core.engine.state.build_state` builds for a cloud layout; it has no rules:
#: :func:`prepare` hands it to the class of the run's pool manager.
CloudState = family_state("CloudState", __name__, CLOUD_TABLES)
#: Cilium's operator (``eni``, ``azure``, ``crd`` with the watermark writer).
CiliumOperatorState = family_state("CiliumOperatorState", __name__, CLOUD_TABLES)


@kjit(inline=True)  # one call site, address_room
def _can_hold(st, node):
    core = st.core
    # free: the addresses the node can hold (its pool, the room left on its interfaces and on those it
    # may still attach, capped by max-allocate) less its reservations, the count an extended resource
    # would publish; the subnets' free addresses are not a node figure and are not looked at
    cn = st.cl_node
    # the node's group row (its instance type, cloud.nodeGroups), below the node and subnet rows
    group = cn[core.nodes.shape[0] + core.cidr.sets.shape[0] + cn[node, CN_GROUP]]
    units = group[CG_UNITS]
    size = PREFIX_SIZE if cn[node, CN_PD] == 1 else 1
    capacity = cn[node, CN_HELD]
    for iface in range(core.icfg[I_CL_FIRST_IFACE], group[CG_IFACES]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 1:
            capacity += (units - st.cl_iface[node, iface, CI_UNITS]) * size
        elif core.icfg[I_CL_ATTACH] != 0:
            capacity += units * size
    if group[CG_MAX_ALLOC] > 0:
        capacity = min(capacity, group[CG_MAX_ALLOC])
    return capacity - cn[node, CN_RESERVED]




# The rules are in ipam_core/modes/cloud_pool.py; here their timers and the agent's readiness.
# T_CARVE: a pass of the pool's manager (Cilium operator, crd writer, ipamd, CNS), earliest request wins;
# T_AGENT_SYNC: the agent writes its CiliumNode status; T_REFRESH: the manager's periodic pass.
@kjit(inline=True)
def _request(st, node, t):
    core = st.core
    if t < st.cl_time[node, CT_OP_AT]:
        st.cl_time[node, CT_OP_AT] = t
        _push(core.timer, core.cnt, t, T_CARVE, node, core.nodes[node, N_GEN])


@kjit
def pod_changed(st, node, now):
    core = st.core
    _loud(core.quiet, node)  # the node's pool use changed: its next periodic pass must run
    t = cloud_agent_changed(st, node, now)
    if t >= 0.0:
        _push(core.timer, core.cnt, t, T_AGENT_SYNC, node, core.nodes[node, N_GEN])


@kjit
def _settle(st, node, now, t_next):
    core = st.core
    if t_next >= 0.0:
        _request(st, node, t_next)
    if core.nodes[node, N_READY] == 0 and cloud_agent_start(st, node):
        core.nodes[node, N_READY] = 1
        core.cnt[K_READY] += 1
        _sched_update(core.nodes, core.sched, core.icfg, core.cnt, node)
        pod_changed(st, node, now)
    _sched_addresses_changed(st, node)  # the pass may have grown or shrunk the pool, the agent reserved some


@kjit
def node_added(st, node, now):
    core = st.core
    period = cloud_node_add(st, node, now)
    _request(st, node, now + core.cfg[C_OPERATOR_DELAY])
    if period > 0.0:
        _push(core.timer, core.cnt, now + period, T_REFRESH, node, core.nodes[node, N_GEN])


# --------------------------------------------------------------------------- who manages the pool: the state's class
@kjit
def cloud_operator(st, node, now):
    """One pass of whoever manages the node's pool (:func:`~ipam_core.modes.cloud_manager.manager_pass`).

    Returns
    -------
    float
        When the next event-driven pass should run (-1: none asked; the periodic pass,
        if any, still runs).
    """
    st.cl_time[node, CT_API_AT] = -INF
    return manager_pass(st, node, now)


@kjit(inline=True)  # an adapter: no call of its own (modes/cloud_manager.py)
def cilium_operator_pass(st, node, now):
    """Cilium's operator: one pass, and when it comes back.

    It comes back after its delay when it changed something (``MaintainIPPool`` triggers
    a resync and a new pass), or when its next call was throttled: its client limiter
    lets it go on once a token is there (:mod:`ipam_core.modes.cloud_api`).
    """
    if _cilium_pass(st, node, now):
        return now + st.core.cfg[C_OPERATOR_DELAY]
    return api_retry_at(st, node, now)


@kjit(inline=True)  # an adapter: no call of its own (modes/cloud_manager.py)
def written_once_quiet_until(st, node, now):
    """A pool written once (AKS static blocks, a ``crd`` writer): quiet for good once written."""
    return INF if st.cl_node[node, CN_UNITS] > 0 else LOUD


@kjit
def cloud_quiet_until(st, node, now):
    """Until when the node's periodic pass provably changes nothing (called just after one ran at ``now``).

    Parameters
    ----------
    st : State
    node : int
    now : float
        The time of the pass that just ran.

    Returns
    -------
    float
        A time after ``now`` before which a pass on the node's present tables
        changes no table, draws no random number and calls no cloud API (``inf``:
        never); ``LOUD`` (0.0) when the next pass must run. The node must be
        ready with no agent update or operator pass pending: those change what
        the pass reads.
    """
    if (st.core.nodes[node, N_READY] == 0 or st.cl_node[node, CN_SYNC_ARMED] != 0
            or st.cl_time[node, CT_OP_AT] != INF):
        return LOUD
    return manager_quiet_until(st, node, now)


@kjit
def node_timer(st, kind, node, gen, now):
    core = st.core
    if kind == T_CARVE:
        if now != st.cl_time[node, CT_OP_AT]:
            return  # superseded by an earlier request
        st.cl_time[node, CT_OP_AT] = np.inf
        _loud(core.quiet, node)
        _settle(st, node, now, cloud_operator(st, node, now))
    elif kind == T_AGENT_SYNC:
        _loud(core.quiet, node)
        _settle(st, node, now, cloud_agent_sync(st, node, now))
    elif kind == T_REFRESH:
        _settle(st, node, now, cloud_operator(st, node, now))
        _set_wake(core.quiet, node, cloud_quiet_until(st, node, now), now)
        _push(core.timer, core.cnt, now + cloud_period(st), T_REFRESH, node, gen)


@kjit
def address_room(st, node):
    """The cloud modes' ``address_room`` hook (see :func:`ipam_core.engine.core.slot_address_room`).

    ``warm``: running pods plus the free addresses of the node's pool; ``free``:
    the addresses the node can hold, less its reservations.
    """
    core = st.core
    if core.icfg[I_ADDRESS_FILTER] == ADDRESS_FILTER_FREE:
        return _can_hold(st, node)
    running = core.nodes[node, N_PODS] - core.nodes[node, N_PENDING]
    return running + st.cl_node[node, CN_HELD] - st.cl_node[node, CN_USED]


@kjit
def give_pod_addresses(st, pod):
    """The pod's address back to its node's pool."""
    cloud_release_pod(st, pod, st.core.pod_tables.pods[pod, D_NODE])


@kjit
def quiet_refresh(st, node, gen, now):
    """A periodic pass that changes nothing: only the next one is set."""
    _push(st.core.timer, st.core.cnt, now + cloud_period(st), T_REFRESH, node, gen)


def prepare(state, module, scenario, workload):
    """The cloud tables and settings of the mode, per node group (:func:`~ipam_core.engine.cloud_net.cloud_net`).

    The network is resolved here, once per run. A run of the mode a cluster was dumped in starts
    from its interfaces, addresses and pods (``initialState``, :mod:`ipam_core.modes.cloud_initial`).
    """
    net = cloud_net(module, scenario)
    cloud = net.merged()
    state = class_of_kind(cloud.kind)(*state)  # the run's pool manager: the loop compiles its rules alone
    state = init_cloud(state, cloud, len(workload.node_names), net)
    initial = scenario.initial_state
    if initial is not None and initial.cloud is not None and initial.mode == module.MODE.name and initial.starts:
        state = start_cloud(state, initial, workload)
    return state


@kjit
def held_addresses(st, node, family):
    """Addresses the node's pool holds (IPv4 only: the cloud modes hand out no IPv6)."""
    return st.cl_node[node, CN_HELD] if family == 0 else 0


#: The family's hooks, the same functions for every pool manager's class (each compiles per class).
RULES = dict(
    take_pod_addresses=cloud_alloc_pod,
    give_pod_addresses=give_pod_addresses,
    pod_changed=pod_changed,
    node_added=node_added,
    node_deleted=cloud_node_delete,
    node_timer=node_timer,
    quiet_refresh=quiet_refresh,
    refresh_period=cloud_period,
    address_room=address_room,
    sample_nodes=cloud_node_rows,
    free_is_warm_pool=hooks.always,
    held_addresses=held_addresses,
)


def register_manager(state_class: type, kind: int, operator_pass, quiet_until, reads_agent_status=None) -> None:
    """Register a cloud pool manager: its State class runs the family's hooks with the manager's own steps.

    Parameters
    ----------
    state_class : type
        The manager's State namedtuple class (``core`` and :data:`~ipam_core.modes.cloud_pool.CLOUD_TABLES`),
        defined at the top level of the module that calls this (the kernel cache names it).
    kind : int
        The ``CLOUD_*`` code whose runs :func:`prepare` hands to ``state_class``.
    operator_pass, quiet_until : numba dispatcher
        See :func:`ipam_core.modes.cloud_manager.add_manager`.
    reads_agent_status : numba dispatcher, optional
        See :func:`ipam_core.modes.cloud_manager.add_manager`.

    Raises
    ------
    ValueError
        The class or the kind is registered already.
    """
    add_manager(state_class, kind, operator_pass, quiet_until, reads_agent_status)
    hooks.register(state_class, None, **RULES)


hooks.register_family(CloudState, POLICY_CLOUD, prepare)
register_manager(CiliumOperatorState, CLOUD_CILIUM, cilium_operator_pass, _cilium_quiet_until,
                 reads_agent_status=hooks.always)  # the agent writes its CiliumNode status for the operator
