"""One slot per Python call: the bitmap and its counters in one array, the *arena*.

The allocators' per-call methods (CIDRSet.allocate_next, PodIPRange.release, ...)
call the kernels below bound to their arrays (:mod:`ipam_core.kernels.fastcall`),
which passes only the slot: Numba's dispatcher costs ~100 ns a call and even its
compiled entry point ~60 ns, against ~10 ns for the work. So the bitmap and its
counters share one array::

    arena  [used][cursor][n][words_at] [summary ...] [words ...]
            0     1       2  3          ARENA_HEADER  words_at

``words``/``summary`` are views of it, so every other kernel works on them as usual.
Random starts drawn ahead (``PodIPRange``) sit in a second array, which
:func:`arena_take_ahead` consumes one per call::

    starts [next][s1][s2] ... [sk]      next = position of the next unused start (1 at first)
"""

from __future__ import annotations

import numpy as np

from ipam_core.kernels._jit import ONE, kjit
from ipam_core.kernels.layout import bm_sizes
from ipam_core.kernels.scan import bm_take_next_fit
from ipam_core.kernels.slots import bm_clear, bm_set

ARENA_USED = 0
ARENA_CURSOR = 1
ARENA_SIZE = 2
ARENA_WORDS_AT = 3
ARENA_HEADER = 4

#: :func:`arena_take_one` / :func:`arena_take_ahead`: every slot is in use.
TAKE_FULL = -1
#: :func:`arena_take_ahead`: every start drawn ahead is used.
TAKE_NO_START = -2


def arena_layout(n):
    """Length of an arena for ``n`` slots and where its words start.

    Parameters
    ----------
    n : int
        Number of slots.

    Returns
    -------
    tuple of int
        ``(length, words_at)``: the summary is ``arena[ARENA_HEADER:words_at]``,
        the words ``arena[words_at:length]``.
    """
    nw, ns = bm_sizes(n)
    return ARENA_HEADER + ns + nw, ARENA_HEADER + ns


@kjit(inline=True)
def _arena_levels(arena):
    at = np.int64(arena[ARENA_WORDS_AT])
    return arena[at:], arena[ARENA_HEADER:at]


@kjit
def arena_take_one(arena, start):
    """Take the first free slot from ``start`` (the cursor if ``start < 0``), wrapping.

    Parameters
    ----------
    arena : numpy.ndarray of uint64
        See :func:`arena_layout`.
    start : int
        A slot in range, or -1 for the arena's cursor (next fit).

    Returns
    -------
    int
        The slot, or -1 when all ``n`` slots are used (checked first; nothing
        changes then). On success ``used`` grows by one and the cursor moves
        to the slot after the one taken, modulo ``n``.
    """
    n = np.int64(arena[ARENA_SIZE])
    if np.int64(arena[ARENA_USED]) >= n:
        return TAKE_FULL
    words, summary = _arena_levels(arena)
    if start < 0:
        start = np.int64(arena[ARENA_CURSOR])
    found, cursor = bm_take_next_fit(words, summary, n, start)
    arena[ARENA_USED] += ONE
    arena[ARENA_CURSOR] = np.uint64(cursor)
    return int(found)  # int(): a Python int also when the JIT is off, as compiled (CIDRSet.release returns it)


@kjit
def arena_take_ahead(arena, starts):
    """:func:`arena_take_one` from the next start drawn ahead, which it uses up.

    Parameters
    ----------
    arena : numpy.ndarray of uint64
        See :func:`arena_layout`.
    starts : numpy.ndarray of int64
        ``[next, s1, s2, ...]``: starts in range, and in ``starts[0]`` the
        position of the next one not used yet (``1`` for none used).

    Returns
    -------
    int
        The slot; :data:`TAKE_FULL` when all ``n`` slots are used, or
        :data:`TAKE_NO_START` when every start is used (checked in this
        order; nothing changes then). On success ``starts[0]`` grows by one.
    """
    if arena[ARENA_USED] >= arena[ARENA_SIZE]:
        return TAKE_FULL  # before using a start: a full range draws nothing
    at = starts[0]
    if at >= starts.shape[0]:
        return TAKE_NO_START
    starts[0] = at + 1
    return arena_take_one(arena, starts[at])


@kjit
def arena_set_one(arena, slot):
    """Mark one slot used and count it.

    Parameters
    ----------
    arena : numpy.ndarray of uint64
        See :func:`arena_layout`.
    slot : int
        A slot in range.

    Returns
    -------
    int
        1 if it was free, else 0.
    """
    words, summary = _arena_levels(arena)
    flipped = bm_set(words, summary, slot)
    arena[ARENA_USED] += np.uint64(flipped)
    return int(flipped)


@kjit
def arena_clear_one(arena, slot):
    """Mark one slot free and count it.

    Parameters
    ----------
    arena : numpy.ndarray of uint64
        See :func:`arena_layout`.
    slot : int
        A slot in range.

    Returns
    -------
    int
        1 if it was used, else 0.
    """
    words, summary = _arena_levels(arena)
    flipped = bm_clear(words, summary, slot)
    arena[ARENA_USED] -= np.uint64(flipped)
    return int(flipped)
