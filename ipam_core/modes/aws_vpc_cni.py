"""The AWS VPC CNI (``aws-vpc-cni``): ipamd keeps a warm pool of ENI addresses or /28 prefixes per node.

Every 5 s ipamd compares its node's pool with ``WARM_ENI_TARGET`` (default 1: a
whole ENI's addresses free), ``WARM_IP_TARGET`` and ``MINIMUM_IP_TARGET`` (which
override it), or, with ``ENABLE_PREFIX_DELEGATION``, ``WARM_PREFIX_TARGET``; it
fills the first ENI with room, else attaches an ENI in the node's subnet, gives
addresses back above the targets at most every 30 s, and frees an unused ENI
older than a minute that the targets do not need (aws/amazon-vpc-cni-k8s
``pkg/ipamd/ipamd.go``, :mod:`ipam_core.cloud.vpc_cni`). A prefix request the
subnet cannot meet with an aligned /28 fails (``InsufficientCidrBlocks``) and
ipamd waits 2 min; it never falls back to single addresses. Pods take the
first free address in ENI order, as the upstream examples show. Max pods is the
EKS figure (``eni-max-pods.txt``, or the calculator with prefix delegation).
With ``AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG`` eth0 holds no pod address and each
new ENI goes to the ENIConfig subnet of the node's zone; otherwise, with subnet
discovery (``ENABLE_SUBNET_DISCOVERY``, default on since v1.18.0), to the node's
subnet or a ``kubernetes.io/role/cni`` subnet of its zone, whichever has most
free addresses (``pkg/awsutils/awsutils.go``).
Not modelled: the 30 s cooldown of a pod's released address, security groups
for pods (trunk ENIs), IMDS lag.

This module holds the mode's settings (:func:`layout`, :func:`cloud`, :func:`check`)
and ipamd's compiled pass (:func:`ipamd_pass`, and :func:`ipamd_quiet_until` for
the passes that provably change nothing), over the interface and unit tables the
cloud modes share (:mod:`ipam_core.modes.cloud_pool`); :mod:`ipam_core.modes.cloud_hooks`
runs it every 5 s per node.
"""

from __future__ import annotations


import numpy as np

from ipam_core.cloud import vpc_cni
from ipam_core.cloud.limits import (PREFIX_SIZE, aws_max_pods, eni_ipv4_per_interface, instance_limits,
                                    load_instance_limits)
from ipam_core.cloud.vpc_cni import (eni_required, over_to_release, pool_too_high, pool_too_low, prefixes_needed,
                                     should_remove_extra_enis, target_state)
from ipam_core.engine.cloud_config import (CLOUD_VPC_CNI, PICK_DISCOVERY, PICK_FLAGGED, PICK_NODE_SUBNET, CloudConfig,
                                          check_aws, check_subnets, subnet_layout, throttle_settings)
from ipam_core.engine.cloud_net import largest_group
from ipam_core.engine.layout import Layout
from ipam_core.engine.state import family_state
from ipam_core.engine.tables import (CI_ATTACHED, CI_SET, CI_SINCE_US, CN_HELD, CN_IFACES, CN_PD, CN_PREFIXES, CN_USED,
                                     CT_COOLDOWN, CT_LAST_DECREASE, CU_SET, CU_SIZE, CU_USED, C_CL_COOLDOWN,
                                     C_CL_DECREASE, C_CL_ENI_MIN_LIFE, I_CL_MIN_IP, I_CL_WARM_ENI, I_CL_WARM_IP,
                                     I_CL_WARM_PREFIX)
from ipam_core.kernels._jit import kjit
from ipam_core.modes.cloud_api import API_ATTACH, API_RELEASE, api_call, api_ready, api_spend
from ipam_core.modes.cloud_hooks import register_manager
from ipam_core.modes.cloud_pool import (CLOUD_TABLES, INF, LOUD, _assign, _attach, _detach, _drop_unit, _first_after,
                                        _first_at_us, _iface_room, _iface_subnet, _node_ifaces, _node_units,
                                        _subnet_free, _units_per_iface)
from ipam_core.modes.spec import RULES_CLOUD, ModeSpec, Section

NAME = "aws-vpc-cni"
#: aws-node environment variables read (``cloud.awsVpcCni``).
KEYS = ("WARM_ENI_TARGET", "WARM_IP_TARGET", "MINIMUM_IP_TARGET", "WARM_PREFIX_TARGET", "ENABLE_PREFIX_DELEGATION",
        "MAX_ENI", "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "eniConfigs", "ENABLE_SUBNET_DISCOVERY")
UPSTREAM = (
    "aws/amazon-vpc-cni-k8s pkg/ipamd/ipamd.go",
    "aws/amazon-vpc-cni-k8s pkg/ipamd/datastore/data_store.go",
    "aws/amazon-vpc-cni-k8s docs/eni-and-ip-target.md, docs/prefix-and-ip-target.md",
)


def _limits(scenario):
    cloud = scenario.ipam.cloud
    return instance_limits(cloud.instance_type, load_instance_limits(cloud.instance_limits_file))


def layout(scenario) -> Layout:
    """The subnets as address bitmaps."""
    return subnet_layout(NAME, scenario.ipam.cloud.subnets)


def max_pods(scenario) -> int:
    """The pods per node of the largest node group (``cloud.nodeGroups``): what the engine sizes its tables for."""
    return largest_group(scenario, _instance_max_pods)


def _instance_max_pods(scenario) -> int:
    """``cluster.kubelet.maxPods`` when set, else the EKS max pods for the instance and settings."""
    cloud = scenario.ipam.cloud
    if cloud.kubelet_max_pods is not None:
        return cloud.kubelet_max_pods
    v = cloud.vpc_cni
    return aws_max_pods(_limits(scenario), prefix_delegation=v.prefix_delegation, max_eni=v.max_eni,
                        custom_networking=v.custom_network)


def cloud(scenario) -> CloudConfig:
    """The aws-node environment and the instance's limits."""
    v = scenario.ipam.cloud.vpc_cni
    lim = _limits(scenario)
    pd = v.prefix_delegation and lim.supports_prefix_delegation
    enis = lim.enis if v.max_eni is None else min(v.max_eni, lim.enis)
    return CloudConfig(
        kind=CLOUD_VPC_CNI, ifaces=enis, units=lim.secondary_per_eni, unit_size=16 if pd else 1,
        first_iface=1 if v.custom_network else 0,  # custom networking: eth0 holds no pod address
        primary=True, attach=True, fallback=False, fill_first=True, agent_reserved=0, ready_min=1,
        warm_eni=v.warm_eni_target, warm_ip=v.warm_ip_target, min_ip=v.minimum_ip_target,
        warm_prefix=v.warm_prefix_target, period_s=scenario.timing.ipamd_pool_interval_s,
        decrease_s=scenario.timing.ipamd_decrease_interval_s, eni_min_life_s=vpc_cni.MIN_ENI_LIFETIME_S,
        cooldown_s=vpc_cni.INSUFFICIENT_CIDR_COOLDOWN_S, max_pods=_instance_max_pods(scenario),
        **throttle_settings(scenario, "ec2", False),
    )


#: ipamd's subnet discovery uses subnets with this tag key (aws/amazon-vpc-cni-k8s pkg/awsutils/awsutils.go).
CNI_DISCOVERY_TAG = "kubernetes.io/role/cni"

#: Addresses one ENI holds: the instance-limits table's (``ipv4_per_eni``).
ipv4_per_interface = eni_ipv4_per_interface


def interface_subnets(spec, group, subnets) -> tuple[int, list[int]]:
    """The subnets ipamd puts a node's extra ENIs in.

    Parameters
    ----------
    spec : ipam_core.scenario.CloudSpec
        The scenario's ``cloud`` section (its ``awsVpcCni`` settings).
    group : node group
    subnets : sequence of subnets

    Returns
    -------
    tuple
        Custom networking: ``(PICK_FLAGGED, the ENIConfigs' subnets)``; subnet discovery:
        ``(PICK_DISCOVERY, subnets tagged`` :data:`CNI_DISCOVERY_TAG` ``)``; otherwise the node's
        own subnet ``(PICK_NODE_SUBNET, [])`` (``pkg/awsutils/awsutils.go``).
    """
    vpc = spec.vpc_cni
    if vpc.custom_network:
        ids = {sid for _, sid in vpc.eni_configs}
        return PICK_FLAGGED, [i for i, s in enumerate(subnets) if s.id in ids]
    if vpc.subnet_discovery:
        return PICK_DISCOVERY, [i for i, s in enumerate(subnets) if CNI_DISCOVERY_TAG in dict(s.tags)]
    return PICK_NODE_SUBNET, []


def check(ipam, root) -> None:
    """What the mode needs: IPv4 AWS subnets and a known instance type.

    Parameters
    ----------
    ipam : ipam_core.scenario.IPAMSpec
        The scenario's resolved IPAM settings.
    root : ipam_core.scenario._where.Where
        The document root: errors name its keys and lines.

    Raises
    ------
    ConfigError
        IPv6 enabled, no subnet, a subnet outside /16../28, or an unknown instance type.
    """
    check_subnets(ipam, NAME, root)
    check_aws(ipam, NAME, root)


MODE = ModeSpec(
    name=NAME, rules=RULES_CLOUD, settings="cloud.awsVpcCni", helm_mode=None,
    migration=False, cloud=True, check=check, sections=(Section("cloud.awsVpcCni", KEYS),), upstream=UPSTREAM, holds="ENI addresses and prefixes",
    summary="the AWS VPC CNI's ipamd keeps a warm pool of ENI addresses or /28 prefixes per node",
)


# --------------------------------------------------------------------------- ipamd's pass (compiled)
# What ipamd does every 5 s per node (pkg/ipamd/ipamd.go nodeIPPoolReconcile / updateIPPoolIfRequired), over
# the cloud family's interface and unit tables (modes/cloud_pool.py); called by modes/cloud_hooks.py.
@kjit(inline=True)
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
def _vpc_want(st, node, total, assigned, prefixes, free_prefixes, pd):
    """What ipamd asks for when its pool is too low (``tryAssignIPs`` / ``tryAssignPrefixes``).

    Returns
    -------
    (bool, int)
        Whether ``WARM_IP_TARGET`` / ``MINIMUM_IP_TARGET`` are already met (ipamd then asks for
        nothing), and how many addresses (prefixes with delegation) it wants: the shortfall with
        targets set, else a whole ENI's worth.
    """
    core = st.core
    warm_ip = core.icfg[I_CL_WARM_IP]
    min_ip = core.icfg[I_CL_MIN_IP]
    if pd:
        return False, prefixes_needed(total, assigned, prefixes, free_prefixes, warm_ip, min_ip,
                                      core.icfg[I_CL_WARM_PREFIX])
    if warm_ip == 0 and min_ip == 0:
        return False, _node_units(st, node)
    short, _ = target_state(total, assigned, prefixes, free_prefixes, warm_ip, min_ip, pd)
    return short == 0, short


@kjit
def _vpc_increase(st, node, now):
    """increaseDatastorePool: fill the first ENI with room, else attach one."""
    core = st.core
    if now < st.cl_time[node, CT_COOLDOWN]:
        return False  # inInsufficientCidrCoolingPeriod
    total, assigned, prefixes, free_prefixes = _vpc_stats(st, node)
    pd = st.cl_node[node, CN_PD] == 1
    met, want = _vpc_want(st, node, total, assigned, prefixes, free_prefixes, pd)
    if met:
        return False
    size = PREFIX_SIZE if pd else 1
    for iface in range(st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 0 or _iface_room(st, node, iface) <= 0:
            continue
        s = st.cl_iface[node, iface, CI_SET]  # an ENI's addresses come from its own subnet
        got = _assign(st, node, iface, min(_iface_room(st, node, iface), want) * size, pd, False, s, True, now)
        if got == 0 and not pd:
            got = _assign(st, node, iface, 1, False, False, s, True, now)  # tryAssignIPs: "Try to just get one more IP"
        if got == 0:
            st.cl_time[node, CT_COOLDOWN] = now + core.cfg[C_CL_COOLDOWN]
        return got > 0
    if st.cl_node[node, CN_IFACES] >= _node_ifaces(st, node):
        return False  # hasRoomForEni
    count = min(want, _node_units(st, node))
    if count <= 0:
        return False
    s = _iface_subnet(st, node)
    if s < 0:  # custom networking without an ENIConfig for the zone: createENI fails
        st.cl_time[node, CT_COOLDOWN] = now + core.cfg[C_CL_COOLDOWN]
        return False
    if _subnet_free(core.cidr, s) < 1 + (count * size if not pd else 0):
        st.cl_time[node, CT_COOLDOWN] = now + core.cfg[C_CL_COOLDOWN]
        return False
    for iface in range(_node_ifaces(st, node)):
        if st.cl_iface[node, iface, CI_ATTACHED] == 0:
            if not api_call(st, node, API_ATTACH, now, False):
                return False  # throttled: tried again on the next tick
            _attach(st, node, iface, s, now)
            got = _assign(st, node, iface, count * size, pd, False, s, False, now)
            if got == 0:  # AllocENI failed as a whole (InsufficientCidrBlocks): no ENI
                _detach(st, node, iface)
                st.cl_time[node, CT_COOLDOWN] = now + core.cfg[C_CL_COOLDOWN]
                return False
            return True
    return False


@kjit
def _vpc_decrease(st, node, now):
    """tryUnassignCidrsFromAll: free IPs / prefixes above the targets, newest ENI first."""
    core = st.core
    total, assigned, prefixes, free_prefixes = _vpc_stats(st, node)
    pd = st.cl_node[node, CN_PD] == 1
    over = over_to_release(total, assigned, prefixes, free_prefixes, core.icfg[I_CL_WARM_IP],
                           core.icfg[I_CL_MIN_IP], core.icfg[I_CL_WARM_PREFIX], pd)
    if over > 0 and not api_ready(st, node, API_RELEASE, now):
        return False  # throttled: tried again on the next tick
    st.cl_time[node, CT_LAST_DECREASE] = now
    changed = False
    u = _units_per_iface(core.icfg)
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
            api_spend(core.cfg, core.icfg, core.cnt, API_RELEASE, now, False)
            changed = True
    return changed


@kjit
def _vpc_free_eni(st, node, now):
    """tryFreeENI: detach one unused, old enough, non-primary ENI the targets do not need."""
    core = st.core
    total, assigned, _, free_prefixes = _vpc_stats(st, node)
    pd = st.cl_node[node, CN_PD] == 1
    u = _units_per_iface(core.icfg)
    freeable = False
    for iface in range(1, st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 1 and _iface_used(st, node, iface) == 0:
            freeable = True
    warm_ip = core.icfg[I_CL_WARM_IP]
    min_ip = core.icfg[I_CL_MIN_IP]
    warm_prefix = core.icfg[I_CL_WARM_PREFIX]
    if not should_remove_extra_enis(total, assigned, core.icfg[I_CL_WARM_ENI], warm_ip, min_ip, warm_prefix,
                                    pd, _node_units(st, node), freeable):
        return False
    min_life_us = np.int64(core.cfg[C_CL_ENI_MIN_LIFE] * 1e6)
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
        if not api_call(st, node, API_RELEASE, now, False):
            return False
        _detach(st, node, iface)
        return True
    return False


@kjit(inline=True)
def _iface_used(st, node, iface):
    u = _units_per_iface(st.core.icfg)
    used = 0
    for j in range(iface * u, iface * u + u):
        if st.cl_unit[node, j, CU_SET] >= 0:
            used += st.cl_unit[node, j, CU_USED]
    return used


@kjit
def ipamd_pass(st, node, now):
    """updateIPPoolIfRequired: grow, else shrink (every decreaseIPPoolInterval), then maybe free an ENI."""
    core = st.core
    total, assigned, prefixes, free_prefixes = _vpc_stats(st, node)
    pd = st.cl_node[node, CN_PD] == 1
    warm_ip = core.icfg[I_CL_WARM_IP]
    min_ip = core.icfg[I_CL_MIN_IP]
    warm_prefix = core.icfg[I_CL_WARM_PREFIX]
    changed = False
    if pool_too_low(total, assigned, prefixes, free_prefixes, core.icfg[I_CL_WARM_ENI], warm_ip, min_ip,
                    warm_prefix, pd, _node_units(st, node)):
        changed = _vpc_increase(st, node, now)
    elif (pool_too_high(total, assigned, prefixes, free_prefixes, warm_ip, min_ip, warm_prefix, pd)
          and now - st.cl_time[node, CT_LAST_DECREASE] > core.cfg[C_CL_DECREASE]):
        changed = _vpc_decrease(st, node, now)
    if _vpc_free_eni(st, node, now):
        changed = True
    return changed


@kjit
def _vpc_increase_quiet_until(st, node, now, total, assigned, prefixes, free_prefixes, pd):
    """``_vpc_increase`` on a pool that is too low: cooling down, or returning before any call."""
    if now < st.cl_time[node, CT_COOLDOWN]:
        return st.cl_time[node, CT_COOLDOWN]
    met, want = _vpc_want(st, node, total, assigned, prefixes, free_prefixes, pd)
    if met:
        return INF
    for iface in range(st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 1 and _iface_room(st, node, iface) > 0:
            return LOUD  # assigns, or fails and starts a cooldown
    if st.cl_node[node, CN_IFACES] >= _node_ifaces(st, node):
        return INF
    return INF if min(want, _node_units(st, node)) <= 0 else LOUD


@kjit
def ipamd_quiet_until(st, node, now):
    """``_vpc_pass``: neither grows nor shrinks (yet), and frees no ENI (yet)."""
    core = st.core
    total, assigned, prefixes, free_prefixes = _vpc_stats(st, node)
    pd = st.cl_node[node, CN_PD] == 1
    warm_eni = core.icfg[I_CL_WARM_ENI]
    warm_ip = core.icfg[I_CL_WARM_IP]
    min_ip = core.icfg[I_CL_MIN_IP]
    warm_prefix = core.icfg[I_CL_WARM_PREFIX]
    u = _units_per_iface(core.icfg)
    wake = INF
    if pool_too_low(total, assigned, prefixes, free_prefixes, warm_eni, warm_ip, min_ip, warm_prefix, pd,
                    _node_units(st, node)):
        wake = _vpc_increase_quiet_until(st, node, now, total, assigned, prefixes, free_prefixes, pd)
    elif pool_too_high(total, assigned, prefixes, free_prefixes, warm_ip, min_ip, warm_prefix, pd):
        last = st.cl_time[node, CT_LAST_DECREASE]
        if now - last > core.cfg[C_CL_DECREASE]:
            return LOUD
        wake = _first_after(last, core.cfg[C_CL_DECREASE])
    if wake == LOUD:
        return LOUD
    # _vpc_free_eni
    freeable = False
    for iface in range(1, st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, CI_ATTACHED] == 1 and _iface_used(st, node, iface) == 0:
            freeable = True
    if not should_remove_extra_enis(total, assigned, warm_eni, warm_ip, min_ip, warm_prefix, pd, _node_units(st, node),
                                    freeable):
        return wake
    min_life_us = np.int64(core.cfg[C_CL_ENI_MIN_LIFE] * 1e6)
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


# --------------------------------------------------------------------------- ipamd's runs: their State class
#: The State class of ``aws-vpc-cni`` runs: the loop compiles ipamd's pass for it alone (modes/cloud_manager.py).
IpamdState = family_state("IpamdState", __name__, CLOUD_TABLES)


@kjit(inline=True)  # an adapter: no call of its own (modes/cloud_manager.py)
def ipamd_operator_pass(st, node, now):
    """ipamd's pass; it asks for no event-driven pass of its own (its periodic pass runs every 5 s)."""
    ipamd_pass(st, node, now)
    return -1.0


register_manager(IpamdState, CLOUD_VPC_CNI, ipamd_operator_pass, ipamd_quiet_until)
