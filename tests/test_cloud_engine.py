"""The cloud modes in the engine: upstream rules per mode, worked examples, invariants, compare."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import OP_NODE_ADD, OP_NODE_DEL, OP_POD_ADD, OP_POD_DEL, nodes_then_pods, scenario, workload
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam_core.cloud import limits as L
from ipam_core.cloud import vpc_cni
from ipam_core.pipeline import build_workload, simulate, summarize, write_run
from ipam_core.engine import tables as T
from ipam_core.engine.check import check_invariants
from ipam_core.pipeline.run import run_mode
from ipam_core.scenario import CLOUD_MODES, scenario_for_mode

SUBNET = "10.1.0.0/20"
SUBNET_MODES = ("eni", "aws-vpc-cni", "azure", "crd")


def cloud_scenario(tmp_path, patch=None, instance="m5.large", **extra):
    base = {"cluster": {"instanceType": instance}, "cloud": {"subnets": [SUBNET]}}
    for key, value in (patch or {}).items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return scenario(tmp_path, base, **extra)


def run(sc, wl, mode):
    result = run_mode(scenario_for_mode(sc, mode), wl, mode)
    assert check_invariants(result.state) == []
    return result


def at(result, t, column):
    tr = result.trace
    return tr[column][np.flatnonzero(tr["time_s"] <= t)[-1]]


def last(result, column):
    return result.trace[column][-1]


def ifaces(result, node=0):
    """Units (secondary IPs or prefixes) per attached interface, in index order."""
    st_ = result.state
    attached = st_.cl_iface[node, :, T.CI_ATTACHED] == 1
    return st_.cl_iface[node, attached, T.CI_UNITS].tolist()


def slow_pods(n_nodes, n_pods, node=0, gap=10.0, start=30.0):
    """Pods pinned to one node, one every `gap` seconds (the pool catches up between them)."""
    events = [(0.0, OP_NODE_ADD, i, -1) for i in range(n_nodes)]
    return events + [(start + p * gap, OP_POD_ADD, node, p) for p in range(n_pods)]


# ---------------------------------------------------------------- AWS VPC CNI: the worked examples, in the engine
DATA = Path(str(resources.files("ipam_core").joinpath("data")))
with open(DATA / "aws_vpc_cni_warm_pool_examples_secondary_ip.csv", newline="") as _f:
    SECONDARY = list(csv.DictReader(_f))


def _target(text):
    return 0 if text.strip() == "-" else int(text)


@pytest.mark.parametrize("row", SECONDARY, ids=lambda r: "-".join(r[k] for k in ("instance_type", "warm_eni_target",
                                                                                   "warm_ip_target", "minimum_ip_target",
                                                                                   "pods")))
def test_ipamd_in_the_engine_settles_where_the_docs_say(tmp_path, row):
    pods = int(row["pods"])
    env = {"WARM_ENI_TARGET": _target(row["warm_eni_target"]), "WARM_IP_TARGET": _target(row["warm_ip_target"]),
           "MINIMUM_IP_TARGET": _target(row["minimum_ip_target"])}
    sc = cloud_scenario(tmp_path, {"cloud": {"awsVpcCni": env}, "duration": "30m"}, instance=row["instance_type"])
    r = run(sc, workload(slow_pods(1, pods), 1), "aws-vpc-cni")
    assert last(r, "pods_running") == pods
    got = ifaces(r)
    assert len(got) == int(row["attached_enis"])
    assert sorted(got) == sorted(int(x) for x in row["ips_per_eni"].split(","))
    assert last(r, "addrs_idle") == int(row["unused_ips"])
    assert last(r, "interfaces") == int(row["attached_enis"])
    # the engine and the steady-state model agree
    lim = L.instance_limits(row["instance_type"])
    model = vpc_cni.warm_pool_state(lim, vpc_cni.Targets(env["WARM_ENI_TARGET"], env["WARM_IP_TARGET"],
                                                         env["MINIMUM_IP_TARGET"]), pods)
    assert got == model.per_eni()


@pytest.mark.parametrize(
    "instance, target, pods, prefixes, per_pod_prefix",
    [("t3.small", {"WARM_PREFIX_TARGET": 1}, 17, 3, [16, 1, 0]),
     ("t3.small", {"WARM_PREFIX_TARGET": 1}, 58, 5, [16, 16, 16, 10, 0]),
     ("t3.small", {"WARM_IP_TARGET": 1, "MINIMUM_IP_TARGET": 1}, 58, 4, [16, 16, 16, 10]),
     ("p3dn.24xlarge", {"WARM_IP_TARGET": 5, "MINIMUM_IP_TARGET": 10}, 15, 2, [15, 0])],
)
def test_ipamd_prefix_examples_in_the_engine(tmp_path, instance, target, pods, prefixes, per_pod_prefix):
    env = {"ENABLE_PREFIX_DELEGATION": True, **target}
    sc = cloud_scenario(tmp_path, {"cloud": {"awsVpcCni": env}, "cluster": {"kubelet": {"maxPods": 110}},
                                   "duration": "30m"}, instance=instance)
    r = run(sc, workload(slow_pods(1, pods), 1), "aws-vpc-cni")
    assert last(r, "prefixes") == prefixes and last(r, "pods_running") == pods
    units = r.state.cl_unit[0]
    live = units[units[:, T.CU_SET] >= 0]
    assert live[:, T.CU_USED].tolist() == per_pod_prefix  # pods fill the first prefix with room
    assert np.all(live[:, T.CU_OFF] % 16 == 0) and np.all(live[:, T.CU_SIZE] == 16)


def test_ipamd_gives_back_above_warm_ip_target_and_frees_the_extra_eni(tmp_path):
    env = {"WARM_IP_TARGET": 2, "MINIMUM_IP_TARGET": 2}
    sc = cloud_scenario(tmp_path, {"cloud": {"awsVpcCni": env}, "duration": "20m"}, instance="t3.small")
    events = slow_pods(1, 8) + [(400.0 + p, OP_POD_DEL, -1, p) for p in range(8)]
    r = run(sc, workload(events, 1), "aws-vpc-cni")
    assert at(r, 390, "interfaces") == 3 and at(r, 390, "addrs_idle") == 1  # 8 pods + 1 free: all 9 held
    # after the deletes: 2 free kept (MINIMUM 2), the rest released every decreaseIPPoolInterval, ENIs freed
    assert last(r, "addrs_idle") == 2 and last(r, "interfaces") == 1
    assert last(r, "cloud_api_release") >= 2 and last(r, "cidr_releases") == last(r, "cidr_carves") - 2


def test_warm_eni_target_keeps_a_whole_eni_free(tmp_path):
    sc = cloud_scenario(tmp_path, {"duration": "10m"}, instance="m5.large")  # 3 ENIs x 9
    r = run(sc, workload(slow_pods(1, 10), 1), "aws-vpc-cni")
    # 10 pods: eth0 full (9) + ENI 2 (1 used, 8 free) -> below a whole ENI free -> ENI 3 attached
    assert ifaces(r) == [9, 9, 9] and last(r, "addrs_idle") == 17


# ---------------------------------------------------------------- Cilium ENI
def test_eni_keeps_pre_allocate_free_and_attaches_enis_as_they_fill(tmp_path):
    sc = cloud_scenario(tmp_path, {"duration": "15m"})  # m5.large: 3 ENIs x 9
    r = run(sc, workload(slow_pods(1, 15, gap=20.0), 1), "eni")
    assert at(r, 25, "nodes_ready") == 1
    # at rest with 0 pods: router + health used, pre-allocate 8 free
    assert at(r, 25, "addrs_idle") == 8 and at(r, 25, "interfaces") == 2  # eth0's 9 slots, then a second ENI
    # 15 pods + 2 reserved = 17 used, 8 free: 25 of the instance's 27, eth0 and ENI 2 full first
    assert last(r, "addrs_used") == 15 and last(r, "addrs_idle") == 8
    assert last(r, "interfaces") == 3 and ifaces(r) == [9, 9, 7]
    assert last(r, "cloud_api_attach") == 2  # eth0 comes with the instance


def test_eni_max_allocate_caps_the_pool_at_the_instance(tmp_path):
    sc = cloud_scenario(tmp_path, {"duration": "15m"})  # m5.large: 27 addresses for pods
    r = run(sc, workload(slow_pods(1, 22, gap=20.0), 1), "eni")
    # 22 pods + 2 reserved = 24 used: pre-allocate would want 32, max-allocate stops at 27
    assert last(r, "addrs_idle") == 3 and ifaces(r) == [9, 9, 9]


def test_eni_surge_covers_a_burst_of_pending_pods_in_one_call(tmp_path):
    sc = cloud_scenario(tmp_path, {"duration": "5m", "cilium": {"ipam": {"operator": {"preAllocate": 2}}}},
                        instance="m5.4xlarge")  # 8 ENIs x 29
    events = [(0.0, OP_NODE_ADD, 0, -1)] + [(60.0, OP_POD_ADD, 0, p) for p in range(20)]
    r = run(sc, workload(events, 1), "eni")
    assert last(r, "pods_running") == 20
    # one pass covers needed + surge (20 pending) instead of pre-allocate 2 at a time
    assert last(r, "cloud_api_assign") <= 4 and last(r, "addrs_idle") >= 2


def test_eni_release_waits_for_the_delay_and_only_when_enabled(tmp_path):
    events = slow_pods(1, 20, gap=2.0) + [(200.0 + p * 0.1, OP_POD_DEL, -1, p) for p in range(20)]
    held = {}
    for release in (False, True):
        sc = cloud_scenario(tmp_path, {"duration": "15m", "cilium": {"eni": {"awsReleaseExcessIPs": release}}},
                            instance="m5.4xlarge", name=f"r{release}.yaml")
        r = run(sc, workload(events, 1), "eni")
        held[release] = (at(r, 350, "addrs_idle"), last(r, "addrs_idle"), last(r, "cidr_releases"))
    assert held[False][2] == 0 and held[False][1] == held[False][0] > 8  # never given back
    idle_soon, idle_end, releases = held[True]
    assert idle_soon == held[False][0]  # still held 150 s after the deletes (release delay 180 s)
    assert idle_end == 8 and releases > 0  # then back to pre-allocate


def test_eni_instance_limit_fails_pods_and_counts_free_elsewhere(tmp_path):
    sc = cloud_scenario(tmp_path, {"duration": "10m", "timing": {"podPendingTimeout": "2m"},
                                   "cluster": {"kubelet": {"maxPods": 110}}}, instance="t3.small")  # 3 x 3
    r = run(sc, workload(slow_pods(2, 12, gap=2.0), 2), "eni")
    # 9 addresses, 2 for router and health: 7 pods; node 1 and the subnet still have room
    assert last(r, "pods_running") == 7 and last(r, "pods_failed") == 5
    assert last(r, "pods_failed_free_elsewhere") == 5
    # the idle node holds router + health + pre-allocate 8 > 9 addresses: all three ENIs too
    assert last(r, "interfaces") == 3 + 3 and last(r, "addrs_idle") == 7


def test_eni_prefix_delegation_falls_back_to_addresses_in_a_fragmented_subnet(tmp_path):
    # a /27: its two /28s each hold a reserved address (.0-.3, .31): no aligned /28 is ever free
    patch = {"cloud": {"subnets": ["10.1.0.0/27"]}, "cilium": {"eni": {"awsEnablePrefixDelegation": True}},
             "duration": "5m"}
    sc = cloud_scenario(tmp_path, patch)
    r = run(sc, workload(slow_pods(1, 6), 1), "eni")
    assert last(r, "frag_failures") >= 1 and last(r, "prefixes") == 0
    assert last(r, "pods_running") == 6  # single addresses instead, as upstream falls back
    wide = cloud_scenario(tmp_path, {**patch, "cloud": {"subnets": [SUBNET]}}, name="wide.yaml")
    r = run(wide, workload(slow_pods(1, 6), 1), "eni")
    assert last(r, "frag_failures") == 0 and last(r, "prefixes") >= 1 and last(r, "node_cidrs") == last(r, "prefixes")


def test_vpc_cni_prefix_delegation_does_not_fall_back(tmp_path):
    patch = {"cloud": {"subnets": ["10.1.0.0/27"], "awsVpcCni": {"ENABLE_PREFIX_DELEGATION": True}},
             "duration": "10m", "timing": {"podPendingTimeout": "20m"}}
    sc = cloud_scenario(tmp_path, patch)
    r = run(sc, workload(slow_pods(1, 3), 1), "aws-vpc-cni")
    assert last(r, "pods_running") == 0 and last(r, "prefixes") == 0
    # one refused request per insufficientCidrErrorCooldown (2 min) over 10 min
    assert 4 <= last(r, "frag_failures") <= 6


def test_prefixes_are_carved_aligned_from_the_subnet(tmp_path):
    sc = cloud_scenario(tmp_path, {"cilium": {"eni": {"awsEnablePrefixDelegation": True}}, "duration": "3m"})
    r = run(sc, workload(slow_pods(3, 30, gap=1.0), 3), "eni")
    n = r.nodes
    end = n["time_s"] == n["time_s"].max()
    offsets = np.concatenate([[0], np.cumsum(n["cidrs_counts"])])
    values = n["cidrs_values"].to_pylist()
    cidrs = [c for i in np.flatnonzero(end) for c in values[offsets[i] : offsets[i + 1]]]
    assert cidrs and all(c.endswith("/28") for c in cidrs)
    assert len(set(cidrs)) == len(cidrs) == last(r, "prefixes")
    assert "10.1.0.0/28" not in cidrs  # the cloud's reserved .0-.3 sit in the subnet's first /28


# ---------------------------------------------------------------- Azure and AKS
def test_azure_fills_the_one_nic_and_never_attaches(tmp_path):
    sc = cloud_scenario(tmp_path, {"duration": "10m", "cluster": {"kubelet": {"maxPods": 250}}})
    r = run(sc, workload(slow_pods(1, 40, gap=1.0), 1), "azure")
    assert last(r, "interfaces") == 1 and last(r, "cloud_api_attach") == 0
    assert last(r, "pods_running") == 40 and last(r, "addrs_idle") >= 8  # pre-allocate 8
    assert last(r, "cidr_releases") == 0  # Azure never releases (ReleaseIPs is not implemented upstream)


def test_aks_dynamic_batches_of_16(tmp_path):
    sc = cloud_scenario(tmp_path, {"cloud": {"aks": {"podIPAllocationMode": "DynamicIndividual"}}, "duration": "5m"})
    events = slow_pods(1, 9, gap=5.0) + [(200.0 + p, OP_POD_DEL, -1, p) for p in range(9)]
    r = run(sc, workload(events, 1), "azure")
    assert at(r, 25, "node_cidrs") == 16  # demand 0: one batch
    assert at(r, 190, "node_cidrs") == 32  # demand 9: fewer than 8 would be free -> a second batch
    assert last(r, "node_cidrs") == 16 and last(r, "cidr_releases") == 16
    # the VM's NIC, whose primary address lives in the node subnet, not in the pod subnet
    assert last(r, "interfaces") == 1 and last(r, "addrs_reserved") == 5


def test_aks_static_blocks_one_reserved(tmp_path):
    sc = cloud_scenario(tmp_path, {"cloud": {"aks": {"podIPAllocationMode": "StaticBlock"}},
                                   "cluster": {"kubelet": {"maxPods": 30}}, "duration": "5m",
                                   "timing": {"podPendingTimeout": "1m"}})
    r = run(sc, workload(slow_pods(2, 32, gap=1.0), 2), "azure")
    assert last(r, "prefixes") == 4  # ceil(31 / 16) = 2 blocks per node
    assert last(r, "addrs_reserved") == 5 + 2  # the subnet's five, one per node
    assert last(r, "pods_running") == 31 and last(r, "pods_failed") == 1  # 32 addresses, 1 reserved, max pods 30


# ---------------------------------------------------------------- crd
def test_crd_static_pool_per_node(tmp_path):
    sc = cloud_scenario(tmp_path, {"cloud": {"crd": {"poolPerNode": 12}}, "duration": "5m",
                                   "timing": {"podPendingTimeout": "1m"}})
    r = run(sc, workload(slow_pods(2, 12, gap=1.0), 2), "crd")
    assert last(r, "node_cidrs") == 24 and last(r, "addrs_reserved") == 4  # router + health per node, no cloud edge
    assert last(r, "pods_running") == 10 and last(r, "pods_failed") == 2
    assert last(r, "pods_failed_free_elsewhere") == 2  # node 1's pool was idle
    assert last(r, "interfaces") == 0 and last(r, "cloud_api_assign") == 2


def test_crd_watermark_writer_follows_pre_allocate(tmp_path):
    sc = cloud_scenario(tmp_path, {"cilium": {"ipam": {"operator": {"preAllocate": 4}}}, "duration": "5m"})
    r = run(sc, workload(slow_pods(1, 30, gap=2.0), 1), "crd")
    assert last(r, "pods_running") == 30 and 4 <= last(r, "addrs_idle") < 4 + 30
    assert last(r, "interfaces") == 0 and last(r, "addrs_reserved") == 2  # no cloud interface, no cloud reservation


# ---------------------------------------------------------------- every mode, invariants, compare
@settings(max_examples=12, deadline=None)
@given(
    mode=st.sampled_from(SUBNET_MODES),
    variant=st.integers(0, 3),
    nodes=st.integers(1, 5),
    pods=st.integers(1, 40),
    churn=st.floats(0.2, 4.0),
    seed=st.integers(0, 10_000),
    subnet=st.sampled_from(["10.1.0.0/22", "10.1.0.0/24", "10.1.0.0/26"]),
)
def test_invariants_hold_for_random_cloud_clusters(tmp_path_factory, mode, variant, nodes, pods, churn, seed, subnet):
    tmp = tmp_path_factory.mktemp("c")
    patch = {
        "seed": seed, "duration": "4m", "cluster": {"nodes": nodes, "scheduler": "random"},
        "cloud": {"subnets": [subnet]}, "timing": {"podPendingTimeout": "40s", "excessIPReleaseDelay": "20s"},
        "workload": {"generator": "steady-churn", "podsPerNode": pods, "churnPerSecond": churn},
    }
    if variant == 1:
        patch["cilium"] = {"eni": {"awsEnablePrefixDelegation": True, "awsReleaseExcessIPs": True}}
        patch["cloud"].update({"awsVpcCni": {"ENABLE_PREFIX_DELEGATION": True}, "aks": {"podIPAllocationMode": "StaticBlock"},
                               "crd": {"poolPerNode": 20}})
    elif variant == 2:
        patch["cloud"].update({"awsVpcCni": {"WARM_IP_TARGET": 3, "MINIMUM_IP_TARGET": 4},
                               "aks": {"podIPAllocationMode": "DynamicIndividual"},
                               "crd": {"releaseExcessIPs": True}})
    elif variant == 3:
        patch["cilium"] = {"ipam": {"operator": {"preAllocate": 3, "maxAboveWatermark": 2}},
                           "eni": {"awsReleaseExcessIPs": True}}
    sc = cloud_scenario(tmp, patch)
    wl = build_workload(sc)
    extra = [(90.0, OP_NODE_DEL, 0, -1), (150.0, OP_NODE_ADD, 0, -1)]  # a node replaced
    wl = workload([(t, o, n, p) for t, o, n, p in zip(wl.time, wl.op, wl.node, wl.pod)] + extra, nodes)
    r = run(sc, wl, mode)  # run() checks the invariants at the end
    tr = r.trace
    assert np.array_equal(tr["addrs_carved"], tr["addrs_reserved"] + tr["addrs_used"] + tr["addrs_idle"])
    assert np.array_equal(tr["addrs_pool"], tr["addrs_carved"] + tr["addrs_uncarved"])
    assert np.array_equal(tr["addrs_used"], tr["pods_running"]) and np.all(tr["addrs_idle"] >= 0)
    for column in ("frag_failures", "cloud_api_attach", "cloud_api_assign", "cloud_api_release", "cidr_carves"):
        assert np.all(np.diff(tr[column]) >= 0)


def test_every_mode_runs_in_compare_beside_the_pool_modes(tmp_path):
    sc = cloud_scenario(tmp_path, {"duration": "3m", "cluster": {"scheduler": "random"}})
    modes = ["kubernetes", "cluster-pool", "multi-pool", *CLOUD_MODES]
    result = simulate(sc, modes)
    table = summarize(result)
    assert table.column("mode").to_pylist() == modes
    paths = write_run(result, tmp_path / "out", command="ipam-bench compare s.yaml")
    from ipam_core.trace import read_trace

    trace = read_trace(paths[0])
    assert {"interfaces", "prefixes", "frag_failures", "cloud_api_assign"} <= set(trace.column_names)
    by_mode = {m.mode: m.trace for m in result.modes}
    assert all(by_mode[m]["pods_running"][-1] > 0 for m in modes)  # the same workload runs everywhere
    for m in ("kubernetes", "cluster-pool", "multi-pool", "gke"):
        assert set(by_mode[m]["interfaces"]) == {0}  # pool modes report 0
        assert set(by_mode[m]["warm_addrs_per_node"]) == {0.0}
    assert by_mode["eni"]["interfaces"][-1] >= 4  # every node's eth0 at least
    assert by_mode["aws-vpc-cni"]["warm_addrs_per_node"][-1] > 0


def test_same_seed_same_cloud_trace(tmp_path):
    sc = cloud_scenario(tmp_path, {"duration": "2m", "cluster": {"scheduler": "random"}})
    first = run(sc, build_workload(sc), "eni").trace
    again = run(sc, build_workload(sc), "eni").trace
    assert all(np.array_equal(first[k], again[k]) for k in first)


def test_a_nearly_full_subnet_strands_addresses_an_eni_cannot_use(tmp_path):
    # a /26 has 59 addresses for ENIs: 4 nodes x (eth0 + 9) = 40, one more ENI (10), then 9 left:
    # too few for an ENI with 9 secondary addresses, so pods fail while the subnet still has room
    sc = cloud_scenario(tmp_path, {"cloud": {"subnets": ["10.1.0.0/26"]}, "duration": "5m",
                                   "timing": {"podPendingTimeout": "1m"}})
    r = run(sc, workload(nodes_then_pods(4, 60, gap=1.0), 4), "aws-vpc-cni")
    assert 0 < last(r, "carvable_node_cidrs") < 10 and last(r, "frag_failures") == 0
    assert last(r, "pods_failed") > 0 and last(r, "pods_failed_free_elsewhere") == last(r, "pods_failed")


def test_the_loop_compiles_the_cloud_rules_for_a_cloud_state_only(tmp_path):
    # each rules family is its own State class; a hook compiles to that family's rule (engine/hooks.py)
    from ipam_core.engine import hooks
    from ipam_core.modes import cloud_hooks, cloud_pool, node_cidr
    from ipam_core.pipeline.run import Simulation
    from ipam_core.kernels._jit import kjit

    @kjit
    def period(st):
        return hooks.refresh_period(st)

    sc = cloud_scenario(tmp_path)
    wl = build_workload(sc)
    pool = Simulation(scenario_for_mode(sc, "cluster-pool"), wl, "cluster-pool").state
    eni = Simulation(scenario_for_mode(sc, "eni"), wl, "eni").state
    assert type(pool) is node_cidr.NodeCidrState and type(eni) is cloud_hooks.CiliumOperatorState
    assert period(pool) == 0.0  # the node-CIDR family has no periodic pass
    assert period(eni) == cloud_pool.cloud_period(eni) > 0.0  # the real rule: ENI operator resync
