"""Address arithmetic for IPv4 and IPv6 CIDRs (to be extended)."""

from __future__ import annotations

import ipaddress

from ipam_core.errors import CIDRError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidr(text: str, family: int | None = None) -> Network:
    """Parse a CIDR strictly (no host bits), optionally checking its family.

    Parameters
    ----------
    text : str
        The CIDR, e.g. ``"10.244.0.0/16"``.
    family : {None, 4, 6}
        Required IP family, if any.

    Returns
    -------
    ipaddress.IPv4Network or ipaddress.IPv6Network

    Raises
    ------
    CIDRError
        One line naming the value and what was expected.
    """
    try:
        net = ipaddress.ip_network(str(text).strip(), strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.ip_network(str(text).strip(), strict=False)
            raise CIDRError(
                f"invalid CIDR {text!r}: host bits set (expected a network address such as {fixed})"
            ) from None
        raise CIDRError(
            f"invalid CIDR {text!r}: expected an IPv4 or IPv6 prefix such as 10.0.0.0/8 or fd00::/104"
        ) from None
    if family is not None and net.version != family:
        raise CIDRError(f"invalid CIDR {text!r}: expected an IPv{family} prefix, got IPv{net.version}")
    return net
