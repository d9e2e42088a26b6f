"""The scenario's ``migration:`` mapping: initial node names, step timing, planning workload.

Every key is optional::

    migration:
      nodes: [k8s-ctr]          # nodes at t=0, in join order (default: cluster.nodes named node-0, node-1, ...)
      agentRestart: 30s         # a Cilium agent pod restarting until it is ready
      operatorRestart: 10s      # the cilium-operator Deployment restarting until it is ready
      podRestart: 10s           # a new pod from creation (with its address) to ready
      drain: 60s                # kubectl drain emptying a node
      podsPerNode: 30           # planning: generated steady state (default workload.podsPerNode, else 30)
      replicasPerDeployment: 10 # planning: size of each generated Deployment

The restart durations can also be set on a single step (``{at: 5m, run: ..., agentRestart: 45s}``).
They are ipam-bench's modelling choices, not upstream constants: a real agent restart takes
as long as its image pull, BPF regeneration and endpoint restore take.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ipam_core.scenario._values import as_duration, as_int, as_list, as_mapping, as_str, check_keys
from ipam_core.scenario._where import Source, Where, load_yaml
from ipam_core.scenario.limits import (MAX_DURATION_S, MAX_DURATION_WHY, MAX_LIVE_PODS, MAX_LIVE_PODS_WHY, MAX_NODES,
                                       MAX_NODES_WHY)

#: Step timing keys -> (default seconds, meaning).
TIMING_DEFAULTS: dict[str, tuple[float, str]] = {
    "agentRestart": (30.0, "a Cilium agent pod from restart to ready"),
    "operatorRestart": (10.0, "the cilium-operator from restart to ready"),
    "podRestart": (10.0, "a new pod from creation (address allocated) to ready"),
    "drain": (60.0, "kubectl drain emptying a node"),
}
SETTINGS_KEYS = ("nodes", *TIMING_DEFAULTS, "podsPerNode", "replicasPerDeployment")
DEFAULT_PODS_PER_NODE = 30
DEFAULT_REPLICAS_PER_DEPLOYMENT = 10

# DNS-1123 subdomain, as the API server checks Node names.
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class MigrationTiming:
    """How long the simulated actions take, in seconds."""

    agent_restart_s: float = 30.0
    operator_restart_s: float = 10.0
    pod_restart_s: float = 10.0
    drain_s: float = 60.0

    def with_overrides(self, overrides: Mapping[str, float]) -> MigrationTiming:
        """A copy with some durations replaced.

        Parameters
        ----------
        overrides : mapping of str to float
            Keys of :data:`TIMING_DEFAULTS` (``agentRestart``, ...) to seconds.

        Returns
        -------
        MigrationTiming
        """
        names = {"agentRestart": "agent_restart_s", "operatorRestart": "operator_restart_s",
                 "podRestart": "pod_restart_s", "drain": "drain_s"}
        return replace(self, **{names[k]: float(v) for k, v in overrides.items()})


@dataclass(frozen=True)
class MigrationSettings:
    """The resolved ``migration:`` mapping."""

    nodes: tuple[str, ...]
    timing: MigrationTiming
    pods_per_node: int
    replicas_per_deployment: int


def scenario_source(scenario) -> Source:
    """Line index of the scenario's YAML, for ``file:line:`` in step errors.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario

    Returns
    -------
    Source
        Named by the scenario path (relative to the working folder when inside it).
    """
    name = "<scenario>"
    if scenario.source_path is not None:
        path = Path(scenario.source_path)
        try:
            name = os.path.relpath(path)
            if name.startswith(".."):
                name = str(path)
        except ValueError:  # pragma: no cover - another drive on Windows
            name = str(path)
    return _source_of(scenario.source_text, name)


@functools.lru_cache(maxsize=16)
def _source_of(text: str, name: str) -> Source:
    try:
        _, source = load_yaml(text, name)
    except Exception:  # the loader already accepted this text; keep messages line-less if not
        source = Source(name, {})
    return source


#: Durations a single step may override (``drain`` there is the action, not its duration).
STEP_TIMING_KEYS = ("agentRestart", "operatorRestart", "podRestart")


def read_timing_overrides(where: Where, mapping: Mapping, keys=tuple(TIMING_DEFAULTS)) -> dict[str, float]:
    """The timing keys present in ``mapping``, each a duration (0 allowed).

    Parameters
    ----------
    where : Where
        Position of ``mapping``.
    mapping : mapping
        A ``migration:`` mapping or a step.
    keys : tuple of str
        Which timing keys to read.

    Returns
    -------
    dict of str to float
    """
    out = {key: as_duration(where / key, mapping[key], zero_ok=True) for key in keys if key in mapping}
    for key, seconds in out.items():
        if seconds > MAX_DURATION_S:
            (where / key).fail(f"{mapping[key]!r} ({seconds:,.0f} s) is too long; expected at most "
                               f"{MAX_DURATION_S / 86_400:g} days ({MAX_DURATION_WHY})")
    return out


def read_settings(scenario, source: Source | None = None) -> MigrationSettings:
    """Validate the scenario's ``migration:`` mapping.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
    source : Source, optional
        Line index (default: built from the scenario text).

    Returns
    -------
    MigrationSettings

    Raises
    ------
    ConfigError
        One line naming ``migration.<key>``: unknown key, a duration that is not one or is
        longer than a year, a node name that is not a DNS-1123 subdomain or is repeated, more
        than 100,000 nodes, ``podsPerNode`` above ``cluster.kubelet.maxPods``.
    """
    where = Where(("migration",), source if source is not None else scenario_source(scenario))
    raw = as_mapping(where, scenario.migration)
    check_keys(where, raw, SETTINGS_KEYS)
    if "nodes" in raw:
        items = as_list(where / "nodes", raw["nodes"], null_ok=False)
        if not items:
            (where / "nodes").fail("[] is empty; expected at least one node name")
        if len(items) > MAX_NODES:
            (where / "nodes").fail(f"{len(items):,} names; expected at most {MAX_NODES:,} ({MAX_NODES_WHY})")
        nodes = tuple(check_node_name(where / "nodes" / i, v) for i, v in enumerate(items))
        for i, name in enumerate(nodes):
            if name in nodes[:i]:
                (where / "nodes" / i).fail(f"{name!r} is listed twice; expected each node once")
    else:
        nodes = tuple(f"node-{i}" for i in range(scenario.cluster.nodes))
    timing = MigrationTiming().with_overrides(read_timing_overrides(where, raw))
    default_ppn = min(getattr(scenario.workload, "pods_per_node", None) or DEFAULT_PODS_PER_NODE,
                      scenario.cluster.max_pods)
    max_pods = scenario.cluster.max_pods
    ppn = as_int(where / "podsPerNode", raw.get("podsPerNode", default_ppn), lo=1, hi=max_pods,
                 what=f"an integer from 1 to {max_pods} (cluster.kubelet.maxPods: the kubelet admits no more)")
    rpd = as_int(where / "replicasPerDeployment", raw.get("replicasPerDeployment", DEFAULT_REPLICAS_PER_DEPLOYMENT),
                 lo=1, hi=MAX_LIVE_PODS, what=f"an integer from 1 to {MAX_LIVE_PODS:,} ({MAX_LIVE_PODS_WHY})")
    return MigrationSettings(nodes, timing, ppn, rpd)


def check_node_name(where: Where, value: object) -> str:
    """A Node name: a DNS-1123 subdomain of at most 253 characters.

    Parameters
    ----------
    where : Where
        Position of the value.
    value : object
        The name as written.

    Returns
    -------
    str
    """
    name = as_str(where, value, what="a node name")
    if not _NODE_NAME.match(name) or len(name) > 253:
        where.fail(f"{name!r} is not a valid node name; expected a DNS-1123 subdomain (lowercase letters, digits, "
                   "'-' and '.')")
    return name


__all__ = ["MigrationSettings", "MigrationTiming", "SETTINGS_KEYS", "STEP_TIMING_KEYS", "TIMING_DEFAULTS",
           "check_node_name",
           "read_settings", "read_timing_overrides", "scenario_source"]
