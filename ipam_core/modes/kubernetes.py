"""Kubernetes host-scope IPAM (``ipam: kubernetes``).

kube-controller-manager's range allocator carves one podCIDR per node and
family out of ``--cluster-cidr`` (one next-fit CIDR set per entry, at most
two for dual-stack) when the node appears, and releases it when the node is
deleted (kubernetes ``pkg/controller/nodeipam/ipam/range_allocator.go`` over
``cidrset/cidr_set.go``). When the IPv6 set fails after IPv4 succeeded, the
IPv4 CIDR is kept (no rollback in the version read). The Cilium agent waits
for ``spec.podCIDRs`` and hands out pod addresses from the first CIDR per
family with its random-start bitmap (cilium ``pkg/ipam/hostscope.go``,
``pkg/ipam/ipam.go``), after taking its router and health addresses.
"""

from __future__ import annotations

from ipam_core.engine.layout import Layout
from ipam_core.modes import node_cidr  # noqa: F401 (registers the node-CIDR rules with the loop)
from ipam_core.modes._common import families, host_scope_layout
from ipam_core.modes.spec import RULES_NODE_CIDR, ModeSpec

NAME = "kubernetes"
UPSTREAM = (
    "kubernetes pkg/controller/nodeipam/ipam/range_allocator.go",
    "kubernetes pkg/controller/nodeipam/ipam/cidrset/cidr_set.go",
    "cilium pkg/ipam/hostscope.go",
)


def layout(scenario) -> Layout:
    """The KCM cluster CIDRs as one pool of node CIDRs per family.

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
    by_family: dict[int, tuple[tuple[str, ...], int]] = {}
    for cidr in ipam.kcm_cluster_cidrs:
        family = 1 if ":" in cidr else 0
        by_family[family] = ((cidr,), ipam.kcm_node_mask_v6 if family else ipam.kcm_node_mask_v4)
    return host_scope_layout(NAME, "kube-controller-manager", by_family, enabled, revert_partial=False)


def check(ipam, root) -> None:
    """What the mode needs: KCM allocating node CIDRs, and a cluster CIDR per enabled family.

    Parameters
    ----------
    ipam : ipam_core.scenario.IPAMSpec
        The scenario's resolved IPAM settings.
    root : ipam_core.scenario._where.Where
        The document root: errors name its keys and lines.

    Raises
    ------
    ConfigError
        ``allocate-node-cidrs: false`` (the agent waits forever for a podCIDR), or no KCM
        cluster CIDR for an enabled family.
    """
    for_mode = f"(needed by mode {NAME})"
    kcm = root / "cluster" / "kubeControllerManager"
    if not ipam.kcm_allocate_node_cidrs:
        (kcm / "allocate-node-cidrs").fail(
            f"false means nodes never get spec.podCIDRs and the agent waits forever; expected true {for_mode}")
    for family in ipam.families:
        if ipam.kcm_cidr(family) is None:
            (kcm / "cluster-cidr").fail(
                f"{','.join(ipam.kcm_cluster_cidrs)!r} has no IPv{family} CIDR but cilium.ipv{family}.enabled is "
                f"true; expected one {for_mode}: the agent would wait for 'required IPv{family} PodCIDR'")


MODE = ModeSpec(
    name=NAME, rules=RULES_NODE_CIDR, settings="cluster.kubeControllerManager", helm_mode="kubernetes",
    migration=True, cloud=False, check=check, upstream=UPSTREAM,
    summary="kube-controller-manager carves one podCIDR per node and family; the agent allocates from it",
)
