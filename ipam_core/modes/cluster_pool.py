"""Cilium cluster-scope IPAM (``ipam: cluster-pool``, the default).

The operator keeps one next-fit CIDR set per ``clusterPoolIPv4PodCIDRList``
entry, in list order, and gives each CiliumNode exactly one CIDR per family
from the first entry that is not full; when IPv6 fails the IPv4 CIDR is
reverted; CIDRs are released only when the CiliumNode is deleted (cilium
``pkg/ipam/allocator/podcidr/podcidr.go``,
``pkg/ipam/allocator/clusterpool/cidralloc/cidralloc.go``). A node whose
pool is exhausted gets no CIDR, its agent never becomes ready, and the
operator retries. Agents allocate exactly as in host scope
(``pkg/ipam/ipam.go`` handles both modes in one case). Defaults:
``10.0.0.0/8`` with /24 node CIDRs, IPv6 ``fd00::/104`` with /120 (Helm).
"""

from __future__ import annotations

from ipam_core.engine.layout import Layout
from ipam_core.modes import node_cidr  # noqa: F401 (registers the node-CIDR rules with the loop)
from ipam_core.modes._common import families, host_scope_layout
from ipam_core.modes.spec import RULES_NODE_CIDR, ModeSpec

NAME = "cluster-pool"
UPSTREAM = (
    "cilium pkg/ipam/allocator/podcidr/podcidr.go",
    "cilium pkg/ipam/allocator/clusterpool/clusterpool.go",
    "cilium pkg/ipam/cidrset/cidr_set.go",
)


def layout(scenario) -> Layout:
    """The cluster-pool list as one pool of node CIDRs per family.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        Validated scenario.

    Returns
    -------
    Layout
    """
    ipam = scenario.ipam
    enabled = families(ipam)
    by_family = {
        0: (tuple(ipam.cluster_pool_v4), ipam.cluster_pool_v4_mask),
        1: (tuple(ipam.cluster_pool_v6), ipam.cluster_pool_v6_mask),
    }
    return host_scope_layout(NAME, "cluster-pool", by_family, enabled, revert_partial=True)


def check(ipam, root) -> None:
    """What the mode needs: a CIDR list for every enabled family.

    Parameters
    ----------
    ipam : ipam_core.scenario.IPAMSpec
        The scenario's resolved IPAM settings.
    root : ipam_core.scenario._where.Where
        The document root: errors name its keys and lines.

    Raises
    ------
    ConfigError
        An enabled family with an empty list (cilium clusterpool.go: "must be provided when
        using ClusterPool").
    """
    for family in ipam.families:
        cidrs = ipam.cluster_pool_v4 if family == 4 else ipam.cluster_pool_v6
        if not cidrs:
            (root / "cilium" / "ipam" / "operator" / f"clusterPoolIPv{family}PodCIDRList").fail(
                f"[] is empty but cilium.ipv{family}.enabled is true; expected at least one CIDR: it must be "
                f"provided when using ClusterPool (needed by mode {NAME})")


MODE = ModeSpec(
    name=NAME, rules=RULES_NODE_CIDR, settings="cilium.ipam.operator", helm_mode="cluster-pool",
    migration=True, cloud=False, check=check, upstream=UPSTREAM,
    summary="the Cilium operator gives each CiliumNode one CIDR per family from a cluster-wide list (the default)",
)
