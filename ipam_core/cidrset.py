"""Node CIDR set: carve per-node pod CIDRs out of one cluster CIDR.

Follows kubernetes ``pkg/controller/nodeipam/ipam/cidrset/cidr_set.go``
(kube-controller-manager's range allocator) with the extra mask checks of
cilium ``pkg/ipam/cidrset/cidr_set.go`` (the cluster-pool operator's copy).
Both gave identical answers on every operation sequence tried.

One bit per node block lives in a two-level bitmap
(:mod:`ipam_core.kernels.layout`); block ``i`` is
``cluster_base | (i << (bits - node_mask))``::

    cluster 10.96.0.0/20, node mask 24  ->  16 blocks, bitmap of 16 bits

    index   0            1            2                 15
            10.96.0.0/24 10.96.1.0/24 10.96.2.0/24 ...  10.96.15.0/24
                         ^ cursor (next-fit: the scan starts here)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ipam_core.addr import Network, TextCache, as_network, cidr_key, format_cidrs, format_values, ip_text
from ipam_core.bitmap import ArenaFields, clear_many, new_arena
from ipam_core.errors import CIDRError, ConfigError, NoCIDRsRemaining, NotInRange
from ipam_core.kernels.arena import ARENA_CURSOR, ARENA_USED
from ipam_core.kernels.scan import bm_alloc_next_fit_batch
from ipam_core.kernels.slots import (
    bm_clear_range,
    bm_count,
    bm_set_many,
    bm_set_range,
    bm_test_many,
)

#: IPv6 only: node mask minus cluster mask may be at most 16 ("due to the
#: uncompressed bitmap", kubernetes issue 44918). IPv4 has no such limit.
CLUSTER_SUBNET_MAX_DIFF = 16
#: Largest node mask per family (Cilium's ``maxSubNetMaskSizeIPv4/IPv6``).
MAX_SUBNET_MASK = {4: 32, 6: 128}

MSG_NO_CIDRS_REMAINING = (
    "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
)
MSG_SUBNET_TOO_BIG = "New CIDR set failed; the node CIDR size is too big"
MSG_SUBNET_MASK_INVALID = "SubNetMask is invalid, should be lower or equal to 32 for IPv4 and to 128 for IPv6"
MSG_CLUSTER_MASK_TOO_LONG = (
    "Invalid --cluster-cidr, mask size of cluster CIDR must be less than or equal to "
    "--node-cidr-mask-size configured for CIDR family"
)


class CIDRSet(ArenaFields):
    """kube-controller-manager's node CIDR set over a compiled bitmap.

    Parameters
    ----------
    cluster_cidr : str or ipaddress network
        The cluster CIDR, e.g. ``"10.244.0.0/16"`` (no host bits).
    node_mask : int
        Prefix length of each node CIDR, e.g. 24.
    strict : bool, default True
        Refuse a node mask shorter than the cluster prefix, as
        kube-controller-manager (``node_ipam_controller.go``) and the Cilium
        operator do before they ever build a set. With ``strict=False`` the
        bare ``cidr_set.go`` behaviour is kept: construction succeeds with
        capacity 0 and every allocation fails as full.

    Raises
    ------
    CIDRError
        The cluster CIDR is malformed or has host bits set.
    ConfigError
        The node mask is not an integer; shorter than the cluster prefix
        (``strict``); above 32 (IPv4) or 128 (IPv6), with Cilium's text
        ``SubNetMask is invalid, ...``; or, for IPv6, more than 16 bits
        longer than the cluster prefix (``New CIDR set failed; the node
        CIDR size is too big``). Messages start with the upstream text and
        name both values.

    Notes
    -----
    * **Capacity** is ``2**(node_mask - cluster_mask)``; nothing is excluded
      at this level, so the first and last blocks are handed out.
    * **allocate_next is next fit**: a cursor starts at 0; the scan runs from
      the cursor upward, wrapping, and the cursor moves to the block after the
      one taken. A freed block is reused only when the cursor wraps back to it.
      ``release``/``occupy`` never move the cursor and a failed allocation
      leaves it unchanged. "Full" is decided by the counter, before any scan.
    * **occupy/release work on whole node blocks**: every block the given CIDR
      overlaps is set or cleared (a /22 covers four /24 blocks, a /28 its
      enclosing /24, a supernet of the cluster CIDR all of them), and the
      counter changes only for bits that flip, so both are idempotent.
    * Upstream at the ``cidr_set.go`` level, a node mask shorter than the
      cluster mask gives ``maxCIDRs = 0`` (``1 << uint32(negative)`` is 0 in
      Go): the set is constructed, is always full, and occupy/release of a
      CIDR longer than the cluster prefix fail with ``CIDR: <ip>/<mask> is out
      of the range of CIDR allocator``. ``strict=False`` reproduces that.
      Kubernetes accepts an IPv4 node mask above 32 and then returns broken
      CIDRs; Cilium refuses it, and so does this class.
    * **Per call or in batches.** :meth:`allocate_next` and :meth:`release`
      handle one CIDR's text per call: one compiled call each (to a kernel
      bound to the set's arrays, see :func:`ipam_core.kernels.fastcall.bind`), and the texts
      handed out are remembered both ways (:class:`ipam_core.addr.TextCache`),
      so releasing a CIDR this set wrote parses nothing; any other text is
      parsed and checked. :meth:`allocate_next_many`,
      :meth:`release_indices` and :meth:`cidrs_of` do the same for whole
      arrays in one compiled pass each.
    """

    def __init__(self, cluster_cidr: str | Network, node_mask: int, *, strict: bool = True):
        net = as_network(cluster_cidr)
        if isinstance(node_mask, bool) or not isinstance(node_mask, (int, np.integer)):
            raise ConfigError(f"node mask {node_mask!r} for cluster CIDR {net} must be an integer prefix length")
        node_mask = int(node_mask)
        bits = net.max_prefixlen
        context = f"(cluster CIDR {net}, node mask {node_mask})"
        if strict and node_mask < net.prefixlen:
            raise ConfigError(f"{MSG_CLUSTER_MASK_TOO_LONG} {context}")
        if node_mask > MAX_SUBNET_MASK[net.version] or node_mask < 0:
            raise ConfigError(f"{MSG_SUBNET_MASK_INVALID} {context}")
        if net.version == 6 and node_mask - net.prefixlen > CLUSTER_SUBNET_MAX_DIFF:
            raise ConfigError(f"{MSG_SUBNET_TOO_BIG} {context}")

        self._net = net
        self._version = net.version
        self._cluster_prefix = net.prefixlen
        self._bits = bits
        self._node_mask = node_mask
        self._shift = bits - node_mask
        self._base = int(net.network_address)
        self._max = 1 << (node_mask - net.prefixlen) if node_mask >= net.prefixlen else 0
        # Counters live in the arena's header, where the per-call kernels update them.
        self._arena, self._words, self._summary = new_arena(self._max)
        self._bind_kernels()
        self._suffix = f"/{node_mask}".encode()
        self._text_cache = TextCache(self._max, self._format)
        # The per-call methods use the maps directly (no attribute chain).
        self._texts, self._index_of = self._text_cache.texts, self._text_cache.index_of
        self._remember = self._text_cache.remember

    # ------------------------------------------------------------------ state
    @property
    def cluster_cidr(self) -> Network:
        """The cluster CIDR."""
        return self._net

    @property
    def node_mask(self) -> int:
        """Prefix length of a node CIDR."""
        return self._node_mask

    @property
    def capacity(self) -> int:
        """Number of node blocks, ``2**(node_mask - cluster_mask)`` (``maxCIDRs``)."""
        return self._max

    @property
    def allocated(self) -> int:
        """Blocks in use (``allocatedCIDRs``)."""
        return self._allocated

    @property
    def free(self) -> int:
        """Blocks not in use."""
        return self._max - self._allocated

    @property
    def is_full(self) -> bool:
        """Whether every block is in use (``IsFull``)."""
        return self._allocated == self._max

    @property
    def cursor(self) -> int:
        """The next-fit cursor (``nextCandidate``).

        Settable, so a compiled caller that ran its own loop on
        :attr:`words`/:attr:`summary` can write its cursor back (then call
        :meth:`recount`).
        """
        return self._cursor

    @cursor.setter
    def cursor(self, value: int) -> None:
        value = int(value)
        if value != 0 and not 0 <= value < self._max:
            raise ConfigError(f"cursor {value} is outside 0..{self._max - 1} for {self._net}")
        self._cursor = value

    @property
    def words(self) -> np.ndarray:
        """The bitmap's leaf words (live view; bit ``i`` = block ``i`` in use)."""
        return self._words

    @property
    def summary(self) -> np.ndarray:
        """The bitmap's summary words (live view; bit ``j`` = ``words[j]`` full)."""
        return self._summary

    def recount(self) -> int:
        """Recompute :attr:`allocated` from the bitmap after outside kernel calls.

        Returns
        -------
        int
            The new count.
        """
        self._allocated = int(bm_count(self._words, self._max))
        return self._allocated

    def allocated_indices(self) -> np.ndarray:
        """Indices of the blocks in use, ascending.

        Returns
        -------
        numpy.ndarray of int64
        """
        bits = np.unpackbits(self._words.view(np.uint8), bitorder="little")[: self._max]
        return np.flatnonzero(bits).astype(np.int64)

    # ------------------------------------------------------------------ index <-> CIDR
    def cidr_of(self, index: int) -> str:
        """The node CIDR of block ``index`` (``indexToCIDRBlock``).

        Parameters
        ----------
        index : int
            ``0 <= index < capacity``.

        Returns
        -------
        str
            E.g. ``"10.96.3.0/24"``; IPv6 in canonical form
            (``"2001:db8:0:1::/64"``).

        Raises
        ------
        NotInRange
            The index is outside the set.
        """
        index = self._check_index(index)
        return self._texts[index] or self._text(index)

    def cidrs_of(self, indices) -> pa.Array:
        """Node CIDR strings for many indices in one compiled pass.

        Parameters
        ----------
        indices : array_like of int
            Block indices.

        Returns
        -------
        pyarrow.StringArray
        """
        idx = np.asarray(indices)
        if (
            idx.dtype == np.int64
            and idx.ndim == 1
            and idx.flags.c_contiguous
            and idx.size
            and int(idx.view(np.uint64).max()) < self._max  # negatives are huge as uint64
        ):
            return format_values(self._version, self._base, idx, self._shift, self._suffix)
        try:  # anything else is converted and checked, with its errors
            return format_cidrs(self._net, self._node_mask, indices)
        except CIDRError as exc:
            raise NotInRange(str(exc)) from None

    def index_of(self, cidr: str | Network) -> int:
        """Index of a node CIDR (the inverse of :meth:`cidr_of`).

        Parameters
        ----------
        cidr : str or ipaddress network
            A CIDR of exactly the node mask inside the cluster CIDR.

        Returns
        -------
        int

        Raises
        ------
        CIDRError
            Malformed, or not of the node mask size.
        NotInRange
            Outside the cluster CIDR (upstream text).
        """
        version, value, prefix = cidr_key(cidr)
        if not self._overlaps(version, value, prefix) or prefix < self._cluster_prefix:
            raise NotInRange(self._out_of_range(version, value, prefix))
        if prefix != self._node_mask:
            raise CIDRError(f"CIDR {ip_text(version, value)}/{prefix} is not a /{self._node_mask} node CIDR of {self._net}")
        return (value ^ self._base) >> self._shift

    def span(self, cidr: str | Network) -> tuple[int, int]:
        """Half-open range of block indices a CIDR covers (``getBeginningAndEndIndices``).

        Parameters
        ----------
        cidr : str or ipaddress network
            Any CIDR overlapping the cluster CIDR.

        Returns
        -------
        tuple of int
            ``(begin, end)`` with ``end`` exclusive: the enclosing block for a
            CIDR smaller than a node block, every block it covers for a larger
            one, all blocks for the cluster CIDR or a supernet of it.

        Raises
        ------
        CIDRError
            Malformed text or host bits set.
        NotInRange
            ``cidr <cidr> is out the range of cluster cidr <cluster>`` (also
            for the other IP family), or, for a zero-capacity set,
            ``CIDR: <ip>/<mask> is out of the range of CIDR allocator``.
        """
        version, value, prefix = cidr_key(cidr)
        if not self._overlaps(version, value, prefix):
            raise NotInRange(self._out_of_range(version, value, prefix))
        if prefix <= self._cluster_prefix:
            return 0, self._max
        last = value + (1 << (self._bits - prefix)) - 1
        return self._index_for_ip(value), self._index_for_ip(last) + 1

    # ------------------------------------------------------------------ operations
    def allocate_next(self) -> str:
        """Take the next free node CIDR by next fit (``AllocateNext``).

        Returns
        -------
        str
            The node CIDR.

        Raises
        ------
        NoCIDRsRemaining
            ``CIDR allocation failed; there are no remaining CIDRs left to
            allocate in the accepted range``; the cursor is left unchanged.
        """
        index = self._take_one(-1)
        if index < 0:
            raise NoCIDRsRemaining(MSG_NO_CIDRS_REMAINING)
        return self._texts[index] or self._text(index)

    def allocate_next_many(self, k: int) -> np.ndarray:
        """Take up to ``k`` node CIDRs by next fit: the same blocks, in the same
        order, as ``k`` calls of :meth:`allocate_next`.

        Parameters
        ----------
        k : int
            How many to take.

        Returns
        -------
        numpy.ndarray of int64
            Block indices in the order taken; shorter than ``k`` when the set
            filled up (no exception).
        """
        k = int(k)
        if k < 0:
            raise ConfigError(f"count {k} must be >= 0")
        arena = self._arena
        out = np.empty(min(k, self._max - int(arena[ARENA_USED])), dtype=np.int64)
        got, cursor = bm_alloc_next_fit_batch(
            self._words, self._summary, self._max, int(arena[ARENA_CURSOR]), out.shape[0], out
        )
        arena[ARENA_CURSOR] = cursor
        arena[ARENA_USED] += got
        return out if got == out.shape[0] else out[:got]

    def occupy(self, cidr: str | Network) -> int:
        """Mark every node block ``cidr`` overlaps as used (``Occupy``).

        Parameters
        ----------
        cidr : str or ipaddress network
            A CIDR overlapping the cluster CIDR.

        Returns
        -------
        int
            Blocks that changed from free to used (0 when already occupied).

        Raises
        ------
        CIDRError
            Malformed text or host bits set.
        NotInRange
            Outside the cluster CIDR (see :meth:`span`).
        """
        begin, end = self.span(cidr)
        if end - begin == 1:
            if isinstance(cidr, str):
                self._remember(begin, cidr)
            return self._set_one(begin)
        flipped = int(bm_set_range(self._words, self._summary, begin, end)) if end > begin else 0
        self._allocated += flipped
        return flipped

    def release(self, cidr: str | Network) -> int:
        """Mark every node block ``cidr`` overlaps as free (``Release``).

        Does not move the cursor; releasing free blocks is a silent success.

        Parameters
        ----------
        cidr : str or ipaddress network
            A CIDR overlapping the cluster CIDR.

        Returns
        -------
        int
            Blocks that changed from used to free.

        Raises
        ------
        CIDRError
            Malformed text or host bits set.
        NotInRange
            Outside the cluster CIDR (see :meth:`span`).
        """
        try:
            index = self._index_of.get(cidr)
        except TypeError:  # unhashable: span() refuses it with the parser's message
            index = None
        if index is not None:
            return self._clear_one(index)
        begin, end = self.span(cidr)
        if end - begin == 1:
            if isinstance(cidr, str):
                self._remember(begin, cidr)  # text covering one block: no parse next time
            return self._clear_one(begin)
        flipped = int(bm_clear_range(self._words, self._summary, begin, end)) if end > begin else 0
        self._allocated -= flipped
        return flipped

    def occupy_indices(self, indices) -> int:
        """Mark blocks used by index (batch :meth:`occupy` of node CIDRs).

        Parameters
        ----------
        indices : array_like of int
            Block indices (duplicates allowed).

        Returns
        -------
        int
            Blocks that changed from free to used.

        Raises
        ------
        NotInRange
            An index is outside the set (nothing is changed).
        """
        idx = self._checked_indices(indices)
        flipped = int(bm_set_many(self._words, self._summary, idx))
        self._allocated += flipped
        return flipped

    def release_indices(self, indices) -> int:
        """Mark blocks free by index (batch :meth:`release` of node CIDRs).

        Parameters
        ----------
        indices : array_like of int
            Block indices (duplicates and free blocks allowed).

        Returns
        -------
        int
            Blocks that changed from used to free.

        Raises
        ------
        NotInRange
            An index is outside the set (nothing is changed).
        """
        idx = self._checked_indices(indices)
        arena = self._arena
        flipped = clear_many(self._words, self._summary, idx, int(arena[ARENA_USED]), self._max)
        arena[ARENA_USED] -= flipped
        return flipped

    def is_allocated(self, cidr: str | Network) -> bool:
        """Whether every block ``cidr`` overlaps is in use (Cilium's ``IsAllocated``).

        Parameters
        ----------
        cidr : str or ipaddress network
            A CIDR overlapping the cluster CIDR.

        Returns
        -------
        bool
        """
        begin, end = self.span(cidr)
        if end <= begin:
            return True
        idx = np.arange(begin, end, dtype=np.int64)
        out = np.empty(idx.shape[0], dtype=np.bool_)
        return int(bm_test_many(self._words, idx, out)) == idx.shape[0]

    def __repr__(self) -> str:
        return (
            f"CIDRSet({str(self._net)!r}, {self._node_mask}: "
            f"{self._allocated}/{self._max} allocated, cursor {self._cursor})"
        )

    # ------------------------------------------------------------------ helpers
    _allocated = ArenaFields._count  # the arena's counter of slots in use

    def _format(self, index: int) -> str:
        value = self._base | (int(index) << self._shift)  # int(): a NumPy int under NUMBA_DISABLE_JIT
        return f"{ip_text(self._version, value)}/{self._node_mask}"

    def _overlaps(self, version: int, value: int, prefix: int) -> bool:
        # Two prefixes overlap iff they agree on the shorter one's bits
        # (upstream InRange: one contains the other's masked address).
        common = min(prefix, self._cluster_prefix)
        return version == self._version and (value ^ self._base) >> (self._bits - common) == 0

    def _out_of_range(self, version: int, value: int, prefix: int) -> str:
        return f"cidr {ip_text(version, value)}/{prefix} is out the range of cluster cidr {self._net}"

    def _index_for_ip(self, value: int) -> int:
        # getIndexForIP on the address masked to the node mask.
        masked = value >> self._shift << self._shift
        index = (self._base ^ masked) >> self._shift
        if index >= self._max:
            raise NotInRange(
                f"CIDR: {ip_text(self._version, masked)}/{self._node_mask} is out of the range of CIDR allocator"
            )
        return index

    def _check_index(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self._max:
            raise NotInRange(
                f"index {index} is out of the range of cluster cidr {self._net} "
                f"(expected 0 to {self._max - 1} for /{self._node_mask} blocks)"
            )
        return index

    def _checked_indices(self, indices) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.dtype != np.int64 or idx.ndim != 1 or not idx.flags.c_contiguous:
            idx = np.ascontiguousarray(idx.reshape(-1), dtype=np.int64)
        # One reduction checks both ends: seen as uint64, a negative index is huge.
        if idx.size and int(idx.view(np.uint64).max()) >= self._max:
            lo, hi = int(idx.min()), int(idx.max())
            self._check_index(lo if lo < 0 else hi)
        return idx


__all__ = [
    "CIDRSet",
    "CLUSTER_SUBNET_MAX_DIFF",
    "MAX_SUBNET_MASK",
    "MSG_CLUSTER_MASK_TOO_LONG",
    "MSG_NO_CIDRS_REMAINING",
    "MSG_SUBNET_MASK_INVALID",
    "MSG_SUBNET_TOO_BIG",
]
