"""What a mode hands the engine: its pools, their CIDR sets, and its rules.

A :class:`Layout` is plain data built by a mode module
(:mod:`ipam_core.modes`) from a scenario. The engine sizes its tables from
it and never looks at the mode's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipam_core.addr import Network

IPV6_WINDOW_BITS = 16  # cilium ipallocator RangeSize caps IPv6 node ranges at 2**16 slots


def family_index(network: Network) -> int:
    """0 for IPv4, 1 for IPv6 (the engine's family index)."""
    return 0 if network.version == 4 else 1


def pod_range(bits: int, node_mask: int) -> tuple[int, int]:
    """Usable pod addresses in one node CIDR, and the addresses it is counted as.

    Follows cilium ``pkg/ipam/service/ipallocator/allocator.go`` (``RangeSize``):
    the range holds ``2**h`` slots with ``h`` the host bits, capped at
    ``2**16`` for IPv6; the network address and the last slot are excluded
    when the range has more than 2 addresses; /31 (/127) keeps both and /32
    (/128) its one address, as the newest upstream does.

    Parameters
    ----------
    bits : int
        32 or 128.
    node_mask : int
        Prefix length of the node CIDR.

    Returns
    -------
    tuple of int
        ``(usable, counted)``: usable pod addresses, and the size of the
        range in addresses (``2**h``, IPv6 capped at 65,536) used for the
        address accounting of traces.
    """
    host_bits = bits - node_mask
    if bits == 128:
        host_bits = min(host_bits, IPV6_WINDOW_BITS)
    size = 1 << host_bits
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
        ``POLICY_ONE_PER_FAMILY`` or ``POLICY_MULTI_POOL`` (engine tables).
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
