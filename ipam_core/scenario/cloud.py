"""Scenario keys of the cloud modes, in the vocabulary their users write.

* ``cluster.instanceType``: the EC2 instance type of every node (eksctl's default ``m5.large``).
* ``cloud.subnets``: the VPC / VNet subnets pods draw addresses from (default: the
  ``clusterPoolIPv4PodCIDRList``, so one scenario compares every mode over the same addresses);
  entries may be mappings with zone, tags, shared use and reservations, and ``cloud.nodeGroups``
  lists instance groups (:mod:`ipam_core.scenario.cloud_net`);
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
* ``cloud.apiThrottle``, ``cilium.eni.allocationStrategy``: :mod:`ipam_core.scenario.cloud_api`.

Each error is one line naming the dotted key and the value, as in the rest of the loader.
"""

from __future__ import annotations

from ipam_core.modes import REGISTRY
from ipam_core.scenario import defaults as d
from pathlib import Path

from ipam_core.scenario._values import as_bool, as_int, as_list, as_mapping, as_str, check_keys, show
from ipam_core.scenario._where import Where
from ipam_core.scenario.cloud_api import read_allocation_strategy, read_api_throttle
from ipam_core.scenario.cloud_net import read_eni_configs, read_node_groups, read_subnets
from ipam_core.scenario.limits import MAX_PODS_PER_NODE, MAX_PODS_PER_NODE_WHY
from ipam_core.scenario.model import CloudSpec, ENISpec, SubnetSpec, VpcCniSpec, WatermarkSpec


#: Dotted path of each mode-owned section (``cilium.eni``, ``cloud.crd``) -> the keys it accepts.
_SECTION_KEYS = {section.path: section.keys for spec in REGISTRY.values() for section in spec.sections}


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


def read_cloud(root: Where, doc: dict, cluster_pool_v4: tuple[str, ...], max_pods: int | None,
               base: Path | None = None) -> CloudSpec:
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
    base : pathlib.Path, optional
        The scenario file's folder: relative ``sharedUsedFile`` paths resolve against it.

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
        subnet_specs = read_subnets(w_cloud / "subnets", raw, base)
        subnets, derived = tuple(s.cidr for s in subnet_specs), False
    else:
        subnets, derived = tuple(cluster_pool_v4), True
        subnet_specs = tuple(SubnetSpec(c, f"subnet-{i}", f"zone-{i}") for i, c in enumerate(subnets))
    limits_file = None
    if "instanceLimitsFile" in cloud:
        limits_file = as_str(w_cloud / "instanceLimitsFile", cloud["instanceLimitsFile"], what="a CSV path")

    w_cluster = root / "cluster"
    cluster = as_mapping(w_cluster, doc.get("cluster"))
    instance_type = d.DEFAULT_INSTANCE_TYPE
    if "instanceType" in cluster:
        instance_type = as_str(w_cluster / "instanceType", cluster["instanceType"], what="an EC2 instance type").strip()

    groups = ()
    if "nodeGroups" in cloud:
        groups = read_node_groups(w_cloud / "nodeGroups", cloud["nodeGroups"], subnet_specs, instance_type)

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
    check_keys(w_eni, eni, _SECTION_KEYS["cilium.eni"])
    eni_pd = as_bool(w_eni / "awsEnablePrefixDelegation", eni.get("awsEnablePrefixDelegation", False))
    eni_spec = ENISpec(
        prefix_delegation=eni_pd,
        release_excess_ips=as_bool(w_eni / "awsReleaseExcessIPs", eni.get("awsReleaseExcessIPs", False)),
        first_interface_index=_per_node(w_eni / "firstInterfaceIndex", eni.get("firstInterfaceIndex", 0), lo=0),
        allocation_strategy=read_allocation_strategy(w_eni, eni, eni_pd),
    )
    w_az = root / "cilium" / "azure"
    azure = as_mapping(w_az, cilium.get("azure"))
    check_keys(w_az, azure, _SECTION_KEYS["cilium.azure"])

    w_vpc = w_cloud / "awsVpcCni"
    vpc = as_mapping(w_vpc, cloud.get("awsVpcCni"))
    check_keys(w_vpc, vpc, _SECTION_KEYS["cloud.awsVpcCni"])
    vpc_spec = VpcCniSpec(
        warm_eni_target=_env_int(w_vpc / "WARM_ENI_TARGET", vpc.get("WARM_ENI_TARGET", 1)),
        warm_ip_target=_env_int(w_vpc / "WARM_IP_TARGET", vpc.get("WARM_IP_TARGET", 0)),
        minimum_ip_target=_env_int(w_vpc / "MINIMUM_IP_TARGET", vpc.get("MINIMUM_IP_TARGET", 0)),
        warm_prefix_target=_env_int(w_vpc / "WARM_PREFIX_TARGET", vpc.get("WARM_PREFIX_TARGET", 1)),
        prefix_delegation=_env_bool(w_vpc / "ENABLE_PREFIX_DELEGATION", vpc.get("ENABLE_PREFIX_DELEGATION", False)),
        max_eni=_env_int(w_vpc / "MAX_ENI", vpc["MAX_ENI"], lo=1) if "MAX_ENI" in vpc else None,
        custom_network=_env_bool(w_vpc / "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG",
                                 vpc.get("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", False)),
        eni_configs=read_eni_configs(w_vpc / "eniConfigs", vpc["eniConfigs"], subnet_specs)
        if "eniConfigs" in vpc else (),
        subnet_discovery=_env_bool(w_vpc / "ENABLE_SUBNET_DISCOVERY", vpc.get("ENABLE_SUBNET_DISCOVERY", True)),
    )
    if vpc_spec.custom_network and not vpc_spec.eni_configs:
        (w_vpc / "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG").fail("true without eniConfigs; expected eniConfigs (zone: "
                                                            "subnet id, one ENIConfig per zone)")
    if vpc_spec.prefix_delegation and vpc_spec.warm_prefix_target == 0 and not (
            vpc_spec.warm_ip_target and vpc_spec.minimum_ip_target):
        (w_vpc / "WARM_PREFIX_TARGET").fail("0 with ENABLE_PREFIX_DELEGATION true and WARM_IP_TARGET / "
                                            "MINIMUM_IP_TARGET unset is not supported upstream "
                                            "(docs/prefix-and-ip-target.md); expected >= 1")

    w_aks = w_cloud / "aks"
    aks = as_mapping(w_aks, cloud.get("aks"))
    check_keys(w_aks, aks, _SECTION_KEYS["cloud.aks"])
    aks_mode = ""
    if "podIPAllocationMode" in aks:
        aks_mode = aks["podIPAllocationMode"]
        if aks_mode not in d.AKS_MODES:
            (w_aks / "podIPAllocationMode").fail(f"{show(aks_mode)} is not an AKS pod IP allocation mode; expected "
                                                 f"one of: {', '.join(d.AKS_MODES)}")

    w_crd = w_cloud / "crd"
    crd = as_mapping(w_crd, cloud.get("crd"))
    check_keys(w_crd, crd, _SECTION_KEYS["cloud.crd"])
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
    check_keys(w_gke, gke, _SECTION_KEYS["cloud.gke"])
    gke_max_pods = _per_node(w_gke / "maxPodsPerNode", gke["maxPodsPerNode"], lo=1) if "maxPodsPerNode" in gke else None

    return CloudSpec(subnets=subnets, subnets_derived=derived, instance_type=instance_type,
                     instance_limits_file=limits_file, kubelet_max_pods=max_pods, watermarks=marks,
                     eni=eni_spec, vpc_cni=vpc_spec, aks_mode=aks_mode,
                     crd_pool_per_node=pool_per_node, crd_writer=writer, crd_release_excess_ips=crd_release,
                     gke_max_pods=gke_max_pods, api_throttle=read_api_throttle(w_cloud, cloud),
                     subnet_specs=subnet_specs, node_groups=groups)
