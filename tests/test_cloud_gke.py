"""GKE sizing: host scope whose node range follows the max-pods table, run beside the pool modes."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import OP_POD_ADD, nodes_then_pods, scenario, workload

from ipam_core.pipeline import simulate, summarize
from ipam_core.engine.check import check_invariants
from ipam_core.pipeline.run import run_mode
from ipam_core.scenario import scenario_for_mode


def run(sc, wl, mode="gke"):
    result = run_mode(scenario_for_mode(sc, mode), wl, mode)
    assert check_invariants(result.state) == []
    return result


def last(result, column):
    return int(result.trace[column][-1])


def cidrs_at_end(result):
    n = result.nodes
    offsets = np.concatenate([[0], np.cumsum(n["cidrs_counts"])])
    values = n["cidrs_values"].to_pylist()
    end = np.flatnonzero(n["time_s"] == n["time_s"].max())
    return [c for i in end for c in values[offsets[i] : offsets[i + 1]]]


@pytest.mark.parametrize("max_pods, mask", [(8, 28), (16, 27), (30, 26), (64, 25), (110, 24)])
def test_node_range_follows_the_max_pods_table(tmp_path, max_pods, mask):
    sc = scenario(tmp_path, {"cloud": {"gke": {"maxPodsPerNode": max_pods}}})
    r = run(sc, workload(nodes_then_pods(3, 0), 3))
    cidrs = cidrs_at_end(r)
    assert len(cidrs) == 3 and all(c.endswith(f"/{mask}") for c in cidrs)
    assert last(r, "addrs_carved") == 3 * 2 ** (32 - mask)
    # the range always holds twice the max pods, so pods never run out of addresses first
    assert 2 ** (32 - mask) - 2 - 2 >= max_pods


def test_kubelet_max_pods_is_the_node_pools(tmp_path):
    # cloud.gke.maxPodsPerNode overrides cluster.kubelet.maxPods (110 in the base scenario)
    sc = scenario(tmp_path, {"cloud": {"gke": {"maxPodsPerNode": 16}}, "timing": {"podPendingTimeout": "10m"}})
    r = run(sc, workload(nodes_then_pods(2, 50), 2))
    assert last(r, "pods_running") == 32 and last(r, "pods_pending") == 18
    assert last(r, "pods_failed") == 0  # unschedulable pods wait; none lacks an address


def test_default_max_pods_gives_a_24(tmp_path):
    sc = scenario(tmp_path)  # kubelet maxPods 110 -> /24, as GKE's default
    r = run(sc, workload(nodes_then_pods(1, 0), 1))
    assert cidrs_at_end(r) == ["10.244.0.0/24"]


def test_gke_runs_beside_the_pool_modes_on_the_same_workload(tmp_path):
    sc = scenario(tmp_path, {"duration": "3m", "cloud": {"gke": {"maxPodsPerNode": 32}}})
    result = simulate(sc, ["kubernetes", "cluster-pool", "multi-pool", "gke"])
    table = summarize(result)
    assert table.column("mode").to_pylist() == ["kubernetes", "cluster-pool", "multi-pool", "gke"]
    rows = {r["mode"]: r for r in table.to_pylist()}
    # 20 pods per node: a /26 per node instead of the /24 host scope carves
    assert rows["gke"]["peak_carved"] * 4 == rows["kubernetes"]["peak_carved"]
    assert result.workload.op.tolist().count(OP_POD_ADD) > 0
