"""``cluster.nodeLabels``: Kubernetes labels on the cluster's nodes, for selectors that read them.

Each entry is ``{nodes: <count> | share: <weight>, labels: {key: value, ...}}``, the way
``cloud.nodeGroups`` sizes its groups: node ids are dealt to the entries in proportion to
``nodes`` (or ``share``), interleaved (:func:`ipam_core.cloud.placement.deal_nodes`), so nodes
the workload adds later keep the proportions. Every node also carries
``kubernetes.io/hostname: <node name>``, as the kubelet sets it. Calico's IPPool
``nodeSelector`` reads them (calico-node copies a node's Kubernetes labels to its Calico Node:
``KubeControllersConfiguration`` ``syncLabels``).

Label keys and values follow Kubernetes' syntax (``apimachinery/pkg/util/validation``
``IsQualifiedName`` / ``IsValidLabelValue``); each error is one line naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ipam_core.cloud.placement import deal_nodes
from ipam_core.scenario._values import as_list, as_mapping, check_keys, kind_of, node_group_weight, show
from ipam_core.scenario._where import Where

NODE_LABEL_KEYS = ("nodes", "share", "labels")
HOSTNAME_LABEL = "kubernetes.io/hostname"
_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]"
_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}$")
_VALUE = re.compile(rf"^({_NAME})?$")


@dataclass(frozen=True)
class NodeLabelGroup:
    """One ``cluster.nodeLabels`` entry: a weight (node count or share) and the labels its nodes carry."""

    weight: float
    labels: tuple[tuple[str, str], ...]


def read_node_labels(where: Where, value: object) -> tuple[NodeLabelGroup, ...]:
    """Read ``cluster.nodeLabels``.

    Parameters
    ----------
    where : Where
        Position of ``cluster.nodeLabels``.
    value : list or None

    Returns
    -------
    tuple of NodeLabelGroup

    Raises
    ------
    ConfigError
        Not a list of mappings, an unknown key, both ``nodes`` and ``share``, a count or share
        <= 0, labels that are not a mapping of label keys to label values.
    """
    groups = []
    for i, raw in enumerate(as_list(where, value)):
        w = where / i
        entry = as_mapping(w, raw, null_ok=False)
        check_keys(w, entry, NODE_LABEL_KEYS)
        weight = node_group_weight(w, entry)
        if "labels" not in entry:
            w.fail("missing 'labels'; expected a mapping of label keys to values, e.g. {accelerator: nvidia}")
        groups.append(NodeLabelGroup(weight, _labels(w / "labels", entry["labels"])))
    return tuple(groups)


def _labels(where: Where, value: object) -> tuple[tuple[str, str], ...]:
    out = []
    for key, val in as_mapping(where, value, null_ok=False).items():
        if not isinstance(key, str) or not _KEY.match(key):
            (where / str(key)).fail(f"{show(key)} is not a label key; expected [prefix/]name, name up to 63 "
                                    "characters of letters, digits, '-', '_', '.'")
        if key == HOSTNAME_LABEL:
            (where / key).fail(f"{show(val)} would replace the node's own hostname label; expected it left out "
                               "(every node carries kubernetes.io/hostname: <its name>)")
        if not isinstance(val, str) or not _VALUE.match(val):
            hint = " (quote it)" if isinstance(val, (bool, int, float)) else ""
            (where / key).fail(f"{show(val)} is {kind_of(val)}; expected a label value: up to 63 letters, digits, "
                               f"'-', '_', '.', starting and ending with a letter or digit{hint}")
        out.append((key, val))
    return tuple(out)


def labels_of_nodes(groups: Sequence[NodeLabelGroup], node_names: Sequence[str]) -> list[Mapping[str, str]]:
    """Each node's labels: its group's (dealt by node id), and its hostname.

    Parameters
    ----------
    groups : sequence of NodeLabelGroup
        ``cluster.nodeLabels``; empty: nodes carry their hostname label only.
    node_names : sequence of str
        Node id -> name (``Workload.node_names``).

    Returns
    -------
    list of dict
        Node id -> labels.
    """
    group = deal_nodes([g.weight for g in groups], len(node_names)) if groups else None
    return [{**(dict(groups[int(group[i])].labels) if group is not None else {}), HOSTNAME_LABEL: name}
            for i, name in enumerate(node_names)]
