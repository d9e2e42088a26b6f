"""Compiled pod placement and the pod lists it works from.

Placement is kube-scheduler's choice for a batch of pods, one pod after another. Filters, as
kube-scheduler applies them: a pod with ``spec.nodeName`` goes to that node (bypassing the
scheduler, so cordons do not apply); any other pod needs a node that exists, is not
cordoned, has room under the kubelet's ``maxPods``, and holds no pod its required
anti-affinity (either direction) forbids. Among those it takes the node with the fewest pods
of its own group (the default ``PodTopologySpread`` spreading of a Deployment's replicas),
then the fewest pods (``NodeResourcesFit`` ``LeastAllocated`` with equal requests), then the
lowest node index. This lexicographic score stands in for kube-scheduler's weighted sum.

Why it scales: a pod's own group and the groups it avoids sit on few nodes, so every other
node scores 0 for spread and the choice among them is the least loaded, lowest index node,
kept in a min segment tree over ``(load, index)`` and found by a walk down the tree that
skips those few nodes. Only they are looked at one by one (found by walking the groups' pod
lists), so a pod costs O(group size x log nodes) instead of a scan of every node.

Pod lists are intrusive doubly linked lists over pod ids (``head[key]``, ``nxt[pod]``,
``prv[pod]``): one list per node (pods placed there and not gone) and one per group (pods
not gone), so "the pods on these nodes" and "the pods of these groups" cost what they hold.
"""

from __future__ import annotations

import numpy as np

from ipam_core.kernels._jit import kjit

_NONE = np.int64(-1)
_BIG = np.int64(np.iinfo(np.int64).max)


# ---------------------------------------------------------------- pod lists
@kjit
def link_many(head, nxt, prv, keys, ids):
    """Push each pod ``ids[i]`` onto the front of list ``keys[i]``.

    Parameters
    ----------
    head : int64 array
        First pod of each list, -1 when empty; updated in place.
    nxt, prv : int64 arrays (pods,)
        Links; updated in place.
    keys, ids : int arrays (k,)
        List (node or group) and pod of each insertion.
    """
    for i in range(ids.shape[0]):
        pod = ids[i]
        key = keys[i]
        first = head[key]
        nxt[pod] = first
        prv[pod] = -1
        if first >= 0:
            prv[first] = pod
        head[key] = pod


@kjit
def unlink_many(head, nxt, prv, keys, ids):
    """Remove each pod ``ids[i]`` from list ``keys[i]`` (it must be on it).

    Parameters
    ----------
    head : int64 array
        First pod of each list; updated in place.
    nxt, prv : int64 arrays (pods,)
        Links; updated in place.
    keys, ids : int arrays (k,)
        List and pod of each removal.
    """
    for i in range(ids.shape[0]):
        pod = ids[i]
        before = prv[pod]
        after = nxt[pod]
        if before >= 0:
            nxt[before] = after
        else:
            head[keys[i]] = after
        if after >= 0:
            prv[after] = before
        nxt[pod] = -1
        prv[pod] = -1


@kjit(allocates=True)
def collect(head, nxt, keys):
    """Every pod on the lists ``keys``, in ascending id order.

    Parameters
    ----------
    head, nxt : int64 arrays
        The lists.
    keys : int64 array
        Lists to read (each at most once).

    Returns
    -------
    int64 array
    """
    count = 0
    for k in range(keys.shape[0]):
        pod = head[keys[k]]
        while pod >= 0:
            count += 1
            pod = nxt[pod]
    out = np.empty(count, dtype=np.int64)
    j = 0
    for k in range(keys.shape[0]):
        pod = head[keys[k]]
        while pod >= 0:
            out[j] = pod
            j += 1
            pod = nxt[pod]
    out.sort()
    return out


@kjit
def rebuild(head, nxt, prv, keys, member):
    """Rebuild lists from scratch: pod ``i`` goes on list ``keys[i]`` when ``member[i]``.

    Parameters
    ----------
    head : int64 array
        Reset to -1, then filled.
    nxt, prv : int64 arrays (pods,)
        Reset, then filled.
    keys : int array (pods,)
    member : bool array (pods,)
    """
    head[:] = -1
    nxt[:] = -1
    prv[:] = -1
    for i in range(keys.shape[0] - 1, -1, -1):  # front insertion, highest id first: lists end up ascending
        if not member[i]:
            continue
        key = keys[i]
        first = head[key]
        nxt[i] = first
        if first >= 0:
            prv[first] = i
        head[key] = i


# ---------------------------------------------------------------- placement
@kjit(inline=True)
def _tree_set(tree, size, v, value):
    i = size + v
    tree[i] = value
    i //= 2
    while i >= 1:
        a = tree[2 * i]
        b = tree[2 * i + 1]
        tree[i] = a if a < b else b
        i //= 2


@kjit(inline=True)
def _key(v, n, node_open, node_room, node_pods):
    if node_open[v] and node_pods[v] < node_room[v]:
        return node_pods[v] * n + v
    return _BIG


def tree_size(n: int) -> int:
    """Length of the placement tree for ``n`` nodes (twice the next power of two)."""
    return 2 * (1 << max(0, (n - 1).bit_length()))


@kjit(allocates=True)
def place_pods(tree, rebuild, dirty, todo, groups, pins, node_exists, node_open, node_room, node_pods, pod_node,
               node_head, node_nxt, node_prv, group_head, group_nxt, anti_ptr, anti_idx, out):
    """Place pods in order, updating the per-node counts and pod lists as each one lands.

    Parameters
    ----------
    tree : int64 array (:func:`tree_size` of n)
        Min segment tree of ``load * n + node`` over the nodes that can take a pod (open,
        with room), kept between calls; updated in place.
    rebuild : bool
        Build ``tree`` from scratch (the node count changed).
    dirty : int64 array
        Nodes whose open flag or pod count changed outside this kernel since the last call.
    todo : int64 array (k,)
        The pods to place (ids), in scheduling order.
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
    pod_node : int32 array (pods,)
        Every pod's node (-1 unscheduled); set in place for the pods placed.
    node_head, node_nxt, node_prv : int64 arrays
        The per-node pod lists; placed pods are added.
    group_head, group_nxt : int64 arrays
        The per-group pod lists (pods not gone), read to find where a group's pods are.
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
    size = tree.shape[0] // 2
    if rebuild:
        tree[:] = _BIG
        for v in range(n):
            tree[size + v] = _key(v, n, node_open, node_room, node_pods)
        for i in range(size - 1, 0, -1):
            a = tree[2 * i]
            b = tree[2 * i + 1]
            tree[i] = a if a < b else b
    else:
        for i in range(dirty.shape[0]):
            _tree_set(tree, size, dirty[i], _key(dirty[i], n, node_open, node_room, node_pods))
    spread = np.zeros(n, dtype=np.int64)
    blocked = np.zeros(n, dtype=np.bool_)
    marked = np.zeros(n, dtype=np.bool_)
    near = np.empty(n, dtype=np.int64)  # nodes holding the pod's group or a group it avoids
    stack = np.empty(2 * 64 + 2, dtype=np.int64)
    placed = 0
    for j in range(groups.shape[0]):
        g = groups[j]
        pin = pins[j]
        best = -1
        if pin >= 0:
            if pin < n and node_exists[pin] and node_pods[pin] < node_room[pin]:
                best = pin
        else:
            m = 0
            pod = group_head[g]
            while pod >= 0:
                v = pod_node[pod]
                if v >= 0:
                    spread[v] += 1
                    if not marked[v]:
                        marked[v] = True
                        near[m] = v
                        m += 1
                pod = group_nxt[pod]
            for k in range(anti_ptr[g], anti_ptr[g + 1]):
                pod = group_head[anti_idx[k]]
                while pod >= 0:
                    v = pod_node[pod]
                    if v >= 0:
                        blocked[v] = True
                        if not marked[v]:
                            marked[v] = True
                            near[m] = v
                            m += 1
                    pod = group_nxt[pod]
            # the least loaded node away from them: a walk down the tree that skips near leaves
            found = _BIG
            stack[0] = 1
            top = 1
            while top > 0:
                top -= 1
                i = stack[top]
                if tree[i] >= found:
                    continue
                if i >= size:
                    if not marked[i - size]:
                        found = tree[i]
                    continue
                a = 2 * i
                b = a + 1
                if tree[a] <= tree[b]:  # smaller subtree popped first
                    stack[top] = b
                    stack[top + 1] = a
                else:
                    stack[top] = a
                    stack[top + 1] = b
                top += 2
            if found < _BIG:  # a node with none of the group's pods: spread 0 beats every near node
                best = found % n
            else:
                best_spread = 0
                best_load = 0
                for i in range(m):
                    v = near[i]
                    if blocked[v] or not node_open[v] or node_pods[v] >= node_room[v]:
                        continue
                    s = spread[v]
                    load = node_pods[v]
                    if best < 0 or s < best_spread or (s == best_spread and (load < best_load or
                                                                             (load == best_load and v < best))):
                        best = v
                        best_spread = s
                        best_load = load
            for i in range(m):
                v = near[i]
                spread[v] = 0
                blocked[v] = False
                marked[v] = False
        out[j] = best
        if best >= 0:
            node_pods[best] += 1
            _tree_set(tree, size, best, _key(best, n, node_open, node_room, node_pods))
            pod = todo[j]
            pod_node[pod] = best
            first = node_head[best]
            node_nxt[pod] = first
            node_prv[pod] = -1
            if first >= 0:
                node_prv[first] = pod
            node_head[best] = pod
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


__all__ = ["collect", "empty_csr", "link_many", "place_pods", "rebuild", "tree_size", "unlink_many"]
