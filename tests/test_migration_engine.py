"""Upstream semantics of the migration engine, one rule per test (reference sections 1, 3 and 4)."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
import yaml

from ipam_core.errors import ConfigError
from ipam_core.migration import MigrationEngine, run_migration
from ipam_core.migration.cluster import LIVE
from ipam_core.scenario import load_scenario

KUBERNETES = {"ipam": {"mode": "kubernetes"}}


def scenario(steps, *, cilium=None, nodes=("node-0", "node-1"), duration="1h", migration=None, kcm=None, seed=1):
    doc = {
        "name": "t", "seed": seed, "duration": duration,
        "cluster": {"kubeControllerManager": kcm or {"cluster-cidr": "10.244.0.0/16", "node-cidr-mask-size": 24}},
        "cilium": cilium if cilium is not None else KUBERNETES,
        "migration": {"nodes": list(nodes), "agentRestart": "30s", "operatorRestart": "10s", "podRestart": "10s",
                      **(migration or {})},
        "workload": {"generator": "steady-churn", "podsPerNode": 30},
        "steps": steps,
    }
    return load_scenario(yaml.safe_dump(doc, sort_keys=False))


def to_cluster_pool(pool="172.20.0.0/16", at="1m", mask=None):
    mask_set = f" --set ipam.operator.clusterPoolIPv4MaskSize={mask}" if mask else ""
    return [{"at": at, "run": f"helm upgrade cilium cilium/cilium --reuse-values --set ipam.mode=cluster-pool "
                              f"--set ipam.operator.clusterPoolIPv4PodCIDRList={{{pool}}}{mask_set}"},
            {"at": at, "run": "kubectl -n kube-system rollout restart deploy/cilium-operator"}]


def app(replicas=4, name="app", at="0s"):
    return {"at": at, "apply": [{"deployment": name, "replicas": replicas}]}


def last_nodes(result):
    return result.nodes_at(result.step_rows[-1]["step"])


def net(cidr):
    return ipaddress.ip_network(cidr)


# ---------------------------------------------------------------- cluster-pool operator: reuseIPNets
def test_a_podcidr_inside_the_new_pool_is_occupied_and_kept_without_error():
    result = run_migration(scenario([app(), *to_cluster_pool("10.244.0.0/16"),
                                     {"at": "2m", "run": "kubectl -n kube-system rollout restart ds/cilium"},
                                     {"at": "5m", "node": {"add": "node-2"}}]))
    nodes = last_nodes(result)
    assert nodes["node-0"]["ciliumnode_pod_cidrs"] == ["10.244.0.0/24"]
    assert nodes["node-1"]["ciliumnode_pod_cidrs"] == ["10.244.1.0/24"]
    assert all(r["status_error"] == "" for r in nodes.values())
    # occupied, so the operator's next fit skips them: the new node gets the third /24
    assert nodes["node-2"]["ciliumnode_pod_cidrs"] == ["10.244.2.0/24"]
    assert result.summary["disrupted_pod_seconds"] == 0 and result.summary["stale_at_end"] == 0


def test_a_podcidr_outside_the_new_pool_gets_a_status_error_and_keeps_its_spec():
    result = run_migration(scenario([app(), *to_cluster_pool("172.20.0.0/16")]))
    for name, row in last_nodes(result).items():
        kcm = row["kcm_pod_cidrs"][0]
        assert row["ciliumnode_pod_cidrs"] == [kcm] and row["routed_cidrs"] == [kcm]
        assert row["status_error"] == f"allocator not configured for the requested CIDR {kcm}"
    assert result.summary["stale_at_end"] == 4 and result.summary["disrupted_at_end"] == 0


def test_delete_ciliumnode_releases_a_recorded_cidr_and_next_fit_moves_on():
    pool = {"ipam": {"mode": "cluster-pool", "operator": {"clusterPoolIPv4PodCIDRList": ["10.8.0.0/16"]}}}
    result = run_migration(scenario([
        app(), {"at": "1m", "run": "kubectl delete ciliumnode node-0"},
        {"at": "1m", "run": "kubectl -n kube-system delete pod -l k8s-app=cilium --field-selector spec.nodeName=node-0"},
        {"at": "3m", "node": {"add": "node-2"}},
        {"at": "5m", "run": "kubectl -n kube-system rollout restart deploy/cilium-operator"},
        {"at": "6m", "node": {"add": "node-3"}},
    ], cilium=pool))
    events = [e for _, _, e in result.events]
    assert "node-0: operator released 10.8.0.0/24" in events
    nodes = last_nodes(result)
    # next fit: node-0 gets the block after the cursor, not its freed one; node-2 the next
    assert nodes["node-0"]["ciliumnode_pod_cidrs"] == ["10.8.2.0/24"]
    assert nodes["node-2"]["ciliumnode_pod_cidrs"] == ["10.8.3.0/24"]
    # an operator restart resets the cursor: the freed 10.8.0.0/24 is handed out again
    assert nodes["node-3"]["ciliumnode_pod_cidrs"] == ["10.8.0.0/24"]


def test_exhausted_pool_leaves_the_node_waiting_and_not_ready():
    pool = {"ipam": {"mode": "cluster-pool", "operator": {"clusterPoolIPv4PodCIDRList": ["10.8.0.0/24"],
                                                          "clusterPoolIPv4MaskSize": 24}}}
    result = run_migration(scenario([{"at": "1m", "node": {"add": "node-2"}}, app(6, at="2m")],
                                    cilium=pool, nodes=("node-0",)))
    nodes = last_nodes(result)
    assert nodes["node-2"]["status_error"] == "allocator full"
    assert nodes["node-2"]["agent_state"] == "waiting" and nodes["node-2"]["pods"] == 0


# ---------------------------------------------------------------- disruption arithmetic
def test_disrupted_pod_seconds_are_pods_times_the_time_between_agent_restart_and_pod_restart():
    # agent restart at 100 s takes 30 s; the pods are deleted at 200 s: 3 pods x 70 s
    steps = [{"at": "0s", "apply": [{"deployment": "app", "replicas": 3, "nodeName": "node-0"}]},
             *to_cluster_pool(at="60s"),
             {"at": "100s", "run": "kubectl delete ciliumnode node-0"},
             {"at": "100s", "run": "kubectl -n kube-system delete pod -l k8s-app=cilium "
                                   "--field-selector spec.nodeName=node-0"},
             {"at": "200s", "run": "kubectl delete pod -l app=app"}]
    s = run_migration(scenario(steps, nodes=("node-0",))).summary
    assert s["disrupted_pod_seconds"] == pytest.approx(3 * 70)
    assert s["peak_disrupted_pods"] == 3 and s["disruption_seconds"] == pytest.approx(70)
    assert s["stale_at_end"] == 0 and s["pods_at_end"] == 3


def test_a_step_can_override_the_agent_restart_time():
    steps = [{"at": "0s", "apply": [{"deployment": "app", "replicas": 2, "nodeName": "node-0"}]},
             *to_cluster_pool(at="60s"),
             {"at": "100s", "run": "kubectl delete ciliumnode node-0"},
             {"at": "100s", "restartAgents": "node-0", "agentRestart": "50s"},
             {"at": "200s", "run": "kubectl delete pod -l app=app"}]
    s = run_migration(scenario(steps, nodes=("node-0",))).summary
    assert s["disrupted_pod_seconds"] == pytest.approx(2 * 50)


def test_rollout_restart_keeps_old_pods_until_replacements_run():
    # replicas 1 (maxSurge 1, maxUnavailable 0): the old pod stays disrupted until the new one is ready
    steps = [{"at": "0s", "apply": [{"deployment": "one", "replicas": 1, "nodeName": "node-0"}]},
             *to_cluster_pool(at="60s"), {"at": "100s", "run": "kubectl delete ciliumnode node-0"},
             {"at": "100s", "run": "kubectl -n kube-system rollout restart ds/cilium"},
             {"at": "200s", "run": "kubectl rollout restart deploy/one"}]
    s = run_migration(scenario(steps, nodes=("node-0",))).summary
    assert s["disrupted_pod_seconds"] == pytest.approx(200 - 130 + 10)
    assert s["unavailable_pod_seconds"] == pytest.approx(10)  # only the first start at t=0


def test_daemonset_rollout_restarts_agents_max_unavailable_at_a_time():
    result = run_migration(scenario([{"at": "1m", "run": "kubectl -n kube-system rollout restart ds/cilium"}],
                                    nodes=tuple(f"node-{i}" for i in range(5))))
    ready = [t for t, _, e in result.events if "agent ready" in e and t > 0]
    assert ready == [90, 90, 120, 120, 150]  # the chart's maxUnavailable 2, 30 s per agent


def test_daemonset_max_unavailable_follows_the_helm_value():
    result = run_migration(scenario([
        {"at": "1m", "run": "helm upgrade cilium cilium/cilium --reuse-values "
                            "--set updateStrategy.rollingUpdate.maxUnavailable=100%"},
        {"at": "1m", "run": "kubectl -n kube-system rollout restart ds/cilium"}],
        nodes=tuple(f"node-{i}" for i in range(5))))
    assert [t for t, _, e in result.events if "agent ready" in e and t > 0] == [90] * 5


# ---------------------------------------------------------------- the unmanaged-pod watcher
def test_operator_restarts_only_kube_dns_pods_without_an_endpoint_on_its_15s_tick():
    steps = [{"at": "0s", "apply": [{"deployment": "coredns", "namespace": "kube-system", "replicas": 1,
                                     "labels": {"k8s-app": "kube-dns"}, "nodeName": "node-0"},
                                    {"deployment": "web", "replicas": 1, "nodeName": "node-0"}]},
             *to_cluster_pool(at="60s"), {"at": "100s", "run": "kubectl delete ciliumnode node-0"},
             {"at": "100s", "run": "kubectl -n kube-system rollout restart ds/cilium"}]
    result = run_migration(scenario(steps, nodes=("node-0",)))
    restarts = [(t, e) for t, _, e in result.events if "restarted unmanaged kube-dns" in e]
    # operator ready at 70 s, ticks every 15 s: the first tick after the agent is up at 130 s is 145 s
    assert [t for t, _ in restarts] == [145] and "coredns" in restarts[0][1]
    final = result.pods_at(result.step_rows[-1]["step"])
    by_owner = {r["owner"]: r for r in final}
    assert not by_owner["deployment/coredns"]["disrupted"]
    assert by_owner["deployment/web"]["disrupted"]  # nobody restarts it


def test_the_watcher_can_be_turned_off_with_its_helm_value():
    steps = [{"at": "0s", "apply": [{"deployment": "coredns", "namespace": "kube-system", "replicas": 1,
                                     "labels": {"k8s-app": "kube-dns"}}]},
             {"at": "60s", "run": "helm upgrade cilium cilium/cilium --reuse-values --set ipam.mode=cluster-pool "
                                  "--set ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16} "
                                  "--set operator.unmanagedPodWatcher.restart=false"},
             {"at": "60s", "run": "kubectl -n kube-system rollout restart deploy/cilium-operator"},
             {"at": "100s", "delete": {"ciliumnode": "all"}},
             {"at": "100s", "restartAgents": "all"}]
    result = run_migration(scenario(steps))
    assert not any("kube-dns" in e for _, _, e in result.events)
    assert result.summary["disrupted_at_end"] == 1


# ---------------------------------------------------------------- conflicts
def test_the_conflict_check_detects_a_planted_conflict():
    engine = MigrationEngine(scenario([app(6)]))
    engine.run()
    assert engine.conflicts == []
    p = engine.pods
    live = np.flatnonzero(p.state == LIVE)
    a, b = int(live[0]), int(live[-1])
    p.addr[b] = p.addr[a]  # two running pods, one address
    found = engine._find_conflicts()
    assert sorted(found.tolist()) == sorted([a, b])
    assert len(engine.conflicts) == 1
    conflict = engine.conflicts[0]
    assert conflict.address == str(ipaddress.IPv4Address(int(p.addr[a])))
    assert set(conflict.pods) == {engine._pod_label(a), engine._pod_label(b)}


def test_multi_pool_reusing_the_kcm_range_hands_a_node_another_nodes_cidr_and_the_check_finds_the_conflicts():
    pool = """
apiVersion: cilium.io/v2alpha1
kind: CiliumPodIPPool
metadata: {name: default}
spec: {ipv4: {cidrs: [10.244.0.0/16], maskSize: 24}}
"""
    steps = [{"at": "0s", "apply": [{"deployment": "a", "replicas": 200, "nodeName": "node-0"},
                                    {"deployment": "b", "replicas": 50, "nodeName": "node-1"}]},
             {"at": "1m", "run": "kubectl apply -f -", "stdin": pool},
             {"at": "1m", "run": "helm upgrade cilium cilium/cilium --reuse-values --set ipam.mode=multi-pool"},
             {"at": "1m", "run": "kubectl -n kube-system rollout restart deploy/cilium-operator"},
             # node-1 first: the operator's fresh pool hands it 10.244.0.0/24, node-0's KCM CIDR
             {"at": "2m", "restartAgents": "node-1"},
             {"at": "3m", "run": "kubectl rollout restart deploy/b"}]
    result = run_migration(scenario(steps))
    nodes = last_nodes(result)
    assert nodes["node-1"]["pools_allocated"] == ["default=10.244.0.0/24"]
    assert nodes["node-0"]["routed_cidrs"] == ["10.244.0.0/24"]
    assert result.conflicts, "node-1's new pods draw from node-0's addresses"
    for c in result.conflicts:
        assert ipaddress.ip_address(c.address) in net("10.244.0.0/24") and len(c.pods) == 2
        assert {p.split("/")[1].split("-")[0] for p in c.pods} == {"a", "b"}
    last = result.pods_at(result.step_rows[-1]["step"])
    flagged = {r["address"] for r in last if r["conflict"]}
    assert flagged and flagged <= {c.address for c in result.conflicts}


# ---------------------------------------------------------------- multi-pool demand
def test_multi_pool_agent_asks_for_enough_mask_size_cidrs():
    cilium = {"ipam": {"mode": "multi-pool", "operator": {"autoCreateCiliumPodIPPools": {
        "default": {"ipv4": {"cidrs": ["10.30.0.0/20"], "maskSize": 28}}}}}}
    result = run_migration(scenario([{"at": "0s", "apply": [{"deployment": "x", "replicas": 30,
                                                              "nodeName": "node-0"}]}], cilium=cilium,
                                    nodes=("node-0",)))
    node = last_nodes(result)["node-0"]
    # 30 pods + router + health = 32 in use; neededIPCeil(32, 8) = 40; a /28 gives 14: 3 of them
    assert len(node["pools_allocated"]) == 3
    assert all(net(c.split("=")[1]).prefixlen == 28 for c in node["pools_allocated"])
    assert result.summary["pods_at_end"] == 30


# ---------------------------------------------------------------- steps that upstream (or the cluster) refuses
def run_error(steps, **kw):
    with pytest.raises(ConfigError) as err:
        run_migration(scenario(steps, **kw))
    message = str(err.value)
    assert "\n" not in message
    return message


CLUSTER_POOL = {"ipam": {"mode": "cluster-pool", "operator": {"clusterPoolIPv4PodCIDRList": ["10.8.0.0/16"]}}}


def test_unknown_node_pod_and_deployment_are_one_line_errors():
    assert "no node 'k8s-w2' in the cluster; expected one of: node-0, node-1" in run_error(
        [{"at": "1m", "run": "kubectl delete ciliumnode k8s-w2"}])
    assert "no pod default/nope" in run_error([app(), {"at": "1m", "run": "kubectl delete pod nope"}])
    assert "no Deployment default/api" in run_error([app(), {"at": "1m", "run": "kubectl rollout restart deploy/api"}])
    assert "steps[1]" in run_error([app(), {"at": "1m", "run": "kubectl drain nodez"}])
    assert "cannot delete Pods that declare no controller" in run_error(
        [{"at": "0s", "apply": [{"pod": "solo", "nodeName": "node-0"}]}, {"at": "1m", "run": "kubectl drain node-0"}])


def test_changing_an_existing_pool_entry_while_nodes_hold_cidrs_from_it_is_refused():
    message = run_error([{"at": "1m", "run": "helm upgrade cilium cilium/cilium --reuse-values "
                                             "--set ipam.operator.clusterPoolIPv4PodCIDRList={10.9.0.0/16}"}],
                        cilium=CLUSTER_POOL)
    assert "steps[0]" in message and "entry 10.8.0.0/16 is removed or changed while nodes hold CIDRs from it" in message


def test_allow_unsupported_applies_it_and_the_nodes_end_up_not_configured():
    steps = [{"at": "1m", "allowUnsupported": True,
              "run": "helm upgrade cilium cilium/cilium --reuse-values "
                     "--set ipam.operator.clusterPoolIPv4PodCIDRList={10.9.0.0/16}"},
             {"at": "1m", "run": "kubectl -n kube-system rollout restart deploy/cilium-operator"}]
    result = run_migration(scenario(steps, cilium=CLUSTER_POOL))
    for row in last_nodes(result).values():
        assert row["status_error"].startswith("allocator not configured for the requested CIDR 10.8.")


def test_the_mask_size_of_a_running_cluster_pool_cannot_change():
    message = run_error([{"at": "1m", "run": "helm upgrade cilium cilium/cilium --reuse-values "
                                             "--set ipam.operator.clusterPoolIPv4MaskSize=26"}], cilium=CLUSTER_POOL)
    assert "clusterPoolIPv4MaskSize: 24 -> 26" in message and "cannot be changed" in message


def test_a_new_entry_overlapping_an_old_one_is_refused_as_upstream_does():
    message = run_error([{"at": "1m", "run": "helm upgrade cilium cilium/cilium --reuse-values "
                                             "--set ipam.operator.clusterPoolIPv4PodCIDRList={10.8.0.0/16,10.8.128.0/17}"}],
                        cilium=CLUSTER_POOL)
    assert "10.8.128.0/17 overlaps 10.8.0.0/16" in message and "ErrCIDRCollision" in message


def test_switching_from_kubernetes_may_set_any_mask_and_may_overlap_the_kcm_range():
    result = run_migration(scenario([app(), *to_cluster_pool("10.244.0.0/16", mask=26)]))
    assert all(r["status_error"] == "" for r in last_nodes(result).values())  # a /24 inside is occupied


def test_a_pool_mask_change_and_an_overlapping_pool_are_refused():
    pool = ("apiVersion: cilium.io/v2alpha1\nkind: CiliumPodIPPool\nmetadata: {{name: {name}}}\n"
            "spec: {{ipv4: {{cidrs: [{cidr}], maskSize: {mask}}}}}\n")
    steps = [{"at": "1m", "run": "kubectl apply -f -", "stdin": pool.format(name="p", cidr="10.50.0.0/16", mask=24)},
             {"at": "2m", "run": "kubectl apply -f -", "stdin": pool.format(name="p", cidr="10.50.0.0/16", mask=26)}]
    assert "cannot change IPv4 mask size in existing pool (24 -> 26)" in run_error(steps)
    steps[1]["stdin"] = pool.format(name="q", cidr="10.50.128.0/17", mask=24)
    assert "overlaps pool p's 10.50.0.0/16" in run_error(steps)


def test_ipv6_is_refused_with_a_clear_message():
    with pytest.raises(ConfigError, match="models IPv4 pod addresses only"):
        run_migration(scenario([], cilium={"ipv6": {"enabled": True}, "ipam": {"mode": "cluster-pool"}},
                               kcm={"cluster-cidr": "10.244.0.0/16,fd00:10:244::/56"}))
