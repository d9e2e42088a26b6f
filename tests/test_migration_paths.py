"""The other paths users take, each from its shipped scenario: what must hold, and what breaks without the safe way."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from ipam_core.errors import ConfigError
from ipam_core.migration import run_migration
from ipam_core.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def load(name: str, patch=None):
    text = (SCENARIOS / f"{name}.yaml").read_text()
    if patch is None:
        return load_scenario(SCENARIOS / f"{name}.yaml")
    doc = yaml.safe_load(text)
    patch(doc)
    return load_scenario(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def addresses_by_pod(result) -> dict[tuple[str, str], set[str]]:
    """Every address each pod was seen with, over all snapshots."""
    seen: dict[tuple[str, str], set[str]] = {}
    for r in result.pod_rows:
        if r["address"]:
            seen.setdefault((r["namespace"], r["pod"]), set()).add(r["address"])
    return seen


def in_net(address: str, cidr: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(cidr)


# ---------------------------------------------------------------- cluster-pool -> multi-pool (PR #46104)
def test_cluster_pool_to_multi_pool_keeps_every_pod_address_and_disrupts_nothing():
    result = run_migration(load("cluster-pool-to-multi-pool"))
    assert all(len(a) == 1 for a in addresses_by_pod(result).values()), "a pod changed address"
    s = result.summary
    assert s["disrupted_pod_seconds"] == 0 and s["peak_disrupted_pods"] == 0 and s["conflicts"] == 0
    assert s["end_mode"] == "multi-pool" and s["stale_at_end"] == 0
    before = result.nodes_at(1)
    after = result.nodes_at(result.step_rows[-1]["step"])
    for name, row in before.items():
        cidr = row["ciliumnode_pod_cidrs"][0]
        assert after[name]["ciliumnode_pod_cidrs"] == []  # moved out of spec.ipam.podCIDRs ...
        assert f"default={cidr}" in after[name]["pools_allocated"]  # ... into the default pool
        assert after[name]["agent_mode"] == "multi-pool" and cidr in after[name]["routed_cidrs"]
    # pods created during the rolling migration drew from their node's migrated CIDR
    for r in result.pods_at(result.step_rows[-1]["step"]):
        node_cidrs = [c.split("=")[1] for c in after[r["node"]]["pools_allocated"]]
        assert any(in_net(r["address"], c) for c in node_cidrs)
    other = [r for r in result.pods_at(result.step_rows[-1]["step"]) if r["pod"] == "nginx-other-pool"]
    assert len(other) == 1 and in_net(other[0]["address"], "11.0.0.0/8")


def test_without_the_migration_flag_the_same_switch_moves_pods_to_fresh_cidrs():
    def no_flag(doc):
        step = doc["steps"][2]
        step["run"] = step["run"].replace("--set-string extraConfig.enable-cluster-pool-to-multi-pool-migration=true", "")

    result = run_migration(load("cluster-pool-to-multi-pool", no_flag))
    s = result.summary
    assert s["disrupted_pod_seconds"] > 0 and s["peak_disrupted_pods"] > 0
    moved = [a for a in addresses_by_pod(result).values() if len(a) > 1]
    assert not moved  # pods do not change address by themselves: they stay, disrupted
    assert s["disrupted_at_end"] > 0 or s["conflicts"] > 0


def test_migration_flag_with_a_default_pool_that_does_not_cover_the_cidrs_is_refused():
    def narrow(doc):
        doc["steps"][2]["run"] = doc["steps"][2]["run"].replace("'{10.0.0.0/8}'", "'{192.168.0.0/16}'")

    with pytest.raises(ConfigError) as err:
        run_migration(load("cluster-pool-to-multi-pool", narrow))
    message = str(err.value)
    assert "\n" not in message and "steps[2]" in message
    assert "does not cover node kind-control-plane's podCIDR 10.0.0.0/24" in message


# ---------------------------------------------------------------- kubernetes -> multi-pool
def test_kubernetes_to_multi_pool_node_by_node_ends_with_every_pod_in_the_pool_without_disruption():
    result = run_migration(load("kubernetes-to-multi-pool"))
    s = result.summary
    assert s["disrupted_pod_seconds"] == 0 and s["conflicts"] == 0 and s["stale_at_end"] == 0
    last = result.step_rows[-1]["step"]
    nodes = result.nodes_at(last)
    for name, row in nodes.items():
        assert row["agent_mode"] == "multi-pool"
        assert row["pools_allocated"] and all(ipaddress.ip_network(c.split("=")[1]).subnet_of(
            ipaddress.ip_network("10.20.0.0/16")) for c in row["pools_allocated"])
        assert all(ipaddress.ip_network(c.split("=")[1]).prefixlen == 26 for c in row["pools_allocated"])
    pods = result.pods_at(last)
    assert len(pods) == 12 and all(in_net(r["address"], "10.20.0.0/16") for r in pods)
    # while node-a was migrated, the others were still stale: the operator accepts no 10.244 CIDR
    after_a = result.step_rows[6]
    assert after_a["pods_stale"] > 0 and after_a["pods_disrupted"] == 0


def test_kubernetes_to_multi_pool_all_at_once_disrupts_every_pod_until_restarted():
    def all_at_once(doc):
        head = doc["steps"][:4]
        doc["steps"] = head + [{"at": "6m", "run": "kubectl -n kube-system delete pod -l k8s-app=cilium"},
                               {"at": "10m", "run": "kubectl rollout restart deploy/web deploy/api"}]

    result = run_migration(load("kubernetes-to-multi-pool", all_at_once))
    s = result.summary
    assert s["peak_disrupted_pods"] == 12  # every pod, coredns included until the watcher runs
    assert s["disrupted_pod_seconds"] >= 9 * (240 - 30)  # web+api from 6m30s until at least 10m
    assert s["disrupted_at_end"] >= 1  # the bare pod debug is never restarted


# ---------------------------------------------------------------- appending to an exhausted cluster pool
def test_appending_an_entry_gives_the_waiting_node_a_cidr_and_moves_nothing():
    result = run_migration(load("cluster-pool-append"))
    before = result.nodes_at(2)
    assert before["node-3"]["status_error"] == "allocator full" and before["node-3"]["agent_state"] == "waiting"
    assert before["node-3"]["pods"] == 0  # NotReady: nothing scheduled there
    last = result.step_rows[-1]["step"]
    nodes = result.nodes_at(last)
    assert nodes["node-1"]["ciliumnode_pod_cidrs"] == ["10.10.0.0/24"]
    assert nodes["node-2"]["ciliumnode_pod_cidrs"] == ["10.10.1.0/24"]
    assert nodes["node-3"]["ciliumnode_pod_cidrs"] == ["10.20.0.0/24"]
    assert all(r["status_error"] == "" and r["agent_state"] == "ready" for r in nodes.values())
    assert all(len(a) == 1 for a in addresses_by_pod(result).values())
    assert result.summary["disrupted_pod_seconds"] == 0 and result.summary["pod_starts"] == 0


def test_replacing_the_exhausted_entry_instead_of_appending_is_refused():
    def replace(doc):
        doc["steps"][4]["run"] = doc["steps"][4]["run"].replace("{10.10.0.0/23,10.20.0.0/22}", "{10.20.0.0/22}")

    with pytest.raises(ConfigError, match=r"steps\[4\].*entry 10\.10\.0\.0/23 is removed or changed while nodes "
                                          r"hold CIDRs from it \(node-1, node-2\)"):
        run_migration(load("cluster-pool-append", replace))


@pytest.mark.parametrize("name", ["seed-lab", "cluster-pool-to-multi-pool", "kubernetes-to-multi-pool",
                                  "cluster-pool-append"])
def test_shipped_migration_scenarios_have_no_conflicts_and_end_clean(name):
    s = run_migration(load(name)).summary
    assert s["conflicts"] == 0 and s["disrupted_at_end"] == 0 and s["nodes_waiting_at_end"] == 0
