"""``Bitmap``: a batch slot allocator over the compiled two-level bitmap kernels.

A :class:`Bitmap` of ``n`` slots hands out offsets ``0 .. n-1``. Every method
is a thin wrapper: it validates its arguments with vectorised NumPy, calls one
kernel from :mod:`ipam_core.kernels` on the whole batch and turns the
kernel's return value into a result or a typed exception
(:mod:`ipam_core.errors`). Failed calls change nothing.

::

    words    [w0][w1] ... [w(nw-1)]   bit i = slot i, 1 = used; pad bits past n stay set
    summary  [s0] ... [s(ns-1)]       bit j = 1 <=> words[j] is full

The summary lets a search skip 64 full words per bit, so finding the free
slots of a 99 % full bitmap does not rescan it. Search orders:

* :meth:`Bitmap.allocate_first` - lowest free slots (Kubernetes'
  ``contiguousScanStrategy``);
* :meth:`Bitmap.allocate_next_fit` - from a cursor, wrapping (``cidr_set.go``
  ``nextCandidate``);
* :meth:`Bitmap.allocate_scan` / :meth:`Bitmap.allocate_random` - from given or
  random start offsets, wrapping (Cilium's ``randomScanStrategy``);
* :meth:`Bitmap.allocate_block` / :meth:`Bitmap.allocate_blocks` - aligned runs
  of ``2**order`` slots (carving CIDRs of several sizes from one pool).
"""

from __future__ import annotations

import operator

import numpy as np

from ipam_core.errors import AlreadyAllocated, ConfigError, NotInRange, RangeFull
from ipam_core.kernels.arena import (
    ARENA_CURSOR,
    ARENA_HEADER,
    ARENA_SIZE,
    ARENA_USED,
    ARENA_WORDS_AT,
    arena_clear_one,
    arena_layout,
    arena_set_one,
    arena_take_one,
)
from ipam_core.kernels.blocks import (
    bm_alloc_block,
    bm_alloc_blocks,
    bm_free_blocks,
    bm_largest_free_block,
    bm_release_block,
    bm_release_blocks,
)
from ipam_core.kernels.fastcall import bind
from ipam_core.kernels.layout import bm_init, bm_sizes
from ipam_core.kernels.scan import (
    bm_alloc_first_from,
    bm_alloc_next_fit_batch,
    bm_alloc_random,
    bm_alloc_scan,
)
from ipam_core.kernels.slots import (
    bm_clear_many,
    bm_clear_many_branchless,
    bm_clear_many_rebuild,
    bm_set_many,
    bm_test_many,
    bm_used_offsets,
)

__all__ = ["ArenaFields", "Bitmap", "MAX_ORDER", "clear_many", "new_arena", "warmup"]

# Block sizes are 2**order slots held in int64: 2**62 is the largest that fits.
MAX_ORDER = 62

# Above this fill, release() uses the branch-free kernel. With random fill f a
# released slot's word is full with probability about f**63 (4 % at 95 %, 53 % at
# 99 %); bm_clear's branch on fullness then mispredicts often enough to cost more
# than the branch-free kernel's extra store (crossover measured between 95 and 97 %).
BRANCHLESS_RELEASE_FILL = 0.95

_EMPTY = np.empty(0, dtype=np.int64)

# --------------------------------------------------------------------------- per-call helpers
# For one slot per Python call, the Numba dispatcher (type checks and unboxing of
# each array, 200-500 ns) costs far more than the work. The allocators' per-call
# methods therefore keep their bitmap and counters in one arena array
# (kernels.arena.arena_layout) and call the arena_* kernels bound to it
# (kernels.fastcall.bind): ~27 ns a call.


def new_arena(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An empty bitmap of ``n`` slots laid out as an arena (:func:`~ipam_core.kernels.arena.arena_layout`).

    Parameters
    ----------
    n : int
        Number of slots (``>= 0``).

    Returns
    -------
    tuple of numpy.ndarray of uint64
        ``(arena, words, summary)``; ``words`` and ``summary`` are views of
        ``arena`` that every ``bm_*`` kernel takes as usual. ``used`` and the
        cursor start at 0.
    """
    length, words_at = arena_layout(n)
    arena = np.zeros(length, dtype=np.uint64)
    arena[ARENA_SIZE] = n
    arena[ARENA_WORDS_AT] = words_at
    words, summary = _arena_views(arena)
    bm_init(words, summary, n)
    return arena, words, summary


def _arena_views(arena: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # (words, summary): views of the arena, where the per-call kernels see the same bits (new arenas, unpickled ones)
    words_at = int(arena[ARENA_WORDS_AT])
    return arena[words_at:], arena[ARENA_HEADER:words_at]


class ArenaFields:
    """The fields an allocator keeps in its arena, as attributes (shared by CIDRSet and PodIPRange).

    The class using it sets ``self._arena`` (from :func:`new_arena`) and
    ``self._text_cache`` (an :class:`ipam_core.addr.TextCache`), then calls
    ``self._bind_kernels()``; it reads ``self._texts``: the cache's list or
    dict of texts formatted so far. Its per-call methods call
    ``self._take_one(start)``, ``self._set_one(slot)`` and
    ``self._clear_one(slot)``: the ``arena_*`` kernels bound to the arena.
    """

    _arena: np.ndarray
    #: Attributes holding bound kernels, which do not pickle: bound again on load.
    _BOUND = ("_take_one", "_set_one", "_clear_one")
    #: Views of the arena: a copy would pickle them as arrays of their own, so they are made again on load.
    _VIEWS = ("_words", "_summary")

    def _bind_kernels(self) -> None:
        arena = self._arena
        self._take_one = bind(arena_take_one, arena)
        self._set_one = bind(arena_set_one, arena)
        self._clear_one = bind(arena_clear_one, arena)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._BOUND and k not in self._VIEWS}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._words, self._summary = _arena_views(self._arena)
        self._bind_kernels()

    @property
    def _count(self) -> int:
        # slots in use: the arena's counter, kept by the per-call kernels
        return int(self._arena[ARENA_USED])

    @_count.setter
    def _count(self, value: int) -> None:
        self._arena[ARENA_USED] = value

    @property
    def _cursor(self) -> int:
        return int(self._arena[ARENA_CURSOR])

    @_cursor.setter
    def _cursor(self, value: int) -> None:
        self._arena[ARENA_CURSOR] = value

    def _text(self, index: int) -> str:
        # A text not formatted yet; the cache may have turned its dict into a list.
        text = self._text_cache.text(index)
        self._texts = self._text_cache.texts
        return text


def clear_many(words: np.ndarray, summary: np.ndarray, offsets: np.ndarray, used: int, size: int) -> int:
    """Free many slots with the batch-release kernel that suits the batch.

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    offsets : numpy.ndarray of int64
        Checked slots (repeats allowed).
    used, size : int
        Slots in use and slots in all, which pick the kernel.

    Returns
    -------
    int
        How many slots were freed.

    Notes
    -----
    All three kernels give the same bitmap: the summary is rebuilt at the
    end for a batch at least as long as the leaf level
    (:func:`~ipam_core.kernels.slots.bm_clear_many_rebuild`), kept
    branch-free above :data:`BRANCHLESS_RELEASE_FILL`
    (:func:`~ipam_core.kernels.slots.bm_clear_many_branchless`), otherwise
    kept per slot (:func:`~ipam_core.kernels.slots.bm_clear_many`).
    """
    if offsets.shape[0] >= words.shape[0]:
        return int(bm_clear_many_rebuild(words, summary, offsets))
    if used > BRANCHLESS_RELEASE_FILL * size:
        return int(bm_clear_many_branchless(words, summary, offsets))
    return int(bm_clear_many(words, summary, offsets))


def _count(value, what: str) -> int:
    """``value`` as a non-negative Python int, or ConfigError naming ``what``."""
    try:
        k = operator.index(value)
    except TypeError:
        raise ConfigError(f"{what} must be an integer, got {value!r}") from None
    if k < 0:
        raise ConfigError(f"{what} must be >= 0, got {k}")
    return k


def _order(value) -> int:
    order = _count(value, "block order")
    if order > MAX_ORDER:
        raise ConfigError(f"block order {order} is too large (expected 0..{MAX_ORDER})")
    return order


class Bitmap:
    """A set of ``n`` slots, each free or used, allocated in batches.

    Parameters
    ----------
    n : int
        Number of slots (``>= 0``; a bitmap of 0 slots is always full).

    Attributes
    ----------
    words : numpy.ndarray of uint64
        Leaf level, one bit per slot (1 = used); pad bits past ``n`` are set.
    summary : numpy.ndarray of uint64
        Bit ``j`` is set when ``words[j]`` is full.
    size : int
        Number of slots ``n``.

    Raises
    ------
    ConfigError
        If ``n`` is negative or not an integer.

    Notes
    -----
    ``used`` is a counter kept in Python from the kernels' return values (they
    report how many bits flipped), never recounted; modify ``words`` only
    through the methods, or the counter goes stale. The kernels are also
    importable on their own from :mod:`ipam_core.kernels` for callers that
    compile their own loops.
    """

    __slots__ = ("words", "summary", "size", "_used", "_cursor")

    def __init__(self, n: int):
        self.size = _count(n, "bitmap size")
        nw, ns = bm_sizes(self.size)
        self.words = np.empty(nw, dtype=np.uint64)
        self.summary = np.empty(ns, dtype=np.uint64)
        bm_init(self.words, self.summary, self.size)
        self._used = 0
        self._cursor = 0

    # ------------------------------------------------------------------ figures
    @property
    def used(self) -> int:
        """Number of used slots."""
        return self._used

    @property
    def free(self) -> int:
        """Number of free slots."""
        return self.size - self._used

    @property
    def cursor(self) -> int:
        """Where the next :meth:`allocate_next_fit` starts scanning.

        It is the slot after the last one next fit took, modulo ``n`` (0 at
        first). Other allocations and releases never move it, as in
        ``cidr_set.go``. Setting it (e.g. to replay a run) takes an offset in
        ``[0, n)``, or 0 when ``n`` is 0.
        """
        return self._cursor

    @cursor.setter
    def cursor(self, value: int) -> None:
        c = _count(value, "cursor")
        if c >= max(self.size, 1):
            raise NotInRange(f"cursor {c} is out of range (expected 0..{max(self.size - 1, 0)})")
        self._cursor = c

    def free_blocks(self, order: int) -> int:
        """Count the aligned, entirely free blocks of ``2**order`` slots.

        Parameters
        ----------
        order : int
            log2 of the block size, ``0 .. MAX_ORDER``.

        Returns
        -------
        int
            How many such blocks exist (``free_blocks(0) == free``).

        Raises
        ------
        ConfigError
            If ``order`` is negative or above :data:`MAX_ORDER`.
        """
        return int(bm_free_blocks(self.words, _order(order)))

    def largest_free_block(self) -> int:
        """Order of the largest aligned free block (the fragmentation figure).

        Returns
        -------
        int
            The largest ``order`` such that an aligned free block of
            ``2**order`` slots exists, or -1 when nothing is free.
        """
        return int(bm_largest_free_block(self.words))

    # ------------------------------------------------------------------ validation
    def _offsets(self, values, noun: str) -> np.ndarray:
        """``values`` as a contiguous int64 array of offsets in ``[0, n)``."""
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise ConfigError(f"{noun}s must be a 1-D array of integers, got shape {arr.shape}")
        if arr.size == 0:
            return _EMPTY
        if arr.dtype.kind not in "iu":
            raise ConfigError(f"{noun}s must be integers, got dtype {arr.dtype}")
        offsets = np.ascontiguousarray(arr, dtype=np.int64)
        # One SIMD reduction checks both ends: seen as uint64, a negative offset is huge.
        if offsets.view(np.uint64).max() >= self.size:
            bad = arr[(arr < 0) | (arr >= self.size)][0]
            raise NotInRange(f"{noun} {int(bad)} is out of range (expected 0..{self.size - 1})")
        return offsets

    def _need(self, k: int, what: str) -> None:
        if k > self.free:
            raise RangeFull(f"cannot allocate {k} {what}: only {self.free} of {self.size} slots are free")

    @staticmethod
    def _check_taken(got: int, k: int) -> None:
        if got != k:
            raise RuntimeError(
                f"kernel took {got} of {k} slots although they were free: "
                "the words were modified outside Bitmap, so its used counter is stale"
            )

    # ------------------------------------------------------------------ allocation
    def allocate_first(self, k: int) -> np.ndarray:
        """Take the ``k`` lowest free slots (first fit).

        Parameters
        ----------
        k : int
            How many slots to take.

        Returns
        -------
        numpy.ndarray of int64
            The slots taken, ascending.

        Raises
        ------
        RangeFull
            If fewer than ``k`` slots are free; nothing is taken.
        ConfigError
            If ``k`` is negative.

        Notes
        -----
        Kubernetes' ``contiguousScanStrategy``
        (``pkg/registry/core/service/allocator/bitmap.go``). Calls
        :func:`~ipam_core.kernels.scan.bm_alloc_first_from` from slot 0:
        same result as ``bm_alloc_first``, faster on nearly full bitmaps.
        """
        k = _count(k, "slot count")
        self._need(k, "slots")
        out = np.empty(k, dtype=np.int64)
        got = int(bm_alloc_first_from(self.words, self.summary, 0, k, out))
        self._used += got
        self._check_taken(got, k)
        return out

    def allocate_next_fit(self, k: int) -> np.ndarray:
        """Take ``k`` free slots scanning forward from :attr:`cursor`, wrapping.

        Parameters
        ----------
        k : int
            How many slots to take.

        Returns
        -------
        numpy.ndarray of int64
            The slots in the order taken. The cursor moves to the slot after
            the last one, modulo ``n``.

        Raises
        ------
        RangeFull
            If fewer than ``k`` slots are free; nothing is taken and the
            cursor does not move.
        ConfigError
            If ``k`` is negative.

        Notes
        -----
        Follows Kubernetes ``pkg/controller/nodeipam/ipam/cidrset/cidr_set.go``
        (``AllocateNext`` and its ``nextCandidate`` rotor): a freed slot is
        reused only once the cursor wraps round to it.
        """
        k = _count(k, "slot count")
        self._need(k, "slots")
        out = np.empty(k, dtype=np.int64)
        got, cursor = bm_alloc_next_fit_batch(
            self.words, self.summary, self.size, self._cursor, k, out
        )
        self._used += int(got)
        self._cursor = int(cursor)
        self._check_taken(int(got), k)
        return out

    def allocate_scan(self, starts) -> np.ndarray:
        """For each start offset, take the first free slot at or after it, wrapping.

        Parameters
        ----------
        starts : array_like of int
            Start offsets in ``[0, n)``, one per slot wanted, used in order
            (each scan sees the slots the earlier ones took).

        Returns
        -------
        numpy.ndarray of int64
            The slots taken, one per start.

        Raises
        ------
        RangeFull
            If fewer slots are free than starts are given; nothing is taken.
        NotInRange
            If a start is outside ``[0, n)``.
        ConfigError
            If ``starts`` is not a 1-D integer array.

        Notes
        -----
        Cilium's pod-IP strategy (``randomScanStrategy`` in
        ``pkg/ipam/service/allocator/bitmap.go``) when the starts are random;
        giving the starts of a recorded upstream run replays it exactly.
        """
        arr = np.asarray(starts)
        self._need(arr.shape[0] if arr.ndim == 1 else 0, "slots")
        arr = self._offsets(arr, "start offset")
        out = np.empty(arr.shape[0], dtype=np.int64)
        got = int(bm_alloc_scan(self.words, self.summary, self.size, arr, out))
        self._used += got
        self._check_taken(got, arr.shape[0])
        return out

    def allocate_random(self, k: int, seed: int) -> np.ndarray:
        """Take ``k`` slots, each by a forward scan from a uniformly random start.

        Parameters
        ----------
        k : int
            How many slots to take.
        seed : int
            Seed of the draws (a 64-bit value).

        Returns
        -------
        numpy.ndarray of int64
            The slots taken.

        Raises
        ------
        RangeFull
            If fewer than ``k`` slots are free (checked before any draw, as
            upstream does); nothing is taken.
        ConfigError
            If ``k`` is negative.

        Notes
        -----
        The starts are ``kernels.bm_random_starts(seed, n)``: SplitMix64
        draws mapped without bias onto ``[0, n)``, drawn inside the compiled
        kernel so it can prefetch where it will scan. The result equals
        ``allocate_scan(starts)`` for those starts. This is upstream's pod-IP
        strategy (``randomScanStrategy``,
        ``pkg/ipam/service/allocator/bitmap.go``) and is *not* uniform over
        free slots: a free slot right after a long used run is picked more
        often.
        """
        k = _count(k, "slot count")
        self._need(k, "slots")
        if k == 0:
            return _EMPTY.copy()
        out = np.empty(k, dtype=np.int64)
        got = int(bm_alloc_random(self.words, self.summary, self.size, np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF), k, out))
        self._used += got
        self._check_taken(got, k)
        return out

    def allocate(self, offsets) -> None:
        """Take the given slots (upstream ``Allocate`` / ``Occupy`` of explicit offsets).

        Parameters
        ----------
        offsets : array_like of int
            Slots in ``[0, n)``, all free and distinct.

        Raises
        ------
        AlreadyAllocated
            If a slot is already used, or appears twice; nothing is taken.
        NotInRange
            If an offset is outside ``[0, n)``; nothing is taken.
        ConfigError
            If ``offsets`` is not a 1-D integer array.

        Notes
        -----
        Duplicates are found without sorting: once no slot is known to be
        used, the kernel flips fewer bits than offsets only if some repeat, and
        clearing them all then restores the bitmap exactly.
        """
        arr = self._offsets(offsets, "offset")
        if arr.shape[0] == 0:
            return
        hits = np.empty(arr.shape[0], dtype=np.bool_)
        if bm_test_many(self.words, arr, hits):
            taken = int(arr[np.argmax(hits)])
            raise AlreadyAllocated(f"offset {taken} is already allocated (expected a free slot)")
        flipped = int(bm_set_many(self.words, self.summary, arr))
        if flipped != arr.shape[0]:
            bm_clear_many(self.words, self.summary, arr)
            values, counts = np.unique(arr, return_counts=True)
            dup = int(values[np.argmax(counts > 1)])
            raise AlreadyAllocated(f"offset {dup} is given more than once (expected distinct offsets)")
        self._used += flipped

    def release(self, offsets) -> int:
        """Free the given slots; releasing a free slot is a no-op.

        Parameters
        ----------
        offsets : array_like of int
            Slots in ``[0, n)``; repeats are allowed.

        Returns
        -------
        int
            How many slots were actually freed (only bits that flip count, as
            ``cidr_set.go`` ``Release`` does).

        Raises
        ------
        NotInRange
            If an offset is outside ``[0, n)``; nothing is freed.
        ConfigError
            If ``offsets`` is not a 1-D integer array.

        Notes
        -----
        Does not move the next-fit cursor (``cidr_set.go``). Keeps the summary
        the way that is fastest for the batch: rebuilt at the end for a batch
        at least as long as the leaf level
        (:func:`~ipam_core.kernels.slots.bm_clear_many_rebuild`), branch-free
        above :data:`BRANCHLESS_RELEASE_FILL`
        (:func:`~ipam_core.kernels.slots.bm_clear_many_branchless`),
        otherwise :func:`~ipam_core.kernels.slots.bm_clear_many`. All give
        the same result.
        """
        arr = self._offsets(offsets, "offset")
        flipped = clear_many(self.words, self.summary, arr, self._used, self.size)
        self._used -= flipped
        return flipped

    # ------------------------------------------------------------------ aligned blocks
    def _no_block(self, order: int, k: int = 1) -> RangeFull:
        what = "an aligned free block" if k == 1 else f"{k} aligned free blocks"
        return RangeFull(
            f"no room for {what} of 2**{order} = {1 << order} slots: "
            f"{self.free} of {self.size} slots are free but not in such blocks "
            f"(largest free block order {self.largest_free_block()})"
        )

    def allocate_block(self, order: int) -> int:
        """Take the lowest free run of ``2**order`` slots aligned to ``2**order``.

        Parameters
        ----------
        order : int
            log2 of the block size, ``0 .. MAX_ORDER``.

        Returns
        -------
        int
            The first slot of the block.

        Raises
        ------
        RangeFull
            If no aligned free block of that size exists. That is
            fragmentation when enough slots are free, and the message says how
            many are. Nothing is taken.
        ConfigError
            If ``order`` is out of range.

        Notes
        -----
        The primitive for carving CIDRs of several sizes out of one pool
        (e.g. /24, /26 and /28 blocks from one /16), lowest address first.
        """
        order = _order(order)
        offset = int(bm_alloc_block(self.words, self.summary, order))
        if offset < 0:
            raise self._no_block(order)
        self._used += 1 << order
        return offset

    def allocate_blocks(self, order: int, k: int) -> np.ndarray:
        """Take the ``k`` lowest aligned free blocks of ``2**order`` slots.

        Same result as ``k`` calls of :meth:`allocate_block`, in one kernel
        pass.

        Parameters
        ----------
        order : int
            log2 of the block size, ``0 .. MAX_ORDER``.
        k : int
            How many blocks to take.

        Returns
        -------
        numpy.ndarray of int64
            First slot of each block, ascending.

        Raises
        ------
        RangeFull
            If fewer than ``k`` such blocks exist; nothing is taken.
        ConfigError
            If ``order`` or ``k`` is out of range.
        """
        order = _order(order)
        k = _count(k, "block count")
        if k << order > self.free:
            raise self._no_block(order, k)
        out = np.empty(k, dtype=np.int64)
        got = int(bm_alloc_blocks(self.words, self.summary, order, k, out))
        if got < k:
            # Every block taken was entirely free before: clearing them restores the bitmap.
            bm_release_blocks(self.words, self.summary, out[:got], order)
            raise self._no_block(order, k)
        self._used += k << order
        return out

    def release_block(self, offset: int, order: int) -> int:
        """Free the ``2**order`` slots starting at ``offset`` (idempotent).

        Parameters
        ----------
        offset : int
            First slot of the block: a multiple of ``2**order``.
        order : int
            log2 of the block size, ``0 .. MAX_ORDER``.

        Returns
        -------
        int
            How many slots were actually freed.

        Raises
        ------
        NotInRange
            If the block is not aligned to ``2**order`` or does not lie
            inside ``[0, n)``.
        ConfigError
            If ``order`` is out of range or ``offset`` is not an integer.
        """
        order = _order(order)
        try:
            offset = operator.index(offset)
        except TypeError:
            raise ConfigError(f"block offset must be an integer, got {offset!r}") from None
        width = 1 << order
        if offset % width:
            raise NotInRange(
                f"block offset {offset} is not aligned to 2**{order} (expected a multiple of {width})"
            )
        if offset < 0 or offset + width > self.size:
            raise NotInRange(
                f"block [{offset}, {offset + width}) is out of range (expected inside 0..{self.size - 1})"
            )
        flipped = int(bm_release_block(self.words, self.summary, offset, order))
        self._used -= flipped
        return flipped

    # ------------------------------------------------------------------ container protocol
    def __contains__(self, offset) -> bool:
        """Whether slot ``offset`` is used (False for offsets outside ``[0, n)``)."""
        try:
            i = operator.index(offset)
        except TypeError:
            return False
        if not 0 <= i < self.size:
            return False
        return bool((int(self.words[i >> 6]) >> (i & 63)) & 1)

    def __len__(self) -> int:
        """Number of used slots."""
        return self._used

    def to_offsets(self) -> np.ndarray:
        """Used slots as a sorted ``int64`` array.

        Returns
        -------
        numpy.ndarray of int64
        """
        out = np.empty(self._used, dtype=np.int64)
        count = int(bm_used_offsets(self.words, self.size, out))
        return out[:count]

    def copy(self, out: Bitmap | None = None) -> Bitmap:
        """An independent copy (words, summary, counter and cursor).

        Parameters
        ----------
        out : Bitmap, optional
            A bitmap of the same size to overwrite instead of allocating a
            new one (resetting a scratch bitmap between runs).

        Returns
        -------
        Bitmap
            ``out`` if given, else a new bitmap.

        Raises
        ------
        ConfigError
            If ``out`` has a different size.
        """
        if out is None:
            out = Bitmap.__new__(Bitmap)
            out.words = self.words.copy()
            out.summary = self.summary.copy()
        elif out is not self:
            if out.size != self.size:
                raise ConfigError(f"cannot copy a bitmap of {self.size} slots into one of {out.size}")
            np.copyto(out.words, self.words)
            np.copyto(out.summary, self.summary)
        out.size = self.size
        out._used = self._used
        out._cursor = self._cursor
        return out

    def __repr__(self) -> str:
        return f"Bitmap(size={self.size}, used={self._used}, free={self.free}, cursor={self._cursor})"

    # ------------------------------------------------------------------ compilation
    @classmethod
    def warmup(cls) -> None:
        """Compile (or load from cache) every kernel the methods call.

        Runs each method once on a tiny bitmap with the argument types real
        calls use, so that timings and first calls do not include compilation.
        """
        bm = cls(130)
        # Blocks of 64 first, while the bitmap is empty.
        bm.release_block(bm.allocate_block(6), 6)
        bm.allocate_blocks(6, 1)
        bm.allocate_blocks(1, 2)
        bm.release_block(bm.allocate_block(2), 2)
        bm.allocate_first(3)
        bm.allocate_next_fit(3)
        bm.allocate_scan(np.array([0, 129], dtype=np.int64))
        bm.allocate_random(2, 0)
        bm.allocate(np.array([128], dtype=np.int64))
        bm.release(np.array([0, 128], dtype=np.int64))
        tight = cls(2)
        tight.allocate(np.array([0, 1], dtype=np.int64))
        tight.release(np.array([1], dtype=np.int64))  # a full bitmap: the branch-free release
        bm.free_blocks(3)
        bm.largest_free_block()
        bm.to_offsets()
        pairs = cls(64)
        pairs.allocate(np.array([1, 2], dtype=np.int64))
        try:
            pairs.allocate_blocks(1, 31)  # only 30 free pairs: compiles the rollback
        except RangeFull:
            pass


warmup = Bitmap.warmup
