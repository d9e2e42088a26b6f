"""``ipam-bench migrate --plan`` on generated clusters of 500 to 5,000 nodes (Kubernetes' limit).

Group ``migrate-plan``: :func:`ipam_core.migration.plan_migration` on
``scenarios/plan-5000.yaml`` (Kubernetes host scope -> cluster-pool, pools that fit 5,000
nodes) with ``nodes`` x 30 pods, node by node with batch 1 (the default) and batch 50: three
engines per plan (all at once, node by node, new cluster), ``ops`` = nodes. The seconds per
node across sizes show the growth (flat for N log N or better).

Group ``migrate-place``: kube-scheduler's choice for 30 pods per node onto an empty cluster
of 5,000 nodes, Deployments of 10 replicas: the compiled placement
(:func:`ipam_core.migration._place.place_pods`, a min tree over (load, node)) beside the
same rule written the way a user would, a loop over every node for every pod, run on a
tenth of the pods.

Under ``--benchmark-disable`` (CI) every size shrinks to a few dozen nodes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from bench_util import record_speed
from ipam_core.migration import plan_migration
from ipam_core.migration._place import place_pods, tree_size
from ipam_core.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "plan-5000.yaml"
COMMAND = ("python -m pytest bench/test_bench_migration.py --benchmark-json=results/bench-migration.json && "
           "python bench/summarize.py results/bench-migration.json --out results/bench-migration.md")
PODS_PER_NODE = 30
REPLICAS = 10
PLACE_NODES = 5_000


def _size(benchmark, full: int, tiny: int) -> int:
    return tiny if benchmark.disabled else full


@pytest.fixture(scope="module")
def scenario():
    sc = load_scenario(SCENARIO)
    plan_migration(sc, nodes=4, pods_per_node=3)  # compile the kernels before any timing
    return sc


@pytest.mark.benchmark(group="migrate-plan")
@pytest.mark.parametrize("batch", [1, 50])
@pytest.mark.parametrize("nodes", [500, 1_000, 2_000, 5_000])
def test_plan_kernel(benchmark, scenario, nodes, batch):
    n = _size(benchmark, nodes, max(4, nodes // 100))
    plans, cpu = [], []

    def plan_once():
        start = time.process_time()  # CPU seconds too: the machine is shared, wall time varies with its load
        plans.append(plan_migration(scenario, nodes=n, pods_per_node=PODS_PER_NODE, batch=batch))
        cpu.append(time.process_time() - start)

    benchmark.pedantic(plan_once, rounds=1, warmup_rounds=0)
    plan = plans[-1]
    assert plan.nodes == n and plan.pods == n * PODS_PER_NODE + 2
    assert all(row.nodes_waiting_at_end == 0 and row.conflicts == 0 for row in plan.rows)
    benchmark.extra_info.update(ops=n, impl="kernel", nodes=n, pods=plan.pods, batch=batch, command=COMMAND,
                                cpu_seconds=cpu[-1], loadavg_1min=os.getloadavg()[0])
    record_speed(benchmark, n)


def _placement_input(nodes: int, pods: int):
    """Arrays for placing ``pods`` pods (Deployments of 10) onto ``nodes`` empty, open nodes."""
    groups = (np.arange(pods) // REPLICAS).astype(np.int32)
    n_groups = int(groups[-1]) + 1
    return dict(tree=np.empty(tree_size(nodes), dtype=np.int64), rebuild=True, dirty=np.zeros(0, dtype=np.int64),
                todo=np.arange(pods, dtype=np.int64), groups=groups, pins=np.full(pods, -1, dtype=np.int32),
                node_exists=np.ones(nodes, dtype=np.bool_), node_open=np.ones(nodes, dtype=np.bool_),
                node_room=np.full(nodes, 110, dtype=np.int64), node_pods=np.zeros(nodes, dtype=np.int64),
                pod_node=np.full(pods, -1, dtype=np.int32), node_head=np.full(nodes, -1, dtype=np.int64),
                node_nxt=np.full(pods, -1, dtype=np.int64), node_prv=np.full(pods, -1, dtype=np.int64),
                group_head=np.full(n_groups, -1, dtype=np.int64), group_nxt=np.full(pods, -1, dtype=np.int64),
                anti_ptr=np.zeros(n_groups + 1, dtype=np.int64), anti_idx=np.zeros(0, dtype=np.int64),
                out=np.empty(pods, dtype=np.int32))


def _link_groups(a) -> None:
    # every pod is alive (pending) on its group's list, as PodTable.add leaves it
    for pod in range(a["groups"].shape[0] - 1, -1, -1):
        g = a["groups"][pod]
        a["group_nxt"][pod] = a["group_head"][g]
        a["group_head"][g] = pod


def place_python(nodes: int, groups: list[int]) -> list[int]:
    """The placement rule the plain way: for each pod, score every node (spread, load, index)."""
    load = [0] * nodes
    per_group: dict[tuple[int, int], int] = {}
    out = []
    for g in groups:
        best = min(range(nodes), key=lambda v: (per_group.get((g, v), 0), load[v], v))
        load[best] += 1
        per_group[(g, best)] = per_group.get((g, best), 0) + 1
        out.append(best)
    return out


@pytest.mark.benchmark(group="migrate-place")
def test_place_kernel(benchmark):
    nodes = _size(benchmark, PLACE_NODES, 50)
    pods = nodes * PODS_PER_NODE

    def setup():
        a = _placement_input(nodes, pods)
        _link_groups(a)
        return (), a

    place_pods(**setup()[1])  # compile
    args = {}

    def run(**a):
        args.update(a)
        return place_pods(**a)

    benchmark.pedantic(run, setup=setup, rounds=3, warmup_rounds=1)
    assert args["node_pods"].min() == args["node_pods"].max() == PODS_PER_NODE
    small = _placement_input(nodes, 200)
    _link_groups(small)
    place_pods(**small)
    assert small["out"].tolist() == place_python(nodes, small["groups"].tolist())
    benchmark.extra_info.update(ops=pods, impl="kernel", nodes=nodes, command=COMMAND)
    record_speed(benchmark, pods)


@pytest.mark.benchmark(group="migrate-place")
def test_place_python_baseline(benchmark):
    nodes = _size(benchmark, PLACE_NODES, 50)
    pods = nodes * PODS_PER_NODE // 10
    groups = (np.arange(pods) // REPLICAS).tolist()
    out = benchmark.pedantic(place_python, args=(nodes, groups), rounds=1, warmup_rounds=0)
    assert len(out) == pods
    benchmark.extra_info.update(ops=pods, impl="python-baseline", nodes=nodes, command=COMMAND)
    record_speed(benchmark, pods)
