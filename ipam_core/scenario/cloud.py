"""Scenario keys of the cloud modes, in the vocabulary their users write.

* ``cluster.instanceType``: the EC2 instance type of every node (eksctl's default ``m5.large``).
* ``cloud.subnets``: the VPC / VNet subnets pods draw addresses from (default: the
  ``clusterPoolIPv4PodCIDRList``, so one scenario compares every mode over the same addresses);
  ``cloud.instanceLimitsFile``: an instance-limits CSV instead of the packaged one.
* ``cilium.eni``: Helm ``awsEnablePrefixDelegation``, ``awsReleaseExcessIPs``; CiliumNode
  ``spec.eni.first-interface-index`` as ``firstInterfaceIndex``.
* ``cilium.azure``: Helm values, accepted (Cilium's Azure operator never releases addresses).
* ``cilium.ipam.operator``: CiliumNode ``spec.ipam`` watermarks ``preAllocate``, ``minAllocate``,
  ``maxAllocate``, ``maxAboveWatermark``.
* ``cloud.awsVpcCni``: aws-node environment variables (``WARM_ENI_TARGET`` ...).
* ``cloud.aks.podIPAllocationMode``: ``DynamicIndividual`` or ``StaticBlock`` makes ``azure``
  simulate AKS's own pod subnet instead of Cilium's Azure IPAM.
* ``cloud.crd``: ``poolPerNode: N`` (an external writer gives each node N addresses once), or
  ``writer: watermark`` (the default: it keeps the pool at the ``cilium.ipam.operator`` watermarks).
* ``cloud.gke.maxPodsPerNode``: the node pool's max pods (default ``cluster.kubelet.maxPods``).

Each error is one line naming the dotted key and the value, as in the rest of the loader.
"""

from __future__ import annotations

from ipam_core.scenario import defaults as d
from ipam_core.scenario._values import as_bool, as_cidr, as_int, as_list, as_mapping, as_str, check_keys, show
from ipam_core.scenario._where import Where
from ipam_core.scenario.limits import MAX_PODS_PER_NODE, MAX_PODS_PER_NODE_WHY
from ipam_core.scenario.model import CloudSpec, ENISpec, VpcCniSpec, WatermarkSpec
from ipam_core.scenario.rules import check_disjoint


def _per_node(where: Where, value: object, lo: int = 0) -> int:
    """A per-node count (addresses, interfaces, prefixes): from ``lo`` to the per-node pod limit."""
    return as_int(where, value, lo=lo, hi=MAX_PODS_PER_NODE,
                  what=f"an integer >= {lo} and at most {MAX_PODS_PER_NODE:,} (a per-node count: "
                       f"{MAX_PODS_PER_NODE_WHY})")


def _env_int(where: Where, value: object, lo: int = 0) -> int:
    """An aws-node environment variable: an integer, or a string of digits as in a manifest."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return _per_node(where, value, lo=lo)


def _env_bool(where: Where, value: object) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return as_bool(where, value)


def read_cloud(root: Where, doc: dict, cluster_pool_v4: tuple[str, ...], max_pods: int | None) -> CloudSpec:
    """Read every cloud-mode key of a scenario document.

    Parameters
    ----------
    root : Where
        The document root.
    doc : dict
        The scenario document (sections already type-checked by the other readers).
    cluster_pool_v4 : tuple of str
        ``clusterPoolIPv4PodCIDRList``: the subnets when ``cloud.subnets`` is absent.
    max_pods : int or None
        ``cluster.kubelet.maxPods`` when the scenario sets it, else ``None``.

    Returns
    -------
    CloudSpec

    Raises
    ------
    ConfigError
        Unknown key, wrong type, out-of-range value, malformed or overlapping subnet, or an
        unknown ``podIPAllocationMode`` / ``writer``.
    """
    w_cloud = root / "cloud"
    cloud = as_mapping(w_cloud, doc.get("cloud"))
    check_keys(w_cloud, cloud, d.CLOUD_KEYS)
    if "subnets" in cloud:
        raw = as_list(w_cloud / "subnets", cloud["subnets"], null_ok=False)
        if not raw:
            (w_cloud / "subnets").fail("[] is empty; expected at least one IPv4 subnet CIDR")
        nets = [(w_cloud / "subnets" / i, as_cidr(w_cloud / "subnets" / i, c, 4, what="a subnet"))
                for i, c in enumerate(raw)]
        check_disjoint(nets, "subnets", "a VPC's subnets never overlap")
        subnets, derived = tuple(str(n) for _, n in nets), False
    else:
        subnets, derived = tuple(cluster_pool_v4), True
    limits_file = None
    if "instanceLimitsFile" in cloud:
        limits_file = as_str(w_cloud / "instanceLimitsFile", cloud["instanceLimitsFile"], what="a CSV path")

    w_cluster = root / "cluster"
    cluster = as_mapping(w_cluster, doc.get("cluster"))
    instance_type = d.DEFAULT_INSTANCE_TYPE
    if "instanceType" in cluster:
        instance_type = as_str(w_cluster / "instanceType", cluster["instanceType"], what="an EC2 instance type").strip()

    cilium = as_mapping(root / "cilium", doc.get("cilium"))
    w_op = root / "cilium" / "ipam" / "operator"
    op = as_mapping(w_op, as_mapping(root / "cilium" / "ipam", cilium.get("ipam")).get("operator"))
    marks = WatermarkSpec(
        pre_allocate=_per_node(w_op / "preAllocate", op["preAllocate"], lo=0) if "preAllocate" in op else None,
        min_allocate=_per_node(w_op / "minAllocate", op.get("minAllocate", 0), lo=0),
        max_allocate=_per_node(w_op / "maxAllocate", op.get("maxAllocate", 0), lo=0),
        max_above_watermark=_per_node(w_op / "maxAboveWatermark", op.get("maxAboveWatermark", 0), lo=0),
    )
    if marks.max_allocate and marks.min_allocate > marks.max_allocate:
        (w_op / "minAllocate").fail(f"{marks.min_allocate} is above maxAllocate {marks.max_allocate}; expected "
                                    "minAllocate <= maxAllocate")

    w_eni = root / "cilium" / "eni"
    eni = as_mapping(w_eni, cilium.get("eni"))
    check_keys(w_eni, eni, d.ENI_KEYS)
    eni_spec = ENISpec(
        prefix_delegation=as_bool(w_eni / "awsEnablePrefixDelegation", eni.get("awsEnablePrefixDelegation", False)),
        release_excess_ips=as_bool(w_eni / "awsReleaseExcessIPs", eni.get("awsReleaseExcessIPs", False)),
        first_interface_index=_per_node(w_eni / "firstInterfaceIndex", eni.get("firstInterfaceIndex", 0), lo=0),
    )
    w_az = root / "cilium" / "azure"
    azure = as_mapping(w_az, cilium.get("azure"))
    check_keys(w_az, azure, d.AZURE_KEYS)

    w_vpc = w_cloud / "awsVpcCni"
    vpc = as_mapping(w_vpc, cloud.get("awsVpcCni"))
    check_keys(w_vpc, vpc, d.VPC_CNI_KEYS)
    vpc_spec = VpcCniSpec(
        warm_eni_target=_env_int(w_vpc / "WARM_ENI_TARGET", vpc.get("WARM_ENI_TARGET", 1)),
        warm_ip_target=_env_int(w_vpc / "WARM_IP_TARGET", vpc.get("WARM_IP_TARGET", 0)),
        minimum_ip_target=_env_int(w_vpc / "MINIMUM_IP_TARGET", vpc.get("MINIMUM_IP_TARGET", 0)),
        warm_prefix_target=_env_int(w_vpc / "WARM_PREFIX_TARGET", vpc.get("WARM_PREFIX_TARGET", 1)),
        prefix_delegation=_env_bool(w_vpc / "ENABLE_PREFIX_DELEGATION", vpc.get("ENABLE_PREFIX_DELEGATION", False)),
        max_eni=_env_int(w_vpc / "MAX_ENI", vpc["MAX_ENI"], lo=1) if "MAX_ENI" in vpc else None,
    )
    if vpc_spec.prefix_delegation and vpc_spec.warm_prefix_target == 0 and not (
            vpc_spec.warm_ip_target and vpc_spec.minimum_ip_target):
        (w_vpc / "WARM_PREFIX_TARGET").fail("0 with ENABLE_PREFIX_DELEGATION true and WARM_IP_TARGET / "
                                            "MINIMUM_IP_TARGET unset is not supported upstream "
                                            "(docs/prefix-and-ip-target.md); expected >= 1")

    w_aks = w_cloud / "aks"
    aks = as_mapping(w_aks, cloud.get("aks"))
    check_keys(w_aks, aks, d.AKS_KEYS)
    aks_mode = ""
    if "podIPAllocationMode" in aks:
        aks_mode = aks["podIPAllocationMode"]
        if aks_mode not in d.AKS_MODES:
            (w_aks / "podIPAllocationMode").fail(f"{show(aks_mode)} is not an AKS pod IP allocation mode; expected "
                                                 f"one of: {', '.join(d.AKS_MODES)}")

    w_crd = w_cloud / "crd"
    crd = as_mapping(w_crd, cloud.get("crd"))
    check_keys(w_crd, crd, d.CRD_KEYS)
    pool_per_node = _per_node(w_crd / "poolPerNode", crd["poolPerNode"], lo=1) if "poolPerNode" in crd else 0
    writer = crd.get("writer", "static" if pool_per_node else "watermark")
    if writer not in d.CRD_WRITERS:
        (w_crd / "writer").fail(f"{show(writer)} is not a pool writer; expected one of: {', '.join(d.CRD_WRITERS)}")
    if writer == "watermark" and pool_per_node:
        (w_crd / "poolPerNode").fail(f"{pool_per_node} is set with writer: watermark; expected poolPerNode only with "
                                     "writer: static (the watermark writer sizes each pool itself)")
    crd_release = as_bool(w_crd / "releaseExcessIPs", crd.get("releaseExcessIPs", False))

    w_gke = w_cloud / "gke"
    gke = as_mapping(w_gke, cloud.get("gke"))
    check_keys(w_gke, gke, d.GKE_KEYS)
    gke_max_pods = _per_node(w_gke / "maxPodsPerNode", gke["maxPodsPerNode"], lo=1) if "maxPodsPerNode" in gke else None

    return CloudSpec(subnets=subnets, subnets_derived=derived, instance_type=instance_type,
                     instance_limits_file=limits_file, kubelet_max_pods=max_pods, watermarks=marks,
                     eni=eni_spec, vpc_cni=vpc_spec, aks_mode=aks_mode,
                     crd_pool_per_node=pool_per_node, crd_writer=writer, crd_release_excess_ips=crd_release,
                     gke_max_pods=gke_max_pods)


def check_cloud_mode(ipam, mode: str, root: Where) -> None:
    """Check that a cloud mode has what it needs (called from :func:`~ipam_core.scenario.rules.check_mode`).

    Parameters
    ----------
    ipam : IPAMSpec
    mode : str
        One of :data:`~ipam_core.scenario.defaults.CLOUD_MODES`.
    root : Where

    Raises
    ------
    ConfigError
        IPv6 enabled for a subnet mode (they model IPv4 only); no subnet; an AWS subnet outside
        /16../28; an unknown instance type; a first interface index past the instance's ENIs;
        ``crd`` without ``poolPerNode`` or ``writer: watermark``; GKE max pods outside the table;
        GKE without an IPv4 cluster CIDR that holds the node range.
    """
    from ipam_core.addr import parse_cidr
    from ipam_core.cloud import gke as gke_rules
    from ipam_core.cloud.limits import instance_limits, load_instance_limits
    from ipam_core.errors import ConfigError

    cloud = ipam.cloud
    for_mode = f"(needed by mode {mode})"
    if mode == "gke":
        pods = cloud.gke_max_pods if cloud.gke_max_pods is not None else (cloud.kubelet_max_pods or d.DEFAULT_MAX_PODS)
        w_pods = root / "cloud" / "gke" / "maxPodsPerNode" if cloud.gke_max_pods is not None else (
            root / "cluster" / "kubelet" / "maxPods")
        table = gke_rules.max_pods_table()
        if not table[0][0] <= pods <= table[-1][1]:
            w_pods.fail(f"{pods} is outside GKE's flexible pod CIDR table; expected {table[0][0]} to {table[-1][1]} "
                        f"max pods per node {for_mode}")
        mask = gke_rules.node_mask_for_max_pods(pods)
        kcm = root / "cluster" / "kubeControllerManager" / "cluster-cidr"
        cidr = ipam.kcm_cidr(4)
        if cidr is None:
            kcm.fail(f"{','.join(ipam.kcm_cluster_cidrs)!r} has no IPv4 CIDR; expected the GKE pod range {for_mode}")
        if parse_cidr(cidr).prefixlen > mask:
            kcm.fail(f"{cidr!r} is smaller than the /{mask} node range of {pods} max pods; expected "
                     f"a pod range of /{mask} or larger {for_mode}")
        return
    if ipam.ipv6:
        (root / "cilium" / "ipv6" / "enabled").fail(f"true, but mode {mode} models IPv4 subnets only; expected false "
                                                    f"{for_mode}")
    w_subnets = root / "cloud" / "subnets"
    where = root / "cilium" / "ipam" / "operator" / "clusterPoolIPv4PodCIDRList" if cloud.subnets_derived else w_subnets
    if not cloud.subnets:
        where.fail(f"[] is empty; expected at least one subnet CIDR {for_mode}")
    if mode in ("eni", "aws-vpc-cni"):
        lo, hi = d.AWS_SUBNET_PREFIX
        for i, cidr in enumerate(cloud.subnets):
            prefix = int(cidr.split("/")[1])
            if not lo <= prefix <= hi:
                w = where if cloud.subnets_derived else w_subnets / i
                hint = "; set cloud.subnets" if cloud.subnets_derived else ""
                w.fail(f"{cidr!r} is a /{prefix}; expected an AWS subnet from /{lo} to /{hi}{hint} {for_mode}")
        table = load_instance_limits(cloud.instance_limits_file)
        try:
            lim = instance_limits(cloud.instance_type, table)
        except ConfigError as exc:
            (root / "cluster" / "instanceType").fail(f"{exc} {for_mode}")
        if mode == "eni" and cloud.eni.first_interface_index >= lim.enis:
            (root / "cilium" / "eni" / "firstInterfaceIndex").fail(
                f"{cloud.eni.first_interface_index} leaves no ENI of {lim.instance_type} ({lim.enis} ENIs) for pods; "
                f"expected at most {lim.enis - 1} {for_mode}")
    if mode == "crd" and cloud.crd_writer == "static" and cloud.crd_pool_per_node == 0:
        (root / "cloud" / "crd" / "writer").fail(f"'static' without poolPerNode leaves every node's pool empty; "
                                                 f"expected poolPerNode >= 1 or writer: watermark {for_mode}")
