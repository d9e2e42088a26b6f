"""Compiled pod placement: kube-scheduler's choice for a batch of pods, one pod after another.

Filters, as kube-scheduler applies them: a pod with ``spec.nodeName`` goes to that node
(bypassing the scheduler, so cordons do not apply); any other pod needs a node that exists,
is not cordoned, has room under the kubelet's ``maxPods``, and holds no pod its required
anti-affinity (either direction) forbids. Among those it takes the node with the fewest pods
of its own group (the default ``PodTopologySpread`` spreading of a Deployment's replicas),
then the fewest pods (``NodeResourcesFit`` ``LeastAllocated`` with equal requests), then the
lowest node index. This lexicographic score stands in for kube-scheduler's weighted sum.
"""

from __future__ import annotations

import numpy as np

from ipam_core.kernels._jit import kjit


@kjit
def place_pods(groups, pins, node_exists, node_open, node_room, node_pods, group_node, anti_ptr, anti_idx, out):
    """Place pods in order, updating the per-node counts as each one lands.

    Parameters
    ----------
    groups : int32 array (k,)
        Each pod's group (Deployment or bare pod) index.
    pins : int32 array (k,)
        ``spec.nodeName`` as a node index, or -1.
    node_exists : bool array (n,)
        Node present in the cluster.
    node_open : bool array (n,)
        Node present and not cordoned.
    node_room : int64 array (n,)
        The kubelet's ``maxPods`` per node.
    node_pods : int64 array (n,)
        Pods on each node; incremented in place.
    group_node : int32 array (g, n)
        Pods of each group on each node; incremented in place.
    anti_ptr, anti_idx : int64 arrays
        CSR lists: the groups that group ``i`` may not share a node with are
        ``anti_idx[anti_ptr[i]:anti_ptr[i+1]]``.
    out : int32 array (k,)
        The chosen node per pod, or -1 when none fits.

    Returns
    -------
    int
        Pods placed.
    """
    n = node_exists.shape[0]
    placed = 0
    for j in range(groups.shape[0]):
        g = groups[j]
        pin = pins[j]
        best = -1
        if pin >= 0:
            if pin < n and node_exists[pin] and node_pods[pin] < node_room[pin]:
                best = pin
        else:
            best_spread = 0
            best_load = 0
            for v in range(n):
                if not node_open[v] or node_pods[v] >= node_room[v]:
                    continue
                blocked = False
                for k in range(anti_ptr[g], anti_ptr[g + 1]):
                    if group_node[anti_idx[k], v] > 0:
                        blocked = True
                        break
                if blocked:
                    continue
                spread = group_node[g, v]
                load = node_pods[v]
                if best < 0 or spread < best_spread or (spread == best_spread and load < best_load):
                    best = v
                    best_spread = spread
                    best_load = load
        out[j] = best
        if best >= 0:
            node_pods[best] += 1
            group_node[g, best] += 1
            placed += 1
    return placed


def empty_csr(groups: int) -> tuple[np.ndarray, np.ndarray]:
    """An anti-affinity list with no entries for ``groups`` groups.

    Parameters
    ----------
    groups : int

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``anti_ptr`` of zeros (length ``groups + 1``) and an empty ``anti_idx``.
    """
    return np.zeros(groups + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)


__all__ = ["empty_csr", "place_pods"]
