"""Node lifecycle on top of any workload: drains, node-group scaling, spot interruptions, agent restarts.

A scenario's ``workload.lifecycle`` mapping adds node events to what its
generator (or replay file) produced; the engine does the rest (evictions,
rescheduling, what each mode keeps or gives back). Example::

    workload:
      generator: steady-churn
      podsPerNode: 30
      lifecycle:
        drains:                       # kubectl drain: cordon, evict; the node stays until deleteAfter
          - {at: 300, nodes: 4, deleteAfter: 600}
        scale:                        # node-group steps: new nodes join / nodes drained, then deleted
          - {at: 600, add: 4}
          - {at: 900, remove: 2}
        spotInterruptions: {perHour: 6, notice: 120, replace: true}
        agentRestarts: [1200]         # every present node's agent restarts (a DaemonSet rollout)
        releasedCIDRs: stranded       # multi-pool fault model: freed (default) | stranded | reclaimed

Times are seconds of simulated time. Every random choice (which nodes, when
spot interruptions come) draws from ``np.random.default_rng((seed, LIFECYCLE_STREAM))``,
a stream of its own, so the generator's events stay those of the same
workload without a lifecycle.

Nodes are chosen among those present at the time that are not already
cordoned or on their way out; a node that the workload itself deletes later
is never chosen for a removal (its own delete would then find it absent).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ipam_core.errors import ConfigError
from ipam_core.workloads.events import (
    OP_AGENT_RESTART,
    OP_NODE_ADD,
    OP_NODE_DEL,
    OP_NODE_DRAIN,
    Workload,
    merge,
)

__all__ = [
    "DrainStep",
    "LifecycleSpec",
    "LIFECYCLE_STREAM",
    "RELEASED_CIDRS_CHOICES",
    "ScaleStep",
    "SpotSpec",
    "add_lifecycle",
    "parse_lifecycle",
]

#: Second word of the lifecycle's random stream seed ``(scenario seed, LIFECYCLE_STREAM)``.
LIFECYCLE_STREAM = 0x11FE
#: ``releasedCIDRs`` values (see ipam_core.engine.tables.RELEASED_CIDRS).
RELEASED_CIDRS_CHOICES = ("freed", "stranded", "reclaimed")
#: EC2 spot interruption notice (the two-minute warning).
SPOT_NOTICE_S = 120.0


@dataclass(frozen=True)
class DrainStep:
    """``drains[i]``: at ``at`` s, cordon and drain ``nodes`` nodes; delete them ``deleteAfter`` s later (None: never)."""

    at: float
    nodes: int
    delete_after: float | None = None


@dataclass(frozen=True)
class ScaleStep:
    """``scale[i]``: at ``at`` s, ``add`` new nodes join, or ``remove`` nodes are drained and deleted ``drainTime`` s later."""

    at: float
    add: int = 0
    remove: int = 0
    drain_time: float = 0.0


@dataclass(frozen=True)
class SpotSpec:
    """``spotInterruptions``: interruptions at ``perHour`` (Poisson), each drains a node ``notice`` s before it goes."""

    per_hour: float
    notice: float = SPOT_NOTICE_S
    replace: bool = True


@dataclass(frozen=True)
class LifecycleSpec:
    """A scenario's ``workload.lifecycle``: node events added to the workload, and the released-CIDR fault model.

    Parameters
    ----------
    drains : tuple of DrainStep
    scale : tuple of ScaleStep
    spot : SpotSpec or None
    agent_restarts : tuple of float
        Times at which every present node's agent restarts.
    released_cidrs : str
        ``freed`` (multi-pool as upstream: the operator frees a CIDR the agent
        gave back), ``stranded`` (the CIDR stays advertised on the node and the
        agent never uses it again until it restarts: cilium/cilium#46598,
        #47910, before PR #46674) or ``reclaimed`` (stays advertised; the agent
        takes it back when its free addresses fall below its need: PR #46674).
    """

    drains: tuple[DrainStep, ...] = ()
    scale: tuple[ScaleStep, ...] = ()
    spot: SpotSpec | None = None
    agent_restarts: tuple[float, ...] = ()
    released_cidrs: str = "freed"

    def adds_events(self) -> bool:
        """Whether the lifecycle puts any event into the workload."""
        return bool(self.drains or self.scale or self.spot or self.agent_restarts)

    def to_raw(self) -> dict[str, Any]:
        """The settings as a YAML-style mapping (:func:`parse_lifecycle` round-trips it)."""
        raw: dict[str, Any] = {}
        if self.drains:
            raw["drains"] = [{"at": d.at, "nodes": d.nodes, **({} if d.delete_after is None else
                                                               {"deleteAfter": d.delete_after})}
                             for d in self.drains]
        if self.scale:
            raw["scale"] = [{"at": s.at, **({"add": s.add} if s.add else {"remove": s.remove,
                                                                          "drainTime": s.drain_time})}
                            for s in self.scale]
        if self.spot is not None:
            raw["spotInterruptions"] = {"perHour": self.spot.per_hour, "notice": self.spot.notice,
                                        "replace": self.spot.replace}
        if self.agent_restarts:
            raw["agentRestarts"] = list(self.agent_restarts)
        if self.released_cidrs != "freed":
            raw["releasedCIDRs"] = self.released_cidrs
        return raw


# ---------------------------------------------------------------------- parsing
def _fail(where: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{where} = {value!r}: expected {expected}")


def _seconds(where: str, value: Any, *, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise _fail(where, value, "a finite number of seconds " + ("> 0" if positive else ">= 0"))
    return float(value)


def _count(where: str, value: Any, *, zero_ok: bool = False) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if zero_ok else 1):
        raise _fail(where, value, "an integer >= 0" if zero_ok else "an integer > 0")
    return int(value)


def _mapping(where: str, value: Any, keys: tuple[str, ...]) -> Mapping:
    if not isinstance(value, Mapping):
        raise _fail(where, value, f"a mapping with keys {', '.join(keys)}")
    for key in value:
        if key not in keys:
            raise _fail(f"{where}.{key}", value[key], f"one of the keys {', '.join(keys)}")
    return value


def _steps(where: str, value: Any) -> list:
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(where, value, "a non-empty list of mappings")
    return list(value)


def _need(where: str, raw: Mapping, key: str) -> Any:
    if key not in raw:
        raise ConfigError(f"{where}.{key} is missing: expected a value")
    return raw[key]


def _drain(where: str, raw: Any) -> DrainStep:
    raw = _mapping(where, raw, ("at", "nodes", "deleteAfter"))
    after = raw.get("deleteAfter")
    return DrainStep(_seconds(f"{where}.at", _need(where, raw, "at")), _count(f"{where}.nodes", _need(where, raw, "nodes")),
                     None if after is None else _seconds(f"{where}.deleteAfter", after))


def _scale(where: str, raw: Any) -> ScaleStep:
    raw = _mapping(where, raw, ("at", "add", "remove", "drainTime"))
    at = _seconds(f"{where}.at", _need(where, raw, "at"))
    add = _count(f"{where}.add", raw.get("add", 0), zero_ok=True)
    remove = _count(f"{where}.remove", raw.get("remove", 0), zero_ok=True)
    if (add > 0) == (remove > 0):
        raise _fail(where, dict(raw), "exactly one of add or remove, an integer > 0")
    if add and "drainTime" in raw:
        raise _fail(f"{where}.drainTime", raw["drainTime"], "drainTime only with remove")
    return ScaleStep(at, add, remove, _seconds(f"{where}.drainTime", raw.get("drainTime", 0.0)))


def _spot(where: str, raw: Any) -> SpotSpec:
    raw = _mapping(where, raw, ("perHour", "notice", "replace"))
    replace = raw.get("replace", True)
    if not isinstance(replace, bool):
        raise _fail(f"{where}.replace", replace, "true or false")
    return SpotSpec(_seconds(f"{where}.perHour", _need(where, raw, "perHour"), positive=True),
                    _seconds(f"{where}.notice", raw.get("notice", SPOT_NOTICE_S)), replace)


def parse_lifecycle(raw: Any, where: str = "workload.lifecycle") -> LifecycleSpec:
    """Validate a ``workload.lifecycle`` mapping.

    Parameters
    ----------
    raw : mapping
        As loaded from YAML (keys ``drains``, ``scale``, ``spotInterruptions``,
        ``agentRestarts``, ``releasedCIDRs``; all optional).
    where : str
        Prefix of the key names in error messages.

    Returns
    -------
    LifecycleSpec

    Raises
    ------
    ConfigError
        One line naming ``<where>.<key>``, the value and what was expected.
    """
    keys = ("drains", "scale", "spotInterruptions", "agentRestarts", "releasedCIDRs")
    raw = _mapping(where, raw, keys)
    drains = tuple(_drain(f"{where}.drains[{i}]", d) for i, d in enumerate(_steps(f"{where}.drains", raw["drains"]))) \
        if "drains" in raw else ()
    scale = tuple(_scale(f"{where}.scale[{i}]", s) for i, s in enumerate(_steps(f"{where}.scale", raw["scale"]))) \
        if "scale" in raw else ()
    spot = _spot(f"{where}.spotInterruptions", raw["spotInterruptions"]) if "spotInterruptions" in raw else None
    restarts: tuple[float, ...] = ()
    if "agentRestarts" in raw:
        value = raw["agentRestarts"]
        if not isinstance(value, (list, tuple)) or not value:
            raise _fail(f"{where}.agentRestarts", value, "a non-empty list of times in seconds")
        restarts = tuple(_seconds(f"{where}.agentRestarts[{i}]", t) for i, t in enumerate(value))
    released = raw.get("releasedCIDRs", "freed")
    if released not in RELEASED_CIDRS_CHOICES:
        raise _fail(f"{where}.releasedCIDRs", released, f"one of {', '.join(RELEASED_CIDRS_CHOICES)}")
    return LifecycleSpec(drains, scale, spot, restarts, released)


# ---------------------------------------------------------------------- events
@dataclass
class _Nodes:
    """Which nodes are present, and which may still be drained or removed, as the actions are laid out."""

    names: list[str]
    present: np.ndarray  # bool per node id
    busy: np.ndarray  # bool: cordoned, drained or on its way out
    base_delete_last: np.ndarray  # time of the workload's own last delete of the node (-inf: none)

    def grow(self, n: int) -> np.ndarray:
        first = len(self.names)
        taken = set(self.names)
        k = first
        new = []
        while len(new) < n:
            name = f"node-{k}"
            if name not in taken:
                new.append(name)
            k += 1
        self.names.extend(new)
        self.present = np.r_[self.present, np.zeros(n, bool)]
        self.busy = np.r_[self.busy, np.zeros(n, bool)]
        self.base_delete_last = np.r_[self.base_delete_last, np.full(n, -np.inf)]
        return np.arange(first, first + n)

    def pick(self, rng: np.random.Generator, k: int, t: float, removal: bool) -> np.ndarray:
        ok = self.present & ~self.busy
        if removal:
            ok &= self.base_delete_last < t
        candidates = np.flatnonzero(ok)
        if not len(candidates):
            return candidates
        return np.sort(rng.choice(candidates, size=min(k, len(candidates)), replace=False))


def _actions(spec: LifecycleSpec, rng: np.random.Generator, duration_s: float) -> list[tuple[float, int, Any]]:
    """(time, order, step) of every action, in time order (equal times: drains, scale, spot, restarts)."""
    acts: list[tuple[float, int, Any]] = [(d.at, 0, d) for d in spec.drains]
    acts += [(s.at, 1, s) for s in spec.scale]
    if spec.spot is not None:
        mean = 3600.0 / spec.spot.per_hour
        t = rng.exponential(mean)
        while t < duration_s:
            acts.append((float(t), 2, spec.spot))
            t += rng.exponential(mean)
    acts += [(t, 3, None) for t in spec.agent_restarts]
    acts.sort(key=lambda a: (a[0], a[1]))
    return acts


def add_lifecycle(workload: Workload, spec: LifecycleSpec, *, seed: int, duration_s: float) -> Workload:
    """The workload with the lifecycle's node events merged in.

    Parameters
    ----------
    workload : Workload
        What the generator (or replay file) produced.
    spec : LifecycleSpec
    seed : int
        The scenario seed; the lifecycle draws from its own stream of it.
    duration_s : float
        Events after it are dropped.

    Returns
    -------
    Workload
        ``workload`` itself when the lifecycle adds no event; otherwise the
        merged events (pods and their ids unchanged; new nodes named
        ``node-<k>`` after the existing ones).

    Notes
    -----
    A drain is an ``OP_NODE_DRAIN`` event (cordon and evict, see
    :func:`ipam_core.engine.core._node_drain`); the node is deleted
    ``deleteAfter`` later, at once for a scale-down (``drainTime`` 0:
    cluster-autoscaler deletes the node once it is empty) and ``notice`` later
    for a spot interruption, when EC2 reclaims the instance. A spot
    replacement (``replace``) joins when the interrupted node goes. Steps that
    find no eligible node do nothing; a step asking for more nodes than are
    eligible takes them all.
    """
    if not spec.adds_events():
        return workload
    rng = np.random.default_rng((int(seed), LIFECYCLE_STREAM))
    is_node = workload.op <= OP_NODE_DEL
    n_nodes = len(workload.node_names)
    base_del_last = np.full(n_nodes, -np.inf)
    dels = is_node & (workload.op == OP_NODE_DEL)
    np.maximum.at(base_del_last, workload.node[dels], workload.time[dels])
    nodes = _Nodes(list(workload.node_names), np.zeros(n_nodes, bool), np.zeros(n_nodes, bool), base_del_last)
    node_ev = np.flatnonzero(is_node)
    cursor = 0
    out_t: list[float] = []
    out_op: list[int] = []
    out_node: list[int] = []
    pending: list[tuple[float, int, int]] = []  # our own later adds / deletes: (time, op, node)

    def emit(t: float, op: int, node: int) -> None:
        out_t.append(t), out_op.append(op), out_node.append(int(node))

    def catch_up(t: float) -> None:
        # node presence at time t: the workload's own node events and ours due by then
        nonlocal cursor
        while cursor < len(node_ev) and workload.time[node_ev[cursor]] <= t:
            i = node_ev[cursor]
            node = workload.node[i]
            nodes.present[node] = workload.op[i] == OP_NODE_ADD
            if workload.op[i] == OP_NODE_ADD:
                nodes.busy[node] = False  # a new incarnation starts uncordoned
            cursor += 1
        for item in sorted(p for p in pending if p[0] <= t):
            pending.remove(item)
            nodes.present[item[2]] = item[1] == OP_NODE_ADD

    def drain(t: float, chosen: np.ndarray, delete_at: float | None) -> None:
        for node in chosen:
            nodes.busy[node] = True
            emit(t, OP_NODE_DRAIN, node)
            if delete_at is not None:
                emit(delete_at, OP_NODE_DEL, node)
                pending.append((delete_at, OP_NODE_DEL, int(node)))

    for t, kind, step in _actions(spec, rng, duration_s):
        catch_up(t)
        if kind == 0:
            delete_at = None if step.delete_after is None else t + step.delete_after
            drain(t, nodes.pick(rng, step.nodes, t, removal=delete_at is not None), delete_at)
        elif kind == 1 and step.add:
            for node in nodes.grow(step.add):
                emit(t, OP_NODE_ADD, node)
                nodes.present[node] = True
        elif kind == 1:
            drain(t, nodes.pick(rng, step.remove, t, removal=True), t + step.drain_time)
        elif kind == 2:
            chosen = nodes.pick(rng, 1, t, removal=True)
            drain(t, chosen, t + step.notice)
            if step.replace and len(chosen):
                (new,) = nodes.grow(1)
                emit(t + step.notice, OP_NODE_ADD, new)
                pending.append((t + step.notice, OP_NODE_ADD, int(new)))
        else:
            for node in np.flatnonzero(nodes.present):
                emit(t, OP_AGENT_RESTART, node)
    time = np.asarray(out_t, dtype=np.float64)
    keep = time <= duration_s
    order = np.argsort(time[keep], kind="stable")
    n = int(keep.sum())
    none = np.full(n, -1, dtype=np.int32)
    events = Workload(time=time[keep][order], op=np.asarray(out_op, np.int8)[keep][order],
                      node=np.asarray(out_node, np.int32)[keep][order], pod=none, namespace=none, pool=none,
                      node_names=nodes.names, namespaces=[], pool_names=[], n_pods=0)
    merged = merge(workload, events)
    merged.pod_attributes_key = workload.pod_attributes_key  # pods, ids and names unchanged
    merged.validate()
    return merged
