"""Calico manifests pasted into a scenario (ipam_core/scenario/calico.py): what is read, and what is refused.

Every refusal is one line that names the key, the value and what was expected.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ipam_core.errors import ConfigError
from ipam_core.scenario._where import Where
from ipam_core.scenario.calico import pool_annotation, read_calico_manifests
from ipam_core.scenario.calico_selector import parse_selector

ROOT = Path(__file__).resolve().parents[1]
AT = Where(("manifests",))

# What `kubectl get ippools.crd.projectcalico.org -o yaml` prints (server fields included).
KUBECTL_LIST = """
apiVersion: v1
kind: List
items:
- apiVersion: crd.projectcalico.org/v1
  kind: IPPool
  metadata:
    annotations:
      projectcalico.org/metadata: '{"creationTimestamp":"2024-12-14T21:40:01Z"}'
    creationTimestamp: "2024-12-14T21:40:01Z"
    generation: 1
    name: default-ipv4-ippool
    resourceVersion: "812"
    uid: 3c3c9a4e-0b8e-4b5f-9d0e-5e8f7a1b2c3d
  spec:
    allowedUses: [Workload, Tunnel]
    blockSize: 26
    cidr: 10.244.0.0/16
    ipipMode: Always
    natOutgoing: true
    nodeSelector: all()
    vxlanMode: Never
- apiVersion: crd.projectcalico.org/v1
  kind: IPAMConfig
  metadata: {name: default}
  spec: {autoAllocateBlocks: true, strictAffinity: false}
"""


def fail_message(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        read_calico_manifests(AT, text)
    message = str(info.value)
    assert "\n" not in message
    return message


def pool(spec: str, name: str = "p", api: str = "projectcalico.org/v3") -> str:
    return f"apiVersion: {api}\nkind: IPPool\nmetadata: {{name: {name}}}\nspec: {spec}\n"


def test_kubectl_output_is_read_as_it_is():
    m = read_calico_manifests(AT, KUBECTL_LIST)
    (p,) = m.pools
    assert (p.name, p.cidr, p.block_size, p.family, p.disabled) == (
        "default-ipv4-ippool", "10.244.0.0/16", 26, 4, False)
    assert p.node_selector.matches({}) and p.assignment_mode == "Automatic"
    assert (m.ipam_config.strict_affinity, m.ipam_config.max_blocks_per_host, m.leak_grace_s) == (False, 0, 900.0)


def test_defaults_block_sizes_and_sorting():
    m = read_calico_manifests(AT, [yaml.safe_load(pool("{cidr: 'fd00:1::/112'}", "z-v6")),
                                   yaml.safe_load(pool("{cidr: 10.0.0.0/16}", "a-v4"))])
    assert [(p.name, p.block_size) for p in m.pools] == [("a-v4", 26), ("z-v6", 122)]


@pytest.mark.parametrize("spec, expected", [
    ("{cidr: 10.0.0.0/33}", "manifests[0].spec.cidr: invalid CIDR '10.0.0.0/33'"),
    ("{cidr: 10.0.0.1/16}", "manifests[0].spec.cidr: invalid CIDR '10.0.0.1/16': host bits set"),
    ("{cidr: banana}", "manifests[0].spec.cidr: invalid CIDR 'banana': no prefix length"),
    ("{cidr: 10.0.0.0/16, blockSize: 19}", "manifests[0].spec.blockSize: 19 is out of range; expected an integer "
                                           "from 20 to 32"),
    ("{cidr: 'fd00::/64', blockSize: 122.5}", "manifests[0].spec.blockSize: 122.5 is a number; expected an integer "
                                              "from 116 to 128"),
    ("{cidr: 'fd00::/64', blockSize: 115}", "manifests[0].spec.blockSize: 115 is out of range; expected an integer "
                                            "from 116 to 128"),
    ("{cidr: 10.0.0.0/28}", "manifests[0].spec.cidr: 10.0.0.0/28 is smaller than a /26 block"),
    ("{cidr: 10.0.0.0/16, blokSize: 24}", "manifests[0].spec.blokSize: unknown key 'blokSize' (did you mean "
                                          "'blockSize'?)"),
    ("{cidr: 10.0.0.0/16, assignmentMode: Auto}", "manifests[0].spec.assignmentMode: 'Auto' is not an assignment "
                                                  "mode; expected Automatic or Manual"),
    ("{cidr: 10.0.0.0/16, vxlanMode: Sometimes}", "manifests[0].spec.vxlanMode: 'Sometimes' is not an "
                                                  "encapsulation mode; expected one of Never, Always, CrossSubnet"),
    ("{cidr: 'fd00::/64', ipipMode: Always}", "manifests[0].spec.ipipMode: Always on an IPv6 pool; expected Never"),
    ("{cidr: 10.0.0.0/16, allowedUses: [Pods]}", "manifests[0].spec.allowedUses[0]: 'Pods' is not an allowed use"),
    ("{cidr: 10.0.0.0/16, nodeSelector: \"zone == a\"}", "manifests[0].spec.nodeSelector: selector 'zone == a': "
                                                         "found 'a' at character 9; expected a quoted value"),
])
def test_bad_pool_specs_name_key_value_and_expectation(spec, expected):
    assert fail_message(pool(spec)).startswith(expected)


def test_overlapping_enabled_pools_are_refused_disabled_ones_are_not():
    text = pool("{cidr: 10.0.0.0/16}", "a") + "---\n" + pool("{cidr: 10.0.128.0/17}", "b")
    assert fail_message(text) == ("manifests[1].spec.cidr: 10.0.128.0/17 of IPPool 'b' overlaps 10.0.0.0/16 of "
                                  "IPPool 'a'; expected enabled pools that do not overlap")
    text = pool("{cidr: 10.0.0.0/16}", "a") + "---\n" + pool("{cidr: 10.0.128.0/17, disabled: true}", "b")
    assert len(read_calico_manifests(AT, text).pools) == 2


def test_unknown_kind_api_version_and_names():
    assert fail_message("apiVersion: projectcalico.org/v3\nkind: IPPoolz\nmetadata: {name: a}\n").startswith(
        "manifests[0].kind: unsupported kind 'IPPoolz'; expected IPPool, IPAMConfiguration")
    assert fail_message(pool("{cidr: 10.0.0.0/16}", api="projectcalico.org/v2")).startswith(
        "manifests[0].apiVersion: 'projectcalico.org/v2' is not an apiVersion of IPPool; expected "
        "projectcalico.org/v3 or crd.projectcalico.org/v1")
    assert fail_message(pool("{cidr: 10.0.0.0/16}") + "---\n" + pool("{cidr: 10.1.0.0/16}")).startswith(
        "manifests[1].metadata.name: IPPool 'p' is defined twice")
    assert fail_message("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p, colour: red}\n"
                        "spec: {cidr: 10.0.0.0/16}").startswith("manifests[0].metadata.colour: unknown key 'colour'")


def test_ipam_configuration_and_kube_controllers_configuration():
    text = ("apiVersion: projectcalico.org/v3\nkind: IPAMConfiguration\nmetadata: {name: default}\n"
            "spec: {strictAffinity: true, maxBlocksPerHost: 4}\n---\n"
            "apiVersion: projectcalico.org/v3\nkind: KubeControllersConfiguration\nmetadata: {name: default}\n"
            "spec: {controllers: {node: {leakGracePeriod: 5m, syncLabels: Enabled}}}\n")
    m = read_calico_manifests(AT, text)
    assert (m.ipam_config.strict_affinity, m.ipam_config.max_blocks_per_host, m.leak_grace_s) == (True, 4, 300.0)
    assert fail_message(text.replace("strictAffinity: true", "strictAffinity: false")).startswith(
        "manifests[0].spec.maxBlocksPerHost: 4 is set while strictAffinity is false")
    assert fail_message(text.replace("maxBlocksPerHost: 4", "maxBlocksPerHost: -1")).startswith(
        "manifests[0].spec.maxBlocksPerHost: -1 is out of range")
    assert fail_message(text.replace("name: default}\nspec: {strict", "name: other}\nspec: {strict")).startswith(
        "manifests[0].metadata.name: 'other' is not read by Calico; expected 'default'")
    assert fail_message(text.replace("leakGracePeriod: 5m", "leakGracePeriod: soon")).startswith(
        "manifests[1].spec.controllers.node.leakGracePeriod:")


def test_selectors():
    sel = parse_selector("zone in {'a', 'b'} && !has(gpu) || role == \"edge\"")
    assert sel.matches({"zone": "a"}) and not sel.matches({"zone": "a", "gpu": "1"})
    assert sel.matches({"role": "edge", "gpu": "1"}) and not sel.matches({"zone": "c"})
    assert parse_selector("zone != 'a'").matches({}) and parse_selector("zone not in {'a'}").matches({"zone": "b"})
    assert parse_selector("").matches({"x": "y"}) and parse_selector("all()").matches({})
    with pytest.raises(ConfigError, match=r"selector 'zone ==': found the end; expected a quoted value"):
        parse_selector("zone ==")
    with pytest.raises(ConfigError, match=r"unexpected '\$' at character 6"):
        parse_selector("zone $ 'a'")


def test_pool_annotations():
    m = read_calico_manifests(AT, pool("{cidr: 10.0.0.0/16}", "a") + "---\n" + pool("{cidr: 10.1.0.0/16}", "b"))
    where = Where(("namespace", "annotations", "cni.projectcalico.org/ipv4pools"))
    assert pool_annotation(where, '["b", "10.0.0.0/16"]', 4, m) == ("b", "a")
    with pytest.raises(ConfigError, match=r"the given pool \(c\) does not exist, or is not enabled"):
        pool_annotation(where, '["c"]', 4, m)
    with pytest.raises(ConfigError, match="is not a JSON list of strings"):
        pool_annotation(where, "b", 4, m)


def test_the_scenario_file_reads():
    doc = yaml.safe_load((ROOT / "scenarios" / "calico.yaml").read_text())
    m = read_calico_manifests(AT, doc["manifests"])
    assert [p.name for p in m.pools] == ["default-ipv4-ippool", "default-ipv6-ippool", "gpu-nodes"]
    assert m.ipam_config.strict_affinity is False and m.leak_grace_s == 900.0
