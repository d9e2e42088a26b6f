"""Typed, validated settings of a scenario's ``workload:`` mapping.

Each generator has a frozen dataclass whose fields carry their YAML key
(camelCase, as in Kubernetes and clusterloader2 configs), kind and default.
:func:`parse_workload` turns the raw mapping into one of them, or raises a
one-line :class:`~ipam_core.errors.ConfigError` naming ``workload.<key>``, the
value and what was expected. Example::

    workload:
      generator: steady-churn
      podsPerNode: 30
      churnPerSecond: 20
      podPoolFractions: {blue: 0.25}
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from ipam_core.errors import ConfigError
from ipam_core.workloads.lifecycle import LifecycleSpec, parse_lifecycle

__all__ = [
    "WorkloadSpec",
    "SteadyChurnSpec",
    "ScaleOutSpec",
    "BurstSpec",
    "NodeAutoscalingSpec",
    "Cl2LoadSpec",
    "ReplaySpec",
    "SPEC_TYPES",
    "parse_workload",
]

# What each kind of key accepts, as said in error messages.
_EXPECTED = {
    "int>0": "an integer > 0",
    "float>0": "a finite number > 0",
    "float>=0": "a finite number >= 0",
    "bool": "true or false",
    "path": "a non-empty path string",
    "fractions": "a mapping {poolName: fraction} with fractions in (0, 1] summing to <= 1",
    "weights": "a mapping {namespace: weight} with weights >= 0 and at least one > 0",
    "lifecycle": "a mapping of node lifecycle settings (drains, scale, spotInterruptions, agentRestarts, "
                 "releasedCIDRs)",
}


def _key(key: str, kind: str, default: Any = MISSING, *, nullable: bool = False) -> Any:
    """A dataclass field bound to YAML `key`, parsed as `kind`."""
    return field(default=default, metadata={"key": key, "kind": kind, "nullable": nullable})


@dataclass(frozen=True)
class WorkloadSpec:
    """Base of the per-generator settings; ``generator`` names the generator."""

    generator: ClassVar[str] = ""
    #: ``lifecycle``: node events added to any generator's (ipam_core.workloads.lifecycle); None: none
    lifecycle: LifecycleSpec | None = field(default=None, kw_only=True,
                                            metadata={"key": "lifecycle", "kind": "lifecycle", "nullable": True})

    def to_raw(self) -> dict[str, Any]:
        """The settings as a YAML-style mapping (``parse_workload`` round-trips it).

        Returns
        -------
        dict
            ``{"generator": ..., <camelCase key>: value}``; keys left at None or
            at an empty mapping are omitted, mappings are plain dicts.
        """
        raw: dict[str, Any] = {"generator": self.generator}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == ():
                continue
            if f.metadata["kind"] == "lifecycle":
                value = value.to_raw()
            raw[f.metadata["key"]] = dict(value) if f.metadata["kind"] in ("fractions", "weights") else value
        return raw


@dataclass(frozen=True)
class SteadyChurnSpec(WorkloadSpec):
    """``steady-churn``: fill to a target, then replace random pods at a fixed rate.

    Parameters
    ----------
    podsPerNode : int, default 30
        Target pods per node (capped by the scenario's max pods per node).
    churnPerSecond : float, default 20
        Churn steps per second; each step deletes one live pod and creates one.
    fillQps : float or None, default None
        Creation rate while filling; None creates the target at t=0.
    namespaceWeights : mapping, default round-robin
        Relative share of new pods per namespace.
    podPoolFractions : mapping, default none
        Fraction of pods annotated ``ipam.cilium.io/ip-pool: <pool>``.
    """

    generator: ClassVar[str] = "steady-churn"
    pods_per_node: int = _key("podsPerNode", "int>0", 30)
    churn_per_second: float = _key("churnPerSecond", "float>0", 20.0)
    fill_qps: float | None = _key("fillQps", "float>0", None, nullable=True)
    namespace_weights: tuple[tuple[str, float], ...] = _key("namespaceWeights", "weights", ())
    pod_pool_fractions: tuple[tuple[str, float], ...] = _key("podPoolFractions", "fractions", ())


@dataclass(frozen=True)
class ScaleOutSpec(WorkloadSpec):
    """``scale-out``: create pods at a steady rate up to a total, never delete.

    Parameters
    ----------
    qps : float, default 10
        Pods created per second (clusterloader2 ``LOAD_TEST_THROUGHPUT``).
    pods : int or None, default nodes x podsPerNode
        Total pods; not capped by node capacity (overflow stays pending).
    podsPerNode : int, default 30
        Used for the default total (capped by max pods per node).
    namespaceWeights, podPoolFractions : mapping
        As for ``steady-churn``.
    """

    generator: ClassVar[str] = "scale-out"
    qps: float = _key("qps", "float>0", 10.0)
    pods: int | None = _key("pods", "int>0", None, nullable=True)
    pods_per_node: int = _key("podsPerNode", "int>0", 30)
    namespace_weights: tuple[tuple[str, float], ...] = _key("namespaceWeights", "weights", ())
    pod_pool_fractions: tuple[tuple[str, float], ...] = _key("podPoolFractions", "fractions", ())


@dataclass(frozen=True)
class BurstSpec(WorkloadSpec):
    """``burst``: create podsPerNode x nodes pods at once, hold, delete; repeat.

    Parameters
    ----------
    podsPerNode : int, default 30
        Burst size per node (the WIP burst SLO: 30 x #nodes pods).
    qps : float or None, default None
        Creation (and deletion) rate; None does each in one instant.
    hold : float, default 60
        Seconds between the last creation and the first deletion.
    repeats : int, default 1
        Number of bursts.
    gap : float, default 60
        Seconds between the last deletion of a burst and the next burst.
    start : float, default 0
        Time of the first creation.
    namespaceWeights, podPoolFractions : mapping
        As for ``steady-churn``.
    """

    generator: ClassVar[str] = "burst"
    pods_per_node: int = _key("podsPerNode", "int>0", 30)
    qps: float | None = _key("qps", "float>0", None, nullable=True)
    hold: float = _key("hold", "float>=0", 60.0)
    repeats: int = _key("repeats", "int>0", 1)
    gap: float = _key("gap", "float>=0", 60.0)
    start: float = _key("start", "float>=0", 0.0)
    namespace_weights: tuple[tuple[str, float], ...] = _key("namespaceWeights", "weights", ())
    pod_pool_fractions: tuple[tuple[str, float], ...] = _key("podPoolFractions", "fractions", ())


@dataclass(frozen=True)
class NodeAutoscalingSpec(WorkloadSpec):
    """``node-autoscaling``: node count follows a raised-cosine wave; pods follow nodes.

    Parameters
    ----------
    minNodes : int or None, default max(1, nodes // 2)
        Node count at t=0 and at every multiple of `period`.
    maxNodes : int or None, default nodes
        Node count at half periods.
    period : float, default 3600
        Seconds per min -> max -> min cycle.
    interval : float, default 60
        Seconds between autoscaler decisions.
    podsPerNode : int, default 30
        Pods created with each joining node (capped by max pods per node).
    pinPods : bool, default true
        Pin each node's pods to it, so they leave with it; false lets the
        engine schedule them.
    reuseNodeIds : bool, default false
        Re-added nodes take the lowest free ids (same names) instead of new ids.
    namespaceWeights, podPoolFractions : mapping
        As for ``steady-churn``.
    """

    generator: ClassVar[str] = "node-autoscaling"
    min_nodes: int | None = _key("minNodes", "int>0", None, nullable=True)
    max_nodes: int | None = _key("maxNodes", "int>0", None, nullable=True)
    period: float = _key("period", "float>0", 3600.0)
    interval: float = _key("interval", "float>0", 60.0)
    pods_per_node: int = _key("podsPerNode", "int>0", 30)
    pin_pods: bool = _key("pinPods", "bool", True)
    reuse_node_ids: bool = _key("reuseNodeIds", "bool", False)
    namespace_weights: tuple[tuple[str, float], ...] = _key("namespaceWeights", "weights", ())
    pod_pool_fractions: tuple[tuple[str, float], ...] = _key("podPoolFractions", "fractions", ())


@dataclass(frozen=True)
class Cl2LoadSpec(WorkloadSpec):
    """``cl2-load``: clusterloader2 ``testing/load`` deployments, scaling, deletion.

    Parameters
    ----------
    podsPerNode : int, default 30
        ``PODS_PER_NODE`` (capped by max pods per node).
    nodesPerNamespace : int, default 100
        ``NODES_PER_NAMESPACE``: namespaces = max(1, nodes // this) unless given.
    qps : float, default 10
        ``LOAD_TEST_THROUGHPUT``: saturation time = total pods / qps.
    bigGroupSize, mediumGroupSize, smallGroupSize : int, default 250, 30, 5
        Deployment replica counts holding 1/4, 1/4 and 1/2 of the pods.
    phaseGap : float, default 0
        Seconds between phases (clusterloader2 waits for pods to be running).
    podPoolFractions : mapping
        As for ``steady-churn``.
    """

    generator: ClassVar[str] = "cl2-load"
    pods_per_node: int = _key("podsPerNode", "int>0", 30)
    nodes_per_namespace: int = _key("nodesPerNamespace", "int>0", 100)
    qps: float = _key("qps", "float>0", 10.0)
    big_group_size: int = _key("bigGroupSize", "int>0", 250)
    medium_group_size: int = _key("mediumGroupSize", "int>0", 30)
    small_group_size: int = _key("smallGroupSize", "int>0", 5)
    phase_gap: float = _key("phaseGap", "float>=0", 0.0)
    pod_pool_fractions: tuple[tuple[str, float], ...] = _key("podPoolFractions", "fractions", ())


@dataclass(frozen=True)
class ReplaySpec(WorkloadSpec):
    """``replay``: events read from a CSV, Parquet or Arrow IPC file.

    Parameters
    ----------
    path : str
        The events file, stored as given (the scenario loader resolves
        relative paths against the scenario file).
    timeScale : float, default 1
        Simulated time = file time x timeScale.
    """

    generator: ClassVar[str] = "replay"
    path: str = _key("path", "path")
    time_scale: float = _key("timeScale", "float>0", 1.0)


#: generator name -> its settings class.
SPEC_TYPES: dict[str, type[WorkloadSpec]] = {
    cls.generator: cls
    for cls in (SteadyChurnSpec, ScaleOutSpec, BurstSpec, NodeAutoscalingSpec, Cl2LoadSpec, ReplaySpec)
}


# ---------------------------------------------------------------------- parsing
def _fail(where: str, key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{where}.{key} = {value!r}: expected {expected}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_value(where: str, key: str, kind: str, value: Any) -> Any:
    """Check one value against its kind and return it in stored form."""
    expected = _EXPECTED[kind]
    if kind == "lifecycle":
        return parse_lifecycle(value, f"{where}.{key}")
    if kind == "int>0":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise _fail(where, key, value, expected)
        return int(value)
    if kind in ("float>0", "float>=0"):
        if not (_is_number(value) and math.isfinite(value)) or value < 0 or (kind == "float>0" and value == 0):
            raise _fail(where, key, value, expected)
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise _fail(where, key, value, expected)
        return value
    if kind == "path":
        if not isinstance(value, str) or not value.strip():
            raise _fail(where, key, value, expected)
        return value
    # mappings
    if not isinstance(value, Mapping) or not value:
        raise _fail(where, key, value, expected)
    pairs = []
    for name, share in value.items():
        sub = f"{key}.{name}"
        if not isinstance(name, str) or not name.strip():
            raise _fail(where, key, value, f"non-empty names in {expected}")
        if not (_is_number(share) and math.isfinite(share)) or share < 0:
            raise _fail(where, sub, share, "a finite number >= 0" if kind == "weights" else "a fraction in (0, 1]")
        if kind == "fractions" and not 0 < share <= 1:
            raise _fail(where, sub, share, "a fraction in (0, 1]")
        pairs.append((name, float(share)))
    total = sum(s for _, s in pairs)
    if kind == "fractions" and total > 1 + 1e-9:
        raise _fail(where, key, dict(value), f"fractions summing to <= 1 (got {total:g})")
    if kind == "weights" and total <= 0:
        raise _fail(where, key, dict(value), "at least one weight > 0")
    return tuple(pairs)


def parse_workload(raw: Any, where: str = "workload") -> WorkloadSpec:
    """Validate a scenario's ``workload:`` mapping.

    Parameters
    ----------
    raw : dict
        The mapping as loaded from YAML; ``generator`` is required.
    where : str, default "workload"
        Prefix of the key names in error messages.

    Returns
    -------
    WorkloadSpec
        The generator's frozen settings, defaults filled in.

    Raises
    ------
    ConfigError
        One line naming ``<where>.<key>``, the value and what was expected: an
        unknown generator or key (with the closest valid name), a wrong type, a
        zero or negative value where a positive one is required, a missing
        required key, or ``minNodes`` > ``maxNodes``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} = {raw!r}: expected a mapping with a 'generator' key")
    generator = raw.get("generator")
    if generator is None:
        raise ConfigError(f"{where}.generator is missing: expected one of {', '.join(SPEC_TYPES)}")
    if generator not in SPEC_TYPES:
        hint = _suggest(str(generator), SPEC_TYPES)
        raise _fail(where, "generator", generator, f"one of {', '.join(SPEC_TYPES)}{hint}")
    cls = SPEC_TYPES[generator]
    by_key = {f.metadata["key"]: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "generator":
            continue
        f = by_key.get(key) if isinstance(key, str) else None
        if f is None:
            hint = _suggest(str(key), by_key)
            raise ConfigError(f"{where}.{key} = {value!r}: unknown key for generator '{generator}'{hint}; "
                              f"expected one of {', '.join(by_key)}")
        if value is None and f.metadata["nullable"]:
            values[f.name] = None
            continue
        values[f.name] = _parse_value(where, key, f.metadata["kind"], value)
    for key, f in by_key.items():
        if f.name not in values and f.default is MISSING:
            raise ConfigError(f"{where}.{key} is missing: expected {_EXPECTED[f.metadata['kind']]} "
                              f"for generator '{generator}'")
    spec = cls(**values)
    if isinstance(spec, NodeAutoscalingSpec) and spec.min_nodes and spec.max_nodes \
            and spec.min_nodes > spec.max_nodes:
        raise _fail(where, "minNodes", spec.min_nodes, f"<= maxNodes ({spec.max_nodes})")
    return spec


def _suggest(word: str, choices: Mapping[str, Any]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:  # case-insensitive second try: podspernode -> podsPerNode
        lowered = {c.lower(): c for c in choices}
        close = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return f" (did you mean '{close[0]}'?)" if close else ""
