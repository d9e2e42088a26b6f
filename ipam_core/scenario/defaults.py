"""Scenario vocabulary: known modes, accepted keys, and upstream defaults with their sources.

docs/scenario.md documents the same table; keep the two in step.
"""

from __future__ import annotations

from ipam_core.modes import ALL_MODES, CLOUD_MODES, POOL_MODES, section_keys  # noqa: F401  (re-exported)

# Mode lists come from the mode registry (ipam_core/modes/__init__.py), the only list of modes:
# ALL_MODES, every mode a scenario, ``--mode`` or ``--modes`` may name (cilium
# ``pkg/ipam/option/option.go`` spelling); CLOUD_MODES, those of docs/cloud-modes.md, run only when named.

#: The pool modes, which the built-in default scenario runs in full.
KNOWN_MODES: tuple[str, ...] = POOL_MODES

#: What ``compare`` runs when the scenario has no ``modes:``.
DEFAULT_MODES: tuple[str, ...] = POOL_MODES

#: How the engine places pods on nodes.
SCHEDULERS: tuple[str, ...] = ("spread", "pack", "random")

#: ``cluster.addressFilter``: which nodes the scheduler sees as able to give a pod an address.
ADDRESS_FILTERS: tuple[str, ...] = ("none", "free", "warm")

# ---------------------------------------------------------------- defaults (value, source)
#: Helm ``ipam.mode`` / agent ``--ipam`` (cilium ``install/kubernetes/cilium/values.yaml``).
DEFAULT_MODE = "cluster-pool"
#: Helm ``ipv4.enabled`` / ``ipv6.enabled``.
DEFAULT_IPV4 = True
DEFAULT_IPV6 = False
#: Helm ``endpointHealthChecking.enabled``: one health endpoint IP per node and family.
DEFAULT_HEALTH_IP = True
#: Helm ``ipam.operator.clusterPoolIPv4PodCIDRList`` / ``clusterPoolIPv4MaskSize``.
DEFAULT_CLUSTER_POOL_V4 = ("10.0.0.0/8",)
DEFAULT_CLUSTER_POOL_V4_MASK = 24
#: Helm ``ipam.operator.clusterPoolIPv6PodCIDRList`` / ``clusterPoolIPv6MaskSize``
#: (the operator flag alone defaults to 112; Helm sets 120).
DEFAULT_CLUSTER_POOL_V6 = ("fd00::/104",)
DEFAULT_CLUSTER_POOL_V6_MASK = 120
#: cilium ``pkg/defaults/defaults.go`` ``IPAMMultiPoolPreAllocation``.
DEFAULT_PRE_ALLOCATION = "default=8"
#: cilium ``pkg/defaults`` ``IPAMDefaultIPPool`` (flag ``--ipam-default-ip-pool``).
DEFAULT_POOL = "default"
#: kubernetes ``cmd/kube-controller-manager/app/core.go`` defaultNodeMaskCIDRIPv4 / IPv6.
DEFAULT_KCM_NODE_MASK_V4 = 24
DEFAULT_KCM_NODE_MASK_V6 = 64
#: KCM has no default ``--cluster-cidr``; these are kind's default pod subnets
#: (sigs.k8s.io/kind ``networking.podSubnet``), used for the families Cilium enables.
DEFAULT_KCM_CLUSTER_CIDR_V4 = "10.244.0.0/16"
DEFAULT_KCM_CLUSTER_CIDR_V6 = "fd00:10:244::/56"
#: KCM's own default is false; kubeadm and kind set it when a pod subnet is given.
DEFAULT_KCM_ALLOCATE_NODE_CIDRS = True
#: kubelet ``KubeletConfiguration.maxPods`` (``pkg/kubelet/apis/config/v1beta1/defaults.go``).
DEFAULT_MAX_PODS = 110
#: kube-scheduler's default scoring (NodeResourcesFit, LeastAllocated) spreads pods.
DEFAULT_SCHEDULER = "spread"
#: kube-scheduler has no notion of a node's free pod addresses (kubernetes/enhancements#611).
DEFAULT_ADDRESS_FILTER = "none"
#: ipam-bench's own choices (no upstream default): the built-in ``default`` scenario's values.
DEFAULT_NODES = 32
DEFAULT_DURATION = "30m"
DEFAULT_SAMPLE_INTERVAL = "10s"
#: Node samples (nodes.arrow) are taken every this many ``sampleInterval``s.
NODE_SAMPLE_FACTOR = 6
DEFAULT_SEED = 0

#: ``timing:`` keys -> (default, source). Helm ``ipam.ciliumNodeUpdateRate`` sets the first too.
DEFAULT_TIMING: dict[str, tuple[str, str]] = {
    "ciliumNodeUpdateRate": ("15s", "Helm ipam.ciliumNodeUpdateRate / agent --ipam-cilium-node-update-rate"),
    "multiPoolRefresh": ("1m", "cilium pkg/ipam/multipool_manager.go: pool sync controller runs every minute"),
    "pendingAllocationTTL": ("5m", "cilium pkg/ipam/multipool_manager.go pendingAllocationTTL"),
    "operatorSyncInterval": ("1s", "cilium pkg/ipam/allocator/podcidr/podcidr.go: CiliumNode update trigger "
                                   "MinInterval"),
    "podRetryInterval": ("10s", "modelling choice: kubelet retry of a pod sandbox that got no IP"),
    "podPendingTimeout": ("5m", "modelling choice: a pod pending this long counts as failed"),
    # cloud modes (docs/cloud-modes.md)
    "excessIPReleaseDelay": ("180s", "cilium-operator --excess-ip-release-delay"),
    "ipamResyncInterval": ("1m", "cilium pkg/ipam/node_manager.go: ipam-node-interval-refresh controller"),
    "ipamdPoolInterval": ("5s", "aws/amazon-vpc-cni-k8s pkg/ipamd/ipamd.go ipPoolMonitorInterval"),
    "ipamdDecreaseInterval": ("30s", "aws/amazon-vpc-cni-k8s pkg/ipamd/ipamd.go decreaseIPPoolInterval"),
    "cnsRefreshDelay": ("1s", "Azure/azure-container-networking cns/ipampool DefaultRefreshDelay"),
}

# ---------------------------------------------------------------- accepted keys
TOP_KEYS = ("name", "description", "seed", "duration", "sampleInterval", "nodeSampleInterval", "modes",
            "cluster", "cilium", "timing", "manifests", "workload", "steps", "migration", "cloud",
            "initialState")
CLUSTER_KEYS = ("nodes", "scheduler", "addressFilter", "kubelet", "kubeControllerManager", "instanceType",
                "nodeLabels")
KUBELET_KEYS = ("maxPods",)
KCM_FLAGS = ("cluster-cidr", "node-cidr-mask-size", "node-cidr-mask-size-ipv4", "node-cidr-mask-size-ipv6",
             "allocate-node-cidrs")
#: ``cilium:`` keys: the shared ones, then the sections the modes own (``eni``, ``azure``).
CILIUM_KEYS = ("ipv4", "ipv6", "endpointHealthChecking", "ipam", *section_keys("cilium"))
FAMILY_KEYS = ("enabled",)
HEALTH_KEYS = ("enabled",)
IPAM_KEYS = ("mode", "ciliumNodeUpdateRate", "operator", "multiPoolPreAllocation", "defaultPool")
OPERATOR_KEYS = ("clusterPoolIPv4PodCIDRList", "clusterPoolIPv4MaskSize", "clusterPoolIPv6PodCIDRList",
                 "clusterPoolIPv6MaskSize", "autoCreateCiliumPodIPPools",
                 # CiliumNode spec.ipam watermarks of the CRD-backed modes (ipam_core/scenario/cloud.py)
                 "preAllocate", "minAllocate", "maxAllocate", "maxAboveWatermark")
TIMING_KEYS = tuple(DEFAULT_TIMING)

#: Annotations read by multi-pool pool selection (cilium ``pkg/annotation/k8s.go``).
ANNOTATION_POOL = "ipam.cilium.io/ip-pool"
ANNOTATION_POOL_V4 = "ipam.cilium.io/ipv4-pool"
ANNOTATION_POOL_V6 = "ipam.cilium.io/ipv6-pool"
ANNOTATION_REQUIRE_MATCH = "ipam.cilium.io/require-pool-match"
#: Every ``ipam.cilium.io/`` annotation upstream defines; any other is a typo.
KNOWN_IPAM_ANNOTATIONS = (ANNOTATION_POOL, ANNOTATION_POOL_V4, ANNOTATION_POOL_V6, ANNOTATION_REQUIRE_MATCH,
                          "ipam.cilium.io/skip-masquerade", "ipam.cilium.io/ignore")

#: Limits with their reason.
#: kubernetes cidr_set.go ``clusterSubnetMaxDiff``: node mask - cluster mask <= 16 for IPv6
#: ("the node CIDR size is too big"); Cilium's cidralloc applies the same rule.
IPV6_MAX_MASK_DIFF = 16
#: KCM ``validateCIDRs``: at most 2 ``--cluster-cidr`` entries, one per family.
KCM_MAX_CLUSTER_CIDRS = 2
#: CiliumPodIPPool CRD: ``cidrs`` has 1..32 items.
POOL_MAX_CIDRS = 32

# ---------------------------------------------------------------- cloud modes (ipam_core/scenario/cloud.py)
#: eksctl's default node instance type.
DEFAULT_INSTANCE_TYPE = "m5.large"
#: ``cloud:`` keys: the shared ones, then the sections the modes own (``awsVpcCni``, ``aks``, ``crd``, ``gke``).
CLOUD_KEYS = ("subnets", "nodeGroups", "instanceLimitsFile", "apiThrottle", *section_keys("cloud"))
#: ``cloud.apiThrottle`` keys (ipam_core/scenario/cloud_api.py).
API_THROTTLE_KEYS = ("enabled", "clientQPS", "clientBurst", "bucketSize", "refillPerSecond")
#: AKS agent pool ``podIPAllocationMode`` values.
AKS_MODES = ("DynamicIndividual", "StaticBlock")
CRD_WRITERS = ("static", "watermark")
