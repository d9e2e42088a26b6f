"""Per-node pod IP allocator: one bit per usable address of a pod CIDR.

Follows cilium ``pkg/ipam/service/ipallocator/allocator.go`` (``Range``)
over ``pkg/ipam/service/allocator/bitmap.go`` (``AllocationBitmap`` with
``randomScanStrategy``), the allocator behind Cilium's ``kubernetes``,
``cluster-pool`` and ``multi-pool`` agents, in its newest form::

    10.0.0.0/24   (h = 8 host bits: size 2**8 = 256, max = 254)

    10.0.0.0    10.0.0.1   10.0.0.2   ...   10.0.0.254     10.0.0.255
    network     offset 0   offset 1   ...   offset 253     last
    (excluded)  = base                      = base+max-1   (excluded)

    fd00::/64     (IPv6 is capped at a 2**16 window: max = 65,534)
    fd00::        fd00::1 ... fd00::fffe   fd00::ffff ... fd00::ffff:ffff:ffff:ffff
    (excluded)    offsets 0 .. 65533       never handed out, "not in the valid range"

    10.0.0.0/31   (2 addresses or fewer: nothing excluded, base = network)
    10.0.0.0 = offset 0, 10.0.0.1 = offset 1
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa

from ipam_core.addr import Network, as_network, format_addresses, ip_key, ip_text
from ipam_core.errors import AlreadyAllocated, ConfigError, NotInRange, RangeFull
from ipam_core.kernels.bitmap import (
    bm_alloc_first,
    bm_alloc_next_fit,
    bm_alloc_scan,
    bm_clear,
    bm_clear_many,
    bm_count,
    bm_init,
    bm_set_many,
    bm_sizes,
    bm_test,
    bm_test_many,
)

#: IPv6 ranges are capped at this many host bits (``RangeSize``: "This will
#: keep the size of the bitmap to 64k").
IPV6_MAX_HOST_BITS = 16

STRATEGIES = ("random", "first-fit", "next-fit")

MSG_FULL = "range is full"
MSG_ALLOCATED = "provided IP is already allocated"
MSG_NOT_IN_RANGE = "provided IP is not in the valid range. The range of valid IPs is {}"


def range_size(network: Network) -> int:
    """Addresses a pod CIDR spans for the allocator (``RangeSize``).

    Parameters
    ----------
    network : ipaddress network
        The pod CIDR.

    Returns
    -------
    int
        ``2**h`` for ``h`` host bits, capped at ``2**16`` for IPv6; 0 for
        IPv4 with ``h >= 31`` or IPv6 with ``h >= 127`` (upstream's guard
        against huge ranges, which also zeroes /0 and /1).
    """
    h = network.max_prefixlen - network.prefixlen
    if (network.version == 4 and h >= 31) or (network.version == 6 and h >= 127):
        return 0
    if network.version == 6 and h >= IPV6_MAX_HOST_BITS:
        return 1 << IPV6_MAX_HOST_BITS
    return 1 << h


class PodIPRange:
    """Cilium's per-node pod IP allocator over a compiled bitmap.

    Parameters
    ----------
    cidr : str or ipaddress network
        The node's pod CIDR, e.g. ``"10.244.3.0/24"``.
    strategy : {"random", "first-fit", "next-fit"}
        Where :meth:`allocate_next` starts its scan. ``"random"`` is
        upstream's ``randomScanStrategy``: a uniform start in ``[0, max)``,
        then the first free offset scanning forward with wrap-around.
        ``"first-fit"`` always starts at 0 (upstream's
        ``contiguousScanStrategy``: lowest free first). ``"next-fit"`` starts
        after the last address handed out by ``allocate_next*``, wrapping
        (the host-local CNI plugin's round-robin habit).
    seed : int or numpy.random.Generator, default 0
        Seed of the generator behind ``"random"`` (see :attr:`rng`).

    Raises
    ------
    CIDRError
        The CIDR is malformed or has host bits set.
    ConfigError
        Unknown strategy.

    Notes
    -----
    * **Usable range**: ``base + offset`` for ``offset`` in ``[0, max)``. With
      more than 2 addresses, ``base = network + 1`` and ``max = size - 2``
      (network and last address excluded: a /24 has 254, a /28 has 14);
      ``size`` is capped at 65,536 for IPv6, so a /64 hands out
      ``prefix::1 .. prefix::fffe``. A /31 (/127) has 2 usable addresses and a
      /32 (/128) has 1, both starting at the network address (newest
      upstream; older releases gave 0). IPv4 /0-/1 and IPv6 /0-/1 have 0
      (upstream's ``RangeSize`` guard).
    * ``allocate_next`` raises ``range is full`` when ``used == max``,
      checked *before* any random draw: a full range consumes nothing from
      the generator. Otherwise it draws ``start = rng.integers(0, max)``. The
      scan is not uniform over free slots: a free slot after a long used run
      is chosen more often, as upstream.
    * Upstream's generator is unseeded, so only :meth:`allocate_next_with_start`
      with recorded starts replays an upstream run line for line; capacity,
      excluded addresses, errors, counts and the full condition match for
      any seed.
    * Upstream computes an address's offset with ``big.Int.Int64()``, which
      wraps for IPv6 CIDRs shorter than /64 (an address ``2**64`` past a valid
      one aliases it). Here every address outside the window is simply not
      in the valid range.
    """

    def __init__(self, cidr: str | Network, strategy: str = "random", seed: int | np.random.Generator = 0):
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
        net = as_network(cidr)
        size = range_size(net)
        self._net = net
        self._version = net.version
        self._strategy = strategy
        self._first = 0 if 0 < size <= 2 else 1  # offset of base from the network address
        self._max = size - 2 if size > 2 else size
        self._base = int(net.network_address) + self._first
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        nw, ns = bm_sizes(self._max)
        self._words = np.empty(nw, dtype=np.uint64)
        self._summary = np.empty(ns, dtype=np.uint64)
        bm_init(self._words, self._summary, self._max)
        self._used = 0
        self._cursor = 0
        self._one = np.empty(1, dtype=np.int64)
        self._start = np.empty(1, dtype=np.int64)

    # ------------------------------------------------------------------ state
    @property
    def cidr(self) -> Network:
        """The pod CIDR."""
        return self._net

    @property
    def strategy(self) -> str:
        """The scan strategy of :meth:`allocate_next`."""
        return self._strategy

    @property
    def capacity(self) -> int:
        """Usable addresses, upstream's ``max``."""
        return self._max

    @property
    def used(self) -> int:
        """Addresses in use (``Used``)."""
        return self._used

    @property
    def free(self) -> int:
        """Addresses free, ``max - used`` (``Free``)."""
        return self._max - self._used

    @property
    def is_full(self) -> bool:
        """Whether every usable address is in use."""
        return self._used >= self._max

    @property
    def base(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The address of offset 0."""
        return self._address(self._base)

    @property
    def rng(self) -> np.random.Generator:
        """The generator of random starts: the same seed and the same calls give
        the same addresses."""
        return self._rng

    @property
    def cursor(self) -> int:
        """Offset after the last one taken by ``allocate_next*`` (``"next-fit"`` start)."""
        return self._cursor

    @property
    def words(self) -> np.ndarray:
        """The bitmap's leaf words (live view; bit ``k`` = offset ``k`` in use)."""
        return self._words

    @property
    def summary(self) -> np.ndarray:
        """The bitmap's summary words (live view)."""
        return self._summary

    def recount(self) -> int:
        """Recompute :attr:`used` from the bitmap after outside kernel calls.

        A compiled caller may run its own loop on :attr:`words` and
        :attr:`summary` (the engine and the benchmarks do); this brings the
        counter back in line.

        Returns
        -------
        int
            The new count.
        """
        self._used = int(bm_count(self._words, self._max))
        return self._used

    def allocated_offsets(self) -> np.ndarray:
        """Offsets in use, ascending.

        Returns
        -------
        numpy.ndarray of int64
        """
        bits = np.unpackbits(self._words.view(np.uint8), bitorder="little")[: self._max]
        return np.flatnonzero(bits).astype(np.int64)

    # ------------------------------------------------------------------ addresses
    def offset_of(self, ip) -> int:
        """Offset of an address in the usable range, or -1 (upstream ``contains``).

        Parameters
        ----------
        ip : str or ipaddress address
            The address.

        Returns
        -------
        int
            ``ip - base`` when ``0 <= ip - base < max`` and ``ip`` is in the
            CIDR; -1 otherwise (other family, network, last, outside).

        Raises
        ------
        CIDRError
            Malformed address text.
        """
        version, value = ip_key(ip)
        if version != self._version:
            return -1
        offset = value - self._base
        return offset if 0 <= offset < self._max else -1

    def address_of(self, offset: int) -> str:
        """Text of ``base + offset``.

        Parameters
        ----------
        offset : int
            ``0 <= offset < capacity``.

        Returns
        -------
        str

        Raises
        ------
        NotInRange
            The offset is outside the usable range.
        """
        offset = int(offset)
        if not 0 <= offset < self._max:
            raise NotInRange(f"offset {offset} is outside the usable range of {self._net} (0 to {self._max - 1})")
        return ip_text(self._version, self._base + offset)

    def addresses(self, offsets) -> pa.Array:
        """Text of ``base + offset`` for many offsets, in one compiled pass.

        Parameters
        ----------
        offsets : array_like of int
            Offsets in ``[0, capacity)``.

        Returns
        -------
        pyarrow.StringArray

        Raises
        ------
        NotInRange
            An offset is outside the usable range.
        """
        offs = self._checked_offsets(offsets)
        return format_addresses(self._net, offs + self._first)

    # ------------------------------------------------------------------ single operations
    def allocate_next(self) -> str:
        """Take a free address by the configured strategy (``AllocateNext``).

        Returns
        -------
        str

        Raises
        ------
        RangeFull
            ``range is full`` (checked before drawing a start).
        """
        if self._used >= self._max:
            raise RangeFull(MSG_FULL)
        if self._strategy == "random":
            start = int(self._rng.integers(0, self._max))
        elif self._strategy == "next-fit":
            start = self._cursor
        else:
            start = 0
        return ip_text(self._version, self._base + self._take_from(start))

    def allocate_next_with_start(self, start: int) -> str:
        """Take the first free address scanning from offset ``start`` (wrapping).

        Replays an upstream ``randomScanStrategy`` run whose ``rand.IntN(max)``
        draws were recorded.

        Parameters
        ----------
        start : int
            ``0 <= start < capacity``.

        Returns
        -------
        str

        Raises
        ------
        RangeFull
            ``range is full`` (checked before the start).
        ConfigError
            ``start`` is outside ``[0, capacity)``.
        """
        if self._used >= self._max:
            raise RangeFull(MSG_FULL)
        start = int(start)
        if not 0 <= start < self._max:
            raise ConfigError(f"start {start} is outside 0..{self._max - 1} for {self._net}")
        return ip_text(self._version, self._base + self._take_from(start))

    def allocate(self, ip) -> None:
        """Reserve one given address (``Allocate``).

        Parameters
        ----------
        ip : str or ipaddress address
            The address.

        Raises
        ------
        CIDRError
            Malformed address text.
        NotInRange
            ``provided IP is not in the valid range. The range of valid IPs is
            <cidr>`` (network, last, outside the window, other family).
        AlreadyAllocated
            ``provided IP is already allocated``.
        """
        offset = self.offset_of(ip)
        if offset < 0:
            raise NotInRange(MSG_NOT_IN_RANGE.format(self._net))
        self._one[0] = offset
        if bm_set_many(self._words, self._summary, self._one) == 0:
            raise AlreadyAllocated(MSG_ALLOCATED)
        self._used += 1

    def release(self, ip) -> None:
        """Give an address back (``Release``).

        A silent no-op for a free address or one outside the usable range.

        Parameters
        ----------
        ip : str or ipaddress address
            The address.

        Raises
        ------
        CIDRError
            Malformed address text (there is no address to release).
        """
        offset = self.offset_of(ip)
        if offset >= 0:
            self._used -= int(bm_clear(self._words, self._summary, offset))

    def has(self, ip) -> bool:
        """Whether an address is allocated (``Has``); False outside the range.

        Parameters
        ----------
        ip : str or ipaddress address
            The address.

        Returns
        -------
        bool
        """
        offset = self.offset_of(ip)
        return offset >= 0 and bool(bm_test(self._words, offset))

    # ------------------------------------------------------------------ batch operations
    def allocate_next_many(self, k: int) -> np.ndarray:
        """Take up to ``k`` addresses by the configured strategy.

        Parameters
        ----------
        k : int
            How many to take.

        Returns
        -------
        numpy.ndarray of int64
            Offsets in the order taken; shorter than ``k`` when the range
            filled up (no exception). ``"random"`` draws exactly as many
            starts as addresses it takes, in one ``rng.integers(0, max,
            size=m)`` call, so a full range draws nothing.
        """
        k = int(k)
        if k < 0:
            raise ConfigError(f"count {k} must be >= 0")
        m = min(k, self._max - self._used)
        out = np.empty(m, dtype=np.int64)
        if m == 0:
            return out
        if self._strategy == "random":
            starts = self._rng.integers(0, self._max, size=m, dtype=np.int64)
            got = int(bm_alloc_scan(self._words, self._summary, self._max, starts, out))
            self._cursor = (int(out[got - 1]) + 1) % self._max
        elif self._strategy == "next-fit":
            got, cursor = bm_alloc_next_fit(self._words, self._summary, self._max, self._cursor, m, out)
            got, self._cursor = int(got), int(cursor)
        else:
            got = int(bm_alloc_first(self._words, self._summary, m, out))
            self._cursor = (int(out[got - 1]) + 1) % self._max
        self._used += got
        return out[:got]

    def allocate_next_with_starts(self, starts) -> np.ndarray:
        """Batch :meth:`allocate_next_with_start`: one address per recorded start.

        Parameters
        ----------
        starts : array_like of int
            Start offsets, each in ``[0, capacity)``.

        Returns
        -------
        numpy.ndarray of int64
            Offsets taken; shorter than ``starts`` when the range filled up.

        Raises
        ------
        ConfigError
            A start is outside ``[0, capacity)`` (nothing is taken).
        """
        st = np.ascontiguousarray(np.asarray(starts).reshape(-1), dtype=np.int64)
        if st.size and (int(st.min()) < 0 or int(st.max()) >= self._max):
            bad = int(st.min()) if int(st.min()) < 0 else int(st.max())
            raise ConfigError(f"start {bad} is outside 0..{self._max - 1} for {self._net}")
        out = np.empty(st.shape[0], dtype=np.int64)
        got = int(bm_alloc_scan(self._words, self._summary, self._max, st, out))
        if got:
            self._cursor = (int(out[got - 1]) + 1) % self._max
        self._used += got
        return out[:got]

    def allocate_offsets(self, offsets) -> int:
        """Reserve many given offsets, all or nothing (batch :meth:`allocate`).

        Parameters
        ----------
        offsets : array_like of int
            Offsets in ``[0, capacity)``, all distinct and free.

        Returns
        -------
        int
            How many were reserved (``len(offsets)``).

        Raises
        ------
        NotInRange
            An offset is outside the usable range.
        AlreadyAllocated
            An offset is in use or repeated (nothing is changed).
        """
        offs = self._checked_offsets(offsets)
        if offs.size == 0:
            return 0
        hit = np.empty(offs.shape[0], dtype=np.bool_)
        if bm_test_many(self._words, offs, hit) or np.unique(offs).shape[0] != offs.shape[0]:
            raise AlreadyAllocated(MSG_ALLOCATED)
        flipped = int(bm_set_many(self._words, self._summary, offs))
        self._used += flipped
        return flipped

    def release_offsets(self, offsets) -> int:
        """Free many offsets (batch :meth:`release`; free ones are skipped).

        Parameters
        ----------
        offsets : array_like of int
            Offsets in ``[0, capacity)``.

        Returns
        -------
        int
            How many changed from used to free.

        Raises
        ------
        NotInRange
            An offset is outside the usable range (nothing is changed).
        """
        offs = self._checked_offsets(offsets)
        flipped = int(bm_clear_many(self._words, self._summary, offs))
        self._used -= flipped
        return flipped

    def __repr__(self) -> str:
        return f"PodIPRange({str(self._net)!r}, {self._strategy!r}: {self._used}/{self._max} used)"

    # ------------------------------------------------------------------ helpers
    def _address(self, value: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.IPv4Address(value) if self._version == 4 else ipaddress.IPv6Address(value)

    def _take_from(self, start: int) -> int:
        # Caller checked the range is not full, so the scan always finds one.
        self._start[0] = start
        bm_alloc_scan(self._words, self._summary, self._max, self._start, self._one)
        offset = int(self._one[0])
        self._used += 1
        self._cursor = (offset + 1) % self._max
        return offset

    def _checked_offsets(self, offsets) -> np.ndarray:
        offs = np.ascontiguousarray(np.asarray(offsets).reshape(-1), dtype=np.int64)
        if offs.size:
            lo, hi = int(offs.min()), int(offs.max())
            if lo < 0 or hi >= self._max:
                bad = lo if lo < 0 else hi
                raise NotInRange(f"offset {bad} is outside the usable range of {self._net} (0 to {self._max - 1})")
        return offs


__all__ = ["IPV6_MAX_HOST_BITS", "MSG_ALLOCATED", "MSG_FULL", "MSG_NOT_IN_RANGE", "PodIPRange", "STRATEGIES", "range_size"]
