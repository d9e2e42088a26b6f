"""The AWS VPC CNI (``aws-vpc-cni``): ipamd keeps a warm pool of ENI addresses or /28 prefixes per node.

Every 5 s ipamd compares its node's pool with ``WARM_ENI_TARGET`` (default 1: a
whole ENI's addresses free), ``WARM_IP_TARGET`` and ``MINIMUM_IP_TARGET`` (which
override it), or, with ``ENABLE_PREFIX_DELEGATION``, ``WARM_PREFIX_TARGET``; it
fills the first ENI with room, else attaches an ENI in the node's subnet, gives
addresses back above the targets at most every 30 s, and frees an unused ENI
older than a minute that the targets do not need (aws/amazon-vpc-cni-k8s
``pkg/ipamd/ipamd.go``, :mod:`ipam_core.cloud.vpc_cni`). A prefix request the
subnet cannot meet with an aligned /28 fails (``InsufficientCidrBlocks``) and
ipamd waits 2 min; it never falls back to single addresses. Pods take the
first free address in ENI order, as the upstream examples show. Max pods is the
EKS figure (``eni-max-pods.txt``, or the calculator with prefix delegation).
With ``AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG`` eth0 holds no pod address and each
new ENI goes to the ENIConfig subnet of the node's zone; otherwise, with subnet
discovery (``ENABLE_SUBNET_DISCOVERY``, default on since v1.18.0), to the node's
subnet or a ``kubernetes.io/role/cni`` subnet of its zone, whichever has most
free addresses (``pkg/awsutils/awsutils.go``).
Not modelled: the 30 s cooldown of a pod's released address, security groups
for pods (trunk ENIs), IMDS lag.
"""

from __future__ import annotations

from ipam_core.cloud import vpc_cni
from ipam_core.cloud.limits import aws_max_pods, instance_limits, load_instance_limits
from ipam_core.engine.cloud_config import (CLOUD_VPC_CNI, PICK_DISCOVERY, PICK_FLAGGED, PICK_NODE_SUBNET, CloudConfig,
                                          check_aws, check_subnets, subnet_layout, throttle_settings)
from ipam_core.engine.cloud_net import eni_ipv4_per_interface, largest_group
from ipam_core.engine.layout import Layout
from ipam_core.modes import cloud_hooks  # noqa: F401 (registers the cloud-pool rules with the loop)
from ipam_core.modes.spec import RULES_CLOUD, ModeSpec, Section

NAME = "aws-vpc-cni"
#: aws-node environment variables read (``cloud.awsVpcCni``).
KEYS = ("WARM_ENI_TARGET", "WARM_IP_TARGET", "MINIMUM_IP_TARGET", "WARM_PREFIX_TARGET", "ENABLE_PREFIX_DELEGATION",
        "MAX_ENI", "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "eniConfigs", "ENABLE_SUBNET_DISCOVERY")
UPSTREAM = (
    "aws/amazon-vpc-cni-k8s pkg/ipamd/ipamd.go",
    "aws/amazon-vpc-cni-k8s pkg/ipamd/datastore/data_store.go",
    "aws/amazon-vpc-cni-k8s docs/eni-and-ip-target.md, docs/prefix-and-ip-target.md",
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
    """``cluster.kubelet.maxPods`` when set, else the EKS max pods for the instance and settings."""
    cloud = scenario.ipam.cloud
    if cloud.kubelet_max_pods is not None:
        return cloud.kubelet_max_pods
    v = cloud.vpc_cni
    return aws_max_pods(_limits(scenario), prefix_delegation=v.prefix_delegation, max_eni=v.max_eni,
                        custom_networking=v.custom_network)


def cloud(scenario) -> CloudConfig:
    """The aws-node environment and the instance's limits."""
    v = scenario.ipam.cloud.vpc_cni
    lim = _limits(scenario)
    pd = v.prefix_delegation and lim.supports_prefix_delegation
    enis = lim.enis if v.max_eni is None else min(v.max_eni, lim.enis)
    return CloudConfig(
        kind=CLOUD_VPC_CNI, ifaces=enis, units=lim.secondary_per_eni, unit_size=16 if pd else 1,
        first_iface=1 if v.custom_network else 0,  # custom networking: eth0 holds no pod address
        primary=True, attach=True, fallback=False, fill_first=True, agent_reserved=0, ready_min=1,
        warm_eni=v.warm_eni_target, warm_ip=v.warm_ip_target, min_ip=v.minimum_ip_target,
        warm_prefix=v.warm_prefix_target, period_s=scenario.timing.ipamd_pool_interval_s,
        decrease_s=scenario.timing.ipamd_decrease_interval_s, eni_min_life_s=vpc_cni.MIN_ENI_LIFETIME_S,
        cooldown_s=vpc_cni.INSUFFICIENT_CIDR_COOLDOWN_S, max_pods=_instance_max_pods(scenario),
        **throttle_settings(scenario, "ec2", False),
    )


#: ipamd's subnet discovery uses subnets with this tag key (aws/amazon-vpc-cni-k8s pkg/awsutils/awsutils.go).
CNI_DISCOVERY_TAG = "kubernetes.io/role/cni"

#: Addresses one ENI holds: the instance-limits table's (``ipv4_per_eni``).
ipv4_per_interface = eni_ipv4_per_interface


def interface_subnets(spec, group, subnets) -> tuple[int, list[int]]:
    """The subnets ipamd puts a node's extra ENIs in.

    Parameters
    ----------
    spec : ipam_core.scenario.CloudSpec
        The scenario's ``cloud`` section (its ``awsVpcCni`` settings).
    group : node group
    subnets : sequence of subnets

    Returns
    -------
    tuple
        Custom networking: ``(PICK_FLAGGED, the ENIConfigs' subnets)``; subnet discovery:
        ``(PICK_DISCOVERY, subnets tagged`` :data:`CNI_DISCOVERY_TAG` ``)``; otherwise the node's
        own subnet ``(PICK_NODE_SUBNET, [])`` (``pkg/awsutils/awsutils.go``).
    """
    vpc = spec.vpc_cni
    if vpc.custom_network:
        ids = {sid for _, sid in vpc.eni_configs}
        return PICK_FLAGGED, [i for i, s in enumerate(subnets) if s.id in ids]
    if vpc.subnet_discovery:
        return PICK_DISCOVERY, [i for i, s in enumerate(subnets) if CNI_DISCOVERY_TAG in dict(s.tags)]
    return PICK_NODE_SUBNET, []


def check(ipam, root) -> None:
    """What the mode needs: IPv4 AWS subnets and a known instance type.

    Parameters
    ----------
    ipam : ipam_core.scenario.IPAMSpec
        The scenario's resolved IPAM settings.
    root : ipam_core.scenario._where.Where
        The document root: errors name its keys and lines.

    Raises
    ------
    ConfigError
        IPv6 enabled, no subnet, a subnet outside /16../28, or an unknown instance type.
    """
    check_subnets(ipam, NAME, root)
    check_aws(ipam, NAME, root)


MODE = ModeSpec(
    name=NAME, rules=RULES_CLOUD, settings="cloud.awsVpcCni", helm_mode=None,
    migration=False, cloud=True, check=check, sections=(Section("cloud.awsVpcCni", KEYS),), upstream=UPSTREAM, holds="ENI addresses and prefixes",
    summary="the AWS VPC CNI's ipamd keeps a warm pool of ENI addresses or /28 prefixes per node",
)
