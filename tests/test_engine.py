"""The engine: upstream rules of each pool mode, invariants after every run, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_helpers import OP_NODE_ADD, OP_NODE_DEL, OP_POD_ADD, OP_POD_DEL, nodes_then_pods, scenario, workload
from ipam_core.pipeline import build_workload, simulate, summarize, write_run
from ipam_core.engine import tables as T
from ipam_core.engine.check import check_invariants
from ipam_core.modes.multi_pool import needed_ip_ceil
from ipam_core.pipeline.run import Simulation, run_mode
from ipam_core.engine.state import named_arrays
from ipam_core.scenario import scenario_for_mode

MODES = ("kubernetes", "cluster-pool", "multi-pool")


def run(sc, wl, mode):
    result = run_mode(scenario_for_mode(sc, mode), wl, mode)
    assert check_invariants(result.state) == []
    return result


def last(result, column, family=4):
    rows = result.trace["family"] == family
    return int(result.trace[column][rows][-1])


def node_cidrs(result, family=4):
    """CIDRs per node name at the last node sample."""
    n = result.nodes
    t_end = n["time_s"].max()
    offsets = np.concatenate([[0], np.cumsum(n["cidrs_counts"])])
    values = n["cidrs_values"].to_pylist()
    out = {}
    for i in np.flatnonzero((n["time_s"] == t_end) & (n["family"] == family)):
        out[int(n["node"][i])] = values[offsets[i] : offsets[i + 1]]
    return out


@pytest.mark.parametrize(
    "n, pre, expected",
    [(0, 8, 8), (1, 8, 16), (8, 16 // 2, 16), (9, 8, 24), (16, 8, 24), (17, 8, 32), (5, 0, 5), (0, 0, 0), (3, 1, 4)],
)
def test_needed_ip_ceil_matches_upstream_rounding(n, pre, expected):
    # pkg/ipam/multipool_manager.go neededIPCeil: buffer between pre and 2*pre-1
    assert needed_ip_ceil(n, pre) == expected


def test_host_scope_node_takes_252_pods_of_a_24_then_fails_while_others_have_room(tmp_path):
    sc = scenario(tmp_path, {"timing": {"podPendingTimeout": "60s"}})
    # 260 pods pinned to node 0; node 1 stays empty
    wl = workload(nodes_then_pods(2, 260, pinned=0), 2)
    for mode in ("kubernetes", "cluster-pool"):
        r = run(sc, wl, mode)
        assert last(r, "pods_running") == 252  # 254 usable - router - health
        assert last(r, "pods_failed") == 8
        assert last(r, "pods_failed_free_elsewhere") == 8  # node 1's /24 was idle
        assert last(r, "addrs_reserved") == 2 * (2 + 2)  # network + last + router + health per node


def test_a_pod_placed_on_a_node_not_yet_there_waits_for_that_node(tmp_path):
    # a replayed pod names node 1, which joins a minute later; node 0 has room all along
    sc = scenario(tmp_path, {"duration": "3m"})
    events = [(0.0, OP_NODE_ADD, 0, -1), (5.0, OP_POD_ADD, 1, 0), (65.0, OP_NODE_ADD, 1, -1)]
    for mode in MODES:
        sim = Simulation(scenario_for_mode(sc, mode), workload(events, 2), mode)
        sim.advance(60.0)
        row = sim.state.core.pod_tables.pod_row[0]
        assert sim.state.core.pod_tables.pods[row, T.D_STATE] == T.POD_PENDING and sim.state.core.pod_tables.pods[row, T.D_NODE] == -1
        sim.advance(180.0)
        assert sim.state.core.pod_tables.pods[row, T.D_STATE] == T.POD_RUNNING, mode
        assert sim.state.core.pod_tables.pods[row, T.D_NODE] == 1, mode
        assert check_invariants(sim.state) == []


def test_cluster_pool_takes_cidrs_in_list_order_and_exhaustion_leaves_nodes_not_ready(tmp_path):
    sc = scenario(
        tmp_path,
        {"cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["10.1.0.0/25", "10.2.0.0/26"], "clusterPoolIPv4MaskSize": 26}}}},
    )
    wl = workload(nodes_then_pods(4, 0), 4)
    r = run(sc, wl, "cluster-pool")
    cidrs = node_cidrs(r)
    assert sorted(c for cs in cidrs.values() for c in cs) == ["10.1.0.0/26", "10.1.0.64/26", "10.2.0.0/26"]
    assert cidrs[0] == ["10.1.0.0/26"] and cidrs[1] == ["10.1.0.64/26"] and cidrs[2] == ["10.2.0.0/26"]
    assert cidrs[3] == []
    assert last(r, "nodes_ready") == 3 and last(r, "carvable_node_cidrs") == 0
    status = r.nodes["status_error"][(r.nodes["node"] == 3) & (r.nodes["time_s"] == r.nodes["time_s"].max())]
    assert "no remaining CIDRs" in status[0]


def test_freed_node_cidr_is_reused_only_after_the_cursor_wraps(tmp_path):
    sc = scenario(tmp_path, {"cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["10.0.0.0/22"]}}}})
    events = [(0.0, OP_NODE_ADD, 0, -1), (0.0, OP_NODE_ADD, 1, -1), (10.0, OP_NODE_DEL, 0, -1), (20.0, OP_NODE_ADD, 2, -1)]
    events += [(30.0, OP_NODE_ADD, 3, -1), (40.0, OP_NODE_ADD, 0, -1)]
    r = run(sc, workload(events, 4), "cluster-pool")
    cidrs = node_cidrs(r)
    # next fit (cidr_set.go nextCandidate): node 2 gets .2, node 3 .3, the re-added node 0 wraps to .0
    assert cidrs == {0: ["10.0.0.0/24"], 1: ["10.0.1.0/24"], 2: ["10.0.2.0/24"], 3: ["10.0.3.0/24"]}


def dual_stack(tmp_path, v6_list):
    return scenario(
        tmp_path,
        {
            "cluster": {"kubeControllerManager": {"cluster-cidr": "10.244.0.0/22,fd00:10:244::/63", "node-cidr-mask-size": None,
                                                   "node-cidr-mask-size-ipv4": 24, "node-cidr-mask-size-ipv6": 64}},
            "cilium": {"ipv6": {"enabled": True}, "ipam": {"operator": {
                "clusterPoolIPv6PodCIDRList": v6_list, "clusterPoolIPv6MaskSize": 120}}},
        },
    )


def test_partial_dual_stack_cilium_reverts_ipv4_but_kcm_keeps_it(tmp_path):
    sc = dual_stack(tmp_path, ["fd00::/119"])  # two /120s for four nodes
    wl = workload(nodes_then_pods(4, 0), 4)
    cp = run(sc, wl, "cluster-pool")
    assert last(cp, "node_cidrs", 4) == 2 and last(cp, "node_cidrs", 6) == 2  # reverted (podcidr.go)
    k8s = run(sc, wl, "kubernetes")
    # the KCM /63 holds two /64s: nodes 2 and 3 keep their IPv4 CIDR (range_allocator.go)
    assert last(k8s, "node_cidrs", 4) == 4 and last(k8s, "node_cidrs", 6) == 2
    assert last(k8s, "nodes_ready") == 2


def test_dual_stack_pods_hold_one_address_per_family(tmp_path):
    sc = dual_stack(tmp_path, ["fd00::/104"])
    wl = workload(nodes_then_pods(2, 300, pinned=0), 2)
    for mode in ("kubernetes", "cluster-pool"):
        r = run(sc, wl, mode)
        # IPv4 /24 runs out at 252 pods: IPv6 addresses taken first are given back
        assert last(r, "addrs_used", 4) == last(r, "addrs_used", 6) == last(r, "pods_running") == 252


def test_ipv6_node_cidr_is_counted_in_its_65536_window(tmp_path):
    sc = dual_stack(tmp_path, ["fd00::/104"])
    r = run(sc, workload(nodes_then_pods(1, 0), 1), "kubernetes")
    assert last(r, "addrs_carved", 6) == 65536
    assert last(r, "addrs_reserved", 6) == 2 + 2  # window edges + router + health


SMALL_POOL = {"manifests": [{"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumPodIPPool", "metadata": {"name": "default"},
                              "spec": {"ipv4": {"cidrs": ["10.8.0.0/20"], "maskSize": 28}}}]}


def test_multi_pool_grows_and_shrinks_node_cidrs_with_demand(tmp_path):
    sc = scenario(tmp_path, SMALL_POOL)
    events = nodes_then_pods(1, 100, pinned=0)
    events += [(300.0 + p * 0.01, OP_POD_DEL, -1, p) for p in range(90)]
    r = run(sc, workload(events, 1), "multi-pool")
    tr = r.trace
    at = lambda t, col: int(tr[col][tr["time_s"] == t][0])  # noqa: E731
    assert at(290.0, "pods_running") == 100 and at(290.0, "pods_failed") == 0
    # in use 102 (pods + router + health): needed = neededIPCeil(102, 8) = 112, 14 usable per /28 -> 8 CIDRs
    assert at(290.0, "node_cidrs") == 8
    # after the deletes only 12 in use: needed 24; empty CIDRs go back, last first, while the buffer holds
    assert at(590.0, "pods_running") == 10
    assert at(590.0, "cidr_releases") > 0
    usable = 14 * at(590.0, "node_cidrs")
    assert 24 <= usable < 24 + 14 + 14 * 6  # at least the demand; CIDRs with stray pods cannot go
    st_ = r.state
    assert st_.core.cidr.np_requested[0, 0, 0] == 24


def test_multi_pool_pod_waits_for_the_operator_then_runs(tmp_path):
    sc = scenario(tmp_path, SMALL_POOL)
    r = run(sc, workload(nodes_then_pods(1, 40, start=30.0, gap=0.0), 1), "multi-pool")
    tr = r.trace
    assert tr["pods_pending"][tr["time_s"] == 30.0][0] > 0  # demand outran the first CIDR
    assert last(r, "pods_running") == 40 and last(r, "pods_failed") == 0


def test_node_delete_releases_its_pods_and_cidrs(tmp_path):
    sc = scenario(tmp_path)
    events = nodes_then_pods(2, 50) + [(100.0, OP_NODE_DEL, 1, -1)]
    for mode in MODES:
        r = run(sc, workload(events, 2), mode)
        assert last(r, "nodes") == 1
        assert last(r, "pods_running") == 25  # spread: half the pods were on node 1
        assert last(r, "cidr_releases") >= 1


@pytest.mark.parametrize("mode", MODES)
def test_counts_add_up_in_every_sample(tmp_path, mode):
    sc = scenario(tmp_path, {"cilium": {"ipam": {"operator": {"clusterPoolIPv4MaskSize": 26}}},
                             "cluster": {"scheduler": "random"}})
    r = run(sc, build_workload(sc), mode)
    tr = r.trace
    assert np.array_equal(tr["addrs_carved"], tr["addrs_reserved"] + tr["addrs_used"] + tr["addrs_idle"])
    assert np.array_equal(tr["addrs_pool"], tr["addrs_carved"] + tr["addrs_uncarved"])
    assert np.all(tr["addrs_idle"] >= 0) and np.all(tr["pods_failed_free_elsewhere"] <= tr["pods_failed"])
    assert np.all(np.diff(tr["pods_failed"]) >= 0) and np.all(np.diff(tr["cidr_carves"]) >= 0)
    assert np.array_equal(tr["addrs_used"], tr["pods_running"])


@settings(max_examples=15, deadline=None)
@given(
    mode=st.sampled_from(MODES),
    nodes=st.integers(1, 6),
    mask=st.integers(25, 29),
    scheduler=st.sampled_from(["spread", "pack", "random"]),
    pods=st.integers(1, 60),
    churn=st.floats(0.1, 5.0),
    seed=st.integers(0, 10_000),
    dual=st.booleans(),
)
def test_invariants_hold_for_random_small_clusters(tmp_path_factory, mode, nodes, mask, scheduler, pods, churn, seed, dual):
    tmp = tmp_path_factory.mktemp("h")
    patch = {
        "seed": seed,
        "duration": "3m",
        "cluster": {"nodes": nodes, "scheduler": scheduler},
        "cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["10.0.0.0/23"], "clusterPoolIPv4MaskSize": mask}}},
        "timing": {"podPendingTimeout": "40s"},
        "workload": {"generator": "steady-churn", "podsPerNode": pods, "churnPerSecond": churn},
    }
    if dual:
        patch["cilium"]["ipv6"] = {"enabled": True}
        patch["cilium"]["ipam"]["operator"].update({"clusterPoolIPv6PodCIDRList": ["fd00::/112"], "clusterPoolIPv6MaskSize": 122})
        patch["cluster"]["kubeControllerManager"] = {"cluster-cidr": "10.244.0.0/16,fd00:10:244::/56", "node-cidr-mask-size": None}
    sc = scenario(tmp, patch)
    run(sc, build_workload(sc), mode)  # run() checks the invariants


def test_same_scenario_and_seed_give_byte_identical_traces(tmp_path):
    sc = scenario(tmp_path, {"cluster": {"scheduler": "random"}, "duration": "3m"})
    paths = []
    for name in ("a", "b"):
        result = simulate(sc)
        paths.append(write_run(result, tmp_path / name, command="ipam-bench compare s.yaml"))
    data = [[p for p in run if p.suffix == ".arrow"] for run in paths]
    assert len(data[0]) == 2 and all(p.name == "run.json" for run in paths for p in run if p not in data[0] + data[1])
    for first, second in zip(*data):
        assert first.read_bytes() == second.read_bytes()
    other = simulate(scenario(tmp_path, {"cluster": {"scheduler": "random"}, "duration": "3m", "seed": 2}, name="o.yaml"))
    again = simulate(sc)
    differs = [not np.array_equal(a.nodes["used"], b.nodes["used"]) for a, b in zip(other.modes, again.modes)]
    assert any(differs)


def test_interleaved_simulations_each_draw_from_their_own_stream(tmp_path):
    # each state carries its own random stream: advancing two runs in turns changes neither
    sc = scenario(tmp_path, {"cluster": {"scheduler": "random"}, "duration": "3m"})
    wl = build_workload(sc)
    mode_sc = scenario_for_mode(sc, "cluster-pool")
    solo = Simulation(mode_sc, wl, "cluster-pool")
    solo.advance(180.0)
    a, b = (Simulation(mode_sc, wl, "cluster-pool") for _ in range(2))
    for t in np.arange(5.0, 181.0, 5.0):
        a.advance(t)
        b.advance(t)
    for sim in (a, b):
        for name in ("ip_words", "slots", "pods", "nodes"):
            assert np.array_equal(named_arrays(sim.state)[name], named_arrays(solo.state)[name]), name


def test_summary_has_one_row_per_mode_and_family(tmp_path):
    sc = dual_stack(tmp_path, ["fd00::/104"])
    result = simulate(sc, ["kubernetes", "cluster-pool"])
    table = summarize(result)
    assert table.num_rows == 4
    assert table.column("mode").to_pylist() == ["kubernetes", "kubernetes", "cluster-pool", "cluster-pool"]


def test_multi_pool_pending_requests_expire_after_the_ttl(tmp_path):
    # 40 pods at once on one node whose /28s hold 14 each; pods retry only every 30 min
    events = nodes_then_pods(1, 40, start=30.0, gap=0.0)

    def cidrs_at_end(ttl):
        sc = scenario(tmp_path, {**SMALL_POOL, "timing": {"podRetryInterval": "30m", "pendingAllocationTTL": ttl,
                                                          "podPendingTimeout": "1h"}}, name=f"ttl-{ttl}.yaml")
        r = run(sc, workload(events, 1), "multi-pool")
        return last(r, "node_cidrs"), last(r, "pods_pending")

    # a long TTL keeps the failed requests as demand: the operator carves for them and keeps the CIDRs
    kept, pending_kept = cidrs_at_end("20m")
    # a 1 min TTL drops them before the next retry: the empty CIDRs go back at the next refresh
    dropped, pending_dropped = cidrs_at_end("1m")
    assert pending_kept == pending_dropped > 0  # no retry yet in either run
    assert kept >= 3 and dropped < kept


# ---------------------------------------------------------------------------- honest per-mode wall time (issue #13)
class FakeClock:
    """A perf_counter that moves only when told to: 1000 s per kernel load, 1 s per clock read."""

    def __init__(self):
        self.now = 0.0
        self.log = []

    def perf_counter(self):
        self.now += 1.0
        self.log.append("clock")
        return self.now


def test_mode_wall_time_excludes_loading_the_compiled_code(tmp_path, monkeypatch):
    import ipam_core.pipeline as engine

    sc = scenario(tmp_path, {"duration": "1m"})
    clock = FakeClock()
    real_warm, real_run = engine.warm_mode, engine.run_mode

    def warm(mode_scenario, mode):
        clock.log.append(f"warm {mode}")
        clock.now += 1000.0  # what a cache load or a compile costs, in this clock's units
        return real_warm(mode_scenario, mode)

    def run_one(*args, **kwargs):
        clock.log.append(f"run {args[2]}")
        return real_run(*args, **kwargs)

    monkeypatch.setattr(engine, "time", clock)
    monkeypatch.setattr(engine, "warm_mode", warm)
    monkeypatch.setattr(engine, "run_mode", run_one)
    result = engine.simulate(sc, MODES)
    first_clock = clock.log.index("clock")
    assert sorted(clock.log[:first_clock]) == sorted(f"warm {m}" for m in MODES), clock.log
    assert [e for e in clock.log if e.startswith("run")] == [f"run {m}" for m in MODES]
    # each mode's clock brackets its own run only: two reads, 1 s apart
    assert result.wall_s == {m: 1.0 for m in MODES}
    assert list(summarize(result).column("wall_s").to_pylist()) == [1.0] * len(MODES)


def test_warm_mode_runs_once_per_mode_and_family_set(tmp_path):
    from ipam_core.pipeline.run import warm_mode

    sc = scenario(tmp_path, {"duration": "1m"})
    for mode in MODES:
        warm_mode(scenario_for_mode(sc, mode), mode)  # may or may not be the first time in this process
        assert warm_mode(scenario_for_mode(sc, mode), mode) is False


WARM_PROBE = r"""
import sys
from dataclasses import replace
from numba.core.registry import CPUDispatcher
import ipam_core, ipam_core.pipeline as engine
from ipam_core.scenario import load_scenario

def loaded():
    out = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("ipam_core"):
            for attr, value in vars(module).items():
                if isinstance(value, CPUDispatcher):
                    out[f"{name}.{attr}"] = len(value.signatures)
    return out

real_run = engine.run_mode
def checked(*args, **kwargs):
    before = loaded()
    result = real_run(*args, **kwargs)
    after = loaded()
    grew = sorted(k for k in after if after[k] != before.get(k, 0))
    assert not grew, f"mode {args[2]} loaded or compiled {grew} while its clock ran"
    return result
engine.run_mode = checked
for path, modes in ((sys.argv[1], ["cluster-pool", "eni"]), (sys.argv[2], ["multi-pool", "kubernetes"])):
    sc = load_scenario(path)
    engine.simulate(replace(sc, duration_s=120.0), modes)
print("ok")
"""


def test_no_kernel_is_loaded_while_a_mode_is_timed():
    # a fresh process, so that no earlier test has loaded the kernels: every mode's first
    # compiled call (cache load or compile) must happen in the warm-up, before its clock starts
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", WARM_PROBE, str(root / "scenarios/cloud-modes.yaml"), str(root / "scenarios/dual-stack.yaml")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=900,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
