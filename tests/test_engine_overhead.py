"""The per-point shortcuts of issue #10 give the same results as the long way round."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa

from ipam_core.engine import build_workload, simulate, summarize
from ipam_core.engine.run import Simulation, workload_facts
from ipam_core.engine.state import build_state
from ipam_core.scenario import load_scenario


REPO = Path(__file__).resolve().parents[1]


def dual_stack_scenario():
    return load_scenario(str(REPO / "scenarios" / "dual-stack.yaml"))


def test_summary_from_counter_block_matches_summary_from_trace_columns():
    for sc in (load_scenario("default"), dual_stack_scenario()):
        result = simulate(sc)
        assert all(m.counters is not None for m in result.modes)
        # without the block, summarize stacks the trace columns itself
        plain = dataclasses.replace(result, modes=[dataclasses.replace(m, counters=None) for m in result.modes])
        fast, slow = summarize(result), summarize(plain)
        assert fast.equals(slow)
        assert fast.schema.field("pods_failed").type == pa.int64()
        assert fast.schema.field("idle_pct").type == pa.float64()
        assert fast.num_rows == sum(len(m.families) for m in result.modes)
        # spot-check columns against the trace itself
        for row, m in zip(fast.to_pylist(), [m for m in result.modes for _ in m.families]):
            pick = m.trace["family"] == row["family"]
            assert row["peak_used"] == int(m.trace["addrs_used"][pick].max())
            assert row["cidr_carves"] == int(m.trace["cidr_carves"][pick][-1])


def test_empty_result_summarizes_to_an_empty_table():
    result = simulate(load_scenario("default"))
    assert summarize(dataclasses.replace(result, modes=[])).num_rows == 0


def test_states_built_from_the_cached_layout_tables_do_not_share_memory():
    sc = load_scenario("default")
    w = build_workload(sc)
    sim = Simulation(sc, w, "cluster-pool")
    b = workload_facts(w, sim.config.pod_retry_s)
    first = build_state(sim.layout, sim.config, len(w.node_names), w.n_pods, b.node_adds, b.max_live, b.stale_timers)
    second = build_state(sim.layout, sim.config, len(w.node_names), w.n_pods, b.node_adds, b.max_live, b.stale_timers)
    for a, c in zip(first, second):
        assert a.flags.writeable and not np.shares_memory(a, c)
        np.testing.assert_array_equal(a, c)
    # a run mutates its state; the next state of the same layout starts fresh
    sim.advance(sc.duration_s)
    third = build_state(sim.layout, sim.config, len(w.node_names), w.n_pods, b.node_adds, b.max_live, b.stale_timers)
    for a, c in zip(first, third):
        np.testing.assert_array_equal(a, c)
