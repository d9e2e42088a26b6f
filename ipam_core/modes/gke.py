"""GKE sizing as a preset of host scope (``gke``): the node's pod range follows its max pods.

GKE (VPC-native, Dataplane V2 = Cilium in ``kubernetes`` IPAM mode) gives each
node a pod range from the cluster's pod range sized for at least twice the node
pool's max pods: /28 for 8 pods up to /24 for 65–110
(cloud.google.com ``kubernetes-engine/docs/how-to/flexible-pod-cidr``, the
``gke`` rows of ``cloud_pod_cidr_limits.csv``; :mod:`ipam_core.cloud.gke`).
Everything else is the ``kubernetes`` mode: ranges carved next fit from the
cluster CIDR when a node joins, released when it leaves, router and health
addresses taken by the agent. The kubelet's max pods is the node pool's.
"""

from __future__ import annotations

from ipam_core.addr import parse_cidr
from ipam_core.cloud import gke as gke_rules
from ipam_core.cloud.gke import DEFAULT_MAX_PODS, node_mask_for_max_pods
from ipam_core.engine.layout import Layout
from ipam_core.modes import node_cidr  # noqa: F401 (registers the node-CIDR rules with the loop)
from ipam_core.modes._common import families, host_scope_layout
from ipam_core.modes.spec import RULES_NODE_CIDR, ModeSpec, Section

NAME = "gke"
#: ``cloud.gke`` keys.
KEYS = ("maxPodsPerNode",)
UPSTREAM = (
    "GKE docs kubernetes-engine/docs/how-to/flexible-pod-cidr",
    "kubernetes pkg/controller/nodeipam/ipam/cidrset/cidr_set.go",
    "cilium pkg/ipam/hostscope.go",
)


def max_pods(scenario) -> int:
    """The node pool's max pods: ``cloud.gke.maxPodsPerNode``, else ``cluster.kubelet.maxPods``."""
    cloud = scenario.ipam.cloud
    if cloud.gke_max_pods is not None:
        return cloud.gke_max_pods
    return scenario.cluster.max_pods if scenario.cluster.max_pods else DEFAULT_MAX_PODS


def layout(scenario) -> Layout:
    """The KCM IPv4 cluster CIDR carved into ranges sized by the max-pods table.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        Validated scenario (``scenario_for_mode`` checked the table and the cluster CIDR).

    Returns
    -------
    Layout
    """
    ipam = scenario.ipam
    enabled = families(ipam)
    by_family: dict[int, tuple[tuple[str, ...], int]] = {}
    for cidr in ipam.kcm_cluster_cidrs:
        family = 1 if ":" in cidr else 0
        mask = ipam.kcm_node_mask_v6 if family else node_mask_for_max_pods(max_pods(scenario))
        by_family[family] = ((cidr,), mask)
    return host_scope_layout(NAME, "gke-pod-range", by_family, enabled, revert_partial=False)


def check(ipam, root) -> None:
    """What the mode needs: max pods inside GKE's table, and an IPv4 cluster CIDR holding the node range.

    Parameters
    ----------
    ipam : ipam_core.scenario.IPAMSpec
        The scenario's resolved IPAM settings.
    root : ipam_core.scenario._where.Where
        The document root: errors name its keys and lines.

    Raises
    ------
    ConfigError
        Max pods outside the flexible pod CIDR table; no IPv4 cluster CIDR, or one smaller
        than the node range.
    """
    cloud = ipam.cloud
    for_mode = f"(needed by mode {NAME})"
    pods = cloud.gke_max_pods if cloud.gke_max_pods is not None else (cloud.kubelet_max_pods or DEFAULT_MAX_PODS)
    w_pods = root / "cloud" / "gke" / "maxPodsPerNode" if cloud.gke_max_pods is not None else (
        root / "cluster" / "kubelet" / "maxPods")
    table = gke_rules.max_pods_table()
    if not table[0][0] <= pods <= table[-1][1]:
        w_pods.fail(f"{pods} is outside GKE's flexible pod CIDR table; expected {table[0][0]} to {table[-1][1]} "
                    f"max pods per node {for_mode}")
    mask = node_mask_for_max_pods(pods)
    kcm = root / "cluster" / "kubeControllerManager" / "cluster-cidr"
    cidr = ipam.kcm_cidr(4)
    if cidr is None:
        kcm.fail(f"{','.join(ipam.kcm_cluster_cidrs)!r} has no IPv4 CIDR; expected the GKE pod range {for_mode}")
    if parse_cidr(cidr).prefixlen > mask:
        kcm.fail(f"{cidr!r} is smaller than the /{mask} node range of {pods} max pods; expected "
                 f"a pod range of /{mask} or larger {for_mode}")


MODE = ModeSpec(
    name=NAME, rules=RULES_NODE_CIDR, settings="cloud.gke", helm_mode="kubernetes",
    migration=False, cloud=True, check=check, sections=(Section("cloud.gke", KEYS),), upstream=UPSTREAM,
    summary="GKE (Dataplane V2): kubernetes mode with each node's pod range sized by its max pods",
)
