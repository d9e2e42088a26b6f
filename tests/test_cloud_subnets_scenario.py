"""Scenario keys of several subnets and zones, node groups, shared subnets and reservations (issue #12 items 1-2)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from ipam_core.cli import app
from ipam_core.cloud.placement import deal_nodes, shared_offsets, zone_of_nodes
from ipam_core.errors import ConfigError
from ipam_core.modes import get_mode
from ipam_core.engine.cloud_config import PICK_CILIUM, PICK_DISCOVERY, PICK_FLAGGED, PICK_NODE_SUBNET
from ipam_core.engine.cloud_net import cloud_net
from ipam_core.scenario import load_scenario, scenario_for_mode
from test_cloud_scenario import test_bad_cloud_input_is_one_line_naming_key_and_value as refused_in_one_line

BASE = "name: t\nworkload: {generator: steady-churn}\n"
NET = """
cloud:
  subnets:
    - {cidr: 10.1.0.0/20, id: subnet-a, zone: us-east-1a, tags: {tier: nodes}}
    - {cidr: 10.1.16.0/20, id: subnet-b, zone: us-east-1b, tags: {tier: nodes}}
    - cidr: 10.1.32.0/20
      id: pods-a
      zone: us-east-1a
      tags: {tier: pods, kubernetes.io/role/cni: "1"}
      sharedUsed: 0.25
      reservations: [{cidr: 10.1.40.0/21, type: prefix}, {cidr: 10.1.36.0/24, type: explicit}]
  nodeGroups:
    - {name: small, instanceType: t3.small, nodes: 3, zones: [us-east-1a, us-east-1b], nodeSubnetTags: {tier: nodes}}
    - {name: big, instanceType: m5.4xlarge, share: 1, zone: us-east-1a, nodeSubnetIds: [subnet-a],
       subnetTags: {tier: pods}}
"""


def load(extra: str = ""):
    return load_scenario(BASE + textwrap.dedent(extra))


def test_subnet_mappings_and_node_groups_are_read():
    c = load(NET).ipam.cloud
    assert c.subnets == ("10.1.0.0/20", "10.1.16.0/20", "10.1.32.0/20")
    a, b, pods = c.subnet_specs
    assert (a.id, a.zone, dict(a.tags)) == ("subnet-a", "us-east-1a", {"tier": "nodes"})
    assert pods.shared_used == 0.25 and [(r.cidr, r.kind) for r in pods.reservations] == [
        ("10.1.40.0/21", "prefix"), ("10.1.36.0/24", "explicit")]
    small, big = c.node_groups
    assert (small.instance_type, small.weight, small.zones) == ("t3.small", 3.0, ("us-east-1a", "us-east-1b"))
    assert (big.zones, big.node_subnet_ids, dict(big.subnet_tags)) == (("us-east-1a",), ("subnet-a",),
                                                                          {"tier": "pods"})


def test_plain_cidr_strings_stay_valid_each_its_own_zone():
    c = load("cloud: {subnets: [10.1.0.0/20, 10.1.16.0/20]}").ipam.cloud
    assert [(s.id, s.zone) for s in c.subnet_specs] == [("subnet-0", "zone-0"), ("subnet-1", "zone-1")]
    assert c.node_groups == ()


def test_each_group_resolves_its_own_instance_limits_and_subnet_rule():
    s = load(NET + "modes: [eni, aws-vpc-cni]\n")
    net = cloud_net(get_mode("eni"), scenario_for_mode(s, "eni"))
    small, big = net.configs
    assert (small.ifaces, small.units) == (3, 3) and (big.ifaces, big.units) == (8, 29)  # t3.small, m5.4xlarge
    assert net.merged().ifaces == 8 and net.merged().units == 29
    assert net.pick == (PICK_CILIUM, PICK_CILIUM)
    assert net.flagged[1].tolist() == [False, False, True] and not net.flagged[0].any()  # subnetTags tier: pods
    assert net.launch[1].tolist() == [True, False, False] and net.launch[0].tolist() == [True, True, False]
    vpc = cloud_net(get_mode("aws-vpc-cni"), scenario_for_mode(s, "aws-vpc-cni"))
    assert vpc.pick == (PICK_DISCOVERY, PICK_DISCOVERY)  # ENABLE_SUBNET_DISCOVERY's default
    assert vpc.flagged[0].tolist() == [False, False, True]  # the kubernetes.io/role/cni subnet
    doc = yaml.safe_load(BASE + NET)
    doc["modes"] = ["aws-vpc-cni"]
    doc["cloud"]["awsVpcCni"] = {"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": True, "eniConfigs": {"us-east-1a": "pods-a"}}
    custom = load_scenario(yaml.safe_dump(doc))
    net = cloud_net(get_mode("aws-vpc-cni"), scenario_for_mode(custom, "aws-vpc-cni"))
    assert net.pick[0] == PICK_FLAGGED and net.flagged[0].tolist() == [False, False, True]
    assert net.configs[0].first_iface == 1  # eth0 holds no pod address under custom networking
    azure = cloud_net(get_mode("azure"), scenario_for_mode(s, "azure"))
    assert azure.pick == (PICK_NODE_SUBNET, PICK_NODE_SUBNET)


def test_nodes_are_dealt_by_weight_and_round_robin_over_zones():
    group = deal_nodes([3, 1], 8)
    assert np.bincount(group).tolist() == [6, 2]  # 3:1
    assert group[:4].tolist().count(1) == 1  # interleaved, not a block at the end
    zones = zone_of_nodes(group, [np.array([0, 1]), np.array([0])])
    assert zones[group == 0].tolist() == [0, 1, 0, 1, 0, 1] and set(zones[group == 1]) == {0}
    assert np.bincount(deal_nodes([5, 3, 2], 10)).tolist() == [5, 3, 2]  # counts summing to the nodes: exact


def test_shared_addresses_are_seeded_and_drawn_from_the_free_ones():
    free = np.arange(5, 200, dtype=np.int64)
    a = shared_offsets(0.3, free, 7, 1)
    assert a.shape[0] == round(0.3 * free.shape[0]) and set(a) <= set(free.tolist())
    assert a.tolist() == shared_offsets(0.3, free, 7, 1).tolist()
    assert a.tolist() != shared_offsets(0.3, free, 8, 1).tolist()  # another seed, another placement


BAD = [
    ("cloud: {subnets: [5]}", ["cloud.subnets[0]", "5", "a subnet CIDR or a mapping"]),
    ("cloud: {subnets: [{zone: a}]}", ["cloud.subnets[0].cidr", "missing", "IPv4 CIDR"]),
    ("cloud: {subnets: [{cidr: 10.1.0.0/20, zones: a}]}", ["cloud.subnets[0].zones", "unknown key", "'zone'"]),
    ("cloud: {subnets: [{cidr: 10.1.0.0/20, sharedUsed: 1.5}]}",
     ["cloud.subnets[0].sharedUsed", "1.5", "fraction from 0 to below 1"]),
    ("cloud: {subnets: [{cidr: 10.1.0.0/20, sharedUsed: lots}]}", ["cloud.subnets[0].sharedUsed", "'lots'"]),
    ("cloud: {subnets: [{cidr: 10.1.0.0/20, id: x}, {cidr: 10.1.16.0/20, id: x}]}",
     ["cloud.subnets[1].id", "'x'", "unique ids"]),
    ("cloud: {subnets: [{cidr: 10.1.0.0/20, tags: {a: [1]}}]}", ["cloud.subnets[0].tags.a", "[1]", "tag value"]),
    ("cloud: {subnets: [{cidr: 10.1.0.0/20, reservations: [{cidr: 10.2.0.0/24, type: prefix}]}]}",
     ["cloud.subnets[0].reservations[0].cidr", "10.2.0.0/24", "inside"]),
    ("cloud: {subnets: [{cidr: 10.1.0.0/20, reservations: [{cidr: 10.1.0.0/24, type: shared}]}]}",
     ["cloud.subnets[0].reservations[0].type", "'shared'", "prefix, explicit"]),
    ("cloud: {subnets: [{cidr: 10.1.0.0/20, reservations: [{cidr: 10.1.0.0/29, type: prefix}]}]}",
     ["cloud.subnets[0].reservations[0].cidr", "10.1.0.0/29", "/28 or larger"]),
    ("cloud: {subnets: [{cidr: 10.1.0.0/20, reservations: [{cidr: 10.1.0.0/24}]}]}",
     ["cloud.subnets[0].reservations[0].type", "missing"]),
    ("cloud: {subnets: [{cidr: 10.1.0.0/20, reservations: [{cidr: 10.1.0.0/24, type: prefix}, "
     "{cidr: 10.1.0.0/25, type: explicit}]}]}", ["reservations[1].cidr", "10.1.0.0/25", "overlap"]),
    ("cloud: {subnets: [{cidr: 10.1.0.0/20, sharedUsedFile: /nonexistent/list.txt}]}",
     ["cloud.subnets[0].sharedUsedFile", "/nonexistent/list.txt", "cannot read"]),
    ("cloud: {subnets: [10.1.0.0/20], nodeGroups: []}", ["cloud.nodeGroups", "[]", "at least one node group"]),
    ("cloud: {subnets: [10.1.0.0/20], nodeGroups: [{nodes: 0}]}", ["cloud.nodeGroups[0].nodes", "0", "> 0"]),
    ("cloud: {subnets: [10.1.0.0/20], nodeGroups: [{nodes: 2.5}]}", ["cloud.nodeGroups[0].nodes", "2.5", "whole"]),
    ("cloud: {subnets: [10.1.0.0/20], nodeGroups: [{nodes: 2, share: 1}]}", ["cloud.nodeGroups[0].share", "nodes"]),
    ("cloud: {subnets: [10.1.0.0/20], nodeGroups: [{zone: mars}]}",
     ["cloud.nodeGroups[0].zone", "'mars'", "zone-0"]),
    ("cloud: {subnets: [10.1.0.0/20], nodeGroups: [{zone: a, zones: [a]}]}", ["cloud.nodeGroups[0].zones", "zone"]),
    ("cloud: {subnets: [10.1.0.0/20], nodeGroups: [{subnetIds: [subnet-9]}]}",
     ["cloud.nodeGroups[0].subnetIds[0]", "'subnet-9'", "subnet-0"]),
    ("cloud: {subnets: [10.1.0.0/20], nodeGroups: [{nodeSubnetTags: {tier: x}}]}",
     ["cloud.nodeGroups[0].nodeSubnetTags", "tier", "matches no subnet"]),
    ("cloud: {subnets: [10.1.0.0/20, 10.1.16.0/20], nodeGroups: [{nodeSubnetIds: [subnet-0], zone: zone-1}]}",
     ["cloud.nodeGroups[0].zone", "'zone-1'", "none of the group's node subnets"]),
    ("cloud: {subnets: [10.1.0.0/20], nodeGroups: [{name: a}, {name: a}]}", ["cloud.nodeGroups[1].name", "'a'"]),
    ("cloud: {subnets: [10.1.0.0/20], nodeGroups: [{colour: red}]}", ["cloud.nodeGroups[0].colour", "unknown key"]),
    ("modes: [eni]\ncloud: {subnets: [10.1.0.0/20], nodeGroups: [{instanceType: m5.larg}]}",
     ["cloud.nodeGroups[0].instanceType", "'m5.larg'", "(needed by mode eni)"]),
    ("modes: [eni]\ncilium: {eni: {firstInterfaceIndex: 3}}\n"
     "cloud: {subnets: [10.1.0.0/20], nodeGroups: [{instanceType: m5.4xlarge}, {instanceType: t3.small}]}",
     ["cilium.eni.firstInterfaceIndex", "3", "t3.small"]),
    ("cloud: {subnets: [10.1.0.0/20], awsVpcCni: {AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: true}}",
     ["cloud.awsVpcCni.AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "eniConfigs"]),
    ("cloud: {subnets: [10.1.0.0/20], awsVpcCni: {eniConfigs: {zone-0: subnet-7}}}",
     ["cloud.awsVpcCni.eniConfigs.zone-0", "'subnet-7'", "subnet-0"]),
    ("cloud: {subnets: [10.1.0.0/20, 10.1.16.0/20], awsVpcCni: {eniConfigs: {zone-0: subnet-1}}}",
     ["cloud.awsVpcCni.eniConfigs.zone-0", "'subnet-1'", "zone 'zone-1'"]),
]


@pytest.mark.parametrize("extra, needles", BAD, ids=[b[0][:50] for b in BAD])
def test_bad_network_input_is_one_line_naming_key_and_value(extra, needles):
    refused_in_one_line(extra, needles)


def test_shared_used_file_lines_are_checked(tmp_path):
    listing = tmp_path / "others.txt"
    listing.write_text("10.1.0.10\n# a load balancer\n10.1.0.32/28\n10.9.0.1\n")
    text = BASE + "cloud: {subnets: [{cidr: 10.1.0.0/20, sharedUsedFile: others.txt}]}\n"
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert "others.txt:4" in str(info.value) and "10.9.0.1" in str(info.value) and "\n" not in str(info.value)
    listing.write_text("10.1.0.10\n10.1.0.32/28\n")
    assert load_scenario(path).ipam.cloud.subnet_specs[0].shared_used_file == str(listing)  # relative to the file


def test_cli_refuses_bad_node_groups_with_exit_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "modes: [eni]\ncloud: {subnets: [10.1.0.0/20], nodeGroups: [{nodes: -1}]}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(bad), "--out", str(out), "--no-plot"])
    assert result.exit_code == 2
    assert "cloud.nodeGroups[0].nodes" in result.output and "-1" in result.output
    assert "Traceback" not in result.output and not out.exists()
