"""Checks of a scenario's workload against its cluster, made at load, before anything runs.

``parse_workload`` checks each workload key alone; here the sizes a workload implies with the
cluster (pods alive at once, events, rates, delays) are bounded by
:mod:`ipam_core.scenario.limits`, and a replay file is read whole and checked against the
scenario (times within the duration, pools it defines, nodes it knows), so a bad input is
one line and exit 2 before any workload is generated or any engine compiled.
"""

from __future__ import annotations

from dataclasses import fields

from ipam_core.errors import ConfigError
from ipam_core.modes import RULES_CALICO, RULES_MULTI_POOL, mode_spec
from ipam_core.scenario import limits as L
from ipam_core.scenario.model import ClusterSpec, IPAMSpec
from ipam_core.workloads.generators import MAX_EVENTS
from ipam_core.workloads.replay import read_events
from ipam_core.workloads.spec import ReplaySpec

#: Upper bound and reason of each integer workload key.
_INT_LIMITS = {
    "podsPerNode": (L.MAX_PODS_PER_NODE, L.MAX_PODS_PER_NODE_WHY),
    "minNodes": (L.MAX_NODES, L.MAX_NODES_WHY),
    "maxNodes": (L.MAX_NODES, L.MAX_NODES_WHY),
    "pods": (L.MAX_LIVE_PODS, L.MAX_LIVE_PODS_WHY),
}
#: Integer keys without a limit of their own: no more than pods could ever be alive.
_OTHER_INT = (L.MAX_LIVE_PODS, "no more than the live-pod limit")
_RATE_KEYS = ("churnPerSecond", "qps", "fillQps")
_TIME_KEYS = ("hold", "gap", "start", "period", "interval", "phaseGap")
#: Events a steady-churn step makes (a delete and a create).
_EVENTS_PER_STEP = 2
#: node-autoscaling decisions (duration / interval): the generator builds one array entry per decision.
MAX_AUTOSCALER_TICKS = 10_000_000


def uses_pools(modes) -> bool:
    """Whether any of ``modes`` places pods in named pools (the multi-pool rules), so a workload's pools matter."""
    return any(mode_spec(mode).rules == RULES_MULTI_POOL for mode in modes)


def uses_calico_pools(modes) -> bool:
    """Whether any of ``modes`` runs Calico's rules, for which a pod's named pool is its pool annotation."""
    return any(mode_spec(mode).rules == RULES_CALICO for mode in modes)


def _fail(key: str, value, expected: str) -> ConfigError:
    return ConfigError(f"workload.{key} = {value!r}: expected {expected}")


def check_workload_size(spec, cluster: ClusterSpec, duration_s: float) -> None:
    """Refuse a workload whose numbers, with the cluster's, exceed :mod:`~ipam_core.scenario.limits`.

    Parameters
    ----------
    spec : ipam_core.workloads.WorkloadSpec
        What ``parse_workload`` returned.
    cluster : ClusterSpec
        Nodes and maxPods.
    duration_s : float
        The scenario's duration.

    Raises
    ------
    ConfigError
        ``workload.<key> = value: expected ... (reason)``: an integer above its limit, a rate
        above :data:`~ipam_core.scenario.limits.MAX_RATE`, a delay above the year limit, more
        pods alive at once than :data:`~ipam_core.scenario.limits.MAX_LIVE_PODS`, or a
        steady churn making more events than the generators' ``MAX_EVENTS``.
    """
    for f in fields(spec):
        key, kind, value = f.metadata["key"], f.metadata["kind"], getattr(spec, f.name)
        if value is None:
            continue
        if kind == "lifecycle":
            _check_lifecycle(value, cluster, duration_s)
        elif kind == "int>0":
            hi, why = _INT_LIMITS.get(key, _OTHER_INT)
            if value > hi:
                raise _fail(key, value, f"an integer from 1 to {hi:,} ({why})")
        elif key in _RATE_KEYS and value > L.MAX_RATE:
            raise _fail(key, value, f"a rate from 0 to {L.MAX_RATE:,.0f} per second ({L.MAX_RATE_WHY})")
        elif key in _TIME_KEYS and value > L.MAX_DURATION_S:
            raise _fail(key, value, f"at most {L.MAX_DURATION_S:,.0f} s ({L.MAX_DURATION_S / 86_400:g} days: "
                        f"{L.MAX_DURATION_WHY})")
    per_node = getattr(spec, "pods_per_node", None)
    if per_node is not None:
        nodes = max(cluster.nodes, getattr(spec, "max_nodes", None) or 0)
        live = nodes * min(per_node, cluster.max_pods)
        if live > L.MAX_LIVE_PODS:
            raise _fail("podsPerNode", per_node, f"nodes x podsPerNode ({nodes:,} x {min(per_node, cluster.max_pods):,}"
                        f" = {live:,}) at most {L.MAX_LIVE_PODS:,} ({L.MAX_LIVE_PODS_WHY})")
        churn = getattr(spec, "churn_per_second", None)
        if churn is not None and live + _EVENTS_PER_STEP * churn * duration_s > MAX_EVENTS:
            raise _fail("churnPerSecond", churn, f"at most {MAX_EVENTS:,} events: {churn:g}/s over {duration_s:g} s "
                        "makes too many; lower the rate or the duration")


def _check_lifecycle(life, cluster: ClusterSpec, duration_s: float) -> None:
    """Node counts and times of ``workload.lifecycle`` within the limits (nodes the steps add, spot rate)."""
    where = "lifecycle"
    times = [(f"{where}.drains[{i}].deleteAfter", d.delete_after) for i, d in enumerate(life.drains)]
    times += [(f"{where}.scale[{i}].drainTime", s.drain_time) for i, s in enumerate(life.scale)]
    if life.spot is not None:
        times.append((f"{where}.spotInterruptions.notice", life.spot.notice))
    for key, value in times:
        if value is not None and value > L.MAX_DURATION_S:
            raise _fail(key, value, f"at most {L.MAX_DURATION_S:,.0f} s ({L.MAX_DURATION_WHY})")
    added = sum(s.add for s in life.scale)
    if cluster.nodes + added > L.MAX_NODES:
        raise _fail(f"{where}.scale", f"{added:,} nodes added",
                    f"at most {L.MAX_NODES - cluster.nodes:,} with {cluster.nodes:,} nodes ({L.MAX_NODES_WHY})")
    if life.spot is not None and life.spot.per_hour * duration_s / 3600.0 > L.MAX_NODES:
        raise _fail(f"{where}.spotInterruptions.perHour", life.spot.per_hour,
                    f"at most {L.MAX_NODES * 3600.0 / duration_s:g} over the {duration_s:g} s duration "
                    f"(a node each, at most {L.MAX_NODES:,} nodes: {L.MAX_NODES_WHY})")
    restarts = len(life.agent_restarts) * (cluster.nodes + added)
    if restarts > MAX_EVENTS:
        raise _fail(f"{where}.agentRestarts", f"{len(life.agent_restarts):,} restarts",
                    f"at most {MAX_EVENTS // max(1, cluster.nodes + added):,} (one event per node each)")


def check_workload_names(spec, cluster: ClusterSpec, duration_s: float, namespaces: tuple[str, ...],
                         ipam: IPAMSpec, modes: tuple[str, ...]) -> None:
    """Refuse what the generators would refuse only once generating: names and node ranges.

    Parameters
    ----------
    spec : ipam_core.workloads.WorkloadSpec
    cluster : ClusterSpec
    duration_s : float
    namespaces : tuple of str
        The scenario's Namespace names (``default`` alone when none is declared).
    ipam : IPAMSpec
        Its pools: when multi-pool runs, ``podPoolFractions`` may name only these.
    modes : tuple of str

    Raises
    ------
    ConfigError
        ``namespaceWeights`` naming a namespace the scenario lacks; ``podPoolFractions`` naming a
        pool multi-pool does not have, or, when calico runs, no enabled Calico IPPool; ``node-autoscaling`` with ``minNodes`` above the
        (default) ``maxNodes`` or more autoscaler decisions than :data:`MAX_AUTOSCALER_TICKS`.
    """
    for name, weight in getattr(spec, "namespace_weights", ()) or ():
        if name not in namespaces:
            raise _fail(f"namespaceWeights.{name}", weight, f"a namespace of the scenario ({', '.join(namespaces)})")
    pools = tuple(p.name for p in ipam.pools)
    if uses_pools((*modes, ipam.mode)):
        for name, fraction in getattr(spec, "pod_pool_fractions", ()) or ():
            if name not in pools:
                raise _fail(f"podPoolFractions.{name}", fraction, f"a pool the scenario defines ({', '.join(pools)}): "
                            "multi-pool fails every allocation from a missing pool")
    if ipam.calico is not None and uses_calico_pools((*modes, ipam.mode)):
        for name, fraction in getattr(spec, "pod_pool_fractions", ()) or ():
            try:
                ipam.calico.pod_pools(name)
            except ConfigError as exc:
                raise _fail(f"podPoolFractions.{name}", fraction, f"a pool the pods may name in their "
                            f"cni.projectcalico.org/ipv4pools annotation: {exc}") from None
    interval = getattr(spec, "interval", None)
    if getattr(spec, "generator", "") == "node-autoscaling":
        lo = spec.min_nodes if spec.min_nodes is not None else max(1, cluster.nodes // 2)
        hi = spec.max_nodes if spec.max_nodes is not None else max(cluster.nodes, lo)
        if lo > hi:
            raise _fail("minNodes", lo, f"at most maxNodes ({hi}{'' if spec.max_nodes else ', cluster.nodes'})")
        if duration_s > interval * MAX_AUTOSCALER_TICKS:
            raise _fail("interval", interval, f"at least {duration_s / MAX_AUTOSCALER_TICKS:g} s: at most "
                        f"{MAX_AUTOSCALER_TICKS:,} autoscaler decisions over the {duration_s:g} s duration")


def check_replay(spec, duration_s: float, ipam: IPAMSpec, modes: tuple[str, ...], cluster: ClusterSpec) -> None:
    """Read a replay workload's file whole and check it against the scenario.

    Parameters
    ----------
    spec : ipam_core.workloads.WorkloadSpec
        Only a ``ReplaySpec`` is checked; other specs return at once.
    duration_s : float
        No row may come later (times x ``timeScale``).
    ipam : IPAMSpec
        Its pools: when multi-pool runs (``modes`` or ``cilium.ipam.mode``), every pool a pod
        names must be one of them.
    modes : tuple of str
        The scenario's modes.
    cluster : ClusterSpec
        Its node names (``node-0`` ...) count as known nodes for pinned pods.

    Raises
    ------
    ConfigError
        The first problem, naming the file, the row and the value (see
        :func:`ipam_core.workloads.read_events`).
    """
    if not isinstance(spec, ReplaySpec):
        return
    multi_pool = uses_pools((*modes, ipam.mode))
    read_events(spec.path, duration_s=duration_s, time_scale=spec.time_scale,
                pools=tuple(p.name for p in ipam.pools) if multi_pool else None,
                nodes=tuple(f"node-{i}" for i in range(cluster.nodes)))
