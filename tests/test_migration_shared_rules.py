"""The migration and the engine follow the same upstream rules, from the same code (issue #9, item 4).

docs/dev/migration-rules.md lists each rule and the one function both sides call. Here: the kernels give
the sequences the allocators give, and on the same small cluster the engine's run and the migration's
replay hand each node the same node CIDRs.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_helpers import OP_NODE_ADD, OP_NODE_DEL, nodes_then_pods, workload
from engine_helpers import scenario as engine_scenario
from ipam_core.cidrset import CIDRSet
from ipam_core.kernels.carve import first_open_set
from ipam_core.kernels.scan import bm_take_next_fit
from ipam_core.migration import _agents, _rules, operator, run_migration
from ipam_core.migration.engine import MigrationEngine
from ipam_core.migration.cluster import usable_addresses
from ipam_core.modes import multi_pool
from ipam_core.modes.multi_pool import cidrs_to_carve
from ipam_core.engine.core import _slot_bitmap
from ipam_core.engine.layout import pod_range
from ipam_core.engine.tables import L_MAX
from ipam_core.pipeline.run import run_mode
from ipam_core.scenario import load_scenario, scenario_for_mode

SEED = 20261206


# ---------------------------------------------------------------- the kernels are what the allocators run
@settings(max_examples=60, deadline=None, derandomize=True)
@given(data=st.data())
def test_next_fit_kernel_takes_what_cidrset_allocate_next_takes(data):
    # random fill, release and cursor: CIDRSet.allocate_next (the migration's operators, KCM) and the engine's
    # bm_take_next_fit step over a copy of the same bitmap agree on every CIDR and on the cursor
    mask = data.draw(st.integers(18, 26), label="mask")
    cidrs = CIDRSet("10.0.0.0/16", mask)
    n = cidrs.capacity
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    taken = cidrs.allocate_next_many(int(rng.integers(0, n + 1)))
    for index in rng.choice(taken, size=taken.shape[0] // 2, replace=False) if taken.shape[0] else []:
        cidrs.release(cidrs.cidr_of(int(index)))
    words, summary, cursor = cidrs.words.copy(), cidrs.summary.copy(), cidrs.cursor
    for _ in range(int(rng.integers(1, n + 2))):
        if cidrs.is_full:
            assert bm_take_next_fit(words, summary, n, cursor)[0] == -1
            break
        index, cursor = bm_take_next_fit(words, summary, n, cursor)
        assert cidrs.allocate_next() == cidrs.cidr_of(int(index))
        assert cidrs.cursor == cursor


@settings(max_examples=60, deadline=None, derandomize=True)
@given(fill=st.lists(st.tuples(st.integers(1, 8), st.integers(0, 8)), min_size=1, max_size=6))
def test_the_migration_operator_takes_the_set_the_engine_kernel_picks(fill):
    sets = []
    for i, (log_n, used) in enumerate(fill):
        s = CIDRSet(f"10.{i}.0.0/24", 24 + min(log_n, 6))
        s.allocate_next_many(min(used, s.capacity))
        sets.append(s)
    allocated = np.array([s.allocated for s in sets], dtype=np.int64)
    capacity = np.array([s.capacity for s in sets], dtype=np.int64)
    index = first_open_set(allocated, capacity, 0, len(sets))
    picked = operator.first_open(sets)
    assert (picked is None) == (index < 0)
    if picked is not None:
        assert picked is sets[index] and not picked.is_full
        assert all(s.is_full for s in sets[:index])  # the first one that is not full: list order
    else:
        assert all(s.is_full for s in sets)


def test_the_migration_runs_the_source_the_engine_compiles():
    # not a copy: the very function each kernel was compiled from
    assert _rules.first_open_set is _rules.source_of(first_open_set)
    assert _rules.gives_back_unused is _rules.source_of(multi_pool.gives_back_unused)
    assert _rules.cidrs_to_carve is _rules.source_of(cidrs_to_carve)
    assert operator.first_open_set is _rules.first_open_set and operator.cidrs_to_carve is _rules.cidrs_to_carve
    assert _agents.gives_back_unused is _rules.gives_back_unused


@pytest.mark.parametrize("prefix", [24, 26, 29, 30, 31, 32])
def test_usable_addresses_are_the_engine_count(prefix):
    cidr = f"10.1.2.0/{prefix}"
    net = ipaddress.ip_network(cidr)
    assert usable_addresses(cidr) == pod_range(net, prefix)[0]
    assert usable_addresses(cidr) == {24: 254, 26: 62, 29: 6, 30: 2, 31: 2, 32: 1}[prefix]


def test_the_migration_agents_give_back_through_the_engine_rule(monkeypatch):
    # the agent's release decision is the engine's function: replacing it changes what the agent gives back
    cilium = {"ipam": {"mode": "multi-pool", "operator": {"autoCreateCiliumPodIPPools": {
        "default": {"ipv4": {"cidrs": ["10.30.0.0/20"], "maskSize": 28}}}}}}
    steps = [{"at": "0s", "apply": [{"deployment": "x", "replicas": 30, "nodeName": "node-0"}]},
             {"at": "5m", "scale": {"deployment": "x", "replicas": 2}}]
    doc = migration_doc(cilium, ["node-0"], steps, pods_per_node=1)

    def cidrs_at_end():
        result = run_migration(load_scenario(yaml.safe_dump(doc, sort_keys=False)))
        return result.nodes_at(result.step_rows[-1]["step"])["node-0"]["pools_allocated"]

    calls = []
    real = _agents.gives_back_unused
    monkeypatch.setattr(_agents, "gives_back_unused", lambda *a: calls.append(a) or real(*a))
    shrunk = cidrs_at_end()
    assert calls and len(shrunk) < 3  # 30 pods needed 3 /28s; 2 pods (+ router, health) need 1 or 2
    monkeypatch.setattr(_agents, "gives_back_unused", lambda *a: False)
    assert len(cidrs_at_end()) == 3


@settings(max_examples=200, deadline=None, derandomize=True)
@given(have=st.integers(0, 600), needed=st.integers(0, 600), per_cidr=st.sampled_from([1, 2, 6, 14, 62, 254]))
def test_the_operator_carves_whole_cidrs_until_the_request_is_covered(have, needed, per_cidr):
    # AllocateToNode: the fewest whole CIDRs that cover the request, none when it is covered
    k = cidrs_to_carve(have, needed, per_cidr)
    assert have + k * per_cidr >= needed
    assert k == 0 or have + (k - 1) * per_cidr < needed


def test_a_pool_that_gives_no_address_is_tried_once():
    assert cidrs_to_carve(0, 8, 0) == 1 and cidrs_to_carve(8, 8, 0) == 0


# ---------------------------------------------------------------- the same cluster, run by both
def migration_doc(cilium, nodes, steps, *, pods_per_node=2, kcm=None):
    return {
        "name": "shared", "seed": SEED, "duration": "10m",
        "cluster": {"kubeControllerManager": kcm or {"cluster-cidr": "10.244.0.0/16", "node-cidr-mask-size": 24}},
        "cilium": cilium,
        "migration": {"nodes": list(nodes), "agentRestart": "30s", "operatorRestart": "10s", "podRestart": "10s"},
        "workload": {"generator": "steady-churn", "podsPerNode": pods_per_node},
        "steps": steps or [{"at": "1m", "run": "kubectl get ciliumnodes"}],
    }


def migration_cidrs(cilium, n_nodes, steps=(), kcm=None) -> dict[int, list[str]]:
    """Node index -> node CIDRs at the last snapshot of the migration's replay."""
    names = [f"node-{i}" for i in range(n_nodes)]
    doc = migration_doc(cilium, names, list(steps), kcm=kcm)
    result = run_migration(load_scenario(yaml.safe_dump(doc, sort_keys=False)))
    out = {}
    for name, row in result.nodes_at(result.step_rows[-1]["step"]).items():
        if not row["ciliumnode_exists"] and not row["kcm_pod_cidrs"]:
            continue  # deleted
        mode = cilium["ipam"]["mode"]
        if mode == "multi-pool":
            cidrs = [c.split("=", 1)[1] for c in row["pools_allocated"]]
        elif mode == "kubernetes":
            cidrs = list(row["kcm_pod_cidrs"])
        else:
            cidrs = list(row["ciliumnode_pod_cidrs"])
        out[int(name.split("-")[1])] = cidrs
    return out


def engine_cidrs(tmp_path, cilium, events, n_nodes, mode, kcm=None) -> dict[int, list[str]]:
    """Node index -> node CIDRs at the engine's last node sample."""
    patch = {"cilium": {"ipam": cilium["ipam"]}, "cluster": {"nodes": n_nodes}}
    if kcm is not None:
        patch["cluster"]["kubeControllerManager"] = kcm
    sc = engine_scenario(tmp_path, patch)
    result = run_mode(scenario_for_mode(sc, mode), workload(events, n_nodes), mode)
    n = result.nodes
    t_end = n["time_s"].max()
    offsets = np.concatenate([[0], np.cumsum(n["cidrs_counts"])])
    values = n["cidrs_values"].to_pylist()
    return {int(n["node"][i]): values[offsets[i]: offsets[i + 1]]
            for i in np.flatnonzero((n["time_s"] == t_end) & (n["family"] == 4))}


def cluster_pool(entries, mask):
    return {"ipam": {"mode": "cluster-pool", "operator": {"clusterPoolIPv4PodCIDRList": list(entries),
                                                          "clusterPoolIPv4MaskSize": mask}}}


@settings(max_examples=8, deadline=None, derandomize=True)
@given(n_nodes=st.integers(1, 9), sizes=st.lists(st.integers(0, 2), min_size=1, max_size=3),
       mask=st.integers(26, 27))
def test_cluster_pool_nodes_get_the_same_cidrs_from_the_engine_and_the_migration(tmp_path_factory, n_nodes, sizes,
                                                                                 mask):
    # list entries of 1, 2 or 4 node CIDRs: some clusters run out, and the later nodes wait on both sides
    entries = [f"10.{i + 1}.0.0/{mask - size}" for i, size in enumerate(sizes)]
    cilium = cluster_pool(entries, mask)
    engine = engine_cidrs(tmp_path_factory.mktemp("e"), cilium, nodes_then_pods(n_nodes, 0), n_nodes, "cluster-pool")
    migration = migration_cidrs(cilium, n_nodes)
    assert engine == migration
    assert sum(len(c) for c in engine.values()) == min(n_nodes, sum(1 << s for s in sizes))


def test_kubernetes_nodes_get_the_same_cidrs_from_the_engine_and_the_migration(tmp_path):
    kcm = {"cluster-cidr": "10.244.0.0/22", "node-cidr-mask-size": 24}
    cilium = {"ipam": {"mode": "kubernetes"}}
    engine = engine_cidrs(tmp_path, cilium, nodes_then_pods(6, 0), 6, "kubernetes", kcm=kcm)
    migration = migration_cidrs(cilium, 6, kcm=kcm)
    assert engine == migration
    assert sorted(c for cs in engine.values() for c in cs) == [f"10.244.{i}.0/24" for i in range(4)]


def test_multi_pool_nodes_get_the_same_first_cidrs_from_the_engine_and_the_migration(tmp_path):
    # a /25 and a /24 carved into /26s (2 + 4): pre-allocation 8 asks for one each (62 addresses cover the
    # few pods the replay starts with); 10 nodes take all 6 and the last 4 wait on both sides
    cilium = {"ipam": {"mode": "multi-pool", "operator": {"autoCreateCiliumPodIPPools": {
        "default": {"ipv4": {"cidrs": ["10.40.0.0/25", "10.50.0.0/24"], "maskSize": 26}}}}}}
    engine = engine_cidrs(tmp_path, cilium, nodes_then_pods(10, 0), 10, "multi-pool")
    migration = migration_cidrs(cilium, 10)
    assert engine == migration
    assert sum(len(c) for c in engine.values()) == 6


def test_a_freed_cidr_is_reused_after_the_cursor_wraps_on_both_sides(tmp_path):
    # node 0 leaves; the next new node takes the next CIDR after the cursor (next fit), not node 0's
    cilium = cluster_pool(["10.0.0.0/22"], 24)
    events = [(0.0, OP_NODE_ADD, i, -1) for i in range(2)]
    events += [(120.0, OP_NODE_DEL, 0, -1), (240.0, OP_NODE_ADD, 2, -1), (360.0, OP_NODE_ADD, 3, -1),
               (480.0, OP_NODE_ADD, 4, -1)]
    engine = engine_cidrs(tmp_path, cilium, events, 5, "cluster-pool")
    steps = [{"at": "2m", "delete": {"node": "node-0"}}, {"at": "4m", "node": {"add": "node-2"}},
             {"at": "6m", "node": {"add": "node-3"}}, {"at": "8m", "node": {"add": "node-4"}}]
    migration = migration_cidrs(cilium, 2, steps)
    engine = {k: v for k, v in engine.items() if k != 0}
    assert engine == migration
    assert migration[4] == ["10.0.0.0/24"]


# ---------------------------------------------------------------- pod addresses: the engine's stream
def test_a_node_takes_the_addresses_the_engine_takes_for_the_same_seed(tmp_path):
    # one node, one CIDR, no release: router, health and every pod draw their start from the run's SplitMix64
    # stream seeded with the scenario's seed (engine/rng.py), so both sides hold the very same offsets
    cilium = cluster_pool(["10.1.0.0/16"], 24)
    steps = [{"at": "1m", "apply": [{"deployment": "x", "replicas": 40, "nodeName": "node-0"}]}]
    migration = MigrationEngine(load_scenario(yaml.safe_dump(migration_doc(cilium, ["node-0"], steps,
                                                                           pods_per_node=1), sort_keys=False)))
    migration.run()
    (r,) = migration.nodes[0].agent.ranges
    pods = int(np.count_nonzero((migration.pods.node == 0) & (migration.pods.addr >= 0)))
    assert pods >= 40 and r.alloc.used == pods + 2  # and the router and health addresses
    taken = r.alloc.allocated_offsets().tolist()

    sc = engine_scenario(tmp_path, {"seed": SEED, "cilium": {"ipam": cilium["ipam"]}, "cluster": {"nodes": 1}})
    st = run_mode(scenario_for_mode(sc, "cluster-pool"), workload(nodes_then_pods(1, pods), 1), "cluster-pool").state
    slot = st.core.cidr.node_slots[0, 0]
    words, _ = _slot_bitmap(st.core.cidr, slot)
    bits = np.unpackbits(words.view(np.uint8), bitorder="little")[: st.core.cidr.slots[slot, L_MAX]]
    assert np.flatnonzero(bits).tolist() == taken


# ---------------------------------------------------------------- multi-pool demand: the engine's reading
def small_cidr_pool(pre_allocation=None):
    ipam = {"mode": "multi-pool", "operator": {"autoCreateCiliumPodIPPools": {
        "default": {"ipv4": {"cidrs": ["10.30.0.0/24"], "maskSize": 28}}}}}  # 14 addresses per node CIDR
    if pre_allocation is not None:
        ipam["multiPoolPreAllocation"] = pre_allocation
    return {"ipam": ipam}


@pytest.mark.parametrize("pods", [12, 20])
def test_a_multi_pool_node_holds_the_cidrs_the_engine_carves_for_its_demand(tmp_path, pods):
    # pods + router + health in use, neededIPCeil(., 8) asked for, whole /28s carved: 14 -> 24 (2 CIDRs),
    # 22 -> 32 (3 CIDRs). Every allocation triggers the agent's sync on both sides, so the buffer follows the
    # pods in use; counting the router and health before they are held (the migration's former reading)
    # and syncing only on a failure left the node of 20 pods with 2 CIDRs and 6 free addresses
    cilium = small_cidr_pool()
    steps = [{"at": "1m", "apply": [{"deployment": "x", "replicas": pods, "nodeName": "node-0"}]}]
    doc = migration_doc(cilium, ["node-0"], steps, pods_per_node=1)
    result = run_migration(load_scenario(yaml.safe_dump(doc, sort_keys=False)))
    last = result.step_rows[-1]["step"]
    assert len([r for r in result.pod_rows if r["step"] == last and r["address"]]) == pods
    migration = [c.split("=", 1)[1] for c in result.nodes_at(last)["node-0"]["pools_allocated"]]
    engine = engine_cidrs(tmp_path, cilium, nodes_then_pods(1, pods), 1, "multi-pool")
    assert engine == {0: migration}
    assert len(migration) == {12: 2, 20: 3}[pods]


def test_pods_a_restarted_agent_has_not_tried_are_not_its_demand(monkeypatch):
    # 20 pods and router and health hold 22 addresses of 3 /28s (42). During the agent's restart the
    # deployment grows to 40: the 20 new pods are placed but the agent is down, so they ask for nothing, and
    # the restarted agent's pending map is empty: it asks for neededIPCeil(22, 8) = 32, not
    # neededIPCeil(22 + 20, 8) = 56. They then ask, take the 20 free addresses, and the demand follows.
    steps = [{"at": "0s", "apply": [{"deployment": "x", "replicas": 20, "nodeName": "node-0"}]},
             {"at": "2m", "run": "kubectl -n kube-system rollout restart ds/cilium"},
             {"at": "2m10s", "scale": {"deployment": "x", "replicas": 40}},
             {"at": "4m", "run": "kubectl get ciliumnodes"}]
    doc = migration_doc(small_cidr_pool(), ["node-0"], steps, pods_per_node=1)
    asked = []
    real = _agents.AgentMixin._multi_pool_sync

    def sync(self, node):
        grew = real(self, node)
        asked.append((self.now, node.cn.requested.get("default", 0)))
        return grew

    monkeypatch.setattr(_agents.AgentMixin, "_multi_pool_sync", sync)
    result = run_migration(load_scenario(yaml.safe_dump(doc, sort_keys=False)))
    after_restart = [needed for t, needed in asked if t == 150.0]  # the agent is back at 2m + 30s
    assert after_restart[0] == 32
    assert after_restart[-1] == 56  # 40 pods + router + health = 42 in use
    cidrs = result.nodes_at(result.step_rows[-1]["step"])["node-0"]["pools_allocated"]
    assert len(cidrs) == 4


def test_an_agent_whose_default_pool_is_not_pre_allocated_asks_for_its_router_address():
    # no pre-allocation: the agent does not wait for the pool (waitForAllPools) and its router request
    # fails; that pending request is the node's first demand, so it gets a CIDR and becomes ready
    steps = [{"at": "1m", "apply": [{"deployment": "x", "replicas": 3, "nodeName": "node-0"}]}]
    doc = migration_doc(small_cidr_pool("default=0"), ["node-0"], steps, pods_per_node=1)
    result = run_migration(load_scenario(yaml.safe_dump(doc, sort_keys=False)))
    last = result.step_rows[-1]["step"]
    assert result.nodes_at(last)["node-0"]["pools_allocated"] == ["default=10.30.0.0/28"]
    assert len([r for r in result.pod_rows if r["step"] == last and r["address"]]) == 3


@settings(max_examples=100, deadline=None, derandomize=True)
@given(since=st.floats(0, 3600), retry=st.floats(0.5, 1200), ttl=st.floats(1, 900))
def test_a_failed_request_counts_while_retries_refresh_it_or_within_the_ttl(since, retry, ttl):
    # the engine compiles it, the migration runs its source over arrays: the same answer either way
    want = retry <= ttl or since <= ttl
    assert bool(multi_pool.still_pending(since, retry, ttl)) == want
    over_array = _rules.still_pending(np.array([since, since]), retry, ttl)  # True, or one answer per element
    assert np.broadcast_to(over_array, (2,)).tolist() == [want, want]
    assert _agents.still_pending is _rules.still_pending is _rules.source_of(multi_pool.still_pending)
