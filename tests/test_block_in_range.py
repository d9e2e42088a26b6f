"""``bm_alloc_block_in``: the lowest free aligned block inside a slot range (prefix reservations)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam_core.kernels.blocks import bm_alloc_block_in
from ipam_core.kernels.layout import bm_init, bm_sizes
from ipam_core.kernels.slots import bm_set, bm_test


def _bitmap(n: int, taken: list[int]):
    nw, ns = bm_sizes(n)
    words = np.zeros(nw, dtype=np.uint64)
    summary = np.zeros(ns, dtype=np.uint64)
    bm_init(words, summary, n)
    for i in taken:
        bm_set(words, summary, i)
    return words, summary


@settings(max_examples=200, deadline=None)
@given(blocks=st.integers(1, 40), data=st.data())
def test_lowest_free_block_in_range_like_a_scan(blocks, data):
    n = 16 * blocks
    taken = data.draw(st.lists(st.integers(0, n - 1), max_size=n))
    lo_block = data.draw(st.integers(0, blocks - 1))
    hi_block = data.draw(st.integers(lo_block + 1, blocks))
    lo, hi = 16 * lo_block, 16 * hi_block
    words, summary = _bitmap(n, taken)
    used = set(taken)
    expected = next((b for b in range(lo, hi, 16) if not used & set(range(b, b + 16))), -1)
    got = bm_alloc_block_in(words, summary, 4, lo, hi)
    assert got == expected
    if got >= 0:  # the block is taken now, nothing else changed
        assert all(bm_test(words, i) for i in range(got, got + 16))
        assert bm_alloc_block_in(words, summary, 4, got, got + 16) == -1
    for i in range(n):
        if not (got >= 0 and got <= i < got + 16):
            assert bool(bm_test(words, i)) == (i in used)
    full = np.array([w == np.uint64(0xFFFFFFFFFFFFFFFF) for w in words])
    summary_bits = np.array([(int(summary[j >> 6]) >> (j & 63)) & 1 for j in range(words.shape[0])], dtype=bool)
    assert (full == summary_bits).all()  # summary bit j set exactly when word j is full
