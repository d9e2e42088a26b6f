"""Where nodes go and what other consumers hold: the fixed inputs of a multi-subnet cloud run.

Nothing here is an upstream rule: the scenario states the node groups and the shared use, and
these functions expand them, deterministically, into per-node and per-address arrays that the
engine (:func:`ipam_core.modes.cloud_pool.init_cloud`) and the oracle (``bench/baseline_cloud.py``)
both start from.
"""

from __future__ import annotations

import ipaddress

import numpy as np


def deal_nodes(weights, n_nodes: int) -> np.ndarray:
    """Deal node ids to groups in proportion to their weights, interleaved.

    Parameters
    ----------
    weights : sequence of float
        One weight (> 0) per group: a node count or a share.
    n_nodes : int

    Returns
    -------
    numpy.ndarray
        int64 [n_nodes]: each node's group. Node ids are dealt in order, the ``k``-th node of
        group ``g`` at position ``(k + 0.5) / w_g`` (ties to the earlier group), so a cluster
        that grows node by node keeps the proportions; counts that sum to ``n_nodes`` are met
        exactly.
    """
    w = np.asarray(weights, dtype=np.float64)
    if n_nodes <= 0:
        return np.zeros(0, dtype=np.int64)
    share = w / w.sum() * n_nodes
    keys, owners = [], []
    for g, s in enumerate(share):
        k = np.arange(int(np.ceil(s)) + 1, dtype=np.float64)
        keys.append((k + 0.5) / s)
        owners.append(np.full(k.shape[0], g, dtype=np.int64))
    key = np.concatenate(keys)
    owner = np.concatenate(owners)
    order = np.lexsort((owner, key))
    return owner[order][:n_nodes]


def zone_of_nodes(group: np.ndarray, zones: list[np.ndarray]) -> np.ndarray:
    """Each node's zone: a group's nodes round-robin over its zones (an ASG balancing its AZs).

    Parameters
    ----------
    group : numpy.ndarray
        From :func:`deal_nodes`.
    zones : list of numpy.ndarray
        Per group, its zone indices in order.

    Returns
    -------
    numpy.ndarray
        int64 [nodes].
    """
    out = np.zeros(group.shape[0], dtype=np.int64)
    for g, z in enumerate(zones):
        mine = np.flatnonzero(group == g)
        out[mine] = z[np.arange(mine.shape[0]) % z.shape[0]]
    return out


def cidr_offsets(cidr: str, subnet: ipaddress.IPv4Network) -> tuple[int, int]:
    """[first, end) offsets of ``cidr`` inside ``subnet``."""
    net = ipaddress.ip_network(cidr)
    first = int(net.network_address) - int(subnet.network_address)
    return first, first + net.num_addresses


def listed_offsets(path: str, subnet: ipaddress.IPv4Network) -> np.ndarray:
    """Offsets of the addresses a shared-use file lists (one address or CIDR a line, ``#`` comments)."""
    spans = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            item = line.split("#", 1)[0].strip()
            if item:
                first, end = cidr_offsets(str(ipaddress.ip_network(item, strict=False)), subnet)
                spans.append(np.arange(first, end, dtype=np.int64))
    return np.unique(np.concatenate(spans)) if spans else np.zeros(0, dtype=np.int64)


def shared_offsets(fraction: float, free: np.ndarray, seed: int, subnet_index: int) -> np.ndarray:
    """The offsets other consumers hold: ``round(fraction * len(free))`` of ``free``, at random.

    Parameters
    ----------
    fraction : float
        ``sharedUsed``.
    free : numpy.ndarray
        Offsets the cluster could otherwise take (not the cloud's reserved addresses, not in a
        reservation), ascending.
    seed : int
        The scenario's seed.
    subnet_index : int
        The subnet's position: each subnet draws its own stream.

    Returns
    -------
    numpy.ndarray
        Ascending int64 offsets.
    """
    count = int(round(fraction * free.shape[0]))
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([seed, subnet_index])
    return np.sort(rng.choice(free, size=count, replace=False)).astype(np.int64)
