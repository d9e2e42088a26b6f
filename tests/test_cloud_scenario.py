"""Scenario keys of the cloud modes: defaults, upstream vocabulary, one-line errors."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from ipam_core.errors import ConfigError
from ipam_core.modes import REGISTRY, get_mode
from ipam_core.scenario import ALL_MODES, CLOUD_MODES, load_scenario, scenario_for_mode

BASE = "name: t\nworkload: {generator: steady-churn}\n"


def load(extra: str = ""):
    return load_scenario(BASE + textwrap.dedent(extra))


def test_cloud_modes_are_registered_and_accepted():
    assert set(CLOUD_MODES) <= set(ALL_MODES) and set(CLOUD_MODES) <= set(REGISTRY)
    s = load("cilium: {ipam: {mode: azure}}\ncloud: {subnets: [10.1.0.0/20]}\n")
    assert s.ipam.mode == "azure"
    for mode in CLOUD_MODES:
        assert get_mode(mode).NAME == mode and get_mode(mode).UPSTREAM


def test_cloud_defaults_are_upstreams():
    c = load().ipam.cloud
    assert c.instance_type == "m5.large"  # eksctl's default node type
    assert c.subnets == ("10.0.0.0/8",) and c.subnets_derived  # the cluster-pool list, as multi-pool derives its pool
    w = c.watermarks
    assert (w.pre_allocate, w.min_allocate, w.max_allocate, w.max_above_watermark) == (None, 0, 0, 0)
    assert (c.eni.prefix_delegation, c.eni.release_excess_ips, c.eni.first_interface_index) == (False, False, 0)
    v = c.vpc_cni  # ipamd.go defaults; WARM_PREFIX_TARGET 1 as the aws-node manifest sets it
    assert (v.warm_eni_target, v.warm_ip_target, v.minimum_ip_target, v.warm_prefix_target) == (1, 0, 0, 1)
    assert not v.prefix_delegation and v.max_eni is None
    assert c.aks_mode == "" and c.crd_writer == "watermark" and c.gke_max_pods is None
    t = load().timing
    assert (t.excess_ip_release_delay_s, t.ipam_resync_interval_s) == (180, 60)
    assert (t.ipamd_pool_interval_s, t.ipamd_decrease_interval_s, t.cns_refresh_delay_s) == (5, 30, 1)


def test_upstream_vocabulary_is_read():
    s = load("""
        cluster: {instanceType: t3.small, kubelet: {maxPods: 40}}
        cilium:
          eni: {enabled: true, awsEnablePrefixDelegation: true, awsReleaseExcessIPs: true, firstInterfaceIndex: 1}
          azure: {enabled: true, resourceGroup: rg}
          ipam: {operator: {preAllocate: 16, minAllocate: 10, maxAllocate: 60, maxAboveWatermark: 4}}
        cloud:
          subnets: [10.1.0.0/20, 10.1.16.0/20]
          awsVpcCni: {WARM_ENI_TARGET: "0", WARM_IP_TARGET: 5, MINIMUM_IP_TARGET: "10", ENABLE_PREFIX_DELEGATION: "true",
                      MAX_ENI: 2}
          aks: {podIPAllocationMode: StaticBlock}
          crd: {poolPerNode: 24}
          gke: {maxPodsPerNode: 64}
        timing: {excessIPReleaseDelay: 0s, ipamdPoolInterval: 2s}
    """)
    c = s.ipam.cloud
    assert c.instance_type == "t3.small" and c.kubelet_max_pods == 40
    assert c.subnets == ("10.1.0.0/20", "10.1.16.0/20") and not c.subnets_derived
    assert (c.eni.prefix_delegation, c.eni.release_excess_ips, c.eni.first_interface_index) == (True, True, 1)
    w = c.watermarks
    assert (w.pre_allocate, w.min_allocate, w.max_allocate, w.max_above_watermark) == (16, 10, 60, 4)
    v = c.vpc_cni
    assert (v.warm_eni_target, v.warm_ip_target, v.minimum_ip_target, v.prefix_delegation, v.max_eni) == (0, 5, 10, True, 2)
    assert c.aks_mode == "StaticBlock" and (c.crd_writer, c.crd_pool_per_node) == ("static", 24)
    assert c.gke_max_pods == 64
    assert s.timing.excess_ip_release_delay_s == 0 and s.timing.ipamd_pool_interval_s == 2


BAD = [
    ("cloud: {subnet: [10.1.0.0/20]}", ["cloud.subnet", "unknown key", "'subnets'"]),
    ("cloud: {subnets: []}", ["cloud.subnets", "[]", "at least one"]),
    ("cloud: {subnets: [10.1.0.0/20, 10.1.8.0/21]}", ["cloud.subnets[1]", "10.1.8.0/21", "overlap"]),
    ("cloud: {subnets: ['fd00::/64']}", ["cloud.subnets[0]", "fd00::/64"]),
    ("cloud: {awsVpcCni: {WARM_IP_TARGETS: 1}}", ["cloud.awsVpcCni.WARM_IP_TARGETS", "'WARM_IP_TARGET'"]),
    ("cloud: {awsVpcCni: {WARM_IP_TARGET: -1}}", ["cloud.awsVpcCni.WARM_IP_TARGET", "-1", ">= 0"]),
    ("cloud: {awsVpcCni: {ENABLE_PREFIX_DELEGATION: yes-please}}", ["ENABLE_PREFIX_DELEGATION", "'yes-please'"]),
    ("cloud: {awsVpcCni: {ENABLE_PREFIX_DELEGATION: true, WARM_PREFIX_TARGET: 0}}",
     ["cloud.awsVpcCni.WARM_PREFIX_TARGET", "0", "not supported"]),
    ("cloud: {aks: {podIPAllocationMode: Dynamic}}", ["cloud.aks.podIPAllocationMode", "'Dynamic'", "DynamicIndividual"]),
    ("cloud: {crd: {writer: operator}}", ["cloud.crd.writer", "'operator'", "static, watermark"]),
    ("cloud: {crd: {writer: watermark, poolPerNode: 8}}", ["cloud.crd.poolPerNode", "8", "writer: static"]),
    ("cloud: {crd: {poolPerNode: 0}}", ["cloud.crd.poolPerNode", "0", ">= 1"]),
    ("cloud: {gke: {maxPods: 8}}", ["cloud.gke.maxPods", "'maxPodsPerNode'"]),
    ("cilium: {eni: {awsEnablePrefixDelegation: 1}}", ["cilium.eni.awsEnablePrefixDelegation", "1", "true or false"]),
    ("cilium: {eni: {firstInterfaceIdx: 1}}", ["cilium.eni.firstInterfaceIdx", "'firstInterfaceIndex'"]),
    ("cilium: {ipam: {operator: {preAllocate: -8}}}", ["cilium.ipam.operator.preAllocate", "-8", ">= 0"]),
    ("cilium: {ipam: {operator: {minAllocate: 20, maxAllocate: 10}}}", ["cilium.ipam.operator.minAllocate", "20", "<= maxAllocate"]),
    ("cluster: {instanceType: 5}", ["cluster.instanceType", "5", "instance type"]),
    ("timing: {excessIPReleaseDelay: soon}", ["timing.excessIPReleaseDelay", "'soon'"]),
    # checks of one mode, when the scenario names it
    ("modes: [eni]\ncluster: {instanceType: m5.larg}\ncloud: {subnets: [10.1.0.0/20]}",
     ["cluster.instanceType", "'m5.larg'", "'m5.large'", "(needed by mode eni)"]),
    ("modes: [eni]", ["clusterPoolIPv4PodCIDRList", "'10.0.0.0/8' is a /8", "/16 to /28", "cloud.subnets"]),
    ("modes: [aws-vpc-cni]\ncloud: {subnets: [10.1.0.0/29]}", ["cloud.subnets[0]", "/29", "/16 to /28"]),
    ("modes: [eni]\ncloud: {subnets: [10.1.0.0/20]}\ncilium: {eni: {firstInterfaceIndex: 3}}",
     ["cilium.eni.firstInterfaceIndex", "3", "at most 2"]),
    ("modes: [azure]\ncloud: {subnets: [10.1.0.0/20]}\ncilium: {ipv6: {enabled: true}}",
     ["cilium.ipv6.enabled", "IPv4", "mode azure"]),
    ("modes: [crd]\ncloud: {crd: {writer: static}}", ["cloud.crd.writer", "'static'", "poolPerNode"]),
    ("modes: [gke]\ncloud: {gke: {maxPodsPerNode: 300}}", ["cloud.gke.maxPodsPerNode", "300", "8 to 256"]),
    ("modes: [gke]\ncluster: {kubelet: {maxPods: 4}}", ["cluster.kubelet.maxPods", "4", "8 to 256"]),
    ("modes: [gke]\ncluster: {kubeControllerManager: {cluster-cidr: 10.244.0.0/26, node-cidr-mask-size: 28}}",
     ["cluster-cidr", "10.244.0.0/26", "/24 node range"]),
]


@pytest.mark.parametrize("extra, needles", BAD, ids=[b[0][:40] for b in BAD])
def test_bad_cloud_input_is_one_line_naming_key_and_value(extra, needles):
    doc = yaml.safe_load(BASE)
    doc.update(yaml.safe_load(extra))
    with pytest.raises(ConfigError) as info:
        load_scenario(yaml.safe_dump(doc, sort_keys=False))
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_errors_carry_file_and_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(BASE + "cloud:\n  awsVpcCni:\n    WARM_IP_TARGET: many\n")
    with pytest.raises(ConfigError, match=r"s.yaml:5: cloud.awsVpcCni.WARM_IP_TARGET: 'many'"):
        load_scenario(path)


def test_scenario_for_mode_checks_each_cloud_mode():
    s = load("cloud: {subnets: [10.1.0.0/20]}\n")
    for mode in CLOUD_MODES:
        assert scenario_for_mode(s, mode).ipam.mode == mode
    wide = load()  # derived 10.0.0.0/8: fine for azure and crd, not an AWS subnet
    assert scenario_for_mode(wide, "azure").ipam.mode == "azure"
    with pytest.raises(ConfigError, match="expected an AWS subnet"):
        scenario_for_mode(wide, "aws-vpc-cni")


def test_instance_limits_file_is_used(tmp_path):
    csv = tmp_path / "limits.csv"
    csv.write_text("instance_type,enis,ipv4_per_eni,max_pods,max_pods_custom_networking,"
                   "max_pods_prefix_delegation_uncapped,network_cards,default_card_max_enis,hypervisor,is_bare_metal\n"
                   "x9.tiny,2,3,6,4,66,1,2,nitro,false\n")
    s = load(f"cluster: {{instanceType: x9.tiny}}\ncloud: {{subnets: [10.1.0.0/20], instanceLimitsFile: '{csv}'}}\n")
    assert scenario_for_mode(s, "eni").ipam.cloud.instance_type == "x9.tiny"
    with pytest.raises(ConfigError, match="unknown EC2 instance type 'x9.tiny'"):
        scenario_for_mode(load("cluster: {instanceType: x9.tiny}\ncloud: {subnets: [10.1.0.0/20]}\n"), "eni")
