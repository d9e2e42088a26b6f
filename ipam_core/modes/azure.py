"""Azure (``azure``): Cilium's Azure IPAM, or AKS's own pod subnet (dynamic batches or static /28 blocks).

Cilium's Azure IPAM keeps each VM's NIC at the same watermarks as ENI mode
(``pre-allocate`` 8, ``max-allocate`` 256) by adding IP configurations to the
NIC it has: an Azure NIC holds 256 addresses, its primary one included, and
the operator never creates NICs nor releases addresses (cilium
``pkg/azure/ipam/node.go``: ``CreateInterface`` and ``ReleaseIPs`` are not
implemented). IP configurations come from the NIC's subnet, else from the
first subnet with free addresses.

With ``cloud.aks.podIPAllocationMode`` the mode simulates AKS's Azure CNI pod
subnet instead (:mod:`ipam_core.cloud.aks`): ``DynamicIndividual`` requests
addresses in batches of 16 and keeps 8 to 23 free (CNS ``ipampool``, checked
every second), ``StaticBlock`` gives each node ``ceil((maxPods + 1) / 16)``
/28 blocks when it joins, one address reserved. Pod subnets are separate from
node subnets, so nodes take no primary address from them.

This module holds the mode's settings and CNS's compiled pass (:func:`cns_pass`,
:func:`cns_quiet_until`); Cilium's operator pass and the static blocks are shared
with ``eni`` and ``crd`` (:mod:`ipam_core.modes.cloud_pool`). Each AKS manager has its State
class (``CnsState``, ``AksStaticState``, registered with :mod:`ipam_core.modes.cloud_manager`),
so a run compiles only its own manager's pass.
"""

from __future__ import annotations


from ipam_core.cloud import aks
from ipam_core.cloud.aks import dynamic_target
from ipam_core.cloud.watermarks import DEFAULT_PRE_ALLOCATE, pool_minimum
from ipam_core.engine.cloud_config import (CLOUD_AKS_DYNAMIC, CLOUD_AKS_STATIC, CLOUD_CILIUM, CloudConfig,
                                          agent_reserved, check_subnets, subnet_layout, throttle_settings)
from ipam_core.engine.layout import Layout
from ipam_core.engine.state import family_state
from ipam_core.engine.tables import (CN_HELD, CN_RESERVED, CN_SUBNET, CN_USED, CU_SET, CU_USED, I_CL_BATCH,
                                     I_CL_BATCH_PCT, I_CL_MAX_IPS)
from ipam_core.kernels._jit import kjit
from ipam_core.modes.cloud_api import API_RELEASE, api_spend
from ipam_core.modes.cloud_hooks import register_manager, written_once_quiet_until
from ipam_core.modes.cloud_pool import INF, LOUD, _assign, _drop_unit, _iface_room, _single_free
from ipam_core.modes.cloud_pool import CLOUD_TABLES, _static_pass
from ipam_core.modes.spec import RULES_CLOUD, ModeSpec, Section

NAME = "azure"
#: Cilium Helm ``azure`` values (accepted; the mode reads none: its operator never releases addresses).
KEYS = ("enabled", "resourceGroup", "subscriptionID", "tenantID", "clientID", "clientSecret", "userAssignedIdentityID")
#: ``cloud.aks`` keys.
AKS_KEYS = ("podIPAllocationMode",)
UPSTREAM = (
    "cilium pkg/azure/ipam/node.go",
    "cilium pkg/ipam/node.go",
    "Azure/azure-container-networking cns/ipampool",
    "MicrosoftDocs azure-aks-docs concepts-network-azure-cni-pod-subnet.md",
)
#: cilium ``pkg/azure/types`` ``InterfaceAddressLimit``: addresses of one NIC (and of one VM).
INTERFACE_ADDRESS_LIMIT = 256


def layout(scenario) -> Layout:
    """The subnets (VNet subnets, or AKS pod subnets) as address bitmaps."""
    return subnet_layout(NAME, scenario.ipam.cloud.subnets)


def max_pods(scenario) -> int:
    """The kubelet's max pods (AKS default 110 for Azure CNI pod subnet, per ``cloud_pod_cidr_limits.csv``)."""
    return scenario.cluster.max_pods


def cloud(scenario) -> CloudConfig:
    """Cilium's Azure IPAM, or the AKS pod subnet mode the scenario names."""
    spec = scenario.ipam.cloud
    pods = max_pods(scenario)
    if spec.aks_mode == "DynamicIndividual":
        max_ips = min(pods, aks.DYNAMIC_MAX_IPS)
        return CloudConfig(
            kind=CLOUD_AKS_DYNAMIC, ifaces=1, units=max_ips, ready_min=1, batch=aks.DYNAMIC_BATCH,
            batch_pct=aks.DYNAMIC_REQUEST_THRESHOLD_PERCENT, max_ips=max_ips,
            period_s=scenario.timing.cns_refresh_delay_s, max_pods=pods,
        )
    if spec.aks_mode == "StaticBlock":
        blocks = aks.static_blocks(pods)
        return CloudConfig(
            kind=CLOUD_AKS_STATIC, ifaces=1, units=blocks, unit_size=16, static_units=blocks,
            agent_reserved=aks.STATIC_RESERVED_PER_NODE, ready_min=1,
            period_s=scenario.timing.ipam_resync_interval_s, max_pods=pods,
        )
    marks = spec.watermarks
    pre = marks.pre_allocate or DEFAULT_PRE_ALLOCATE  # GetMinimumAllocatableIPv4 on Azure
    return CloudConfig(
        kind=CLOUD_CILIUM, ifaces=1, units=INTERFACE_ADDRESS_LIMIT - 1, primary=True, attach=False, any_subnet=True,
        agent_reserved=agent_reserved(scenario), ready_min=pool_minimum(marks.min_allocate, pre, scenario.ipam.health_ip),
        pre=pre, min_allocate=marks.min_allocate, max_allocate=marks.max_allocate or INTERFACE_ADDRESS_LIMIT,
        above=marks.max_above_watermark, release=False, period_s=scenario.timing.ipam_resync_interval_s,
        max_pods=pods, **throttle_settings(scenario, "azure", True),
    )


def check(ipam, root) -> None:
    """What the mode needs: IPv4 subnets.

    Parameters
    ----------
    ipam : ipam_core.scenario.IPAMSpec
        The scenario's resolved IPAM settings.
    root : ipam_core.scenario._where.Where
        The document root: errors name its keys and lines.

    Raises
    ------
    ConfigError
        IPv6 enabled, or no subnet.
    """
    check_subnets(ipam, NAME, root)


MODE = ModeSpec(
    name=NAME, rules=RULES_CLOUD, settings="cilium.azure", helm_mode="azure",
    migration=False, cloud=True, check=check,
    sections=(Section("cilium.azure", KEYS), Section("cloud.aks", AKS_KEYS)), upstream=UPSTREAM, holds="NIC addresses",
    summary="Cilium's Azure IPAM adds IP configurations to each VM's NIC; or AKS's own pod subnet",
)


# --------------------------------------------------------------------------- CNS's pass (compiled)
# AKS's dynamic pod subnet: what CNS asks for every second (cns/ipampool); called by modes/cloud_hooks.py.
@kjit
def cns_pass(st, node, now):
    """CNS: request batch * ceil(buffer + demand / batch) addresses, give back the rest."""
    core = st.core
    cn = st.cl_node[node]
    demand = cn[CN_USED] - cn[CN_RESERVED]
    target = dynamic_target(demand, core.icfg[I_CL_BATCH], core.icfg[I_CL_BATCH_PCT],
                            core.icfg[I_CL_MAX_IPS])
    held = cn[CN_HELD]
    s = cn[CN_SUBNET]
    if target > held:
        return _assign(st, node, 0, min(target - held, _single_free(st, s)), False, False, s, True, now) > 0
    if target < held:
        left = held - target
        for j in range(st.cl_unit.shape[1] - 1, -1, -1):
            if left == 0:
                break
            if st.cl_unit[node, j, CU_SET] >= 0 and st.cl_unit[node, j, CU_USED] == 0:
                _drop_unit(st, node, j)
                left -= 1
        if left < held - target:
            api_spend(core.cfg, core.icfg, core.cnt, API_RELEASE, now, False)
            return True
    return False


@kjit
def cns_quiet_until(st, node):
    """``_aks_dynamic_pass``: at its target, or unable to move towards it without reading the subnets."""
    core = st.core
    cn = st.cl_node[node]
    target = dynamic_target(cn[CN_USED] - cn[CN_RESERVED], core.icfg[I_CL_BATCH],
                            core.icfg[I_CL_BATCH_PCT], core.icfg[I_CL_MAX_IPS])
    held = cn[CN_HELD]
    if target > held:
        return INF if _iface_room(st, node, 0) <= 0 else LOUD
    if target < held:
        for j in range(st.cl_unit.shape[1]):
            if st.cl_unit[node, j, CU_SET] >= 0 and st.cl_unit[node, j, CU_USED] == 0:
                return LOUD
    return INF


# --------------------------------------------------------------------------- AKS's pod subnet: the State classes
#: The State classes of ``azure`` runs on AKS's pod subnet: the loop compiles CNS's pass, or the static
#: blocks' write, for them alone (modes/cloud_manager.py). Cilium's Azure IPAM runs Cilium's operator
#: (``CiliumOperatorState``, modes/cloud_hooks.py).
CnsState = family_state("CnsState", __name__, CLOUD_TABLES)
AksStaticState = family_state("AksStaticState", __name__, CLOUD_TABLES)


@kjit(inline=True)  # an adapter: no call of its own (modes/cloud_manager.py)
def cns_operator_pass(st, node, now):
    """CNS's pass; it asks for no event-driven pass of its own (its periodic pass runs every second)."""
    cns_pass(st, node, now)
    return -1.0


@kjit(inline=True)  # an adapter: no call of its own (modes/cloud_manager.py)
def cns_operator_quiet_until(st, node, now):
    """:func:`cns_quiet_until` with the manager's parameters."""
    return cns_quiet_until(st, node)


@kjit(inline=True)  # an adapter: no call of its own (modes/cloud_manager.py)
def aks_static_pass(st, node, now):
    """AKS's static block: the node's /28 blocks, written once."""
    _static_pass(st, node, True, now)
    return -1.0


register_manager(CnsState, CLOUD_AKS_DYNAMIC, cns_operator_pass, cns_operator_quiet_until)
register_manager(AksStaticState, CLOUD_AKS_STATIC, aks_static_pass, written_once_quiet_until)
