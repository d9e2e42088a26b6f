"""``ipam_core.Bitmap`` driven by hypothesis beside the set-based model.

Every rule applies one public method to both and compares what they return
(or that both refuse); the invariant then compares the whole state after every
rule: words, summary, used, free, contents, cursor, free_blocks for every order
and largest_free_block.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ipam_core import Bitmap
from ipam_core.errors import AlreadyAllocated, NotInRange, RangeFull
from reference_bitmap import RefBitmap, random_starts

# 4097 = 64*64 + 1: the summary spans two words.
SIZES = st.one_of(st.sampled_from([0, 1, 5, 63, 64, 65, 130, 4097]), st.integers(0, 300))


class BitmapVersusSet(RuleBasedStateMachine):
    bm: Bitmap
    ref: RefBitmap

    @initialize(n=SIZES)
    def create(self, n):
        self.bm = Bitmap(n)
        self.ref = RefBitmap(n)

    # ------------------------------------------------------------ helpers
    def _count(self, data):
        """A batch size: mostly feasible, sometimes one or two too many."""
        return data.draw(st.integers(0, self.ref.n - self.ref.count() + 2), label="k")

    def _refused(self, exc_type, call):
        before = self.ref.copy()
        with pytest.raises(exc_type):
            call()
        assert self.ref.used == before.used  # the model did not move either

    def _free_list(self):
        return sorted(set(range(self.ref.n)) - self.ref.used)

    # ------------------------------------------------------------ strategies
    @rule(data=st.data())
    def allocate_first(self, data):
        k = self._count(data)
        if k > self.ref.n - self.ref.count():
            self._refused(RangeFull, lambda: self.bm.allocate_first(k))
        else:
            assert self.bm.allocate_first(k).tolist() == self.ref.alloc_first(k)

    @rule(data=st.data())
    def allocate_next_fit(self, data):
        k = self._count(data)
        if k > self.ref.n - self.ref.count():
            self._refused(RangeFull, lambda: self.bm.allocate_next_fit(k))
        else:
            assert self.bm.allocate_next_fit(k).tolist() == self.ref.alloc_next_fit(k)

    @rule(data=st.data(), seed=st.integers(0, 2**32 - 1))
    def allocate_random(self, data, seed):
        k = self._count(data)
        if k > self.ref.n - self.ref.count():
            self._refused(RangeFull, lambda: self.bm.allocate_random(k, seed))
            return
        # documented contract: the starts are bm_random_starts(seed, n)
        starts = random_starts(seed, self.ref.n, k) if k else []
        assert self.bm.allocate_random(k, seed).tolist() == self.ref.alloc_scan(starts)

    @precondition(lambda self: self.ref.n > 0)
    @rule(data=st.data())
    def allocate_scan(self, data):
        k = self._count(data)
        starts = data.draw(st.lists(st.integers(0, self.ref.n - 1), min_size=k, max_size=k), label="starts")
        if k > self.ref.n - self.ref.count():
            self._refused(RangeFull, lambda: self.bm.allocate_scan(starts))
        else:
            assert self.bm.allocate_scan(starts).tolist() == self.ref.alloc_scan(starts)

    # ------------------------------------------------------------ explicit offsets
    @precondition(lambda self: self.ref.n > 0)
    @rule(data=st.data())
    def allocate_explicit(self, data):
        free = self._free_list()
        if free and data.draw(st.booleans(), label="free only"):
            offsets = data.draw(st.lists(st.sampled_from(free), max_size=10), label="offsets")
        else:
            offsets = data.draw(st.lists(st.integers(0, self.ref.n - 1), max_size=10), label="offsets")
        if set(offsets) & self.ref.used or len(set(offsets)) != len(offsets):
            self._refused(AlreadyAllocated, lambda: self.bm.allocate(offsets))
        else:
            self.bm.allocate(offsets)
            self.ref.set_many(offsets)

    @precondition(lambda self: self.ref.n > 0)
    @rule(data=st.data())
    def release(self, data):
        used = sorted(self.ref.used)
        pool = st.one_of(st.sampled_from(used), st.integers(0, self.ref.n - 1)) if used else st.integers(
            0, self.ref.n - 1
        )
        offsets = data.draw(st.lists(pool, max_size=12), label="offsets")
        assert self.bm.release(offsets) == self.ref.clear_many(offsets)

    @rule(data=st.data())
    def out_of_range(self, data):
        bad = data.draw(st.one_of(st.integers(-50, -1), st.integers(self.ref.n, self.ref.n + 50)), label="bad")
        method = data.draw(st.sampled_from(["allocate", "release"]), label="method")
        self._refused(NotInRange, lambda: getattr(self.bm, method)([bad]))

    # ------------------------------------------------------------ blocks
    @rule(order=st.integers(0, 13))
    def allocate_block(self, order):
        if self.ref.free_blocks(order) == 0:
            self._refused(RangeFull, lambda: self.bm.allocate_block(order))
        else:
            assert self.bm.allocate_block(order) == self.ref.alloc_block(order)

    @rule(order=st.integers(0, 9), data=st.data())
    def allocate_blocks(self, order, data):
        available = self.ref.free_blocks(order)
        k = data.draw(st.integers(0, available + 1), label="k")
        if k > available:
            self._refused(RangeFull, lambda: self.bm.allocate_blocks(order, k))
        else:
            assert self.bm.allocate_blocks(order, k).tolist() == self.ref.alloc_blocks(order, k)

    @rule(order=st.integers(0, 13), data=st.data())
    def release_block(self, order, data):
        size = 1 << order
        if self.ref.n < size:
            return
        offset = data.draw(st.integers(0, self.ref.n // size - 1), label="block") * size
        assert self.bm.release_block(offset, order) == self.ref.release_block(offset, order)

    # ------------------------------------------------------------ cursor
    @precondition(lambda self: self.ref.n > 0)
    @rule(data=st.data())
    def move_cursor(self, data):
        c = data.draw(st.integers(0, self.ref.n - 1), label="cursor")
        self.bm.cursor = c
        self.ref.cursor = c

    # ------------------------------------------------------------ the check after every rule
    @invariant()
    def same_state(self):
        bm, ref = self.bm, self.ref
        assert bm.used == len(bm) == ref.count()
        assert bm.free == ref.n - ref.count()
        assert bm.cursor == ref.cursor
        assert bm.to_offsets().tolist() == ref.sorted_used()
        np.testing.assert_array_equal(bm.words, ref.words())
        np.testing.assert_array_equal(bm.summary, ref.summary())
        for order in range(0, ref.n.bit_length() + 2):
            assert bm.free_blocks(order) == ref.free_blocks(order), order
        assert bm.largest_free_block() == ref.largest_free_block()


TestBitmapVersusSet = BitmapVersusSet.TestCase
