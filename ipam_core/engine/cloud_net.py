"""The network a subnet mode runs in: node groups, zones, and which subnet an interface goes to.

Built once per run from the scenario (``cloud.subnets`` entries with zones and tags,
``cloud.nodeGroups``) and the mode module: each group's :class:`CloudConfig` is the mode's own,
resolved for the group's instance type, so a cluster can mix instance types. The compiled rules
that read it are in :mod:`ipam_core.modes.cloud_pool` (``init_cloud``, ``_node_subnet``,
``_iface_subnet``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ipam_core.engine.cloud_config import PICK_NODE_SUBNET, CloudConfig


@dataclass(frozen=True)
class PlainSubnet:
    """A subnet given as a bare CIDR: alone in its zone, no tags (the scenario's ``SubnetSpec`` reads the same)."""

    cidr: str
    id: str
    zone: str
    tags: tuple = ()
    shared_used: float = 0.0
    shared_used_file: str | None = None
    reservations: tuple = ()


@dataclass(frozen=True)
class _DefaultGroup:
    instance_type: str
    zones: tuple
    weight: float = 1.0
    node_subnet_ids: tuple = ()
    node_subnet_tags: tuple = ()
    subnet_ids: tuple = ()
    subnet_tags: tuple = ()


def _matches(subnet, tags) -> bool:
    own = dict(subnet.tags)
    return all(own.get(k) == v for k, v in tags)


def subnets_selected(subnets, ids, tags) -> list[int]:
    """Indices of the subnets an id list (first) or a tag filter selects; every subnet when both are empty.

    Follows cilium ``pkg/aws/eni/instances.go`` ``FindSubnetByIDs`` / ``FindSubnetByTags``: ids take
    precedence; a tag filter matches a subnet carrying every ``key: value`` of it.
    """
    if ids:
        return [i for i, s in enumerate(subnets) if s.id in ids]
    return [i for i, s in enumerate(subnets) if _matches(s, tags)]


@dataclass(frozen=True)
class CloudNet:
    """Node groups and subnets of one run, resolved to numbers.

    Attributes
    ----------
    configs : tuple of CloudConfig
        Per group: the mode's settings for its instance type.
    ipv4 : tuple of int
        Per group: addresses one interface holds (cilium ``limits.IPv4``), 0 outside AWS.
    pick : tuple of int
        Per group: how an extra interface's subnet is chosen (``PICK_*`` of :mod:`ipam_core.engine.tables`).
    launch, flagged : numpy.ndarray
        bool [groups, subnets]: where the group's instances launch; the subnets its rule flags
        (Cilium ``subnet-ids`` / ``-tags``, ENIConfig subnets, discovery-tagged subnets).
    weights : tuple of float
    group_zones : tuple of numpy.ndarray
        Per group, its zone indices.
    subnet_zone : numpy.ndarray
        int64 [subnets]: each subnet's zone index.
    subnets : tuple
        The scenario's ``SubnetSpec`` entries (or :class:`PlainSubnet`).
    seed : int
    """

    configs: tuple[CloudConfig, ...]
    ipv4: tuple[int, ...]
    pick: tuple[int, ...]
    launch: np.ndarray
    flagged: np.ndarray
    weights: tuple[float, ...]
    group_zones: tuple[np.ndarray, ...]
    subnet_zone: np.ndarray
    subnets: tuple
    seed: int

    def merged(self) -> CloudConfig:
        """The run's one :class:`CloudConfig`: the first group's, tables sized for the largest instance."""
        first = self.configs[0]
        return replace(first, ifaces=max(c.ifaces for c in self.configs), units=max(c.units for c in self.configs),
                       max_pods=max(c.max_pods for c in self.configs))


def _with_instance(scenario, instance_type: str):
    cloud = replace(scenario.ipam.cloud, instance_type=instance_type)
    return replace(scenario, ipam=replace(scenario.ipam, cloud=cloud))


def largest_group(scenario, per_instance) -> int:
    """The largest value of ``per_instance`` over the node groups' instance types.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
    per_instance : callable
        ``per_instance(scenario) -> int`` for the scenario's ``cloud.instanceType``.

    Returns
    -------
    int
        Over ``cloud.nodeGroups`` (``cluster.instanceType`` without them), as
        :meth:`CloudNet.merged` sizes the tables: a mode's ``max_pods`` is this, so the
        engine sizes its scheduler keys without resolving the network twice.
    """
    spec = scenario.ipam.cloud
    types = [group.instance_type for group in spec.node_groups] or [spec.instance_type]
    return max(per_instance(_with_instance(scenario, kind)) for kind in types)


def _no_extra_subnets(spec, group, subnets) -> tuple[int, list[int]]:
    return PICK_NODE_SUBNET, []  # every interface in the node's own subnet


def cloud_net(module, scenario) -> CloudNet:
    """Resolve the scenario's node groups and subnets for a subnet mode.

    Parameters
    ----------
    module : module
        The mode module: its ``cloud(scenario)`` builds each group's config; optionally
        ``interface_subnets(spec, group, subnets) -> (PICK_*, subnet indices)`` picks the
        subnets of a node's extra interfaces (default: the node's own subnet) and
        ``ipv4_per_interface(scenario, instance_type)`` gives the addresses one interface
        holds (default 0: the mode does not count per interface).
    scenario : ipam_core.scenario.Scenario

    Returns
    -------
    CloudNet
        Without ``cloud.nodeGroups``: one group of ``cluster.instanceType`` over every subnet.
    """
    spec = scenario.ipam.cloud
    subnets = spec.subnet_specs or tuple(PlainSubnet(c, f"subnet-{i}", f"zone-{i}") for i, c in enumerate(spec.subnets))
    zones = list(dict.fromkeys(s.zone for s in subnets))
    subnet_zone = np.array([zones.index(s.zone) for s in subnets], dtype=np.int64)
    groups = spec.node_groups or (_DefaultGroup(spec.instance_type, tuple(zones)),)
    n_sub = len(subnets)
    launch = np.zeros((len(groups), n_sub), dtype=bool)
    flagged = np.zeros((len(groups), n_sub), dtype=bool)
    configs, ipv4, pick, group_zones = [], [], [], []
    interface_subnets = getattr(module, "interface_subnets", _no_extra_subnets)
    per_interface = getattr(module, "ipv4_per_interface", None)
    for g, group in enumerate(groups):
        own = _with_instance(scenario, group.instance_type)
        configs.append(module.cloud(own))
        ipv4.append(per_interface(scenario, group.instance_type) if per_interface else 0)
        rule, marked = interface_subnets(spec, group, subnets)
        pick.append(rule)
        flagged[g, marked] = True
        launch[g, subnets_selected(subnets, group.node_subnet_ids, group.node_subnet_tags)] = True
        group_zones.append(np.array([zones.index(z) for z in group.zones], dtype=np.int64))
    return CloudNet(tuple(configs), tuple(ipv4), tuple(pick), launch, flagged, tuple(g.weight for g in groups),
                    tuple(group_zones), subnet_zone, subnets, int(scenario.seed))
