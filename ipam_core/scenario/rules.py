"""Cross-field validation: overlapping CIDRs, impossible masks, and what each mode needs (its own ``check``).

Each rule names the upstream check it mirrors; where upstream accepts a setting that can
only fail later (a cluster-pool mask shorter than its CIDR gives a set that is full from
the start), the scenario refuses it up front with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from ipam_core.addr import Network
from ipam_core.modes import mode_spec
from ipam_core.scenario import defaults as d
from ipam_core.scenario._where import Where
from ipam_core.scenario.model import IPAMSpec


def check_node_mask(where: Where, mask: int, nets: Sequence[tuple[Where, Network]], family: int,
                    what: str, mask_name: str = "") -> None:
    """Refuse a node mask that cannot carve node CIDRs from every CIDR of ``nets``.

    Parameters
    ----------
    where : Where
        Position blamed in the message (the mask's key, or the CIDR's when the mask is a default).
    mask : int
        Node CIDR prefix length.
    nets : sequence of (Where, network)
        The CIDRs the mask applies to.
    family : {4, 6}
        Their family.
    what : str
        What the CIDRs are, for the message ("clusterPoolIPv4PodCIDRList entry", ...).
    mask_name : str
        How the message names the mask when ``where`` is not the mask's own key
        (e.g. "the default clusterPoolIPv6MaskSize"); empty when it is.

    Raises
    ------
    ConfigError
        Mask longer than the family's bits; shorter than a CIDR's prefix (kubernetes
        node_ipam_controller.go: "mask size of cluster CIDR must be less than or equal to
        --node-cidr-mask-size"); IPv6 mask more than 16 bits longer than a CIDR's prefix
        (kubernetes/cilium cidr_set.go ``ErrCIDRSetSubNetTooBig``, "the node CIDR size is too big").
    """
    bits = 32 if family == 4 else 128
    label = f"{mask_name} {mask}" if mask_name else str(mask)
    if mask > bits:
        where.fail(f"{label} is longer than the {bits} bits of IPv{family}; expected at most {bits}")
    for _, net in nets:
        if mask < net.prefixlen:
            where.fail(f"{label} is shorter than the /{net.prefixlen} of {what} {net}; expected a "
                       f"mask from {net.prefixlen} to {bits} (a node CIDR must fit inside the CIDR)")
        if family == 6 and mask - net.prefixlen > d.IPV6_MAX_MASK_DIFF:
            hi = net.prefixlen + d.IPV6_MAX_MASK_DIFF
            where.fail(f"{label} with {what} {net} means 2^{mask - net.prefixlen} node CIDRs; expected "
                       f"a mask from {net.prefixlen} to {hi} (IPv6 node mask - CIDR prefix <= "
                       f"{d.IPV6_MAX_MASK_DIFF}; upstream refuses it: 'the node CIDR size is too big')")


def check_disjoint(entries: Sequence[tuple[Where, Network]], what: str, why: str = "") -> None:
    """Refuse overlapping CIDRs, blaming the later one and naming the earlier.

    Parameters
    ----------
    entries : sequence of (Where, network)
        CIDRs with their keys, in document order (families may be mixed).
    what : str
        What the CIDRs are, for the message.
    why : str
        The upstream reason, appended in parentheses.

    Notes
    -----
    Sort by (family, first address, prefix length) and sweep once: a CIDR overlaps an
    earlier one exactly when it starts at or before the furthest end seen so far
    (the same sweep as ``ipam_core.addr.check_disjoint``, keeping the keys).
    """
    order = sorted(range(len(entries)),
                   key=lambda i: (entries[i][1].version, int(entries[i][1].network_address), entries[i][1].prefixlen))
    reach: int | None = None
    reach_end = -1
    for i in order:
        w, net = entries[i]
        start, end = int(net.network_address), int(net.broadcast_address)
        if reach is not None and entries[reach][1].version == net.version and start <= reach_end:
            first, second = sorted((reach, i))
            suffix = f" ({why})" if why else ""
            entries[second][0].fail(f"{entries[second][1]} overlaps {entries[first][1]} ({entries[first][0]}); "
                                    f"expected {what} that do not overlap{suffix}")
        if reach is None or entries[reach][1].version != net.version or end > reach_end:
            reach, reach_end = i, end


def check_mode(ipam: IPAMSpec, mode: str, root: Where) -> None:
    """Check that ``ipam`` gives ``mode`` what it needs for every enabled family.

    Parameters
    ----------
    ipam : IPAMSpec
        The resolved IPAM settings.
    mode : str
        One of :data:`~ipam_core.modes.ALL_MODES`.
    root : Where
        The document root (for keys and lines in messages).

    Raises
    ------
    ConfigError
        What the mode's own ``check`` refuses (each mode module documents its rules, e.g.
        :func:`ipam_core.modes.multi_pool.check`).
    """
    mode_spec(mode).check(ipam, root)
