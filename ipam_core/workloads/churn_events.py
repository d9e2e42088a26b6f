"""The events of a ``steady-churn`` workload, written in one compiled pass.

:func:`ipam_core.workloads.generators.generate` draws the random numbers
(numpy's generator, in the documented order) and this kernel lays out the
events: node adds, the fill, then one delete and one create per churn step.
Building them with a dozen numpy calls (a sort to find each step's victim, a
concatenation, a truncation, a renumbering, two gathers) cost a tenth of a
small sweep point (issue #10); the arrays are the same, value for value.
"""

from __future__ import annotations

import numpy as np

from ipam_core.kernels._jit import kjit
from ipam_core.workloads.events import OP_NODE_ADD, OP_POD_ADD, OP_POD_DEL


@kjit(allocates=True)
def churn_events(nodes, target, fill_qps, fill_end, n_steps, churn_per_second, slots, duration_s, pod_ns, n_ns,
                 pod_pool):
    """Node adds, fill and churn steps of ``steady-churn``, cut at ``duration_s``.

    Parameters
    ----------
    nodes : int
        Initial nodes, added at t=0 (ids 0..nodes-1).
    target : int
        Live pods after the fill; pod ``i < target`` is created at ``i / fill_qps``.
    fill_qps : float
        Creation rate of the fill; 0.0 creates every fill pod at t=0.
    fill_end : float
        Time of the last fill creation.
    n_steps : int
        Churn steps; step ``k`` runs at ``fill_end + (k + 1) / churn_per_second``.
    churn_per_second : float
    slots : numpy.ndarray of int64
        Per step, the live-set slot it replaces: step ``k`` deletes the newest
        pod put in ``slots[k]`` (slot ``s`` starts with pod ``s``) and puts pod
        ``target + k`` there.
    duration_s : float
        Events after it are dropped.
    pod_ns : numpy.ndarray of int32
        Namespace of each pod id; empty: round-robin over ``n_ns`` namespaces.
    n_ns : int
    pod_pool : numpy.ndarray of int32
        Pool of each pod id; empty: none (-1).

    Returns
    -------
    tuple
        ``(time, op, node, pod, namespace, pool, n_pods)``: the event columns
        in the Workload dtypes and the pods created before the cut. Pod ids are
        already in creation order, so no renumbering is needed.

    Notes
    -----
    The times are computed with the same float operations as numpy's
    ``np.arange(n) / rate`` and ``fill_end + np.arange(1, n + 1) / rate``, so
    they are bit for bit those of the vectorised generator. They are
    ascending (node adds at 0, the fill's ``i / qps``, then ``fill_end`` plus
    a growing positive step), so the cut keeps a prefix.
    """
    total = nodes + target + 2 * n_steps
    time = np.empty(total, dtype=np.float64)
    op = np.empty(total, dtype=np.int8)
    node = np.full(total, -1, dtype=np.int32)
    pod = np.full(total, -1, dtype=np.int32)
    namespace = np.full(total, -1, dtype=np.int32)
    pool = np.full(total, -1, dtype=np.int32)
    with_ns = pod_ns.size > 0
    with_pools = pod_pool.size > 0
    # per pod id, as pods are created: round-robin namespaces counted up (an integer modulo
    # per pod costs more than the rest of the pass)
    ns_of = np.empty(target + n_steps, dtype=np.int32)
    next_ns = 0
    for i in range(nodes):
        time[i] = 0.0
        op[i] = OP_NODE_ADD
        node[i] = i
    e = nodes
    for i in range(target):
        ns_of[i] = pod_ns[i] if with_ns else next_ns
        next_ns = next_ns + 1 if next_ns + 1 < n_ns else 0
        time[e] = 0.0 if fill_qps == 0.0 else np.float64(i) / fill_qps
        op[e] = OP_POD_ADD
        pod[e] = i
        namespace[e] = ns_of[i]
        if with_pools:
            pool[e] = pod_pool[i]
        e += 1
    occupant = np.arange(target)
    for k in range(n_steps):
        t = fill_end + np.float64(k + 1) / churn_per_second
        s = slots[k]
        victim = occupant[s]
        new = target + k
        ns_of[new] = pod_ns[new] if with_ns else next_ns
        next_ns = next_ns + 1 if next_ns + 1 < n_ns else 0
        time[e] = t  # delete before create within a step: the live count never exceeds the target
        op[e] = OP_POD_DEL
        pod[e] = victim
        namespace[e] = ns_of[victim]
        time[e + 1] = t
        op[e + 1] = OP_POD_ADD
        pod[e + 1] = new
        namespace[e + 1] = ns_of[new]
        if with_pools:
            pool[e] = pod_pool[victim]
            pool[e + 1] = pod_pool[new]
        occupant[s] = new
        e += 2
    if total == 0 or time[total - 1] <= duration_s:  # nothing to cut (the usual case)
        return time, op, node, pod, namespace, pool, target + n_steps
    n = 0
    n_pods = 0
    while time[n] <= duration_s:
        if op[n] == OP_POD_ADD:
            n_pods += 1
        n += 1
    return time[:n], op[:n], node[:n], pod[:n], namespace[:n], pool[:n], n_pods
