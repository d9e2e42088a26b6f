"""The resolved, validated scenario: frozen dataclasses the engine reads.

All durations are float seconds; CIDRs are canonical strings (``str(ipaddress network)``),
listed in the order the user wrote them (upstream allocates in list order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipam_core.scenario.node_labels import NodeLabelGroup, labels_of_nodes
from ipam_core.scenario.selection import select_pool

#: Label-selector operators of ``matchExpressions`` (``metav1.LabelSelectorOperator``).
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class LabelRequirement:
    """One ``matchExpressions`` entry: ``key``, ``operator`` and ``values``."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement.

        Notes
        -----
        Follows kubernetes ``apimachinery/pkg/labels/selector.go`` ``Requirement.Matches``:
        ``NotIn`` is true when the key is absent; ``DoesNotExist`` only when absent.
        """
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        raise ValueError(f"unknown label selector operator {self.operator!r}")


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes ``LabelSelector``: all ``match_labels`` and all ``match_expressions`` must hold.

    An empty selector (``{}``) matches every label set, as in Kubernetes
    (``metav1.LabelSelectorAsSelector``); "no selector" is ``None`` where one is used.
    """

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[LabelRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy every label and every expression of the selector.

        Parameters
        ----------
        labels : mapping of str to str
            The object's labels.

        Returns
        -------
        bool
        """
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)


@dataclass(frozen=True)
class PoolSpec:
    """One multi-pool IP pool (a ``CiliumPodIPPool``, or one derived from Helm values).

    ``ipv4_cidrs`` empty means the pool has no ``spec.ipv4`` (and then
    ``ipv4_mask_size`` is ``None``); likewise for IPv6.
    """

    name: str
    ipv4_cidrs: tuple[str, ...] = ()
    ipv4_mask_size: int | None = None
    ipv6_cidrs: tuple[str, ...] = ()
    ipv6_mask_size: int | None = None
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    allow_first_ip: bool = False
    allow_last_ip: bool = False

    def has_family(self, family: int) -> bool:
        """Whether the pool has ``spec.ipv4`` (family 4) or ``spec.ipv6`` (family 6)."""
        return bool(self.cidrs(family))

    def cidrs(self, family: int) -> tuple[str, ...]:
        """The pool's CIDRs of ``family``, in spec order."""
        return self.ipv4_cidrs if family == 4 else self.ipv6_cidrs

    def mask_size(self, family: int) -> int | None:
        """The pool's ``maskSize`` for ``family`` (``None`` without that family)."""
        return self.ipv4_mask_size if family == 4 else self.ipv6_mask_size

    @property
    def has_selector(self) -> bool:
        """Whether the pool takes part in selector matching (at least one selector set)."""
        return self.pod_selector is not None or self.namespace_selector is not None


@dataclass(frozen=True)
class NamespaceSpec:
    """A Namespace: name, labels and annotations (``ipam.cilium.io/ip-pool`` and friends)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterSpec:
    """Initial nodes, how pods are placed, and the kubelet pod limit per node.

    ``address_filter`` is the scheduler's view of pod addresses: ``none``
    (address-blind, as kube-scheduler is), ``free`` or ``warm`` (a node is
    feasible only with a free address; see docs/scenario.md).
    """

    nodes: int
    scheduler: str
    max_pods: int
    address_filter: str = "none"
    node_labels: tuple[NodeLabelGroup, ...] = ()  # cluster.nodeLabels (ipam_core/scenario/node_labels.py)

    def node_labels_for(self, node_names) -> list[Mapping[str, str]]:
        """Node id -> Kubernetes labels: its ``cluster.nodeLabels`` group's and its hostname (``labels_of_nodes``)."""
        return labels_of_nodes(self.node_labels, node_names)


# ---- cloud modes (ipam_core.modes.CLOUD_MODES): see ipam_core/scenario/cloud.py and docs/cloud-modes.md
@dataclass(frozen=True)
class WatermarkSpec:
    """CiliumNode ``spec.ipam`` watermarks (``pre-allocate`` ``None`` means the operator's default)."""

    pre_allocate: int | None = None
    min_allocate: int = 0
    max_allocate: int = 0
    max_above_watermark: int = 0


@dataclass(frozen=True)
class ENISpec:
    """Cilium Helm ``eni`` values and CiliumNode ``spec.eni`` fields the ENI mode reads."""

    prefix_delegation: bool = False
    release_excess_ips: bool = False
    first_interface_index: int = 0
    allocation_strategy: str = "upstream"  # or "dense" (CFP cilium/cilium#38499)


@dataclass(frozen=True)
class ApiThrottleSpec:
    """``cloud.apiThrottle``: token buckets on the cloud calls (``None``: the provider's default)."""

    enabled: bool = False
    client_qps: float | None = None
    client_burst: int | None = None
    bucket_size: int | None = None
    refill_per_second: float | None = None


@dataclass(frozen=True)
class VpcCniSpec:
    """``aws-node`` environment variables (AWS VPC CNI ipamd)."""

    warm_eni_target: int = 1
    warm_ip_target: int = 0
    minimum_ip_target: int = 0
    warm_prefix_target: int = 1
    prefix_delegation: bool = False
    max_eni: int | None = None
    custom_network: bool = False  # AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG
    eni_configs: tuple[tuple[str, str], ...] = ()  # ENIConfig per zone: (zone, subnet id)
    subnet_discovery: bool = True  # ENABLE_SUBNET_DISCOVERY (default true since v1.18.0)


@dataclass(frozen=True)
class SubnetReservation:
    """A subnet CIDR reservation (EC2 ``create-subnet-cidr-reservation``): ``prefix`` or ``explicit``."""

    cidr: str
    kind: str


@dataclass(frozen=True)
class SubnetSpec:
    """One ``cloud.subnets`` entry: the CIDR, its id, zone and tags, and what others hold in it.

    ``shared_used`` is the fraction of the subnet's free addresses other consumers hold, placed at
    random with the scenario's seed; ``shared_used_file`` lists the addresses / CIDRs they hold.
    """

    cidr: str
    id: str
    zone: str
    tags: tuple[tuple[str, str], ...] = ()
    shared_used: float = 0.0
    shared_used_file: str | None = None
    reservations: tuple[SubnetReservation, ...] = ()


@dataclass(frozen=True)
class NodeGroupSpec:
    """One ``cloud.nodeGroups`` entry: instances of one type in some zones, and where their interfaces go.

    ``weight`` is its ``nodes`` count or its ``share``: nodes are dealt to the groups in proportion.
    ``node_subnet_*`` select the subnets its instances launch into (an ASG's / Karpenter's subnets,
    default all); ``subnet_*`` are CiliumNode ``spec.eni.subnet-ids`` / ``subnet-tags``.
    """

    name: str
    instance_type: str
    weight: float
    zones: tuple[str, ...] = ()
    node_subnet_ids: tuple[str, ...] = ()
    node_subnet_tags: tuple[tuple[str, str], ...] = ()
    subnet_ids: tuple[str, ...] = ()
    subnet_tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CloudSpec:
    """What the cloud modes read: subnets, instance type, and each mode's settings.

    ``subnets`` are IPv4 CIDRs in the order the operator tries them; ``subnets_derived`` is
    true when they were copied from ``clusterPoolIPv4PodCIDRList`` (no ``cloud.subnets``).
    ``aks_mode`` is ``""`` for Cilium's Azure IPAM, else AKS's ``DynamicIndividual`` or
    ``StaticBlock``. ``crd_writer`` ``static`` writes ``crd_pool_per_node`` addresses once per
    node; ``watermark`` keeps the pool at the watermarks.
    """

    subnets: tuple[str, ...] = ()
    subnets_derived: bool = False
    instance_type: str = "m5.large"
    instance_limits_file: str | None = None
    kubelet_max_pods: int | None = None  # cluster.kubelet.maxPods when the scenario sets it
    watermarks: WatermarkSpec = field(default_factory=WatermarkSpec)
    eni: ENISpec = field(default_factory=ENISpec)
    vpc_cni: VpcCniSpec = field(default_factory=VpcCniSpec)
    aks_mode: str = ""
    crd_pool_per_node: int = 0
    crd_writer: str = "watermark"
    crd_release_excess_ips: bool = False
    gke_max_pods: int | None = None
    api_throttle: ApiThrottleSpec = field(default_factory=ApiThrottleSpec)
    subnet_specs: tuple[SubnetSpec, ...] = ()  # cloud.subnets with ids, zones, tags, sharing, reservations
    node_groups: tuple[NodeGroupSpec, ...] = ()  # cloud.nodeGroups (empty: one group of cluster.instanceType)


@dataclass(frozen=True)
class IPAMSpec:
    """Everything the IPAM modes read: families, per-mode pools, masks and pre-allocation.

    Every mode's settings are kept (``cluster_pool_*``, ``kcm_*``, ``pools``), so one
    scenario can be run under each mode (:func:`ipam_core.scenario.scenario_for_mode`).
    ``pools_derived`` is true when no pool was configured and ``pools`` holds the default
    pool built from the cluster-pool lists (as Helm ``autoCreateCiliumPodIPPools`` would).
    """

    mode: str
    ipv4: bool
    ipv6: bool
    health_ip: bool
    cluster_pool_v4: tuple[str, ...]
    cluster_pool_v4_mask: int
    cluster_pool_v6: tuple[str, ...]
    cluster_pool_v6_mask: int
    kcm_cluster_cidrs: tuple[str, ...]
    kcm_node_mask_v4: int
    kcm_node_mask_v6: int
    kcm_allocate_node_cidrs: bool
    pools: tuple[PoolSpec, ...]
    pre_allocation: Mapping[str, int]
    default_pool: str
    pools_derived: bool = False
    cloud: CloudSpec = field(default_factory=CloudSpec)  # cloud modes (ipam_core/scenario/cloud.py)
    calico: Any = None  # ipam_core.scenario.calico.CalicoManifests: IPPools and IPAM settings (mode calico)

    @property
    def families(self) -> tuple[int, ...]:
        """Enabled IP families, IPv4 first: ``(4,)``, ``(6,)`` or ``(4, 6)``."""
        return tuple(f for f, on in ((4, self.ipv4), (6, self.ipv6)) if on)

    def pool(self, name: str) -> PoolSpec | None:
        """The pool called ``name``, or ``None`` (upstream then fails the allocation)."""
        for pool in self.pools:
            if pool.name == name:
                return pool
        return None

    def kcm_cidr(self, family: int) -> str | None:
        """The KCM ``--cluster-cidr`` entry of ``family``, or ``None``."""
        for cidr in self.kcm_cluster_cidrs:
            if (":" in cidr) == (family == 6):
                return cidr
        return None

    def kcm_node_mask(self, family: int) -> int:
        """The KCM node CIDR mask for ``family``."""
        return self.kcm_node_mask_v4 if family == 4 else self.kcm_node_mask_v6


@dataclass(frozen=True)
class Timing:
    """Upstream delays, in seconds (see docs/scenario.md for each source)."""

    cilium_node_update_rate_s: float
    multi_pool_refresh_s: float
    pending_allocation_ttl_s: float
    operator_sync_interval_s: float
    pod_retry_interval_s: float
    pod_pending_timeout_s: float
    # cloud modes (docs/cloud-modes.md)
    excess_ip_release_delay_s: float = 180.0
    ipam_resync_interval_s: float = 60.0
    ipamd_pool_interval_s: float = 5.0
    ipamd_decrease_interval_s: float = 30.0
    cns_refresh_delay_s: float = 1.0


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: cluster, IPAM settings, timing, namespaces and workload.

    ``workload`` is what ``ipam_core.workloads.parse_workload`` returned; ``steps`` is the
    raw ``steps:`` list and ``migration`` the raw ``migration:`` mapping, both validated by
    ``ipam_core.migration``; ``source_text`` is the YAML the scenario was read from (hashed
    into trace metadata).
    """

    name: str
    description: str
    seed: int
    duration_s: float
    sample_interval_s: float
    node_sample_interval_s: float
    modes: tuple[str, ...]
    cluster: ClusterSpec
    ipam: IPAMSpec
    timing: Timing
    namespaces: tuple[NamespaceSpec, ...]
    workload: Any
    steps: tuple[Any, ...] = ()
    migration: Any = None
    source_text: str = ""
    source_path: Path | None = None
    initial_state: Any = None  # scenario.initial_state.InitialState: where the cluster's own mode starts

    def namespace(self, name: str) -> NamespaceSpec:
        """The Namespace ``name``; one without labels or annotations when not declared."""
        for ns in self.namespaces:
            if ns.name == name:
                return ns
        return NamespaceSpec(name)

    def select_pool(self, family: int, namespace: str, *, pod_annotations: Mapping[str, str] | None = None,
                    pod_labels: Mapping[str, str] | None = None, pod_name: str = "") -> str:
        """Multi-pool pool for a pod of ``namespace``: see :func:`ipam_core.scenario.select_pool`."""
        return select_pool(self.ipam, family, namespace=self.namespace(namespace),
                           pod_annotations=pod_annotations, pod_labels=pod_labels, pod_name=pod_name)
