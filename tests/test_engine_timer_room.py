"""Timer tables that start small and grow between the loop's steps (engine/timer_room.py, issue #9).

What each test holds: a node ring's timers keep their order across a growth while
the ring wraps around; the pod-retry ring is sized at its bound and never grows,
however many pods wait; runs whose tables start with no room at all and grow by
the least each time (dozens of stops) give the same trace and node rows, number
for number, as runs sized so generously that they never grow, in every pool mode
with drains and agent restarts and in the cloud modes; a drain asks for the heap
room its evicted pods could need before it evicts the first, so that one step
never overflows a table with a small room.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ipam_core.engine.state as state_module
from engine_helpers import scenario, workload
from ipam_core.engine import tables as T
from ipam_core.engine import timer_room
from ipam_core.engine.core import DRAIN_TIMERS_PER_POD, _pop_node_ring, _push
from ipam_core.pipeline import build_workload
from ipam_core.pipeline import run as run_module
from ipam_core.pipeline.run import Simulation, sample_times
from ipam_core.scenario import load_scenario, scenario_for_mode
from ipam_core.workloads.events import OP_NODE_ADD, OP_NODE_DRAIN, OP_POD_ADD

REPO = Path(__file__).resolve().parents[1]
LIFECYCLE = {"generator": "steady-churn", "podsPerNode": 20, "churnPerSecond": 2, "fillQps": 20,
             "lifecycle": {"drains": [{"at": 120, "nodes": 2}], "agentRestarts": [200]}}


@pytest.fixture
def sizing(monkeypatch):
    """Set the timer tables' start, room and growth; no state template built before is reused."""
    monkeypatch.setattr(state_module, "_TEMPLATES", {})
    monkeypatch.setattr(state_module, "_TEMPLATE_BYTES", {})
    grown = []
    real_grow = run_module.grow_timers

    def counting(state):
        grown.append((int(state.core.cnt[T.K_EVENT]), int(state.core.cnt[T.K_HEAP_NEED])))  # where it stopped, for what
        return real_grow(state)

    monkeypatch.setattr(run_module, "grow_timers", counting)

    def set_sizing(start_per_node: int, room: int, least_growth: bool = False):
        monkeypatch.setattr(timer_room, "START_PER_NODE", start_per_node)
        monkeypatch.setattr(timer_room, "TIMER_ROOM", room)
        if least_growth:  # just what was asked for: the loop stops at nearly every push past a limit
            monkeypatch.setattr(timer_room, "_capacity", lambda cap, need: max(cap + 1, need + room))
        grown.clear()
        state_module._TEMPLATES.clear()  # a state template keeps its timer tables' sizes
        state_module._TEMPLATE_BYTES.clear()
        return grown

    return set_sizing


def record(sc, w, mode):
    """The trace counters, warm column and node rows of one run, and the run's timer-table entries."""
    sim = Simulation(sc, w, mode)
    times = sample_times(sc.duration_s, sc.sample_interval_s)
    _, nodes = sim.record(times, np.ones(times.size, dtype=np.bool_))
    rows = {k: np.asarray(v) for k, v in nodes.items() if k != "cidrs_values"}
    rows["cidrs_values"] = nodes["cidrs_values"].to_pylist()
    size = sim.state.core.timer.heap_t.size + sim.state.core.timer.retry_t.size + sim.state.core.timer.node_ring_t.size
    return sim.counters.copy(), sim.warm.copy(), rows, size


def assert_same_run(tight, generous):
    np.testing.assert_array_equal(tight[0], generous[0])
    np.testing.assert_array_equal(tight[1], generous[1])
    assert tight[2].keys() == generous[2].keys()
    for key in generous[2]:
        np.testing.assert_array_equal(tight[2][key], generous[2][key], err_msg=key)


def test_a_wrapped_ring_keeps_its_order_when_it_grows(tmp_path):
    sc = scenario(tmp_path, {"cluster": {"nodes": 4}, "duration": "1m"})
    state = Simulation(scenario_for_mode(sc, "kubernetes"), build_workload(sc), "kubernetes").state
    kind = int(T.T_AGENT_SYNC)
    cap = state.core.timer.node_ring_t.shape[1]
    for k in range(cap - 2):  # the head walks to two entries before the end
        _push(state.core.timer, state.core.cnt, float(k), kind, k % 4, 7)
        _pop_node_ring(state.core.timer, kind)
    limit = int(state.core.cnt[T.K_RING_LIMIT])
    pushed = [(float(cap + k), k % 4) for k in range(limit + 1)]  # in time order; the last one is past the limit
    for t, node in pushed:
        _push(state.core.timer, state.core.cnt, t, kind, node, 7)
    assert state.core.cnt[T.K_HEAP] == 0  # every one went to the ring
    assert state.core.timer.node_ring_pos[kind, 0] + state.core.timer.node_ring_pos[kind, 1] > cap  # wraps around
    assert state.core.cnt[T.K_ERROR] == T.GROW_TIMERS and state.core.cnt[T.K_RING_NEED] == limit + 1
    state = timer_room.grow_timers(state)
    assert state.core.timer.node_ring_t.shape[1] > cap and state.core.cnt[T.K_ERROR] == 0
    assert state.core.cnt[T.K_RING_LIMIT] >= limit + 1
    popped = []
    while state.core.timer.node_ring_pos[kind, 1]:
        head = state.core.timer.node_ring_pos[kind, 0]
        popped.append((float(state.core.timer.node_ring_t[kind, head]), int(_pop_node_ring(state.core.timer, kind)[0])))
    assert popped == pushed


def test_the_retry_ring_holds_its_bound_from_the_start(tmp_path, sizing):
    # 200 pods and no node yet: every pod waits, a retry each, far past what the heap and rings start with
    events = [(0.0, OP_POD_ADD, -1, i) for i in range(200)] + [(30.0, OP_NODE_ADD, 0, -1)]
    sc = scenario_for_mode(scenario(tmp_path, {"cluster": {"nodes": 1}, "duration": "1m"}), "kubernetes")
    grown = sizing(start_per_node=0, room=8)
    sim = Simulation(sc, workload(events, 1), "kubernetes")
    size = sim.state.core.timer.retry_t.size
    assert size >= 200
    sim.advance(29.0)  # the retries fired and were set again, twice
    assert sim.state.core.cnt[T.K_RETRY_LEN] == 200 and sim.state.core.cnt[T.K_ERROR] == 0
    assert len(grown) == 0 and sim.state.core.timer.retry_t.size == size  # the loop never stopped to grow it


def pool_cases(tmp_path):
    sc = scenario(tmp_path, {"cluster": {"nodes": 6}, "duration": "6m", "workload": LIFECYCLE})
    w = build_workload(sc)
    return [(scenario_for_mode(sc, mode), w, mode) for mode in ("kubernetes", "cluster-pool", "multi-pool")]


def cloud_cases():
    sc = load_scenario(str(REPO / "scenarios" / "cloud-modes.yaml"))
    w = build_workload(sc)
    return [(scenario_for_mode(sc, mode), w, mode) for mode in ("eni", "aws-vpc-cni", "azure", "crd")]


@pytest.mark.parametrize("cases", ["pool modes with a lifecycle", "cloud modes"])
def test_runs_that_grow_their_tables_match_runs_that_never_do(tmp_path, sizing, cases):
    for sc, w, mode in (pool_cases(tmp_path) if cases.startswith("pool") else cloud_cases()):
        grown = sizing(start_per_node=0, room=8, least_growth=True)
        tight = record(sc, w, mode)
        stops = len(grown)
        grown = sizing(start_per_node=10_000, room=64)
        generous = record(sc, w, mode)
        assert len(grown) == 0, mode  # sized so that it never stops
        assert stops >= 5, (mode, stops)  # the tight run stopped and grew several times
        assert tight[3] < generous[3], mode
        assert_same_run(tight, generous)


def test_a_drain_asks_for_its_room_before_it_starts(tmp_path, sizing):
    # one cordoned node left for 30 pods: the drain evicts them all in one step, so it asks for the heap
    # room its evicted pods could need (DRAIN_TIMERS_PER_POD each) before it evicts the first
    pods = [(1.0, OP_POD_ADD, -1, i) for i in range(30)]
    events = [(0.0, OP_NODE_ADD, 0, -1), *pods, (10.0, OP_NODE_DRAIN, 0, -1)]
    sc = scenario_for_mode(scenario(tmp_path, {"cluster": {"nodes": 1}, "duration": "1m"}), "kubernetes")
    w = workload(events, 1)
    grown = sizing(start_per_node=0, room=2)
    tight = record(sc, w, "kubernetes")
    drain = len(events) - 1
    # the loop stopped with every event before the drain done, asking for the drain's heap room
    assert any(event == drain and need >= 30 * DRAIN_TIMERS_PER_POD for event, need in grown), grown
    sizing(start_per_node=10_000, room=64)
    assert_same_run(tight, record(sc, w, "kubernetes"))
    assert tight[0][list(run_module.TRACE_COUNTERS).index("pods_pending"), -1] == 30  # they did wait
