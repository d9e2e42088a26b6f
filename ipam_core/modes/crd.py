"""Cilium CRD-backed IPAM (``ipam: crd``): an external writer fills each CiliumNode's pool.

The agent allocates pod addresses from ``spec.ipam.pool`` (cilium
``pkg/ipam/crd.go``, a random pick: Go map order) and starts once the pool holds
``min-allocate``, else ``pre-allocate``, else its router and health addresses
(``hasMinimumIPsInPool``). Cilium runs no operator for it; the scenario says
what the external writer does: ``cloud.crd.poolPerNode: N`` writes N addresses
(first fit from the subnets) once when the node joins, ``writer: watermark``
(the default) keeps the pool at the ``cilium.ipam.operator`` watermarks as
Cilium's own operator would, with no interface limit. The pool's addresses are
plain CIDR ranges: no cloud reservation in them.
"""

from __future__ import annotations


from ipam_core.cloud.watermarks import DEFAULT_PRE_ALLOCATE, pool_minimum
from ipam_core.engine.cloud_config import (CLOUD_CILIUM, CLOUD_CRD_STATIC, CloudConfig, agent_reserved, check_subnets,
                                          subnet_layout)
from ipam_core.engine.layout import Layout
from ipam_core.engine.state import family_state
from ipam_core.kernels._jit import kjit
from ipam_core.modes.cloud_hooks import register_manager, written_once_quiet_until
from ipam_core.modes.cloud_pool import CLOUD_TABLES, _static_pass
from ipam_core.modes.spec import RULES_CLOUD, ModeSpec, Section

NAME = "crd"
#: ``cloud.crd`` keys.
KEYS = ("poolPerNode", "writer", "releaseExcessIPs")
UPSTREAM = ("cilium pkg/ipam/crd.go", "cilium pkg/ipam/node.go")


def layout(scenario) -> Layout:
    """The address ranges the writer draws from."""
    return subnet_layout(NAME, scenario.ipam.cloud.subnets)


def max_pods(scenario) -> int:
    """The kubelet's max pods."""
    return scenario.cluster.max_pods


def cloud(scenario) -> CloudConfig:
    """A static pool per node, or the watermark writer."""
    spec = scenario.ipam.cloud
    marks = spec.watermarks
    reserved = agent_reserved(scenario)
    if spec.crd_writer == "static":
        n = spec.crd_pool_per_node
        return CloudConfig(
            kind=CLOUD_CRD_STATIC, ifaces=1, units=n, static_units=n, agent_reserved=reserved,
            ready_min=pool_minimum(marks.min_allocate, marks.pre_allocate or 0, scenario.ipam.health_ip),
            subnet_reserved=False, nic=False, period_s=scenario.timing.ipam_resync_interval_s, max_pods=max_pods(scenario),
        )
    pre = marks.pre_allocate or DEFAULT_PRE_ALLOCATE
    pods = max_pods(scenario)
    # the pool never exceeds max-allocate, else used + needed + surge: at most twice the pods plus the buffers
    units = marks.max_allocate or 2 * (pods + reserved) + pre + marks.min_allocate + marks.max_above_watermark
    return CloudConfig(
        kind=CLOUD_CILIUM, ifaces=1, units=units, attach=False, any_subnet=True, agent_reserved=reserved,
        ready_min=pool_minimum(marks.min_allocate, pre, scenario.ipam.health_ip), pre=pre,
        min_allocate=marks.min_allocate, max_allocate=marks.max_allocate, above=marks.max_above_watermark,
        release=spec.crd_release_excess_ips, release_delay_s=scenario.timing.excess_ip_release_delay_s,
        subnet_reserved=False, nic=False, period_s=scenario.timing.ipam_resync_interval_s, max_pods=pods,
    )


def check(ipam, root) -> None:
    """What the mode needs: IPv4 subnets, and a pool size for the static writer.

    Parameters
    ----------
    ipam : ipam_core.scenario.IPAMSpec
        The scenario's resolved IPAM settings.
    root : ipam_core.scenario._where.Where
        The document root: errors name its keys and lines.

    Raises
    ------
    ConfigError
        IPv6 enabled, no subnet, or ``writer: static`` without ``poolPerNode``.
    """
    check_subnets(ipam, NAME, root)
    cloud = ipam.cloud
    if cloud.crd_writer == "static" and cloud.crd_pool_per_node == 0:
        (root / "cloud" / "crd" / "writer").fail(
            f"'static' without poolPerNode leaves every node's pool empty; expected poolPerNode >= 1 or "
            f"writer: watermark (needed by mode {NAME})")


MODE = ModeSpec(
    name=NAME, rules=RULES_CLOUD, settings="cloud.crd", helm_mode="crd",
    migration=False, cloud=True, check=check, sections=(Section("cloud.crd", KEYS),), upstream=UPSTREAM, holds="CiliumNode pool addresses",
    summary="an external writer fills each CiliumNode's pool; the agent allocates from it",
)


# --------------------------------------------------------------------------- the fixed pool's runs: their State class
#: The State class of ``crd`` runs whose writer gives each node a fixed pool (``poolPerNode``): the loop
#: compiles that write alone (modes/cloud_manager.py). The watermark writer runs Cilium's operator
#: (``CiliumOperatorState``, modes/cloud_hooks.py).
CrdStaticState = family_state("CrdStaticState", __name__, CLOUD_TABLES)


@kjit(inline=True)  # an adapter: no call of its own (modes/cloud_manager.py)
def crd_static_pass(st, node, now):
    """The external writer: the node's fixed pool, first-fit addresses, written once."""
    _static_pass(st, node, False, now)
    return -1.0


register_manager(CrdStaticState, CLOUD_CRD_STATIC, crd_static_pass, written_once_quiet_until)
