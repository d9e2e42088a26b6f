"""The engine's random stream outside the engine (:class:`ipam_core.splitmix.SplitMix64Stream`).

It must give what the engine's ``draw`` gives from the same seed, and a pod range seeded with it must take
what the seeded bitmap kernel takes; several ranges on one stream draw in call order.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam_core import PodIPRange
from ipam_core.engine.rng import draw, seed_state
from ipam_core.engine.tables import K_NCOL, K_RNG
from ipam_core.kernels.layout import bm_init, bm_sizes
from ipam_core.kernels.scan import bm_alloc_random
from ipam_core.splitmix import SplitMix64Stream


def engine_draws(seed: int, bounds) -> tuple[list[int], int]:
    """The engine's draws, one ``draw(cnt, bound)`` per bound, from a run seeded with ``seed``; and the state after."""
    cnt = np.zeros(K_NCOL, dtype=np.int64)
    cnt[K_RNG] = seed_state(seed)
    values = [int(draw(cnt, b)) for b in bounds]
    return values, int(cnt[K_RNG]) & (2**64 - 1)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(-(2**63), 2**64 - 1),
       bounds=st.lists(st.sampled_from([1, 2, 3, 6, 14, 62, 254, 65534, 2**31 + 11]), min_size=1, max_size=40))
def test_the_stream_draws_what_the_engine_draws(seed, bounds):
    stream = SplitMix64Stream(seed)
    got = [stream.integers(0, b) for b in bounds]
    want, state = engine_draws(seed, bounds)
    assert got == want
    assert stream.state == state


@pytest.mark.parametrize("seed", [0, 6, 20261206, -1, 2**63 + 5])
def test_a_batch_is_the_engine_draws_in_order(seed):
    stream = SplitMix64Stream(seed)
    batch = stream.integers(0, 254, size=500)
    want, state = engine_draws(seed, [254] * 500)
    assert batch.dtype == np.int64 and batch.tolist() == want and stream.state == state
    assert min(want) >= 0 and max(want) < 254 and len(set(want)) > 150  # not a constant or a short cycle


@pytest.mark.parametrize("cidr,k", [("10.1.0.0/24", 200), ("10.1.0.0/28", 14), ("10.1.0.0/31", 2)])
def test_a_range_on_a_stream_takes_what_the_seeded_kernel_takes(cidr, k):
    # bm_alloc_random draws its starts from a SplitMix64 stream of its own: same seed, same offsets
    seed = 4242
    r = PodIPRange(cidr, "random", seed=SplitMix64Stream(seed))
    got = r.allocate_next_many(k)
    n = r.capacity
    nw, ns = bm_sizes(n)
    words, summary = np.zeros(nw, dtype=np.uint64), np.zeros(ns, dtype=np.uint64)
    bm_init(words, summary, n)
    out = np.empty(k, dtype=np.int64)
    assert bm_alloc_random(words, summary, n, seed, k, out) == k
    assert got.tolist() == out.tolist()


def test_single_calls_and_ranges_sharing_a_stream_draw_in_call_order():
    # one draw per address, whichever range asks: the values are the stream's in order
    stream = SplitMix64Stream(99)
    a = PodIPRange("10.2.0.0/24", "random", seed=stream)
    b = PodIPRange("10.3.0.0/24", "random", seed=stream)
    taken = [a.offset_of(a.allocate_next()), int(b.allocate_next_many(1)[0]), a.offset_of(a.allocate_next())]
    starts, _ = engine_draws(99, [254, 254, 254])
    assert taken[:2] == starts[:2]  # empty ranges: the address is the start itself
    assert taken[2] == starts[2] or (starts[2] == taken[0] and taken[2] == (taken[0] + 1) % 254)
    assert a.rng is stream and b.rng is stream


def test_many_single_calls_stay_on_the_stream():
    # past DRAW_AHEAD_AFTER single calls a range that owns a PCG64 generator draws ahead; a stream is never
    # drawn ahead (other ranges may share it), so 300 single calls leave exactly 300 draws taken
    stream = SplitMix64Stream(7)
    r = PodIPRange("10.4.0.0/23", "random", seed=stream)
    for _ in range(300):
        r.allocate_next()
    _, state = engine_draws(7, [510] * 300)
    assert stream.state == state and r.used == 300


@pytest.mark.parametrize("low,high", [(1, 10), (0, 0), (0, 2**32)])
def test_bounds_other_than_a_random_start_are_refused(low, high):
    with pytest.raises(ValueError, match="0 < n < 2"):
        SplitMix64Stream(1).integers(low, high)
