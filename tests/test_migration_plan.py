"""--plan: the same cluster and target through each strategy, compared in numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from ipam_core.errors import ConfigError
from ipam_core.migration import actions as A
from ipam_core.migration.plan import in_place_steps, plan_migration, plan_table, write_plan_csv
from ipam_core.migration.settings import MigrationTiming
from ipam_core.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
BIG = """
name: big
seed: 4
duration: 1h
cluster:
  kubelet: {maxPods: 110}
  kubeControllerManager: {cluster-cidr: 10.0.0.0/14, node-cidr-mask-size: 24}
cilium: {ipam: {mode: kubernetes}}
migration: {replicasPerDeployment: 10}
workload: {generator: steady-churn, podsPerNode: 30}
steps:
  - {at: 1m, run: "helm upgrade cilium cilium/cilium --reuse-values --set ipam.mode=cluster-pool --set ipam.operator.clusterPoolIPv4PodCIDRList={172.16.0.0/14}"}
"""


def rows(plan):
    return {r.strategy: r for r in plan.rows}


@pytest.fixture(scope="module")
def seed_plan():
    return plan_migration(load_scenario(SCENARIOS / "seed-lab.yaml"))


def test_seed_lab_plan_compares_every_strategy_on_its_ten_pods(seed_plan):
    r = rows(seed_plan)
    assert list(r) == ["all-at-once", "node-by-node", "new-cluster", "as-written"]
    assert (seed_plan.start_mode, seed_plan.target_mode, seed_plan.nodes, seed_plan.pods) == (
        "kubernetes", "cluster-pool", 2, 10)
    # every in-place strategy ends with every pod moved and nothing stale
    for name in ("all-at-once", "node-by-node", "new-cluster"):
        assert r[name].stale_at_end == 0 and r[name].conflicts == 0
    # all at once: every pod disrupted together, except the bare curl-pod (re-created at once, never
    # disrupted for any length of time); replica-1 and -2 Deployments keep old pods until replaced
    assert r["all-at-once"].peak_disrupted_pods == 9 and r["all-at-once"].disrupted_pod_seconds > 0
    # a new cluster disrupts nothing but needs its own CIDRs beside the old ones: 2 + 2 /24s
    assert r["new-cluster"].disrupted_pod_seconds == 0 and r["new-cluster"].peak_disrupted_pods == 0
    assert r["new-cluster"].addresses_needed == 4 * 256
    # the steps as written match the replay
    assert r["as-written"].disrupted_pod_seconds == pytest.approx(2860)


def test_node_by_node_disrupts_less_and_holds_fewer_addresses_than_all_at_once():
    plan = plan_migration(load_scenario(BIG), nodes=40, pods_per_node=30, batch=4)
    r = rows(plan)
    assert plan.nodes == 40 and plan.pods == 40 * 30 + 2
    everyone = r["all-at-once"]
    careful = r["node-by-node"]
    fresh = r["new-cluster"]
    # every pod at once, less what the rolling update removes straight away: maxUnavailable 25% of
    # 10 replicas = 2 per Deployment (coredns, 2 replicas, has none)
    assert everyone.peak_disrupted_pods == (plan.pods - 2) * 8 // 10 + 2
    assert careful.disrupted_pod_seconds < everyone.disrupted_pod_seconds / 10
    assert careful.peak_disrupted_pods <= 4 * 30
    # old /24s are given back as nodes move: far fewer addresses than old + new at once
    assert everyone.addresses_needed == 2 * 40 * 256 == fresh.addresses_needed
    assert careful.addresses_needed < everyone.addresses_needed
    # node by node takes batches x (drain + agent + pod restart) after the operator restart
    timing = MigrationTiming()
    assert careful.duration_s >= (40 // 4) * (timing.drain_s + timing.agent_restart_s + timing.pod_restart_s)
    assert everyone.duration_s < careful.duration_s
    # every pod restarted at least once; draining moves some twice
    assert everyone.pod_restarts == plan.pods <= careful.pod_restarts


def test_a_batch_of_every_node_is_one_drain():
    plan = plan_migration(load_scenario(BIG), nodes=6, pods_per_node=5, batch=6)
    assert rows(plan)["node-by-node"].pod_restarts >= plan.pods


def test_plan_scales_to_a_large_generated_cluster():
    plan = plan_migration(load_scenario(BIG), nodes=300, pods_per_node=30, batch=30)
    r = rows(plan)
    assert plan.pods == 300 * 30 + 2
    assert all(x.stale_at_end == 0 and x.conflicts == 0 and x.nodes_waiting_at_end == 0 for x in plan.rows)
    assert r["all-at-once"].peak_disrupted_pods == (plan.pods - 2) * 8 // 10 + 2


def test_in_place_steps_are_ordinary_steps():
    timing = MigrationTiming(agent_restart_s=30, operator_restart_s=10, pod_restart_s=10, drain_s=60)
    target = A.HelmUpgrade((("ipam.mode", "cluster-pool"),), None, True)
    steps = in_place_steps((), target, 100.0, ["a", "b", "c"], timing, 2)
    kinds = [type(s.action).__name__ for s in steps]
    assert kinds == ["HelmUpgrade", "RolloutRestart", "Drain", "DeleteCiliumNodes", "RestartAgents", "Uncordon",
                     "RestartStalePods", "Drain", "DeleteCiliumNodes", "RestartAgents", "Uncordon",
                     "RestartStalePods"]
    assert [s.at_s for s in steps if isinstance(s.action, A.Drain)] == [110, 210]
    assert [s.action.nodes for s in steps if isinstance(s.action, A.Drain)] == [("a", "b"), ("c",)]


def test_to_mode_plans_without_a_helm_step_and_keeps_addresses_for_cluster_pool_to_multi_pool():
    doc = yaml.safe_load((SCENARIOS / "cluster-pool-to-multi-pool.yaml").read_text())
    doc["steps"] = doc["steps"][:1]
    plan = plan_migration(load_scenario(yaml.safe_dump(doc)), to_mode="multi-pool")
    assert "enable-cluster-pool-to-multi-pool-migration=true" in plan.target_command
    r = rows(plan)
    assert r["all-at-once"].disrupted_pod_seconds == 0 and r["all-at-once"].pod_restarts == 0
    assert "as-written" not in r


def test_plan_needs_a_target():
    doc = yaml.safe_load((SCENARIOS / "seed-lab.yaml").read_text())
    doc["steps"] = doc["steps"][:2]
    with pytest.raises(ConfigError, match="has no helm upgrade step"):
        plan_migration(load_scenario(yaml.safe_dump(doc, allow_unicode=True)))
    with pytest.raises(ConfigError, match="--batch 0"):
        plan_migration(load_scenario(SCENARIOS / "seed-lab.yaml"), batch=0)


def test_plan_csv_has_a_row_per_strategy_and_units_in_the_arrow_table(tmp_path, seed_plan):
    path = write_plan_csv(seed_plan, tmp_path / "deep" / "migration_plan.csv")
    with path.open() as handle:
        table = list(csv.DictReader(handle))
    assert [row["strategy"] for row in table] == [r.strategy for r in seed_plan.rows]
    assert float(table[-1]["disrupted_pod_seconds"]) == pytest.approx(2860)
    arrow = plan_table(seed_plan)
    assert arrow.schema.field("disrupted_pod_seconds").metadata[b"unit"] == b"pod-seconds"
    assert arrow.schema.field("addresses_needed").metadata[b"unit"] == b"addresses"
    assert not list(tmp_path.glob("deep/.*.tmp"))


def test_to_mode_plans_from_the_cluster_before_the_scenarios_own_upgrade():
    plan = plan_migration(load_scenario(SCENARIOS / "seed-lab.yaml"), to_mode="multi-pool")
    assert (plan.start_mode, plan.target_mode, plan.pods) == ("kubernetes", "multi-pool", 10)
    assert "autoCreateCiliumPodIPPools.default.ipv4.cidrs={10.0.0.0/8}" in plan.target_command
    r = rows(plan)
    assert "as-written" not in r and r["node-by-node"].stale_at_end == 0 and r["all-at-once"].stale_at_end == 0
