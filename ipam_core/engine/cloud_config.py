"""What a cloud mode hands the engine besides its layout: its pool rules, resolved to numbers.

Shared by the subnet modules ``eni``, ``aws-vpc-cni``, ``azure`` and ``crd``: the
:class:`CloudConfig` each builds, the layout of its subnets, and the checks they share.
The compiled rules that read it are in :mod:`ipam_core.modes.cloud_pool`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipam_core.addr import parse_cidr
from ipam_core.cloud.api_limits import CILIUM_CLIENT_BURST, CILIUM_CLIENT_QPS, CLOUD_BUCKETS
from ipam_core.cloud.limits import instance_limits, load_instance_limits
from ipam_core.errors import ConfigError
from ipam_core.engine.layout import POLICY_CLOUD, Layout, SetSpec

#: ``CloudConfig.kind``: who grows and shrinks a node's pool (``I_CL_KIND`` in the engine's ``icfg``).
CLOUD_CRD_STATIC = 0  # crd: an external writer gives each node a fixed pool once
CLOUD_CILIUM = 1  # eni, azure, crd with the watermark writer: Cilium's operator watermarks
CLOUD_VPC_CNI = 2  # aws-vpc-cni: ipamd warm targets
CLOUD_AKS_DYNAMIC = 3  # azure + AKS DynamicIndividual: CNS batches
CLOUD_AKS_STATIC = 4  # azure + AKS StaticBlock: /28 blocks per node

#: ``CloudConfig.strategy`` (``I_CL_STRATEGY``), indexed by ``cilium.eni.allocationStrategy``: upstream
#: ``IsPrefixDelegated`` after ``InsufficientCidrBlocks``, or the dense arm of CFP cilium/cilium#38499.
STRATEGIES = ("upstream", "dense")
STRATEGY_UPSTREAM = 0
STRATEGY_DENSE = 1

#: How a node's extra interface finds its subnet (``CG_PICK`` of the engine's ``cl_group``).
PICK_NODE_SUBNET = 0  # always the node's subnet (azure's NIC, crd pools, ipamd without discovery)
PICK_CILIUM = 1  # cilium findSuitableSubnet: the flagged (subnet-ids / -tags) in the zone, else the node's, else any
PICK_DISCOVERY = 2  # ipamd subnet discovery: the node's subnet or a flagged (kubernetes.io/role/cni) one of the zone
PICK_FLAGGED = 3  # ipamd custom networking: the zone's flagged subnet (its ENIConfig), else no interface

#: AWS subnets are /16 to /28 (VPC user guide, "Subnet sizing").
AWS_SUBNET_PREFIX = (16, 28)


@dataclass(frozen=True)
class CloudConfig:
    """The cloud settings of one mode for one scenario, resolved to numbers.

    Built by the mode modules (:mod:`ipam_core.modes.eni` ...), written into the
    engine's ``icfg`` and ``cfg`` vectors by :func:`ipam_core.modes.cloud_pool.init_cloud`. Field names
    follow the ``I_CL_*`` and ``C_CL_*`` entries of :mod:`ipam_core.engine.tables`.
    """

    kind: int
    ifaces: int
    units: int
    unit_size: int = 1
    first_iface: int = 0
    primary: bool = False
    attach: bool = False
    fallback: bool = False
    fill_first: bool = False
    agent_reserved: int = 0
    ready_min: int = 1
    pre: int = 0
    min_allocate: int = 0
    max_allocate: int = 0
    above: int = 0
    release: bool = False
    release_delay_s: float = 180.0
    period_s: float = 0.0
    warm_eni: int = 0
    warm_ip: int = 0
    min_ip: int = 0
    warm_prefix: int = 0
    decrease_s: float = 30.0
    eni_min_life_s: float = 60.0
    cooldown_s: float = 120.0
    batch: int = 16
    batch_pct: int = 50
    max_ips: int = 250
    static_units: int = 0
    subnet_reserved: bool = True
    nic: bool = True
    max_pods: int = 110
    # what Cilium does after InsufficientCidrBlocks (STRATEGY_* of ipam_core.engine.tables)
    strategy: int = 0
    # cloud API throttling (ipam_core/modes/cloud_api.py): off unless the scenario turns it on
    throttle: bool = False
    client_qps: float = 0.0
    client_burst: int = 0
    bucket: int = 0
    refill: float = 0.0
    shared_bucket: bool = False
    any_subnet: bool = False


def subnet_layout(mode: str, subnets) -> Layout:
    """The layout of a cloud mode: one pool whose sets are the subnets, one bit per address.

    Parameters
    ----------
    mode : str
    subnets : sequence of str
        IPv4 subnet CIDRs, in the order nodes are spread over them.

    Returns
    -------
    ipam_core.engine.layout.Layout
    """
    return Layout(
        mode=mode,
        policy=POLICY_CLOUD,
        families=(0,),
        pool_names=("subnets",),
        pre_allocation=(0,),
        sets=tuple(SetSpec(0, parse_cidr(c, 4), 32) for c in subnets),
        default_pool=0,
        revert_partial=True,
    )


def throttle_settings(scenario, provider: str, client_limiter: bool) -> dict:
    """``CloudConfig`` fields of ``cloud.apiThrottle`` for a mode calling ``provider``'s API.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
    provider : str
        ``"ec2"`` or ``"azure"`` (:data:`ipam_core.cloud.api_limits.CLOUD_BUCKETS`).
    client_limiter : bool
        The pool manager limits its own calls (Cilium's operator); ipamd does not.

    Returns
    -------
    dict
        ``throttle``, ``client_qps``, ``client_burst``, ``bucket``, ``refill``,
        ``shared_bucket``: the scenario's values, else the defaults of
        :mod:`ipam_core.cloud.api_limits`; ``{}`` with throttling off.
    """
    spec = scenario.ipam.cloud.api_throttle
    if not spec.enabled:
        return {}
    bucket, refill, shared = CLOUD_BUCKETS[provider]
    qps = (CILIUM_CLIENT_QPS if spec.client_qps is None else spec.client_qps) if client_limiter else 0.0
    return dict(
        throttle=True, client_qps=qps,
        client_burst=CILIUM_CLIENT_BURST if spec.client_burst is None else spec.client_burst,
        bucket=bucket if spec.bucket_size is None else spec.bucket_size,
        refill=refill if spec.refill_per_second is None else spec.refill_per_second, shared_bucket=shared,
    )


def agent_reserved(scenario) -> int:
    """Addresses the Cilium agent takes from its pool: the router's, and the health endpoint's when enabled."""
    return 2 if scenario.ipam.health_ip else 1


def check_subnets(ipam, mode: str, root) -> None:
    """What every subnet mode needs: IPv4 only, and at least one subnet.

    Parameters
    ----------
    ipam : ipam_core.scenario.IPAMSpec
    mode : str
    root : ipam_core.scenario._where.Where
        The document root (keys and lines in messages).

    Raises
    ------
    ConfigError
        IPv6 enabled (the subnet modes model IPv4 only), or no subnet.
    """
    for_mode = f"(needed by mode {mode})"
    if ipam.ipv6:
        (root / "cilium" / "ipv6" / "enabled").fail(f"true, but mode {mode} models IPv4 subnets only; expected false "
                                                    f"{for_mode}")
    if not ipam.cloud.subnets:
        _subnets_where(ipam, root).fail(f"[] is empty; expected at least one subnet CIDR {for_mode}")


def _subnets_where(ipam, root):
    """``cloud.subnets``, or the cluster-pool list the subnets were derived from."""
    if ipam.cloud.subnets_derived:
        return root / "cilium" / "ipam" / "operator" / "clusterPoolIPv4PodCIDRList"
    return root / "cloud" / "subnets"


def check_aws(ipam, mode: str, root):
    """What the AWS modes need: subnets from /16 to /28 and a known instance type.

    Parameters
    ----------
    ipam : ipam_core.scenario.IPAMSpec
    mode : str
    root : ipam_core.scenario._where.Where
        The document root (keys and lines in messages).

    Returns
    -------
    ipam_core.cloud.limits.InstanceLimits
        The instance's limits.

    Raises
    ------
    ConfigError
        A subnet outside /16../28, or an unknown instance type.
    """
    cloud = ipam.cloud
    for_mode = f"(needed by mode {mode})"
    lo, hi = AWS_SUBNET_PREFIX
    for i, cidr in enumerate(cloud.subnets):
        prefix = int(cidr.split("/")[1])
        if not lo <= prefix <= hi:
            w = _subnets_where(ipam, root) if cloud.subnets_derived else root / "cloud" / "subnets" / i
            hint = "; set cloud.subnets" if cloud.subnets_derived else ""
            w.fail(f"{cidr!r} is a /{prefix}; expected an AWS subnet from /{lo} to /{hi}{hint} {for_mode}")
    table = load_instance_limits(cloud.instance_limits_file)
    for g, group in enumerate(cloud.node_groups):
        try:
            instance_limits(group.instance_type, table)
        except ConfigError as exc:
            (root / "cloud" / "nodeGroups" / g / "instanceType").fail(f"{exc} {for_mode}")
    try:
        return instance_limits(cloud.instance_type, table)
    except ConfigError as exc:
        (root / "cluster" / "instanceType").fail(f"{exc} {for_mode}")
