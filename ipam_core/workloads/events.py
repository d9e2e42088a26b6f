"""The Workload event arrays: the only thing the engine knows about a workload.

A :class:`Workload` is a time-ordered list of events held column-wise in numpy
arrays (see ``docs/dev/contracts.md`` section 1)::

    index  time   op           node  pod  namespace  pool
    0      0.0    NODE_ADD     0     -1   -1         -1
    1      0.0    NODE_ADD     1     -1   -1         -1
    2      0.0    POD_ADD      -1    0    0          -1     <- scheduled by the engine
    3      0.1    POD_ADD      1     1    0          0      <- pinned to node 1, pool 0
    4      5.0    POD_DEL      -1    0    0          -1
    5      9.0    NODE_DEL     1     -1   -1         -1     <- pod 1 goes with its node

Generators (:mod:`ipam_core.workloads.generators`) and the replay reader
(:mod:`ipam_core.workloads.replay`) both build one; :meth:`Workload.validate`
checks the invariants the engine relies on, with numpy over whole arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ipam_core.errors import ConfigError

__all__ = [
    "OP_NODE_ADD",
    "OP_NODE_DEL",
    "OP_POD_ADD",
    "OP_POD_DEL",
    "OP_NODE_CORDON",
    "OP_NODE_DRAIN",
    "OP_AGENT_RESTART",
    "OP_NAMES",
    "Workload",
    "merge",
    "sort_events",
    "truncate",
    "renumber_pods",
]

OP_NODE_ADD = 0  # node joins (its agent starts)
OP_NODE_DEL = 1  # node (and its CiliumNode) is deleted; its pods are deleted with it
OP_POD_ADD = 2  # pod is created (scheduled by the engine unless `node` >= 0 pins it)
OP_POD_DEL = 3  # pod is deleted
# node lifecycle (ipam_core.workloads.lifecycle): node ops that neither add nor remove the node
OP_NODE_CORDON = 4  # node marked unschedulable; its pods stay
OP_NODE_DRAIN = 5  # cordon, then evict its pods (not those pinned to it); their replacements are scheduled elsewhere
OP_AGENT_RESTART = 6  # the node's Cilium agent restarts: it forgets the CIDRs it had released

#: op code -> name, as written by :meth:`Workload.to_arrow` and read back by
#: :func:`ipam_core.workloads.replay.read_events`.
OP_NAMES: tuple[str, ...] = ("node-add", "node-delete", "add", "delete", "node-cordon", "node-drain",
                              "agent-restart")

# (attribute, dtype) of the event columns, in contract order.
_COLUMNS: tuple[tuple[str, type], ...] = (
    ("time", np.float64),
    ("op", np.int8),
    ("node", np.int32),
    ("pod", np.int32),
    ("namespace", np.int32),
    ("pool", np.int32),
)


@dataclass(eq=False)
class Workload:
    """Time-ordered cluster events for one run.

    Parameters
    ----------
    time : numpy.ndarray
        float64 seconds, ascending; equal times keep their array order.
    op : numpy.ndarray
        int8, one of ``OP_*``.
    node : numpy.ndarray
        int32: node id for node ops; for pod ops the pinned node or -1.
    pod : numpy.ndarray
        int32: dense pod id (``0..n_pods-1``) for pod ops, -1 for node ops.
    namespace : numpy.ndarray
        int32: index into `namespaces` for pod ops, -1 for node ops.
    pool : numpy.ndarray
        int32: index into `pool_names` from the pod's ``ipam.cilium.io/ip-pool``
        annotation, -1 when the pod has none (and for node ops).
    node_names, namespaces, pool_names : list of str
        Names behind the node ids, namespace and pool indices.
    n_pods : int
        Number of distinct pod ids.
    pod_names : pyarrow.Array or None
        Pod id -> name; None means ``"pod-<id>"``.
    pod_attributes_key : hashable or None
        A summary of the per-pod namespace and pool annotation as generated:
        workloads with equal keys give every pod id the same namespace index,
        the same annotation and the same names behind them. A generator sets
        it when a few numbers decide them (``steady-churn`` without weights
        or pools); None says nothing. The engine reuses its multi-pool pool
        resolution between such workloads (issue #10).

    Notes
    -----
    Arrays are converted to the contract dtypes (C-contiguous) on construction,
    so the engine may hand them straight to compiled code. A pod id is created
    once and deleted at most once; a restarted pod is a new id. A node id may be
    added again after it was deleted (a replacement node with the same name).
    """

    time: np.ndarray
    op: np.ndarray
    node: np.ndarray
    pod: np.ndarray
    namespace: np.ndarray
    pool: np.ndarray
    node_names: list[str]
    namespaces: list[str]
    pool_names: list[str]
    n_pods: int
    pod_names: pa.Array | None = field(default=None)
    pod_attributes_key: object = field(default=None)

    def __post_init__(self) -> None:
        for name, dtype in _COLUMNS:
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype))
        lengths = {name: getattr(self, name).shape for name, _ in _COLUMNS}
        if len(set(lengths.values())) != 1 or self.time.ndim != 1:
            raise ConfigError(f"workload: event columns differ in shape {lengths}; expected equal 1-D arrays")
        self.node_names = list(self.node_names)
        self.namespaces = list(self.namespaces)
        self.pool_names = list(self.pool_names)
        self.n_pods = int(self.n_pods)

    def __len__(self) -> int:
        """Number of events."""
        return int(self.time.shape[0])

    def pod_name(self, i: int) -> str:
        """Name of pod id `i` (``"pod-<i>"`` when the workload carries no names)."""
        if self.pod_names is None:
            return f"pod-{i}"
        return str(self.pod_names[i].as_py())

    def pod_name_array(self) -> pa.Array:
        """All pod names as an Arrow string array indexed by pod id."""
        if self.pod_names is not None:
            return self.pod_names.cast(pa.string())
        ids = pa.array(np.arange(self.n_pods, dtype=np.int64)).cast(pa.string())
        return pc.binary_join_element_wise("pod-", ids, "")

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check the invariants the engine relies on, over whole arrays.

        Raises
        ------
        ConfigError
            On the first inconsistent event (its index, value and what was
            expected): times not finite or not ascending, an unknown op, an id
            out of range, a pod added other than exactly once, deleted more than
            once or before it was added, a node added while present or deleted
            while absent, a pod-name array of the wrong length.
        """
        t, op, node, pod, ns, pool = self.time, self.op, self.node, self.pod, self.namespace, self.pool
        n_nodes, n_ns, n_pools = len(self.node_names), len(self.namespaces), len(self.pool_names)

        _first(~np.isfinite(t), "time", t, "a finite number of seconds")
        _first(np.diff(t) < 0, "time", t, "times in ascending order", shift=1)
        _first((op < OP_NODE_ADD) | (op > OP_AGENT_RESTART), "op", op, f"one of 0..{OP_AGENT_RESTART} {OP_NAMES}")

        is_node_op = (op <= OP_NODE_DEL) | (op >= OP_NODE_CORDON)
        is_pod_op = ~is_node_op
        _first(is_node_op & ((node < 0) | (node >= n_nodes)), "node", node, f"a node id in [0, {n_nodes})")
        _first(is_node_op & ((pod != -1) | (ns != -1) | (pool != -1)), "pod/namespace/pool", pod,
               "-1 for a node op")
        _first(is_pod_op & ((node < -1) | (node >= n_nodes)), "node", node,
               f"-1 or a node id in [0, {n_nodes}) for a pod op")
        _first(is_pod_op & ((pod < 0) | (pod >= self.n_pods)), "pod", pod, f"a pod id in [0, {self.n_pods})")
        _first(is_pod_op & ((ns < 0) | (ns >= n_ns)), "namespace", ns, f"a namespace index in [0, {n_ns})")
        _first(is_pod_op & ((pool < -1) | (pool >= n_pools)), "pool", pool,
               f"-1 or a pool index in [0, {n_pools})")

        self._validate_pods(is_pod_op)
        self._validate_nodes(op <= OP_NODE_DEL)
        if self.pod_names is not None and len(self.pod_names) != self.n_pods:
            raise ConfigError(f"workload: pod_names has {len(self.pod_names)} names; expected n_pods={self.n_pods}")
        for what, names in (("node_names", self.node_names), ("namespaces", self.namespaces),
                            ("pool_names", self.pool_names)):
            if len(set(names)) != len(names):
                raise ConfigError(f"workload: {what} has duplicate names {names!r}; expected unique names")

    def _validate_pods(self, is_pod_op: np.ndarray) -> None:
        # Every id in 0..n_pods-1 is added exactly once and deleted at most once,
        # never before its add; the delete repeats the add's namespace and pool.
        idx = np.flatnonzero(is_pod_op)
        adds = idx[self.op[idx] == OP_POD_ADD]
        dels = idx[self.op[idx] == OP_POD_DEL]
        n_add = np.bincount(self.pod[adds], minlength=self.n_pods)
        if self.n_pods and (n_add != 1).any():
            bad = int(np.flatnonzero(n_add != 1)[0])
            raise ConfigError(f"workload: pod {bad} is added {int(n_add[bad])} times; expected exactly once")
        n_del = np.bincount(self.pod[dels], minlength=self.n_pods)
        if (n_del > 1).any():
            bad = int(np.flatnonzero(n_del > 1)[0])
            raise ConfigError(f"workload: pod {bad} is deleted {int(n_del[bad])} times; expected at most once")
        add_at = np.empty(self.n_pods, dtype=np.int64)
        add_at[self.pod[adds]] = adds
        paired = add_at[self.pod[dels]]
        _first_at(dels, paired > dels, "pod", self.pod, "a delete after the pod's add")
        _first_at(dels, self.namespace[paired] != self.namespace[dels], "namespace", self.namespace,
                  "the namespace of the pod's add")
        _first_at(dels, self.pool[paired] != self.pool[dels], "pool", self.pool, "the pool of the pod's add")

    def _validate_nodes(self, is_node_op: np.ndarray) -> None:
        # Per node, ops alternate add, delete, add, ... starting with an add.
        idx = np.flatnonzero(is_node_op)
        by_node = idx[np.argsort(self.node[idx], kind="stable")]
        nodes = self.node[by_node]
        starts = np.r_[True, nodes[1:] != nodes[:-1]] if len(nodes) else np.zeros(0, bool)
        group_start = np.maximum.accumulate(np.where(starts, np.arange(len(nodes)), 0))
        rank = np.arange(len(nodes)) - group_start
        expected = np.where(rank % 2 == 0, OP_NODE_ADD, OP_NODE_DEL)
        bad = by_node[self.op[by_node] != expected]
        if len(bad):
            i = int(bad.min())
            what = "node-add of a node already present" if self.op[i] == OP_NODE_ADD else \
                "node-delete of a node not present"
            raise ConfigError(f"workload event {i}: {what} (node {int(self.node[i])}); "
                              "expected node ops to alternate add, delete per node")

    # --------------------------------------------------------------- export
    def to_arrow(self) -> pa.Table:
        """The events as a named Arrow table, for debugging and saving.

        Returns
        -------
        pyarrow.Table
            Columns ``time`` (float64 s), ``op`` (dictionary of :data:`OP_NAMES`),
            ``node`` (node name or null), ``pod`` (pod name or null), ``pod_id``
            (int32 or null), ``namespace`` and ``pool`` (names or null). Written
            to CSV, Parquet or Arrow IPC it reads back with
            :func:`ipam_core.workloads.read_events`.
        """
        pod_ops = (self.op == OP_POD_ADD) | (self.op == OP_POD_DEL)
        pod_ids = pa.array(self.pod, mask=~pod_ops)
        names = self.pod_name_array().take(pod_ids)
        columns = {
            "time": pa.array(self.time),
            "op": _dictionary(self.op, OP_NAMES, pa.int8()),
            "node": _dictionary(self.node, self.node_names),
            "pod": names,
            "pod_id": pod_ids,
            "namespace": _dictionary(self.namespace, self.namespaces),
            "pool": _dictionary(self.pool, self.pool_names),
        }
        schema = pa.schema([
            pa.field(k, v.type, metadata={"unit": "s"} if k == "time" else None) for k, v in columns.items()
        ])
        return pa.Table.from_arrays(list(columns.values()), schema=schema)


# ---------------------------------------------------------------------- helpers
def _dictionary(codes: np.ndarray, names: Sequence[str], index_type: pa.DataType = pa.int32()) -> pa.Array:
    """Codes with -1 as null, as a dictionary array over `names`."""
    indices = pa.array(codes.astype(index_type.to_pandas_dtype()), type=index_type, mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(names), type=pa.string()))


def _first(bad: np.ndarray, what: str, values: np.ndarray, expected: str, shift: int = 0) -> None:
    """Raise for the first True in `bad` (event index = position + `shift`)."""
    if bad.any():
        i = int(np.argmax(bad)) + shift
        raise ConfigError(f"workload event {i}: {what} = {values[i]!r}; expected {expected}")


def _first_at(positions: np.ndarray, bad: np.ndarray, what: str, values: np.ndarray, expected: str) -> None:
    """Raise for the first True in `bad`, naming the event at ``positions[k]``."""
    if bad.any():
        i = int(positions[np.argmax(bad)])
        raise ConfigError(f"workload event {i}: {what} = {values[i]!r}; expected {expected}")


def sort_events(time: np.ndarray) -> np.ndarray:
    """Stable order of events by time (identity when already sorted).

    Parameters
    ----------
    time : numpy.ndarray
        Event times in seconds.

    Returns
    -------
    numpy.ndarray
        int64 permutation; equal times keep their input order.
    """
    if len(time) < 2 or bool((time[1:] >= time[:-1]).all()):
        return np.arange(len(time), dtype=np.int64)
    return np.argsort(time, kind="stable")


def _union(name_lists: Sequence[Sequence[str]]) -> tuple[list[str], list[np.ndarray]]:
    """Union of name lists in first-appearance order, and each list's index map."""
    index: dict[str, int] = {}
    maps = []
    for names in name_lists:
        maps.append(np.array([index.setdefault(n, len(index)) for n in names], dtype=np.int32))
    return list(index), maps


def _remap(codes: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Map codes >= 0 through `mapping`; keep -1."""
    if len(mapping) == 0:
        return codes.copy()
    return np.where(codes >= 0, mapping[np.maximum(codes, 0)], codes).astype(np.int32)


def merge(*workloads: Workload) -> Workload:
    """Merge workloads into one, ordered stably by time.

    Parameters
    ----------
    *workloads : Workload
        Event sets to combine, e.g. a node schedule and a pod workload.

    Returns
    -------
    Workload
        Pod ids of the k-th input are shifted by the pod counts before it.
        Nodes, namespaces and pools are matched by name (the same name in two
        inputs is the same node / namespace / pool). Events at equal times keep
        the order of the inputs, then their own order.

    Notes
    -----
    Matching nodes by name means two inputs that both add ``node-0`` at t=0 give
    a workload that fails :meth:`Workload.validate`; merge one node schedule with
    pod-only workloads.
    """
    if not workloads:
        raise ConfigError("merge: got no workloads; expected at least one")
    node_names, node_maps = _union([w.node_names for w in workloads])
    namespaces, ns_maps = _union([w.namespaces for w in workloads])
    pool_names, pool_maps = _union([w.pool_names for w in workloads])
    offsets = np.cumsum([0] + [w.n_pods for w in workloads])
    parts: dict[str, list[np.ndarray]] = {name: [] for name, _ in _COLUMNS}
    for w, off, nm, sm, pm in zip(workloads, offsets, node_maps, ns_maps, pool_maps):
        parts["time"].append(w.time)
        parts["op"].append(w.op)
        parts["node"].append(_remap(w.node, nm))
        parts["pod"].append(np.where(w.pod >= 0, w.pod + off, -1).astype(np.int32))
        parts["namespace"].append(_remap(w.namespace, sm))
        parts["pool"].append(_remap(w.pool, pm))
    cols = {k: np.concatenate(v) for k, v in parts.items()}
    order = sort_events(cols["time"])
    pod_names = None
    if any(w.pod_names is not None for w in workloads):
        chunks = []
        for w, off in zip(workloads, offsets):
            if w.pod_names is not None:
                chunks.append(w.pod_names.cast(pa.string()))
            else:  # keep "pod-<new id>" for unnamed inputs
                ids = pa.array(np.arange(off, off + w.n_pods, dtype=np.int64)).cast(pa.string())
                chunks.append(pc.binary_join_element_wise("pod-", ids, ""))
        pod_names = pa.concat_arrays(chunks)
    return Workload(
        **{k: v[order] for k, v in cols.items()},
        node_names=node_names,
        namespaces=namespaces,
        pool_names=pool_names,
        n_pods=int(offsets[-1]),
        pod_names=pod_names,
    )


def renumber_pods(op: np.ndarray, pod: np.ndarray, n_old: int) -> tuple[np.ndarray, np.ndarray]:
    """Give pods dense ids in the order of their POD_ADD events.

    Parameters
    ----------
    op, pod : numpy.ndarray
        Time-ordered event ops and pod ids (-1 for node ops); every pod id that
        appears must have its POD_ADD in the arrays.
    n_old : int
        Number of ids in the input numbering.

    Returns
    -------
    new_pod : numpy.ndarray
        int32 event pod ids (-1 kept for node ops).
    old_of_new : numpy.ndarray
        int64: input id of each new id, to carry per-pod attributes along.
    """
    old_of_new = pod[op == OP_POD_ADD].astype(np.int64)
    k = old_of_new.size
    if (old_of_new == np.arange(k)).all() and (k == n_old or pod.size == 0 or pod.max() < k):
        # pods already numbered by creation (what the generators make): the renumbering is the identity
        return pod.astype(np.int32), old_of_new
    new_of_old = np.full(max(n_old, 1), -1, dtype=np.int32)
    new_of_old[old_of_new] = np.arange(len(old_of_new), dtype=np.int32)
    new_pod = np.where(pod >= 0, new_of_old[np.maximum(pod, 0)], -1).astype(np.int32)
    return new_pod, old_of_new


def truncate(workload: Workload, until: float) -> Workload:
    """Keep the events at times <= `until`.

    Parameters
    ----------
    workload : Workload
        A valid workload.
    until : float
        Last simulated second to keep (inclusive).

    Returns
    -------
    Workload
        The prefix of events; pods whose add is dropped disappear and the rest
        are renumbered densely in add order (``pod_names`` follow).
    """
    if len(workload) == 0 or workload.time[-1] <= until:
        return workload
    n = int(np.searchsorted(workload.time, until, side="right"))
    op, pod = workload.op[:n], workload.pod[:n]
    new_pod, old_of_new = renumber_pods(op, pod, workload.n_pods)
    names = None if workload.pod_names is None else workload.pod_names.take(pa.array(old_of_new))
    return Workload(
        time=workload.time[:n], op=op, node=workload.node[:n], pod=new_pod,
        namespace=workload.namespace[:n], pool=workload.pool[:n],
        node_names=workload.node_names, namespaces=workload.namespaces, pool_names=workload.pool_names,
        n_pods=len(old_of_new), pod_names=names,
    )
