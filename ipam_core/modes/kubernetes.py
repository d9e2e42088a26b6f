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
from ipam_core.modes._common import families, host_scope_layout

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
