"""The engine's timer queue: rings of same-kind timers plus a heap, against ``heapq``.

Node timers of one kind that come due in the order they are set go to that
kind's ring, the others to the heap (and so do pod retries to their own
ring); whichever holds them, timers must fire in exactly ``(time, order
set)`` order, as one heap would fire them. The tables start at a few
entries and grow whenever a push asks for room (engine/timer_room.py), as
``Simulation`` grows them between two steps of the loop: order holds across
every growth, a ring's wrap-around included.
"""

from __future__ import annotations

import heapq

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_helpers import scenario
from ipam_core.pipeline import build_workload
from ipam_core.engine import tables as T
from ipam_core.engine.core import (
    FROM_HEAP,
    _next_timer,
    _pop,
    _pop_node_ring,
    _pop_retry,
    _push,
    _push_retry,
)
from ipam_core.engine.timer_room import grow_timers
from ipam_core.pipeline.run import Simulation
from ipam_core.scenario import scenario_for_mode

DELAYS = (0.0, 1.0, 15.0, 60.0, 2.5)  # a few fixed delays, so most node timers stay in order per kind
RETRY_S = 10.0


def fresh_state(tmp_path):
    sc = scenario(tmp_path, {"cluster": {"nodes": 4}, "duration": "1m"})
    sim = Simulation(scenario_for_mode(sc, "multi-pool"), build_workload(sc), "multi-pool")
    return sim.state


def pop_next(state):
    source, t = _next_timer(state.core.timer, state.core.cnt)
    if source == T.T_POD_RETRY:
        a, b = _pop_retry(state.core.pod_tables, state.core.timer, state.core.cnt), 0
        return t, T.T_POD_RETRY, a, b
    if source == FROM_HEAP:
        kind, a, b = _pop(state.core.timer, state.core.cnt)
        return t, kind, a, b
    a, b = _pop_node_ring(state.core.timer, source)
    return t, source, a, b


steps = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 3), st.sampled_from(DELAYS), st.integers(0, 3)),
        st.tuples(st.just("pop"), st.just(0), st.just(0.0), st.just(0)),
        st.tuples(st.just("wait"), st.just(0), st.floats(0.0, 20.0), st.just(0)),
    ),
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_timers_fire_in_time_then_set_order_like_one_heap(tmp_path_factory, plan):
    state = fresh_state(tmp_path_factory.mktemp("timers"))
    fresh_sizes = state.core.timer.heap_t.size + state.core.timer.retry_t.size + state.core.timer.node_ring_t.size
    model: list[tuple[float, int, int, int, int]] = []
    now, seq, fired, grown = 0.0, 0, [], 0
    for op, kind, value, a in plan:
        if op == "wait":
            now += value
        elif op == "push":
            if kind == T.T_POD_RETRY:
                t = now + RETRY_S  # the engine sets every pod retry one podRetryInterval ahead
                _push_retry(state.core.pod_tables, state.core.timer, state.core.cnt, t, a)
            else:
                t = now + value
                _push(state.core.timer, state.core.cnt, t, kind, a, 7)
            heapq.heappush(model, (t, seq, kind, a, 0 if kind == T.T_POD_RETRY else 7))
            seq += 1
            if state.core.cnt[T.K_ERROR] == T.GROW_TIMERS:  # past a limit: grown before the next step
                state = grow_timers(state)
                grown += 1
        elif model:
            t, _, kind, a_, b = heapq.heappop(model)
            fired.append(((t, kind, a_, b), pop_next(state)))
            now = max(now, t)
    assert state.core.cnt[T.K_ERROR] == 0
    assert grown == 0 or state.core.timer.heap_t.size + state.core.timer.retry_t.size + state.core.timer.node_ring_t.size > fresh_sizes
    for expected, got in fired:
        assert got == expected
    assert _next_timer(state.core.timer, state.core.cnt)[1] == (model[0][0] if model else np.inf)
