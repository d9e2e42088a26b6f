"""The address-aware scheduler arm (``cluster.addressFilter``, issue #12 item 6).

kube-scheduler does not know how many pod addresses a node has left
(kubernetes/enhancements#611, aws/amazon-vpc-cni-k8s#2638): pods land on a
node whose CIDR or ENIs are full and fail while other nodes have room. These
tests work small cases by hand per mode family: where the address-blind
scheduler fails pods and a filtered one does not, and where no filter can
help (the cluster is full).
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import OP_NODE_ADD, OP_NODE_DEL, OP_POD_ADD, OP_POD_DEL, scenario, workload
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam_core.pipeline import build_workload
from ipam_core.engine import tables as T
from ipam_core.engine.check import check_invariants
from ipam_core.pipeline.run import run_mode
from ipam_core.errors import ConfigError
from ipam_core.scenario import scenario_for_mode

# A /28 node CIDR: 16 addresses, network and broadcast unusable (Cilium's ipallocator), router and
# health taken by the agent: 12 pods per node (worked by hand, not read from the engine).
PODS_PER_28 = 16 - 2 - 2
# t3.small: 3 ENIs x 4 addresses, the primary of each not for pods: 9; Cilium's agent takes router and
# health from them (7 pods per node), ipamd takes none (9).
T3_SMALL = 3 * (4 - 1)
PODS_PER_T3_SMALL = {"eni": T3_SMALL - 2, "aws-vpc-cni": T3_SMALL}
# t3.medium: 3 ENIs x 6 addresses
PODS_PER_T3_MEDIUM = 3 * (6 - 1) - 2


def _pool_patch(address_filter: str, scheduler: str = "pack", nodes: int = 2, cidr: str = "10.0.0.0/16") -> dict:
    return {
        "duration": "6m",
        "timing": {"podPendingTimeout": "1m"},
        "cluster": {"nodes": nodes, "scheduler": scheduler, "addressFilter": address_filter},
        "cilium": {"ipam": {"mode": "cluster-pool",
                            "operator": {"clusterPoolIPv4PodCIDRList": [cidr], "clusterPoolIPv4MaskSize": 28}}},
    }


def _cloud_patch(address_filter: str, scheduler: str = "pack", nodes: int = 2, instance: str = "t3.small") -> dict:
    return {
        "duration": "8m",
        "timing": {"podPendingTimeout": "2m"},
        "cluster": {"nodes": nodes, "scheduler": scheduler, "addressFilter": address_filter,
                    "instanceType": instance},
        "cloud": {"subnets": ["10.1.0.0/20"]},
    }


def _pods(n_nodes: int, n_pods: int, gap: float, start: float = 30.0) -> list[tuple]:
    """Nodes at t=0, then unpinned pods (the scheduler places them), one every ``gap`` seconds."""
    events = [(0.0, OP_NODE_ADD, i, -1) for i in range(n_nodes)]
    return events + [(start + p * gap, OP_POD_ADD, -1, p) for p in range(n_pods)]


def _run(sc, wl, mode):
    result = run_mode(scenario_for_mode(sc, mode), wl, mode)
    assert check_invariants(result.state) == []
    assert _filed_nodes(result.state) == _feasible_nodes(result.state)
    return result


def _last(result, column):
    return int(result.trace[column][-1])


# ------------------------------------------------------------------ the scheduler's view, recomputed in Python
def _pool_room(st, node) -> int:
    """Running pods + free addresses where the agent takes them (host scope: first CIDR), fewest per family."""
    pool = st.core.icfg[T.I_DEFAULT_POOL]
    host_scope = st.core.icfg[T.I_POLICY] == T.POLICY_ONE_PER_FAMILY
    running = int(st.core.nodes[node, T.N_PODS] - st.core.nodes[node, T.N_PENDING])
    room = st.core.icfg[T.I_MAX_PODS] + 1
    for family in range(2):
        if st.core.icfg[T.I_FAMILY + family] == 0:
            continue
        if (st.core.icfg[T.I_ADDRESS_FILTER] == T.ADDRESS_FILTER_FREE
                and st.core.icfg[T.I_POLICY] == T.POLICY_MULTI_POOL and st.core.cidr.pool_carvable[pool, family] > 0):
            continue
        slots = [s for s in st.core.cidr.node_slots[node, : st.core.nodes[node, T.N_NSLOTS]]
                 if st.core.cidr.slots[s, T.L_STATE] == T.SLOT_LIVE and st.core.cidr.slots[s, T.L_FAMILY] == family
                 and st.core.cidr.slots[s, T.L_POOL] == pool]
        if host_scope:
            slots = slots[:1]
        room = min(room, running + sum(int(st.core.cidr.slots[s, T.L_MAX] - st.core.cidr.slots[s, T.L_USED]) for s in slots))
    return room


def _cloud_room(st, node, grow) -> int:
    """warm: running pods + free addresses in the pool; free: what the node can hold less its reservations."""
    cn = st.cl_node[node]
    if not grow:
        return int(st.core.nodes[node, T.N_PODS] - st.core.nodes[node, T.N_PENDING] + cn[T.CN_HELD] - cn[T.CN_USED])
    units, size = st.core.icfg[T.I_CL_UNITS], (16 if cn[T.CN_PD] == 1 else 1)
    capacity = int(cn[T.CN_HELD])
    for iface in range(st.core.icfg[T.I_CL_FIRST_IFACE], st.cl_iface.shape[1]):
        if st.cl_iface[node, iface, T.CI_ATTACHED] == 1:
            capacity += (units - int(st.cl_iface[node, iface, T.CI_UNITS])) * size
        elif st.core.icfg[T.I_CL_ATTACH] != 0:
            capacity += units * size
    if st.core.icfg[T.I_CL_MAX] > 0:
        capacity = min(capacity, st.core.icfg[T.I_CL_MAX])
    return capacity - int(cn[T.CN_RESERVED])


def _feasible_nodes(st) -> list[int]:
    """Nodes the scheduler may pick: present, ready, under maxPods and under the pods its addresses allow."""
    level = st.core.icfg[T.I_ADDRESS_FILTER]
    out = []
    for node in range(st.core.nodes.shape[0]):
        n = st.core.nodes[node]
        if not (n[T.N_PRESENT] == 1 and n[T.N_READY] == 1 and n[T.N_PODS] < st.core.icfg[T.I_MAX_PODS]):
            continue
        if level != T.ADDRESS_FILTER_NONE:
            if st.core.icfg[T.I_POLICY] == T.POLICY_CLOUD:
                room = _cloud_room(st, node, level == T.ADDRESS_FILTER_FREE)
            else:
                room = _pool_room(st, node)
            if not n[T.N_PODS] < room:
                continue
        out.append(node)
    return out


def _filed_nodes(st) -> list[int]:
    """Nodes in the scheduler's count tree (every policy keeps it)."""
    size = st.core.sched.tree_cnt.shape[0] // 2
    return [int(i) for i in np.flatnonzero(st.core.sched.tree_cnt[size : size + st.core.nodes.shape[0]])]


# ------------------------------------------------------------------ pool modes (host scope)
def test_pack_onto_a_full_cidr_fails_pods_blind_and_not_with_the_filter(tmp_path):
    pods = PODS_PER_28 + 8  # room on two nodes, not on one
    wl = workload(_pods(2, pods, gap=1.0), 2)
    blind = _run(scenario(tmp_path, _pool_patch("none"), name="blind.yaml"), wl, "cluster-pool")
    # pack keeps choosing node 0 (fewest free pod slots under maxPods 110): its /28 fills, the rest fail
    assert _last(blind, "pods_running") == PODS_PER_28
    assert _last(blind, "pods_failed") == 8 and _last(blind, "pods_failed_free_elsewhere") == 8
    for level in ("warm", "free"):
        aware = _run(scenario(tmp_path, _pool_patch(level), name=f"{level}.yaml"), wl, "cluster-pool")
        assert _last(aware, "pods_running") == pods and _last(aware, "pods_failed") == 0
        assert aware.state.core.nodes[0, T.N_PODS] == PODS_PER_28  # node 0 taken while it had an address
        assert aware.state.core.nodes[1, T.N_PODS] == 8


def test_a_full_cluster_is_full_for_every_scheduler(tmp_path):
    # a /27 pool: two /28s, both carved; no address anywhere for the last 5 pods
    pods = 2 * PODS_PER_28 + 5
    wl = workload(_pods(2, pods, gap=1.0), 2)
    full = "10.0.0.0/27"
    blind = _run(scenario(tmp_path, _pool_patch("none", "spread", cidr=full), name="b.yaml"), wl, "cluster-pool")
    aware = _run(scenario(tmp_path, _pool_patch("warm", "spread", cidr=full), name="w.yaml"), wl, "cluster-pool")
    assert _last(blind, "pods_running") == _last(aware, "pods_running") == 2 * PODS_PER_28
    assert _last(blind, "pods_failed") == 5 and _last(blind, "pods_failed_free_elsewhere") == 0
    # filtered: the extra pods are unschedulable (Pending, unbound), not failed on a node
    assert _last(aware, "pods_failed") == 0 and _last(aware, "pods_pending") == 5
    assert aware.state.core.nodes[:, T.N_PENDING].sum() == 0


def test_a_deleted_pod_makes_its_node_feasible_again(tmp_path):
    # node 0 full, one pod leaves: the next pod goes to node 0 again (pack), not to node 1
    events = _pods(2, PODS_PER_28, gap=1.0)
    events += [(100.0, OP_POD_DEL, -1, 0), (110.0, OP_POD_ADD, -1, PODS_PER_28)]
    r = _run(scenario(tmp_path, _pool_patch("warm")), workload(events, 2), "cluster-pool")
    assert r.state.core.nodes[0, T.N_PODS] == PODS_PER_28 and r.state.core.nodes[1, T.N_PODS] == 0
    assert _last(r, "pods_running") == PODS_PER_28


# ------------------------------------------------------------------ multi-pool
def _multi_pool_patch(level: str, cidrs: list[str]) -> dict:
    # the default pool derived from the cluster-pool list (docs/scenario.md, "Multi-pool pools")
    patch = _pool_patch(level)
    patch["cilium"]["ipam"] = {"mode": "multi-pool", "multiPoolPreAllocation": "default=4",
                               "operator": {"clusterPoolIPv4PodCIDRList": cidrs, "clusterPoolIPv4MaskSize": 28}}
    return patch


def test_multi_pool_warm_waits_for_carved_addresses_free_counts_the_pool(tmp_path):
    # a /26 pool: four /28s. Pods come in a burst, faster than the agent's CiliumNode debounce
    wl = workload(_pods(2, 20, gap=0.05), 2)
    runs = {level: _run(scenario(tmp_path, _multi_pool_patch(level, ["10.20.0.0/26"]), name=f"{level}.yaml"), wl,
                        "multi-pool") for level in ("none", "free", "warm")}
    for r in runs.values():  # 4 x 14 usable addresses, 2 x 2 reserved: room for all 20
        assert _last(r, "pods_running") == 20 and _last(r, "pods_failed") == 0
    # blind and free (the pool still has CIDRs) pack all 20 on node 0; warm spreads the burst over both
    # nodes' pre-allocated addresses
    assert runs["none"].state.core.nodes[0, T.N_PODS] == runs["free"].state.core.nodes[0, T.N_PODS] == 20
    assert runs["warm"].state.core.nodes[1, T.N_PODS] > 0


def test_multi_pool_free_excludes_full_nodes_once_the_pool_runs_dry(tmp_path):
    # a /27 pool: two /28s, one per node after pre-allocation; 24 pods fit (2 x (14 - 2))
    pods = 24
    wl = workload(_pods(2, pods, gap=2.0), 2)
    blind = _run(scenario(tmp_path, _multi_pool_patch("none", ["10.20.0.0/27"]), name="b.yaml"), wl, "multi-pool")
    free = _run(scenario(tmp_path, _multi_pool_patch("free", ["10.20.0.0/27"]), name="f.yaml"), wl, "multi-pool")
    assert _last(blind, "pods_failed") == _last(blind, "pods_failed_free_elsewhere") > 0
    assert _last(free, "pods_running") == pods and _last(free, "pods_failed") == 0


# ------------------------------------------------------------------ cloud modes
@pytest.mark.parametrize("mode", ["eni", "aws-vpc-cni"])
def test_eni_instance_limit_blind_fails_filtered_places_elsewhere(tmp_path, mode):
    per_node = PODS_PER_T3_SMALL[mode]
    pods = per_node + 5
    wl = workload(_pods(2, pods, gap=2.0), 2)
    blind = _run(scenario(tmp_path, _cloud_patch("none"), name="blind.yaml"), wl, mode)
    assert _last(blind, "pods_running") == per_node
    assert _last(blind, "pods_failed") == _last(blind, "pods_failed_free_elsewhere") == 5
    for level in ("free", "warm"):
        aware = _run(scenario(tmp_path, _cloud_patch(level), name=f"{level}.yaml"), wl, mode)
        assert _last(aware, "pods_running") == pods and _last(aware, "pods_failed") == 0
        assert aware.state.core.nodes[0, T.N_PODS] == per_node  # filled to the instance limit, no further


def test_cloud_warm_sends_a_burst_past_an_empty_warm_pool_free_waits_for_the_attach(tmp_path):
    # a burst of 12, faster than the operator refills a warm pool of pre-allocate 8: warm moves on to
    # node 1 once node 0's 8 are taken; free keeps node 0 (it can still attach ENIs, room for 13 pods)
    # and the last 4 wait there for the operator
    pods = 12
    wl = workload(_pods(2, pods, gap=0.01), 2)
    free = _run(scenario(tmp_path, _cloud_patch("free", instance="t3.medium"), name="free.yaml"), wl, "eni")
    warm = _run(scenario(tmp_path, _cloud_patch("warm", instance="t3.medium"), name="warm.yaml"), wl, "eni")
    assert pods <= PODS_PER_T3_MEDIUM
    assert free.state.core.nodes[0, T.N_PODS] == pods and free.state.core.nodes[1, T.N_PODS] == 0
    assert int(free.trace["pods_pending"].max()) > 0
    assert warm.state.core.nodes[0, T.N_PODS] >= 8 and warm.state.core.nodes[1, T.N_PODS] > 0
    assert int(warm.trace["pods_pending"].max()) == 0  # placed only where an address waited
    for r in (free, warm):
        assert _last(r, "pods_running") == pods


def test_cloud_free_counts_bound_pods_against_what_the_node_can_hold(tmp_path):
    # a burst of 20 at once onto t3.medium nodes (13 pods each): blind pack binds all 20 to node 0 (maxPods
    # 110) and 7 fail; free binds 13 there (its ENIs are not attached yet, but counted) and 7 to node 1
    pods = 20
    wl = workload(_pods(2, pods, gap=0.01), 2)
    blind = _run(scenario(tmp_path, _cloud_patch("none", instance="t3.medium"), name="b.yaml"), wl, "eni")
    free = _run(scenario(tmp_path, _cloud_patch("free", instance="t3.medium"), name="f.yaml"), wl, "eni")
    assert _last(blind, "pods_failed") == _last(blind, "pods_failed_free_elsewhere") == pods - PODS_PER_T3_MEDIUM
    assert free.state.core.nodes[0, T.N_PODS] == PODS_PER_T3_MEDIUM
    assert free.state.core.nodes[1, T.N_PODS] == pods - PODS_PER_T3_MEDIUM
    assert _last(free, "pods_failed") == 0 and _last(free, "pods_running") == pods


def test_cloud_full_cluster_filter_cannot_help(tmp_path):
    # both nodes at their instance limit (the subnet still has addresses no node can attach)
    per_node = PODS_PER_T3_SMALL["eni"]
    pods = 2 * per_node + 3
    wl = workload(_pods(2, pods, gap=2.0), 2)
    blind = _run(scenario(tmp_path, _cloud_patch("none", "spread"), name="b.yaml"), wl, "eni")
    aware = _run(scenario(tmp_path, _cloud_patch("free", "spread"), name="f.yaml"), wl, "eni")
    assert _last(blind, "pods_running") == _last(aware, "pods_running") == 2 * per_node
    assert _last(blind, "pods_failed") == 3
    assert _last(aware, "pods_failed") == 0 and _last(aware, "pods_pending") == 3


# ------------------------------------------------------------------ invariants, determinism, input
@settings(max_examples=16, deadline=None)
@given(
    mode=st.sampled_from(["kubernetes", "cluster-pool", "multi-pool", "eni", "aws-vpc-cni", "azure"]),
    scheduler=st.sampled_from(["spread", "pack", "random"]),
    nodes=st.integers(1, 4),
    pods=st.integers(5, 40),
    churn=st.floats(0.5, 4.0),
    seed=st.integers(0, 10_000),
    level=st.sampled_from(["warm", "free"]),
)
def test_warm_never_places_a_pod_on_a_node_without_an_address(tmp_path_factory, mode, scheduler, nodes, pods, churn,
                                                              seed, level):
    tmp = tmp_path_factory.mktemp("w")
    patch = {
        "seed": seed, "duration": "4m", "timing": {"podPendingTimeout": "40s"},
        "cluster": {"nodes": nodes, "scheduler": scheduler, "addressFilter": level, "instanceType": "t3.medium"},
        "cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["10.0.0.0/24"],
                                         "clusterPoolIPv4MaskSize": 28}}},
        "cloud": {"subnets": ["10.1.0.0/24"]},
        "workload": {"generator": "steady-churn", "podsPerNode": pods, "churnPerSecond": churn},
    }
    patch["cluster"]["kubeControllerManager"] = {"cluster-cidr": "10.244.0.0/24", "node-cidr-mask-size": 28}
    sc = scenario(tmp, patch)
    wl = build_workload(sc)
    wl = workload([(t, o, n, p) for t, o, n, p in zip(wl.time, wl.op, wl.node, wl.pod)]
                  + [(90.0, OP_NODE_DEL, 0, -1), (150.0, OP_NODE_ADD, 0, -1)], nodes)
    r = _run(sc, wl, mode)  # also, either level: the tree holds exactly the feasible nodes at the end
    if level == "free":
        return
    # warm: a pod is placed only where an address waits, and takes it at once: none ever fails, none waits bound
    assert _last(r, "pods_failed") == 0
    assert r.state.core.nodes[:, T.N_PENDING].sum() == 0


@pytest.mark.parametrize("mode", ["cluster-pool", "eni"])
def test_same_seed_same_trace_with_the_filter(tmp_path, mode):
    patch = _pool_patch("free", "random", 3) if mode == "cluster-pool" else _cloud_patch("warm", "random", 3)
    patch["workload"] = {"generator": "steady-churn", "podsPerNode": 15, "churnPerSecond": 2}
    sc = scenario(tmp_path, patch)
    wl = build_workload(sc)
    a, b = _run(sc, wl, mode), _run(sc, wl, mode)
    for column in a.trace:
        assert np.array_equal(a.trace[column], b.trace[column]), column


@pytest.mark.parametrize("value", ["off", "yes", 1, ["warm"]])
def test_a_bad_address_filter_is_refused_naming_the_key(tmp_path, value):
    with pytest.raises(ConfigError) as info:
        scenario(tmp_path, {"cluster": {"addressFilter": value}})
    message = str(info.value)
    assert "cluster.addressFilter" in message and "none, free, warm" in message and "\n" not in message


# ------------------------------------------------------------------ the compare arm
def test_compare_address_filters_puts_the_blind_cost_in_one_column(tmp_path):
    from ipam_core.address_arms import ARM_COLUMNS, compare_address_filters

    sc = scenario(tmp_path, {**_pool_patch("none"), "modes": ["kubernetes", "cluster-pool"],
                             "cluster": {**_pool_patch("none")["cluster"],
                                         "kubeControllerManager": {"cluster-cidr": "10.244.0.0/16",
                                                                   "node-cidr-mask-size": 28}}})
    wl = workload(_pods(2, PODS_PER_28 + 8, gap=1.0), 2)
    table = compare_address_filters(sc, filters=("warm",), workload=wl)
    assert table.column_names == [name for name, _ in ARM_COLUMNS]
    rows = table.to_pylist()
    assert [(r["mode"], r["address_filter"]) for r in rows] == [
        ("kubernetes", "none"), ("kubernetes", "warm"), ("cluster-pool", "none"), ("cluster-pool", "warm")]
    for blind, warm in (rows[0:2], rows[2:4]):  # both host-scope modes: /28 per node, pack, worked above
        assert blind["pods_failed"] == blind["failed_free_elsewhere"] == 8 and blind["blind_extra_failures"] == 0
        assert warm["pods_failed"] == 0 and warm["blind_extra_failures"] == 8
        assert warm["pods_running_end"] == PODS_PER_28 + 8


@pytest.mark.parametrize("filters", [("warm", "warm"), ("hot",)])
def test_compare_address_filters_refuses_bad_filters(tmp_path, filters):
    from ipam_core.address_arms import compare_address_filters

    with pytest.raises(ConfigError, match="address filter"):
        compare_address_filters(scenario(tmp_path), filters=filters)


def test_compare_cli_writes_the_blind_cost_beside_the_run(tmp_path):
    import csv
    from pathlib import Path

    from typer.testing import CliRunner

    from ipam_core.cli import app

    spec = Path(__file__).resolve().parents[1] / "results" / "address-filter-scenario.yaml"
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(spec), "--modes", "cluster-pool", "--address-filters",
                                      "warm", "--no-plot", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "address-filters.csv").open()))
    assert [r["address_filter"] for r in rows] == ["none", "warm"]
    blind, warm = rows
    # the run's own summary (address-blind: the scenario sets no filter) agrees with the blind arm
    summary = next(csv.DictReader((out / "summary.csv").open()))
    assert summary["pods_failed"] == blind["pods_failed"] != "0"
    assert warm["pods_failed"] == "0" and warm["blind_extra_failures"] == blind["pods_failed"]
    assert "blind_extra_failures" in result.output and "address-filters.csv" in result.output


@pytest.mark.parametrize("text", ["hot", "warm, warm", ""])
def test_compare_cli_refuses_bad_address_filters_before_any_run(tmp_path, text):
    from typer.testing import CliRunner

    from ipam_core.cli import app

    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", "--address-filters", text, "--out", str(out)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--address-filters" in lines[0] and "Traceback" not in result.output
    assert not out.exists()


def test_compare_address_filters_reuses_the_run_already_made(tmp_path, monkeypatch):
    import ipam_core.address_arms as arms
    from ipam_core.pipeline import simulate

    sc = scenario(tmp_path, {**_pool_patch("none"), "modes": ["kubernetes"],
                             "cluster": {**_pool_patch("none")["cluster"],
                                         "kubeControllerManager": {"cluster-cidr": "10.244.0.0/16",
                                                                   "node-cidr-mask-size": 28}}})
    wl = workload(_pods(2, PODS_PER_28 + 8, gap=1.0), 2)
    fresh = arms.compare_address_filters(sc, filters=("warm",), workload=wl)
    done = simulate(sc, workload=wl)
    calls = []
    monkeypatch.setattr(arms, "simulate", lambda *a, **k: calls.append(k) or simulate(*a, **k))
    reused = arms.compare_address_filters(sc, filters=("warm",), workload=wl, done=done)
    assert reused.equals(fresh)
    assert len(calls) == 1  # only the warm arm ran; the blind arm is the run already made
