"""The compiled engine against the plain-Python baseline in ``bench/baseline_engine.py``.

The baseline mirrors ``ipam_core/engine/core.py`` rule by rule with sets,
dicts and ``heapq`` instead of tables and bitmaps, and draws its random
address offsets from ``random.Random`` instead of the engine's SplitMix64 stream. No trace
count depends on which offset a pod gets (the agent chooses a node CIDR by its
fill, never by offsets), so with the ``spread`` and ``pack`` schedulers every
column of the trace, ``largest_free_block`` included, must be equal at every
sample, in every mode, multi-pool included. With ``random`` scheduling the
two sides place pods differently; that is compared only where nothing is
short, so placement cannot change any count.

Each case also states what it must exercise (pods that fail, nodes left
without a CIDR, CIDRs released, ...), checked on the engine's trace, so an
equality between two idle runs cannot pass for a test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam_core.pipeline import warmup
from ipam_core.pipeline.run import TRACE_COUNTERS, run_mode, sample_times
from ipam_core.scenario import load_scenario, parse_scenario, scenario_for_mode
from ipam_core.workloads import generate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from baseline_engine import run_baseline  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ONE_PER_FAMILY_MODES = ("kubernetes", "cluster-pool")


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    warmup()


# ---------------------------------------------------------------------------- scenarios
def make_scenario(name: str, *, nodes: int, workload: dict, duration: str = "10m", sample: str = "5s",
                  max_pods: int = 110, scheduler: str = "spread", ipv6: bool = False,
                  pool_v4=("10.0.0.0/16",), mask_v4: int = 24, pool_v6=("fd00::/112",), mask_v6: int = 120,
                  kcm_cidrs: str | None = None, timeout: str = "2m", seed: int = 5, extra: dict | None = None):
    """A scenario whose cluster-pool list and KCM cluster CIDRs hold the same node CIDRs."""
    if kcm_cidrs is None:
        kcm_cidrs = ",".join([pool_v4[0]] + ([pool_v6[0]] if ipv6 else []))
    kcm = {"cluster-cidr": kcm_cidrs}
    if ipv6:
        kcm.update({"node-cidr-mask-size-ipv4": mask_v4, "node-cidr-mask-size-ipv6": mask_v6})
    else:
        kcm["node-cidr-mask-size"] = mask_v4
    operator = {"clusterPoolIPv4PodCIDRList": list(pool_v4), "clusterPoolIPv4MaskSize": mask_v4}
    if ipv6:
        operator.update({"clusterPoolIPv6PodCIDRList": list(pool_v6), "clusterPoolIPv6MaskSize": mask_v6})
    doc = {
        "name": name,
        "seed": seed,
        "duration": duration,
        "sampleInterval": sample,
        "modes": ["kubernetes", "cluster-pool", "multi-pool"],
        "cluster": {"nodes": nodes, "scheduler": scheduler, "kubelet": {"maxPods": max_pods},
                    "kubeControllerManager": kcm},
        "cilium": {"ipv4": {"enabled": True}, "ipv6": {"enabled": ipv6}, "ipam": {"operator": operator}},
        "timing": {"podPendingTimeout": timeout},
        "workload": workload,
    }
    for key, value in (extra or {}).items():
        doc[key] = value
    return parse_scenario(doc)


CHURN = {"generator": "steady-churn", "podsPerNode": 20, "churnPerSecond": 2, "fillQps": 10}
AUTOSCALE = {"generator": "node-autoscaling", "minNodes": 3, "maxNodes": 9, "period": 300, "interval": 20,
             "podsPerNode": 15}

# name -> (scenario kwargs, what the engine trace must show)
CASES = {
    # pod churn with plenty of room
    "churn": (dict(nodes=8, workload=CHURN), {"churn"}),
    # 4 node CIDRs for 6 nodes: 2 nodes never get one, their pods wait unscheduled
    "pool-exhausted": (dict(nodes=6, pool_v4=("10.10.0.0/24",), mask_v4=26,
                            workload={**CHURN, "podsPerNode": 30, "churnPerSecond": 1}),
                       {"nodes_not_ready", "churn"}),
    # /28 node CIDRs (12 pod addresses) under maxPods 110: pods pend on their node and fail
    "node-full": (dict(nodes=6, mask_v4=28, workload={**CHURN, "podsPerNode": 20}), {"failed", "churn"}),
    # nodes come and go; pods go with their node; 6 node CIDRs for up to 9 nodes
    "autoscale-pinned": (dict(nodes=6, pool_v4=("10.20.0.0/24",), mask_v4=26, workload=AUTOSCALE,
                              duration="15m"),
                         {"node_deletes", "releases", "nodes_not_ready"}),
    # the same, pods scheduled by the engine, node ids reused, small node CIDRs
    "autoscale-scheduled": (dict(nodes=6, pool_v4=("10.20.0.0/24",), mask_v4=27, max_pods=20,
                                 workload={**AUTOSCALE, "pinPods": False, "reuseNodeIds": True},
                                 duration="15m"),
                            {"node_deletes", "releases", "unscheduled"}),
    # deployments scale past maxPods x nodes: unschedulable pods wait, then get placed
    "cl2-overflow": (dict(nodes=4, max_pods=12, mask_v4=27,
                          workload={"generator": "cl2-load", "podsPerNode": 10, "qps": 2, "smallGroupSize": 2,
                                    "mediumGroupSize": 4, "bigGroupSize": 8}, duration="20m"),
                     {"unscheduled", "churn"}),
    # bursts that fill /27s: failures, then everything deleted, repeated
    "burst": (dict(nodes=5, mask_v4=27, workload={"generator": "burst", "podsPerNode": 40, "qps": 20,
                                                 "hold": 150, "repeats": 3, "gap": 30}, duration="20m"),
              {"failed", "churn"}),
}

DUAL_CASES = {
    "dual-churn": (dict(nodes=8, ipv6=True, workload=CHURN), {"churn"}),
    # IPv6 runs out first (/124: 12 pod addresses) while IPv4 has room
    "dual-v6-node-full": (dict(nodes=5, ipv6=True, mask_v4=26, pool_v6=("fd00::/112",), mask_v6=124,
                               workload={**CHURN, "podsPerNode": 20}), {"failed", "ipv6_failures"}),
    # IPv4 runs out first (/28) while IPv6 succeeded: the IPv6 address is given back
    "dual-v4-node-full": (dict(nodes=5, ipv6=True, mask_v4=28, pool_v6=("fd00::/112",), mask_v6=120,
                               workload={**CHURN, "podsPerNode": 20}), {"failed", "ipv4_failures"}),
    # 4 IPv4 node CIDRs, 2 IPv6: cluster-pool gives the IPv4 CIDR back, KCM keeps it
    "dual-v6-pool-exhausted": (dict(nodes=6, ipv6=True, pool_v4=("10.10.0.0/24",), mask_v4=26,
                                    pool_v6=("fd00::/121",), mask_v6=122, workload=CHURN),
                               {"nodes_not_ready"}),
    "dual-autoscale": (dict(nodes=6, ipv6=True, pool_v4=("10.20.0.0/24",), mask_v4=26,
                            pool_v6=("fd00::/120",), mask_v6=123, workload=AUTOSCALE, duration="15m"),
                       {"node_deletes", "releases"}),
}


def check_exercised(trace: dict, wants: set[str], name: str) -> None:
    """The engine trace shows every behaviour the case is meant to cover."""
    v4 = {k: v[trace["family"] == 4] for k, v in trace.items()}
    v6 = {k: v[trace["family"] == 6] for k, v in trace.items()}
    facts = {
        "churn": v4["ip_allocs"][-1] > v4["addrs_used"].max(),  # addresses were given back and reused
        "failed": trace["pods_failed"][-1] > 0,
        # a node waits while its pool has no node CIDR left
        "nodes_not_ready": ((trace["nodes_ready"] < trace["nodes"]) & (trace["carvable_node_cidrs"] == 0)).any(),
        "node_deletes": (np.diff(v4["nodes"]) < 0).any(),
        "releases": trace["cidr_releases"][-1] > 0,
        "unscheduled": (trace["pods_pending"] > 0).any(),
        "ipv6_failures": v6["ip_alloc_failures"].size > 0 and v6["ip_alloc_failures"][-1] > 0,
        "ipv4_failures": v4["ip_alloc_failures"][-1] > 0,
    }
    missing = sorted(w for w in wants if not facts[w])
    assert not missing, f"case {name} does not exercise {missing}"


def assert_same_trace(engine: dict, baseline: dict, label: str, columns=None) -> None:
    assert set(baseline) == set(engine), f"{label}: columns differ"
    assert np.array_equal(engine["time_s"], baseline["time_s"]) and np.array_equal(engine["family"],
                                                                                  baseline["family"])
    for column in columns or TRACE_COUNTERS:
        e, b = engine[column], baseline[column]
        if not np.array_equal(e, b):
            i = int(np.flatnonzero(e != b)[0])
            pytest.fail(f"{label}: {column} differs first at t={engine['time_s'][i]:g}s "
                        f"(IPv{engine['family'][i]}): engine {e[i]}, baseline {b[i]}")


def workload_of(scenario):
    return generate(scenario.workload, nodes=scenario.cluster.nodes, max_pods=scenario.cluster.max_pods,
                    namespaces=[ns.name for ns in scenario.namespaces] or ["default"],
                    duration_s=scenario.duration_s, seed=scenario.seed)


def compare(scenario, mode: str, columns=None) -> dict:
    scenario = scenario_for_mode(scenario, mode)
    workload = workload_of(scenario)
    times = sample_times(scenario.duration_s, scenario.sample_interval_s)
    engine = run_mode(scenario, workload, mode).trace
    baseline = run_baseline(scenario, workload, mode, times)
    assert_same_trace(engine, baseline, f"{scenario.name}/{mode}/{scenario.cluster.scheduler}", columns)
    return engine


# ---------------------------------------------------------------------------- kubernetes, cluster-pool
@pytest.mark.parametrize("scheduler", ["spread", "pack"])
@pytest.mark.parametrize("mode", ONE_PER_FAMILY_MODES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_ipv4_traces_equal(case, mode, scheduler):
    kwargs, wants = CASES[case]
    trace = compare(make_scenario(case, scheduler=scheduler, **kwargs), mode)
    if scheduler == "spread":
        check_exercised(trace, wants, case)


@pytest.mark.parametrize("scheduler", ["spread", "pack"])
@pytest.mark.parametrize("mode", ONE_PER_FAMILY_MODES)
@pytest.mark.parametrize("case", sorted(DUAL_CASES))
def test_dual_stack_traces_equal(case, mode, scheduler):
    kwargs, wants = DUAL_CASES[case]
    trace = compare(make_scenario(case, scheduler=scheduler, **kwargs), mode)
    assert set(np.unique(trace["family"])) == {4, 6}
    if scheduler == "spread":
        check_exercised(trace, wants, case)


def test_partial_carve_reverted_by_cilium_kept_by_kcm():
    # both sides agree on the rule, and the rule shows: with 2 IPv6 node CIDRs for 6 nodes,
    # cluster-pool holds 2 IPv4 CIDRs and KCM holds 4 (it keeps IPv4 when IPv6 fails)
    kwargs, _ = DUAL_CASES["dual-v6-pool-exhausted"]
    scenario = make_scenario("revert", scheduler="spread", **kwargs)
    v4_cidrs = {}
    for mode in ONE_PER_FAMILY_MODES:
        trace = compare(scenario, mode)
        v4_cidrs[mode] = int(trace["node_cidrs"][trace["family"] == 4][-1])
    assert v4_cidrs == {"cluster-pool": 2, "kubernetes": 4}


def test_random_scheduler_with_room_to_spare():
    # the sides draw different nodes; with nothing short, no count depends on placement
    scenario = make_scenario("random", nodes=8, scheduler="random", mask_v4=24, workload=CHURN)
    for mode in ONE_PER_FAMILY_MODES:
        trace = compare(scenario, mode)
        assert trace["pods_failed"][-1] == 0 and trace["ip_alloc_failures"][-1] == 0


# ---------------------------------------------------------------------------- multi-pool
MULTI_CASES = {
    "churn": dict(nodes=8, mask_v4=27, workload=CHURN),  # 2 node CIDRs per node
    # 16 /26s for 10 nodes of 30 pods: demand outgrows the pool, "pool empty", pods fail
    "pool-exhausted": dict(nodes=10, pool_v4=("10.10.0.0/22",), mask_v4=26,
                           workload={**CHURN, "podsPerNode": 70, "fillQps": 20}),
    "autoscale": dict(nodes=6, pool_v4=("10.20.0.0/22",), mask_v4=27, workload=AUTOSCALE, duration="15m"),
    # demand rises and falls: the agent gives CIDRs back between bursts
    "burst": dict(nodes=5, mask_v4=28, workload={"generator": "burst", "podsPerNode": 40, "qps": 20, "hold": 150,
                                                 "repeats": 3, "gap": 30}, duration="20m"),
    "dual": dict(nodes=6, ipv6=True, mask_v4=27, pool_v6=("fd00::/112",), mask_v6=124, workload=CHURN),
}


@pytest.mark.parametrize("scheduler", ["spread", "pack"])
@pytest.mark.parametrize("case", sorted(MULTI_CASES))
def test_multi_pool_traces_equal(case, scheduler):
    # Every column, not only offset-independent ones: the agent draws from the first
    # node CIDR of the pool with a free address, so offsets never change a count.
    trace = compare(make_scenario(f"mp-{case}", scheduler=scheduler, **MULTI_CASES[case]), "multi-pool")
    assert trace["cidr_carves"][-1] > trace["nodes"].max()  # nodes hold several CIDRs
    if case == "pool-exhausted" and scheduler == "spread":
        assert trace["pods_failed"][-1] > 0 and trace["carvable_node_cidrs"].min() == 0
    if case in ("autoscale", "burst"):
        assert trace["cidr_releases"][-1] > 0  # nodes or agents gave CIDRs back


def test_multi_pool_teams_with_annotations():
    # three pools chosen by namespace annotation, shrunk to 6 nodes and 10 minutes
    base = load_scenario(REPO / "scenarios" / "multi-pool-teams.yaml")
    from dataclasses import replace

    scenario = replace(base, duration_s=600.0, sample_interval_s=10.0,
                       cluster=replace(base.cluster, nodes=6))
    trace = compare(scenario, "multi-pool")
    assert trace["cidr_carves"][-1] > 0


@pytest.mark.parametrize("path", ["cluster-pool-exhaustion.yaml", "dual-stack.yaml", "kcm-host-scope.yaml"])
def test_shipped_scenarios(path):
    scenario = load_scenario(REPO / "scenarios" / path)
    for mode in scenario.modes:
        compare(scenario, mode)


# ---------------------------------------------------------------------------- random small clusters
@settings(max_examples=20, deadline=None)
@given(
    mode=st.sampled_from(["kubernetes", "cluster-pool", "multi-pool"]),
    scheduler=st.sampled_from(["spread", "pack"]),
    ipv6=st.booleans(),
    nodes=st.integers(1, 7),
    pool_bits=st.integers(0, 4),  # node CIDRs in the pool: 2**pool_bits
    host_bits=st.integers(2, 6),  # node CIDR size
    max_pods=st.integers(1, 40),
    pods_per_node=st.integers(1, 40),
    churn=st.sampled_from([0.5, 2.0, 5.0]),
    autoscale=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_random_small_clusters(mode, scheduler, ipv6, nodes, pool_bits, host_bits, max_pods, pods_per_node,
                               churn, autoscale, seed):
    mask_v4 = 32 - host_bits
    mask_v6 = 128 - host_bits
    if autoscale:
        workload = {**AUTOSCALE, "minNodes": max(1, nodes // 2), "maxNodes": nodes + 2, "period": 120,
                    "podsPerNode": pods_per_node, "pinPods": seed % 2 == 0}
    else:
        workload = {**CHURN, "podsPerNode": pods_per_node, "churnPerSecond": churn}
    scenario = make_scenario(
        "random-small", nodes=nodes, scheduler=scheduler, ipv6=ipv6, max_pods=max_pods,
        pool_v4=(f"10.1.0.0/{mask_v4 - pool_bits}",), mask_v4=mask_v4,
        pool_v6=(f"fd00::/{mask_v6 - pool_bits}",), mask_v6=mask_v6,
        workload=workload, duration="4m", sample="3s", timeout="1m", seed=seed,
    )
    compare(scenario, mode)


# ---------------------------------------------------------------------------- engine table bounds
def test_node_cidr_table_overflow_is_reported_not_written_past():
    # 60 pods pinned to one node with maxPods 10 and /28 node CIDRs: multi-pool demand
    # needs 6 node CIDRs, the engine's per-node CIDR table was sized for 4 (it assumes
    # at most 2 x maxPods pods per node). The baseline has no such table and runs on.
    from ipam_core.engine import tables as T
    from ipam_core.pipeline.run import EngineCapacityError, Simulation
    from ipam_core.workloads import OP_NODE_ADD, OP_POD_ADD, Workload

    n_pods = 60
    workload = Workload(
        time=np.concatenate([[0.0, 0.0], np.full(n_pods, 5.0)]),
        op=np.concatenate([[OP_NODE_ADD, OP_NODE_ADD], np.full(n_pods, OP_POD_ADD)]),
        node=np.concatenate([[0, 1], np.zeros(n_pods)]),
        pod=np.concatenate([[-1, -1], np.arange(n_pods)]),
        namespace=np.concatenate([[-1, -1], np.zeros(n_pods)]),
        pool=np.full(n_pods + 2, -1),
        node_names=["node-0", "node-1"], namespaces=["default"], pool_names=[], n_pods=n_pods,
    )
    scenario = scenario_for_mode(make_scenario("pinned", nodes=2, max_pods=10, mask_v4=28, workload=CHURN,
                                               duration="2m"), "multi-pool")
    baseline = run_baseline(scenario, workload, "multi-pool", [120.0])
    assert baseline["pods_running"][-1] == n_pods and baseline["node_cidrs"][-1] > 4 + 2

    sim = Simulation(scenario, workload, "multi-pool")
    width = sim.state.core.cidr.node_slots.shape[1]
    assert baseline["node_cidrs"][-1] > width  # the case does overflow the table
    try:
        sim.advance(120.0)
    except EngineCapacityError:
        pass  # reported plainly: fine
    st = sim.state
    for node in range(2):
        held = st.core.cidr.node_slots[node, : min(st.core.nodes[node, T.N_NSLOTS], width)]
        assert st.core.nodes[node, T.N_NSLOTS] <= width, "a node holds more CIDRs than its table row"
        assert (st.core.cidr.slots[held, T.L_NODE] == node).all(), "a node's CIDR row lists another node's CIDR"


# ---------------------------------------------------------------------------- gke (host scope, node range by max pods)
@pytest.mark.parametrize("max_pods", [8, 29, 64])
def test_gke_traces_equal(max_pods):
    # GKE sizes the node range from the node pool's max pods (/28 for 8, /26 for 29, /25 for 64) and the
    # kubelet admits that many; 8 pods per node above max pods leave pods waiting unscheduled
    scenario = make_scenario("gke", nodes=5, pool_v4=("10.0.0.0/22",), workload={**CHURN, "podsPerNode": max_pods + 8},
                             extra={"cloud": {"gke": {"maxPodsPerNode": max_pods}}})
    trace = compare(scenario, "gke")
    node_range = trace["addrs_carved"][-1] // trace["node_cidrs"][-1]
    assert node_range >= 2 * max_pods and node_range < 4 * max_pods  # the range holds at least 2x max pods
    check_exercised(trace, {"unscheduled", "churn"}, f"gke-{max_pods}")
