"""Several subnets and zones, node groups, shared subnets and reservations: engine against the oracle.

The oracle (``bench/baseline_cloud.py``) holds the new rules in plain Python: a node's
launch subnet (the most free of its group's subnets in its zone), an ENI's subnet (cilium
``findSuitableSubnet``; ipamd subnet discovery and ENIConfig), per-group instance limits and
max pods, shared addresses and explicit reservations taken at the start, and prefix
reservations that give no single address and give their /28s first. Each case checks both
traces are equal at every sample and that the case exercises what it is named for, read
from the oracle's state (which subnet each ENI went to) as well as the trace.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_cloud_vs_baseline import (BURST, CHURN, _compiled, check_exercised, cloud_scenario, compare,  # noqa: F401
                                    workload_of)

from ipam_core.engine import tables as T
from ipam_core.engine.check import check_invariants
from ipam_core.pipeline.run import run_mode
from ipam_core.scenario import scenario_for_mode

A, B = "us-east-1a", "us-east-1b"


def subnets(*entries):
    return {"cloud": {"subnets": list(entries)}}


def net(extra_cloud: dict, *entries) -> dict:
    doc = subnets(*entries)
    doc["cloud"].update(extra_cloud)
    return doc


def enis_off_home(oracle) -> int:
    """ENIs (beyond eth0) that went to a subnet other than their node's."""
    return sum(1 for n in oracle.cloud.nodes.values() for i in n.attached() if i.index > 0 and i.subnet != n.subnet)


ZONES = [
    {"cidr": "10.1.0.0/26", "id": "nodes-a", "zone": A, "tags": {"tier": "nodes"}},
    {"cidr": "10.1.1.0/24", "id": "pods-a", "zone": A, "tags": {"tier": "pods", "kubernetes.io/role/cni": "1"}},
    {"cidr": "10.1.2.0/24", "id": "nodes-b", "zone": B, "tags": {"tier": "nodes"}},
]
GROUPS = [
    {"name": "small", "instanceType": "t3.small", "nodes": 2, "zones": [A, B], "nodeSubnetTags": {"tier": "nodes"}},
    {"name": "big", "instanceType": "m5.large", "nodes": 2, "zone": A, "nodeSubnetIds": ["nodes-a"],
     "subnetTags": {"tier": "pods"}},
]


def test_eni_groups_put_enis_in_the_tagged_subnet_of_their_zone():
    s = cloud_scenario("eni-groups", nodes=4, instance="m5.large", max_pods=20,
                       workload={**CHURN, "podsPerNode": 14}, patch=net({"nodeGroups": GROUPS}, *ZONES))
    trace, oracle = compare(s, "eni")
    check_exercised(trace, {"attach"}, "eni-groups")
    big = [n for n in oracle.cloud.nodes.values() if n.group == 1]
    assert big and all(i.subnet == 1 for n in big for i in n.attached() if i.index > 0)  # pods-a, by tag
    small = [n for n in oracle.cloud.nodes.values() if n.group == 0]
    assert {n.subnet for n in small} == {0, 2}  # one per zone, in the node subnets


def test_eni_without_filter_leaves_a_full_node_subnet_for_the_zones_freest():
    # a /27 node subnet: after eth0 and its addresses fewer than limits.IPv4 (10 on m5.large) remain free,
    # so findSuitableSubnet falls through to the zone's subnet with most free addresses
    entries = [{"cidr": "10.1.0.0/27", "zone": A}, {"cidr": "10.1.1.0/24", "zone": A}]
    groups = [{"instanceType": "m5.large", "nodeSubnetIds": ["subnet-0"]}]
    s = cloud_scenario("eni-spill", nodes=2, instance="m5.large", max_pods=25,
                       workload={**CHURN, "podsPerNode": 20}, patch=net({"nodeGroups": groups}, *entries))
    trace, oracle = compare(s, "eni")
    check_exercised(trace, {"attach"}, "eni-spill")
    assert enis_off_home(oracle) > 0


def test_vpc_subnet_discovery_and_heterogeneous_max_pods():
    groups = [{"instanceType": "t3.small", "nodes": 2, "zones": [A, B], "nodeSubnetTags": {"tier": "nodes"}},
              {"instanceType": "m5.large", "nodes": 1, "zone": A, "nodeSubnetIds": ["nodes-a"]}]
    s = cloud_scenario("vpc-discovery", nodes=3, instance="m5.large", scheduler="pack",
                       workload={**CHURN, "podsPerNode": 16}, patch=net({"nodeGroups": groups}, *ZONES))
    trace, oracle = compare(s, "aws-vpc-cni")
    check_exercised(trace, {"attach"}, "vpc-discovery")
    assert enis_off_home(oracle) > 0  # the kubernetes.io/role/cni subnet has more free than the /26
    assert {n.max_pods for n in oracle.nodes} == {11, 29}  # t3.small and m5.large, eni-max-pods.txt


def test_vpc_custom_networking_uses_the_zones_eniconfig():
    s = cloud_scenario("vpc-custom", nodes=3, instance="m5.large", workload=BURST, duration="12m",
                       patch=net({"awsVpcCni": {"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": True,
                                                "eniConfigs": {A: "pods-a", B: "nodes-b"}}}, *ZONES))
    trace, oracle = compare(s, "aws-vpc-cni")
    check_exercised(trace, {"attach"}, "vpc-custom")
    for n in oracle.cloud.nodes.values():
        assert not n.ifaces[0].units()  # eth0 holds no pod address
        zone = oracle.cloud.subnets[n.subnet].zone
        assert all(i.subnet == (1 if zone == 0 else 2) for i in n.attached() if i.index > 0)


SHARED = {"cidr": "10.1.0.0/24", "zone": A, "sharedUsed": 0.35}


@pytest.mark.parametrize("mode, pd_patch", [
    ("eni", {"cilium": {"eni": {"awsEnablePrefixDelegation": True}}}),
    ("aws-vpc-cni", {"cloud": {"awsVpcCni": {"ENABLE_PREFIX_DELEGATION": True}}}),
])
def test_shared_subnet_fragments_prefixes_and_a_prefix_reservation_fixes_it(mode, pd_patch):
    def run(reserve: bool):
        entry = dict(SHARED, reservations=[{"cidr": "10.1.0.128/25", "type": "prefix"}] if reserve else [])
        patch = net({}, entry)
        for key, value in pd_patch.items():
            patch.setdefault(key, {}).update(value)
        s = cloud_scenario(f"{mode}-shared-{reserve}", nodes=3, instance="m5.large", max_pods=40,
                           workload={**CHURN, "podsPerNode": 12}, patch=patch)
        return compare(s, mode)

    fragmented, oracle = run(False)
    check_exercised(fragmented, {"frag"}, f"{mode}-shared")
    reserved, oracle_r = run(True)
    assert reserved["frag_failures"][-1] < fragmented["frag_failures"][-1]
    assert reserved["prefixes"].max() > fragmented["prefixes"].max()
    sub = oracle_r.cloud.subnets[0]
    held = [u for n in oracle_r.cloud.nodes.values() for u in n.units()]
    assert all(u.offset >= 128 for u in held if u.size > 1)  # prefixes from the reservation
    assert all(not sub.in_prefix_range(u.offset) for u in held if u.size == 1)  # singles never in it


def test_explicit_reservation_and_shared_list_are_taken(tmp_path):
    listing = tmp_path / "others.txt"
    listing.write_text("10.1.0.64/27\n10.1.0.200\n")
    entry = {"cidr": "10.1.0.0/24", "zone": A, "sharedUsedFile": str(listing),
             "reservations": [{"cidr": "10.1.0.0/26", "type": "explicit"}]}
    s = cloud_scenario("crd-listed", nodes=3, max_pods=30, workload={**CHURN, "podsPerNode": 10},
                       patch={**net({}, entry), "cloud": {**net({}, entry)["cloud"], "crd": {"poolPerNode": 20}}})
    trace, oracle = compare(s, "crd")
    taken = set().union(*(range(u.offset, u.offset + u.size) for n in oracle.cloud.nodes.values() for u in n.units()))
    assert taken and min(taken) >= 64 and not taken & (set(range(64, 96)) | {200})
    # the 64 reserved, 33 listed addresses count as reserved from the start
    assert trace["addrs_reserved"][0] >= 64 + 33
    assert np.all(trace["addrs_carved"] >= 97)


@pytest.mark.parametrize("mode", ["eni", "aws-vpc-cni", "azure", "crd"])
def test_invariants_hold_with_groups_sharing_and_reservations(mode):
    entries = [dict(ZONES[0]), dict(ZONES[1], sharedUsed=0.2,
                                     reservations=[{"cidr": "10.1.1.128/26", "type": "prefix"},
                                                   {"cidr": "10.1.1.0/28", "type": "explicit"}]), dict(ZONES[2])]
    s = scenario_for_mode(cloud_scenario("invariants", nodes=4, instance="m5.large",
                                         workload={**CHURN, "podsPerNode": 14},
                                         patch=net({"nodeGroups": GROUPS}, *entries)), mode)
    result = run_mode(s, workload_of(s), mode)
    assert check_invariants(result.state) == []
    n = result.state.core.nodes.shape[0]
    others = result.state.cl_node[n + 1, T.CS_OTHERS]  # the shared subnet's row below the nodes
    # the explicit /28 less the cloud's first four, + 20 % of what lies outside reservations and the cloud's last
    # (a crd pool has no cloud reservation)
    low, high = (0, 0) if mode == "crd" else (4, 1)
    assert others == 16 - low + round(0.2 * (256 - 16 - 64 - high))
