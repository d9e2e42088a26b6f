"""``ipam_core.Bitmap``: typed errors, atomic failures, cursor semantics, container protocol."""

from __future__ import annotations

import numpy as np
import pytest

import ipam_core
from ipam_core import Bitmap
from ipam_core.errors import AlreadyAllocated, ConfigError, IPAMBenchError, NotInRange, RangeFull
from reference_bitmap import RefBitmap, random_starts


def snapshot(bm: Bitmap):
    return bm.words.copy(), bm.summary.copy(), bm.used, bm.cursor


def assert_unchanged(bm: Bitmap, before) -> None:
    words, summary, used, cursor = before
    np.testing.assert_array_equal(bm.words, words)
    np.testing.assert_array_equal(bm.summary, summary)
    assert (bm.used, bm.cursor) == (used, cursor)


def assert_matches(bm: Bitmap, ref: RefBitmap) -> None:
    np.testing.assert_array_equal(bm.words, ref.words())
    np.testing.assert_array_equal(bm.summary, ref.summary())
    assert bm.used == ref.count() == len(bm)
    assert bm.free == ref.n - ref.count()
    assert bm.to_offsets().tolist() == ref.sorted_used()


@pytest.fixture
def half_full():
    """130 slots, the even ones used, cursor moved to 17."""
    bm = Bitmap(130)
    bm.allocate(np.arange(0, 130, 2))
    bm.cursor = 17
    return bm


# ------------------------------------------------------------------------ construction
def test_public_names():
    assert ipam_core.Bitmap is Bitmap
    assert "Bitmap" in ipam_core.__all__
    from ipam_core.kernels import bm_alloc_first, bm_used_offsets  # noqa: F401  importable on their own


@pytest.mark.parametrize("n", [0, 1, 65, 4097])
def test_new_bitmap_is_empty(n):
    bm = Bitmap(n)
    assert (bm.size, bm.used, bm.free, len(bm), bm.cursor) == (n, 0, n, 0, 0)
    assert bm.words.dtype == np.uint64 and bm.summary.dtype == np.uint64
    assert_matches(bm, RefBitmap(n))
    assert bm.largest_free_block() == (n.bit_length() - 1 if n else -1)


@pytest.mark.parametrize("n", [-1, 2.5, "10", None])
def test_bad_size(n):
    with pytest.raises(ConfigError, match="bitmap size"):
        Bitmap(n)


def test_repr_names_the_figures(half_full):
    assert repr(half_full) == "Bitmap(size=130, used=65, free=65, cursor=17)"


def test_errors_are_ipam_bench_errors():
    for cls in (RangeFull, AlreadyAllocated, NotInRange, ConfigError):
        assert issubclass(cls, IPAMBenchError)


# ------------------------------------------------------------------------ exhaustion is atomic
@pytest.mark.parametrize(
    "call",
    [
        lambda bm: bm.allocate_first(66),
        lambda bm: bm.allocate_next_fit(66),
        lambda bm: bm.allocate_random(66, seed=1),
        lambda bm: bm.allocate_scan(np.zeros(66, dtype=np.int64)),
        lambda bm: bm.allocate_blocks(0, 66),
    ],
    ids=["first", "next_fit", "random", "scan", "blocks"],
)
def test_range_full_when_fewer_than_k_free_changes_nothing(half_full, call):
    before = snapshot(half_full)
    with pytest.raises(RangeFull, match="66"):
        call(half_full)
    assert_unchanged(half_full, before)


def test_exactly_k_free_succeeds_and_fills(half_full):
    got = half_full.allocate_first(65)
    assert got.tolist() == list(range(1, 130, 2))
    assert half_full.free == 0
    with pytest.raises(RangeFull):
        half_full.allocate_first(1)
    assert half_full.allocate_first(0).tolist() == []


def test_zero_slot_bitmap_is_full():
    bm = Bitmap(0)
    for call in (lambda: bm.allocate_first(1), lambda: bm.allocate_next_fit(1), lambda: bm.allocate_random(1, 0)):
        with pytest.raises(RangeFull):
            call()
    assert bm.allocate_first(0).size == 0 and bm.allocate_random(0, 0).size == 0
    assert bm.allocate_scan([]).size == 0
    with pytest.raises(RangeFull):
        bm.allocate_block(0)


@pytest.mark.parametrize("k", [-1, 1.5, "3"])
def test_bad_counts(half_full, k):
    with pytest.raises(ConfigError, match="slot count"):
        half_full.allocate_first(k)


# ------------------------------------------------------------------------ explicit offsets
def test_allocate_taken_offset_raises_and_changes_nothing(half_full):
    before = snapshot(half_full)
    with pytest.raises(AlreadyAllocated, match="offset 4 "):
        half_full.allocate([1, 3, 4, 5])
    assert_unchanged(half_full, before)


def test_allocate_duplicate_offsets_raises_and_changes_nothing(half_full):
    before = snapshot(half_full)
    with pytest.raises(AlreadyAllocated, match="offset 7 .*more than once"):
        half_full.allocate(np.array([1, 7, 9, 7, 11], dtype=np.int64))
    assert_unchanged(half_full, before)
    assert 1 not in half_full and 9 not in half_full


@pytest.mark.parametrize("bad", [-1, 130, 10**6])
@pytest.mark.parametrize("method", ["allocate", "release", "allocate_scan"])
def test_out_of_range_offsets_raise_not_in_range_and_change_nothing(half_full, method, bad):
    before = snapshot(half_full)
    with pytest.raises(NotInRange, match=f"{bad} is out of range"):
        getattr(half_full, method)(np.array([1, bad, 3], dtype=np.int64))
    assert_unchanged(half_full, before)


def test_unsigned_and_list_offsets_are_accepted(half_full):
    half_full.allocate(np.array([1, 3], dtype=np.uint32))
    half_full.allocate([5])
    assert {1, 3, 5} <= set(half_full.to_offsets().tolist())
    with pytest.raises(NotInRange):
        half_full.release(np.array([2**63 + 1], dtype=np.uint64))


@pytest.mark.parametrize("bad", [np.array([1.0, 2.0]), np.zeros((2, 2), dtype=np.int64), ["a"]])
def test_non_integer_offsets(half_full, bad):
    with pytest.raises(ConfigError):
        half_full.allocate(bad)


def test_release_is_idempotent_and_counts_only_flips(half_full):
    assert half_full.release([0, 1, 2, 2, 4]) == 3  # 1 was free, 2 given twice
    assert half_full.used == 62
    assert half_full.release([0, 1, 2, 4]) == 0
    assert half_full.used == 62
    assert half_full.release([]) == 0


@pytest.mark.parametrize("batch", [300, 65, 64])  # 4097 slots take 65 words: 65 and up rebuild the summary
@pytest.mark.parametrize("fill", [0.5, 0.97, 1.0])
def test_release_matches_the_model_with_every_release_kernel(fill, batch):
    n = 4097
    used = np.random.default_rng(2).permutation(n)[: int(fill * n)]
    bm, ref = Bitmap(n), RefBitmap(n, used.tolist())
    bm.allocate(used)
    offsets = np.random.default_rng(3).integers(0, n, batch)
    assert bm.release(offsets) == ref.clear_many(offsets)
    assert_matches(bm, ref)


def test_allocate_empty_is_a_no_op(half_full):
    before = snapshot(half_full)
    half_full.allocate([])
    half_full.allocate(np.empty(0, dtype=np.int64))
    assert_unchanged(half_full, before)


# ------------------------------------------------------------------------ cursor semantics
def test_next_fit_cursor_is_the_slot_after_the_last_taken():
    bm = Bitmap(10)
    assert bm.allocate_next_fit(3).tolist() == [0, 1, 2]
    assert bm.cursor == 3
    bm.release([0, 1])  # release does not move the cursor ...
    assert bm.cursor == 3
    assert bm.allocate_next_fit(2).tolist() == [3, 4]  # ... and freed slots wait for the wrap
    bm.allocate([8])  # neither does an explicit allocation
    assert bm.cursor == 5
    assert bm.allocate_next_fit(4).tolist() == [5, 6, 7, 9]
    assert bm.cursor == 0  # the slot after 9 wraps to 0
    assert bm.allocate_next_fit(2).tolist() == [0, 1]
    assert bm.cursor == 2


def test_other_strategies_leave_the_cursor_alone():
    bm = Bitmap(100)
    bm.cursor = 42
    bm.allocate_first(5)
    bm.allocate_random(5, seed=3)
    bm.allocate_scan([99, 0])
    bm.allocate_block(3)
    bm.allocate_blocks(2, 2)
    bm.release_block(0, 2)
    assert bm.cursor == 42


def test_upstream_next_fit_example_released_blocks_come_back_after_the_wrap():
    # cidr_set.go on a full 16-block set with the cursor at 6: release 3 and 9,
    # then two allocations give 9 then 3 (upstream-observed.md).
    bm = Bitmap(16)
    bm.allocate_first(16)
    bm.cursor = 6
    bm.release([3, 9])
    assert bm.allocate_next_fit(1).tolist() == [9]
    assert bm.allocate_next_fit(1).tolist() == [3]


@pytest.mark.parametrize("bad", [-1, 130])
def test_cursor_setter_checks_range(half_full, bad):
    with pytest.raises((NotInRange, ConfigError)):
        half_full.cursor = bad
    assert half_full.cursor == 17


def test_failed_next_fit_leaves_cursor(half_full):
    with pytest.raises(RangeFull):
        half_full.allocate_next_fit(100)
    assert half_full.cursor == 17
    assert half_full.allocate_next_fit(2).tolist() == [17, 19]
    assert half_full.cursor == 20


# ------------------------------------------------------------------------ scan and random
def test_scan_replays_given_starts_with_wrap():
    bm = Bitmap(8)
    bm.allocate([6, 7])
    assert bm.allocate_scan([7, 7, 0, 3]).tolist() == [0, 1, 2, 3]


def test_random_is_seeded_and_equals_scan_of_the_drawn_starts():
    a, b, c = Bitmap(1000), Bitmap(1000), Bitmap(1000)
    for bm in (a, b, c):
        bm.allocate(np.arange(0, 1000, 3))
    got = a.allocate_random(200, seed=11)
    assert got.tolist() == b.allocate_random(200, seed=11).tolist()
    starts = random_starts(11, 1000, 200)
    assert got.tolist() == c.allocate_scan(starts).tolist()
    assert len(set(got.tolist())) == 200 and not set(got.tolist()) & set(range(0, 1000, 3))


# ------------------------------------------------------------------------ blocks
def test_allocate_block_carves_mixed_sizes_from_one_pool():
    # a /16 pool: a /24 (order 8), a /26 (order 6) and a /28 (order 4)
    pool = Bitmap(1 << 16)
    assert pool.allocate_block(4) == 0
    assert pool.allocate_block(8) == 256
    assert pool.allocate_block(6) == 64
    assert pool.allocate_block(4) == 16
    assert pool.used == 16 + 256 + 64 + 16
    assert pool.release_block(0, 4) == 16
    assert pool.allocate_block(4) == 0


def test_fragmentation_is_reported_with_free_slot_count():
    bm = Bitmap(64)
    bm.allocate(np.arange(0, 64, 2))  # 32 free slots, no free pair
    before = snapshot(bm)
    with pytest.raises(RangeFull, match=r"2\*\*1 = 2 slots: 32 of 64 slots are free"):
        bm.allocate_block(1)
    assert_unchanged(bm, before)
    assert bm.free_blocks(0) == 32 and bm.free_blocks(1) == 0 and bm.largest_free_block() == 0


def test_allocate_blocks_rolls_back_when_not_enough_blocks():
    bm = Bitmap(64)
    bm.allocate([1, 2])  # pairs 0 and 1 used: 30 free pairs but 62 free slots
    before = snapshot(bm)
    with pytest.raises(RangeFull, match="31 aligned free blocks"):
        bm.allocate_blocks(1, 31)
    assert_unchanged(bm, before)
    assert bm.allocate_blocks(1, 30).tolist() == list(range(4, 64, 2))
    assert bm.free == 2


def test_release_block_checks_alignment_and_range():
    bm = Bitmap(100)
    bm.allocate_block(4)
    before = snapshot(bm)
    with pytest.raises(NotInRange, match="not aligned"):
        bm.release_block(8, 4)
    with pytest.raises(NotInRange, match="out of range"):
        bm.release_block(96, 4)  # [96, 112) passes the end
    with pytest.raises(NotInRange, match="out of range"):
        bm.release_block(-16, 4)
    with pytest.raises(ConfigError):
        bm.release_block(0, -1)
    assert_unchanged(bm, before)
    assert bm.release_block(0, 4) == 16
    assert bm.release_block(0, 4) == 0  # idempotent


@pytest.mark.parametrize("order", [-1, 63, 1.0])
def test_bad_orders(order):
    with pytest.raises(ConfigError, match="order"):
        Bitmap(64).allocate_block(order)
    with pytest.raises(ConfigError, match="order"):
        Bitmap(64).free_blocks(order)


def test_block_larger_than_bitmap_is_range_full():
    with pytest.raises(RangeFull):
        Bitmap(100).allocate_block(7)
    assert Bitmap(100).free_blocks(7) == 0
    assert Bitmap(128).allocate_block(7) == 0


# ------------------------------------------------------------------------ container protocol
def test_contains_len_copy_to_offsets(half_full):
    assert 4 in half_full and 5 not in half_full
    assert -1 not in half_full and 130 not in half_full and "x" not in half_full
    assert len(half_full) == 65
    twin = half_full.copy()
    twin.allocate([5])
    assert 5 in twin and 5 not in half_full
    assert (twin.used, half_full.used) == (66, 65)
    assert twin.cursor == half_full.cursor
    assert half_full.to_offsets().dtype == np.int64
    assert half_full.to_offsets().tolist() == list(range(0, 130, 2))


def test_copy_into_an_existing_bitmap_reuses_its_arrays(half_full):
    scratch = Bitmap(130)
    words, summary = scratch.words, scratch.summary
    assert half_full.copy(out=scratch) is scratch
    assert scratch.words is words and scratch.summary is summary
    assert_unchanged(scratch, snapshot(half_full))
    scratch.allocate([5])
    assert 5 not in half_full
    assert half_full.copy(out=half_full) is half_full
    with pytest.raises(ConfigError, match="130 slots into one of 64"):
        half_full.copy(out=Bitmap(64))


def test_warmup_leaves_no_trace_and_runs_twice():
    Bitmap.warmup()
    ipam_core.bitmap.warmup()
