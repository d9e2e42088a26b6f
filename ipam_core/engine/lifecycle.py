"""Node-lifecycle figures of a sample: what cordoned nodes hold, and the CIDRs stranded by the fault model.

The events themselves (cordon, drain, agent restart) are handled in the
compiled loop (:func:`ipam_core.engine.core._node_lifecycle`); here only the
per-sample sums the trace reports, read from the state tables. Both scans
are skipped (0) when nothing is cordoned or the released-CIDR fault model is
off, so runs without a lifecycle pay one comparison per sample.
"""

from __future__ import annotations

from ipam_core.engine.hooks import held_addresses
from ipam_core.engine.tables import (
    I_RELEASED_CIDRS,
    K_CORDONED,
    L_FAMILY,
    L_MAX,
    L_STATE,
    N_CORDONED,
    N_NSLOTS,
    N_PRESENT,
    RELEASED_CIDRS_FREED,
    SLOT_STRANDED,
)
from ipam_core.kernels._jit import kjit

__all__ = ["held_by_cordoned", "stranded"]


@kjit(inline=True)  # into the sampler's _trace_row, its one caller
def held_by_cordoned(st, family):
    """Addresses of ``family`` that cordoned nodes hold: their node CIDRs whole (pool modes), their pool (cloud modes).

    Parameters
    ----------
    st : State
    family : int
        0 (IPv4) or 1 (IPv6); the cloud modes hold IPv4 only.

    Returns
    -------
    int
        No other node can use these while the node stays: host scope and
        cluster-pool keep a node's CIDR until its Node / CiliumNode is
        deleted (kubernetes ``range_allocator.go``, cilium
        ``pkg/ipam/allocator/podcidr/podcidr.go``), multi-pool its CIDRs
        until its agent gives them back (``pkg/ipam/pool.go``), the cloud
        modes their pool at its watermarks (aws/amazon-vpc-cni-k8s#3263).
    """
    core = st.core
    if core.cnt[K_CORDONED] == 0:
        return 0
    total = 0
    for node in range(core.nodes.shape[0]):
        if core.nodes[node, N_PRESENT] == 1 and core.nodes[node, N_CORDONED] == 1:
            total += held_addresses(st, node, family)
    return total


@kjit(inline=True)  # into the sampler's _trace_row, its one caller
def stranded(nodes, cidr, icfg, family):
    """Node CIDRs of ``family`` stranded by the released-CIDR fault model, and their usable addresses.

    Parameters
    ----------
    nodes : numpy.ndarray
        The core tables' node rows.
    cidr : CidrTables
        The core tables' node CIDRs.
    icfg : numpy.ndarray
        The integer settings.
    family : int

    Returns
    -------
    tuple of int
        ``(cidrs, addresses)``: CIDRs the agent gave back that stay on their
        node and that it does not allocate from (``releasedCIDRs: stranded``,
        or ``reclaimed`` until it takes them back).
    """
    if icfg[I_RELEASED_CIDRS] == RELEASED_CIDRS_FREED:
        return 0, 0
    cidrs = 0
    addrs = 0
    for node in range(nodes.shape[0]):
        if nodes[node, N_PRESENT] != 1:
            continue
        for k in range(nodes[node, N_NSLOTS]):
            slot = cidr.node_slots[node, k]
            if cidr.slots[slot, L_STATE] == SLOT_STRANDED and cidr.slots[slot, L_FAMILY] == family:
                cidrs += 1
                addrs += cidr.slots[slot, L_MAX]
    return cidrs, addrs
