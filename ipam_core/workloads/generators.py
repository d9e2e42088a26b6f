"""Seeded workload generators: settings in, :class:`Workload` event arrays out.

Every generator draws all its randomness from one ``np.random.default_rng(seed)``
in a fixed order, so the same inputs give identical arrays. Work is done on
whole arrays (a Python loop runs per burst, per autoscaler tick or per phase,
never per pod) or, for ``steady-churn``, in one compiled pass. Generators only say *when* pods and nodes come and go; the
engine schedules unpinned pods itself.

Conventions shared by all generators:

- initial nodes are ``node-0 .. node-<nodes-1>``, NODE_ADD at t=0, before any pod;
- ``podsPerNode`` is capped by the scenario's ``max_pods`` (per node);
- pods get namespaces round-robin by creation order, or drawn with
  ``namespaceWeights``; ``podPoolFractions`` annotates randomly chosen pods
  with each pool, exactly ``round(fraction x pods)`` of them for one pool (with
  several, pool i gets the pods between the rounded cumulative fractions);
- events after ``duration_s`` are dropped; pod ids are dense in creation order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from ipam_core.errors import ConfigError
from ipam_core.workloads.events import (
    OP_NODE_ADD,
    OP_NODE_DEL,
    OP_POD_ADD,
    OP_POD_DEL,
    Workload,
    merge,
    renumber_pods,
    sort_events,
    truncate,
)
from ipam_core.workloads.churn_events import churn_events
from ipam_core.workloads.lifecycle import add_lifecycle
from ipam_core.workloads.replay import read_events
from ipam_core.workloads.spec import (
    BurstSpec,
    Cl2LoadSpec,
    NodeAutoscalingSpec,
    ReplaySpec,
    ScaleOutSpec,
    SteadyChurnSpec,
    WorkloadSpec,
)

__all__ = ["generate", "MAX_EVENTS"]

#: Upper bound on generated events: ~25 bytes each, so 200 M events is ~5 GB,
#: a fifth of the 24 GiB CI machine. Beyond it a typo (hours for seconds) is likelier
#: than intent, and pod ids must stay within int32.
MAX_EVENTS = 200_000_000

_Chunk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # time, op, node, pod
_NO_POD_VALUES = np.zeros(0, dtype=np.int32)  # "no per-pod array" for churn_events


def generate(
    spec: WorkloadSpec,
    *,
    nodes: int,
    max_pods: int,
    namespaces: Sequence[str],
    duration_s: float,
    seed: int,
) -> Workload:
    """Build the events of one workload.

    Parameters
    ----------
    spec : WorkloadSpec
        Settings from :func:`ipam_core.workloads.parse_workload`.
    nodes : int
        Cluster size: initial nodes (``node-autoscaling``: the default maximum).
        For ``replay`` used only when the file names no nodes.
    max_pods : int
        Pods per node the nodes accept; caps ``podsPerNode``.
    namespaces : list of str
        Namespace names; empty means ``["default"]`` (``cl2-load``: derived
        from ``nodesPerNamespace``).
    duration_s : float
        Simulated seconds; later events are dropped. Must be finite for
        ``steady-churn`` and ``node-autoscaling``, which run until it.
    seed : int
        Seed of ``np.random.default_rng``.

    Returns
    -------
    Workload
        Time-ordered events that pass :meth:`Workload.validate`.

    Raises
    ------
    ConfigError
        On an argument out of range, ``namespaceWeights`` naming an unknown
        namespace, or a workload larger than :data:`MAX_EVENTS`.
    """
    _check_args(nodes, max_pods, duration_s, seed)
    namespaces = list(namespaces)
    if len(set(namespaces)) != len(namespaces):
        raise ConfigError(f"namespaces = {namespaces!r}: expected unique names")
    workload = _generate(spec, np.random.default_rng(seed), nodes, max_pods, namespaces, duration_s)
    if spec.lifecycle is None:
        return workload
    return add_lifecycle(workload, spec.lifecycle, seed=seed, duration_s=duration_s)


def _generate(spec: WorkloadSpec, rng: np.random.Generator, nodes: int, max_pods: int, namespaces: list[str],
              duration_s: float) -> Workload:
    """The generator's own events (before any ``lifecycle``)."""
    if isinstance(spec, Cl2LoadSpec):  # derives its own namespaces when none are given
        return _cl2_load(spec, rng, nodes, max_pods, namespaces, duration_s)
    namespaces = namespaces or ["default"]
    if isinstance(spec, SteadyChurnSpec):
        return _steady_churn(spec, rng, nodes, max_pods, namespaces, duration_s)
    if isinstance(spec, ScaleOutSpec):
        return _scale_out(spec, rng, nodes, max_pods, namespaces, duration_s)
    if isinstance(spec, BurstSpec):
        return _burst(spec, rng, nodes, max_pods, namespaces, duration_s)
    if isinstance(spec, NodeAutoscalingSpec):
        return _node_autoscaling(spec, rng, nodes, max_pods, namespaces, duration_s)
    if isinstance(spec, ReplaySpec):
        return _replay(spec, nodes, duration_s)
    raise ConfigError(f"workload spec = {spec!r}: expected a WorkloadSpec from parse_workload")


# ------------------------------------------------------------------- generators
def _steady_churn(spec: SteadyChurnSpec, rng: np.random.Generator, nodes: int, max_pods: int,
                  namespaces: list[str], duration_s: float) -> Workload:
    """Fill to ``nodes x podsPerNode`` pods, then replace a random live pod per step.

    Source: kubernetes/community sig-scalability ``slos/slos.md`` steady-state
    churn (20 per second; ``k8s_scalability_thresholds.csv`` row
    ``steady_state_churn``). The SLO counts creations and deletions; here one
    step is a delete plus a create, so ``churnPerSecond: 10`` matches the SLO's
    20 API operations per second and the default 20 is twice that.

    Notes
    -----
    Steps are evenly spaced at ``1 / churnPerSecond`` after the fill. Step k
    deletes the pod in a uniformly drawn slot of the live set and puts the new
    pod in that slot, so live pods stay at the target. The slots are drawn
    here, then (if set) the namespaces and the pools; the events are laid out
    by one compiled pass (:func:`ipam_core.workloads.churn_events.churn_events`).
    """
    _need_finite(duration_s, spec.generator)
    target = nodes * min(spec.pods_per_node, max_pods)
    # the fill's last creation: np.arange(target)[-1] / fillQps, the same float division
    fill_end = 0.0 if spec.fill_qps is None else (target - 1) / spec.fill_qps
    n_steps = max(0, int(math.floor((duration_s - fill_end) * spec.churn_per_second)))
    _check_size(nodes + target + 2 * n_steps, spec.generator)

    slots = rng.integers(0, target, n_steps)
    n_pods = target + n_steps
    if spec.namespace_weights:
        pod_ns = _pod_namespaces(rng, n_pods, namespaces, spec.namespace_weights)
    else:  # round-robin: the kernel takes pod id modulo the namespaces
        pod_ns = _NO_POD_VALUES
    pool, pool_names = _pod_pools(rng, n_pods, spec.pod_pool_fractions)
    time, op, node, pod, ns, pod_pool, kept_pods = churn_events(
        nodes, target, 0.0 if spec.fill_qps is None else float(spec.fill_qps), fill_end, n_steps,
        float(spec.churn_per_second), slots, float(duration_s), pod_ns, len(namespaces),
        pool if pool_names else _NO_POD_VALUES,
    )
    # round-robin namespaces and no pools: pod i's attributes follow from i and the namespace names
    plain = not spec.namespace_weights and not pool_names
    return Workload(time=time, op=op, node=node, pod=pod, namespace=ns, pool=pod_pool, node_names=_node_names(nodes),
                    namespaces=namespaces, pool_names=pool_names, n_pods=kept_pods,
                    pod_attributes_key=("round-robin", kept_pods, tuple(namespaces)) if plain else None)


def _scale_out(spec: ScaleOutSpec, rng: np.random.Generator, nodes: int, max_pods: int,
               namespaces: list[str], duration_s: float) -> Workload:
    """Create pods at ``qps`` up to ``pods``; never delete them.

    Source: kubernetes/perf-tests ``clusterloader2/testing/load/config.yaml``
    ``LOAD_TEST_THROUGHPUT`` = 10 pods/s (``workload_scenarios.csv`` row
    ``clusterloader2/load,LOAD_TEST_THROUGHPUT``).

    Notes
    -----
    Pod i is created at ``i / qps``. An explicit ``pods`` is not capped by node
    capacity, so a scale-out can be driven past exhaustion.
    """
    total = spec.pods if spec.pods is not None else nodes * min(spec.pods_per_node, max_pods)
    if math.isfinite(duration_s):  # do not build what truncation would drop
        total = min(total, int(math.floor(duration_s * spec.qps)) + 1)
    _check_size(nodes + total, spec.generator)
    adds = (np.arange(total) / spec.qps, np.full(total, OP_POD_ADD, np.int8), np.full(total, -1, np.int32),
            np.arange(total))
    ns = _pod_namespaces(rng, total, namespaces, spec.namespace_weights)
    pool, pool_names = _pod_pools(rng, total, spec.pod_pool_fractions)
    return _build([_node_adds(nodes), adds], total, ns, pool, _node_names(nodes), namespaces, pool_names,
                  duration_s)


def _burst(spec: BurstSpec, rng: np.random.Generator, nodes: int, max_pods: int,
           namespaces: list[str], duration_s: float) -> Workload:
    """Create ``podsPerNode x nodes`` pods, hold them, delete them; repeat.

    Source: kubernetes/community sig-scalability ``slos/slos.md`` WIP burst SLO
    "time to start 30*#nodes pods" (``k8s_scalability_thresholds.csv`` row
    ``burst_slo_pods``).

    Notes
    -----
    With ``qps`` unset a burst's creations (and later its deletions) share one
    instant; with ``qps`` they are spaced ``1 / qps`` apart, deletions in
    creation order. ``hold`` runs from the last creation to the first deletion
    and ``gap`` from the last deletion to the next burst.
    """
    size = nodes * min(spec.pods_per_node, max_pods)
    _check_size(nodes + 2 * size * spec.repeats, spec.generator)
    offsets = np.zeros(size) if spec.qps is None else np.arange(size) / spec.qps
    span = float(offsets[-1])
    chunks: list[_Chunk] = [_node_adds(nodes)]
    start = spec.start
    n_bursts = 0
    for burst in range(spec.repeats):  # one loop turn per burst
        if start > duration_s:
            break
        ids = burst * size + np.arange(size)
        delete_at = start + span + spec.hold
        no_node = np.full(size, -1, np.int32)
        chunks.append((start + offsets, np.full(size, OP_POD_ADD, np.int8), no_node, ids))
        chunks.append((delete_at + offsets, np.full(size, OP_POD_DEL, np.int8), no_node, ids))
        start = delete_at + span + spec.gap
        n_bursts += 1
    n_pods = n_bursts * size
    ns = _pod_namespaces(rng, n_pods, namespaces, spec.namespace_weights)
    pool, pool_names = _pod_pools(rng, n_pods, spec.pod_pool_fractions)
    return _build(chunks, n_pods, ns, pool, _node_names(nodes), namespaces, pool_names, duration_s)


def _node_autoscaling(spec: NodeAutoscalingSpec, rng: np.random.Generator, nodes: int, max_pods: int,
                      namespaces: list[str], duration_s: float) -> Workload:
    """Nodes follow a raised-cosine wave between minNodes and maxNodes; pods follow nodes.

    Source: the cluster-autoscaler / Karpenter pattern of nodes joining and
    leaving with demand; bounds from ``k8s_scalability_thresholds.csv``
    (``nodes``: 5000, ``pods_per_node``: 110) limit sensible settings.

    Notes
    -----
    Every ``interval`` seconds the target is
    ``round(min + (max - min) * (1 - cos(2 pi t / period)) / 2)``: ``minNodes`` at
    t=0, ``maxNodes`` at half a period. Scale-up adds nodes; each joining node
    brings ``podsPerNode`` new pods at the same instant (pinned to it unless
    ``pinPods`` is false). Scale-down deletes uniformly chosen live nodes with a
    NODE_DEL only: the engine deletes their pods. Node ids: by default every
    joining node gets a new id (``node-<id>``, as a cloud provider names a new
    VM); with ``reuseNodeIds`` it takes the lowest free id, i.e. the same name
    as a node deleted before.
    """
    _need_finite(duration_s, spec.generator)
    lo = spec.min_nodes if spec.min_nodes is not None else max(1, nodes // 2)
    hi = spec.max_nodes if spec.max_nodes is not None else max(nodes, lo)
    if lo > hi:
        raise ConfigError(f"workload.minNodes = {lo}: expected <= maxNodes ({hi})")
    ticks = np.arange(int(math.floor(duration_s / spec.interval)) + 1) * spec.interval
    target = np.rint(lo + (hi - lo) * (1 - np.cos(2 * np.pi * ticks / spec.period)) / 2).astype(np.int64)
    # a node can leave only after it joined, so node ops are at most 2 per node id
    _check_size(int(np.abs(np.diff(target, prepend=0)).sum()) * (1 + spec.pods_per_node), spec.generator)

    live = np.zeros(0, np.int64)
    free: list[int] = []  # ids of deleted nodes, kept sorted, for reuseNodeIds
    next_id = 0
    times, ops, ids = [], [], []
    for t, want in zip(ticks, target):  # one loop turn per autoscaler decision
        delta = int(want) - len(live)
        if delta > 0:
            reused = free[:delta] if spec.reuse_node_ids else []
            del free[:len(reused)]
            fresh = list(range(next_id, next_id + delta - len(reused)))
            next_id += len(fresh)
            joined = np.array(reused + fresh, np.int64)
            live = np.concatenate([live, joined])
            times.append(np.full(delta, t)), ops.append(np.full(delta, OP_NODE_ADD, np.int8)), ids.append(joined)
        elif delta < 0:
            leaving = rng.choice(len(live), size=-delta, replace=False)
            gone = np.sort(live[leaving])
            live = np.delete(live, leaving)
            if spec.reuse_node_ids:
                free = sorted(free + gone.tolist())
            times.append(np.full(-delta, t)), ops.append(np.full(-delta, OP_NODE_DEL, np.int8)), ids.append(gone)
    node_time, node_op, node_id = (np.concatenate(x) for x in (times, ops, ids))
    node_chunk = (node_time, node_op, node_id.astype(np.int32), np.full(len(node_id), -1))

    ppn = min(spec.pods_per_node, max_pods)
    joins = node_op == OP_NODE_ADD
    n_pods = int(joins.sum()) * ppn
    pin = np.repeat(node_id[joins], ppn) if spec.pin_pods else np.full(n_pods, -1)
    pod_chunk = (np.repeat(node_time[joins], ppn), np.full(n_pods, OP_POD_ADD, np.int8), pin, np.arange(n_pods))
    ns = _pod_namespaces(rng, n_pods, namespaces, spec.namespace_weights)
    pool, pool_names = _pod_pools(rng, n_pods, spec.pod_pool_fractions)
    return _build([node_chunk, pod_chunk], n_pods, ns, pool, _node_names(next_id), namespaces, pool_names,
                  duration_s)


def _cl2_load(spec: Cl2LoadSpec, rng: np.random.Generator, nodes: int, max_pods: int,
              namespaces: list[str], duration_s: float) -> Workload:
    """clusterloader2 ``load``: create deployments, rescale each, delete all.

    Source: kubernetes/perf-tests ``clusterloader2/testing/load/config.yaml``
    (``workload_scenarios.csv`` rows ``clusterloader2/load``): PODS_PER_NODE 30,
    NODES_PER_NAMESPACE 100, LOAD_TEST_THROUGHPUT 10 pods/s, deployments of
    250 / 30 / 5 replicas holding 1/4, 1/4 and 1/2 of each namespace's pods,
    scaling phase resizing each to U[X/2, 3X/2], then everything deleted.

    Notes
    -----
    Per namespace (``podsPerNamespace`` = nodesPerNamespace x podsPerNode, or
    nodes x podsPerNode / len(namespaces) when namespaces are given) there are
    ``pods // (4*250)`` big, ``pods // (4*30)`` medium and ``pods // (2*5)``
    small deployments, integer divisions as in the config (so shares are exact
    when podsPerNamespace is a multiple of 1000). Like clusterloader2's
    ``RandomizedTimeLimitedLoad`` tuning set, each deployment acts at a uniform
    random time within its phase, and a deployment's pods are created or
    deleted at that instant: creation within saturationTime = pods / qps,
    scaling within saturationTime / 4, deletion within saturationTime, phases
    separated by ``phaseGap``. Scale-down deletes the deployment's newest pods;
    scale-up creates new pods. With fewer than nodesPerNamespace nodes one
    namespace holds ``nodes x podsPerNode`` pods (newer clusterloader2 caps
    NODES_PER_NAMESPACE at the node count).
    """
    ppn = min(spec.pods_per_node, max_pods)
    if namespaces:
        pods_per_ns = nodes * ppn // len(namespaces)
    else:
        per_ns_nodes = min(nodes, spec.nodes_per_namespace)
        namespaces = [f"test-ns-{i + 1}" for i in range(max(1, nodes // per_ns_nodes))]
        pods_per_ns = per_ns_nodes * ppn
    groups = (spec.big_group_size, spec.medium_group_size, spec.small_group_size)
    per_ns = (pods_per_ns // (4 * groups[0]), pods_per_ns // (4 * groups[1]), pods_per_ns // (2 * groups[2]))
    size_one_ns = np.repeat(np.array(groups, np.int64), per_ns)
    size = np.tile(size_one_ns, len(namespaces))  # replicas X of each deployment
    dep_ns = np.repeat(np.arange(len(namespaces)), len(size_one_ns))
    n_dep = len(size)
    _check_size(4 * int(size.sum()), spec.generator)

    saturation = float(size.sum()) / spec.qps
    scale_start = saturation + spec.phase_gap
    delete_start = scale_start + saturation / 4 + spec.phase_gap
    created = rng.uniform(0, saturation, n_dep)
    scaled = scale_start + rng.uniform(0, saturation / 4, n_dep)
    new_size = rng.integers(size // 2, (3 * size) // 2, endpoint=True)
    deleted = delete_start + rng.uniform(0, saturation, n_dep)

    dep = np.repeat(np.arange(n_dep), size)  # initial pods, in creation order per deployment
    rank = np.arange(len(dep)) - np.repeat(np.cumsum(size) - size, size)
    kept = rank < new_size[dep]  # scale-down removes the highest ranks (newest pods)
    extra = np.maximum(new_size - size, 0)
    dep_extra = np.repeat(np.arange(n_dep), extra)
    pod_dep = np.concatenate([dep, dep_extra])
    add_t = np.concatenate([created[dep], scaled[dep_extra]])
    del_t = np.concatenate([np.where(kept, deleted[dep], scaled[dep]), deleted[dep_extra]])
    n_pods = len(pod_dep)
    ids = np.arange(n_pods)
    no_node = np.full(n_pods, -1, np.int32)
    adds = (add_t, np.full(n_pods, OP_POD_ADD, np.int8), no_node, ids)
    dels = (del_t, np.full(n_pods, OP_POD_DEL, np.int8), no_node, ids)
    pool, pool_names = _pod_pools(rng, n_pods, spec.pod_pool_fractions)
    return _build([_node_adds(nodes), adds, dels], n_pods, dep_ns[pod_dep], pool, _node_names(nodes),
                  namespaces, pool_names, duration_s)


def _replay(spec: ReplaySpec, nodes: int, duration_s: float) -> Workload:
    """Events from a file (:func:`ipam_core.workloads.replay.read_events`), time-scaled.

    Notes
    -----
    Times are multiplied by ``timeScale``. When the file names no node at all,
    ``nodes`` nodes (``node-0``...) join at the first event's time; otherwise
    the file's nodes are used and `nodes` is ignored.
    """
    w = read_events(spec.path)
    w.time = w.time * spec.time_scale
    if not w.node_names:
        start = float(w.time[0]) if len(w) else 0.0
        t, op, node, pod = _node_adds(nodes)
        node_wl = Workload(t + start, op, node, pod, np.full(nodes, -1), np.full(nodes, -1),
                           _node_names(nodes), [], [], 0)
        w = merge(node_wl, w)
    return truncate(w, duration_s)


# ---------------------------------------------------------------------- helpers
def _check_args(nodes: int, max_pods: int, duration_s: float, seed: int) -> None:
    for name, value in (("nodes", nodes), ("max_pods", max_pods)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} = {value!r}: expected an integer >= 1")
    if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)) or not duration_s > 0:
        raise ConfigError(f"duration_s = {duration_s!r}: expected a number of seconds > 0")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed = {seed!r}: expected an integer >= 0")


def _need_finite(duration_s: float, generator: str) -> None:
    if not math.isfinite(duration_s):
        raise ConfigError(f"duration_s = {duration_s!r}: expected a finite duration for generator '{generator}'")


def _check_size(n_events: int, generator: str) -> None:
    if n_events > MAX_EVENTS:
        raise ConfigError(f"workload ({generator}) = {n_events:,} events: expected at most {MAX_EVENTS:,}; "
                          "lower the duration, rate or size")


@functools.lru_cache(maxsize=16)
def _node_names(n: int) -> tuple[str, ...]:
    # a tuple: shared between calls (a Workload copies it into its own list)
    return tuple(f"node-{i}" for i in range(n))


def _node_adds(n: int) -> _Chunk:
    """NODE_ADD of nodes 0..n-1 at t=0."""
    return np.zeros(n), np.full(n, OP_NODE_ADD, np.int8), np.arange(n, dtype=np.int32), np.full(n, -1)


def _pod_namespaces(rng: np.random.Generator, n_pods: int, namespaces: list[str],
                    weights: tuple[tuple[str, float], ...]) -> np.ndarray:
    """Namespace index per pod: round-robin, or drawn by `weights` (unlisted names get 0)."""
    if not weights:
        return (np.arange(n_pods) % len(namespaces)).astype(np.int32)
    p = np.zeros(len(namespaces))
    for name, w in weights:
        if name not in namespaces:
            raise ConfigError(f"workload.namespaceWeights.{name} = {w!r}: expected a namespace of the scenario "
                              f"({', '.join(namespaces)})")
        p[namespaces.index(name)] = w
    return rng.choice(len(namespaces), size=n_pods, p=p / p.sum()).astype(np.int32)


def _pod_pools(rng: np.random.Generator, n_pods: int,
               fractions: tuple[tuple[str, float], ...]) -> tuple[np.ndarray, list[str]]:
    """Pool index per pod: random pods between rounded cumulative fractions, -1 for the rest."""
    pool = np.full(n_pods, -1, np.int32)
    if not fractions:
        return pool, []
    bounds = np.minimum(np.floor(np.cumsum([f for _, f in fractions]) * n_pods + 0.5).astype(np.int64), n_pods)
    chosen = rng.permutation(n_pods)
    starts = np.r_[0, bounds[:-1]]
    for i, (lo, hi) in enumerate(zip(starts, bounds)):  # one turn per pool
        pool[chosen[lo:hi]] = i
    return pool, [name for name, _ in fractions]


def _build(chunks: list[_Chunk], n_pods: int, pod_ns: np.ndarray, pod_pool: np.ndarray, node_names: list[str],
           namespaces: list[str], pool_names: list[str], duration_s: float) -> Workload:
    """Merge event chunks stably by time, cut at `duration_s`, number pods by creation."""
    time, op, node, pod = (np.concatenate([c[i] for c in chunks]) for i in range(4))
    if not bool((time[1:] >= time[:-1]).all()):  # chunks often arrive in order already
        order = sort_events(time)
        time, op, node, pod = time[order], op[order], node[order], pod[order]
    n = int(np.searchsorted(time, duration_s, side="right"))
    time, op, node, pod = time[:n], op[:n], node[:n], pod[:n]
    new_pod, old_of_new = renumber_pods(op, pod, n_pods)
    is_pod = pod >= 0
    safe = np.maximum(pod, 0)
    if n_pods and not pool_names and not (pod_pool != -1).any():  # no pools: skip the per-event gather
        pool = np.full(n, -1, dtype=pod_pool.dtype)
    else:
        pool = np.where(is_pod, pod_pool[safe] if n_pods else -1, -1)
    return Workload(
        time=time, op=op, node=node, pod=new_pod,
        namespace=np.where(is_pod, pod_ns[safe] if n_pods else -1, -1),
        pool=pool,
        node_names=node_names, namespaces=namespaces, pool_names=pool_names, n_pods=len(old_of_new),
    )
