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

import functools
import ipaddress

import numpy as np
import pyarrow as pa

from ipam_core.addr import Network, TextCache, as_network, format_values, ip_key, ip_text
from ipam_core.bitmap import ArenaFields, clear_many, new_arena
from ipam_core.errors import AlreadyAllocated, ConfigError, NotInRange, RangeFull
from ipam_core.kernels.arena import ARENA_CURSOR, ARENA_USED, TAKE_FULL, arena_take_ahead
from ipam_core.kernels.fastcall import bind
from ipam_core.kernels.scan import bm_alloc_first, bm_alloc_next_fit_batch, bm_alloc_scan
from ipam_core.kernels.slots import (
    bm_count,
    bm_set_many,
    bm_test,
    bm_test_many,
)
from ipam_core.splitmix import SplitMix64Stream

#: IPv6 ranges are capped at this many host bits (``RangeSize``: "This will
#: keep the size of the bitmap to 64k").
IPV6_MAX_HOST_BITS = 16

STRATEGIES = ("random", "first-fit", "next-fit")

MSG_FULL = "range is full"
MSG_ALLOCATED = "provided IP is already allocated"
MSG_NOT_IN_RANGE = "provided IP is not in the valid range. The range of valid IPs is {}"

#: Single ``allocate_next`` calls in a row before the starts are drawn ahead.
DRAW_AHEAD_AFTER = 32
#: Starts drawn ahead at a time.
DRAW_AHEAD_BLOCK = 4096
_U32 = np.uint64(0xFFFFFFFF)
_THIRTY_TWO = np.uint64(32)


class StartsAhead:
    """``rng.integers(0, n)`` for one call at a time, drawn in blocks from a copy of the generator.

    A call of ``Generator.integers`` costs ~1 us, more than the rest of an
    allocation. For a PCG64 generator :meth:`draw` computes the very values
    that successive ``integers(0, n)`` calls would return, from a copy of
    the generator, and :meth:`settle` moves the real generator to exactly
    the state the calls that were used would have left (``has_uint32`` and
    ``uinteger`` included). Only the owner of the generator may do this:
    the generator is behind until settled.

    Parameters
    ----------
    rng : numpy.random.Generator
        A generator over ``PCG64``.
    n : int
        Exclusive bound, ``1 < n < 2**32``.

    Notes
    -----
    NumPy draws a bounded integer below ``2**32`` with Lemire's method on
    32-bit halves of the 64-bit outputs (low half first; the high half is
    kept in ``has_uint32``/``uinteger`` for the next 32-bit draw): value
    ``u`` gives ``(u * n) >> 32`` unless ``(u * n) mod 2**32 < 2**32 mod
    n``, when it is rejected and the next half is used. The tests compare
    the values and the states with ``integers`` itself.
    """

    __slots__ = ("rng", "n", "_consumed", "_from_state", "_copy")

    def __init__(self, rng: np.random.Generator, n: int):
        self.rng = rng
        self.n = n
        self._consumed = np.zeros(0, dtype=np.int64)
        self._from_state: dict | None = None
        self._copy = np.random.PCG64(0)  # its state is overwritten before every use

    def draw(self, count: int = DRAW_AHEAD_BLOCK) -> list[int]:
        """The values of the next calls of ``integers(0, n)``, without moving the generator.

        Parameters
        ----------
        count : int
            64-bit outputs to draw on the copy (about ``2 * count`` values).

        Returns
        -------
        list of int
            In call order. Call :meth:`settle` with how many were used
            before the generator is used again or another block is drawn.
        """
        return self.draw_starts(count)[1:].tolist()

    def draw_starts(self, count: int = DRAW_AHEAD_BLOCK) -> np.ndarray:
        """:meth:`draw` in the form :func:`~ipam_core.kernels.arena.arena_take_ahead` uses up.

        Parameters
        ----------
        count : int
            64-bit outputs to draw on the copy.

        Returns
        -------
        numpy.ndarray of int64
            ``[1, v1, v2, ...]``: the values of :meth:`draw` after a slot
            holding the position of the next one to use.
        """
        state = self.rng.bit_generator.state
        self._copy.state = state
        raws = self._copy.random_raw(count)
        held = int(state["has_uint32"])
        halves = np.empty(2 * count + held, dtype=np.uint64)  # the 32-bit draws, in order
        if held:
            halves[0] = state["uinteger"]
        halves[held::2] = raws & _U32
        halves[held + 1 :: 2] = raws >> _THIRTY_TWO
        halves *= np.uint64(self.n)
        kept = np.flatnonzero((halves & _U32) >= np.uint64((1 << 32) % self.n))
        self._consumed = kept + 1  # 32-bit draws used up to and including each value
        self._from_state = state
        values = halves[kept] if kept.shape[0] < halves.shape[0] else halves
        starts = np.empty(values.shape[0] + 1, dtype=np.int64)
        starts[0] = 1
        np.right_shift(values, _THIRTY_TWO, out=starts[1:].view(np.uint64))
        return starts

    def settle(self, used: int) -> None:
        """Move the real generator to where ``used`` calls of ``integers`` leave it.

        Parameters
        ----------
        used : int
            How many values of the last :meth:`draw` were used (0 leaves the
            generator as it was).
        """
        state = self._from_state
        self._from_state = None
        if state is None or used == 0:
            return
        fresh = int(self._consumed[used - 1]) - int(state["has_uint32"])  # from new 64-bit outputs
        has, kept = 0, state["uinteger"]
        if fresh > 0:
            self._copy.state = state
            last = int(self._copy.random_raw((fresh + 1) // 2)[-1])
            has, kept = fresh % 2, last >> 32
            state = self._copy.state
        self.rng.bit_generator.state = {
            "bit_generator": state["bit_generator"],
            "state": state["state"],
            "has_uint32": has,
            "uinteger": kept,
        }


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


class PodIPRange(ArenaFields):
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
    seed : int, numpy.random.Generator or SplitMix64Stream, default 0
        Seed of the generator behind ``"random"`` (see :attr:`rng`). A
        :class:`~ipam_core.splitmix.SplitMix64Stream` (the engine's random
        stream) is drawn from like a generator passed in: once per call.
    batch_only : bool, default False
        For a range its owner uses through the batch methods only (the
        migration planner builds tens of thousands): it builds none of the
        per-call methods' state (bound kernels, text maps), which costs more
        than the rest of the range. A per-call method still works and
        builds that state on its first call; from then on the range's
        per-call methods are a little slower than a default range's (see
        Notes). Results are the same either way.

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
    * **Per call or in batches.** :meth:`allocate_next`, :meth:`release`
      and :meth:`allocate` handle one address's text per call: one compiled
      call each, to a kernel bound to the range's arrays
      (:func:`ipam_core.kernels.fastcall.bind`), and the
      texts handed out are remembered both ways
      (:class:`ipam_core.addr.TextCache`), so releasing an address this range
      wrote parses nothing. With an integer ``seed`` the range owns its
      generator: after :data:`DRAW_AHEAD_AFTER` single ``allocate_next`` calls
      in a row it computes the next starts in blocks (:class:`StartsAhead`),
      which the kernel uses up (:func:`~ipam_core.kernels.arena.arena_take_ahead`),
      and brings the generator to the exact state of one
      ``rng.integers(0, max)`` per call whenever it is read (:attr:`rng`) or
      used by a batch call. A generator passed in as ``seed`` (or read
      through :attr:`rng`) may be shared, so it is drawn from once per call.
      :meth:`allocate_next_many`, :meth:`release_offsets` and
      :meth:`addresses` do the same work for whole arrays in one compiled
      pass each.
    * **Batch only.** With ``batch_only=True`` the range is an instance of a
      private subclass whose class attributes build the bound kernels and
      the text maps on first use (as :class:`functools.cached_property`). The
      default class keeps them as plain instance attributes, since a class
      attribute of the same name stops CPython from specialising their
      loads (the per-call path measured 1.13-1.17x slower so), which is
      what a batch-only range's per-call methods pay once they are used.
    """

    def __new__(cls, *args, batch_only: bool = False, **kwargs):
        # No arguments when unpickled: the pickled class is already the right one.
        return super().__new__(_BatchOnlyPodIPRange if batch_only and cls is PodIPRange else cls)

    def __init__(
        self,
        cidr: str | Network,
        strategy: str = "random",
        seed: int | np.random.Generator | SplitMix64Stream = 0,
        *,
        batch_only: bool = False,  # taken by __new__
    ):
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
        given = isinstance(seed, (np.random.Generator, SplitMix64Stream))  # may be shared: drawn once per call
        self._rng = seed if given else np.random.default_rng(seed)
        # Counters live in the arena's header, where the per-call kernels update them.
        self._arena, self._words, self._summary = new_arena(self._max)
        self._make_text_cache()
        self._random = strategy == "random"
        self._fixed_start = -1 if strategy == "next-fit" else 0  # arena_take_one's start without "random"
        owned = not given and type(self._rng.bit_generator) is np.random.PCG64
        self._ahead = StartsAhead(self._rng, self._max) if owned and self._max > 1 else None
        self._starts = _no_starts()  # drawn ahead by self._ahead, used up by arena_take_ahead
        self._singles = 0  # single random allocate_next calls since the generator was last used otherwise
        self._bind_kernels()

    _BOUND = (*ArenaFields._BOUND, "_take_next")

    def _make_text_cache(self) -> None:
        self._text_cache = TextCache(self._max, self._format)
        # The per-call methods use the maps directly (no attribute chain).
        self._texts, self._index_of = self._text_cache.texts, self._text_cache.index_of
        self._remember = self._text_cache.remember

    def _bind_kernels(self) -> None:
        super()._bind_kernels()
        self._use_starts(self._starts)

    def _use_starts(self, starts: np.ndarray) -> None:
        # allocate_next's kernel: from the next start drawn ahead, or from the strategy's fixed start
        self._starts = starts
        if self._random:
            self._take_next = bind(arena_take_ahead, self._arena, starts)
        else:
            self._take_next = functools.partial(self._take_one, self._fixed_start)

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
    def rng(self) -> np.random.Generator | SplitMix64Stream:
        """The generator of random starts: the same seed and the same calls give
        the same addresses.

        Reading it settles draws made ahead and makes the range draw from it
        once per call from then on, since the caller may now use it too.
        """
        self._settle_rng()
        self._ahead = None
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
        try:
            offset = self._index_of.get(ip)
        except TypeError:  # unhashable: ip_key() refuses it with the parser's message
            offset = None
        if offset is not None:
            return offset
        version, value = ip_key(ip)
        if version != self._version:
            return -1
        offset = value - self._base
        if not 0 <= offset < self._max:
            return -1
        if isinstance(ip, str):
            self._remember(offset, ip)  # no parse next time
        return offset

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
        return self._texts[offset] or self._text(offset)

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
        return format_values(self._version, self._base, self._checked_offsets(offsets))

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
        offset = self._take_next()
        if offset < 0:  # full, or no start drawn ahead is left
            offset = self._took_nothing(offset)
        return self._texts[offset] or self._text(offset)

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
        offset = self._take_one(start)
        return self._texts[offset] or self._text(offset)

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
        if not self._set_one(offset):
            raise AlreadyAllocated(MSG_ALLOCATED)

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
        try:
            offset = self._index_of.get(ip)
        except TypeError:
            offset = None
        if offset is None:
            offset = self.offset_of(ip)
            if offset < 0:
                return
        self._clear_one(offset)

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
        arena = self._arena
        m = min(k, self._max - int(arena[ARENA_USED]))
        out = np.empty(m, dtype=np.int64)
        if m == 0:
            return out
        if self._strategy == "random":
            self._settle_rng()
            starts = self._rng.integers(0, self._max, size=m, dtype=np.int64)
            got = int(bm_alloc_scan(self._words, self._summary, self._max, starts, out))
            cursor = (int(out[got - 1]) + 1) % self._max
        elif self._strategy == "next-fit":
            got, cursor = bm_alloc_next_fit_batch(
                self._words, self._summary, self._max, int(arena[ARENA_CURSOR]), m, out
            )
        else:
            got = int(bm_alloc_first(self._words, self._summary, m, out))
            cursor = (int(out[got - 1]) + 1) % self._max
        arena[ARENA_CURSOR] = cursor
        arena[ARENA_USED] += got
        return out if got == m else out[:got]

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
        arena = self._arena
        flipped = clear_many(self._words, self._summary, offs, int(arena[ARENA_USED]), self._max)
        arena[ARENA_USED] -= flipped
        return flipped

    def __repr__(self) -> str:
        return f"PodIPRange({str(self._net)!r}, {self._strategy!r}: {self._used}/{self._max} used)"

    # ------------------------------------------------------------------ helpers
    def _address(self, value: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.IPv4Address(value) if self._version == 4 else ipaddress.IPv6Address(value)

    _used = ArenaFields._count  # the arena's counter of slots in use

    def _format(self, offset: int) -> str:
        return ip_text(self._version, self._base + int(offset))  # int(): a NumPy int under NUMBA_DISABLE_JIT

    def _settle_rng(self) -> None:
        # Before any other use of the generator: bring it to its exact state.
        self._singles = 0
        if self._starts.shape[0] == 1:
            return  # no start drawn ahead, so none to settle: binding the kernel again would change nothing
        self._settle_starts()
        self._use_starts(_no_starts())

    def _settle_starts(self) -> None:
        if self._ahead is not None:
            self._ahead.settle(int(self._starts[0]) - 1)  # how many of the starts were used

    def _took_nothing(self, code: int) -> int:
        # allocate_next when its kernel took nothing (code): full, or ("random") no start drawn ahead is left.
        if code == TAKE_FULL:
            raise RangeFull(MSG_FULL)  # before any draw, as upstream
        self._singles += 1
        if self._ahead is not None and self._singles > DRAW_AHEAD_AFTER:
            self._settle_starts()
            self._use_starts(self._ahead.draw_starts())
            return self._take_next()
        return self._take_one(int(self._rng.integers(0, self._max)))

    def _checked_offsets(self, offsets) -> np.ndarray:
        offs = np.asarray(offsets)
        if offs.dtype != np.int64 or offs.ndim != 1 or not offs.flags.c_contiguous:
            offs = np.ascontiguousarray(offs.reshape(-1), dtype=np.int64)
        # One reduction checks both ends: seen as uint64, a negative offset is huge.
        if offs.size and int(offs.view(np.uint64).max()) >= self._max:
            lo, hi = int(offs.min()), int(offs.max())
            bad = lo if lo < 0 else hi
            raise NotInRange(f"offset {bad} is outside the usable range of {self._net} (0 to {self._max - 1})")
        return offs


class _OnFirstUse:
    """A class attribute that makes per-call state on its first read through an instance.

    ``make(instance)`` sets the instance's attribute of the same name
    (among others), which from then on shadows this one: a non-data
    descriptor, as :class:`functools.cached_property`.
    """

    def __init__(self, make):
        self._make = make

    def __set_name__(self, owner, name: str) -> None:
        self._name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        self._make(instance)
        return instance.__dict__[self._name]


class _BatchOnlyPodIPRange(PodIPRange):
    """A :class:`PodIPRange` built with ``batch_only=True``: per-call state made on first use."""

    def _bind_kernels(self) -> None:
        pass  # the class attributes below bind them on first use

    def _bind_now(self) -> None:
        # every kernel at once, as a default range has them
        ArenaFields._bind_kernels(self)
        PodIPRange._use_starts(self, self._starts)

    def _use_starts(self, starts: np.ndarray) -> None:
        if "_take_next" in self.__dict__:  # bound already: to the new starts
            PodIPRange._use_starts(self, starts)
        else:
            self._starts = starts

    def _make_text_cache(self) -> None:
        pass  # the class attributes below make it on first use

    _take_one = _OnFirstUse(_bind_now)
    _set_one = _OnFirstUse(_bind_now)
    _clear_one = _OnFirstUse(_bind_now)
    _take_next = _OnFirstUse(_bind_now)
    _text_cache = _OnFirstUse(PodIPRange._make_text_cache)
    _texts = _OnFirstUse(PodIPRange._make_text_cache)
    _index_of = _OnFirstUse(PodIPRange._make_text_cache)
    _remember = _OnFirstUse(PodIPRange._make_text_cache)


def _no_starts() -> np.ndarray:
    # arena_take_ahead's starts with none left: allocate_next goes to _took_nothing
    return np.ones(1, dtype=np.int64)


__all__ = [
    "DRAW_AHEAD_AFTER",
    "DRAW_AHEAD_BLOCK",
    "IPV6_MAX_HOST_BITS",
    "MSG_ALLOCATED",
    "MSG_FULL",
    "MSG_NOT_IN_RANGE",
    "PodIPRange",
    "STRATEGIES",
    "StartsAhead",
    "range_size",
]
