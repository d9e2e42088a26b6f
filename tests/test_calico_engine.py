"""Mode ``calico`` through the compiled engine: the CLI end to end, hand-worked cases, and the plain-Python oracle.

The allocator's own rules are tested in tests/test_calico_allocator.py; here the loop drives them
(modes/calico_hooks.py): pods and nodes from a workload, kube-controllers' periodic pass on its
timer, the shared trace counters. The oracle (bench/baseline_calico.py) is driven by the same
pod and node sequence, in the order the loop runs it, and must end with the same blocks, queues,
addresses and counts.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ipam_core.cli import app
from ipam_core.engine import tables as T
from ipam_core.pipeline.run import Simulation
from ipam_core.modes.calico_gorand import fnv1_32
from ipam_core.modes.calico_tables import ADDR_SHIFT, K_BLOCK_RELEASES, K_CLAIMS, K_FAILS, ORDINAL_MASK
from ipam_core.scenario import load_scenario
from ipam_core.workloads.events import OP_NODE_ADD, OP_NODE_DEL, OP_POD_ADD, OP_POD_DEL, Workload

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from baseline_calico import CalicoReference, GoRand, Pool  # noqa: E402

runner = CliRunner()
GRACE_S = 60.0  # leakGracePeriod 1m: kube-controllers passes every 30 s


def scenario(pools: list[tuple], nodes: int = 4, grace: str = "1m", ipam_config: dict | None = None,
             dual_stack: bool = False, node_labels: list | None = None, objects: list | None = None):
    """A calico scenario with these IPPool specs (name -> spec), no retries within the run.

    ``node_labels`` is ``cluster.nodeLabels``; ``objects`` more manifests (Namespaces).
    """
    docs = [{"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": name}, "spec": spec}
            for name, spec in pools]
    docs.append({"apiVersion": "projectcalico.org/v3", "kind": "KubeControllersConfiguration",
                 "metadata": {"name": "default"}, "spec": {"controllers": {"node": {"leakGracePeriod": grace}}}})
    if ipam_config is not None:
        docs.append({"apiVersion": "projectcalico.org/v3", "kind": "IPAMConfiguration",
                     "metadata": {"name": "default"}, "spec": ipam_config})
    docs.extend(objects or [])
    doc = {"name": "calico-test", "duration": "30m", "modes": ["calico"], "cluster": {"nodes": nodes},
           "workload": {"generator": "steady-churn"},
           "timing": {"podRetryInterval": "10h", "podPendingTimeout": "20h"}, "manifests": docs}
    if node_labels is not None:
        doc["cluster"]["nodeLabels"] = node_labels
    if dual_stack:
        doc["cilium"] = {"ipv6": {"enabled": True}}
    return load_scenario(yaml.safe_dump(doc, sort_keys=False))


def workload(events, names, namespaces=("default",), pool_names=()):
    """(time, op, node, pod[, namespace, pool]) rows as a Workload; pod adds name the node they are pinned to.

    ``namespace`` indexes ``namespaces`` (default 0), ``pool`` ``pool_names``: the pod's named pool (-1: none).
    """
    rows = [(*e, *(0, -1)[len(e) - 4:]) for e in events]  # namespace 0, no pool unless given
    t, op, node, pod, ns, pool = (np.array(c) for c in zip(*rows))
    is_pod = (op == OP_POD_ADD) | (op == OP_POD_DEL)
    return Workload(t.astype(np.float64), op.astype(np.int8), node.astype(np.int32),
                    np.where(is_pod, pod, -1).astype(np.int32), np.where(is_pod, ns, -1).astype(np.int32),
                    np.where(is_pod, pool, -1).astype(np.int32), list(names), list(namespaces), list(pool_names),
                    int(pod[is_pod].max()) + 1 if is_pod.any() else 1)


def blocks_of(st, node):
    """The node's affine blocks as (pool, block index), in datastore order."""
    t = st.cal
    return [(int(t.blk_pool[s]), int(t.blk_index[s])) for s in t.node_blk[node, :t.node_nblk[node]]]


def address(st, pod_id, family=0):
    """(pool, block index, ordinal) of a running pod's address."""
    packed = int(st.cal_addr[st.core.pod_tables.pod_row[pod_id], family])
    slot = packed >> ADDR_SHIFT
    return int(st.cal.blk_pool[slot]), int(st.cal.blk_index[slot]), packed & ORDINAL_MASK


def counter(st, field, family=0):
    return int(st.core.cnt[T.K_FAMILY_BASE + T.FAMILY_STRIDE * family + field])


def walk_start(name, n_blocks):
    """Where a hostname's block search starts: Go's math/rand seeded with FNV-1 of the name (the oracle's)."""
    return GoRand(fnv1_32(name)).big_below(n_blocks)


# ---------------------------------------------------------------------------- hand-worked cases
SMALL_POOL = [("pool-a", {"cidr": "10.0.0.0/26", "blockSize": 29})]  # 8 blocks of 8 addresses


def test_first_pod_claims_the_hostname_seeded_block_and_the_ninth_a_second():
    sc = scenario(SMALL_POOL)
    pods = [(1.0 + i, OP_POD_ADD, 0, i) for i in range(9)]
    sim = Simulation(sc, workload([(0.0, OP_NODE_ADD, 0, -1), *pods], ["node-a"]), "calico")
    start = walk_start("node-a", 8)
    sim.advance(1.5)  # the first pod
    assert blocks_of(sim.state, 0) == [(0, start)]
    assert counter(sim.state, T.F_NODE_CIDRS) == 1 and counter(sim.state, T.F_CARVED) == 8
    assert address(sim.state, 0) == (0, start, 0)
    sim.advance(8.5)  # eight pods fill the block
    assert len(blocks_of(sim.state, 0)) == 1 and counter(sim.state, T.F_FREE) == 0
    sim.advance(9.5)  # the ninth claims the next index of the walk
    second = (start + 1) % 8
    assert sorted(blocks_of(sim.state, 0)) == sorted([(0, start), (0, second)])
    assert address(sim.state, 8) == (0, second, 0)
    assert counter(sim.state, T.F_CARVES) == 2 and counter(sim.state, T.F_USED) == 9
    assert counter(sim.state, T.F_CARVED) == 16 and counter(sim.state, T.F_FREE) == 7
    # a /26 of /29 blocks: the largest aligned run of unclaimed blocks, in addresses
    claimed = {start, second}
    runs = [k for k in (3, 2, 1, 0) for x in range(0, 8, 1 << k)
            if not claimed & set(range(x, x + (1 << k)))]
    assert int(sim.sample()[0]["largest_free_block"]) == 8 << runs[0]


def test_an_emptied_block_goes_at_the_first_pass_strictly_after_the_grace_period():
    sc = scenario(SMALL_POOL)
    events = [(0.0, OP_NODE_ADD, 0, -1), *[(1.0 + i, OP_POD_ADD, 0, i) for i in range(9)],
              (10.0, OP_POD_DEL, -1, 8)]  # the ninth pod leaves: its block is empty from t = 10
    sim = Simulation(sc, workload(events, ["node-a"]), "calico")
    sim.advance(11.0)
    assert len(blocks_of(sim.state, 0)) == 2
    sim.advance(89.0)  # passes at 30, 60: not yet 60 s empty; at 90 it has been 80 s
    assert len(blocks_of(sim.state, 0)) == 2 and counter(sim.state, T.F_RELEASES) == 0
    sim.advance(91.0)
    assert blocks_of(sim.state, 0) == [(0, walk_start("node-a", 8))]
    assert counter(sim.state, T.F_RELEASES) == 1 and counter(sim.state, T.F_NODE_CIDRS) == 1
    sim.advance(1000.0)  # the node's last block is never released
    assert len(blocks_of(sim.state, 0)) == 1


def test_a_node_borrows_when_the_pool_has_no_unclaimed_block():
    sc = scenario([("pool-a", {"cidr": "10.0.0.0/28", "blockSize": 29})])  # 2 blocks
    events = [(0.0, OP_NODE_ADD, 0, -1), (0.0, OP_NODE_ADD, 1, -1),
              *[(1.0 + i, OP_POD_ADD, 0, i) for i in range(9)], (20.0, OP_POD_ADD, 1, 9)]
    sim = Simulation(sc, workload(events, ["node-a", "node-b"]), "calico")
    sim.advance(21.0)
    st = sim.state
    assert len(blocks_of(st, 0)) == 2 and blocks_of(st, 1) == []
    pool, index, _ = address(st, 9)
    assert (pool, index) in blocks_of(st, 0)  # node-b's pod holds an address of node-a's block
    assert int(st.cal.node_borrowed[1, 0]) == 1 and int(st.core.cnt[T.K_RUNNING]) == 10
    assert counter(st, T.F_IP_FAILS) == 0


def test_strict_affinity_fails_where_borrowing_would_succeed():
    sc = scenario([("pool-a", {"cidr": "10.0.0.0/28", "blockSize": 29})], ipam_config={"strictAffinity": True})
    events = [(0.0, OP_NODE_ADD, 0, -1), (0.0, OP_NODE_ADD, 1, -1),
              *[(1.0 + i, OP_POD_ADD, 0, i) for i in range(9)], (20.0, OP_POD_ADD, 1, 9)]
    sim = Simulation(sc, workload(events, ["node-a", "node-b"]), "calico")
    sim.advance(21.0)
    assert counter(sim.state, T.F_IP_FAILS) == 1 and int(sim.state.core.cnt[T.K_PENDING]) == 1


def test_a_tunnel_pool_gives_each_node_its_address_and_first_block_at_start():
    sc = scenario([("pool-a", {"cidr": "10.0.0.0/26", "blockSize": 29, "vxlanMode": "Always"})])
    sim = Simulation(sc, workload([(0.0, OP_NODE_ADD, 0, -1), (0.0, OP_NODE_ADD, 1, -1),
                                   (5.0, OP_NODE_DEL, 1, -1)], ["node-a", "node-b"]), "calico")
    sim.advance(1.0)
    assert counter(sim.state, T.F_RESERVED) == 2 and counter(sim.state, T.F_NODE_CIDRS) == 2
    assert int(sim.state.core.cnt[T.K_READY]) == 2
    rows = sim.node_rows()
    assert list(rows["reserved"]) == [1, 1] and list(rows["used"]) == [0, 0] and list(rows["free"]) == [7, 7]
    start = walk_start("node-a", 8)
    assert rows["cidrs_values"][0].as_py() == str(ipaddress.ip_network(f"10.0.0.{8 * start}/29"))
    sim.advance(6.0)  # node-b goes: its tunnel address and its block
    assert counter(sim.state, T.F_RESERVED) == 1 and counter(sim.state, T.F_NODE_CIDRS) == 1
    assert counter(sim.state, T.F_RELEASES) == 1


def test_dual_stack_takes_ipv6_first_and_gives_it_back_when_ipv4_fails():
    sc = scenario([("pool-a", {"cidr": "10.0.0.0/29", "blockSize": 29}),  # one block of 8
                   ("pool-b", {"cidr": "fd00::/120", "blockSize": 122})], dual_stack=True)
    events = [(0.0, OP_NODE_ADD, 0, -1), *[(1.0 + i, OP_POD_ADD, 0, i) for i in range(9)]]
    sim = Simulation(sc, workload(events, ["node-a"]), "calico")
    sim.advance(20.0)
    st = sim.state
    assert [counter(st, T.F_USED, f) for f in (0, 1)] == [8, 8]
    assert [counter(st, T.F_IP_FAILS, f) for f in (0, 1)] == [1, 0]
    assert [counter(st, T.F_IP_ALLOCS, f) for f in (0, 1)] == [8, 8]
    assert int(st.core.cnt[T.K_PENDING]) == 1 and address(st, 7, 1)[2] == 7
    (v6_slot,) = [s for s in st.cal.node_blk[0, :st.cal.node_nblk[0]] if st.cal.pool_family[st.cal.blk_pool[s]] == 1]
    t = st.cal
    queue = [int(t.blk_q[v6_slot, (t.blk_head[v6_slot] + k) % 64]) for k in range(int(t.blk_nfree[v6_slot]))]
    assert queue == [*range(9, 64), 8]  # the ninth pod's IPv6 address went back to the end of the queue


# ---------------------------------------------------------------------------- the engine and the oracle
def random_events(rng, names, steps):
    """Pods pinned to present nodes, deletions, node deletions and re-adds (node 0 stays)."""
    t = 0.0
    events = [(0.0, OP_NODE_ADD, 0, -1)]
    present = {0}
    pods_on = {}  # pod id -> node
    next_pod = 0
    for _ in range(steps):
        t += float(rng.uniform(0.5, 9.0))
        if t % 30.0 < 0.01 or t % 30.0 > 29.99:
            t += 0.05  # never at a pass time: events and passes in one order
        roll = rng.random()
        absent = [n for n in range(len(names)) if n not in present]
        if roll < 0.12 and absent:
            node = int(rng.choice(absent))
            present.add(node)
            events.append((t, OP_NODE_ADD, node, -1))
        elif roll < 0.17 and len(present) > 1:
            node = int(rng.choice(sorted(present - {0})))
            present.discard(node)
            events.append((t, OP_NODE_DEL, node, -1))
            pods_on = {p: n for p, n in pods_on.items() if n != node}
        elif roll < 0.55 and pods_on:
            pod = int(rng.choice(sorted(pods_on)))
            del pods_on[pod]
            events.append((t, OP_POD_DEL, -1, pod))
        else:
            node = int(rng.choice(sorted(present)))
            pods_on[next_pod] = node
            events.append((t, OP_POD_ADD, node, next_pod))
            next_pod += 1
    return events, t


def drive_reference(sim, events, t_end, names, ref=None, row_of_pod=None):
    """The oracle through the events in the loop's order: passes every 30 s from t = 0, before events.

    ``ref`` and ``row_of_pod`` (each pod's poolset row): the test's own, else the engine's pool choices.
    """
    st = sim.state
    t = st.cal
    if ref is None:
        pools = [Pool(p.name, p.cidr, p.block_size) for p in sim.scenario.ipam.calico.pools]
        poolsets = [([int(i) for i in t.poolset[r] if i >= 0], bool(t.poolset_explicit[r]))
                    for r in range(t.poolset.shape[0])]
        strict = sim.scenario.ipam.calico.ipam_config.strict_affinity
        ref = CalicoReference(pools, names, leak_grace_s=GRACE_S, poolsets=poolsets, strict_affinity=strict)
        row_of_pod = st.cal_pod_set[:, 0]
    tunnel_row = int(st.cal_tunnel_row[0])
    held, tunnels, bound = {}, {}, {n: [] for n in range(len(names))}
    fails = 0
    period = 30.0
    next_pass = period
    for time, op, node, pod in [*events, (t_end, None, -1, -1)]:
        while next_pass < time:
            ref.gc_leaks(next_pass)
            ref.release_empty_blocks(next_pass)
            next_pass += period
        if op == OP_NODE_ADD:
            ref.node_added(node)
            if tunnel_row >= 0:
                got = ref.assign(node, tunnel_row, time)
                if got != -1 and not isinstance(got, int):
                    tunnels[node] = got
        elif op == OP_POD_ADD:
            got = ref.assign(node, int(row_of_pod[pod]), time)
            bound[node].append(pod)
            if isinstance(got, int):
                fails += 1
            else:
                held[pod] = got
        elif op == OP_POD_DEL:
            if pod in held:
                ref.release(*held.pop(pod), time)
            for pods in bound.values():
                if pod in pods:
                    pods.remove(pod)
        elif op == OP_NODE_DEL:
            for pod in reversed(bound[node]):  # the loop's node list: the last bound first
                if pod in held:
                    ref.release(*held.pop(pod), time)
            bound[node] = []
            if node in tunnels:
                ref.release(*tunnels.pop(node), time)
            ref.node_deleted(node, time)
    return ref, held, fails


def engine_blocks(st):
    t = st.cal
    out = {}
    for slot in np.flatnonzero(t.blk_used):
        size, head, n = int(t.blk_size[slot]), int(t.blk_head[slot]), int(t.blk_nfree[slot])
        queue = [int(t.blk_q[slot, (head + k) % size]) for k in range(n)]
        node = int(t.blk_node[slot])
        out[int(t.blk_pool[slot]), int(t.blk_index[slot])] = (node if node >= 0 else None, queue)
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), strict=st.booleans())
def test_engine_agrees_with_the_python_reference_on_random_pod_and_node_sequences(seed, strict):
    rng = np.random.default_rng(seed)
    names = [f"node-{c}" for c in "abcde"]
    pools = [("pool-a", {"cidr": "10.0.0.0/26", "blockSize": 29}),
             ("pool-b", {"cidr": "10.1.0.0/28", "blockSize": 30, "vxlanMode": "Always"})]
    sc = scenario(pools, nodes=len(names), ipam_config={"strictAffinity": strict})
    events, t_last = random_events(rng, names, 160)
    sim = Simulation(sc, workload(events, names), "calico")
    t_end = t_last + 1.0
    sim.advance(t_end)
    ref, held, fails = drive_reference(sim, events, t_end, names)
    st = sim.state
    assert engine_blocks(st) == {k: (b.affinity, list(b.unallocated)) for k, b in ref.blocks.items()}
    running = {int(st.core.pod_tables.pods[r, T.D_ID]) for r in range(st.core.pod_tables.pods.shape[0]) if st.core.pod_tables.pods[r, T.D_STATE] == T.POD_RUNNING}
    assert running == set(held)
    assert {p: address(st, p) for p in running} == held
    c = st.cal.counters
    assert (int(c[K_CLAIMS]), int(c[K_BLOCK_RELEASES]), int(c[K_FAILS])) == (
        ref.counts["claims"], ref.counts["block_releases"], ref.counts["fails"])
    assert counter(st, T.F_IP_FAILS) == fails
    assert counter(st, T.F_NODE_CIDRS) == len(ref.blocks) and counter(st, T.F_USED) == len(held)
    assert counter(st, T.F_CARVES) - counter(st, T.F_RELEASES) == len(ref.blocks)
    assert ref.counts["claims"] > 3  # the sequences claim blocks (and, most of them, release some)


# ---------------------------------------------------------------------------- the command line
def test_compare_runs_calico_beside_cluster_pool(tmp_path):
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(ROOT / "scenarios" / "calico.yaml"), "--modes",
                                 "calico,cluster-pool", "--out", str(out), "--no-plot"])
    assert result.exit_code == 0, result.output
    trace = pl.read_ipc(out / "trace.arrow")
    assert trace["mode"].unique().sort().to_list() == ["calico", "cluster-pool"]
    calico = trace.filter(pl.col("mode") == "calico")
    last = calico.row(-1, named=True)
    assert last["pods_failed"] == 0 and last["pods_running"] == 64 * 40
    # every node holds a /26 of the default pool (its tunnel address) and a /28 of gpu-nodes for ml pods
    assert last["node_cidrs"] >= 128 and last["addrs_reserved"] == 64
    assert last["addrs_carved"] == last["addrs_used"] + last["addrs_idle"] + last["addrs_reserved"]
    nodes = pl.read_ipc(out / "nodes.arrow").filter(pl.col("mode") == "calico")
    cidrs = nodes.filter(pl.col("time_s") == nodes["time_s"].max())["cidrs"].to_list()
    assert all(any(c.startswith("10.244.") and c.endswith("/26") for c in row) for row in cidrs)
    assert pl.read_csv(out / "summary.csv")["mode"].to_list() == ["calico", "cluster-pool"]


def test_run_mode_calico_and_a_small_sweep(tmp_path):
    result = runner.invoke(app, ["run", str(ROOT / "scenarios" / "calico.yaml"), "--mode", "calico",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert pl.read_ipc(tmp_path / "run" / "trace.arrow")["mode"].unique().to_list() == ["calico"]
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "calico-nodes", "base": str(ROOT / "scenarios" / "calico.yaml"), "modes": ["calico"],
        "axes": {"cluster.nodes": [8, 16]}, "replicates": 1, "seed": 0}))
    result = runner.invoke(app, ["sweep", str(sweep), "--out", str(tmp_path / "sw"), "--workers", "1", "--no-plot"])
    assert result.exit_code == 0, result.output
    points = pl.read_parquet(tmp_path / "sw" / "sweep.parquet")
    assert points["mode"].to_list() == ["calico", "calico"] and points["pods_failed"].to_list() == [0, 0]
    assert sorted(points["cluster.nodes"].to_list()) == [8, 16]


def test_calico_without_pools_and_migrations_are_refused_in_one_line(tmp_path):
    result = runner.invoke(app, ["run", "default", "--mode", "calico", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "IPPool" in result.output and "needed by mode calico" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x").exists()
    result = runner.invoke(app, ["migrate", str(ROOT / "scenarios" / "cluster-pool-to-multi-pool.yaml"), "--plan",
                                 "--to", "calico", "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "'calico' is not a mode migrate simulates" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "m").exists()
