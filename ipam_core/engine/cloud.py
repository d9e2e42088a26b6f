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
  (aws/amazon-vpc-cni-k8s ``pkg/ipamd/ipamd.go``), rules in
  :mod:`ipam_core.cloud.vpc_cni`.
* ``CLOUD_AKS_DYNAMIC`` / ``CLOUD_AKS_STATIC`` (``azure`` with AKS's pod subnet):
  CNS's target every second (``cns/ipampool``), or /28 blocks once per node.
* ``CLOUD_CRD_STATIC`` (``crd`` with ``poolPerNode``): an external writer fills
  each node's pool once.

Python builds the configuration (:class:`CloudConfig`) and the tables
(:func:`init_cloud`); everything per event runs here. The core loop
(:mod:`ipam_core.engine.core`) calls these functions and schedules the timers
they ask for.
"""

from __future__ import annotations

import numpy as np

from ipam_core.cloud.aks import dynamic_target
from ipam_core.cloud.limits import PREFIX_SIZE
from ipam_core.cloud.vpc_cni import (
    eni_required,
    over_to_release,
    pool_too_high,
    pool_too_low,
    prefixes_needed,
    should_remove_extra_enis,
    target_state,
)
from ipam_core.cloud.watermarks import (
    excess_ips,
    max_ips_to_allocate,
    needed_ips,
    used_with_prefixes,
)
from ipam_core.engine import tables as T
from ipam_core.engine.rng import draw
from ipam_core.engine.tables import (
    C_CL_ABOVE,
    C_CL_AGENT_RESERVED,
    C_CL_ATTACH,
    C_CL_BATCH,
    C_CL_BATCH_PCT,
    C_CL_COOLDOWN,
    C_CL_DECREASE,
    C_CL_ENI_MIN_LIFE,
    C_CL_FALLBACK,
    C_CL_FILL_FIRST,
    C_CL_FIRST_IFACE,
    C_CL_KIND,
    C_CL_MAX,
    C_CL_MAX_IPS,
    C_CL_MIN,
    C_CL_MIN_IP,
    C_CL_NIC,
    C_CL_PERIOD,
    C_CL_PRE,
    C_CL_PRIMARY,
    C_CL_READY_MIN,
    C_CL_RELEASE,
    C_CL_RELEASE_DELAY,
    C_CL_STATIC_UNITS,
    C_CL_UNIT_SIZE,
    C_CL_UNITS,
    C_CL_WARM_ENI,
    C_CL_WARM_IP,
    C_CL_WARM_PREFIX,
    C_OPERATOR_DELAY,
    C_UPDATE_RATE,
    CI_ATTACHED,
    CI_PREFIXES,
    CI_PRIMARY,
    CI_SET,
    CI_SINCE_US,
    CI_UNITS,
    CLOUD_AKS_DYNAMIC,
    CLOUD_AKS_STATIC,
    CLOUD_CILIUM,
    CLOUD_VPC_CNI,
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
    K_CL_API_ASSIGN,
    K_CL_API_ATTACH,
    K_CL_API_RELEASE,
    K_CL_FRAG_FAILS,
    K_CL_IFACES,
    K_CL_PREFIXES,
    K_ERROR,
    K_FAMILY_BASE,
    N_PENDING,
    N_READY,
    S_ALLOCATED,
    S_N,
    S_S_LEN,
    S_S_OFF,
    S_W_LEN,
    S_W_OFF,
)
from ipam_core.kernels._jit import kjit
from ipam_core.kernels.blocks import bm_alloc_block, bm_free_blocks, bm_release_block
from ipam_core.kernels.scan import bm_find_free, bm_take_scan
from ipam_core.kernels.slots import bm_clear, bm_set
from ipam_core.modes.cloud_config import CloudConfig

INF = np.inf
PREFIX_ORDER = 4  # log2(16): a /28


# --------------------------------------------------------------------------- configuration (Python)
def cloud_cfg(cloud: CloudConfig) -> dict[int, float]:
    """``cfg`` index -> value of a mode's cloud settings (the ``C_CL_*`` entries of :mod:`ipam_core.engine.tables`)."""
    return {
        T.C_CL_KIND: cloud.kind, T.C_CL_IFACES: cloud.ifaces, T.C_CL_UNITS: cloud.units,
        T.C_CL_UNIT_SIZE: cloud.unit_size, T.C_CL_FIRST_IFACE: cloud.first_iface, T.C_CL_PRIMARY: cloud.primary,
        T.C_CL_ATTACH: cloud.attach, T.C_CL_FALLBACK: cloud.fallback, T.C_CL_FILL_FIRST: cloud.fill_first,
        T.C_CL_AGENT_RESERVED: cloud.agent_reserved, T.C_CL_READY_MIN: cloud.ready_min, T.C_CL_PRE: cloud.pre,
        T.C_CL_MIN: cloud.min_allocate, T.C_CL_MAX: cloud.max_allocate, T.C_CL_ABOVE: cloud.above,
        T.C_CL_RELEASE: cloud.release, T.C_CL_RELEASE_DELAY: cloud.release_delay_s, T.C_CL_PERIOD: cloud.period_s,
        T.C_CL_WARM_ENI: cloud.warm_eni, T.C_CL_WARM_IP: cloud.warm_ip, T.C_CL_MIN_IP: cloud.min_ip,
        T.C_CL_WARM_PREFIX: cloud.warm_prefix, T.C_CL_DECREASE: cloud.decrease_s,
        T.C_CL_ENI_MIN_LIFE: cloud.eni_min_life_s, T.C_CL_COOLDOWN: cloud.cooldown_s, T.C_CL_BATCH: cloud.batch,
        T.C_CL_BATCH_PCT: cloud.batch_pct, T.C_CL_MAX_IPS: cloud.max_ips, T.C_CL_STATIC_UNITS: cloud.static_units,
        T.C_CL_SUBNET_RESERVED: cloud.subnet_reserved, T.C_CL_NIC: cloud.nic,
    }


#: Addresses the cloud keeps in every subnet: the first four and the last.
SUBNET_RESERVED_LOW = 4
SUBNET_RESERVED_HIGH = 1


def init_cloud(state, cloud: CloudConfig, n_nodes: int):
    """Give a freshly built state its cloud tables and settings.

    Parameters
    ----------
    state : ipam_core.engine.state.State
        From :func:`~ipam_core.engine.state.build_state` with a ``POLICY_CLOUD`` layout
        (its sets are the subnets, node mask /32).
    cloud : CloudConfig
    n_nodes : int
        Distinct node ids of the workload.

    Returns
    -------
    State
        The same arrays plus sized cloud tables; each subnet's reserved addresses are
        taken and counted as carved and reserved.
    """
    n = max(n_nodes, 1)
    cl_node = np.zeros((n, T.CN_NCOL), dtype=np.int64)
    cl_time = np.full((n, T.CT_NCOL), INF, dtype=np.float64)
    cl_time[:, T.CT_LAST_SYNC] = -INF
    cl_time[:, T.CT_LAST_DECREASE] = -INF
    cl_time[:, T.CT_COOLDOWN] = -INF
    cl_iface = np.zeros((n, max(cloud.ifaces, 1), T.CI_NCOL), dtype=np.int64)
    cl_iface[:, :, T.CI_PRIMARY] = -1
    cl_unit = np.zeros((n, max(cloud.ifaces * cloud.units, 1), T.CU_NCOL), dtype=np.int64)
    cl_unit[:, :, T.CU_SET] = -1
    for index, value in cloud_cfg(cloud).items():
        state.cfg[index] = float(value)
    fc = T.K_FAMILY_BASE  # IPv4 counters
    for s in range(state.sets.shape[0]):
        size = int(state.sets[s, T.S_N])
        if cloud.subnet_reserved and size >= 8:
            w0, s0 = state.sets[s, T.S_W_OFF], state.sets[s, T.S_S_OFF]
            words = state.set_words[w0 : w0 + state.sets[s, T.S_W_LEN]]
            summary = state.set_summary[s0 : s0 + state.sets[s, T.S_S_LEN]]
            reserved = list(range(SUBNET_RESERVED_LOW)) + [size - k - 1 for k in range(SUBNET_RESERVED_HIGH)]
            for offset in reserved:
                bm_set(words, summary, offset)
            state.sets[s, T.S_ALLOCATED] += len(reserved)
            state.cnt[fc + T.F_CARVED] += len(reserved)
            state.cnt[fc + T.F_RESERVED] += len(reserved)
    free = int(np.sum(state.sets[:, T.S_N] - state.sets[:, T.S_ALLOCATED]))
    state.cnt[fc + T.F_CARVABLE] = free
    state.pool_carvable[0, 0] = free
    return state._replace(cl_node=cl_node, cl_time=cl_time, cl_iface=cl_iface, cl_unit=cl_unit)


# --------------------------------------------------------------------------- small helpers
@kjit(inline=True)
def _fc(field):
    # an IPv4 counter
    return K_FAMILY_BASE + field


@kjit
def _subnet(st, s):
    w0 = st.sets[s, S_W_OFF]
    s0 = st.sets[s, S_S_OFF]
    return st.set_words[w0 : w0 + st.sets[s, S_W_LEN]], st.set_summary[s0 : s0 + st.sets[s, S_S_LEN]]


@kjit
def _subnet_free(st, s):
    return st.sets[s, S_N] - st.sets[s, S_ALLOCATED]


@kjit
def _take_subnet(st, s, count):
    # bookkeeping of `count` addresses taken from subnet s
    st.sets[s, S_ALLOCATED] += count
    st.cnt[_fc(F_CARVABLE)] -= count
    st.pool_carvable[0, 0] -= count
    st.cnt[_fc(F_CARVED)] += count


@kjit
def _give_subnet(st, s, count):
    st.sets[s, S_ALLOCATED] -= count
    st.cnt[_fc(F_CARVABLE)] += count
    st.pool_carvable[0, 0] += count
    st.cnt[_fc(F_CARVED)] -= count


@kjit
def _single_address(st, s, first_fit):
    """One free address of subnet s: random start and forward scan (EC2's order is unpublished), or first fit."""
    words, summary = _subnet(st, s)
    n = st.sets[s, S_N]
    if first_fit:
        offset = bm_find_free(words, summary, 0)
        if offset >= 0:
            bm_set(words, summary, offset)
    else:
        offset = bm_take_scan(words, summary, draw(st.cnt, n))
    if offset < 0:
        return -1
    _take_subnet(st, s, 1)
    return offset


@kjit
def _units_per_iface(st):
    return np.int64(st.cfg[C_CL_UNITS])


@kjit
def _free_unit_slot(st, node, iface):
    u = _units_per_iface(st)
    for j in range(iface * u, iface * u + u):
        if st.cl_unit[node, j, CU_SET] < 0:
            return j
    return -1


@kjit
def _add_unit(st, node, iface, s, offset, size):
    j = _free_unit_slot(st, node, iface)
    if j < 0:
        st.cnt[K_ERROR] = ERROR_CLOUD_UNITS_FULL
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
        st.cnt[K_CL_PREFIXES] += 1
    st.cnt[_fc(F_NODE_CIDRS)] += 1
    st.cnt[_fc(F_CARVES)] += 1
    st.cnt[_fc(F_FREE)] += size
    st.pool_free[0, 0] += size
    return j


@kjit
def _drop_unit(st, node, j):
    """Give a unit (with no address taken) back to its subnet."""
    unit = st.cl_unit[node, j]
    s = unit[CU_SET]
    size = unit[CU_SIZE]
    words, summary = _subnet(st, s)
    if size > 1:
        bm_release_block(words, summary, unit[CU_OFF], PREFIX_ORDER)
    else:
        bm_clear(words, summary, unit[CU_OFF])
    _give_subnet(st, s, size)
    iface = j // _units_per_iface(st)
    st.cl_iface[node, iface, CI_UNITS] -= 1
    st.cl_node[node, CN_UNITS] -= 1
    st.cl_node[node, CN_HELD] -= size
    if size > 1:
        st.cl_iface[node, iface, CI_PREFIXES] -= 1
        st.cl_node[node, CN_PREFIXES] -= 1
        st.cnt[K_CL_PREFIXES] -= 1
    st.cnt[_fc(F_NODE_CIDRS)] -= 1
    st.cnt[_fc(F_RELEASES)] += 1
    st.cnt[_fc(F_FREE)] -= size - unit[CU_USED]
    st.pool_free[0, 0] -= size - unit[CU_USED]
    unit[CU_SET] = -1
    unit[CU_MASK] = 0
    unit[CU_USED] = 0


@kjit
def _iface_room(st, node, iface):
    # units the interface can still take
    return _units_per_iface(st) - st.cl_iface[node, iface, CI_UNITS]


@kjit
def _assign(st, node, iface, addresses, pd, fallback, s, count_call):
    """One assign call on an interface: ceil(addresses / 16) prefixes, or `addresses` single IPs.

    Returns the addresses added (0 on failure). With prefixes, a subnet without enough
    free aligned /28s refuses the whole call (InsufficientCidrBlocks); Cilium then asks
    for single addresses (a second call) and stops using prefixes on the node
    (``pkg/aws/eni/node.go`` ``AllocateIPs``), ipamd does not. ``count_call`` is false
    when the addresses come with the interface's create call.
    """
    room = _iface_room(st, node, iface)
    if room <= 0 or addresses <= 0:
        return 0
    if pd:
        count = min(-(-addresses // PREFIX_SIZE), room)
        if count_call:
            st.cnt[K_CL_API_ASSIGN] += 1
        words, summary = _subnet(st, s)
        if bm_free_blocks(words, PREFIX_ORDER) >= count:  # EC2 assigns all the prefixes or none
            for _ in range(count):
                offset = bm_alloc_block(words, summary, PREFIX_ORDER)
                _take_subnet(st, s, PREFIX_SIZE)
                _add_unit(st, node, iface, s, offset, PREFIX_SIZE)
            return count * PREFIX_SIZE
        if _subnet_free(st, s) >= count * PREFIX_SIZE:
            st.cnt[K_CL_FRAG_FAILS] += 1  # enough free addresses, no aligned /28 for them
        if not fallback:
            return 0
        st.cl_node[node, CN_PD] = 0  # "Subnet might be out of prefixes, Cilium will not allocate prefixes ..."
        count_call = True  # the single addresses are a second call
    count = min(addresses, room)  # an ENI's address limit counts prefixes and single addresses alike
    if count_call:
        st.cnt[K_CL_API_ASSIGN] += 1
    if _subnet_free(st, s) < count:
        return 0  # InsufficientFreeAddressesInSubnet: the call fails as a whole
    for _ in range(count):
        offset = _single_address(st, s, False)
        _add_unit(st, node, iface, s, offset, 1)
    return count


@kjit
def _attach(st, node, iface, s, now):
    """Attach interface `iface` in subnet s, taking its primary address when the cloud gives one."""
    st.cl_iface[node, iface, CI_ATTACHED] = 1
    st.cl_iface[node, iface, CI_SET] = s
    st.cl_iface[node, iface, CI_SINCE_US] = np.int64(now * 1e6)
    st.cl_iface[node, iface, CI_PRIMARY] = -1
    if st.cfg[C_CL_PRIMARY] != 0.0:
        offset = _single_address(st, s, False)
        if offset >= 0:
            st.cl_iface[node, iface, CI_PRIMARY] = offset
            st.cl_node[node, CN_PRIMARIES] += 1
            st.cnt[_fc(F_RESERVED)] += 1
    st.cl_node[node, CN_IFACES] += 1
    st.cnt[K_CL_IFACES] += 1


@kjit
def _detach(st, node, iface):
    """Release an interface's units (all free) and its primary address."""
    u = _units_per_iface(st)
    for j in range(iface * u, iface * u + u):
        if st.cl_unit[node, j, CU_SET] >= 0:
            _drop_unit(st, node, j)
    primary = st.cl_iface[node, iface, CI_PRIMARY]
    if primary >= 0:
        s = st.cl_iface[node, iface, CI_SET]
        words, summary = _subnet(st, s)
        bm_clear(words, summary, primary)
        _give_subnet(st, s, 1)
        st.cl_node[node, CN_PRIMARIES] -= 1
        st.cnt[_fc(F_RESERVED)] -= 1
    st.cl_iface[node, iface, CI_ATTACHED] = 0
    st.cl_iface[node, iface, CI_PRIMARY] = -1
    st.cl_node[node, CN_IFACES] -= 1
    st.cnt[K_CL_IFACES] -= 1


# --------------------------------------------------------------------------- addresses of pods (agent side)
@kjit
def _pick(st, node):
    """A unit and a free bit in it: the first free address (ipamd datastore order) or a random one (Go map order)."""
    units = st.cl_unit.shape[1]
    if st.cfg[C_CL_FILL_FIRST] != 0.0:
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
    r = draw(st.cnt, free)
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


@kjit
def _take(st, node, j, bit):
    unit = st.cl_unit[node, j]
    unit[CU_MASK] |= np.int64(1) << bit
    unit[CU_USED] += 1
    st.cl_node[node, CN_USED] += 1
    st.cnt[_fc(F_FREE)] -= 1
    st.pool_free[0, 0] -= 1
    st.np_inuse[node, 0, 0] += 1


@kjit
def cloud_alloc_pod(st, pod, node, now):
    """Give a pod an IPv4 address from its node's pool.

    Returns
    -------
    int
        -1 on success, 0 (the IPv4 family) when the pool has no free address.
    """
    j, bit = _pick(st, node)
    if j < 0:
        st.cnt[_fc(F_IP_FAILS)] += 1
        return 0
    _take(st, node, j, bit)
    st.pods[pod, D_SLOT] = j
    st.pods[pod, D_OFF] = bit
    st.cnt[_fc(F_USED)] += 1
    st.cnt[_fc(F_IP_ALLOCS)] += 1
    return -1


@kjit
def cloud_release_pod(st, pod, node):
    """Return a running pod's address to its node's pool (the pool keeps it)."""
    j = st.pods[pod, D_SLOT]
    if j < 0:
        return
    unit = st.cl_unit[node, j]
    unit[CU_MASK] &= ~(np.int64(1) << st.pods[pod, D_OFF])
    unit[CU_USED] -= 1
    st.cl_node[node, CN_USED] -= 1
    st.cnt[_fc(F_FREE)] += 1
    st.pool_free[0, 0] += 1
    st.np_inuse[node, 0, 0] -= 1
    st.cnt[_fc(F_USED)] -= 1
    st.pods[pod, D_SLOT] = -1


@kjit
def cloud_agent_start(st, node):
    """Start the agent once its pool holds the minimum: take router / health / reserved addresses.

    Returns
    -------
    bool
        Whether the agent started now.
    """
    if st.cl_node[node, CN_HELD] < np.int64(st.cfg[C_CL_READY_MIN]) or st.cl_node[node, CN_HELD] == 0:
        return False
    for _ in range(np.int64(st.cfg[C_CL_AGENT_RESERVED])):
        j, bit = _pick(st, node)
        if j < 0:
            break
        _take(st, node, j, bit)
        st.cl_node[node, CN_RESERVED] += 1
        st.cnt[_fc(F_RESERVED)] += 1
    return True


@kjit
def cloud_agent_changed(st, node, now):
    """The agent's allocations changed: when to write its CiliumNode status (-1: no update pending to add).

    Notes
    -----
    The CRD allocator's refresh trigger has a minimum interval of ``CiliumNodeUpdateRate``
    (cilium ``pkg/ipam/crd.go``): the first change writes at once, later ones wait for it.
    Only Cilium's operator reads the status; ipamd and CNS see their own node directly.
    """
    kind = np.int64(st.cfg[C_CL_KIND])
    if kind != CLOUD_CILIUM or st.cl_node[node, CN_SYNC_ARMED] == 1:
        return -1.0
    st.cl_node[node, CN_SYNC_ARMED] = 1
    return max(now, st.cl_time[node, CT_LAST_SYNC] + st.cfg[C_UPDATE_RATE])


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
    return now + st.cfg[C_OPERATOR_DELAY]


# --------------------------------------------------------------------------- nodes
@kjit
def cloud_node_add(st, node, now):
    """A node joins: its primary interface (eth0 / the VM's NIC) comes with the instance.

    Returns
    -------
    float
        The period of the node's periodic pass (0: none).
    """
    cn = st.cl_node[node]
    for c in range(cn.shape[0]):
        cn[c] = 0
    st.cl_time[node, CT_OP_AT] = INF
    st.cl_time[node, CT_LAST_SYNC] = -INF
    st.cl_time[node, CT_EXCESS_SINCE] = INF
    st.cl_time[node, CT_LAST_DECREASE] = -INF
    st.cl_time[node, CT_COOLDOWN] = -INF
    cn[CN_SUBNET] = node % st.sets.shape[0]  # nodes spread over the subnets (an ASG over its AZs)
    cn[CN_PD] = 1 if st.cfg[C_CL_UNIT_SIZE] > 1.0 else 0
    if st.cfg[C_CL_NIC] != 0.0:
        _attach(st, node, 0, cn[CN_SUBNET], now)
    else:  # a crd pool: no cloud interface, one slot row for the units
        st.cl_iface[node, 0, CI_ATTACHED] = 1
        st.cl_iface[node, 0, CI_SET] = cn[CN_SUBNET]
    return st.cfg[C_CL_PERIOD]


@kjit
def cloud_node_delete(st, node):
    """The instance goes away: every interface, unit and primary address returns to the subnets."""
    for iface in range(st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 0:
            continue
        u = _units_per_iface(st)
        for j in range(iface * u, iface * u + u):
            unit = st.cl_unit[node, j]
            if unit[CU_SET] >= 0 and unit[CU_USED] > 0:  # the agent's reservations (pods are gone already)
                st.cnt[_fc(F_FREE)] += unit[CU_USED]
                st.pool_free[0, 0] += unit[CU_USED]
                unit[CU_USED] = 0
                unit[CU_MASK] = 0
        if st.cfg[C_CL_NIC] == 0.0:
            for j in range(iface * u, iface * u + u):
                if st.cl_unit[node, j, CU_SET] >= 0:
                    _drop_unit(st, node, j)
            st.cl_iface[node, iface, CI_ATTACHED] = 0
        else:
            _detach(st, node, iface)
    st.cnt[_fc(F_RESERVED)] -= st.cl_node[node, CN_RESERVED]
    st.np_inuse[node, 0, 0] = 0
    cn = st.cl_node[node]
    for c in range(cn.shape[0]):
        cn[c] = 0


# --------------------------------------------------------------------------- Cilium's operator
@kjit
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
def _cilium_release(st, node, excess):
    """PrepareIPRelease + ReleaseIPs: free single addresses of the interface with the most, up to `excess`."""
    u = _units_per_iface(st)
    best = -1
    best_free = 0
    for iface in range(np.int64(st.cfg[C_CL_FIRST_IFACE]), st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 0 or st.cl_iface[node, iface, CI_PREFIXES] > 0:
            continue  # release of prefixes is not supported upstream
        free = 0
        for j in range(iface * u, iface * u + u):
            if st.cl_unit[node, j, CU_SET] >= 0 and st.cl_unit[node, j, CU_USED] == 0:
                free += 1
        if min(free, excess) > best_free:
            best = iface
            best_free = min(free, excess)
    if best < 0:
        return False
    left = best_free
    for j in range(best * u, best * u + u):
        if left == 0:
            break
        if st.cl_unit[node, j, CU_SET] >= 0 and st.cl_unit[node, j, CU_USED] == 0:
            _drop_unit(st, node, j)
            left -= 1
    st.cnt[K_CL_API_RELEASE] += 1
    return True


@kjit
def _cilium_need_and_excess(st, node):
    """(needed, excess) of a node from its last CiliumNode status (``recalculate``, cilium ``pkg/ipam/node.go``)."""
    cn = st.cl_node[node]
    available = cn[CN_HELD]
    used = cn[CN_REPORTED]
    pre = np.int64(st.cfg[C_CL_PRE])
    minimum = np.int64(st.cfg[C_CL_MIN])
    needed = needed_ips(available, used, pre, minimum, np.int64(st.cfg[C_CL_MAX]))
    used_excess = used
    if cn[CN_PREFIXES] > 0:  # GetUsedIPWithPrefixes reads the status, like needed_ips
        used_excess = used_with_prefixes(cn[CN_REPORTED_SINGLES], cn[CN_REPORTED_PREFIXES])
    return needed, excess_ips(available, used_excess, pre, minimum, np.int64(st.cfg[C_CL_ABOVE]))


@kjit
def _cilium_pass(st, node, now):
    """One maintenance pass of Cilium's operator for a node; returns True when it changed the cloud."""
    cn = st.cl_node[node]
    above = np.int64(st.cfg[C_CL_ABOVE])
    needed, excess = _cilium_need_and_excess(st, node)
    if st.cfg[C_CL_RELEASE] != 0.0 and excess > 0:
        # handleIPRelease: IPs wait --excess-ip-release-delay before they go (handshake with the agent collapsed)
        if st.cl_time[node, CT_EXCESS_SINCE] == INF:
            st.cl_time[node, CT_EXCESS_SINCE] = now
        if now - st.cl_time[node, CT_EXCESS_SINCE] >= st.cfg[C_CL_RELEASE_DELAY]:
            st.cl_time[node, CT_EXCESS_SINCE] = INF
            return _cilium_release(st, node, excess)
        return False
    st.cl_time[node, CT_EXCESS_SINCE] = INF
    if needed <= 0:
        return False
    to_allocate = max_ips_to_allocate(needed, above, st.nodes[node, N_PENDING])
    pd = cn[CN_PD] == 1
    size = PREFIX_SIZE if pd else 1
    fallback = st.cfg[C_CL_FALLBACK] != 0.0
    # PrepareIPAllocation: the first usable interface with room whose subnet has free addresses
    for iface in range(np.int64(st.cfg[C_CL_FIRST_IFACE]), st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 0:
            continue
        room = _iface_room(st, node, iface) * size
        s = st.cl_iface[node, iface, CI_SET]
        if room <= 0:
            continue
        subnet_free = _subnet_free(st, s)
        if subnet_free <= 0 and np.int64(st.cfg[C_CL_KIND]) == CLOUD_CILIUM and st.cfg[C_CL_ATTACH] == 0.0:
            # Azure: an IP configuration may come from any subnet of the VNet with free addresses
            for other in range(st.sets.shape[0]):
                if _subnet_free(st, other) > 0:
                    s = other
                    subnet_free = _subnet_free(st, other)
                    break
        if subnet_free <= 0:
            continue
        if _assign(st, node, iface, min(subnet_free, room, to_allocate), pd, fallback, s, True) > 0:
            return True
        break  # handleIPAllocation: a failed assign goes on to create an interface
    if st.cfg[C_CL_ATTACH] == 0.0:
        return False
    # CreateInterface: the next free index at or above first-interface-index, in the node's subnet
    for iface in range(np.int64(st.cfg[C_CL_FIRST_IFACE]), st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 1:
            continue
        s = cn[CN_SUBNET]
        wanted = min(to_allocate, _units_per_iface(st))  # min(MaxIPsToAllocate, limits.IPv4 - 1)
        st.cnt[K_CL_API_ATTACH] += 1
        if _subnet_free(st, s) < 1 + (PREFIX_SIZE if pd else wanted):
            return False  # CreateNetworkInterface fails: no room in the node's subnet
        _attach(st, node, iface, s, now)
        if _assign(st, node, iface, wanted, pd, fallback, s, False) == 0:
            _detach(st, node, iface)  # the create call failed as a whole
            return False
        return True
    return False  # "Instance is out of interfaces"


# --------------------------------------------------------------------------- AWS VPC CNI ipamd
@kjit
def _vpc_stats(st, node):
    cn = st.cl_node[node]
    free_prefixes = 0
    if cn[CN_PREFIXES] > 0:
        for j in range(st.cl_unit.shape[1]):
            unit = st.cl_unit[node, j]
            if unit[CU_SET] >= 0 and unit[CU_SIZE] > 1 and unit[CU_USED] == 0:
                free_prefixes += 1
    return cn[CN_HELD], cn[CN_USED], cn[CN_PREFIXES], free_prefixes


@kjit
def _vpc_want(st, total, assigned, prefixes, free_prefixes, pd):
    """What ipamd asks for when its pool is too low (``tryAssignIPs`` / ``tryAssignPrefixes``).

    Returns
    -------
    (bool, int)
        Whether ``WARM_IP_TARGET`` / ``MINIMUM_IP_TARGET`` are already met (ipamd then asks for
        nothing), and how many addresses (prefixes with delegation) it wants: the shortfall with
        targets set, else a whole ENI's worth.
    """
    warm_ip = np.int64(st.cfg[C_CL_WARM_IP])
    min_ip = np.int64(st.cfg[C_CL_MIN_IP])
    if pd:
        return False, prefixes_needed(total, assigned, prefixes, free_prefixes, warm_ip, min_ip,
                                      np.int64(st.cfg[C_CL_WARM_PREFIX]))
    if warm_ip == 0 and min_ip == 0:
        return False, _units_per_iface(st)
    short, _ = target_state(total, assigned, prefixes, free_prefixes, warm_ip, min_ip, pd)
    return short == 0, short


@kjit
def _vpc_increase(st, node, now):
    """increaseDatastorePool: fill the first ENI with room, else attach one."""
    if now < st.cl_time[node, CT_COOLDOWN]:
        return False  # inInsufficientCidrCoolingPeriod
    total, assigned, prefixes, free_prefixes = _vpc_stats(st, node)
    pd = st.cl_node[node, CN_PD] == 1
    met, want = _vpc_want(st, total, assigned, prefixes, free_prefixes, pd)
    if met:
        return False
    s = st.cl_node[node, CN_SUBNET]
    size = PREFIX_SIZE if pd else 1
    for iface in range(st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 0 or _iface_room(st, node, iface) <= 0:
            continue
        got = _assign(st, node, iface, min(_iface_room(st, node, iface), want) * size, pd, False, s, True)
        if got == 0 and not pd:
            got = _assign(st, node, iface, 1, False, False, s, True)  # tryAssignIPs: "Try to just get one more IP"
        if got == 0:
            st.cl_time[node, CT_COOLDOWN] = now + st.cfg[C_CL_COOLDOWN]
        return got > 0
    if st.cl_node[node, CN_IFACES] >= st.cl_iface.shape[1]:
        return False  # hasRoomForEni
    count = min(want, _units_per_iface(st))
    if count <= 0:
        return False
    if _subnet_free(st, s) < 1 + (count * size if not pd else 0):
        st.cl_time[node, CT_COOLDOWN] = now + st.cfg[C_CL_COOLDOWN]
        return False
    for iface in range(st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 0:
            _attach(st, node, iface, s, now)
            st.cnt[K_CL_API_ATTACH] += 1
            got = _assign(st, node, iface, count * size, pd, False, s, False)
            if got == 0:  # AllocENI failed as a whole (InsufficientCidrBlocks): no ENI
                _detach(st, node, iface)
                st.cl_time[node, CT_COOLDOWN] = now + st.cfg[C_CL_COOLDOWN]
                return False
            return True
    return False


@kjit
def _vpc_decrease(st, node, now):
    """tryUnassignCidrsFromAll: free IPs / prefixes above the targets, newest ENI first."""
    total, assigned, prefixes, free_prefixes = _vpc_stats(st, node)
    pd = st.cl_node[node, CN_PD] == 1
    over = over_to_release(total, assigned, prefixes, free_prefixes, np.int64(st.cfg[C_CL_WARM_IP]),
                           np.int64(st.cfg[C_CL_MIN_IP]), np.int64(st.cfg[C_CL_WARM_PREFIX]), pd)
    st.cl_time[node, CT_LAST_DECREASE] = now
    changed = False
    u = _units_per_iface(st)
    for iface in range(st.cl_iface.shape[1] - 1, -1, -1):
        if over <= 0:
            break
        if st.cl_iface[node, iface, CI_ATTACHED] == 0:
            continue
        freed = 0
        for j in range(iface * u + u - 1, iface * u - 1, -1):
            if over <= 0:
                break
            if st.cl_unit[node, j, CU_SET] >= 0 and st.cl_unit[node, j, CU_USED] == 0:
                _drop_unit(st, node, j)
                over -= 1
                freed += 1
        if freed:
            st.cnt[K_CL_API_RELEASE] += 1
            changed = True
    return changed


@kjit
def _vpc_free_eni(st, node, now):
    """tryFreeENI: detach one unused, old enough, non-primary ENI the targets do not need."""
    total, assigned, _, free_prefixes = _vpc_stats(st, node)
    pd = st.cl_node[node, CN_PD] == 1
    u = _units_per_iface(st)
    freeable = False
    for iface in range(1, st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 1 and _iface_used(st, node, iface) == 0:
            freeable = True
    warm_ip = np.int64(st.cfg[C_CL_WARM_IP])
    min_ip = np.int64(st.cfg[C_CL_MIN_IP])
    warm_prefix = np.int64(st.cfg[C_CL_WARM_PREFIX])
    if not should_remove_extra_enis(total, assigned, np.int64(st.cfg[C_CL_WARM_ENI]), warm_ip, min_ip, warm_prefix,
                                    pd, u, freeable):
        return False
    min_life_us = np.int64(st.cfg[C_CL_ENI_MIN_LIFE] * 1e6)
    now_us = np.int64(now * 1e6)
    for iface in range(st.cl_iface.shape[1] - 1, 0, -1):
        if st.cl_iface[node, iface, CI_ATTACHED] == 0 or _iface_used(st, node, iface) != 0:
            continue
        if now_us - st.cl_iface[node, iface, CI_SINCE_US] < min_life_us:
            continue  # isTooYoung
        held = 0
        own_prefixes = 0
        for j in range(iface * u, iface * u + u):
            if st.cl_unit[node, j, CU_SET] >= 0:
                held += st.cl_unit[node, j, CU_SIZE]
                if st.cl_unit[node, j, CU_SIZE] > 1:
                    own_prefixes += 1
        if eni_required((total - assigned) - held, total - held, free_prefixes - own_prefixes, warm_ip, min_ip,
                        warm_prefix, pd):
            continue
        _detach(st, node, iface)
        st.cnt[K_CL_API_RELEASE] += 1
        return True
    return False


@kjit
def _iface_used(st, node, iface):
    u = _units_per_iface(st)
    used = 0
    for j in range(iface * u, iface * u + u):
        if st.cl_unit[node, j, CU_SET] >= 0:
            used += st.cl_unit[node, j, CU_USED]
    return used


@kjit
def _vpc_pass(st, node, now):
    """updateIPPoolIfRequired: grow, else shrink (every decreaseIPPoolInterval), then maybe free an ENI."""
    total, assigned, prefixes, free_prefixes = _vpc_stats(st, node)
    pd = st.cl_node[node, CN_PD] == 1
    warm_ip = np.int64(st.cfg[C_CL_WARM_IP])
    min_ip = np.int64(st.cfg[C_CL_MIN_IP])
    warm_prefix = np.int64(st.cfg[C_CL_WARM_PREFIX])
    changed = False
    if pool_too_low(total, assigned, prefixes, free_prefixes, np.int64(st.cfg[C_CL_WARM_ENI]), warm_ip, min_ip,
                    warm_prefix, pd, _units_per_iface(st)):
        changed = _vpc_increase(st, node, now)
    elif (pool_too_high(total, assigned, prefixes, free_prefixes, warm_ip, min_ip, warm_prefix, pd)
          and now - st.cl_time[node, CT_LAST_DECREASE] > st.cfg[C_CL_DECREASE]):
        changed = _vpc_decrease(st, node, now)
    if _vpc_free_eni(st, node, now):
        changed = True
    return changed


# --------------------------------------------------------------------------- AKS pod subnet and crd writers
@kjit
def _aks_dynamic_pass(st, node):
    """CNS: request batch * ceil(buffer + demand / batch) addresses, give back the rest."""
    cn = st.cl_node[node]
    demand = cn[CN_USED] - cn[CN_RESERVED]
    target = dynamic_target(demand, np.int64(st.cfg[C_CL_BATCH]), np.int64(st.cfg[C_CL_BATCH_PCT]),
                            np.int64(st.cfg[C_CL_MAX_IPS]))
    held = cn[CN_HELD]
    s = cn[CN_SUBNET]
    if target > held:
        return _assign(st, node, 0, min(target - held, _subnet_free(st, s)), False, False, s, True) > 0
    if target < held:
        left = held - target
        for j in range(st.cl_unit.shape[1] - 1, -1, -1):
            if left == 0:
                break
            if st.cl_unit[node, j, CU_SET] >= 0 and st.cl_unit[node, j, CU_USED] == 0:
                _drop_unit(st, node, j)
                left -= 1
        if left < held - target:
            st.cnt[K_CL_API_RELEASE] += 1
            return True
    return False


@kjit
def _static_pass(st, node, prefixes):
    """Write the node's fixed pool once: /28 blocks (AKS static block) or first-fit addresses (crd writer)."""
    if st.cl_node[node, CN_UNITS] > 0:
        return False
    s = st.cl_node[node, CN_SUBNET]
    count = np.int64(st.cfg[C_CL_STATIC_UNITS])
    if prefixes:
        return _assign(st, node, 0, count * PREFIX_SIZE, True, False, s, True) > 0
    st.cnt[K_CL_API_ASSIGN] += 1
    if _subnet_free(st, s) < count:
        return False
    for _ in range(count):
        offset = _single_address(st, s, True)
        _add_unit(st, node, 0, s, offset, 1)
    return True


@kjit
def cloud_operator(st, node, now):
    """One pass of whoever manages the node's pool.

    Returns
    -------
    float
        When the next event-driven pass should run (-1: none asked; the periodic pass,
        if any, still runs). Cilium's operator comes back after its delay when it
        changed something (``MaintainIPPool`` triggers a resync and a new pass).
    """
    kind = np.int64(st.cfg[C_CL_KIND])
    if kind == CLOUD_CILIUM:
        if _cilium_pass(st, node, now):
            return now + st.cfg[C_OPERATOR_DELAY]
        return -1.0
    if kind == CLOUD_VPC_CNI:
        _vpc_pass(st, node, now)
    elif kind == CLOUD_AKS_DYNAMIC:
        _aks_dynamic_pass(st, node)
    elif kind == CLOUD_AKS_STATIC:
        _static_pass(st, node, True)
    else:
        _static_pass(st, node, False)
    return -1.0


# --------------------------------------------------------------------------- quiet nodes
# After a periodic pass: until when the next passes provably change nothing, as long as nothing touches
# the node (the engine makes it loud on every pod change, agent update and operator request). Each
# predicate mirrors its pass branch by branch and answers "quiet" only on branches that read the node's
# own tables, the settings and the time (never a subnet other nodes share), and that write nothing and
# call no cloud API. LOUD (0.0): the next pass runs.
LOUD = 0.0


@kjit
def _first_at_or_after(since, delay):
    """The earliest time ``t`` with ``t - since >= delay`` in float64 (``now - since >= delay`` first holds)."""
    t = since + delay
    while t - since >= delay and np.nextafter(t, -INF) - since >= delay:
        t = np.nextafter(t, -INF)
    while not t - since >= delay:
        t = np.nextafter(t, INF)
    return t


@kjit
def _first_after(since, delay):
    """The earliest time ``t`` with ``t - since > delay`` in float64."""
    t = since + delay
    while t - since > delay and np.nextafter(t, -INF) - since > delay:
        t = np.nextafter(t, -INF)
    while not t - since > delay:
        t = np.nextafter(t, INF)
    return t


@kjit
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
    needed, excess = _cilium_need_and_excess(st, node)
    since = st.cl_time[node, CT_EXCESS_SINCE]
    if st.cfg[C_CL_RELEASE] != 0.0 and excess > 0:
        if since == INF or now - since >= st.cfg[C_CL_RELEASE_DELAY]:
            return LOUD  # the pass starts the delay, or releases
        return _first_at_or_after(since, st.cfg[C_CL_RELEASE_DELAY])
    if since != INF or needed > 0:
        return LOUD  # the pass clears the excess mark, or allocates (reading the subnets)
    return INF


@kjit
def _vpc_increase_quiet_until(st, node, now, total, assigned, prefixes, free_prefixes, pd):
    """``_vpc_increase`` on a pool that is too low: cooling down, or returning before any call."""
    if now < st.cl_time[node, CT_COOLDOWN]:
        return st.cl_time[node, CT_COOLDOWN]
    met, want = _vpc_want(st, total, assigned, prefixes, free_prefixes, pd)
    if met:
        return INF
    for iface in range(st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 1 and _iface_room(st, node, iface) > 0:
            return LOUD  # assigns, or fails and starts a cooldown
    if st.cl_node[node, CN_IFACES] >= st.cl_iface.shape[1]:
        return INF
    return INF if min(want, _units_per_iface(st)) <= 0 else LOUD


@kjit
def _vpc_quiet_until(st, node, now):
    """``_vpc_pass``: neither grows nor shrinks (yet), and frees no ENI (yet)."""
    total, assigned, prefixes, free_prefixes = _vpc_stats(st, node)
    pd = st.cl_node[node, CN_PD] == 1
    warm_eni = np.int64(st.cfg[C_CL_WARM_ENI])
    warm_ip = np.int64(st.cfg[C_CL_WARM_IP])
    min_ip = np.int64(st.cfg[C_CL_MIN_IP])
    warm_prefix = np.int64(st.cfg[C_CL_WARM_PREFIX])
    u = _units_per_iface(st)
    wake = INF
    if pool_too_low(total, assigned, prefixes, free_prefixes, warm_eni, warm_ip, min_ip, warm_prefix, pd, u):
        wake = _vpc_increase_quiet_until(st, node, now, total, assigned, prefixes, free_prefixes, pd)
    elif pool_too_high(total, assigned, prefixes, free_prefixes, warm_ip, min_ip, warm_prefix, pd):
        last = st.cl_time[node, CT_LAST_DECREASE]
        if now - last > st.cfg[C_CL_DECREASE]:
            return LOUD
        wake = _first_after(last, st.cfg[C_CL_DECREASE])
    if wake == LOUD:
        return LOUD
    # _vpc_free_eni
    freeable = False
    for iface in range(1, st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 1 and _iface_used(st, node, iface) == 0:
            freeable = True
    if not should_remove_extra_enis(total, assigned, warm_eni, warm_ip, min_ip, warm_prefix, pd, u, freeable):
        return wake
    min_life_us = np.int64(st.cfg[C_CL_ENI_MIN_LIFE] * 1e6)
    now_us = np.int64(now * 1e6)
    for iface in range(st.cl_iface.shape[1] - 1, 0, -1):
        if st.cl_iface[node, iface, CI_ATTACHED] == 0 or _iface_used(st, node, iface) != 0:
            continue
        since_us = st.cl_iface[node, iface, CI_SINCE_US]
        if now_us - since_us < min_life_us:
            wake = min(wake, _first_at_us(since_us + min_life_us))  # too young: it may go then
            continue
        held = 0
        own_prefixes = 0
        for j in range(iface * u, iface * u + u):
            if st.cl_unit[node, j, CU_SET] >= 0:
                held += st.cl_unit[node, j, CU_SIZE]
                if st.cl_unit[node, j, CU_SIZE] > 1:
                    own_prefixes += 1
        if not eni_required((total - assigned) - held, total - held, free_prefixes - own_prefixes, warm_ip, min_ip,
                            warm_prefix, pd):
            return LOUD  # detached now
    return wake


@kjit
def _aks_dynamic_quiet_until(st, node):
    """``_aks_dynamic_pass``: at its target, or unable to move towards it without reading the subnets."""
    cn = st.cl_node[node]
    target = dynamic_target(cn[CN_USED] - cn[CN_RESERVED], np.int64(st.cfg[C_CL_BATCH]),
                            np.int64(st.cfg[C_CL_BATCH_PCT]), np.int64(st.cfg[C_CL_MAX_IPS]))
    held = cn[CN_HELD]
    if target > held:
        return INF if _iface_room(st, node, 0) <= 0 else LOUD
    if target < held:
        for j in range(st.cl_unit.shape[1]):
            if st.cl_unit[node, j, CU_SET] >= 0 and st.cl_unit[node, j, CU_USED] == 0:
                return LOUD
    return INF


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
    kind = np.int64(st.cfg[C_CL_KIND])
    if kind == CLOUD_CILIUM:
        return _cilium_quiet_until(st, node, now)
    if kind == CLOUD_VPC_CNI:
        return _vpc_quiet_until(st, node, now)
    if kind == CLOUD_AKS_DYNAMIC:
        return _aks_dynamic_quiet_until(st, node)
    return INF if st.cl_node[node, CN_UNITS] > 0 else LOUD  # static pools are written once


@kjit
def cloud_period(st):
    """Seconds between a node's periodic passes (0: none)."""
    return st.cfg[C_CL_PERIOD]
