"""The cloud rules family (``eni``, ``aws-vpc-cni``, ``azure``, ``crd``) as the loop calls it.

Registered with the loop through :mod:`ipam_core.engine.hooks` for
:class:`CloudState`. Each node keeps a pool of addresses and /28 prefixes
carved from subnet bitmaps by its manager; this module says who that is per
``CloudConfig.kind`` (:func:`cloud_operator`, :func:`cloud_quiet_until`) and when
it runs: each manager pass (T_CARVE, earliest request wins), the agent's
CiliumNode status write (T_AGENT_SYNC), the manager's periodic pass (T_REFRESH),
and when the agent is ready. The managers' rules, with their upstream files:

* the Cilium operator (``eni``, ``azure``, ``crd`` with watermarks) and the
  interface, unit and subnet bookkeeping every manager shares:
  :mod:`ipam_core.modes.cloud_pool`;
* ipamd (``aws-vpc-cni``): :func:`ipam_core.modes.aws_vpc_cni.ipamd_pass`;
* AKS's CNS (``azure`` on AKS's dynamic pod subnet): :func:`ipam_core.modes.azure.cns_pass`;
* pools written once (AKS static blocks, a ``crd`` writer): ``cloud_pool._static_pass``.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ipam_core.cloud.limits import PREFIX_SIZE
from ipam_core.engine import hooks
from ipam_core.engine.cloud_net import cloud_net
from ipam_core.engine.core import _loud, _push, _sched_addresses_changed, _sched_update, _set_wake
from ipam_core.engine.sampling import cloud_node_rows
from ipam_core.engine.state import STATE_FIELDS
from ipam_core.engine.tables import (ADDRESS_FILTER_FREE, CG_IFACES, CG_MAX_ALLOC, CG_UNITS, CI_ATTACHED, CI_UNITS,
                                     CLOUD_AKS_DYNAMIC, CLOUD_AKS_STATIC, CLOUD_CILIUM, CLOUD_VPC_CNI, CN_GROUP,
                                     CN_HELD, CN_PD, CN_RESERVED, CN_SYNC_ARMED, CN_UNITS, CN_USED, CT_API_AT, CT_OP_AT,
                                     C_OPERATOR_DELAY, D_NODE, I_ADDRESS_FILTER, I_CL_ATTACH, I_CL_FIRST_IFACE,
                                     I_CL_KIND, K_READY, N_GEN, N_PENDING, N_PODS, N_READY, POLICY_CLOUD, T_AGENT_SYNC,
                                     T_CARVE, T_REFRESH)
from ipam_core.kernels._jit import kjit
from ipam_core.modes.aws_vpc_cni import ipamd_pass, ipamd_quiet_until
from ipam_core.modes.azure import cns_pass, cns_quiet_until
from ipam_core.modes.cloud_api import api_retry_at
from ipam_core.modes.cloud_initial import start_cloud
from ipam_core.modes.cloud_pool import (INF, LOUD, _cilium_pass, _cilium_quiet_until, _static_pass, cloud_agent_changed,
                                        cloud_agent_start, cloud_agent_sync, cloud_alloc_pod, cloud_node_add,
                                        cloud_node_delete, cloud_period, cloud_release_pod, init_cloud)

CloudState = namedtuple("CloudState", STATE_FIELDS)


@kjit(inline=True)  # one call site, address_room
def _can_hold(st, node):
    # free: the addresses the node can hold (its pool, the room left on its interfaces and on those it
    # may still attach, capped by max-allocate) less its reservations, the count an extended resource
    # would publish; the subnets' free addresses are not a node figure and are not looked at
    cn = st.cl_node
    # the node's group row (its instance type, cloud.nodeGroups), below the node and subnet rows
    group = cn[st.nodes.shape[0] + st.sets.shape[0] + cn[node, CN_GROUP]]
    units = group[CG_UNITS]
    size = PREFIX_SIZE if cn[node, CN_PD] == 1 else 1
    capacity = cn[node, CN_HELD]
    for iface in range(st.icfg[I_CL_FIRST_IFACE], group[CG_IFACES]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 1:
            capacity += (units - st.cl_iface[node, iface, CI_UNITS]) * size
        elif st.icfg[I_CL_ATTACH] != 0:
            capacity += units * size
    if group[CG_MAX_ALLOC] > 0:
        capacity = min(capacity, group[CG_MAX_ALLOC])
    return capacity - cn[node, CN_RESERVED]




# The rules are in ipam_core/modes/cloud_pool.py; here their timers and the agent's readiness.
# T_CARVE: a pass of the pool's manager (Cilium operator, crd writer, ipamd, CNS), earliest request wins;
# T_AGENT_SYNC: the agent writes its CiliumNode status; T_REFRESH: the manager's periodic pass.
@kjit(inline=True)
def _request(st, node, t):
    if t < st.cl_time[node, CT_OP_AT]:
        st.cl_time[node, CT_OP_AT] = t
        _push(st, t, T_CARVE, node, st.nodes[node, N_GEN])


@kjit
def pod_changed(st, node, now):
    _loud(st, node)  # the node's pool use changed: its next periodic pass must run
    t = cloud_agent_changed(st, node, now)
    if t >= 0.0:
        _push(st, t, T_AGENT_SYNC, node, st.nodes[node, N_GEN])


@kjit
def _settle(st, node, now, t_next):
    if t_next >= 0.0:
        _request(st, node, t_next)
    if st.nodes[node, N_READY] == 0 and cloud_agent_start(st, node):
        st.nodes[node, N_READY] = 1
        st.cnt[K_READY] += 1
        _sched_update(st, node)
        pod_changed(st, node, now)
    _sched_addresses_changed(st, node)  # the pass may have grown or shrunk the pool, the agent reserved some


@kjit
def node_added(st, node, now):
    period = cloud_node_add(st, node, now)
    _request(st, node, now + st.cfg[C_OPERATOR_DELAY])
    if period > 0.0:
        _push(st, now + period, T_REFRESH, node, st.nodes[node, N_GEN])


# --------------------------------------------------------------------------- who manages the pool, per kind
@kjit
def cloud_operator(st, node, now):
    """One pass of whoever manages the node's pool.

    Returns
    -------
    float
        When the next event-driven pass should run (-1: none asked; the periodic pass,
        if any, still runs). Cilium's operator comes back after its delay when it
        changed something (``MaintainIPPool`` triggers a resync and a new pass), or
        when its next call was throttled: its client limiter lets it go on once a
        token is there (:mod:`ipam_core.modes.cloud_api`).
    """
    kind = st.icfg[I_CL_KIND]
    st.cl_time[node, CT_API_AT] = -INF
    if kind == CLOUD_CILIUM:
        if _cilium_pass(st, node, now):
            return now + st.cfg[C_OPERATOR_DELAY]
        return api_retry_at(st, node, now)
    if kind == CLOUD_VPC_CNI:
        ipamd_pass(st, node, now)
    elif kind == CLOUD_AKS_DYNAMIC:
        cns_pass(st, node, now)
    elif kind == CLOUD_AKS_STATIC:
        _static_pass(st, node, True, now)
    else:
        _static_pass(st, node, False, now)
    return -1.0


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
    if (st.nodes[node, N_READY] == 0 or st.cl_node[node, CN_SYNC_ARMED] != 0
            or st.cl_time[node, CT_OP_AT] != INF):
        return LOUD
    kind = st.icfg[I_CL_KIND]
    if kind == CLOUD_CILIUM:
        return _cilium_quiet_until(st, node, now)
    if kind == CLOUD_VPC_CNI:
        return ipamd_quiet_until(st, node, now)
    if kind == CLOUD_AKS_DYNAMIC:
        return cns_quiet_until(st, node)
    return INF if st.cl_node[node, CN_UNITS] > 0 else LOUD  # static pools are written once

@kjit
def node_timer(st, kind, node, gen, now):
    if kind == T_CARVE:
        if now != st.cl_time[node, CT_OP_AT]:
            return  # superseded by an earlier request
        st.cl_time[node, CT_OP_AT] = np.inf
        _loud(st, node)
        _settle(st, node, now, cloud_operator(st, node, now))
    elif kind == T_AGENT_SYNC:
        _loud(st, node)
        _settle(st, node, now, cloud_agent_sync(st, node, now))
    elif kind == T_REFRESH:
        _settle(st, node, now, cloud_operator(st, node, now))
        _set_wake(st, node, cloud_quiet_until(st, node, now), now)
        _push(st, now + cloud_period(st), T_REFRESH, node, gen)


@kjit
def address_room(st, node):
    """The cloud modes' ``address_room`` hook (see :func:`ipam_core.engine.core.slot_address_room`).

    ``warm``: running pods plus the free addresses of the node's pool; ``free``:
    the addresses the node can hold, less its reservations.
    """
    if st.icfg[I_ADDRESS_FILTER] == ADDRESS_FILTER_FREE:
        return _can_hold(st, node)
    running = st.nodes[node, N_PODS] - st.nodes[node, N_PENDING]
    return running + st.cl_node[node, CN_HELD] - st.cl_node[node, CN_USED]


@kjit
def give_pod_addresses(st, pod):
    """The pod's address back to its node's pool."""
    cloud_release_pod(st, pod, st.pods[pod, D_NODE])


@kjit
def quiet_refresh(st, node, gen, now):
    """A periodic pass that changes nothing: only the next one is set."""
    _push(st, now + cloud_period(st), T_REFRESH, node, gen)


def prepare(state, module, scenario, workload):
    """The cloud tables and settings of the mode, per node group (:func:`~ipam_core.engine.cloud_net.cloud_net`).

    The network is resolved here, once per run. A run of the mode a cluster was dumped in starts
    from its interfaces, addresses and pods (``initialState``, :mod:`ipam_core.modes.cloud_initial`).
    """
    net = cloud_net(module, scenario)
    state = init_cloud(state, net.merged(), len(workload.node_names), net)
    initial = scenario.initial_state
    if initial is not None and initial.cloud is not None and initial.mode == module.MODE.name and initial.starts:
        state = start_cloud(state, initial, workload)
    return state


@kjit
def held_addresses(st, node, family):
    """Addresses the node's pool holds (IPv4 only: the cloud modes hand out no IPv6)."""
    return st.cl_node[node, CN_HELD] if family == 0 else 0


hooks.register(
    CloudState,
    POLICY_CLOUD,
    prepare=prepare,
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
