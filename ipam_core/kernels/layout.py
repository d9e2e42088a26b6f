"""The two-level ``uint64`` bitmap every ``bm_*`` kernel works on: sizes and setup.

Layout
------
A bitmap of ``n`` slots is two C-contiguous ``uint64`` arrays::

    words    [w0][w1][w2] ... [w(nw-1)]     bit i of the bitmap = bit (i & 63) of words[i >> 6]
                                            1 = used; pad bits past n are set for good
    summary  [s0] ... [s(ns-1)]             bit j = 1  <=>  words[j] is full (all ones);
                                            pad bits past nw are set for good

``nw = max(1, ceil(n / 64))`` and ``ns = max(1, ceil(nw / 64))`` (see
:func:`bm_sizes`), so the summary costs at most 1/64 of the leaf level.
Finding a free slot at 99 % fill skips 64 full words per summary bit, and
setting the pad bits once means no scan ever needs a bounds check on ``n``.

Conventions
-----------
* Kernels never raise and never allocate per operation: they return counts,
  offsets, or ``-1`` for "nothing free". The Python classes turn those into
  typed exceptions.
* Every shift and mask on a word uses the ``np.uint64`` constants from
  :mod:`ipam_core.kernels._jit`.
* Kernels take any slice of a larger arena (``words[a:b]``), which is how the
  engine keeps every node's bitmap in one flat array.

The kernels are grouped by topic: :mod:`~ipam_core.kernels.bits` (word
intrinsics), :mod:`~ipam_core.kernels.slots` (set, clear, test and count given
slots), :mod:`~ipam_core.kernels.scan` (find and take free slots),
:mod:`~ipam_core.kernels.blocks` (aligned blocks), :mod:`~ipam_core.kernels.rng`
(seeded draws) and :mod:`~ipam_core.kernels.arena` (one slot per Python call).
"""

from __future__ import annotations

import numpy as np

from ipam_core.kernels._jit import FULL, ONE, ZERO, kjit


def bm_sizes(n):
    """Word counts of the leaf and summary levels for ``n`` slots.

    Parameters
    ----------
    n : int
        Number of slots (may be 0: a bitmap that is full from the start).

    Returns
    -------
    tuple of int
        ``(nw, ns)``: leaf words and summary words.
    """
    nw = max(1, (int(n) + 63) // 64)
    return nw, max(1, (nw + 63) // 64)


@kjit
def bm_init(words, summary, n):
    """Clear a bitmap of ``n`` slots, set its pad bits and build its summary.

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        Arrays sized by :func:`bm_sizes`.
    n : int
        Number of usable slots.
    """
    nw = words.shape[0]
    for j in range(nw):
        words[j] = ZERO
    valid_last = n - 64 * (nw - 1)
    if valid_last < 64:
        words[nw - 1] = FULL << np.uint64(valid_last) if valid_last > 0 else FULL
    for s in range(summary.shape[0]):
        summary[s] = ZERO
    for j in range(nw, summary.shape[0] * 64):
        summary[j >> 6] |= ONE << np.uint64(j & 63)
    for j in range(nw):
        if words[j] == FULL:
            summary[j >> 6] |= ONE << np.uint64(j & 63)
