"""PodIPRange(batch_only=True): no per-call state until a per-call method needs it, the same results either way."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam_core import PodIPRange
from ipam_core.errors import RangeFull
from ipam_core.migration.plan import plan_migration
from ipam_core.podiprange import DRAW_AHEAD_AFTER, STRATEGIES
from ipam_core.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

#: What a default range builds for its per-call methods (bound kernels, text maps).
PER_CALL_STATE = (
    "_take_one", "_set_one", "_clear_one", "_take_next",  # bound kernels
    "_text_cache", "_texts", "_index_of", "_remember",  # text maps
)


def per_call_state(r: PodIPRange) -> set[str]:
    return set(PER_CALL_STATE) & set(vars(r))


def batch_calls(r: PodIPRange) -> None:
    got = r.allocate_next_many(40)
    r.release_offsets(got[:10])
    r.allocate_offsets(np.setdiff1d(np.arange(20, 30), r.allocated_offsets()))
    r.allocate_next_with_starts([3, 4])
    r.addresses(r.allocated_offsets())
    assert r.used == len(r.allocated_offsets()) and r.free == r.capacity - r.used


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_batch_only_range_builds_no_per_call_state_until_a_per_call_method(strategy):
    assert per_call_state(PodIPRange("10.0.0.0/24", strategy)) == set(PER_CALL_STATE)  # a default range: all built
    r = PodIPRange("10.0.0.0/24", strategy, seed=5, batch_only=True)
    assert isinstance(r, PodIPRange)
    batch_calls(r)
    r.rng  # settles: no kernel bound to new starts either
    assert per_call_state(r) == set()
    r.allocate_next()
    assert per_call_state(r) == set(PER_CALL_STATE)


@pytest.mark.parametrize(
    "first_call", ["allocate_next", "allocate", "release", "has", "address_of", "allocate_next_with_start"]
)
def test_any_per_call_method_works_first_on_a_batch_only_range(first_call):
    default, batch_only = PodIPRange("10.0.0.0/28", seed=2), PodIPRange("10.0.0.0/28", seed=2, batch_only=True)
    for r in (default, batch_only):
        r.allocate_offsets([1, 2])
    calls = {
        "allocate_next": lambda r: r.allocate_next(),
        "allocate": lambda r: r.allocate("10.0.0.9"),
        "release": lambda r: r.release("10.0.0.2"),
        "has": lambda r: r.has("10.0.0.3"),
        "address_of": lambda r: r.address_of(4),
        "allocate_next_with_start": lambda r: r.allocate_next_with_start(0),
    }
    assert calls[first_call](batch_only) == calls[first_call](default)
    assert [batch_only.allocate_next() for _ in range(5)] == [default.allocate_next() for _ in range(5)]
    assert batch_only.allocated_offsets().tolist() == default.allocated_offsets().tolist()


# Operations on a /26 (62 addresses): single calls, batches, texts in and out, reading the generator.
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("next"), st.integers(1, DRAW_AHEAD_AFTER + 40)),  # long runs draw starts ahead
        st.tuples(st.just("many"), st.integers(0, 30)),
        st.tuples(st.just("release"), st.integers(0, 61)),
        st.tuples(st.just("release_offsets"), st.integers(0, 61)),
        st.tuples(st.just("allocate"), st.integers(0, 61)),
        st.tuples(st.just("with_start"), st.integers(0, 61)),
        st.tuples(st.just("rng"), st.just(0)),
        st.tuples(st.just("copy"), st.integers(0, 1)),
    ),
    max_size=25,
)


def run(r: PodIPRange, ops) -> tuple[list, PodIPRange]:
    seen = []
    for op, x in ops:
        try:
            if op == "next":
                seen.append([r.allocate_next() for _ in range(min(x, r.free))])
            elif op == "many":
                seen.append(r.addresses(r.allocate_next_many(x)).to_pylist())
            elif op == "release":
                r.release(f"10.0.0.{x + 1}")
            elif op == "release_offsets":
                seen.append(r.release_offsets(np.arange(x, 62, 7)))
            elif op == "allocate":
                seen.append(r.has(f"10.0.0.{x + 1}"))
                r.allocate(f"10.0.0.{x + 1}")
            elif op == "with_start":
                seen.append(r.allocate_next_with_start(x))
            elif op == "rng":
                seen.append(r.rng.bit_generator.state["state"]["state"])
            else:
                r = pickle.loads(pickle.dumps(r)) if x % 2 else copy.deepcopy(r)
        except Exception as error:  # noqa: BLE001 - the same error either way is part of the result
            seen.append(f"{type(error).__name__}: {error}")
        seen.append((r.used, r.cursor))
    seen.append(r.allocated_offsets().tolist())
    return seen, r


@settings(max_examples=60, deadline=None)
@given(strategy=st.sampled_from(STRATEGIES), ops=OPS)
def test_batch_only_gives_what_a_default_range_gives(strategy, ops):
    default_seen, default = run(PodIPRange("10.0.0.0/26", strategy, seed=11), ops)
    batch_seen, batch_only = run(PodIPRange("10.0.0.0/26", strategy, seed=11, batch_only=True), ops)
    assert batch_seen == default_seen
    assert batch_only.rng.bit_generator.state == default.rng.bit_generator.state


def test_a_shared_generator_is_drawn_from_the_same_way():
    g, h = np.random.default_rng(8), np.random.default_rng(8)
    default, batch_only = PodIPRange("10.0.0.0/24", seed=g), PodIPRange("10.0.0.0/24", seed=h, batch_only=True)
    for r in (default, batch_only):
        r.allocate_next_many(100)
    assert [batch_only.allocate_next() for _ in range(60)] == [default.allocate_next() for _ in range(60)]
    assert g.bit_generator.state == h.bit_generator.state


def test_a_batch_only_range_copied_before_and_after_its_first_per_call_use():
    r = PodIPRange("10.0.0.0/24", seed=3, batch_only=True)
    r.allocate_next_many(5)
    twin = pickle.loads(pickle.dumps(r))
    assert type(twin) is type(r) and per_call_state(twin) == set()
    mirror = PodIPRange("10.0.0.0/24", seed=3)
    mirror.allocate_next_many(5)
    expected = [mirror.allocate_next() for _ in range(DRAW_AHEAD_AFTER + 10)]  # past the draw-ahead threshold
    assert [twin.allocate_next() for _ in range(DRAW_AHEAD_AFTER + 10)] == expected
    again = pickle.loads(pickle.dumps(twin))  # bound kernels are not pickled: on first use again
    assert per_call_state(again) == {"_text_cache", "_texts", "_index_of", "_remember"}
    assert again.allocate_next() == twin.allocate_next() == mirror.allocate_next()
    twin.release(expected[0])
    assert not twin.has(expected[0]) and again.has(expected[0])


def test_full_batch_only_range_raises_as_a_default_one():
    r = PodIPRange("10.0.0.0/30", batch_only=True)
    assert r.allocate_next_many(5).shape[0] == 2
    with pytest.raises(RangeFull, match="range is full"):
        r.allocate_next()


def test_a_batch_call_keeps_the_kernel_bound_when_no_start_was_drawn_ahead():
    r = PodIPRange("10.0.0.0/24", seed=6)
    kernel = r._take_next
    r.allocate_next_many(3)
    r.release_offsets([0, 1])
    assert r._take_next is kernel  # nothing drawn ahead: nothing to bind again
    for _ in range(DRAW_AHEAD_AFTER + 2):
        r.allocate_next()
    drawn = r._take_next
    assert drawn is not kernel  # bound to the starts drawn ahead
    r.allocate_next_many(1)  # settles them
    assert r._take_next is not drawn and r._starts.shape[0] == 1


def test_the_migration_planner_builds_batch_only_ranges_and_never_binds_them(monkeypatch):
    built, bound = [], []
    batch_only_class = type(PodIPRange("10.0.0.0/30", batch_only=True))
    original_init, original_bind = batch_only_class.__init__, batch_only_class._bind_now

    def counted_init(self, *args, **kwargs):
        built.append(kwargs.get("batch_only"))
        original_init(self, *args, **kwargs)

    def counted_bind(self):
        bound.append(self)
        original_bind(self)

    monkeypatch.setattr(batch_only_class, "__init__", counted_init)
    monkeypatch.setattr(batch_only_class, "_bind_now", counted_bind)
    plan = plan_migration(load_scenario(SCENARIOS / "seed-lab.yaml"))
    assert plan.rows and len(built) > 0 and set(built) == {True} and bound == []

