"""Given slots: set, clear and test one, many or a range; count and list the used ones.

The bitmap layout is described in :mod:`ipam_core.kernels.layout`.
"""

from __future__ import annotations

import numpy as np

from ipam_core.kernels._jit import FULL, ONE, ZERO, kjit
from ipam_core.kernels.bits import ctz64, popcount64, prefetch_word

# Releases prefetch the word of the offset this many places ahead: the loads of a
# random-order batch are independent, but without the hint the stores back up behind
# the misses (2**24 slots, 50 % fill: 2.2 -> 1.7 ns per slot; 99 %, branch-free: 3.1 -> 2.2).
_RELEASE_PREFETCH = 32

# How a batch release keeps the summary level (the bm_clear_many* kernels).
_CLEAR_BRANCHY = 0
_CLEAR_BRANCHLESS = 1
_CLEAR_LEAVES = 2


@kjit(inline=True)
def bm_test(words, i):
    """Whether slot ``i`` is used.

    Parameters
    ----------
    words : numpy.ndarray of uint64
        Leaf level.
    i : int
        Slot offset.

    Returns
    -------
    bool
    """
    return (words[i >> 6] >> np.uint64(i & 63)) & ONE == ONE


@kjit(inline=True)
def bm_set(words, summary, i):
    """Mark slot ``i`` used.

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    i : int
        Slot offset.

    Returns
    -------
    int
        1 if the bit flipped, 0 if it was already set.
    """
    # Branch-free on the bit itself: an early return here costs ~8x on
    # random-order batches because it serialises the loads.
    j = i >> 6
    b = np.uint64(i & 63)
    w = words[j]
    flipped = ((~w) >> b) & ONE
    w |= ONE << b
    words[j] = w
    if w == FULL:
        summary[j >> 6] |= ONE << np.uint64(j & 63)
    return np.int64(flipped)


@kjit(inline=True)
def bm_clear(words, summary, i):
    """Mark slot ``i`` free.

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    i : int
        Slot offset.

    Returns
    -------
    int
        1 if the bit flipped, 0 if it was already clear.
    """
    j = i >> 6
    b = np.uint64(i & 63)
    w = words[j]
    if w == FULL:
        summary[j >> 6] &= ~(ONE << np.uint64(j & 63))
    words[j] = w & ~(ONE << b)
    return np.int64((w >> b) & ONE)


@kjit
def bm_test_many(words, offsets, out):
    """Write into ``out`` whether each offset is used.

    Parameters
    ----------
    words : numpy.ndarray of uint64
        Leaf level.
    offsets : numpy.ndarray of int64
        Slot offsets, each in range.
    out : numpy.ndarray of bool
        Output, same length as ``offsets``.

    Returns
    -------
    int
        How many of the offsets are used.
    """
    used = 0
    for k in range(offsets.shape[0]):
        hit = bm_test(words, offsets[k])
        out[k] = hit
        used += hit
    return used


@kjit
def bm_set_many(words, summary, offsets):
    """Mark every offset used.

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    offsets : numpy.ndarray of int64
        Slot offsets, each in range.

    Returns
    -------
    int
        How many bits flipped.
    """
    flipped = 0
    for k in range(offsets.shape[0]):
        flipped += bm_set(words, summary, offsets[k])
    return flipped


@kjit
def bm_clear_many(words, summary, offsets):
    """Mark every offset free (idempotent).

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    offsets : numpy.ndarray of int64
        Slot offsets, each in range.

    Returns
    -------
    int
        How many bits flipped.
    """
    return _clear_run(words, summary, offsets, _CLEAR_BRANCHY)


@kjit
def bm_clear_many_branchless(words, summary, offsets):
    """Mark every offset free (idempotent), without branching on word fullness.

    Same result as :func:`bm_clear_many`. A word with a bit just cleared
    cannot be full, so the summary bit of every touched word is cleared
    unconditionally instead of only when the word was full. That costs one
    more store per slot but no branch: when about half the touched words are
    full (random fill near 99 %) the branch in :func:`bm_clear` mispredicts
    and serialises the random loads (measured at 2**24 slots, both
    prefetching: 2.2 ns per slot here against 6.4 ns; at 90 % fill or less,
    2.2 against 1.7).

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    offsets : numpy.ndarray of int64
        Slot offsets, each in range.

    Returns
    -------
    int
        How many bits flipped.
    """
    return _clear_run(words, summary, offsets, _CLEAR_BRANCHLESS)


@kjit
def bm_clear_many_rebuild(words, summary, offsets):
    """Mark every offset free (idempotent), then rebuild the whole summary level.

    Same result as :func:`bm_clear_many`, for batches at least as long as
    the leaf level (``offsets.size >= words.size``): the rebuild then costs
    at most one sequential word read per offset, and the clearing loop
    touches no summary word at all. With few summary words (16 at 2**16
    slots) consecutive releases keep hitting the same one, and its
    read-modify-write chains them through store forwarding (measured at
    2**16 slots: 0.75 ns per slot here against 1.0-1.6 ns).

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap (pad bits set, as :func:`bm_init` leaves them).
    offsets : numpy.ndarray of int64
        Slot offsets, each in range.

    Returns
    -------
    int
        How many bits flipped.
    """
    flipped = _clear_run(words, summary, offsets, _CLEAR_LEAVES)
    _rebuild_summary(words, summary)
    return flipped


@kjit(inline=True)
def _clear_run(words, summary, offsets, how):
    """Clear every offset, keeping the summary as ``how`` says; return how many bits flipped.

    ``how`` is :data:`_CLEAR_BRANCHY` (as :func:`bm_clear`),
    :data:`_CLEAR_BRANCHLESS` (every touched word's summary bit cleared) or
    :data:`_CLEAR_LEAVES` (summary left stale, for :func:`_rebuild_summary`).
    """
    flipped = 0
    n = offsets.shape[0]
    for k in range(n):
        # _CLEAR_LEAVES serves bitmaps no longer than the batch, which sit in cache: prefetching is overhead
        if how != _CLEAR_LEAVES and k + _RELEASE_PREFETCH < n:
            prefetch_word(words, offsets[k + _RELEASE_PREFETCH] >> 6)
        i = offsets[k]
        if how == _CLEAR_BRANCHY:
            flipped += bm_clear(words, summary, i)
            continue
        j = i >> 6
        b = np.uint64(i & 63)
        w = words[j]
        if how == _CLEAR_BRANCHLESS:
            summary[j >> 6] &= ~(ONE << np.uint64(j & 63))
        words[j] = w & ~(ONE << b)
        flipped += np.int64((w >> b) & ONE)
    return flipped


@kjit(inline=True)
def _rebuild_summary(words, summary):
    """Recompute every summary bit from the leaf words."""
    nw = words.shape[0]
    for s in range(summary.shape[0]):
        bits = ZERO
        for t in range(64):
            j = (s << 6) + t
            full = True if j >= nw else words[j] == FULL  # pad bits past the last word stay set
            bits |= np.uint64(full) << np.uint64(t)
        summary[s] = bits


@kjit(inline=True)
def _range_mask(lo_bit, hi_bit):
    # bits [lo_bit, hi_bit) of one word, 0 <= lo_bit < hi_bit <= 64
    width = hi_bit - lo_bit
    if width == 64:
        return FULL
    return ((ONE << np.uint64(width)) - ONE) << np.uint64(lo_bit)


@kjit
def bm_set_range(words, summary, lo, hi):
    """Mark slots ``[lo, hi)`` used.

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    lo, hi : int
        Half-open slot range inside the bitmap.

    Returns
    -------
    int
        How many bits flipped (already-used slots are not counted, as
        ``cidr_set.go`` ``Occupy`` counts only changed bits).
    """
    flipped = 0
    i = lo
    while i < hi:
        j = i >> 6
        end = min(hi, (j + 1) << 6)
        m = _range_mask(i & 63, end - (j << 6))
        w = words[j]
        flipped += popcount64(m & ~w)
        w |= m
        words[j] = w
        if w == FULL:
            summary[j >> 6] |= ONE << np.uint64(j & 63)
        i = end
    return flipped


@kjit
def bm_clear_range(words, summary, lo, hi):
    """Mark slots ``[lo, hi)`` free.

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    lo, hi : int
        Half-open slot range inside the usable part of the bitmap.

    Returns
    -------
    int
        How many bits flipped.
    """
    flipped = 0
    i = lo
    while i < hi:
        j = i >> 6
        end = min(hi, (j + 1) << 6)
        m = _range_mask(i & 63, end - (j << 6))
        w = words[j]
        flipped += popcount64(m & w)
        if w == FULL:
            summary[j >> 6] &= ~(ONE << np.uint64(j & 63))
        words[j] = w & ~m
        i = end
    return flipped


@kjit
def bm_count(words, n):
    """Number of used slots (pad bits not counted).

    Parameters
    ----------
    words : numpy.ndarray of uint64
        Leaf level.
    n : int
        Number of usable slots.

    Returns
    -------
    int
        Set bits among the first ``n``.
    """
    total = 0
    for j in range(words.shape[0]):
        total += popcount64(words[j])
    return total - (words.shape[0] * 64 - n)


@kjit
def bm_used_offsets(words, n, out):
    """Write the used slots into ``out``, ascending (pad bits excluded).

    Parameters
    ----------
    words : numpy.ndarray of uint64
        Leaf level.
    n : int
        Number of usable slots.
    out : numpy.ndarray of int64
        Receives the offsets; writing stops when it is full.

    Returns
    -------
    int
        How many offsets were written.
    """
    nw = words.shape[0]
    cap = out.shape[0]
    count = 0
    valid_last = n - 64 * (nw - 1)
    for j in range(nw):
        w = words[j]
        if j == nw - 1 and valid_last < 64:
            # keep only the usable bits of the last word
            if valid_last > 0:
                w &= (ONE << np.uint64(valid_last)) - ONE
            else:
                w = ZERO
        base = j << 6
        while w != ZERO:
            if count >= cap:
                return count
            out[count] = base + ctz64(w)
            count += 1
            w &= w - ONE
    return count
