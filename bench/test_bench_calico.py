"""Calico IPAM's address path: the compiled rules against the pure-Python reference.

A realistic cluster: 500 nodes named like EKS nodes, the default pool 10.244.0.0/16 in /26
blocks (1024 blocks), 30 pods per node (each node holds one block, half full). The work is
pod churn, the address path of every CNI ADD/DEL:

=======================  =========================================================  =====================
group                    one op                                                      per round
=======================  =========================================================  =====================
calico-churn-500-nodes   release a random pod's address, assign one on the same      20,000 pairs
                         node (affine block first, its Unallocated queue)
calico-fill-500-nodes    assign a node's 30 pods on an empty cluster (the first      500 nodes x 30 pods
                         claims a block by the hostname-seeded walk)
=======================  =========================================================  =====================

The kernel rows run the compiled ``release``/``assign`` of ``ipam_core/modes/calico_rules.py``
from a loop compiled in this file (the engine's loop will call them the same way); the
``python-baseline`` rows run ``bench/baseline_calico.py`` (``CalicoReference``) with the same
picks. Rounds start from a copy of the same state (setup, untimed). The reference lists a
node's affinities by scanning every block, as a datastore List does; that is part of what it
costs.
"""

from __future__ import annotations

import copy
import ipaddress
import sys
from pathlib import Path

import numpy as np
import pytest

from bench_util import record_speed
from ipam_core.kernels._jit import kjit
from ipam_core.modes.calico_rules import assign, node_added, release
from ipam_core.modes.calico_tables import CalicoTables, PoolRule, new_tables, unpack

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_calico import CalicoReference, Pool  # noqa: E402

COMMAND = ("python -m pytest bench/test_bench_calico.py --benchmark-timer=time.process_time "
           "--benchmark-json=results/bench-calico.json")
SEED = 20_261_206
NODES = 500
PODS_PER_NODE = 30
PAIRS = 20_000
ROUNDS = 5
POOL = ("default-ipv4-ippool", "10.244.0.0/16", 26)
NAMES = [f"ip-10-0-{i // 250}-{i % 250 + 4}.ec2.internal" for i in range(NODES)]
GROUP_CHURN = "calico-churn-500-nodes"
GROUP_FILL = "calico-fill-500-nodes"


@kjit
def fill_nodes(t, pods, held, now):
    """Assign ``pods`` addresses to every node in turn, one pod per node per turn; ``held[node, k]``."""
    for k in range(pods):
        for node in range(held.shape[0]):
            held[node, k] = assign(t, node, 0, now)
    return held.shape[0] * pods


@kjit
def churn(t, held, nodes, picks, now):
    """For each k: release ``held[nodes[k], picks[k]]`` and assign a new address on that node in its place."""
    failed = 0
    for k in range(nodes.shape[0]):
        node = nodes[k]
        release(t, held[node, picks[k]], now)
        got = assign(t, node, 0, now)
        held[node, picks[k]] = got
        if got < 0:
            failed += 1
    return failed


def fresh_tables() -> CalicoTables:
    t = new_tables([PoolRule(POOL[0], ipaddress.ip_network(POOL[1]), POOL[2])], NAMES)
    for node in range(NODES):
        node_added(t, node)
    return t


def fresh_reference() -> CalicoReference:
    ref = CalicoReference([Pool(*POOL)], NAMES)
    for node in range(NODES):
        ref.node_added(node)
    return ref


def copy_tables(t: CalicoTables) -> CalicoTables:
    return CalicoTables(*(a.copy() for a in t))


class Cluster:
    """The filled cluster (both implementations) and the churn picks."""

    def __init__(self):
        self.tables = fresh_tables()
        self.held = np.zeros((NODES, PODS_PER_NODE), dtype=np.int64)
        fill_nodes(self.tables, PODS_PER_NODE, self.held, 0.0)
        self.reference = fresh_reference()
        self.ref_held = [[None] * PODS_PER_NODE for _ in range(NODES)]
        for k in range(PODS_PER_NODE):
            for node in range(NODES):
                self.ref_held[node][k] = self.reference.assign(node, 0, 0.0)
        rng = np.random.default_rng(SEED)
        self.nodes = rng.integers(0, NODES, size=PAIRS).astype(np.int32)
        self.picks = rng.integers(0, PODS_PER_NODE, size=PAIRS).astype(np.int32)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return Cluster()


def reference_churn(ref: CalicoReference, held: list, nodes: list, picks: list, now: float) -> int:
    failed = 0
    for node, pick in zip(nodes, picks):
        ref.release(*held[node][pick], now)
        got = ref.assign(node, 0, now)
        held[node][pick] = got
        failed += isinstance(got, int)
    return failed


def record(benchmark, impl: str, ops: int, op: str) -> None:
    benchmark.extra_info.update(impl=impl, ops=ops, op=op, nodes=NODES, pods_per_node=PODS_PER_NODE,
                                pool=f"{POOL[1]} /{POOL[2]} blocks", command=COMMAND)
    record_speed(benchmark, ops)


# ------------------------------------------------------------------------ agreement (plain test)
def test_fill_and_churn_agree_with_the_reference(cluster):
    """Same blocks, same addresses for every pod of the fill and of 3,000 churn pairs."""
    t, ref = cluster.tables, cluster.reference
    for node in (0, 137, NODES - 1):
        for k in range(PODS_PER_NODE):
            slot, ordinal = unpack(int(cluster.held[node, k]))
            assert (int(t.blk_pool[slot]), int(t.blk_index[slot]), ordinal) == cluster.ref_held[node][k]
    t2, held = copy_tables(t), cluster.held.copy()
    ref2, ref_held = copy.deepcopy(ref), copy.deepcopy(cluster.ref_held)
    n = 3000
    assert churn(t2, held, cluster.nodes[:n], cluster.picks[:n], 1.0) == 0
    assert reference_churn(ref2, ref_held, cluster.nodes[:n].tolist(), cluster.picks[:n].tolist(), 1.0) == 0
    for node in np.unique(cluster.nodes[:n])[:50]:
        for k in range(PODS_PER_NODE):
            slot, ordinal = unpack(int(held[node, k]))
            assert (int(t2.blk_pool[slot]), int(t2.blk_index[slot]), ordinal) == ref_held[node][k]


# ------------------------------------------------------------------------ churn
@pytest.mark.benchmark(group=GROUP_CHURN)
def test_churn_kernel(benchmark, cluster):
    churn(copy_tables(cluster.tables), cluster.held.copy(), cluster.nodes[:10], cluster.picks[:10], 1.0)  # compile

    def setup():
        return (copy_tables(cluster.tables), cluster.held.copy(), cluster.nodes, cluster.picks, 1.0), {}

    failed = benchmark.pedantic(churn, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    assert failed == 0
    record(benchmark, "kernel", PAIRS, "pair = release(random pod address) + assign on the same node")


@pytest.mark.benchmark(group=GROUP_CHURN)
def test_churn_kernel_python_baseline(benchmark, cluster):
    nodes, picks = cluster.nodes.tolist(), cluster.picks.tolist()

    def setup():
        return (copy.deepcopy(cluster.reference), copy.deepcopy(cluster.ref_held), nodes, picks, 1.0), {}

    failed = benchmark.pedantic(reference_churn, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    assert failed == 0
    record(benchmark, "python-baseline", PAIRS, "pair = release(random pod address) + assign on the same node")


# ------------------------------------------------------------------------ fill (claims included)
@pytest.mark.benchmark(group=GROUP_FILL)
def test_fill_kernel(benchmark, cluster):
    def setup():
        return (fresh_tables(), PODS_PER_NODE, np.zeros((NODES, PODS_PER_NODE), dtype=np.int64), 0.0), {}

    done = benchmark.pedantic(fill_nodes, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    assert done == NODES * PODS_PER_NODE
    record(benchmark, "kernel", NODES * PODS_PER_NODE, "assign one pod (the first per node claims a block)")


@pytest.mark.benchmark(group=GROUP_FILL)
def test_fill_kernel_python_baseline(benchmark, cluster):
    def fill(ref):
        for _ in range(PODS_PER_NODE):
            for node in range(NODES):
                ref.assign(node, 0, 0.0)
        return NODES * PODS_PER_NODE

    done = benchmark.pedantic(fill, setup=lambda: ((fresh_reference(),), {}), rounds=ROUNDS, warmup_rounds=1)
    assert done == NODES * PODS_PER_NODE
    record(benchmark, "python-baseline", NODES * PODS_PER_NODE, "assign one pod (the first per node claims a block)")
