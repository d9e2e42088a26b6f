"""The per-point shortcuts of issue #10 give the same results as the long way round."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam_core.pipeline import build_workload, simulate, summarize
from ipam_core.pipeline.run import Simulation, workload_facts
from ipam_core.engine.state import build_state, named_arrays, scan_workload
from ipam_core.errors import IPAMBenchError
from ipam_core.scenario import load_scenario
from ipam_core.workloads import Workload
from ipam_core.workloads.events import OP_NODE_ADD, OP_POD_ADD, OP_POD_DEL, renumber_pods


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
    for a, c in zip(named_arrays(first).values(), named_arrays(second).values()):
        assert a.flags.writeable and not np.shares_memory(a, c)
        np.testing.assert_array_equal(a, c)
    # a run mutates its state; the next state of the same layout starts fresh
    sim.advance(sc.duration_s)
    third = build_state(sim.layout, sim.config, len(w.node_names), w.n_pods, b.node_adds, b.max_live, b.stale_timers)
    for a, c in zip(named_arrays(first).values(), named_arrays(third).values()):
        np.testing.assert_array_equal(a, c)


def numpy_bounds(time, op, retry_s):
    """The numpy formulas the compiled scan replaced: running live count, delete windows, node adds."""
    delta = np.where(op == OP_POD_ADD, 1, np.where(op == OP_POD_DEL, -1, 0))
    max_live = int(np.cumsum(delta).max()) if delta.size else 0
    deletes = time[op == OP_POD_DEL]
    window = np.searchsorted(deletes, deletes + retry_s, side="right") - np.arange(deletes.size)
    return max_live, int(window.max()) if window.size else 0, int(np.count_nonzero(op == OP_NODE_ADD))


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(0, 3), st.sampled_from([OP_NODE_ADD, 1, OP_POD_ADD, OP_POD_DEL])), max_size=60),
    retry_s=st.sampled_from([0.0, 0.5, 1.0, 2.5, 10.0]),
)
def test_compiled_workload_scan_matches_the_numpy_formulas(steps, retry_s):
    time = np.cumsum([gap * 0.5 for gap, _ in steps]).astype(np.float64) if steps else np.zeros(0)
    op = np.array([kind for _, kind in steps], dtype=np.int8)
    w = Workload(time=time, op=op, node=np.zeros(op.size, np.int32), pod=np.zeros(op.size, np.int32),
                 namespace=np.zeros(op.size, np.int32), pool=np.full(op.size, -1, np.int32), node_names=[],
                 namespaces=["default"], pool_names=[], n_pods=0)
    assert scan_workload(w, retry_s) == numpy_bounds(time, op, retry_s)


def test_pod_pools_follow_namespace_and_annotation():
    sc = load_scenario(str(REPO / "scenarios" / "multi-pool-teams.yaml"))
    w = build_workload(sc)
    sim = Simulation(sc, w, "multi-pool")
    adds = w.op == OP_POD_ADD
    for family in sim.layout.families:
        for pod, ns, ann in zip(w.pod[adds][:200], w.namespace[adds][:200], w.pool[adds][:200]):
            annotations = {"ipam.cilium.io/ip-pool": w.pool_names[ann]} if ann >= 0 else {}
            try:
                want = sim.layout.pool_names.index(
                    sc.select_pool(4 if family == 0 else 6, w.namespaces[ns], pod_annotations=annotations))
            except (IPAMBenchError, ValueError):
                want = -1
            assert sim.state.core.pod_tables.pod_pool[pod, family] == want


def reference_renumber(op, pod, n_old):
    """Dense ids in add order, the general way (a lookup table over old ids)."""
    old_of_new = pod[op == OP_POD_ADD].astype(np.int64)
    new_of_old = np.full(max(n_old, 1), -1, dtype=np.int32)
    new_of_old[old_of_new] = np.arange(len(old_of_new), dtype=np.int32)
    return np.where(pod >= 0, new_of_old[np.maximum(pod, 0)], -1).astype(np.int32), old_of_new


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 12), shuffle=st.booleans(), extra=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_renumber_pods_matches_the_general_renumbering(n, shuffle, extra, seed):
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n) if shuffle else np.arange(n)  # in creation order or not
    op = np.concatenate([np.full(n, OP_POD_ADD, np.int8), np.full(n, OP_POD_DEL, np.int8), [OP_NODE_ADD]])
    pod = np.concatenate([ids, rng.permutation(ids), [-1]]).astype(np.int32)
    new_pod, old_of_new = renumber_pods(op, pod, n + extra)
    want_pod, want_old = reference_renumber(op, pod, n + extra)
    assert new_pod.dtype == want_pod.dtype and np.array_equal(new_pod, want_pod)
    assert np.array_equal(old_of_new, want_old)
