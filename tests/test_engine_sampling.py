"""Sampling inside the compiled loop (engine/sampling.py) against a recount from the state tables.

The reference below steps a :class:`Simulation` to each sample time with
``advance`` and reads the counters and node rows from the state with plain
numpy, the way ``run_mode`` did before sampling moved into the compiled loop.
``run_mode`` must give the same trace and node rows, value for value, in the
pool modes, dual-stack and the cloud modes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import ipam_core.pipeline.run as run_module
from engine_helpers import nodes_then_pods
from engine_helpers import scenario as yaml_scenario
from engine_helpers import workload as events_workload
from ipam_core.addr import format_cidrs
from ipam_core.pipeline import build_workload
from ipam_core.engine import tables as T
from ipam_core.engine.sampling import CALICO_COUNTERS
from ipam_core.pipeline.run import TRACE_COUNTERS, EngineCapacityError, Simulation, run_mode, sample_times
from ipam_core.kernels.blocks import bm_largest_free_block
from ipam_core.scenario import load_scenario, scenario_for_mode

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


# ---------------------------------------------------------------------------- the reference recount
def family_counter(st, family, field):
    return int(st.core.cnt[T.K_FAMILY_BASE + T.FAMILY_STRIDE * family + field])


def reference_trace_row(sim: Simulation, family: int) -> dict:
    st, c = sim.state, sim.state.core.cnt
    pool = sum(int(st.core.cidr.sets[i, T.S_N] * st.core.cidr.sets[i, T.S_ADDRS]) for i, s in enumerate(sim.layout.sets) if s.family == family)
    largest = 0
    for i, spec in enumerate(sim.layout.sets):
        if spec.family == family:
            w0, nw = st.core.cidr.sets[i, T.S_W_OFF], st.core.cidr.sets[i, T.S_W_LEN]
            order = bm_largest_free_block(st.core.cidr.set_words[w0 : w0 + nw])
            if order >= 0:
                largest = max(largest, (1 << int(order)) * int(st.core.cidr.sets[i, T.S_ADDRS]))
    carved = family_counter(st, family, T.F_CARVED)
    reserved = family_counter(st, family, T.F_RESERVED)
    used = family_counter(st, family, T.F_USED)
    nodes = int(c[T.K_NODES])
    cloud = sim.layout.policy == T.POLICY_CLOUD
    return {
        "nodes": nodes, "nodes_ready": int(c[T.K_READY]), "pods_running": int(c[T.K_RUNNING]),
        "pods_pending": int(c[T.K_PENDING]), "pods_failed": int(c[T.K_FAILED]),
        "pods_failed_free_elsewhere": int(c[T.K_FAILED_FREE]), "addrs_pool": pool, "addrs_carved": carved,
        "addrs_reserved": reserved, "addrs_used": used, "addrs_idle": carved - reserved - used,
        "addrs_uncarved": pool - carved, "node_cidrs": family_counter(st, family, T.F_NODE_CIDRS),
        "carvable_node_cidrs": family_counter(st, family, T.F_CARVABLE), "largest_free_block": largest,
        "cidr_carves": family_counter(st, family, T.F_CARVES), "cidr_releases": family_counter(st, family, T.F_RELEASES),
        "ip_allocs": family_counter(st, family, T.F_IP_ALLOCS), "ip_alloc_failures": family_counter(st, family, T.F_IP_FAILS),
        "warm_addrs_per_node": family_counter(st, family, T.F_FREE) / nodes if cloud and nodes else 0.0,
        "interfaces": int(c[T.K_CL_IFACES]), "prefixes": int(c[T.K_CL_PREFIXES]),
        "frag_failures": int(c[T.K_CL_FRAG_FAILS]), "cloud_api_attach": int(c[T.K_CL_API_ATTACH]),
        "cloud_api_assign": int(c[T.K_CL_API_ASSIGN]), "cloud_api_release": int(c[T.K_CL_API_RELEASE]),
        "cloud_api_prefix": int(c[T.K_CL_API_PREFIX]), "cloud_api_throttled": int(c[T.K_CL_API_THROTTLED]),
        "cloud_api_delay_ms": int(c[T.K_CL_API_DELAY_US]) // 1000, "pods_started": int(c[T.K_STARTED]),
        "pod_start_wait_ms": int(c[T.K_START_WAIT_MS]),
        "pods_evicted": int(c[T.K_EVICTED]), "pods_evicted_failed": int(c[T.K_EVICTED_FAILED]),
        "nodes_cordoned": int(c[T.K_CORDONED]), **reference_lifecycle(st, family, cloud),
        **dict.fromkeys(CALICO_COUNTERS, 0),  # Calico's own rows: 0 in the pool and cloud modes
    }


def reference_lifecycle(st, family: int, cloud: bool) -> dict:
    """What cordoned nodes hold, and the stranded node CIDRs, from the tables."""
    present = st.core.nodes[:, T.N_PRESENT] == 1
    cordoned = np.flatnonzero(present & (st.core.nodes[:, T.N_CORDONED] == 1))
    slots = [s for n in np.flatnonzero(present) for s in st.core.cidr.node_slots[n] if s >= 0 and st.core.cidr.slots[s, T.L_FAMILY] == family]
    stranded = [s for s in slots if st.core.cidr.slots[s, T.L_STATE] == T.SLOT_STRANDED]
    if cloud:
        held = int(st.cl_node[cordoned, T.CN_HELD].sum()) if family == 0 else 0
    else:
        held = sum(int(st.core.cidr.sets[st.core.cidr.slots[s, T.L_SET], T.S_ADDRS]) for n in cordoned for s in st.core.cidr.node_slots[n]
                   if s >= 0 and st.core.cidr.slots[s, T.L_FAMILY] == family)
    return {"addrs_held_cordoned": held, "cidrs_stranded": len(stranded),
            "addrs_stranded": sum(int(st.core.cidr.slots[s, T.L_MAX]) for s in stranded)}


def reference_node_rows(sim: Simulation) -> list[tuple]:
    """(node, family, used, free, reserved, pending, status, [cidrs]) per present node and family."""
    st = sim.state
    rows = []
    present = np.flatnonzero(st.core.nodes[:, T.N_PRESENT] == 1)
    if sim.layout.policy == T.POLICY_CLOUD:
        for n in present:
            cidrs = []
            for unit in st.cl_unit[n]:
                if unit[T.CU_SET] >= 0:
                    spec = sim.layout.sets[unit[T.CU_SET]]
                    mask = 28 if unit[T.CU_SIZE] == 16 else 32
                    cidrs.append(format_cidrs(spec.network, mask, [unit[T.CU_OFF] // unit[T.CU_SIZE]])[0].as_py())
            cn = st.cl_node[n]
            rows.append((int(n), 4, int(cn[T.CN_USED] - cn[T.CN_RESERVED]), int(cn[T.CN_HELD] - cn[T.CN_USED]),
                         int(cn[T.CN_RESERVED] + cn[T.CN_PRIMARIES]), int(st.core.nodes[n, T.N_PENDING]),
                         int(st.core.nodes[n, T.N_STATUS]), cidrs))
        return rows
    for family in sim.layout.families:
        for n in present:
            used = free = reserved = 0
            cidrs = []
            for s in st.core.cidr.node_slots[n]:
                if s < 0 or st.core.cidr.slots[s, T.L_FAMILY] != family:
                    continue
                slot = st.core.cidr.slots[s]
                spec = sim.layout.sets[slot[T.L_SET]]
                used += slot[T.L_USED] - slot[T.L_RESERVED]
                free += slot[T.L_MAX] - slot[T.L_USED] if slot[T.L_STATE] == T.SLOT_LIVE else 0
                reserved += st.core.cidr.sets[slot[T.L_SET], T.S_ADDRS] - slot[T.L_MAX] + slot[T.L_RESERVED]
                cidrs.append(format_cidrs(spec.network, spec.node_mask, [slot[T.L_INDEX]])[0].as_py())
            rows.append((int(n), 4 if family == 0 else 6, int(used), int(free), int(reserved),
                         int(st.core.nodes[n, T.N_PENDING]), int(st.core.nodes[n, T.N_STATUS]), cidrs))
    return rows


def reference_run(scenario, workload, mode):
    sim = Simulation(scenario, workload, mode)
    times = sample_times(scenario.duration_s, scenario.sample_interval_s)
    every = max(1, int(round(scenario.node_sample_interval_s / scenario.sample_interval_s)))
    trace, nodes = [], []
    for i, t in enumerate(times):
        sim.advance(np.nextafter(t, np.inf))
        for family in sim.layout.families:
            trace.append((4 if family == 0 else 6, float(t), reference_trace_row(sim, family)))
        if i % every == 0 or i == len(times) - 1:
            nodes += [(float(t), *row) for row in reference_node_rows(sim)]
    return trace, nodes


def engine_node_rows(result) -> list[tuple]:
    n = result.nodes
    offsets = np.concatenate([[0], np.cumsum(n["cidrs_counts"])])
    values = n["cidrs_values"].to_pylist()
    status = {text: code for code, text in enumerate(T.STATUS_TEXT)}
    return [
        (float(n["time_s"][i]), int(n["node"][i]), int(n["family"][i]), int(n["used"][i]), int(n["free"][i]),
         int(n["reserved"][i]), int(n["pending"][i]), status[n["status_error"][i]], values[offsets[i] : offsets[i + 1]])
        for i in range(n["node"].size)
    ]


def assert_same_as_reference(scenario, mode) -> None:
    scenario = scenario_for_mode(scenario, mode)
    workload = build_workload(scenario)
    result = run_mode(scenario, workload, mode)
    trace, nodes = reference_run(scenario, workload, mode)
    assert result.trace["family"].tolist() == [f for f, _, _ in trace]
    assert result.trace["time_s"].tolist() == [t for _, t, _ in trace]
    for column in TRACE_COUNTERS:
        expected = [row[column] for _, _, row in trace]
        assert result.trace[column].tolist() == expected, f"{mode}: {column}"
    got = engine_node_rows(result)
    assert len(got) == len(nodes), mode
    for g, e in zip(got, nodes):
        assert g == e, f"{mode}: node row differs"
    assert result.nodes["cidrs_values"].type == pa.string()


def short(scenario, minutes: float):
    return replace(scenario, duration_s=60.0 * minutes)


# ---------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("mode", ["kubernetes", "cluster-pool", "multi-pool"])
def test_pool_modes_sample_what_the_state_says(mode):
    assert_same_as_reference(short(load_scenario("default"), 6), mode)


@pytest.mark.parametrize("mode", ["cluster-pool", "multi-pool"])
def test_dual_stack_samples_both_families(mode):
    sc = short(load_scenario(SCENARIOS / "dual-stack.yaml"), 4)
    assert_same_as_reference(sc, mode)


@pytest.mark.parametrize("mode", ["eni", "aws-vpc-cni"])
def test_cloud_modes_sample_addresses_and_prefixes(mode):
    # three subnets: CIDRs of several sets interleave in one node's row (the gathered text path)
    sc = short(load_scenario(SCENARIOS / "cloud-modes.yaml"), 4)
    assert_same_as_reference(sc, mode)


def test_arrays_that_run_out_of_room_grow_and_the_rows_stay_the_same(monkeypatch):
    sc = scenario_for_mode(short(load_scenario("default"), 6), "multi-pool")
    wl = build_workload(sc)
    roomy = run_mode(sc, wl, "multi-pool")
    calls = []
    real = run_module.sample_run

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(run_module, "CIDR_PREALLOC", 0)  # room for 2 CIDRs per row: multi-pool nodes hold more
    monkeypatch.setattr(run_module, "sample_run", counting)
    tight = run_mode(sc, wl, "multi-pool")
    assert len(calls) > 1, "the CIDR array never ran out of room: the test does not exercise growing"
    assert engine_node_rows(tight) == engine_node_rows(roomy)
    for column in TRACE_COUNTERS:
        assert np.array_equal(tight.trace[column], roomy.trace[column])


def test_progress_is_reported_in_chunks_up_to_done():
    sc = scenario_for_mode(short(load_scenario("default"), 10), "cluster-pool")
    wl = build_workload(sc)
    seen = []
    with_progress = run_mode(sc, wl, "cluster-pool", progress=lambda mode, done: seen.append((mode, done)))
    plain = run_mode(sc, wl, "cluster-pool")
    n = sample_times(sc.duration_s, sc.sample_interval_s).size
    assert 1 < len(seen) <= min(n, run_module.PROGRESS_STEPS)
    assert [m for m, _ in seen] == ["cluster-pool"] * len(seen)
    fractions = [d for _, d in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert engine_node_rows(with_progress) == engine_node_rows(plain)
    for column in TRACE_COUNTERS:
        assert np.array_equal(with_progress.trace[column], plain.trace[column])


def test_sample_and_node_rows_read_the_state_now():
    sc = scenario_for_mode(short(load_scenario("default"), 3), "multi-pool")
    sim = Simulation(sc, build_workload(sc), "multi-pool")
    sim.advance(150.0)
    before = sim.state.core.cnt.copy()
    assert sim.sample() == {0: reference_trace_row(sim, 0)}
    rows = sim.node_rows()
    offsets = np.concatenate([[0], np.cumsum(rows["cidrs_counts"])])
    values = rows["cidrs_values"].to_pylist()
    got = [(int(rows["node"][i]), int(rows["family"][i]), int(rows["used"][i]), int(rows["free"][i]),
            int(rows["reserved"][i]), int(rows["pending"][i]), int(rows["status_code"][i]),
            values[offsets[i] : offsets[i + 1]]) for i in range(rows["node"].size)]
    assert got == reference_node_rows(sim)
    assert np.array_equal(sim.state.core.cnt[: T.K_RNG], before[: T.K_RNG]), "sampling advanced the run"
    assert sim.largest_free_block(0) == reference_trace_row(sim, 0)["largest_free_block"]


def test_a_full_engine_table_is_reported_at_the_sample_it_stops(tmp_path):
    # 60 pods pinned to one node with maxPods 10 and /28 node CIDRs: multi-pool demand outgrows
    # the node's CIDR table (sized for 2 x maxPods); run_mode names the table and the time
    sc = yaml_scenario(tmp_path, {"duration": "2m", "cluster": {"nodes": 2, "kubelet": {"maxPods": 10}},
                             "cilium": {"ipam": {"operator": {"clusterPoolIPv4MaskSize": 28}}}})
    sc = scenario_for_mode(sc, "multi-pool")
    wl = events_workload(nodes_then_pods(2, 60, pinned=0), 2)
    with pytest.raises(EngineCapacityError, match=r"node-CIDR table ran out of room at t=(\d+)s in mode multi-pool"):
        run_mode(sc, wl, "multi-pool")
