"""What a mode hands the engine: its pools, their CIDR sets, and its rules.

A :class:`Layout` is plain data built by a mode module
(:mod:`ipam_core.modes`) from a scenario. The engine sizes its tables from
it and never looks at the mode's name. It lives with the modes, below the
engine, so that the modes never import the engine (whose package runs the
pipeline, which looks the modes up).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ipam_core.addr import Network
from ipam_core.podiprange import range_size

#: ``Layout.policy``: which engine rules run the layout (``I_POLICY`` in the engine's ``icfg``).
POLICY_ONE_PER_FAMILY = 0  # kubernetes, cluster-pool, gke
POLICY_MULTI_POOL = 1
POLICY_CLOUD = 2  # eni, aws-vpc-cni, azure, crd: per-node pools of addresses / prefixes from subnet bitmaps
POLICY_CALICO = 3  # calico: affine blocks of IPPools (modes/calico_hooks.py); its sets only name the blocks


def family_index(network: Network) -> int:
    """0 for IPv4, 1 for IPv6 (the engine's family index)."""
    return 0 if network.version == 4 else 1


def pod_range(network: Network, node_mask: int) -> tuple[int, int]:
    """Usable pod addresses in one node CIDR of ``network``, and the addresses it is counted as.

    Follows cilium ``pkg/ipam/service/ipallocator/allocator.go`` through
    :func:`ipam_core.podiprange.range_size`: ``2**h`` slots (IPv6 capped at
    65,536), less the network and last slot when there are more than 2.

    Parameters
    ----------
    network : ipaddress network
        Any network of the family (only its address width is used).
    node_mask : int
        Prefix length of the node CIDR.

    Returns
    -------
    tuple of int
        ``(usable, counted)``: usable pod addresses, and the size of the
        range used for the address accounting of traces.
    """
    size = range_size(ipaddress.ip_network((network.network_address, node_mask)))
    return (size - 2 if size > 2 else size), size


@dataclass(frozen=True)
class SetSpec:
    """One pool CIDR carved into node CIDRs of ``node_mask`` (a ``cidr_set.go`` set)."""

    pool: int
    network: Network
    node_mask: int

    @property
    def family(self) -> int:
        return family_index(self.network)

    @property
    def capacity(self) -> int:
        """Node CIDRs in the set: ``2**(node_mask - prefix)``."""
        return 1 << (self.node_mask - self.network.prefixlen)


@dataclass(frozen=True)
class Layout:
    """The pools and rules of one mode for one scenario.

    Attributes
    ----------
    mode : str
        Mode name, as upstream spells it.
    policy : int
        ``POLICY_ONE_PER_FAMILY``, ``POLICY_MULTI_POOL``, ``POLICY_CLOUD`` or ``POLICY_CALICO``.
    families : tuple of int
        Enabled families (0 = IPv4, 1 = IPv6).
    pool_names : tuple of str
        Pool id -> name.
    pre_allocation : tuple of int
        Pool id -> multi-pool pre-allocation (0 elsewhere).
    sets : tuple of SetSpec
        Every pool CIDR, grouped by pool and family, each group in list order.
    default_pool : int
        Pool the router and health addresses come from.
    revert_partial : bool
        Whether a node that gets a CIDR for one family but not the other
        gives the first back (Cilium) or keeps it (kube-controller-manager).
    """

    mode: str
    policy: int
    families: tuple[int, ...]
    pool_names: tuple[str, ...]
    pre_allocation: tuple[int, ...]
    sets: tuple[SetSpec, ...]
    default_pool: int
    revert_partial: bool
