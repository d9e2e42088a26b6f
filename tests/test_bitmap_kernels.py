"""Every bitmap kernel against the set-based model in ``reference_bitmap``.

Each test builds the starting words and summary from the model (bit by bit,
independently of the kernels), runs one kernel, and compares both its return
value and the resulting words and summary with what the model says.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipam_core import kernels as k
from reference_bitmap import RefBitmap

# 4097 = 64*64 + 1: 65 leaf words, so the summary spans 2 words.
EDGE_SIZES = [0, 1, 2, 5, 63, 64, 65, 127, 128, 130, 200, 4095, 4096, 4097, 2 * 4096 + 3]
NOT_MULTIPLE_OF_64 = [n for n in EDGE_SIZES if n % 64]
FULL_WORD = (1 << 64) - 1


# ------------------------------------------------------------------------ helpers
def arrays(ref: RefBitmap) -> tuple[np.ndarray, np.ndarray]:
    """Fresh words and summary for the model's state, built by the model."""
    return ref.words(), ref.summary()


def assert_state(words, summary, ref: RefBitmap) -> None:
    np.testing.assert_array_equal(words, ref.words(), err_msg="leaf words differ from the model")
    np.testing.assert_array_equal(summary, ref.summary(), err_msg="summary differs from the model")


def random_ref(n: int, density: float, seed: int, blocky: bool = False) -> RefBitmap:
    """A model with about ``density`` of its slots used, seeded."""
    rng = np.random.default_rng(seed)
    if not blocky:
        used = np.flatnonzero(rng.random(n) < density)
        return RefBitmap(n, used.tolist())
    # Used slots come in aligned runs of random sizes, the shape block carving leaves.
    ref = RefBitmap(n)
    while n and ref.count() < density * n:
        order = int(rng.integers(0, 9))
        size = 1 << order
        if size > n:
            continue
        start = int(rng.integers(0, n // size)) * size
        ref.set_range(start, start + size)
    return ref


@st.composite
def states(draw, max_n: int = 300):
    """A model bitmap: edge or random size, sparse/dense/blocky/explicit contents."""
    n = draw(st.one_of(st.sampled_from(EDGE_SIZES), st.integers(0, max_n)))
    kind = draw(st.sampled_from(["random", "blocky", "explicit"]))
    if kind == "explicit" or n == 0:
        used = draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=min(n, 80))) if n else set()
        return RefBitmap(n, used)
    density = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.98, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    return random_ref(n, density, seed, blocky=(kind == "blocky"))


PARAM_STATES = [
    pytest.param(n, d, b, id=f"n{n}-d{d}-{'blocky' if b else 'random'}")
    for n in EDGE_SIZES
    for d in (0.0, 0.5, 0.97, 1.0)
    for b in (False, True)
]


# ------------------------------------------------------------------------ layout
@pytest.mark.parametrize("n", EDGE_SIZES + [10**6])
def test_sizes_match_model(n):
    assert k.bm_sizes(n) == RefBitmap(n).sizes()


def test_sizes_of_4097_need_two_summary_words():
    assert k.bm_sizes(4096) == (64, 1)
    assert k.bm_sizes(4097) == (65, 2)


@pytest.mark.parametrize("n", EDGE_SIZES)
def test_init_sets_only_pad_bits_whatever_was_there(n):
    nw, ns = k.bm_sizes(n)
    words = np.full(nw, 0x5A5A5A5A5A5A5A5A, dtype=np.uint64)
    summary = np.full(ns, 0x1234, dtype=np.uint64)
    k.bm_init(words, summary, n)
    assert_state(words, summary, RefBitmap(n))


@given(states())
def test_count(ref):
    words, _ = arrays(ref)
    assert k.bm_count(words, ref.n) == ref.count()


# ------------------------------------------------------------------------ single slots
@given(states(), st.data())
def test_test_set_clear_single_slot(ref, data):
    if ref.n == 0:
        return
    i = data.draw(st.integers(0, ref.n - 1))
    words, summary = arrays(ref)
    assert bool(k.bm_test(words, i)) == ref.test(i)
    op = data.draw(st.sampled_from(["set", "clear"]))
    if op == "set":
        flipped = k.bm_set(words, summary, i)
        expected = ref.set_many([i])
    else:
        flipped = k.bm_clear(words, summary, i)
        expected = ref.clear_many([i])
    assert flipped == expected
    assert_state(words, summary, ref)


@given(states(), st.data())
def test_set_many_clear_many_test_many(ref, data):
    if ref.n == 0:
        return
    offsets = np.array(
        data.draw(st.lists(st.integers(0, ref.n - 1), max_size=200)), dtype=np.int64
    )  # repeats allowed: each flips at most once
    words, summary = arrays(ref)
    hits = np.empty(offsets.shape[0], dtype=np.bool_)
    assert k.bm_test_many(words, offsets, hits) == sum(ref.test(int(i)) for i in offsets)
    assert hits.tolist() == [ref.test(int(i)) for i in offsets]
    op = data.draw(st.sampled_from(["set", "clear", "clear_branchless", "clear_rebuild"]))
    if op == "set":
        assert k.bm_set_many(words, summary, offsets) == ref.set_many(offsets)
    elif op == "clear":
        assert k.bm_clear_many(words, summary, offsets) == ref.clear_many(offsets)
    elif op == "clear_branchless":
        assert k.bm_clear_many_branchless(words, summary, offsets) == ref.clear_many(offsets)
    else:
        assert k.bm_clear_many_rebuild(words, summary, offsets) == ref.clear_many(offsets)
    assert_state(words, summary, ref)


@pytest.mark.parametrize("n, density, blocky", PARAM_STATES)
def test_every_clear_many_kernel_agrees_with_the_model(n, density, blocky):
    ref = random_ref(n, density, seed=5 * n + 2, blocky=blocky)
    offsets = np.random.default_rng(n).integers(0, max(n, 1), size=min(n, 500)) if n else np.empty(0, np.int64)
    expected = ref.copy()
    flipped = expected.clear_many(offsets)
    for kernel in (k.bm_clear_many, k.bm_clear_many_branchless, k.bm_clear_many_rebuild):
        words, summary = arrays(ref)
        assert kernel(words, summary, offsets) == flipped
        assert_state(words, summary, expected)


@given(states(), st.data())
def test_set_range_clear_range(ref, data):
    lo = data.draw(st.integers(0, ref.n))
    hi = data.draw(st.integers(lo, ref.n))
    words, summary = arrays(ref)
    if data.draw(st.booleans()):
        assert k.bm_set_range(words, summary, lo, hi) == ref.set_range(lo, hi)
    else:
        assert k.bm_clear_range(words, summary, lo, hi) == ref.clear_range(lo, hi)
    assert_state(words, summary, ref)


def test_set_range_across_many_words_fills_summary():
    ref = RefBitmap(4097)
    words, summary = arrays(ref)
    assert k.bm_set_range(words, summary, 3, 4097) == ref.set_range(3, 4097)
    assert_state(words, summary, ref)
    assert k.bm_clear_range(words, summary, 64, 4096) == ref.clear_range(64, 4096)
    assert_state(words, summary, ref)


# ------------------------------------------------------------------------ searching
@pytest.mark.parametrize("n, density, blocky", PARAM_STATES)
def test_find_free_every_start(n, density, blocky):
    ref = random_ref(n, density, seed=n + 7, blocky=blocky)
    words, summary = arrays(ref)
    nw, _ = ref.sizes()
    for start in list(range(0, min(n, 300))) + list(range(max(0, n - 70), nw * 64 + 2)):
        assert k.bm_find_free(words, summary, start) == ref.find_free(start), start
        if start < n:
            assert k.bm_find_free_wrap(words, summary, start) == ref.find_free_wrap(start), start


@pytest.mark.parametrize("n, density, blocky", PARAM_STATES)
def test_take_scan_every_start_takes_what_find_free_wrap_finds(n, density, blocky):
    ref = random_ref(n, density, seed=n + 11, blocky=blocky)
    starts = list(range(0, min(n, 300))) + list(range(max(0, n - 70), n))
    for start in starts:
        words, summary = arrays(ref)
        expected = ref.find_free_wrap(start)
        assert k.bm_take_scan(words, summary, start) == expected, start
        after = ref.copy()
        if expected >= 0:
            after.set_many([expected])
        assert_state(words, summary, after)


@given(states(), st.data())
def test_find_free_random_starts(ref, data):
    words, summary = arrays(ref)
    start = data.draw(st.integers(0, max(ref.n - 1, 0)))
    assert k.bm_find_free(words, summary, start) == ref.find_free(start)
    if ref.n:
        assert k.bm_find_free_wrap(words, summary, start) == ref.find_free_wrap(start)
    assert_state(words, summary, ref)  # searching never writes


def test_find_free_wrap_goes_round_to_the_lowest_free():
    ref = RefBitmap(130, range(3, 130))
    words, summary = arrays(ref)
    assert k.bm_find_free_wrap(words, summary, 120) == 0
    ref.set_many([0, 1])
    words, summary = arrays(ref)
    assert k.bm_find_free_wrap(words, summary, 129) == 2
    ref.set_many([2])
    words, summary = arrays(ref)
    assert k.bm_find_free_wrap(words, summary, 5) == -1


# ------------------------------------------------------------------------ allocation
@given(states(), st.data())
def test_alloc_first(ref, data):
    want = data.draw(st.integers(0, ref.n - ref.count() + 3))
    words, summary = arrays(ref)
    out = np.full(want, -7, dtype=np.int64)
    got = k.bm_alloc_first(words, summary, want, out)
    expected = ref.alloc_first(want)
    assert got == len(expected)
    assert out[:got].tolist() == expected
    assert_state(words, summary, ref)


@given(states(), st.data())
def test_alloc_first_from(ref, data):
    want = data.draw(st.integers(0, ref.n - ref.count() + 3))
    nw, _ = ref.sizes()
    start = data.draw(st.integers(0, nw * 64 + 1))  # past n too: pad bits are never taken
    words, summary = arrays(ref)
    out = np.full(want, -7, dtype=np.int64)
    got = k.bm_alloc_first_from(words, summary, start, want, out)
    expected = ref.alloc_first_from(start, want)
    assert got == len(expected)
    assert out[:got].tolist() == expected
    assert_state(words, summary, ref)


@pytest.mark.parametrize("n, density, blocky", PARAM_STATES)
def test_first_fit_kernels_agree_on_edge_sizes(n, density, blocky):
    # batch sizes around 64 exercise both the whole-word and the bit-by-bit paths
    ref = random_ref(n, density, seed=13 * n + 1, blocky=blocky)
    free = n - ref.count()
    for start in sorted({0, 1, n // 2, max(n - 1, 0)}):
        for want in sorted({0, 1, 63, 64, 65, 130, free // 2, free, free + 1}):
            model = ref.copy()
            expected = model.alloc_first_from(start, want)
            words, summary = arrays(ref)
            out = np.full(want, -7, dtype=np.int64)
            got = k.bm_alloc_first_from(words, summary, start, want, out)
            assert (got, out[:got].tolist()) == (len(expected), expected)
            assert_state(words, summary, model)
            if start == 0:
                words, summary = arrays(ref)
                assert k.bm_alloc_first(words, summary, want, out) == len(expected)
                assert out[: len(expected)].tolist() == expected


@pytest.mark.parametrize("kernel", [k.bm_alloc_next_fit, k.bm_alloc_next_fit_batch])
@given(ref=states(), data=st.data())
def test_alloc_next_fit(kernel, ref, data):
    want = data.draw(st.integers(0, ref.n - ref.count() + 3))
    ref.cursor = data.draw(st.integers(0, max(ref.n - 1, 0)))
    cursor = ref.cursor
    words, summary = arrays(ref)
    out = np.full(want, -7, dtype=np.int64)
    got, new_cursor = kernel(words, summary, ref.n, cursor, want, out)
    expected = ref.alloc_next_fit(want)
    assert got == len(expected)
    assert out[:got].tolist() == expected
    assert new_cursor == ref.cursor
    if got == 0:
        assert new_cursor == cursor
    assert_state(words, summary, ref)


@pytest.mark.parametrize("n, density, blocky", PARAM_STATES)
def test_both_next_fit_kernels_agree_on_edge_sizes(n, density, blocky):
    ref = random_ref(n, density, seed=11 * n + 5, blocky=blocky)
    free = n - ref.count()
    for cursor in sorted({0, n // 3, max(n - 1, 0)}):
        for want in sorted({1, free // 2, free, free + 1}):
            results = []
            for kernel in (k.bm_alloc_next_fit, k.bm_alloc_next_fit_batch):
                words, summary = arrays(ref)
                out = np.full(want, -7, dtype=np.int64)
                got, new_cursor = kernel(words, summary, n, cursor, want, out)
                results.append((got, new_cursor, out[:got].tolist(), words.tolist(), summary.tolist()))
            model = ref.copy()
            model.cursor = cursor
            taken = model.alloc_next_fit(want)
            assert results[0] == results[1]
            assert results[0][:3] == (len(taken), model.cursor, taken)


@pytest.mark.parametrize("kernel", [k.bm_alloc_next_fit, k.bm_alloc_next_fit_batch])
def test_next_fit_wraps_and_cursor_follows_last_taken(kernel):
    ref = RefBitmap(130, [0, 2, 127, 129])
    words, summary = arrays(ref)
    out = np.empty(4, dtype=np.int64)
    got, cursor = kernel(words, summary, 130, 126, 4, out)
    assert (got, out.tolist(), cursor) == (4, [126, 128, 1, 3], 4)
    # taking the very last slot moves the cursor back to 0
    ref = RefBitmap(130, range(129))
    words, summary = arrays(ref)
    got, cursor = kernel(words, summary, 130, 5, 1, out)
    assert (got, out[0], cursor) == (1, 129, 0)


@given(states(), st.data())
def test_alloc_scan(ref, data):
    n = ref.n
    free = n - ref.count()
    # starts beyond n are taken modulo n by the kernel
    starts = np.array(
        data.draw(st.lists(st.integers(0, max(3 * n - 1, 0)), max_size=free + 3)), dtype=np.int64
    )
    words, summary = arrays(ref)
    out = np.full(starts.shape[0], -7, dtype=np.int64)
    got = k.bm_alloc_scan(words, summary, n, starts, out)
    expected = ref.alloc_scan(starts)
    assert got == len(expected)
    assert out[:got].tolist() == expected
    assert_state(words, summary, ref)


def test_scan_wraps_past_the_end():
    ref = RefBitmap(200, list(range(190, 200)) + [0, 1])
    words, summary = arrays(ref)
    out = np.empty(3, dtype=np.int64)
    got = k.bm_alloc_scan(words, summary, 200, np.array([195, 199, 2], dtype=np.int64), out)
    assert (got, out.tolist()) == (3, [2, 3, 4])


@pytest.mark.parametrize("n", NOT_MULTIPLE_OF_64)
@pytest.mark.parametrize("strategy", ["first", "first_from", "next", "next_batch", "scan", "block0"])
def test_pad_bits_are_never_handed_out(n, strategy):
    ref = RefBitmap(n)
    words, summary = arrays(ref)
    want = n + 70
    out = np.empty(want, dtype=np.int64)
    if strategy == "first":
        got = k.bm_alloc_first(words, summary, want, out)
    elif strategy == "first_from":
        got = k.bm_alloc_first_from(words, summary, 0, want, out)
    elif strategy == "next":
        got, _ = k.bm_alloc_next_fit(words, summary, n, max(n - 1, 0), want, out)
    elif strategy == "next_batch":
        got, _ = k.bm_alloc_next_fit_batch(words, summary, n, max(n - 1, 0), want, out)
    elif strategy == "scan":
        got = k.bm_alloc_scan(words, summary, n, np.full(want, max(n - 1, 0), dtype=np.int64), out)
    else:
        got = k.bm_alloc_blocks(words, summary, 0, want, out)
    assert got == n
    assert sorted(out[:got].tolist()) == list(range(n))
    # everything is used now, pads included, and nothing else can be taken
    assert_state(words, summary, RefBitmap(n, range(n)))
    assert k.bm_alloc_block(words, summary, 0) == -1


# ------------------------------------------------------------------------ aligned blocks
@given(states(max_n=1100), st.integers(0, 12))
def test_alloc_block(ref, order):
    words, summary = arrays(ref)
    assert k.bm_alloc_block(words, summary, order) == ref.alloc_block(order)
    assert_state(words, summary, ref)


@given(states(max_n=1100), st.integers(0, 11), st.data())
def test_alloc_blocks_equals_repeated_alloc_block(ref, order, data):
    want = data.draw(st.integers(0, ref.free_blocks(order) + 2))
    words, summary = arrays(ref)
    one_by_one_words, one_by_one_summary = arrays(ref)
    out = np.full(want, -7, dtype=np.int64)
    got = k.bm_alloc_blocks(words, summary, order, want, out)
    singles = []
    for _ in range(want):
        b = k.bm_alloc_block(one_by_one_words, one_by_one_summary, order)
        if b < 0:
            break
        singles.append(b)
    expected = ref.alloc_blocks(order, want)
    assert got == len(expected)
    assert out[:got].tolist() == expected == singles
    assert_state(words, summary, ref)
    assert_state(one_by_one_words, one_by_one_summary, ref)


@pytest.mark.parametrize("order", range(0, 9))
@pytest.mark.parametrize("n", [64, 65, 130, 300, 4097])
def test_block_orders_0_to_8_fill_an_empty_bitmap_in_ascending_order(n, order):
    size = 1 << order
    words, summary = arrays(RefBitmap(n))
    blocks = []
    while (b := k.bm_alloc_block(words, summary, order)) >= 0:
        blocks.append(b)
    # every aligned block that fits inside n, lowest first
    assert blocks == list(range(0, (n // size) * size, size))
    assert_state(words, summary, RefBitmap(n, range((n // size) * size)))


# 4097 slots with slot 81 (word 1) and slot 4095 (word 63) used: worked out by hand,
# the lowest aligned group of 2**(order-6) empty words for each order.
@pytest.mark.parametrize(
    "order, expected", [(6, 0), (7, 128), (8, 256), (9, 512), (10, 1024), (11, -1), (12, -1)]
)
def test_blocks_of_whole_words_skip_partly_used_words(order, expected):
    ref = RefBitmap(4097, [64 + 17, 4095])
    words, summary = arrays(ref)
    assert k.bm_free_blocks(words, order) == ref.free_blocks(order)
    assert k.bm_alloc_block(words, summary, order) == expected == ref.alloc_block(order)
    assert_state(words, summary, ref)


@given(states(max_n=1100), st.integers(0, 12), st.data())
def test_release_block_and_blocks(ref, order, data):
    size = 1 << order
    if ref.n < size:
        return
    starts = data.draw(st.lists(st.integers(0, ref.n // size - 1), max_size=6))
    offsets = np.array([s * size for s in starts], dtype=np.int64)
    words, summary = arrays(ref)
    one = ref.copy()
    if offsets.shape[0]:
        w1, s1 = arrays(ref)
        assert k.bm_release_block(w1, s1, int(offsets[0]), order) == one.release_block(int(offsets[0]), order)
        assert_state(w1, s1, one)
    expected = sum(ref.release_block(int(o), order) for o in offsets)
    assert k.bm_release_blocks(words, summary, offsets, order) == expected
    assert_state(words, summary, ref)


@given(states(max_n=1100))
def test_free_blocks_and_largest_free_block(ref):
    words, summary = arrays(ref)
    for order in range(0, 14):
        assert k.bm_free_blocks(words, order) == ref.free_blocks(order), order
    assert k.bm_largest_free_block(words) == ref.largest_free_block()
    assert_state(words, summary, ref)


@pytest.mark.parametrize("n, density, blocky", PARAM_STATES)
def test_fragmentation_figures_on_edge_sizes(n, density, blocky):
    ref = random_ref(n, density, seed=3 * n + 1, blocky=blocky)
    words, _ = arrays(ref)
    for order in range(0, 14):
        assert k.bm_free_blocks(words, order) == ref.free_blocks(order), order
    assert k.bm_largest_free_block(words) == ref.largest_free_block()


@pytest.mark.parametrize("n", EDGE_SIZES)
def test_largest_free_block_of_empty_and_full(n):
    words, _ = arrays(RefBitmap(n))
    assert k.bm_largest_free_block(words) == (n.bit_length() - 1 if n else -1)
    words, _ = arrays(RefBitmap(n, range(n)))
    assert k.bm_largest_free_block(words) == -1


# ------------------------------------------------------------------------ listing
@given(states(), st.data())
def test_used_offsets(ref, data):
    words, _ = arrays(ref)
    out = np.full(ref.count() + 70, -7, dtype=np.int64)  # room to spare: pad bits must not show
    assert k.bm_used_offsets(words, ref.n, out) == ref.count()
    assert out[: ref.count()].tolist() == ref.sorted_used()
    cap = data.draw(st.integers(0, ref.count()))
    short = np.empty(cap, dtype=np.int64)
    assert k.bm_used_offsets(words, ref.n, short) == cap  # stops when the buffer is full
    assert short.tolist() == ref.sorted_used()[:cap]


# ------------------------------------------------------------------------ arenas
def test_kernels_on_a_slice_leave_the_rest_of_the_arena_alone():
    n = 300
    ref = RefBitmap(n)
    nw, ns = k.bm_sizes(n)
    arena = np.full(3 * nw, 0xDEADBEEF, dtype=np.uint64)
    sums = np.full(3 * ns, 0xBEEF, dtype=np.uint64)
    words, summary = arena[nw : 2 * nw], sums[ns : 2 * ns]
    k.bm_init(words, summary, n)
    out = np.empty(n, dtype=np.int64)
    assert k.bm_alloc_first(words, summary, 10, out) == len(ref.alloc_first(10))
    assert k.bm_alloc_block(words, summary, 6) == ref.alloc_block(6)
    assert k.bm_alloc_blocks(words, summary, 2, n, out) == len(ref.alloc_blocks(2, n))
    released = np.arange(0, n, 7, dtype=np.int64)
    assert k.bm_clear_many(words, summary, released) == ref.clear_many(released)
    assert k.bm_set_many(words, summary, released) == ref.set_many(released)
    assert k.bm_clear_many_rebuild(words, summary, released) == ref.clear_many(released)
    assert_state(words, summary, ref)
    assert (arena[:nw] == 0xDEADBEEF).all() and (arena[2 * nw :] == 0xDEADBEEF).all()
    assert (sums[:ns] == 0xBEEF).all() and (sums[2 * ns :] == 0xBEEF).all()


@pytest.mark.parametrize("seed, n", [(0, 1), (1, 7), (2**63 + 5, 1000), (42, 2**24), (7, 2**32 - 1)])
def test_random_starts_match_the_plain_python_generator(seed, n):
    from ipam_core.kernels import bm_random_starts
    from reference_bitmap import random_starts

    out = np.empty(500, dtype=np.int64)
    bm_random_starts(np.uint64(seed), n, out)
    assert out.tolist() == random_starts(seed, n, 500)


def test_random_starts_are_uniform():
    from ipam_core.kernels import bm_random_starts

    out = np.empty(70_000, dtype=np.int64)
    bm_random_starts(3, 7, out)
    counts = np.bincount(out, minlength=7)
    expected = out.size / 7
    assert counts.size == 7 and np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_alloc_random_equals_scan_of_its_starts():
    n = 5000
    a_words, a_sum = arrays(RefBitmap(n))
    b_words, b_sum = arrays(RefBitmap(n))
    got_a = np.empty(3000, dtype=np.int64)
    got_b = np.empty(3000, dtype=np.int64)
    assert k.bm_alloc_random(a_words, a_sum, n, 99, 3000, got_a) == 3000
    starts = np.empty(3000, dtype=np.int64)
    k.bm_random_starts(99, n, starts)
    assert k.bm_alloc_scan(b_words, b_sum, n, starts, got_b) == 3000
    assert got_a.tolist() == got_b.tolist()
    # a full bitmap stops the batch where it filled up
    assert k.bm_alloc_random(a_words, a_sum, n, 5, 3000, got_a) == 2000


def test_negative_seeds_draw_from_their_low_64_bits():
    # Compiled, np.uint64(-3) wraps; plain NumPy refuses a negative int: both must draw the same.
    from reference_bitmap import random_starts

    n = 1000
    expected = random_starts(2**64 - 3, n, 200)
    negative = np.empty(200, dtype=np.int64)
    k.bm_random_starts(-3, n, negative)
    assert negative.tolist() == expected
    words, summary = arrays(RefBitmap(n))
    taken = np.empty(200, dtype=np.int64)
    assert k.bm_alloc_random(words, summary, n, -3, 200, taken) == 200
    assert taken[0] == expected[0]  # the first start is free on an empty bitmap


def test_arena_kernels_keep_the_counters_and_return_python_ints():
    # CIDRSet.occupy/release return these results as they are: an int, with or without the JIT
    from ipam_core.bitmap import new_arena
    from ipam_core.kernels.arena import ARENA_CURSOR, ARENA_USED, arena_clear_one, arena_set_one, arena_take_one

    arena, words, summary = new_arena(100)
    results = [
        arena_take_one(arena, -1),  # next fit from cursor 0
        arena_take_one(arena, 50),
        arena_take_one(arena, -1),  # cursor moved to 51
        arena_set_one(arena, 7),
        arena_set_one(arena, 7),
        arena_clear_one(arena, 50),
        arena_clear_one(arena, 50),
    ]
    assert results == [0, 50, 51, 1, 0, 1, 0]
    assert [type(r) for r in results] == [int] * len(results)
    assert int(arena[ARENA_USED]) == 3 and int(arena[ARENA_CURSOR]) == 52
    full, _, _ = new_arena(2)
    assert [arena_take_one(full, -1), arena_take_one(full, -1), arena_take_one(full, 0)] == [0, 1, -1]
    assert int(full[ARENA_USED]) == 2


def _arena_of(ref: RefBitmap) -> np.ndarray:
    from ipam_core.bitmap import new_arena
    from ipam_core.kernels.arena import ARENA_USED

    arena, words, summary = new_arena(ref.n)
    words[:], summary[:] = ref.words(), ref.summary()
    arena[ARENA_USED] = ref.count()
    return arena


@pytest.mark.parametrize("n", [1, 2, 65, 254, 4097])
def test_arena_take_ahead_uses_up_the_starts_drawn_ahead_in_rng_integers_order(n):
    # The starts PodIPRange draws ahead (StartsAhead.draw_starts) are rng.integers(0, n) per call,
    # and the kernel takes them in that order: the same slots as a scan from each of those.
    from ipam_core.kernels.arena import ARENA_USED, TAKE_FULL, TAKE_NO_START, arena_take_ahead
    from ipam_core.podiprange import StartsAhead

    ref = random_ref(n, 0.5, seed=n)
    arena = _arena_of(ref)
    mirror = np.random.default_rng(n)
    starts = StartsAhead(np.random.default_rng(n), n).draw_starts(count=8) if n > 1 else np.zeros(2, dtype=np.int64)
    starts[0] = 1
    free = n - ref.count()
    taken = [arena_take_ahead(arena, starts) for _ in range(min(free, starts.shape[0] - 1))]
    expected = [ref.alloc_scan([int(mirror.integers(0, n)) if n > 1 else 0])[0] for _ in taken]
    assert taken == expected and int(starts[0]) == len(taken) + 1
    assert int(arena[ARENA_USED]) == ref.count()
    left = int(starts[0])
    code = arena_take_ahead(arena, starts)
    if ref.count() == n:  # full first: no start is used up
        assert code == TAKE_FULL and int(starts[0]) == left
    else:
        assert code == TAKE_NO_START and left == starts.shape[0]
    words, summary = arena[4 + ref.sizes()[1] :], arena[4 : 4 + ref.sizes()[1]]
    assert_state(words, summary, ref)


def test_bound_arena_kernels_give_the_plain_kernels_results():
    # kernels.fastcall.bind: the same slots, counters and Python ints as calling the kernels
    # (with the JIT off it is functools.partial over them).
    from ipam_core.kernels.arena import arena_clear_one, arena_set_one, arena_take_ahead, arena_take_one
    from ipam_core.kernels.fastcall import bind

    ref = random_ref(300, 0.6, seed=4)
    plain, arena = _arena_of(ref), _arena_of(ref)
    plain_starts, starts = (np.array([1, 299, 0, 150, 7], dtype=np.int64) for _ in range(2))
    take, put, clear = bind(arena_take_one, arena), bind(arena_set_one, arena), bind(arena_clear_one, arena)
    take_ahead = bind(arena_take_ahead, arena, starts)
    script = [("take", -1), ("take", 299), ("ahead",), ("set", 5), ("set", 5), ("clear", 5), ("clear", 5),
              ("ahead",), ("ahead",), ("ahead",), ("ahead",), ("take", 0), ("clear", 299)]
    kernels = {"take": arena_take_one, "set": arena_set_one, "clear": arena_clear_one}
    bound = {"take": take, "set": put, "clear": clear}
    got, expected = [], []
    for op, *slot in script:
        if op == "ahead":
            got.append(take_ahead())
            expected.append(arena_take_ahead(plain, plain_starts))
        else:
            got.append(bound[op](*slot))
            expected.append(kernels[op](plain, *slot))
    assert got == expected and [type(g) for g in got] == [int] * len(got)
    assert -2 in got  # the starts ran out
    np.testing.assert_array_equal(arena, plain)
    np.testing.assert_array_equal(starts, plain_starts)


def test_bind_takes_starts_for_arena_take_ahead_only():
    # Either mistake would make the compiled function read memory that is not an array of starts.
    from ipam_core.bitmap import new_arena
    from ipam_core.kernels.arena import arena_take_ahead, arena_take_one
    from ipam_core.kernels.fastcall import bind

    arena = new_arena(10)[0]
    with pytest.raises(ValueError, match="starts for arena_take_ahead"):
        bind(arena_take_ahead, arena)
    with pytest.raises(ValueError, match="starts for arena_take_ahead"):
        bind(arena_take_one, arena, np.ones(3, dtype=np.int64))


def test_bound_arena_kernels_keep_their_arrays_alive_and_no_longer():
    import gc
    import weakref

    from ipam_core.bitmap import new_arena
    from ipam_core.kernels.arena import arena_take_ahead, arena_take_one
    from ipam_core.kernels.fastcall import bind

    arena = new_arena(10)[0]  # not its views, which would keep it alive
    starts = np.array([1, 4, 4], dtype=np.int64)
    alive = weakref.ref(arena), weakref.ref(starts)
    take, take_ahead = bind(arena_take_one, arena), bind(arena_take_ahead, arena, starts)
    del arena, starts
    gc.collect()
    assert all(ref() is not None for ref in alive)
    assert [take_ahead(), take_ahead(), take(-1), take_ahead()] == [4, 5, 6, -2]
    del take, take_ahead
    gc.collect()
    assert all(ref() is None for ref in alive)


@pytest.mark.skipif(__import__("numba").config.DISABLE_JIT, reason="compiled entry points only")
def test_bound_arena_kernels_refuse_wrong_arguments_with_python_errors():
    from ipam_core.bitmap import new_arena
    from ipam_core.kernels.arena import arena_take_ahead, arena_take_one
    from ipam_core.kernels.fastcall import bind

    arena, _, _ = new_arena(10)
    take = bind(arena_take_one, arena)
    for args, error in [((), TypeError), ((1, 2), TypeError), (("1",), TypeError), ((2**70,), OverflowError)]:
        with pytest.raises(error):
            take(*args)
    with pytest.raises(TypeError):
        bind(arena_take_ahead, arena, np.ones(3, dtype=np.int64))(1)
    with pytest.raises(ValueError, match="C-contiguous 1-d uint64"):
        bind(arena_take_one, arena[::2])
    with pytest.raises(ValueError, match="int64"):
        bind(arena_take_ahead, arena, np.ones(3, dtype=np.int32))
    with pytest.raises(ValueError, match="1\\+ items"):
        bind(arena_take_ahead, arena, np.ones(0, dtype=np.int64))
    assert take(3) == 3 and take(3) == 4
