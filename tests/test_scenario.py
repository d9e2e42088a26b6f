"""Scenario files: upstream defaults, shipped files, validation messages, pool selection, durations."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ipam_core.errors import AllocatorError, ConfigError
from ipam_core.scenario import (KNOWN_MODES, LabelRequirement, LabelSelector, NamespaceSpec, PoolSelectionError,
                                builtin_scenarios, load_scenario, parse_duration, parse_scenario, scenario_for_mode,
                                select_pool)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "scenarios").glob("*.yaml"))
BASE = "name: t\nworkload: {generator: steady-churn}\n"


def load(extra: str = ""):
    return load_scenario(BASE + textwrap.dedent(extra))


# ---------------------------------------------------------------- defaults
def test_defaults_are_upstreams():
    s = load()
    ipam = s.ipam
    # Cilium Helm values.yaml
    assert ipam.mode == "cluster-pool"
    assert (ipam.ipv4, ipam.ipv6, ipam.health_ip) == (True, False, True)
    assert ipam.cluster_pool_v4 == ("10.0.0.0/8",) and ipam.cluster_pool_v4_mask == 24
    assert ipam.cluster_pool_v6 == ("fd00::/104",) and ipam.cluster_pool_v6_mask == 120
    # cilium pkg/defaults: --ipam-multi-pool-pre-allocation=default=8, --ipam-default-ip-pool=default
    assert dict(ipam.pre_allocation) == {"default": 8}
    assert ipam.default_pool == "default"
    # kube-controller-manager core.go defaults 24 / 64; kind's pod subnet for the enabled family
    assert (ipam.kcm_node_mask_v4, ipam.kcm_node_mask_v6) == (24, 64)
    assert ipam.kcm_cluster_cidrs == ("10.244.0.0/16",)
    # kubelet maxPods
    assert s.cluster.max_pods == 110
    # ciliumNodeUpdateRate 15 s, multi-pool refresh 1 min, pending allocation TTL 5 min, operator trigger 1 s
    t = s.timing
    assert (t.cilium_node_update_rate_s, t.multi_pool_refresh_s, t.pending_allocation_ttl_s) == (15, 60, 300)
    assert t.operator_sync_interval_s == 1
    assert s.modes == ("kubernetes", "cluster-pool", "multi-pool")
    assert s.sample_interval_s == 10 and s.node_sample_interval_s == 60
    assert s.seed == 0 and s.steps == ()


def test_default_multi_pool_pool_is_built_from_cluster_pool_values():
    s = load("cilium: {ipv6: {enabled: true}}\n")
    (pool,) = s.ipam.pools
    assert s.ipam.pools_derived
    assert (pool.name, pool.ipv4_cidrs, pool.ipv4_mask_size) == ("default", ("10.0.0.0/8",), 24)
    assert (pool.ipv6_cidrs, pool.ipv6_mask_size) == (("fd00::/104",), 120)
    assert not pool.has_selector
    # dual-stack without cluster-cidr: both kind pod subnets
    assert s.ipam.kcm_cluster_cidrs == ("10.244.0.0/16", "fd00:10:244::/56")


def test_disabled_family_gets_no_derived_pool_cidrs():
    (pool,) = load().ipam.pools
    assert pool.ipv6_cidrs == () and pool.ipv6_mask_size is None


# ---------------------------------------------------------------- shipped files
@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenario_loads_for_each_of_its_modes(path):
    s = load_scenario(path)
    assert s.name == path.stem
    assert s.source_path == path.resolve()
    assert s.source_text == path.read_text()
    for mode in s.modes:
        assert scenario_for_mode(s, mode).ipam.mode == mode


def test_expected_examples_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert {"cluster-pool-exhaustion", "multi-pool-teams", "dual-stack", "kcm-host-scope", "cl2-load",
            "scale-limits"} <= names


def test_builtin_default_is_small_and_runs_every_mode():
    assert "default" in builtin_scenarios()
    s = load_scenario("default")
    assert s.cluster.nodes == 32 and s.duration_s == 1200
    assert set(s.modes) == set(KNOWN_MODES)


def test_scale_limits_matches_the_kubernetes_thresholds():
    s = load_scenario(REPO / "scenarios" / "scale-limits.yaml")
    assert s.cluster.nodes == 5000 and s.cluster.max_pods == 110
    assert s.cluster.nodes * s.workload.pods_per_node == 150_000


def test_multi_pool_teams_pasted_manifests():
    s = load_scenario(REPO / "scenarios" / "multi-pool-teams.yaml")
    assert [p.name for p in s.ipam.pools] == ["default", "team-a", "team-b"]
    assert s.ipam.pool("team-b").ipv4_cidrs == ("10.30.0.0/22", "10.30.8.0/22")
    assert s.select_pool(4, "team-a") == "team-a"
    assert s.select_pool(4, "web") == "default"
    assert s.select_pool(4, "not-declared") == "default"


# ---------------------------------------------------------------- validation table
POOL = "{{apiVersion: cilium.io/v2alpha1, kind: CiliumPodIPPool, metadata: {{name: {name}}}, spec: {spec}}}"


def pool(name, spec):
    return POOL.format(name=name, spec=spec)


BAD = [
    # unknown keys, anywhere, with the closest known one
    ("unknown-nested", "cilium: {ipam: {operater: {}}}", ["cilium.ipam.operater", "'operator'"]),
    ("unknown-top", "worklaod: {}", ["worklaod", "'workload'"]),
    ("unknown-kcm-flag", "cluster: {kubeControllerManager: {--cluster-cdir: 10.0.0.0/8}}",
     ["--cluster-cdir", "'cluster-cidr'"]),
    ("removed-helm-key", "cilium: {ipam: {operator: {clusterPoolIPv4PodCIDR: 10.0.0.0/8}}}",
     ["clusterPoolIPv4PodCIDR", "clusterPoolIPv4PodCIDRList"]),
    ("unknown-annotation", "manifests: [{apiVersion: v1, kind: Namespace, metadata: {name: a, annotations: "
                           "{ipam.cilium.io/ippool: b}}}]", ['"ipam.cilium.io/ippool"', "ipam.cilium.io/ip-pool"]),
    ("unknown-pool-spec-key", "manifests: [" + pool("a", "{ipv4: {cidrs: [10.1.0.0/16], maskSise: 24}}") + "]",
     ["manifests[0].spec.ipv4.maskSise", "'maskSize'"]),
    # wrong types
    ("type-nodes", "cluster: {nodes: many}", ["cluster.nodes", "'many'", "integer"]),
    ("type-maxpods-string", "cluster: {kubelet: {maxPods: '110'}}", ["cluster.kubelet.maxPods", "'110'"]),
    ("type-enabled", "cilium: {ipv6: {enabled: 'yes'}}", ["cilium.ipv6.enabled", "'yes'", "true or false"]),
    ("type-list", "cilium: {ipam: {operator: {clusterPoolIPv4PodCIDRList: 10.0.0.0/8}}}",
     ["clusterPoolIPv4PodCIDRList", "'10.0.0.0/8'", "list"]),
    ("type-label-value", "manifests: [{apiVersion: v1, kind: Namespace, metadata: {name: a, labels: {tier: 1}}}]",
     ["manifests[0].metadata.labels.tier", "1", "quote"]),
    # bad CIDRs, wrong family
    ("cidr-host-bits", "cilium: {ipam: {operator: {clusterPoolIPv4PodCIDRList: [10.0.0.1/8]}}}",
     ["clusterPoolIPv4PodCIDRList[0]", "10.0.0.1/8", "10.0.0.0/8"]),
    ("cidr-garbage", "cilium: {ipam: {operator: {clusterPoolIPv4PodCIDRList: [10.0.0.0/33]}}}",
     ["clusterPoolIPv4PodCIDRList[0]", "10.0.0.0/33"]),
    ("cidr-no-prefix", "cilium: {ipam: {operator: {clusterPoolIPv4PodCIDRList: [10.0.0.0]}}}",
     ["clusterPoolIPv4PodCIDRList[0]", "'10.0.0.0'", "prefix"]),
    ("cidr-wrong-family", "cilium: {ipam: {operator: {clusterPoolIPv4PodCIDRList: ['fd00::/104']}}}",
     ["clusterPoolIPv4PodCIDRList[0]", "fd00::/104", "IPv4"]),
    ("pool-wrong-family", "manifests: [" + pool("a", "{ipv6: {cidrs: [10.1.0.0/16], maskSize: 24}}") + "]",
     ["manifests[0].spec.ipv6.cidrs[0]", "10.1.0.0/16", "IPv6"]),
    # overlaps
    ("overlap-cluster-pool", "cilium: {ipam: {operator: {clusterPoolIPv4PodCIDRList: [10.0.0.0/8, 10.1.0.0/16]}}}",
     ["clusterPoolIPv4PodCIDRList[1]", "10.1.0.0/16", "10.0.0.0/8", "overlap"]),
    ("overlap-across-pools", "manifests: [" + pool("a", "{ipv4: {cidrs: [10.1.0.0/16], maskSize: 24}}") + ", "
     + pool("b", "{ipv4: {cidrs: [10.1.128.0/17], maskSize: 24}}") + "]",
     ["manifests[1].spec.ipv4.cidrs[0]", "10.1.128.0/17", "10.1.0.0/16", "not supported"]),
    ("overlap-inside-pool", "manifests: [" + pool("a", "{ipv4: {cidrs: [10.1.0.0/16, 10.1.4.0/24], maskSize: 24}}")
     + "]", ["manifests[0].spec.ipv4.cidrs[1]", "10.1.4.0/24", "10.1.0.0/16"]),
    ("overlap-kcm", "cluster: {kubeControllerManager: {cluster-cidr: '10.0.0.0/16,10.0.0.0/17'}}",
     ["cluster.kubeControllerManager.cluster-cidr", "10.0.0.0/17", "10.0.0.0/16", "overlap"]),
    # impossible masks
    ("mask-shorter-cluster-pool", "cilium: {ipam: {operator: {clusterPoolIPv4MaskSize: 4}}}",
     ["clusterPoolIPv4MaskSize", "4", "10.0.0.0/8"]),
    ("mask-beyond-bits", "cilium: {ipam: {operator: {clusterPoolIPv4MaskSize: 33}}}",
     ["clusterPoolIPv4MaskSize", "33", "32"]),
    ("mask-v6-diff-cluster-pool", "cilium: {ipv6: {enabled: true}, ipam: {operator: "
                                  "{clusterPoolIPv6PodCIDRList: ['fd00::/96'], clusterPoolIPv6MaskSize: 120}}}",
     ["clusterPoolIPv6MaskSize", "120", "fd00::/96", "too big"]),
    ("mask-v6-diff-kcm", "cluster: {kubeControllerManager: {cluster-cidr: 'fd00::/40'}}",
     ["cluster-cidr", "64", "fd00::/40", "too big"]),
    ("mask-shorter-kcm", "cluster: {kubeControllerManager: {cluster-cidr: 10.244.0.0/16, node-cidr-mask-size: 8}}",
     ["node-cidr-mask-size", "8", "10.244.0.0/16"]),
    ("mask-shorter-pool", "manifests: [" + pool("default", "{ipv4: {cidrs: [10.1.0.0/16], maskSize: 12}}") + "]",
     ["manifests[0].spec.ipv4.maskSize", "12", "10.1.0.0/16"]),
    # kube-controller-manager rules
    ("kcm-three-cidrs", "cluster: {kubeControllerManager: {cluster-cidr: '10.0.0.0/16,fd00::/48,10.1.0.0/16'}}",
     ["cluster-cidr", "'10.0.0.0/16,fd00::/48,10.1.0.0/16'", "at most 2"]),
    ("kcm-two-v4", "cluster: {kubeControllerManager: {cluster-cidr: '10.0.0.0/16,10.1.0.0/16'}}",
     ["cluster-cidr", "'10.0.0.0/16,10.1.0.0/16'", "dual-stack"]),
    ("kcm-plain-mask-dual", "cluster: {kubeControllerManager: {cluster-cidr: '10.0.0.0/16,fd00::/48', "
                            "--node-cidr-mask-size: 24}}", ["node-cidr-mask-size", "24", "dual-stack"]),
    ("kcm-plain-and-family", "cluster: {kubeControllerManager: {node-cidr-mask-size: 24, "
                             "node-cidr-mask-size-ipv4: 25}}", ["node-cidr-mask-size-ipv4", "25"]),
    ("kcm-v4-flag-on-v6", "cluster: {kubeControllerManager: {cluster-cidr: 'fd00::/48', "
                          "node-cidr-mask-size-ipv4: 24}}", ["node-cidr-mask-size-ipv4", "24", "single-stack IPv6"]),
    ("kcm-flag-twice", "cluster: {kubeControllerManager: {cluster-cidr: 10.0.0.0/8, --cluster-cidr: 10.0.0.0/8}}",
     ["--cluster-cidr", "twice"]),
    # what a mode needs
    ("cluster-pool-empty", "cilium: {ipam: {operator: {clusterPoolIPv4PodCIDRList: []}}}",
     ["clusterPoolIPv4PodCIDRList", "[]", "must be provided when using ClusterPool"]),
    ("kubernetes-no-v6", "modes: [kubernetes]\ncilium: {ipv6: {enabled: true}, ipam: {mode: kubernetes}}\n"
                         "cluster: {kubeControllerManager: {cluster-cidr: 10.244.0.0/16}}",
     ["cluster-cidr", "'10.244.0.0/16'", "IPv6"]),
    ("kubernetes-no-allocate", "cluster: {kubeControllerManager: {allocate-node-cidrs: false}}",
     ["allocate-node-cidrs", "false"]),
    ("multi-pool-prealloc-missing", "modes: [multi-pool]\nmanifests: ["
     + pool("team", "{ipv4: {cidrs: [10.1.0.0/16], maskSize: 24}}") + "]",
     ["cilium.ipam.multiPoolPreAllocation", "default=8", "'default'"]),
    ("multi-pool-no-v6", "modes: [multi-pool]\n"
                         "cilium: {ipv6: {enabled: true}, ipam: {multiPoolPreAllocation: 'default=0'}}\n"
                         "manifests: [" + pool("default", "{ipv4: {cidrs: [10.1.0.0/16], maskSize: 24}}") + "]",
     ["manifests", "IPv6"]),
    ("families-off", "cilium: {ipv4: {enabled: false}}", ["cilium.ipv4.enabled", "false"]),
    # modes, sizes, durations
    ("unknown-mode", "cilium: {ipam: {mode: alibabacloud}}",
     ["cilium.ipam.mode", "'alibabacloud'", "kubernetes, cluster-pool, multi-pool"]),
    ("unknown-mode-in-modes", "modes: [kubernetes, clusterpool]", ["modes[1]", "'clusterpool'", "'cluster-pool'"]),
    ("modes-twice", "modes: [kubernetes, kubernetes]", ["modes[1]", "'kubernetes'", "twice"]),
    ("nodes-zero", "cluster: {nodes: 0}", ["cluster.nodes", "0", "from 1 to 100,000"]),
    ("max-pods-zero", "cluster: {kubelet: {maxPods: 0}}", ["cluster.kubelet.maxPods", "0", "from 1 to 2,048"]),
    ("duration-zero", "duration: 0", ["duration", "0", "positive"]),
    ("duration-negative", "duration: -5m", ["duration", "'-5m'"]),
    ("sample-zero", "sampleInterval: 0s", ["sampleInterval", "'0s'", "positive"]),
    ("sample-over-duration", "duration: 10s\nsampleInterval: 1m", ["sampleInterval", "'1m'", "duration"]),
    ("scheduler", "cluster: {scheduler: binpack}", ["cluster.scheduler", "'binpack'", "spread, pack, random"]),
    ("timing-negative", "timing: {podRetryInterval: -1}", ["timing.podRetryInterval", "-1"]),
    ("rate-twice", "cilium: {ipam: {ciliumNodeUpdateRate: 5s}}\ntiming: {ciliumNodeUpdateRate: 1s}",
     ["timing.ciliumNodeUpdateRate", "'1s'", "cilium.ipam.ciliumNodeUpdateRate"]),
    ("prealloc-format", "cilium: {ipam: {multiPoolPreAllocation: 'default:8'}}",
     ["multiPoolPreAllocation", "'default:8'", "pool=N"]),
    # manifests
    ("manifest-kind", "manifests: [{apiVersion: apps/v1, kind: Deployment, metadata: {name: x}}]",
     ["manifests[0].kind", "'Deployment'", "CiliumPodIPPool or Namespace"]),
    ("manifest-api", "manifests: [{apiVersion: cilium.io/v1, kind: CiliumPodIPPool, metadata: {name: x}, spec: {}}]",
     ["manifests[0].apiVersion", "'cilium.io/v1'", "cilium.io/v2alpha1"]),
    ("manifest-name", "manifests: [{apiVersion: v1, kind: Namespace, metadata: {name: Team_A}}]",
     ["manifests[0].metadata.name", "'Team_A'", "DNS-1123"]),
    ("pool-twice", "manifests: [" + pool("a", "{ipv4: {cidrs: [10.1.0.0/16], maskSize: 24}}") + ", "
     + pool("a", "{ipv4: {cidrs: [10.2.0.0/16], maskSize: 24}}") + "]", ["manifests[1].metadata.name", "'a'", "twice"]),
    ("pool-no-mask", "manifests: [" + pool("a", "{ipv4: {cidrs: [10.1.0.0/16]}}") + "]",
     ["manifests[0].spec.ipv4", "'maskSize'"]),
    ("selector-operator", "manifests: [" + pool("a", "{ipv4: {cidrs: [10.1.0.0/16], maskSize: 24}, podSelector: "
                                               "{matchExpressions: [{key: app, operator: Gt, values: ['1']}]}}") + "]",
     ["podSelector.matchExpressions[0].operator", "'Gt'", "In, NotIn, Exists, DoesNotExist"]),
    ("require-match-value", "manifests: [{apiVersion: v1, kind: Namespace, metadata: {name: a, annotations: "
                            "{ipam.cilium.io/require-pool-match: 'True'}}}]",
     ['"ipam.cilium.io/require-pool-match"', "'True'", "exact"]),
    # reserved and delegated sections
    ("steps-not-list", "steps: {at: 10m}", ["steps", "mapping", "list"]),
    ("workload-key", "workload: {generator: steady-churn, podsPerNod: 3}", ["workload.podsPerNod", "3"]),
    ("empty-name", "name: ''", ["name", "''"]),
]


@pytest.mark.parametrize("extra,needles", [(e, n) for _, e, n in BAD], ids=[i for i, _, _ in BAD])
def test_bad_input_is_one_line_naming_key_and_value(extra, needles):
    doc = yaml.safe_load(BASE)
    doc.update(yaml.safe_load(extra))  # later keys replace the base's (no duplicate keys)
    text = yaml.safe_dump(doc, sort_keys=False)
    with pytest.raises(ConfigError) as info:
        load_scenario(text)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_validation_table_covers_enough_rules():
    assert len(BAD) >= 15


def test_errors_carry_file_and_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(BASE + "cilium:\n  ipam:\n    operator:\n      clusterPoolIPv4MaskSize: 4\n")
    with pytest.raises(ConfigError, match=rf"^{path}:6: cilium\.ipam\.operator\.clusterPoolIPv4MaskSize: 4 "):
        load_scenario(path)


def test_workload_errors_get_file_and_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nworkload:\n  generator: steady-churn\n  podsPerNode: -1\n")
    with pytest.raises(ConfigError, match=rf"^{path}:4: workload\.podsPerNode"):
        load_scenario(path)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: t\ncluster:\n  nodes: [1, 2\nworkload: {}\n")
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: invalid YAML"):
        load_scenario(path)


def test_duplicate_yaml_key_is_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(BASE + "cluster:\n  nodes: 3\n  nodes: 4\n")
    with pytest.raises(ConfigError, match=rf"^{path}:5: cluster\.nodes: duplicate key"):
        load_scenario(path)


def test_missing_file_and_unknown_builtin():
    with pytest.raises(ConfigError, match="not found"):
        load_scenario("no/such/scenario.yaml")
    with pytest.raises(ConfigError, match="default"):
        load_scenario("no-such-builtin")


def test_annotation_naming_a_missing_pool_is_kept():
    s = load("manifests: [{apiVersion: v1, kind: Namespace, metadata: {name: a, annotations: "
             "{ipam.cilium.io/ip-pool: ghost}}}]\n")
    assert s.namespace("a").annotations["ipam.cilium.io/ip-pool"] == "ghost"
    assert s.select_pool(4, "a") == "ghost"


# ---------------------------------------------------------------- property: overlaps against ipaddress
prefixes = st.builds(lambda addr, plen: ipaddress.ip_network((addr, plen), strict=False),
                     st.integers(10 << 24, (11 << 24) - 1), st.integers(8, 24))


@given(st.lists(prefixes, min_size=1, max_size=5))
def test_cluster_pool_overlap_detection_matches_ipaddress(nets):
    text = BASE + yaml.safe_dump({"cilium": {"ipam": {"operator": {
        "clusterPoolIPv4PodCIDRList": [str(n) for n in nets], "clusterPoolIPv4MaskSize": 24}}}})
    overlapping = any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    if overlapping:
        with pytest.raises(ConfigError, match="overlaps"):
            load_scenario(text)
    else:
        assert load_scenario(text).ipam.cluster_pool_v4 == tuple(str(n) for n in nets)


# ---------------------------------------------------------------- resolved values
def test_kcm_flags_with_dashes_and_string_masks():
    s = load("cluster: {kubeControllerManager: {--cluster-cidr: 'fd00:1::/56', --node-cidr-mask-size: '72'}}\n"
             "cilium: {ipv4: {enabled: false}, ipv6: {enabled: true}}\nmodes: [kubernetes]\n")
    assert s.ipam.kcm_cluster_cidrs == ("fd00:1::/56",)
    assert (s.ipam.kcm_node_mask_v4, s.ipam.kcm_node_mask_v6) == (24, 72)
    assert s.ipam.kcm_cidr(6) == "fd00:1::/56" and s.ipam.kcm_cidr(4) is None


def test_kcm_dual_stack_per_family_masks_in_either_order():
    s = load("cluster: {kubeControllerManager: {cluster-cidr: 'fd00:1::/56,10.1.0.0/16', "
             "node-cidr-mask-size-ipv4: 26, node-cidr-mask-size-ipv6: 60}}\n")
    assert s.ipam.kcm_cluster_cidrs == ("fd00:1::/56", "10.1.0.0/16")
    assert (s.ipam.kcm_node_mask_v4, s.ipam.kcm_node_mask_v6) == (26, 60)


@pytest.mark.parametrize("value,expected", [
    ("default=8", {"default": 8}),
    (" default=4 , team-a=16 ", {"default": 4, "team-a": 16}),
    ("", {"default": 8}),  # Helm drops an empty value: the agent default applies
    ({}, {"default": 8}),
    ("default=0", {"default": 0}),
    ({"default": 2, "blue": 0}, {"default": 2, "blue": 0}),
])
def test_pre_allocation_forms(value, expected):
    # modes without multi-pool: pre-allocating from pools that do not exist is refused there
    s = load(yaml.safe_dump({"modes": ["cluster-pool"], "cilium": {"ipam": {"multiPoolPreAllocation": value}}}))
    assert dict(s.ipam.pre_allocation) == expected


def test_helm_node_update_rate_sets_timing():
    assert load("cilium: {ipam: {ciliumNodeUpdateRate: 500ms}}\n").timing.cilium_node_update_rate_s == 0.5


def test_node_sample_interval_default_and_override():
    assert load("sampleInterval: 5s\n").node_sample_interval_s == 30
    assert load("duration: 20s\nsampleInterval: 5s\n").node_sample_interval_s == 20  # clamped to duration
    assert load("nodeSampleInterval: 2m\n").node_sample_interval_s == 120


def test_manifests_as_string_list_and_kind_list_agree():
    objects = [
        {"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumPodIPPool",
         "metadata": {"name": "default", "uid": "x", "resourceVersion": "12", "creationTimestamp": None},
         "spec": {"ipv4": {"cidrs": ["10.9.0.0/16"], "maskSize": 25},
                  "podSelector": {"matchLabels": {"app": "a"}}}, "status": {"whatever": 1}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns", "labels": {"x": "y"}},
         "spec": {"finalizers": ["kubernetes"]}},
    ]
    as_list = load(yaml.safe_dump({"manifests": objects}))
    as_text = load(yaml.safe_dump({"manifests": yaml.safe_dump_all(objects)}))
    as_kind_list = load(yaml.safe_dump({"manifests": [{"apiVersion": "v1", "kind": "List", "items": objects}]}))
    for s in (as_text, as_kind_list):
        assert s.ipam.pools == as_list.ipam.pools and s.namespaces == as_list.namespaces
    (p,) = as_list.ipam.pools
    assert p.ipv4_cidrs == ("10.9.0.0/16",) and p.ipv4_mask_size == 25 and not as_list.ipam.pools_derived
    assert p.pod_selector == LabelSelector({"app": "a"}) and p.namespace_selector is None


def test_auto_create_pools_from_helm():
    s = load("cilium: {ipam: {operator: {autoCreateCiliumPodIPPools: "
             "{default: {ipv4: {cidrs: [10.10.0.0/16], maskSize: 24}}}}}}\n")
    assert [(p.name, p.ipv4_cidrs) for p in s.ipam.pools] == [("default", ("10.10.0.0/16",))]


def test_steps_are_kept_raw_for_the_migration_module():
    s = load("steps:\n- {at: 10m, set: {cilium: {ipam: {mode: multi-pool}}}}\n")
    assert s.steps == ({"at": "10m", "set": {"cilium": {"ipam": {"mode": "multi-pool"}}}},)


def test_relative_replay_path_resolves_against_scenario_folder(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "s.yaml").write_text("name: r\nworkload: {generator: replay, path: events/run.csv}\n")
    (folder / "events").mkdir()
    (folder / "events" / "run.csv").write_text("time,op,pod,namespace\n0,add,a,ns\n")  # read whole at load
    s = load_scenario(str(folder / "s.yaml"))
    assert Path(s.workload.path) == folder.resolve() / "events" / "run.csv"


def test_parse_scenario_keeps_text_for_hashing():
    doc = {"name": "m", "workload": {"generator": "steady-churn"}}
    s = parse_scenario(doc)
    assert yaml.safe_load(s.source_text) == doc and s.source_path is None
    assert parse_scenario(doc, source_text="raw").source_text == "raw"


def test_scenario_for_mode_replaces_and_validates():
    s = load("modes: [multi-pool]\ncilium: {ipam: {mode: multi-pool, operator: {clusterPoolIPv4PodCIDRList: []}}}\n"
             "manifests: [" + pool("default", "{ipv4: {cidrs: [10.1.0.0/16], maskSize: 24}}") + "]\n")
    assert scenario_for_mode(s, "kubernetes").ipam.mode == "kubernetes"
    assert scenario_for_mode(s, "kubernetes").ipam.pools == s.ipam.pools
    with pytest.raises(ConfigError, match="clusterPoolIPv4PodCIDRList: .*must be provided when using ClusterPool"):
        scenario_for_mode(s, "cluster-pool")
    with pytest.raises(ConfigError, match="'alibabacloud'.*kubernetes, cluster-pool, multi-pool"):
        scenario_for_mode(s, "alibabacloud")


# ---------------------------------------------------------------- durations
@pytest.mark.parametrize("value,seconds", [
    (90, 90), (0.5, 0.5), ("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400),
    ("1.5h", 5400), ("500ms", 0.5), ("1m30s", 90), ("2h45m30s", 9930), ("250us", 0.00025), (" 10s ", 10),
    ("0s", 0), (".5m", 30),
])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "5 minutes", "-5m", "10x", "m", "1h 30m", "1d", True, None, [1], "nan", "inf"])
def test_parse_duration_rejects(value):
    with pytest.raises(ConfigError):
        parse_duration(value)


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_parse_duration_composes_like_go(h, m, s, ms):
    assert parse_duration(f"{h}h{m}m{s}s{ms}ms") == pytest.approx(h * 3600 + m * 60 + s + ms / 1000)


# ---------------------------------------------------------------- label selectors
@pytest.mark.parametrize("selector,labels,expected", [
    (LabelSelector(), {}, True),
    (LabelSelector(), {"a": "1"}, True),
    (LabelSelector({"a": "1"}), {"a": "1", "b": "2"}, True),
    (LabelSelector({"a": "1"}), {"a": "2"}, False),
    (LabelSelector({"a": "1"}), {}, False),
    (LabelSelector({}, (LabelRequirement("a", "In", ("1", "2")),)), {"a": "2"}, True),
    (LabelSelector({}, (LabelRequirement("a", "In", ("1",)),)), {}, False),
    (LabelSelector({}, (LabelRequirement("a", "NotIn", ("1",)),)), {}, True),
    (LabelSelector({}, (LabelRequirement("a", "NotIn", ("1",)),)), {"a": "1"}, False),
    (LabelSelector({}, (LabelRequirement("a", "NotIn", ("1",)),)), {"a": "3"}, True),
    (LabelSelector({}, (LabelRequirement("a", "Exists"),)), {"a": ""}, True),
    (LabelSelector({}, (LabelRequirement("a", "Exists"),)), {"b": "1"}, False),
    (LabelSelector({}, (LabelRequirement("a", "DoesNotExist"),)), {"b": "1"}, True),
    (LabelSelector({}, (LabelRequirement("a", "DoesNotExist"),)), {"a": "1"}, False),
    (LabelSelector({"b": "2"}, (LabelRequirement("a", "Exists"),)), {"a": "1", "b": "3"}, False),
])
def test_label_selector_matches_like_kubernetes(selector, labels, expected):
    assert selector.matches(labels) is expected


# ---------------------------------------------------------------- pool selection
SELECTION = """
name: sel
modes: [multi-pool]
cilium: {ipv6: {enabled: true}, ipam: {mode: multi-pool, defaultPool: main, multiPoolPreAllocation: "main=8"}}
workload: {generator: steady-churn}
manifests:
- {apiVersion: cilium.io/v2alpha1, kind: CiliumPodIPPool, metadata: {name: main},
   spec: {ipv4: {cidrs: [10.10.0.0/16], maskSize: 24}, ipv6: {cidrs: ["fd00:10::/104"], maskSize: 120}}}
- {apiVersion: cilium.io/v2alpha1, kind: CiliumPodIPPool, metadata: {name: team-a},
   spec: {ipv4: {cidrs: [10.20.0.0/16], maskSize: 24}, namespaceSelector: {matchLabels: {team: a}}}}
- {apiVersion: cilium.io/v2alpha1, kind: CiliumPodIPPool, metadata: {name: frontend},
   spec: {ipv4: {cidrs: [10.30.0.0/16], maskSize: 24},
          podSelector: {matchExpressions: [{key: app, operator: In, values: [web, api]}]}}}
- {apiVersion: cilium.io/v2, kind: CiliumPodIPPool, metadata: {name: web6},
   spec: {ipv6: {cidrs: ["fd00:30::/104"], maskSize: 120}, podSelector: {matchLabels: {app: web}}}}
- {apiVersion: cilium.io/v2alpha1, kind: CiliumPodIPPool, metadata: {name: batch},
   spec: {ipv4: {cidrs: [10.40.0.0/16], maskSize: 24},
          podSelector: {matchLabels: {io.kubernetes.pod.namespace: batch}}}}
- {apiVersion: cilium.io/v2alpha1, kind: CiliumPodIPPool, metadata: {name: special},
   spec: {ipv4: {cidrs: [10.60.0.0/16], maskSize: 24},
          podSelector: {matchLabels: {io.kubernetes.pod.name: special-0}}}}
- {apiVersion: cilium.io/v2alpha1, kind: CiliumPodIPPool, metadata: {name: spare},
   spec: {ipv4: {cidrs: [10.50.0.0/16], maskSize: 24}}}
- {apiVersion: v1, kind: Namespace, metadata: {name: team-a, labels: {team: a}}}
- {apiVersion: v1, kind: Namespace, metadata: {name: annotated, labels: {team: a},
   annotations: {ipam.cilium.io/ip-pool: spare, ipam.cilium.io/ipv6-pool: web6}}}
- {apiVersion: v1, kind: Namespace, metadata: {name: strict, annotations: {ipam.cilium.io/require-pool-match: "true"}}}
- {apiVersion: v1, kind: Namespace, metadata: {name: batch}}
"""

IP_POOL, V4_POOL, V6_POOL, REQUIRE = ("ipam.cilium.io/ip-pool", "ipam.cilium.io/ipv4-pool",
                                      "ipam.cilium.io/ipv6-pool", "ipam.cilium.io/require-pool-match")

SELECT = [
    # (id, family, namespace, pod annotations, pod labels, pod name, expected pool or error regex)
    ("pod-annotation", 4, "team-a", {IP_POOL: "spare"}, {}, "", "spare"),
    ("pod-annotation-missing-pool", 4, "default", {IP_POOL: "ghost"}, {}, "", "ghost"),
    ("pod-family-annotation-first", 4, "default", {V4_POOL: "frontend", IP_POOL: "spare"}, {}, "", "frontend"),
    ("pod-other-family-annotation", 6, "default", {V4_POOL: "frontend", IP_POOL: "main"}, {}, "", "main"),
    ("pod-empty-annotation-ignored", 4, "annotated", {IP_POOL: ""}, {}, "", "spare"),
    ("namespace-annotation", 4, "annotated", {}, {"app": "web"}, "", "spare"),
    ("namespace-family-annotation", 6, "annotated", {}, {}, "", "web6"),
    ("pod-beats-namespace", 4, "annotated", {IP_POOL: "batch"}, {}, "", "batch"),
    ("namespace-selector", 4, "team-a", {}, {}, "", "team-a"),
    ("selector-needs-family", 6, "team-a", {}, {}, "", "main"),
    ("pod-selector-in", 4, "default", {}, {"app": "api"}, "", "frontend"),
    ("pod-selector-v6", 6, "default", {}, {"app": "web"}, "", "web6"),
    ("synthetic-namespace-label", 4, "batch", {}, {}, "", "batch"),
    ("synthetic-name-label", 4, "default", {}, {}, "special-0", "special"),
    ("multiple-match", 4, "team-a", {}, {"app": "web"}, "p", r"multiple CiliumPodIPPools match pod team-a/p "
                                                             r"\(family=ipv4\): frontend, team-a"),
    ("no-match-default", 4, "default", {}, {"app": "db"}, "", "main"),
    ("require-on-namespace", 4, "strict", {}, {}, "", r"no matching CiliumPodIPPool .* set on namespace"),
    ("require-on-pod", 4, "default", {REQUIRE: "true"}, {}, "", r"no matching CiliumPodIPPool .* set on pod"),
    ("require-satisfied", 4, "strict", {}, {"app": "api"}, "", "frontend"),
    ("require-false", 4, "default", {REQUIRE: "false"}, {}, "", "main"),
    ("undeclared-namespace", 4, "nowhere", {}, {}, "", "main"),
]


@pytest.fixture(scope="module")
def selection_scenario():
    return load_scenario(SELECTION)


@pytest.mark.parametrize("family,ns,annotations,labels,name,expected", [row[1:] for row in SELECT],
                         ids=[row[0] for row in SELECT])
def test_select_pool(selection_scenario, family, ns, annotations, labels, name, expected):
    s = selection_scenario
    call = lambda: select_pool(s.ipam, family, namespace=s.namespace(ns), pod_annotations=annotations,  # noqa: E731
                               pod_labels=labels, pod_name=name)
    if expected in {p.name for p in s.ipam.pools} | {"ghost"}:
        assert call() == expected
    else:
        with pytest.raises(PoolSelectionError, match=expected):
            call()


def test_pool_selection_error_is_an_allocator_error(selection_scenario):
    assert issubclass(PoolSelectionError, AllocatorError)
    with pytest.raises(PoolSelectionError, match="invalid IP family"):
        select_pool(selection_scenario.ipam, 5)


def test_select_pool_without_namespace_uses_default_namespace(selection_scenario):
    ipam = selection_scenario.ipam
    assert select_pool(ipam, 4) == "main"
    assert select_pool(ipam, 4, namespace=NamespaceSpec("batch")) == "batch"


@pytest.mark.parametrize("snippet, needles", [
    ("cluster: {nodes: 100001}", ["cluster.nodes", "100001", "from 1 to 100,000", "5,000-node"]),
    ("cluster: {kubelet: {maxPods: 2049}}", ["cluster.kubelet.maxPods", "2049", "from 1 to 2,048"]),
    ("seed: 9223372036854775808", ["seed", "9223372036854775808", "2^63 - 1"]),
    ("duration: 10000h", ["duration", "'10000h'", "at most 366 days", "one year"]),
    ("duration: 1000h\nsampleInterval: 1s", ["sampleInterval", "'1s'", "1,000,000"]),
])
def test_numbers_above_their_limit_name_the_limit_and_reason(snippet, needles):
    text = "name: x\n" + snippet + "\nworkload: {generator: scale-out}\n"
    with pytest.raises(ConfigError) as info:
        load_scenario(text)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_limits_admit_kubernetes_scalability_thresholds():
    # 5,000 nodes x 30 pods (150,000), maxPods 110, churn 20/s for 30 m: the shipped scale-limits scenario
    scenario = load_scenario(str(Path(__file__).resolve().parent.parent / "scenarios" / "scale-limits.yaml"))
    assert scenario.cluster.nodes == 5000
    load_scenario("name: x\nseed: 9223372036854775807\ncluster: {nodes: 100000, kubelet: {maxPods: 2048}}\n"
                  "workload: {generator: scale-out, podsPerNode: 200}\n")
