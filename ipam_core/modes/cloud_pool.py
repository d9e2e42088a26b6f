"""Compiled steps of the cloud IPAM modes (``POLICY_CLOUD``): per-node pools carved from subnet bitmaps.

Each subnet is one CIDR set of the layout with node mask /32, so its bitmap
holds one bit per address; /28 prefixes are aligned 16-bit blocks of the same
bitmap (:func:`~ipam_core.kernels.blocks.bm_alloc_block`), so a subnet with free
addresses but no free aligned /28 refuses a prefix as EC2 does
(``InsufficientCidrBlocks``). The cloud reserves the first four and the last
address of every subnet (AWS VPC user guide "Subnet sizing"; Azure reserves
the same five).

A node holds interfaces (ENIs, or its NIC) and, on each, *units*: secondary
addresses or /28 prefixes (an EC2 ENI's address limit counts both). Pods take
one address of a unit. Who grows and shrinks the pool depends on the kind:

* ``CLOUD_CILIUM`` (``eni``, ``azure``, ``crd`` with the watermark writer): the
  operator's maintenance pass (cilium ``pkg/ipam/node.go`` ``recalculate``,
  ``determineMaintenanceAction``, ``handleIPRelease``, ``handleIPAllocation``;
  ``pkg/aws/eni/node.go`` ``PrepareIPAllocation``, ``AllocateIPs``,
  ``CreateInterface``, ``PrepareIPRelease``; ``pkg/azure/ipam/node.go``) after each
  CiliumNode update of the agent (rate-limited, ``crd.go``), after each action
  it took, and every resync interval.
* ``CLOUD_VPC_CNI`` (``aws-vpc-cni``): ipamd's pass every 5 s
  (aws/amazon-vpc-cni-k8s ``pkg/ipamd/ipamd.go``), in :mod:`ipam_core.modes.aws_vpc_cni`
  over the rules of :mod:`ipam_core.cloud.vpc_cni`.
* ``CLOUD_AKS_DYNAMIC`` / ``CLOUD_AKS_STATIC`` (``azure`` with AKS's pod subnet):
  CNS's target every second (``cns/ipampool``, in :mod:`ipam_core.modes.azure`), or
  /28 blocks once per node (here).
* ``CLOUD_CRD_STATIC`` (``crd`` with ``poolPerNode``): an external writer fills
  each node's pool once.

Python builds the configuration (:class:`CloudConfig`) and the tables
(:func:`init_cloud`); everything per event is compiled. The family's hooks
(:mod:`ipam_core.modes.cloud_hooks`) call these functions and the passes of the
kind, and schedule the timers they ask for.
"""

from __future__ import annotations

import ipaddress

import numpy as np

from ipam_core.cloud.limits import PREFIX_SIZE, SUBNET_RESERVED_HIGH, SUBNET_RESERVED_LOW
from ipam_core.cloud.placement import cidr_offsets, deal_nodes, listed_offsets, shared_offsets, zone_of_nodes
from ipam_core.cloud.watermarks import (
    excess_ips,
    max_ips_to_allocate,
    needed_ips,
    used_with_prefixes,
)
from ipam_core.engine import tables as T
from ipam_core.modes.cloud_api import (
    API_ASSIGN,
    API_ATTACH,
    API_RELEASE,
    api_call,
    api_ready,
    api_spend,
    init_buckets,
)
from ipam_core.engine.rng import draw
from ipam_core.engine.tables import (
    C_CL_PERIOD,
    C_CL_RELEASE_DELAY,
    C_OPERATOR_DELAY,
    CG_IFACES,
    CG_IPV4,
    CG_MAX_ALLOC,
    CG_NCOL,
    CG_PICK,
    CG_PRE,
    CG_READY_MIN,
    CG_UNIT_SIZE,
    CG_UNITS,
    CN_GROUP,
    CN_RESET,
    CN_ZONE,
    CS_GROUPS,
    CS_NCOL,
    CS_RESV_COUNT,
    CS_RESV_FIRST,
    CS_RESV_FREE,
    CS_ZONE,
    C_UPDATE_RATE,
    CI_ATTACHED,
    CI_PREFIXES,
    CI_PRIMARY,
    CI_SET,
    CI_SINCE_US,
    CI_UNITS,
    CN_HELD,
    CN_IFACES,
    CN_PD,
    CN_PREFIXES,
    CN_PRIMARIES,
    CN_REPORTED,
    CN_REPORTED_PREFIXES,
    CN_REPORTED_SINGLES,
    CN_RESERVED,
    CN_SUBNET,
    CN_SYNC_ARMED,
    CN_UNITS,
    CN_USED,
    CT_API_AT,
    CT_COOLDOWN,
    CT_EXCESS_SINCE,
    CT_LAST_DECREASE,
    CT_LAST_SYNC,
    CT_OP_AT,
    CU_MASK,
    CU_OFF,
    CU_SET,
    CU_SIZE,
    CU_USED,
    D_OFF,
    D_SLOT,
    ERROR_CLOUD_UNITS_FULL,
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
    I_CL_ABOVE,
    I_CL_AGENT_RESERVED,
    I_CL_ANY_SUBNET,
    I_CL_ATTACH,
    I_CL_FALLBACK,
    I_CL_FILL_FIRST,
    I_CL_FIRST_IFACE,
    I_CL_MIN,
    I_CL_NIC,
    I_CL_PRIMARY,
    I_CL_RELEASE,
    I_CL_STATIC_UNITS,
    I_CL_STRATEGY,
    I_CL_UNITS,
    K_CL_FRAG_FAILS,
    K_CL_IFACES,
    K_CL_PREFIXES,
    K_ERROR,
    K_FAMILY_BASE,
    N_PENDING,
    PICK_CILIUM,
    PICK_DISCOVERY,
    PICK_FLAGGED,
    RV_HI,
    RV_LO,
    S_ALLOCATED,
    S_N,
    S_S_LEN,
    S_S_OFF,
    S_W_LEN,
    S_W_OFF,
    STRATEGY_DENSE,
)
from ipam_core.kernels._jit import kjit
from ipam_core.kernels.blocks import (
    bm_alloc_block,
    bm_alloc_block_in,
    bm_free_blocks,
    bm_release_block,
    bm_take_densest,
)
from ipam_core.kernels.scan import bm_find_free, bm_take_scan
from ipam_core.kernels.slots import bm_clear, bm_set, bm_set_many, bm_used_offsets
from ipam_core.modes.cloud_manager import manager_reads_agent_status
from ipam_core.engine.cloud_config import CloudConfig
from ipam_core.engine.cloud_net import CloudNet

INF = np.inf

#: The cloud modes' own tables, after ``core`` in each cloud family's State (filled by :func:`init_cloud`).
CLOUD_TABLES = (
    "cl_node",  # int64 [nodes + network rows, >= CN_NCOL] (engine/tables.py: subnets, groups, reservations)
    "cl_time",  # float64 [nodes, CT_NCOL]
    "cl_iface",  # int64 [nodes, interfaces, CI_NCOL]
    "cl_unit",  # int64 [nodes, interfaces * units, CU_NCOL]
)
PREFIX_ORDER = 4  # log2(16): a /28


# --------------------------------------------------------------------------- configuration (Python)
def cloud_settings(cloud: CloudConfig) -> tuple[dict[int, int], dict[int, float]]:
    """A mode's cloud settings for the state (the ``I_CL_*`` and ``C_CL_*`` entries of :mod:`ipam_core.engine.tables`).

    Parameters
    ----------
    cloud : CloudConfig

    Returns
    -------
    tuple of dict
        ``icfg`` index -> integer (codes, counts, flags as 0 / 1), and ``cfg`` index -> seconds or rate.
    """
    ints = {
        T.I_CL_KIND: cloud.kind, T.I_CL_IFACES: cloud.ifaces, T.I_CL_UNITS: cloud.units,
        T.I_CL_UNIT_SIZE: cloud.unit_size, T.I_CL_FIRST_IFACE: cloud.first_iface, T.I_CL_PRIMARY: cloud.primary,
        T.I_CL_ATTACH: cloud.attach, T.I_CL_FALLBACK: cloud.fallback, T.I_CL_FILL_FIRST: cloud.fill_first,
        T.I_CL_AGENT_RESERVED: cloud.agent_reserved, T.I_CL_READY_MIN: cloud.ready_min, T.I_CL_PRE: cloud.pre,
        T.I_CL_MIN: cloud.min_allocate, T.I_CL_MAX: cloud.max_allocate, T.I_CL_ABOVE: cloud.above,
        T.I_CL_RELEASE: cloud.release, T.I_CL_WARM_ENI: cloud.warm_eni, T.I_CL_WARM_IP: cloud.warm_ip,
        T.I_CL_MIN_IP: cloud.min_ip, T.I_CL_WARM_PREFIX: cloud.warm_prefix, T.I_CL_BATCH: cloud.batch,
        T.I_CL_BATCH_PCT: cloud.batch_pct, T.I_CL_MAX_IPS: cloud.max_ips, T.I_CL_STATIC_UNITS: cloud.static_units,
        T.I_CL_SUBNET_RESERVED: cloud.subnet_reserved, T.I_CL_NIC: cloud.nic, T.I_CL_STRATEGY: cloud.strategy,
        T.I_CL_THROTTLE: cloud.throttle, T.I_CL_CLIENT_BURST: cloud.client_burst, T.I_CL_BUCKET: cloud.bucket,
        T.I_CL_SHARED_BUCKET: cloud.shared_bucket, T.I_CL_ANY_SUBNET: cloud.any_subnet,
    }
    reals = {
        T.C_CL_RELEASE_DELAY: cloud.release_delay_s, T.C_CL_PERIOD: cloud.period_s, T.C_CL_DECREASE: cloud.decrease_s,
        T.C_CL_ENI_MIN_LIFE: cloud.eni_min_life_s, T.C_CL_COOLDOWN: cloud.cooldown_s,
        T.C_CL_CLIENT_QPS: cloud.client_qps, T.C_CL_REFILL: cloud.refill,
    }
    return {i: int(v) for i, v in ints.items()}, {i: float(v) for i, v in reals.items()}


def init_cloud(state, cloud: CloudConfig, n_nodes: int, net: CloudNet):
    """Give a freshly built state its cloud tables and settings.

    Parameters
    ----------
    state : ipam_core.engine.state.State
        From :func:`~ipam_core.engine.state.build_state` with a ``POLICY_CLOUD`` layout
        (its sets are the subnets, node mask /32).
    cloud : CloudConfig
        The run's settings (:meth:`CloudNet.merged`: tables sized for the largest instance).
    n_nodes : int
        Distinct node ids of the workload.
    net : CloudNet
        Node groups, zones and subnets (:func:`ipam_core.engine.cloud_net.cloud_net`).

    Returns
    -------
    State
        The same arrays plus sized cloud tables (``cl_node`` with the network rows below the
        nodes, :mod:`ipam_core.engine.tables`); each subnet's reserved addresses, explicit
        reservations and the addresses other consumers hold are taken and counted as carved
        and reserved.
    """
    n = max(n_nodes, 1)
    cl_time = np.full((n, T.CT_NCOL), INF, dtype=np.float64)
    cl_time[:, T.CT_LAST_SYNC] = -INF
    cl_time[:, T.CT_LAST_DECREASE] = -INF
    cl_time[:, T.CT_COOLDOWN] = -INF
    cl_time[:, T.CT_API_AT] = -INF
    cl_iface = np.zeros((n, max(cloud.ifaces, 1), T.CI_NCOL), dtype=np.int64)
    cl_iface[:, :, T.CI_PRIMARY] = -1
    cl_unit = np.zeros((n, max(cloud.ifaces * cloud.units, 1), T.CU_NCOL), dtype=np.int64)
    cl_unit[:, :, T.CU_SET] = -1
    ints, reals = cloud_settings(cloud)
    for index, value in ints.items():
        state.core.icfg[index] = value
    for index, value in reals.items():
        state.core.cfg[index] = value
    init_buckets(state.core.cnt, state.core.icfg)
    fc = T.K_FAMILY_BASE  # IPv4 counters
    for s in range(state.core.cidr.sets.shape[0]):
        size = int(state.core.cidr.sets[s, T.S_N])
        if cloud.subnet_reserved and size >= 8:
            w0, s0 = state.core.cidr.sets[s, T.S_W_OFF], state.core.cidr.sets[s, T.S_S_OFF]
            words = state.core.cidr.set_words[w0 : w0 + state.core.cidr.sets[s, T.S_W_LEN]]
            summary = state.core.cidr.set_summary[s0 : s0 + state.core.cidr.sets[s, T.S_S_LEN]]
            reserved = list(range(SUBNET_RESERVED_LOW)) + [size - k - 1 for k in range(SUBNET_RESERVED_HIGH)]
            for offset in reserved:
                bm_set(words, summary, offset)
            state.core.cidr.sets[s, T.S_ALLOCATED] += len(reserved)
            state.core.cnt[fc + T.F_CARVED] += len(reserved)
            state.core.cnt[fc + T.F_RESERVED] += len(reserved)
    subnet_rows, ranges = _init_subnets(state, net)
    free = int(np.sum(state.core.cidr.sets[:, T.S_N] - state.core.cidr.sets[:, T.S_ALLOCATED]))
    state.core.cnt[fc + T.F_CARVABLE] = free
    state.core.cidr.pool_carvable[0, 0] = free
    cl_node = _node_table(net, n, subnet_rows, ranges)
    max_pods = np.array([c.max_pods for c in net.configs], dtype=np.int64)
    state.core.nodes[:n, T.N_MAX_PODS] = max_pods[cl_node[:n, T.CN_GROUP]]
    return state._replace(cl_node=cl_node, cl_time=cl_time, cl_iface=cl_iface, cl_unit=cl_unit)


def _node_table(net: CloudNet, n: int, subnet_rows: np.ndarray, ranges: list) -> np.ndarray:
    """``cl_node``: node rows (group and zone fixed), then the subnet, group and reservation rows."""
    n_sub, n_groups = net.launch.shape[1], len(net.configs)
    width = max(T.CN_NCOL, CG_NCOL, T.CS_NCOL + 2 * n_groups, 2)
    table = np.zeros((n + n_sub + n_groups + len(ranges), width), dtype=np.int64)
    group = deal_nodes(net.weights, n)
    table[:n, T.CN_GROUP] = group
    table[:n, T.CN_ZONE] = zone_of_nodes(group, list(net.group_zones))
    rows = table[n : n + n_sub]
    rows[:, : T.CS_NCOL] = subnet_rows
    rows[:, T.CS_RESV_FIRST] += n + n_sub + n_groups  # reservation rows, absolute
    rows[:, T.CS_GROUPS] = n_groups
    rows[:, T.CS_NCOL : T.CS_NCOL + n_groups] = net.launch.T
    rows[:, T.CS_NCOL + n_groups : T.CS_NCOL + 2 * n_groups] = net.flagged.T
    for g, c in enumerate(net.configs):
        table[n + n_sub + g, :CG_NCOL] = (c.ifaces, c.units, c.unit_size, c.pre, c.max_allocate, c.ready_min,
                                         c.max_pods, net.pick[g], net.ipv4[g])
    for r, (lo, hi) in enumerate(ranges):
        table[n + n_sub + n_groups + r, : 2] = (lo, hi)
    return table


def _init_subnets(state, net: CloudNet):
    """Zones, reservations and other consumers' addresses: subnet rows and prefix ranges; bits taken in ``state``.

    Explicit reservations and shared addresses are taken (counted carved and reserved); a prefix
    reservation's range is recorded (single addresses never come from it; prefixes do, first).
    """
    n_sub = state.core.cidr.sets.shape[0]
    rows = np.zeros((n_sub, T.CS_NCOL), dtype=np.int64)
    rows[:, T.CS_ZONE] = net.subnet_zone
    ranges = []
    fc = T.K_FAMILY_BASE
    for s, spec in enumerate(net.subnets):
        rows[s, T.CS_RESV_FIRST] = len(ranges)
        if not (spec.reservations or spec.shared_used or spec.shared_used_file):
            continue
        network = ipaddress.ip_network(spec.cidr)
        size = int(state.core.cidr.sets[s, T.S_N])
        words, summary = _subnet_py(state, s)
        taken = np.zeros(size, dtype=bool)
        used = np.zeros(size, dtype=np.int64)
        taken[used[: bm_used_offsets(words, size, used)]] = True
        outside = np.ones(size, dtype=bool)  # not in any reservation
        new = []
        for r in spec.reservations:
            lo, hi = cidr_offsets(r.cidr, network)
            outside[lo:hi] = False
            if r.kind == "explicit":
                new.append(np.flatnonzero(~taken[lo:hi]) + lo)
            else:
                ranges.append((lo, hi))
                rows[s, T.CS_RESV_COUNT] += 1
                rows[s, T.CS_RESV_FREE] += int(np.count_nonzero(~taken[lo:hi]))
        if spec.shared_used_file:
            listed = listed_offsets(spec.shared_used_file, network)
            new.append(listed[~taken[listed] & outside[listed]])
        if spec.shared_used:
            new.append(shared_offsets(spec.shared_used, np.flatnonzero(~taken & outside), net.seed, s))
        offsets = np.unique(np.concatenate(new)) if new else np.zeros(0, dtype=np.int64)
        offsets = offsets[~taken[offsets]]
        bm_set_many(words, summary, offsets)
        rows[s, T.CS_OTHERS] = offsets.shape[0]
        state.core.cidr.sets[s, T.S_ALLOCATED] += offsets.shape[0]
        state.core.cnt[fc + T.F_CARVED] += offsets.shape[0]
        state.core.cnt[fc + T.F_RESERVED] += offsets.shape[0]
    return rows, ranges


def _subnet_py(state, s):
    w0, s0 = state.core.cidr.sets[s, T.S_W_OFF], state.core.cidr.sets[s, T.S_S_OFF]
    return (state.core.cidr.set_words[w0 : w0 + state.core.cidr.sets[s, T.S_W_LEN]],
            state.core.cidr.set_summary[s0 : s0 + state.core.cidr.sets[s, T.S_S_LEN]])


# --------------------------------------------------------------------------- small helpers
@kjit(inline=True)
def _fc(field):
    # an IPv4 counter
    return K_FAMILY_BASE + field


@kjit(inline=True)
def _subnet(cidr, s):
    w0 = cidr.sets[s, S_W_OFF]
    s0 = cidr.sets[s, S_S_OFF]
    return cidr.set_words[w0 : w0 + cidr.sets[s, S_W_LEN]], cidr.set_summary[s0 : s0 + cidr.sets[s, S_S_LEN]]


@kjit(inline=True)
def _subnet_free(cidr, s):
    return cidr.sets[s, S_N] - cidr.sets[s, S_ALLOCATED]


@kjit(inline=True)
def _take_subnet(cidr, cnt, s, count):
    # bookkeeping of `count` addresses taken from subnet s
    cidr.sets[s, S_ALLOCATED] += count
    cnt[_fc(F_CARVABLE)] -= count
    cidr.pool_carvable[0, 0] -= count
    cnt[_fc(F_CARVED)] += count


@kjit(inline=True)
def _give_subnet(cidr, cnt, s, count):
    cidr.sets[s, S_ALLOCATED] -= count
    cnt[_fc(F_CARVABLE)] += count
    cidr.pool_carvable[0, 0] += count
    cnt[_fc(F_CARVED)] -= count


@kjit
def _single_address(st, s, first_fit):
    """One free address of subnet s: random start and forward scan (EC2's order is unpublished), or first fit."""
    core = st.core
    words, summary = _subnet(core.cidr, s)
    n = core.cidr.sets[s, S_N]
    row = st.cl_node[_subnet_row(core.nodes, s)]
    if row[CS_RESV_COUNT] > 0:  # a few arrays, not the state: a call with the state costs ~400 arguments
        start = 0 if first_fit else draw(core.cnt, n)
        offset = _single_outside(words, summary, n, start, st.cl_node, row[CS_RESV_FIRST], row[CS_RESV_COUNT])
    elif first_fit:
        offset = bm_find_free(words, summary, 0)
        if offset >= 0:
            bm_set(words, summary, offset)
    else:
        offset = bm_take_scan(words, summary, draw(core.cnt, n))
    if offset < 0:
        return -1
    _take_subnet(core.cidr, core.cnt, s, 1)
    return offset


# --------------------------------------------------------------------------- subnet CIDR reservations
@kjit(inline=True)
def _subnet_row(nodes, s):
    # the subnet's row in cl_node, below the node rows
    return nodes.shape[0] + s


@kjit(inline=True)
def _reservation_end(table, first, count, offset):
    """End of the prefix reservation (rows ``first`` .. of ``table``) holding ``offset``, or -1.

    EC2 subnet CIDR reservations (``create-subnet-cidr-reservation``).
    """
    for r in range(first, first + count):
        if table[r, RV_LO] <= offset < table[r, RV_HI]:
            return table[r, RV_HI]
    return -1


@kjit
def _single_outside(words, summary, n, start, table, first, count):
    """Take the first free address at or after ``start`` (wrapping) outside the subnet's prefix reservations.

    A ``prefix`` reservation keeps EC2's own choice of single addresses out of its range
    (``create-subnet-cidr-reservation --reservation-type prefix``); its rows are ``first`` ..
    ``first + count - 1`` of ``table``.
    """
    pos = start
    for lap in range(2):
        limit = n if lap == 0 else start
        while pos < limit:
            offset = bm_find_free(words, summary, pos)
            if offset < 0 or offset >= limit:
                break
            end = _reservation_end(table, first, count, offset)
            if end < 0:
                bm_set(words, summary, offset)
                return offset
            pos = end
        pos = 0
    return -1


@kjit(inline=True)
def _single_free(st, s):
    core = st.core
    # free addresses EC2 may hand out one by one: not inside a prefix reservation
    return _subnet_free(core.cidr, s) - st.cl_node[_subnet_row(core.nodes, s), CS_RESV_FREE]


@kjit(inline=True)
def _take_prefix(words, summary, table, row):
    """One /28: from the subnet's prefix reservations first (its ``row`` of ``table``), else the lowest free one."""
    for r in range(row[CS_RESV_FIRST], row[CS_RESV_FIRST] + row[CS_RESV_COUNT]):
        offset = bm_alloc_block_in(words, summary, PREFIX_ORDER, table[r, RV_LO], table[r, RV_HI])
        if offset >= 0:
            row[CS_RESV_FREE] -= PREFIX_SIZE
            return offset
    return bm_alloc_block(words, summary, PREFIX_ORDER)


# --------------------------------------------------------------------------- node groups and zones
@kjit(inline=True)
def _group_value(st, node, column):
    core = st.core
    # a setting of the node's group (its row in cl_node, below the subnet rows)
    return st.cl_node[core.nodes.shape[0] + core.cidr.sets.shape[0] + st.cl_node[node, CN_GROUP], column]


@kjit(inline=True)
def _node_units(st, node):
    # secondary IPs or /28 prefixes one interface of this node's instance holds
    return _group_value(st, node, CG_UNITS)


@kjit(inline=True)
def _node_ifaces(st, node):
    return _group_value(st, node, CG_IFACES)


@kjit
def _best_in_zone(st, node, zone, column, also):
    """The subnet of ``zone`` flagged for the node's group from ``column`` on (or ``also``) with most free addresses.

    Ties go to the subnet listed first. -1 when none.
    """
    core = st.core
    g = st.cl_node[node, CN_GROUP]
    best = -1
    for s in range(core.cidr.sets.shape[0]):
        row = st.cl_node[_subnet_row(core.nodes, s)]
        if row[CS_ZONE] != zone or (row[column + g] == 0 and s != also):
            continue
        if best < 0 or _subnet_free(core.cidr, s) > _subnet_free(core.cidr, best):
            best = s
    return best


@kjit(inline=True)
def _node_subnet(st, node):
    """The subnet an instance launches into: its zone's subnet of the group with most free addresses.

    Karpenter's rule (aws/karpenter-provider-aws ``pkg/providers/subnet/subnet.go``
    ``ZonalSubnetsForLaunch``); an ASG with one subnet per zone gives the same. With one subnet per
    zone and no groups, node *i* lands in subnet *i mod n*, the spread used before zones.
    """
    return _best_in_zone(st, node, st.cl_node[node, CN_ZONE], CS_NCOL, -1)


@kjit
def _iface_subnet(st, node):
    """The subnet of a node's new interface; -1 when its rule finds none.

    * Cilium ENI (cilium ``pkg/aws/eni/node.go`` ``findSuitableSubnet``, ``instances.go``
      ``FindSubnetByIDs`` / ``FindSubnetByTags``): a ``subnet-ids`` / ``subnet-tags`` subnet of the
      node's zone with most free addresses; else the node's subnet if it has at least
      ``limits.IPv4`` free; else any subnet of the zone with most free addresses.
    * ipamd subnet discovery (aws/amazon-vpc-cni-k8s ``pkg/awsutils/awsutils.go``, subnets sorted by
      ``AvailableIpAddressCount``): the node's subnet or a ``kubernetes.io/role/cni`` subnet of its
      zone, most free first.
    * ipamd custom networking: the ENIConfig subnet of the node's zone.
    * Otherwise the node's subnet.
    """
    core = st.core
    cn = st.cl_node[node]
    home = cn[CN_SUBNET]
    rule = _group_value(st, node, CG_PICK)
    home_row = st.cl_node[_subnet_row(core.nodes, home)]
    zone = home_row[CS_ZONE]
    flagged = CS_NCOL + home_row[CS_GROUPS]
    if rule == PICK_CILIUM:
        s = _best_in_zone(st, node, zone, flagged, -1)
        if s >= 0:
            return s
        if _subnet_free(core.cidr, home) >= _group_value(st, node, CG_IPV4):
            return home
        for other in range(core.cidr.sets.shape[0]):  # FindSubnetByTags(vpc, az, nil): any subnet of the zone
            if (st.cl_node[_subnet_row(core.nodes, other), CS_ZONE] == zone
                    and (s < 0 or _subnet_free(core.cidr, other) > _subnet_free(core.cidr, s))):
                s = other
        return s
    if rule == PICK_DISCOVERY:
        return _best_in_zone(st, node, zone, flagged, home)
    if rule == PICK_FLAGGED:
        return _best_in_zone(st, node, zone, flagged, -1)
    return home


@kjit(inline=True)
def _dense_address(cidr, cnt, s):
    """One free address of subnet s in its fullest /28 (CFP cilium/cilium#38499: keep whole /28s free)."""
    words, summary = _subnet(cidr, s)
    offset = bm_take_densest(words, summary, PREFIX_ORDER)
    if offset >= 0:
        _take_subnet(cidr, cnt, s, 1)
    return offset


@kjit(inline=True)
def _units_per_iface(icfg):
    return icfg[I_CL_UNITS]


@kjit(inline=True)
def _free_unit_slot(st, node, iface):
    u = _units_per_iface(st.core.icfg)
    for j in range(iface * u, iface * u + u):
        if st.cl_unit[node, j, CU_SET] < 0:
            return j
    return -1


@kjit
def _add_unit(st, node, iface, s, offset, size):
    core = st.core
    j = _free_unit_slot(st, node, iface)
    if j < 0:
        core.cnt[K_ERROR] = ERROR_CLOUD_UNITS_FULL
        return -1
    unit = st.cl_unit[node, j]
    unit[CU_SET] = s
    unit[CU_OFF] = offset
    unit[CU_SIZE] = size
    unit[CU_MASK] = 0
    unit[CU_USED] = 0
    st.cl_iface[node, iface, CI_UNITS] += 1
    st.cl_node[node, CN_UNITS] += 1
    st.cl_node[node, CN_HELD] += size
    if size > 1:
        st.cl_iface[node, iface, CI_PREFIXES] += 1
        st.cl_node[node, CN_PREFIXES] += 1
        core.cnt[K_CL_PREFIXES] += 1
    core.cnt[_fc(F_NODE_CIDRS)] += 1
    core.cnt[_fc(F_CARVES)] += 1
    core.cnt[_fc(F_FREE)] += size
    core.cidr.pool_free[0, 0] += size
    return j


@kjit
def _drop_unit(st, node, j):
    """Give a unit (with no address taken) back to its subnet."""
    core = st.core
    unit = st.cl_unit[node, j]
    s = unit[CU_SET]
    size = unit[CU_SIZE]
    words, summary = _subnet(core.cidr, s)
    if size > 1:
        bm_release_block(words, summary, unit[CU_OFF], PREFIX_ORDER)
        row = st.cl_node[_subnet_row(core.nodes, s)]
        if row[CS_RESV_COUNT] > 0 and _reservation_end(st.cl_node, row[CS_RESV_FIRST], row[CS_RESV_COUNT],
                                                       unit[CU_OFF]) >= 0:
            row[CS_RESV_FREE] += PREFIX_SIZE
    else:
        bm_clear(words, summary, unit[CU_OFF])
    _give_subnet(core.cidr, core.cnt, s, size)
    iface = j // _units_per_iface(core.icfg)
    st.cl_iface[node, iface, CI_UNITS] -= 1
    st.cl_node[node, CN_UNITS] -= 1
    st.cl_node[node, CN_HELD] -= size
    if size > 1:
        st.cl_iface[node, iface, CI_PREFIXES] -= 1
        st.cl_node[node, CN_PREFIXES] -= 1
        core.cnt[K_CL_PREFIXES] -= 1
    core.cnt[_fc(F_NODE_CIDRS)] -= 1
    core.cnt[_fc(F_RELEASES)] += 1
    core.cnt[_fc(F_FREE)] -= size - unit[CU_USED]
    core.cidr.pool_free[0, 0] -= size - unit[CU_USED]
    unit[CU_SET] = -1
    unit[CU_MASK] = 0
    unit[CU_USED] = 0


@kjit(inline=True)
def _iface_room(st, node, iface):
    # units the interface can still take (none below first-interface-index: custom networking's eth0)
    if iface < st.core.icfg[I_CL_FIRST_IFACE]:
        return 0
    return _node_units(st, node) - st.cl_iface[node, iface, CI_UNITS]


@kjit
def _assign(st, node, iface, addresses, pd, fallback, s, count_call, now):
    """One assign call on an interface: ceil(addresses / 16) prefixes, or `addresses` single IPs.

    Returns the addresses added (0 on failure; -1 when the call was throttled and not
    made, see :mod:`ipam_core.modes.cloud_api`). With prefixes, a subnet without
    enough free aligned /28s refuses the whole call (InsufficientCidrBlocks); Cilium
    then asks for single addresses in a second call on the same interface
    (``pkg/aws/eni/node.go`` ``AllocateIPs``), or creates the interface again without
    prefixes (``CreateInterface``), ipamd does not. Whether the node asks for prefixes
    next time follows from its interfaces (:func:`_cilium_prefix_delegated`). With
    the dense strategy of CFP cilium/cilium#38499 the single addresses are packed into
    the fullest /28s instead of EC2's choice. ``count_call`` is false when the
    addresses come with the interface's create call.
    """
    core = st.core
    room = _iface_room(st, node, iface)
    if room <= 0 or addresses <= 0:
        return 0
    if count_call and not api_ready(st, node, API_ASSIGN, now):
        return -1
    if pd:
        count = min(-(-addresses // PREFIX_SIZE), room)
        if count_call:
            api_spend(core.cfg, core.icfg, core.cnt, API_ASSIGN, now, True)
        words, summary = _subnet(core.cidr, s)
        if bm_free_blocks(words, PREFIX_ORDER) >= count:  # EC2 assigns all the prefixes or none
            row = st.cl_node[_subnet_row(core.nodes, s)]
            for _ in range(count):
                offset = _take_prefix(words, summary, st.cl_node, row)
                _take_subnet(core.cidr, core.cnt, s, PREFIX_SIZE)
                _add_unit(st, node, iface, s, offset, PREFIX_SIZE)
            return count * PREFIX_SIZE
        if _subnet_free(core.cidr, s) >= count * PREFIX_SIZE:
            core.cnt[K_CL_FRAG_FAILS] += 1  # enough free addresses, no aligned /28 for them
        if not fallback:
            return 0
        # "Subnet might be out of prefixes, Cilium will not allocate prefixes on this node anymore": the same
        # call again without prefixes (an assign, or the interface's create call)
        api_spend(core.cfg, core.icfg, core.cnt, API_ASSIGN if count_call else API_ATTACH, now, False)
        count = min(addresses, room)
        if _subnet_free(core.cidr, s) < count:
            return 0
        dense = core.icfg[I_CL_STRATEGY] == STRATEGY_DENSE
        for _ in range(count):
            offset = _dense_address(core.cidr, core.cnt, s) if dense else _single_address(st, s, False)
            _add_unit(st, node, iface, s, offset, 1)
        return count
    count = min(addresses, room)  # an ENI's address limit counts prefixes and single addresses alike
    if count_call:
        api_spend(core.cfg, core.icfg, core.cnt, API_ASSIGN, now, False)
    if _single_free(st, s) < count:
        return 0  # InsufficientFreeAddressesInSubnet: the call fails as a whole
    for _ in range(count):
        offset = _single_address(st, s, False)
        _add_unit(st, node, iface, s, offset, 1)
    return count


@kjit
def _attach(st, node, iface, s, now):
    """Attach interface `iface` in subnet s, taking its primary address when the cloud gives one."""
    primary = _single_address(st, s, False) if st.core.icfg[I_CL_PRIMARY] != 0 else -1
    cloud_attached(st, node, iface, s, primary, now)


@kjit
def cloud_attached(st, node, iface, s, primary, now):
    """Record interface `iface` attached in subnet s with its primary address (an offset taken already, or -1)."""
    st.cl_iface[node, iface, CI_ATTACHED] = 1
    st.cl_iface[node, iface, CI_SET] = s
    st.cl_iface[node, iface, CI_SINCE_US] = np.int64(now * 1e6)
    st.cl_iface[node, iface, CI_PRIMARY] = -1
    if primary >= 0:
        cloud_primary_held(st, node, iface, primary)
    st.cl_node[node, CN_IFACES] += 1
    st.core.cnt[K_CL_IFACES] += 1


@kjit
def cloud_primary_held(st, node, iface, primary):
    """The interface holds its primary address (an offset in its subnet, taken already)."""
    st.cl_iface[node, iface, CI_PRIMARY] = primary
    st.cl_node[node, CN_PRIMARIES] += 1
    st.core.cnt[_fc(F_RESERVED)] += 1


@kjit
def _detach(st, node, iface):
    """Release an interface's units (all free) and its primary address."""
    core = st.core
    u = _units_per_iface(core.icfg)
    for j in range(iface * u, iface * u + u):
        if st.cl_unit[node, j, CU_SET] >= 0:
            _drop_unit(st, node, j)
    primary = st.cl_iface[node, iface, CI_PRIMARY]
    if primary >= 0:
        s = st.cl_iface[node, iface, CI_SET]
        words, summary = _subnet(core.cidr, s)
        bm_clear(words, summary, primary)
        _give_subnet(core.cidr, core.cnt, s, 1)
        st.cl_node[node, CN_PRIMARIES] -= 1
        core.cnt[_fc(F_RESERVED)] -= 1
    st.cl_iface[node, iface, CI_ATTACHED] = 0
    st.cl_iface[node, iface, CI_PRIMARY] = -1
    st.cl_node[node, CN_IFACES] -= 1
    core.cnt[K_CL_IFACES] -= 1


# --------------------------------------------------------------------------- addresses of pods (agent side)
@kjit
def _pick(st, node):
    """A unit and a free bit in it: the first free address (ipamd datastore order) or a random one (Go map order)."""
    core = st.core
    units = st.cl_unit.shape[1]
    if core.icfg[I_CL_FILL_FIRST] != 0:
        for j in range(units):
            unit = st.cl_unit[node, j]
            if unit[CU_SET] >= 0 and unit[CU_USED] < unit[CU_SIZE]:
                for bit in range(unit[CU_SIZE]):
                    if (unit[CU_MASK] >> bit) & 1 == 0:
                        return j, bit
        return -1, -1
    free = st.cl_node[node, CN_HELD] - st.cl_node[node, CN_USED]
    if free <= 0:
        return -1, -1
    r = draw(core.cnt, free)
    for j in range(units):
        unit = st.cl_unit[node, j]
        if unit[CU_SET] < 0:
            continue
        f = unit[CU_SIZE] - unit[CU_USED]
        if r < f:
            for bit in range(unit[CU_SIZE]):
                if (unit[CU_MASK] >> bit) & 1 == 0:
                    if r == 0:
                        return j, bit
                    r -= 1
        else:
            r -= f
    return -1, -1


@kjit(inline=True)
def cloud_hold(st, node, j, bit):
    """Address ``bit`` of unit ``j`` is taken (by a pod or the agent)."""
    core = st.core
    unit = st.cl_unit[node, j]
    unit[CU_MASK] |= np.int64(1) << bit
    unit[CU_USED] += 1
    st.cl_node[node, CN_USED] += 1
    core.cnt[_fc(F_FREE)] -= 1
    core.cidr.pool_free[0, 0] -= 1
    core.cidr.np_inuse[node, 0, 0] += 1


@kjit
def cloud_alloc_pod(st, pod, node, now):
    """Give a pod an IPv4 address from its node's pool.

    Returns
    -------
    int
        -1 on success, 0 (the IPv4 family) when the pool has no free address.
    """
    core = st.core
    j, bit = _pick(st, node)
    if j < 0:
        core.cnt[_fc(F_IP_FAILS)] += 1
        return 0
    cloud_hold(st, node, j, bit)
    core.pod_tables.pods[pod, D_SLOT] = j
    core.pod_tables.pods[pod, D_OFF] = bit
    core.cnt[_fc(F_USED)] += 1
    core.cnt[_fc(F_IP_ALLOCS)] += 1
    return -1


@kjit
def cloud_release_pod(st, pod, node):
    """Return a running pod's address to its node's pool (the pool keeps it)."""
    core = st.core
    j = core.pod_tables.pods[pod, D_SLOT]
    if j < 0:
        return
    unit = st.cl_unit[node, j]
    unit[CU_MASK] &= ~(np.int64(1) << core.pod_tables.pods[pod, D_OFF])
    unit[CU_USED] -= 1
    st.cl_node[node, CN_USED] -= 1
    core.cnt[_fc(F_FREE)] += 1
    core.cidr.pool_free[0, 0] += 1
    core.cidr.np_inuse[node, 0, 0] -= 1
    core.cnt[_fc(F_USED)] -= 1
    core.pod_tables.pods[pod, D_SLOT] = -1


@kjit
def cloud_agent_start(st, node):
    """Start the agent once its pool holds the minimum: take router / health / reserved addresses.

    Returns
    -------
    bool
        Whether the agent started now.
    """
    if not cloud_pool_ready(st, node):
        return False
    cloud_reserve(st, node, st.core.icfg[I_CL_AGENT_RESERVED])
    return True


@kjit
def cloud_pool_ready(st, node):
    """Whether the node's pool holds what its agent waits for (crd.go ``hasMinimumIPsInPool``)."""
    return st.cl_node[node, CN_HELD] >= _group_value(st, node, CG_READY_MIN) and st.cl_node[node, CN_HELD] != 0


@kjit
def cloud_reserve(st, node, count):
    """The agent takes ``count`` free addresses of its pool (router, health, AKS reservation)."""
    for _ in range(count):
        j, bit = _pick(st, node)
        if j < 0:
            break
        cloud_hold(st, node, j, bit)
        st.cl_node[node, CN_RESERVED] += 1
        st.core.cnt[_fc(F_RESERVED)] += 1


@kjit
def cloud_agent_changed(st, node, now):
    """The agent's allocations changed: when to write its CiliumNode status (-1: no update pending to add).

    Notes
    -----
    The CRD allocator's refresh trigger has a minimum interval of ``CiliumNodeUpdateRate``
    (cilium ``pkg/ipam/crd.go``): the first change writes at once, later ones wait for it.
    Only Cilium's operator reads the status (ipamd and CNS see their own node directly): a
    trait of the manager resolved from the state's class when the loop compiles
    (:func:`~ipam_core.modes.cloud_manager.manager_reads_agent_status`), so the other
    managers' runs compile no status write.
    """
    if not manager_reads_agent_status(st) or st.cl_node[node, CN_SYNC_ARMED] == 1:
        return -1.0
    st.cl_node[node, CN_SYNC_ARMED] = 1
    return max(now, st.cl_time[node, CT_LAST_SYNC] + st.core.cfg[C_UPDATE_RATE])


@kjit
def cloud_agent_sync(st, node, now):
    """The agent writes ``status.ipam.used``; the operator recalculates after its delay.

    Returns
    -------
    float
        When the operator's pass should run.
    """
    st.cl_node[node, CN_SYNC_ARMED] = 0
    st.cl_time[node, CT_LAST_SYNC] = now
    st.cl_node[node, CN_REPORTED] = st.cl_node[node, CN_USED]
    # the used addresses as the status lists them, which GetUsedIPWithPrefixes maps to prefixes
    singles, prefixes = _prefix_use(st, node)
    st.cl_node[node, CN_REPORTED_SINGLES] = singles
    st.cl_node[node, CN_REPORTED_PREFIXES] = prefixes
    return now + st.core.cfg[C_OPERATOR_DELAY]


# --------------------------------------------------------------------------- nodes
@kjit
def cloud_node_add(st, node, now):
    """A node joins: its primary interface (eth0 / the VM's NIC) comes with the instance.

    Returns
    -------
    float
        The period of the node's periodic pass (0: none).
    """
    core = st.core
    cn = st.cl_node[node]
    for c in range(CN_RESET):  # its group and zone stay
        cn[c] = 0
    st.cl_time[node, CT_OP_AT] = INF
    st.cl_time[node, CT_LAST_SYNC] = -INF
    st.cl_time[node, CT_EXCESS_SINCE] = INF
    st.cl_time[node, CT_LAST_DECREASE] = -INF
    st.cl_time[node, CT_COOLDOWN] = -INF
    st.cl_time[node, CT_API_AT] = -INF
    cn[CN_SUBNET] = _node_subnet(st, node)  # its group's subnet of its zone (an ASG over its AZs)
    cn[CN_PD] = 1 if _group_value(st, node, CG_UNIT_SIZE) > 1 else 0
    if core.icfg[I_CL_NIC] != 0:
        _attach(st, node, 0, cn[CN_SUBNET], now)
    else:  # a crd pool: no cloud interface, one slot row for the units
        st.cl_iface[node, 0, CI_ATTACHED] = 1
        st.cl_iface[node, 0, CI_SET] = cn[CN_SUBNET]
    return core.cfg[C_CL_PERIOD]


@kjit
def cloud_node_delete(st, node):
    """The instance goes away: every interface, unit and primary address returns to the subnets."""
    core = st.core
    for iface in range(st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 0:
            continue
        u = _units_per_iface(core.icfg)
        for j in range(iface * u, iface * u + u):
            unit = st.cl_unit[node, j]
            if unit[CU_SET] >= 0 and unit[CU_USED] > 0:  # the agent's reservations (pods are gone already)
                core.cnt[_fc(F_FREE)] += unit[CU_USED]
                core.cidr.pool_free[0, 0] += unit[CU_USED]
                unit[CU_USED] = 0
                unit[CU_MASK] = 0
        if core.icfg[I_CL_NIC] == 0:
            for j in range(iface * u, iface * u + u):
                if st.cl_unit[node, j, CU_SET] >= 0:
                    _drop_unit(st, node, j)
            st.cl_iface[node, iface, CI_ATTACHED] = 0
        else:
            _detach(st, node, iface)
    core.cnt[_fc(F_RESERVED)] -= st.cl_node[node, CN_RESERVED]
    core.cidr.np_inuse[node, 0, 0] = 0
    cn = st.cl_node[node]
    for c in range(CN_RESET):
        cn[c] = 0


# --------------------------------------------------------------------------- Cilium's operator
@kjit(inline=True)
def _prefix_use(st, node):
    # (used single addresses, prefixes with a used address): GetUsedIPWithPrefixes
    singles = 0
    prefixes = 0
    for j in range(st.cl_unit.shape[1]):
        unit = st.cl_unit[node, j]
        if unit[CU_SET] < 0 or unit[CU_USED] == 0:
            continue
        if unit[CU_SIZE] > 1:
            prefixes += 1
        else:
            singles += 1
    return singles, prefixes


@kjit
def _cilium_release(st, node, excess, now):
    """PrepareIPRelease + ReleaseIPs: free single addresses of the interface with the most, up to `excess`."""
    core = st.core
    u = _units_per_iface(core.icfg)
    best = -1
    best_free = 0
    for iface in range(core.icfg[I_CL_FIRST_IFACE], st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 0 or st.cl_iface[node, iface, CI_PREFIXES] > 0:
            continue  # release of prefixes is not supported upstream
        free = 0
        for j in range(iface * u, iface * u + u):
            if st.cl_unit[node, j, CU_SET] >= 0 and st.cl_unit[node, j, CU_USED] == 0:
                free += 1
        if min(free, excess) > best_free:
            best = iface
            best_free = min(free, excess)
    if best < 0 or not api_call(st, node, API_RELEASE, now, False):
        return False
    left = best_free
    for j in range(best * u, best * u + u):
        if left == 0:
            break
        if st.cl_unit[node, j, CU_SET] >= 0 and st.cl_unit[node, j, CU_USED] == 0:
            _drop_unit(st, node, j)
            left -= 1
    return True


@kjit(inline=True)
def _cilium_need_and_excess(st, node):
    """(needed, excess) of a node from its last CiliumNode status (``recalculate``, cilium ``pkg/ipam/node.go``)."""
    core = st.core
    cn = st.cl_node[node]
    available = cn[CN_HELD]
    used = cn[CN_REPORTED]
    pre = _group_value(st, node, CG_PRE)
    minimum = core.icfg[I_CL_MIN]
    needed = needed_ips(available, used, pre, minimum, _group_value(st, node, CG_MAX_ALLOC))
    used_excess = used
    if cn[CN_PREFIXES] > 0:  # GetUsedIPWithPrefixes reads the status, like needed_ips
        used_excess = used_with_prefixes(cn[CN_REPORTED_SINGLES], cn[CN_REPORTED_PREFIXES])
    return needed, excess_ips(available, used_excess, pre, minimum, core.icfg[I_CL_ABOVE])


@kjit
def _cilium_prefix_delegated(st, node):
    """Whether Cilium's operator asks this node's interfaces for /28 prefixes.

    Follows cilium ``pkg/aws/eni/node.go`` ``IsPrefixDelegated``: prefix delegation
    enabled on a Nitro instance (``CN_PD``), and no interface holding secondary
    addresses without a prefix ("mixed usage of secondary IPs and prefixes is not
    supported"). So after a refused prefix request the node keeps asking for
    prefixes while the single addresses of the fallback sit on an interface that
    has prefixes too (``AllocateIPs``), and stops for as long as an interface holds
    single addresses only (a fallback on an interface without prefixes, or an
    interface created without them by ``CreateInterface``): with release off that
    is the node's life, with release on until those addresses are released. No
    other subnet is tried first (cilium/cilium#46644). The dense strategy of CFP
    cilium/cilium#38499 never leaves prefix mode.
    """
    if st.cl_node[node, CN_PD] == 0:
        return False
    if st.core.icfg[I_CL_STRATEGY] == STRATEGY_DENSE:
        return True
    for iface in range(st.cl_iface.shape[1]):
        if (st.cl_iface[node, iface, CI_ATTACHED] == 1 and st.cl_iface[node, iface, CI_PREFIXES] == 0
                and st.cl_iface[node, iface, CI_UNITS] > 0):
            return False
    return True


@kjit
def _cilium_pass(st, node, now):
    """One maintenance pass of Cilium's operator for a node; returns True when it changed the cloud."""
    core = st.core
    above = core.icfg[I_CL_ABOVE]
    needed, excess = _cilium_need_and_excess(st, node)
    if core.icfg[I_CL_RELEASE] != 0 and excess > 0:
        # handleIPRelease: IPs wait --excess-ip-release-delay before they go (handshake with the agent collapsed)
        if st.cl_time[node, CT_EXCESS_SINCE] == INF:
            st.cl_time[node, CT_EXCESS_SINCE] = now
        if now - st.cl_time[node, CT_EXCESS_SINCE] >= core.cfg[C_CL_RELEASE_DELAY]:
            st.cl_time[node, CT_EXCESS_SINCE] = INF
            return _cilium_release(st, node, excess, now)
        return False
    st.cl_time[node, CT_EXCESS_SINCE] = INF
    if needed <= 0:
        return False
    to_allocate = max_ips_to_allocate(needed, above, core.nodes[node, N_PENDING])
    pd = _cilium_prefix_delegated(st, node)
    size = PREFIX_SIZE if pd else 1
    fallback = core.icfg[I_CL_FALLBACK] != 0
    # PrepareIPAllocation: the first usable interface with room whose subnet has free addresses
    for iface in range(core.icfg[I_CL_FIRST_IFACE], st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 0:
            continue
        room = _iface_room(st, node, iface) * size
        s = st.cl_iface[node, iface, CI_SET]
        if room <= 0:
            continue
        subnet_free = _subnet_free(core.cidr, s)
        if subnet_free <= 0 and core.icfg[I_CL_ANY_SUBNET] != 0:
            # Azure: an IP configuration may come from any subnet of the VNet with free addresses
            for other in range(core.cidr.sets.shape[0]):
                if _subnet_free(core.cidr, other) > 0:
                    s = other
                    subnet_free = _subnet_free(core.cidr, other)
                    break
        if subnet_free <= 0:
            continue
        got = _assign(st, node, iface, min(subnet_free, room, to_allocate), pd, fallback, s, True, now)
        if got != 0:
            return got > 0  # added, or throttled: the operator waits for its token and goes on then
        break  # handleIPAllocation: a failed assign goes on to create an interface
    if core.icfg[I_CL_ATTACH] == 0:
        return False
    # CreateInterface: the next free index at or above first-interface-index, in the node's subnet
    for iface in range(core.icfg[I_CL_FIRST_IFACE], _node_ifaces(st, node)):
        if st.cl_iface[node, iface, CI_ATTACHED] == 1:
            continue
        s = _iface_subnet(st, node)
        wanted = min(to_allocate, _node_units(st, node))  # min(MaxIPsToAllocate, limits.IPv4 - 1)
        if not api_call(st, node, API_ATTACH, now, False):
            return False
        if _subnet_free(core.cidr, s) < 1 + (PREFIX_SIZE if pd else wanted):
            return False  # CreateNetworkInterface fails: no room in the node's subnet
        _attach(st, node, iface, s, now)
        if _assign(st, node, iface, wanted, pd, fallback, s, False, now) == 0:
            _detach(st, node, iface)  # the create call failed as a whole
            return False
        return True
    return False  # "Instance is out of interfaces"


# --------------------------------------------------------------------------- pools written once (AKS static blocks, crd writers)
@kjit
def _static_pass(st, node, prefixes, now):
    """Write the node's fixed pool once: /28 blocks (AKS static block) or first-fit addresses (crd writer)."""
    core = st.core
    if st.cl_node[node, CN_UNITS] > 0:
        return False
    s = st.cl_node[node, CN_SUBNET]
    count = core.icfg[I_CL_STATIC_UNITS]
    if prefixes:
        return _assign(st, node, 0, count * PREFIX_SIZE, True, False, s, True, now) > 0
    api_spend(core.cfg, core.icfg, core.cnt, API_ASSIGN, now, False)
    if _single_free(st, s) < count:
        return False
    for _ in range(count):
        offset = _single_address(st, s, True)
        _add_unit(st, node, 0, s, offset, 1)
    return True


# --------------------------------------------------------------------------- quiet nodes
# After a periodic pass: until when the next passes provably change nothing, as long as nothing touches
# the node (the engine makes it loud on every pod change, agent update and operator request). Each
# predicate mirrors its pass branch by branch and answers "quiet" only on branches that read the node's
# own tables, the settings and the time (never a subnet other nodes share), and that write nothing and
# call no cloud API. LOUD (0.0): the next pass runs.
LOUD = 0.0


@kjit(inline=True)
def _first_at_or_after(since, delay):
    """The earliest time ``t`` with ``t - since >= delay`` in float64 (``now - since >= delay`` first holds)."""
    t = since + delay
    while t - since >= delay and np.nextafter(t, -INF) - since >= delay:
        t = np.nextafter(t, -INF)
    while not t - since >= delay:
        t = np.nextafter(t, INF)
    return t


@kjit(inline=True)
def _first_after(since, delay):
    """The earliest time ``t`` with ``t - since > delay`` in float64."""
    t = since + delay
    while t - since > delay and np.nextafter(t, -INF) - since > delay:
        t = np.nextafter(t, -INF)
    while not t - since > delay:
        t = np.nextafter(t, INF)
    return t


@kjit(inline=True)
def _first_at_us(target_us):
    """The earliest time ``t`` with ``np.int64(t * 1e6) >= target_us`` (an ENI is old enough)."""
    t = target_us / 1e6
    while np.int64(t * 1e6) >= target_us and np.int64(np.nextafter(t, -INF) * 1e6) >= target_us:
        t = np.nextafter(t, -INF)
    while np.int64(t * 1e6) < target_us:
        t = np.nextafter(t, INF)
    return t


@kjit
def _cilium_quiet_until(st, node, now):
    """``_cilium_pass``: no excess to give back and nothing needed, or excess still inside its release delay."""
    core = st.core
    needed, excess = _cilium_need_and_excess(st, node)
    since = st.cl_time[node, CT_EXCESS_SINCE]
    if core.icfg[I_CL_RELEASE] != 0 and excess > 0:
        if since == INF or now - since >= core.cfg[C_CL_RELEASE_DELAY]:
            return LOUD  # the pass starts the delay, or releases
        return _first_at_or_after(since, core.cfg[C_CL_RELEASE_DELAY])
    if since != INF or needed > 0:
        return LOUD  # the pass clears the excess mark, or allocates (reading the subnets)
    return INF


@kjit
def cloud_period(st):
    """Seconds between a node's periodic passes (0: none)."""
    return st.core.cfg[C_CL_PERIOD]
