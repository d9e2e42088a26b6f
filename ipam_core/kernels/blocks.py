"""Aligned blocks of ``2**order`` slots: take, release, count, and the largest free one.

Blocks are how CIDRs of several sizes are carved from one pool (a /24, /26
and /28 from one /16) and how AWS /28 prefixes are delegated. The bitmap
layout is described in :mod:`ipam_core.kernels.layout`.
"""

from __future__ import annotations

import numpy as np

from ipam_core.kernels._jit import FULL, ONE, ZERO, kjit
from ipam_core.kernels.bits import ctz64, popcount64
from ipam_core.kernels.slots import _range_mask, bm_clear_range, bm_set

# Masks with one bit at the start of every aligned group of 2**order bits.
_GROUP_STARTS = np.array(
    [
        0xFFFFFFFFFFFFFFFF,
        0x5555555555555555,
        0x1111111111111111,
        0x0101010101010101,
        0x0001000100010001,
        0x0000000100000001,
    ],
    dtype=np.uint64,
)


@kjit(inline=True)
def _group_free_bits(w, order):
    # One bit at the start of every aligned group of 2**order free bits of w.
    f = w
    shift = 1
    width = 1 << order
    while shift < width:
        f |= f >> np.uint64(shift)
        shift <<= 1
    return ~f & _GROUP_STARTS[order]


@kjit(inline=True)
def _take_first_group(words, summary, j, starts, width_mask):
    # take the group at the lowest start bit of word j; returns its first slot
    b = ctz64(starts)
    w = words[j] | (width_mask << np.uint64(b))
    words[j] = w
    if w == FULL:
        summary[j >> 6] |= ONE << np.uint64(j & 63)
    return (j << 6) + b


@kjit
def bm_alloc_block(words, summary, order):
    """Take the lowest free run of ``2**order`` slots aligned to ``2**order``.

    This is the primitive for carving CIDRs of several sizes out of one pool
    (a /24, /26 and /28 from one /16) and for AWS /28 prefix delegation.

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    order : int
        log2 of the block size.

    Returns
    -------
    int
        Offset of the block, or -1 when no aligned free block of that size
        exists (even if enough free slots do: fragmentation).
    """
    nw = words.shape[0]
    if order < 6:
        width_mask = (ONE << np.uint64(1 << order)) - ONE
        for s in range(summary.shape[0]):
            sw = summary[s]
            while sw != FULL:
                jj = ctz64(~sw)
                sw |= ONE << np.uint64(jj)
                j = (s << 6) + jj
                starts = _group_free_bits(words[j], order)
                if starts != ZERO:
                    return _take_first_group(words, summary, j, starts, width_mask)
        return -1
    group = 1 << (order - 6)
    j = 0
    while j + group <= nw:
        clear = True
        for t in range(j, j + group):
            if words[t] != ZERO:
                clear = False
                break
        if clear:
            for t in range(j, j + group):
                words[t] = FULL
                summary[t >> 6] |= ONE << np.uint64(t & 63)
            return j << 6
        j += group
    return -1


@kjit
def bm_alloc_blocks(words, summary, order, k, out):
    """Take the ``k`` lowest free runs of ``2**order`` slots aligned to ``2**order``.

    Gives the same blocks, in the same order, as ``k`` calls of
    :func:`bm_alloc_block`, but in one pass: taking a block only sets bits, so
    no block below the last one taken can become free during the batch.

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    order : int
        log2 of the block size.
    k : int
        How many blocks to take.
    out : numpy.ndarray of int64
        Receives the first slot of each block taken, ascending; length ``>= k``.

    Returns
    -------
    int
        How many blocks were taken (``< k`` means no aligned free block of
        that size is left, even if enough free slots are: fragmentation).
    """
    got = 0
    if order < 6:
        width_mask = (ONE << np.uint64(1 << order)) - ONE
        for s in range(summary.shape[0]):
            if got >= k:
                break
            visited = summary[s]
            while visited != FULL and got < k:
                jj = ctz64(~visited)
                visited |= ONE << np.uint64(jj)
                j = (s << 6) + jj
                w = words[j]
                starts = _group_free_bits(w, order)
                while starts != ZERO and got < k:
                    b = ctz64(starts)
                    w |= width_mask << np.uint64(b)
                    out[got] = (j << 6) + b
                    got += 1
                    starts &= starts - ONE
                words[j] = w
                if w == FULL:
                    summary[s] |= ONE << np.uint64(jj)
        return got
    nw = words.shape[0]
    group = 1 << (order - 6)
    j = 0
    while j + group <= nw and got < k:
        clear = True
        for t in range(j, j + group):
            if words[t] != ZERO:
                clear = False
                break
        if clear:
            for t in range(j, j + group):
                words[t] = FULL
                summary[t >> 6] |= ONE << np.uint64(t & 63)
            out[got] = j << 6
            got += 1
        j += group
    return got


@kjit
def bm_release_block(words, summary, offset, order):
    """Free the ``2**order`` slots starting at ``offset``.

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    offset : int
        First slot of the block.
    order : int
        log2 of the block size.

    Returns
    -------
    int
        How many bits flipped.
    """
    return bm_clear_range(words, summary, offset, offset + (1 << order))


@kjit
def bm_release_blocks(words, summary, offsets, order):
    """Free the ``2**order`` slots starting at each offset (idempotent).

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    offsets : numpy.ndarray of int64
        First slot of each block, each aligned and inside the bitmap.
    order : int
        log2 of the block size.

    Returns
    -------
    int
        How many bits flipped.
    """
    flipped = 0
    width = 1 << order
    for i in range(offsets.shape[0]):
        flipped += bm_clear_range(words, summary, offsets[i], offsets[i] + width)
    return flipped


@kjit
def bm_free_blocks(words, order):
    """Count the aligned, entirely free blocks of ``2**order`` slots.

    Parameters
    ----------
    words : numpy.ndarray of uint64
        Leaf level.
    order : int
        log2 of the block size.

    Returns
    -------
    int
        Number of such blocks.
    """
    nw = words.shape[0]
    count = 0
    if order < 6:
        for j in range(nw):
            w = words[j]
            if w != FULL:
                count += popcount64(_group_free_bits(w, order))
        return count
    group = 1 << (order - 6)
    j = 0
    while j + group <= nw:
        clear = True
        for t in range(j, j + group):
            if words[t] != ZERO:
                clear = False
                break
        count += clear
        j += group
    return count


@kjit(inline=True)
def _starts_in(words, order, j, lo, hi):
    # free aligned group starts of word j that lie in [lo, hi)
    a = max(lo - (j << 6), 0)
    b = min(hi - (j << 6), 64)
    return _group_free_bits(words[j], order) & _range_mask(a, b)


@kjit
def bm_alloc_block_in(words, summary, order, lo, hi):
    """Take the lowest free aligned block of ``2**order`` slots inside ``[lo, hi)`` (``order < 6``).

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    order : int
        log2 of the block size, below 6.
    lo, hi : int
        Half-open slot range, both multiples of ``2**order``.

    Returns
    -------
    int
        Offset of the block, or -1 when the range has no free aligned block.
    """
    width_mask = (ONE << np.uint64(1 << order)) - ONE
    for j in range(lo >> 6, ((hi - 1) >> 6) + 1):
        starts = _starts_in(words, order, j, lo, hi)
        if starts != ZERO:
            return _take_first_group(words, summary, j, starts, width_mask)
    return -1


@kjit
def bm_take_densest(words, summary, order):
    """Take one free slot of the fullest aligned block of ``2**order`` slots that still has one.

    The block with the fewest free slots (lowest first on ties) gives its lowest
    free slot, so single slots fill the blocks already broken and leave whole
    blocks for whole-block requests: the "dense" allocation of
    cilium/cilium#38499 (individual addresses packed so /28 prefixes stay free).

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The bitmap.
    order : int
        log2 of the block size, below 6.

    Returns
    -------
    int
        Offset of the slot taken, or -1 when the bitmap is full.
    """
    width = 1 << order
    width_mask = (ONE << np.uint64(width)) - ONE
    best_free = width + 1
    best_at = -1
    for s in range(summary.shape[0]):
        sw = summary[s]
        while sw != FULL:
            jj = ctz64(~sw)
            sw |= ONE << np.uint64(jj)
            j = (s << 6) + jj
            w = words[j]
            for start in range(0, 64, width):
                free = width - popcount64((w >> np.uint64(start)) & width_mask)
                if 0 < free < best_free:
                    best_free = free
                    best_at = (j << 6) + start
        if best_free == 1:
            break  # no block can be fuller
    if best_at < 0:
        return -1
    block = (words[best_at >> 6] >> np.uint64(best_at & 63)) & width_mask
    offset = best_at + ctz64(~block)
    bm_set(words, summary, offset)
    return offset


@kjit
def bm_largest_free_block(words):
    """Order of the largest aligned free block (the fragmentation figure).

    Parameters
    ----------
    words : numpy.ndarray of uint64
        Leaf level.

    Returns
    -------
    int
        The largest ``order`` such that an aligned free block of
        ``2**order`` slots exists, or -1 when nothing is free.
    """
    nw = words.shape[0]
    # Runs of empty words, scanned backwards: run = empty words from j on.
    best = -1
    run = 0
    for j in range(nw - 1, -1, -1):
        if words[j] == ZERO:
            run += 1
            align = 62 if j == 0 else ctz64(np.uint64(j))
            fit = 0
            while (2 << fit) <= run and fit < align:
                fit += 1
            if fit + 6 > best:
                best = fit + 6
        else:
            run = 0
    if best >= 0:
        return best
    for order in range(5, -1, -1):
        for j in range(nw):
            w = words[j]
            if w != FULL and _group_free_bits(w, order) != ZERO:
                return order
    return -1
