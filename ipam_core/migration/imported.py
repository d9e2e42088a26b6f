"""The cluster ``migrate --plan`` starts from when the scenario names its dumped state (``initialState``).

``ipam-bench import`` writes a host-scope (``kubernetes``) or ``cluster-pool`` cluster's node
CIDRs and pod addresses to ``initial-state.json``; the scenario loader has checked them against
the mode's pools (:mod:`ipam_core.scenario.initial_state`). The planner's
:class:`~ipam_core.migration.engine.MigrationEngine` then boots those nodes holding exactly
their CIDRs (kube-controller-manager's ``Occupy`` of a restarted ``range_allocator.go``, or
the CiliumNodes' ``spec.ipam.podCIDRs`` that the cluster-pool operator occupies at its
resync, ``podcidr.go``) and those pods running at exactly their addresses, instead of a
generated steady state.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from ipam_core.migration.objects import PodTemplate
from ipam_core.modes import REGISTRY, RULES_NODE_CIDR

#: The start modes whose dumped state the planner reproduces: the Cilium node-CIDR modes (IPv4).
MODES = tuple(name for name, spec in REGISTRY.items() if spec.rules == RULES_NODE_CIDR and spec.helm_mode == name)


@dataclass(frozen=True)
class ImportedCluster:
    """Node CIDRs and running pods of a dumped cluster.

    Attributes
    ----------
    node_cidrs : dict of str to str
        Node name -> its IPv4 CIDR.
    pods : tuple of (PodTemplate, int)
        Each running pod with an address, as a bare Pod pinned to its node (the dump names no
        owner), and its address as an integer.
    """

    node_cidrs: dict
    pods: tuple

    def address_of(self, template: PodTemplate) -> int:
        """The dumped address of a pod of :attr:`pods`."""
        return self._by_key[template.key]

    def __post_init__(self):
        object.__setattr__(self, "_by_key", {t.key: addr for t, addr in self.pods})


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
        settings, or when the cluster is not an IPv4 ``kubernetes`` / ``cluster-pool`` one.
    """
    initial = scenario.initial_state
    if initial is None or not initial.starts or initial.mode != start_mode or start_mode not in MODES:
        return None
    doc = json.loads(initial.path.read_text(encoding="utf-8"))  # checked when the scenario loaded
    if doc.get("families", [4]) != [4]:
        return None
    cidrs = {n["name"]: n["podCIDRs"][0] for n in doc["nodes"] if n.get("podCIDRs")}
    pods = []
    for pod in doc["pods"]:
        if not pod.get("ips") or pod.get("node") not in cidrs:
            continue  # pending: the planner's pods are the running ones
        template = PodTemplate("Pod", pod.get("namespace", "default"), pod["name"], node_name=pod["node"])
        pods.append((template, int(ipaddress.IPv4Address(pod["ips"][0]))))
    return ImportedCluster(cidrs, tuple(pods))
