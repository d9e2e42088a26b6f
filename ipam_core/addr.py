"""Address arithmetic for IPv4 and IPv6 CIDRs.

Allocators in ipam_core work on integer offsets; this module is the only
place that turns offsets into addresses and back. An allocator's range is
``base + offset`` for ``offset`` in ``[0, max)``, as in Cilium's
``pkg/ipam/service/ipallocator/allocator.go``::

    For CIDR 10.0.0.0/24: 254 usable addresses out of 256 (network and last excluded)

    network address                            last address
    10.0.0.0                                   10.0.0.255
    |                                                   |
    0     1     2     3    ...          253    254    255     <- offset from the network
          |                                    |
          base = network + 1                   base + max - 1 = 10.0.0.254
          |                                    |
          offset 0 of the bitmap               offset max - 1 (max = 254)

Node CIDRs carved from a cluster CIDR use the same idea with a shift: block
``i`` of a cluster CIDR with node mask ``m`` starts at
``cluster_base | (i << (bits - m))`` (``cidr_set.go`` ``indexToCIDRBlock``)::

    10.96.0.0/20, node mask /24:   10.96.0.0/24  10.96.1.0/24  ...  10.96.15.0/24
                                   index 0       index 1            index 15

Compiled kernels cannot hold 128-bit integers, so IPv6 values cross into
them as two ``uint64`` halves (:func:`to_halves` / :func:`from_halves`).
Whole arrays of offsets become Arrow string arrays in one compiled pass
(:func:`format_addresses`, :func:`format_cidrs`), without a Python ``str``
per address.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from ipam_core.errors import CIDRError, ConfigError
from ipam_core.kernels.addrfmt import IPV4_MAX_CHARS, IPV6_MAX_CHARS, fmt_ipv4, fmt_ipv6

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_U64_MASK = (1 << 64) - 1
#: Largest text buffer an Arrow ``string`` array can address with int32
#: offsets; beyond it :func:`format_addresses` builds a ``large_string``.
STRING_OFFSET_LIMIT = 2**31 - 1


# --------------------------------------------------------------------------- parsing
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


def as_network(value: str | Network, family: int | None = None) -> Network:
    """Return ``value`` as a network, parsing text with :func:`parse_cidr`.

    Parameters
    ----------
    value : str or ipaddress.IPv4Network or ipaddress.IPv6Network
        A CIDR.
    family : {None, 4, 6}
        Required IP family, if any.

    Returns
    -------
    ipaddress.IPv4Network or ipaddress.IPv6Network

    Raises
    ------
    CIDRError
        Malformed text, host bits set, or the wrong family.
    """
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        if family is not None and value.version != family:
            raise CIDRError(f"invalid CIDR {str(value)!r}: expected an IPv{family} prefix, got IPv{value.version}")
        return value
    return parse_cidr(value, family)


def parse_ip(text: str | Address, family: int | None = None) -> Address:
    """Parse one IP address, optionally checking its family.

    Parameters
    ----------
    text : str or ipaddress.IPv4Address or ipaddress.IPv6Address
        The address, e.g. ``"10.244.0.7"`` or ``"fd00::7"``.
    family : {None, 4, 6}
        Required IP family, if any.

    Returns
    -------
    ipaddress.IPv4Address or ipaddress.IPv6Address

    Raises
    ------
    CIDRError
        One line naming the value and what was expected.
    """
    if isinstance(text, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        ip = text
    else:
        try:
            ip = ipaddress.ip_address(str(text).strip())
        except ValueError:
            raise CIDRError(
                f"invalid IP address {text!r}: expected an IPv4 or IPv6 address such as 10.0.0.1 or fd00::1"
            ) from None
    if family is not None and ip.version != family:
        raise CIDRError(f"invalid IP address {str(text)!r}: expected an IPv{family} address, got IPv{ip.version}")
    return ip


# --------------------------------------------------------------------------- fast keys
# Per-call paths (one CIDR or address per Python call) spend most of their
# time in ``ipaddress`` object construction. The C ``inet_pton`` is as strict
# as ``ipaddress`` (no leading zeros, no blanks, no short forms), so it is the
# fast path; whatever it refuses falls back to ``ipaddress``, so errors and
# edge cases are exactly those of :func:`parse_cidr` / :func:`parse_ip`.
def _text_int(text: str) -> tuple[int, int]:
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        packed = socket.inet_pton(family, text)
    except (OSError, ValueError):
        return 0, -1
    return (6 if family == socket.AF_INET6 else 4), int.from_bytes(packed, "big")


def cidr_key(value: str | Network) -> tuple[int, int, int]:
    """``(version, network address as int, prefix length)`` of a CIDR, parsed strictly.

    Parameters
    ----------
    value : str or ipaddress network
        The CIDR.

    Returns
    -------
    tuple of int

    Raises
    ------
    CIDRError
        As :func:`parse_cidr`.
    """
    if isinstance(value, str):
        head, sep, plen = value.partition("/")
        if sep and 0 < len(plen) <= 3 and plen.isascii() and plen.isdigit() and (plen == "0" or plen[0] != "0"):
            version, ip = _text_int(head)
            bits = 32 if version == 4 else 128
            prefix = int(plen)
            if ip >= 0 and prefix <= bits and ip & ((1 << (bits - prefix)) - 1) == 0:
                return version, ip, prefix
    net = as_network(value)
    return net.version, int(net.network_address), net.prefixlen


def ip_key(value: str | Address) -> tuple[int, int]:
    """``(version, address as int)`` of one IP address, parsed strictly.

    Parameters
    ----------
    value : str or ipaddress address
        The address.

    Returns
    -------
    tuple of int

    Raises
    ------
    CIDRError
        As :func:`parse_ip`.
    """
    if isinstance(value, str):
        version, ip = _text_int(value)
        if ip >= 0:
            return version, ip
    ip = parse_ip(value)
    return ip.version, int(ip)


_PACK_U32 = struct.Struct(">I").pack


def ipv6_text(value: int) -> str:
    """RFC 5952 text of an IPv6 address given as an int, by arithmetic.

    Parameters
    ----------
    value : int
        ``0 <= value < 2**128``.

    Returns
    -------
    str
        Lowercase hex groups without leading zeros; the first longest run
        of two or more zero groups becomes ``::`` (``ipaddress``'s rule).
        IPv4-mapped addresses keep hex groups (``::ffff:a00:1``), as
        :func:`ipam_core.kernels.addrfmt.fmt_ipv6` writes them and as
        ``ipaddress`` does before Python 3.13.
    """
    groups = [(value >> shift) & 0xFFFF for shift in range(112, -1, -16)]
    best_start, best_len, run_start = -1, 1, -1
    for i, group in enumerate(groups):
        if group:
            run_start = -1
            continue
        if run_start < 0:
            run_start = i
        if i + 1 - run_start > best_len:
            best_start, best_len = run_start, i + 1 - run_start
    hexes = [f"{group:x}" for group in groups]
    if best_start < 0:
        return ":".join(hexes)
    return ":".join(hexes[:best_start]) + "::" + ":".join(hexes[best_start + best_len :])


def _c_ipv6_text(value: int) -> str:
    text = socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))
    # glibc writes a dotted IPv4 tail for ::ffff:a.b.c.d and ::a.b.c.d.
    return ipv6_text(value) if "." in text else text


def _c_ipv6_text_agrees() -> bool:
    # The C inet_ntop is 5x faster, but RFC 5952's zero-run rules are the
    # platform's to get right: use it only if it writes what ipv6_text writes.
    probes = [0, 1, 1 << 112, (1 << 128) - 1, 0x20010DB8000000000001000000000001,
              0x20010DB8000000010000000000000000, 0x00010000000000000001000000000000,
              0xFD000000000000000000FFFF00000001, 0x0000FFFF0A000001, 0x0A000001]
    return all(_c_ipv6_text(v) == ipv6_text(v) for v in probes)


_IPV6_TEXT = _c_ipv6_text if hasattr(socket, "inet_ntop") and _c_ipv6_text_agrees() else ipv6_text


def ip_text(version: int, value: int) -> str:
    """Text of one address given as an int (dotted quad or RFC 5952).

    Parameters
    ----------
    version : {4, 6}
        IP family.
    value : int
        The address.

    Returns
    -------
    str
        The same text as the compiled formatters in
        :mod:`ipam_core.kernels.addrfmt` (IPv6: see :func:`ipv6_text`),
        written with C ``inet_ntoa``/``inet_ntop`` rather than ``ipaddress``
        (~0.3 us instead of 1-4 us).
    """
    if version == 4:
        return socket.inet_ntoa(_PACK_U32(value))
    return _IPV6_TEXT(value)


#: Texts an allocator keeps for its per-call methods: a dict of texts is emptied
#: once it holds this many (2**17 texts with their reverse entries are ~25 MB),
#: and an allocator of at most this many slots may keep them in a list instead.
TEXT_CACHE_LIMIT = 1 << 17
#: A dict of texts becomes a list (8 bytes a slot) once it holds this fraction
#: of the slots: by then the dict costs as much memory.
TEXT_LIST_FROM = 1 / 16


class _TextDict(dict):
    # index -> text; None for a text not formatted yet (as the list form has).
    __slots__ = ()

    def __missing__(self, index: int) -> None:
        return None


class TextCache:
    """An allocator's texts for its per-call methods: index to text and back.

    Per-call methods use the two maps directly: ``texts[index]`` is the text
    of an index or ``None`` if it is not formatted yet (then :meth:`text`
    formats it), and ``index_of.get(text)`` is the index of a text handed
    out, so ``release(text)`` parses nothing.

    Parameters
    ----------
    capacity : int
        Number of indices.
    format_text : callable
        ``int -> str`` for an index the caller has already checked.

    Attributes
    ----------
    texts : dict or list
        Index to text. A dict at first; a list of ``capacity`` slots (one
        pointer each, no hashing) once :data:`TEXT_LIST_FROM` of the slots
        have texts, if ``capacity <= TEXT_CACHE_LIMIT``. Callers re-read this
        attribute after :meth:`text`.
    index_of : dict of str to int
        Text to index, for every text formatted or remembered so far.

    Notes
    -----
    The maps depend only on the allocator's fixed layout, never on what is
    allocated, so they cannot go stale. Dicts are emptied once they hold
    :data:`TEXT_CACHE_LIMIT` entries, which bounds their memory; a forgotten
    text is formatted (or parsed) again. Memory grows with the texts used,
    not with the capacity: an allocator that hands out 30 addresses of a
    /64 keeps 30 texts.
    """

    __slots__ = ("texts", "index_of", "format_text", "capacity")

    def __init__(self, capacity: int, format_text):
        self.capacity = capacity
        self.format_text = format_text
        self.index_of: dict[str, int] = {}
        self.texts: dict | list = _TextDict()

    def text(self, index: int) -> str:
        """Format the text of ``index`` and remember it both ways.

        Parameters
        ----------
        index : int
            A checked index.

        Returns
        -------
        str
        """
        index = int(index)
        text = self.format_text(index)
        texts = self.texts
        if isinstance(texts, dict):
            if self.capacity <= TEXT_CACHE_LIMIT and len(texts) >= self.capacity * TEXT_LIST_FROM:
                listed = [None] * self.capacity
                for known, known_text in texts.items():
                    listed[known] = known_text
                self.texts = texts = listed
            elif len(texts) >= TEXT_CACHE_LIMIT:
                texts.clear()
        texts[index] = text
        self.remember(index, text)
        return text

    def remember(self, index: int, text: str) -> None:
        """Map a text to its index (e.g. a text parsed by the allocator).

        Parameters
        ----------
        index : int
            The index.
        text : str
            A text that parses to it.
        """
        if len(self.index_of) >= TEXT_CACHE_LIMIT:
            self.index_of.clear()
        self.index_of[text] = index


# --------------------------------------------------------------------------- offsets
def address_at(network: str | Network, offset: int) -> Address:
    """The address at ``offset`` from the network address.

    Parameters
    ----------
    network : str or ipaddress network
        The CIDR.
    offset : int
        ``0 <= offset < network.num_addresses``.

    Returns
    -------
    ipaddress.IPv4Address or ipaddress.IPv6Address

    Raises
    ------
    CIDRError
        The offset falls outside the network.
    """
    net = as_network(network)
    offset = int(offset)
    if not 0 <= offset < net.num_addresses:
        raise CIDRError(f"offset {offset} is outside {net} (expected 0 to {net.num_addresses - 1})")
    return net.network_address + offset


def offset_of(network: str | Network, address: str | Address) -> int:
    """Offset of ``address`` from the network address.

    Parameters
    ----------
    network : str or ipaddress network
        The CIDR.
    address : str or ipaddress address
        An address inside it.

    Returns
    -------
    int
        ``int(address) - int(network.network_address)``.

    Raises
    ------
    CIDRError
        The address is malformed, of the other family, or outside the network.
    """
    net = as_network(network)
    ip = parse_ip(address)
    if ip.version != net.version or ip not in net:
        raise CIDRError(f"address {ip} is outside {net}")
    return int(ip) - int(net.network_address)


def to_halves(value: int) -> tuple[np.uint64, np.uint64]:
    """Split a 128-bit integer into ``(high, low)`` ``uint64`` halves for kernels.

    Parameters
    ----------
    value : int
        ``0 <= value < 2**128`` (an IPv4 value gives a zero high half).

    Returns
    -------
    tuple of numpy.uint64
        ``(value >> 64, value & (2**64 - 1))``.
    """
    value = int(value)
    if not 0 <= value < 1 << 128:
        raise CIDRError(f"value {value} does not fit in 128 bits")
    return np.uint64(value >> 64), np.uint64(value & _U64_MASK)


def from_halves(high: int, low: int) -> int:
    """Join ``uint64`` halves back into one integer (inverse of :func:`to_halves`).

    Parameters
    ----------
    high, low : int or numpy.uint64
        Upper and lower 64 bits.

    Returns
    -------
    int
    """
    return (int(high) << 64) | int(low)


def network_halves(network: str | Network) -> tuple[np.uint64, np.uint64]:
    """The network address of a CIDR as ``uint64`` halves.

    Parameters
    ----------
    network : str or ipaddress network
        The CIDR.

    Returns
    -------
    tuple of numpy.uint64
        ``(high, low)``; for IPv4 the high half is 0.
    """
    return to_halves(int(as_network(network).network_address))


# --------------------------------------------------------------------------- overlap
def _bounds(net: Network) -> tuple[int, int]:
    start = int(net.network_address)
    return start, start + net.num_addresses - 1


def overlaps(a: str | Network, b: str | Network) -> bool:
    """Whether two CIDRs share an address (CIDRs of different families never do).

    Parameters
    ----------
    a, b : str or ipaddress network
        The CIDRs.

    Returns
    -------
    bool
        True when one contains the other (prefixes cannot overlap partially).

    Raises
    ------
    CIDRError
        Either value is not a valid CIDR.
    """
    na, nb = as_network(a), as_network(b)
    if na.version != nb.version:
        return False
    a0, a1 = _bounds(na)
    b0, b1 = _bounds(nb)
    return a0 <= b1 and b0 <= a1


def check_disjoint(cidrs: Iterable[str | Network], what: str) -> list[Network]:
    """Parse CIDRs and refuse the list if any two of them overlap.

    Parameters
    ----------
    cidrs : iterable of str or ipaddress network
        The CIDRs (IPv4 and IPv6 may be mixed; families never overlap).
    what : str
        What the list is, for the message (e.g. ``"clusterPoolIPv4PodCIDRList"``).

    Returns
    -------
    list of ipaddress network
        The parsed CIDRs, in input order.

    Raises
    ------
    CIDRError
        A value is malformed.
    ConfigError
        Two CIDRs overlap; the message names both.

    Notes
    -----
    Sorting by (family, first address, prefix length) and sweeping once
    finds an overlap in ``O(n log n)``: a CIDR overlaps an earlier one
    exactly when it starts at or before the furthest end seen so far.
    """
    nets = [as_network(c) for c in cidrs]
    order = sorted(range(len(nets)), key=lambda i: (nets[i].version, int(nets[i].network_address), nets[i].prefixlen))
    reach_net = None
    reach_end = -1
    for i in order:
        net = nets[i]
        start, end = _bounds(net)
        if reach_net is not None and reach_net.version == net.version and start <= reach_end:
            raise ConfigError(f"{what}: CIDRs must not overlap, but {reach_net} overlaps {net}")
        if reach_net is None or reach_net.version != net.version or end > reach_end:
            reach_net, reach_end = net, end
    return nets


# --------------------------------------------------------------------------- formatting
def _as_offsets(values, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu" and arr.size:
        raise CIDRError(f"{what} must be integers, got an array of {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise CIDRError(f"{what}: value {int(arr.max())} is too large")
    return np.ascontiguousarray(arr.reshape(-1), dtype=np.int64)


def _build_strings(fill, count: int, max_chars: int) -> pa.Array:
    large = count * max_chars > STRING_OFFSET_LIMIT
    # 16 spare bytes let the IPv4 formatter use whole-octet stores up to the last string.
    buf = np.empty(count * max_chars + 16, dtype=np.uint8)
    bounds = np.empty(count + 1, dtype=np.int64 if large else np.int32)
    used = int(fill(buf, bounds))
    # Short IPv6 texts can leave most of the worst-case buffer unused.
    data = buf[:used].copy() if used < buf.shape[0] // 2 else buf[:used]
    kind = pa.large_string() if large else pa.string()
    return pa.Array.from_buffers(kind, count, [None, pa.py_buffer(bounds), pa.py_buffer(data)])


_NO_SUFFIX = np.empty(0, dtype=np.uint8)


def format_values(version: int, base: int, offsets: np.ndarray, shift: int = 0, suffix: bytes = b"") -> pa.Array:
    """Text of ``base + (offset << shift)`` plus ``suffix`` for checked offsets, as an Arrow array.

    The unchecked core of :func:`format_addresses` and :func:`format_cidrs`
    for callers that have validated their offsets already (the allocators'
    batch methods).

    Parameters
    ----------
    version : {4, 6}
        IP family.
    base : int
        The address of offset 0.
    offsets : numpy.ndarray of int64
        C-contiguous offsets whose results fit in the family's bits.
    shift : int
        Left shift of each offset (``bits - node_mask`` for node CIDRs).
    suffix : bytes
        Appended to every string (e.g. ``b"/24"``).

    Returns
    -------
    pyarrow.StringArray or pyarrow.LargeStringArray
    """
    tail = np.frombuffer(suffix, dtype=np.uint8) if suffix else _NO_SUFFIX
    if version == 4:
        start = np.uint64(base)
        return _build_strings(
            lambda b, o: fmt_ipv4(start, offsets, np.uint64(shift), tail, b, o),
            offsets.shape[0],
            IPV4_MAX_CHARS + tail.shape[0],
        )
    hi_half, lo_half = to_halves(base)
    return _build_strings(
        lambda b, o: fmt_ipv6(hi_half, lo_half, offsets, shift, tail, b, o),
        offsets.shape[0],
        IPV6_MAX_CHARS + tail.shape[0],
    )


def format_addresses(network: str | Network, offsets) -> pa.Array:
    """Text of ``network_address + offset`` for every offset, as an Arrow array.

    Parameters
    ----------
    network : str or ipaddress network
        The CIDR the offsets are relative to (offset 0 = its network address).
    offsets : array_like of int
        Offsets, each in ``[0, num_addresses)``.

    Returns
    -------
    pyarrow.StringArray or pyarrow.LargeStringArray
        One string per offset, in order: dotted quads for IPv4, RFC 5952
        text (as ``str(ipaddress.IPv6Address)``) for IPv6. ``large_string``
        only when the text could exceed 2 GiB.

    Raises
    ------
    CIDRError
        A malformed network or an offset outside it.
    """
    net = as_network(network)
    offs = _as_offsets(offsets, "offsets")
    if offs.size:
        lo, hi = int(offs.min()), int(offs.max())
        if lo < 0 or hi >= net.num_addresses:
            bad = lo if lo < 0 else hi
            raise CIDRError(f"offset {bad} is outside {net} (expected 0 to {net.num_addresses - 1})")
    empty = np.empty(0, dtype=np.uint8)
    if net.version == 4:
        base = np.uint64(int(net.network_address))
        return _build_strings(
            lambda b, o: fmt_ipv4(base, offs, np.uint64(0), empty, b, o), offs.size, IPV4_MAX_CHARS
        )
    hi_half, lo_half = network_halves(net)
    return _build_strings(
        lambda b, o: fmt_ipv6(hi_half, lo_half, offs, 0, empty, b, o), offs.size, IPV6_MAX_CHARS
    )


def format_cidrs(network: str | Network, node_mask: int, indices) -> pa.Array:
    """Node-CIDR strings (``"a.b.c.d/m"``) for block indices of a cluster CIDR.

    Parameters
    ----------
    network : str or ipaddress network
        The cluster CIDR.
    node_mask : int
        Prefix length of a node block, ``prefixlen <= node_mask <= bits``.
    indices : array_like of int
        Block indices, each in ``[0, 2**(node_mask - prefixlen))``.

    Returns
    -------
    pyarrow.StringArray or pyarrow.LargeStringArray
        ``f"{cluster_base | (i << (bits - node_mask))}/{node_mask}"`` per index.

    Raises
    ------
    CIDRError
        A malformed network, a node mask outside the range, or an index
        outside the cluster CIDR.
    """
    net = as_network(network)
    bits = net.max_prefixlen
    node_mask = int(node_mask)
    if not net.prefixlen <= node_mask <= bits:
        raise CIDRError(f"node mask {node_mask} does not fit {net} (expected {net.prefixlen} to {bits})")
    idx = _as_offsets(indices, "indices")
    blocks = 1 << (node_mask - net.prefixlen)
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= blocks:
            bad = lo if lo < 0 else hi
            raise CIDRError(f"index {bad} is outside {net} with /{node_mask} blocks (expected 0 to {blocks - 1})")
    suffix = np.frombuffer(f"/{node_mask}".encode(), dtype=np.uint8)
    shift = bits - node_mask
    if net.version == 4:
        base = np.uint64(int(net.network_address))
        return _build_strings(
            lambda b, o: fmt_ipv4(base, idx, np.uint64(shift), suffix, b, o),
            idx.size,
            IPV4_MAX_CHARS + suffix.size,
        )
    hi_half, lo_half = network_halves(net)
    return _build_strings(
        lambda b, o: fmt_ipv6(hi_half, lo_half, idx, shift, suffix, b, o),
        idx.size,
        IPV6_MAX_CHARS + suffix.size,
    )
