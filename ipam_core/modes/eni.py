"""Cilium AWS ENI IPAM (``ipam: eni``): the operator keeps each node's ENI addresses at the watermarks.

Each node is an EC2 instance of ``cluster.instanceType``; its ENI count and
addresses per ENI come from the instance-limits table
(:mod:`ipam_core.cloud.limits`). The operator keeps the pool of secondary
addresses at ``pre-allocate`` (default ``min(8, ENI capacity)``), ``min-allocate``,
``max-allocate`` (default the instance limit) and ``max-above-watermark``, adds
surge for pending pods, fills the first ENI with room whose subnet has free
addresses and attaches a new ENI when none has room, and releases excess only
with ``awsReleaseExcessIPs`` after ``--excess-ip-release-delay`` (cilium
``pkg/ipam/node.go``, ``pkg/aws/eni/node.go``). With
``awsEnablePrefixDelegation`` on Nitro instances it asks for /28 prefixes and
falls back to single addresses when the subnet has no free aligned /28, and asks
for prefixes again as long as no ENI holds single addresses only (cilium
``IsPrefixDelegated``); ``allocationStrategy: dense`` (CFP cilium/cilium#38499)
keeps prefix mode and packs the fallback's addresses into the fullest /28s.
Every ENI (eth0 included) takes a primary address of its subnet; eth0 holds
pod addresses from ``first-interface-index`` 0 (the current default).
A new ENI goes to the subnet ``findSuitableSubnet`` picks: a ``subnet-ids`` /
``subnet-tags`` subnet of the node's zone with most free addresses (per node
group, ``cloud.nodeGroups``), else the node's own subnet while it has an ENI's
worth free, else the zone's subnet with most free addresses.
Not modelled: ENI garbage collection, excluded interfaces and tags, IPv6
prefixes, API latency beyond the operator delay and throttling (``cloud.apiThrottle``), the release
handshake's agent round trip (collapsed into the operator's pass).
"""

from __future__ import annotations

from ipam_core.cloud.limits import aws_max_pods, eni_ipv4_per_interface, instance_limits, load_instance_limits
from ipam_core.cloud.watermarks import eni_default_pre_allocate, eni_max_allocatable, pool_minimum
from ipam_core.engine.cloud_config import (CLOUD_CILIUM, PICK_CILIUM, STRATEGIES, CloudConfig, agent_reserved, check_aws,
                                          check_subnets, subnet_layout, throttle_settings)
from ipam_core.engine.cloud_net import largest_group, subnets_selected
from ipam_core.engine.layout import Layout
from ipam_core.modes import cloud_hooks  # noqa: F401 (registers the cloud rules and Cilium's operator with the loop)
from ipam_core.modes.spec import RULES_CLOUD, ModeSpec, Section

NAME = "eni"
#: Cilium Helm ``eni`` values read (plus CiliumNode ``spec.eni.first-interface-index``, and ``allocationStrategy``:
#: ``upstream`` or the ``dense`` arm of CFP cilium/cilium#38499, not a Helm value); the others are accepted.
KEYS = ("enabled", "awsEnablePrefixDelegation", "allocationStrategy", "awsReleaseExcessIPs", "firstInterfaceIndex", "ec2APIEndpoint",
        "eniTags", "gcInterval", "gcTags", "iamRole", "instanceTagsFilter", "subnetIDsFilter", "subnetTagsFilter",
        "updateEC2AdapterLimitViaAPI")
UPSTREAM = (
    "cilium pkg/ipam/node.go",
    "cilium pkg/aws/eni/node.go",
    "cilium pkg/ipam/crd.go",
    "aws/amazon-vpc-cni-k8s pkg/vpc/vpc_ip_resource_limit.go",
)


def _limits(scenario):
    cloud = scenario.ipam.cloud
    return instance_limits(cloud.instance_type, load_instance_limits(cloud.instance_limits_file))


def layout(scenario) -> Layout:
    """The subnets as address bitmaps."""
    return subnet_layout(NAME, scenario.ipam.cloud.subnets)


def max_pods(scenario) -> int:
    """The pods per node of the largest node group (``cloud.nodeGroups``): what the engine sizes its tables for."""
    return largest_group(scenario, _instance_max_pods)


def _instance_max_pods(scenario) -> int:
    """``cluster.kubelet.maxPods`` when set, else what the EKS bootstrap computes for the instance."""
    cloud = scenario.ipam.cloud
    if cloud.kubelet_max_pods is not None:
        return cloud.kubelet_max_pods
    return aws_max_pods(_limits(scenario), prefix_delegation=cloud.eni.prefix_delegation)


def cloud(scenario) -> CloudConfig:
    """The instance's limits and the CiliumNode watermarks, resolved as the operator resolves them."""
    spec = scenario.ipam.cloud
    lim = _limits(scenario)
    pd = spec.eni.prefix_delegation and lim.supports_prefix_delegation
    first = spec.eni.first_interface_index
    marks = spec.watermarks
    pre = marks.pre_allocate or eni_default_pre_allocate(lim, first)
    return CloudConfig(
        kind=CLOUD_CILIUM, ifaces=lim.enis, units=lim.secondary_per_eni, unit_size=16 if pd else 1,
        first_iface=first, primary=True, attach=True, fallback=True, fill_first=False,
        agent_reserved=agent_reserved(scenario), ready_min=pool_minimum(marks.min_allocate, pre, scenario.ipam.health_ip),
        pre=pre, min_allocate=marks.min_allocate,
        max_allocate=marks.max_allocate or eni_max_allocatable(lim, first, pd), above=marks.max_above_watermark,
        release=spec.eni.release_excess_ips, release_delay_s=scenario.timing.excess_ip_release_delay_s,
        period_s=scenario.timing.ipam_resync_interval_s, max_pods=_instance_max_pods(scenario),
        strategy=STRATEGIES.index(spec.eni.allocation_strategy), **throttle_settings(scenario, "ec2", True),
    )


#: Addresses one ENI holds: the instance-limits table's (``ipv4_per_eni``).
ipv4_per_interface = eni_ipv4_per_interface


def interface_subnets(spec, group, subnets) -> tuple[int, list[int]]:
    """The subnets a node group's extra ENIs may use (cilium ``pkg/aws/eni/node.go`` ``findSuitableSubnet``).

    Parameters
    ----------
    spec : ipam_core.scenario.CloudSpec
        The scenario's ``cloud`` section.
    group : node group
        Its ``subnet_ids`` / ``subnet_tags`` (the CiliumNode's ``spec.eni.subnet-ids`` / ``subnet-tags``).
    subnets : sequence of subnets

    Returns
    -------
    tuple
        ``(PICK_CILIUM, indices)``: the subnets the filters select (none given: every subnet of the
        node's zone, the most free addresses first).
    """
    if group.subnet_ids or group.subnet_tags:
        return PICK_CILIUM, subnets_selected(subnets, group.subnet_ids, group.subnet_tags)
    return PICK_CILIUM, []


def check(ipam, root) -> None:
    """What the mode needs: IPv4 AWS subnets, a known instance type, and an ENI left for pods.

    Parameters
    ----------
    ipam : ipam_core.scenario.IPAMSpec
        The scenario's resolved IPAM settings.
    root : ipam_core.scenario._where.Where
        The document root: errors name its keys and lines.

    Raises
    ------
    ConfigError
        IPv6 enabled, no subnet, a subnet outside /16../28, an unknown instance type, or a
        first interface index past the instance's ENIs.
    """
    check_subnets(ipam, NAME, root)
    lim = check_aws(ipam, NAME, root)
    table = load_instance_limits(ipam.cloud.instance_limits_file)
    types = [instance_limits(g.instance_type, table) for g in ipam.cloud.node_groups] or [lim]
    first = ipam.cloud.eni.first_interface_index
    for lim in types:
        if first >= lim.enis:
            (root / "cilium" / "eni" / "firstInterfaceIndex").fail(
                f"{first} leaves no ENI of {lim.instance_type} ({lim.enis} ENIs) for pods; "
                f"expected at most {lim.enis - 1} (needed by mode {NAME})")


MODE = ModeSpec(
    name=NAME, rules=RULES_CLOUD, settings="cilium.eni", helm_mode="eni",
    migration=False, cloud=True, check=check, sections=(Section("cilium.eni", KEYS),), upstream=UPSTREAM, holds="ENI addresses and prefixes",
    summary="Cilium's operator keeps each node's ENI addresses (or /28 prefixes) at the watermarks",
)
