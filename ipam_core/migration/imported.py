"""The cluster ``migrate --plan`` starts from when the scenario names its dumped state (``initialState``).

``ipam-bench import`` writes a host-scope (``kubernetes``), ``cluster-pool`` or ``multi-pool``
cluster's node CIDRs and pod addresses to ``initial-state.json``; the scenario loader has checked
them against the mode's pools (:mod:`ipam_core.scenario.initial_state`). The planner's
:class:`~ipam_core.migration.engine.MigrationEngine` then boots those nodes holding exactly
their CIDRs (kube-controller-manager's ``Occupy`` of a restarted ``range_allocator.go``, the
CiliumNodes' ``spec.ipam.podCIDRs`` that the cluster-pool operator occupies at its resync,
``podcidr.go``, or their ``spec.ipam.pools.allocated`` that the multi-pool operator occupies,
``pkg/ipam/allocator/multipool``) and those pods running at exactly their addresses, in
multi-pool each in the pool of the CIDR holding it, instead of a generated steady state.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

import numpy as np

from ipam_core.migration.objects import PodTemplate
from ipam_core.modes import REGISTRY, RULES_MULTI_POOL, RULES_NODE_CIDR

#: The start modes whose dumped state the planner reproduces: the Cilium node-CIDR modes and multi-pool (IPv4).
MODES = tuple(name for name, spec in REGISTRY.items()
              if spec.rules in (RULES_NODE_CIDR, RULES_MULTI_POOL) and spec.helm_mode == name)

#: The pod annotation naming a multi-pool pod's pool (what the engine's agents read).
POOL_ANNOTATION = "ipam.cilium.io/ip-pool"


@dataclass(frozen=True)
class ImportedCluster:
    """Node CIDRs and running pods of a dumped cluster.

    Attributes
    ----------
    node_cidrs : dict of str to str
        Node name -> its IPv4 CIDR (``kubernetes``, ``cluster-pool``; empty in multi-pool).
    pods : tuple of (PodTemplate, int)
        Each running pod with an address, as a bare Pod pinned to its node (the dump names no
        owner), and its address as an integer. In multi-pool the template carries the
        ``ipam.cilium.io/ip-pool`` annotation of the pool whose CIDR holds the address.
    node_pools : dict of str to dict of str to list of str
        Multi-pool: node name -> pool -> its CIDRs in the order the CiliumNode lists them
        (``spec.ipam.pools.allocated``); empty in the other modes.
    """

    node_cidrs: dict
    pods: tuple
    node_pools: dict = field(default_factory=dict)

    def address_of(self, template: PodTemplate) -> int:
        """The dumped address of a pod of :attr:`pods`."""
        return self._by_key[template.key]

    def addresses_on(self, node: str) -> np.ndarray:
        """The dumped addresses (int64) of the pods of :attr:`pods` running on ``node``."""
        return self._by_node.get(node, _NONE)

    def __post_init__(self):
        object.__setattr__(self, "_by_key", {t.key: addr for t, addr in self.pods})
        by_node: dict[str, list[int]] = {}
        for t, addr in self.pods:
            by_node.setdefault(t.node_name, []).append(addr)
        object.__setattr__(self, "_by_node", {k: np.array(v, dtype=np.int64) for k, v in by_node.items()})


_NONE = np.zeros(0, dtype=np.int64)


def imported_cluster(scenario, start_mode: str) -> ImportedCluster | None:
    """The scenario's dumped cluster, when ``migrate`` can start from it.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
    start_mode : str
        The mode the scenario's Helm values install.

    Returns
    -------
    ImportedCluster or None
        None without ``initialState``, when it is for another mode or does not fit the
        settings, or when the cluster is not an IPv4 ``kubernetes`` / ``cluster-pool`` /
        ``multi-pool`` one.
    """
    initial = scenario.initial_state
    if initial is None or not initial.starts or initial.mode != start_mode or start_mode not in MODES:
        return None
    doc = json.loads(initial.path.read_text(encoding="utf-8"))  # checked when the scenario loaded
    if doc.get("families", [4]) != [4]:
        return None
    if REGISTRY[start_mode].rules == RULES_MULTI_POOL:
        pools = {n["name"]: {pool: list(cidrs) for pool, cidrs in n.get("pools", {}).items() if cidrs}
                 for n in doc["nodes"]}
        pools = {name: held for name, held in pools.items() if held}
        cidrs = {}
        holders = {name: [(pool, ipaddress.IPv4Network(c)) for pool, cs in held.items() for c in cs]
                   for name, held in pools.items()}
    else:
        pools = {}
        cidrs = {n["name"]: n["podCIDRs"][0] for n in doc["nodes"] if n.get("podCIDRs")}
        holders = {name: [] for name in cidrs}
    pods = []
    for pod in doc["pods"]:
        if not pod.get("ips") or pod.get("node") not in holders:
            continue  # pending: the planner's pods are the running ones
        ip = ipaddress.IPv4Address(pod["ips"][0])
        # multi-pool: the pool of the node CIDR holding the address (the loader checked one does)
        pool = next((name for name, net in holders[pod["node"]] if ip in net), None)
        template = PodTemplate("Pod", pod.get("namespace", "default"), pod["name"], node_name=pod["node"],
                               annotations={POOL_ANNOTATION: pool} if pool else {})
        pods.append((template, int(ip)))
    return ImportedCluster(cidrs, tuple(pods), pools)
