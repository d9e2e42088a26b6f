"""Compare migration strategies for one cluster and one target, in numbers.

Every strategy is a list of ordinary steps run through the same engine as a replay:

* **all at once**: ``helm upgrade``, restart the operator; then delete every CiliumNode the
  operator reports an error for, restart every agent at once, and once they are up restart
  every pod whose address is outside its node's new CIDR.
* **node by node** (batches of ``batch`` nodes): ``helm upgrade``, restart the operator; then
  per batch: drain (controller-owned pods move to other nodes, bare pods stay), delete the
  batch's CiliumNodes that are in error, restart their agents, uncordon, restart the pods left
  with old addresses (the bare pods), then the next batch.
* **new cluster**: a second cluster is installed with the target values on as many nodes,
  the workloads are started there, then the old cluster is deleted. Nothing is disrupted, but
  both clusters' node CIDRs are in use at once.
* **steps as written**: the scenario's own steps, when it has a ``helm upgrade``.

Timing comes from the scenario's ``migration:`` durations (agent, operator and pod restart,
drain). In-place strategies run until ``settle`` seconds after their last step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from ipam_core.atomic import atomic_write
from ipam_core.errors import ConfigError
from ipam_core.migration import actions as A
from ipam_core.migration.engine import MigrationEngine, _helm_values
from ipam_core.migration.helm import MIGRATION_MODES, resolve, upgrade_values
from ipam_core.migration.imported import imported_cluster
from ipam_core.migration.observe import table
from ipam_core.migration.settings import read_settings, scenario_source
from ipam_core.migration.steps import Step, parse_steps
from ipam_core.migration.timeline import fmt_time
from ipam_core.scenario._where import Where
from ipam_core.scenario.limits import MAX_PLAN_NODES, MAX_PLAN_NODES_WHY, check_count, check_seed

STRATEGIES = ("all-at-once", "node-by-node", "new-cluster", "as-written")
COLUMNS = (
    ("strategy", "strategy", ""),
    ("disrupted_pod_seconds", "disrupted pod-s", "pod-seconds"),
    ("peak_disrupted_pods", "peak disrupted", "pods"),
    ("disruption_seconds", "time disrupted", "s"),
    ("unavailable_pod_seconds", "unavailable pod-s", "pod-seconds"),
    ("pod_restarts", "pod restarts", "pods"),
    ("duration_s", "duration", "s"),
    ("addresses_needed", "addresses needed", "addresses"),
    ("conflicts", "conflicts", "addresses"),
    ("stale_at_end", "stale at end", "pods"),
    ("nodes_waiting_at_end", "nodes without CIDR", "nodes"),
)


@dataclass(frozen=True)
class PlanRow:
    """One strategy's figures (see :data:`COLUMNS` for the units)."""

    strategy: str
    description: str
    disrupted_pod_seconds: float
    peak_disrupted_pods: int
    disruption_seconds: float
    unavailable_pod_seconds: float
    pod_restarts: int
    duration_s: float
    addresses_needed: int
    conflicts: int
    stale_at_end: int
    nodes_waiting_at_end: int


@dataclass(frozen=True)
class Plan:
    """The strategies compared, with what they were compared on."""

    scenario: str
    start_mode: str
    target_mode: str
    nodes: int
    pods: int
    batch: int
    target_command: str
    rows: tuple[PlanRow, ...]


def _step(index: int, at: float, action, command: str | None = None) -> Step:
    return Step(index, at, command or A.describe(action), action, {}, False, "", Where(("plan",)))


def _target_step(scenario, steps: tuple[Step, ...], to_mode: str | None) -> tuple[int | None, A.HelmUpgrade]:
    """Index of the scenario's first helm upgrade (None with ``to_mode``) and the upgrade to plan for."""
    if to_mode is None:
        for i, step in enumerate(steps):
            if isinstance(step.action, A.HelmUpgrade):
                return i, step.action
        raise ConfigError(f"scenario {scenario.name!r} has no helm upgrade step; expected one, or --to MODE to name "
                          "the target mode")
    ipam = scenario.ipam
    assignments: list[tuple[str, object]] = [("ipam.mode", to_mode)]
    start = resolve(_helm_values(scenario)).mode
    if to_mode == "cluster-pool":
        assignments += [("ipam.operator.clusterPoolIPv4PodCIDRList", list(ipam.cluster_pool_v4)),
                        ("ipam.operator.clusterPoolIPv4MaskSize", ipam.cluster_pool_v4_mask)]
    elif to_mode == "multi-pool" and (ipam.pools_derived or not ipam.pools):
        # No CiliumPodIPPool in the scenario: the default pool from the cluster-pool values.
        base = f"ipam.operator.autoCreateCiliumPodIPPools.{ipam.default_pool}.ipv4"
        assignments += [(f"{base}.cidrs", list(ipam.cluster_pool_v4)), (f"{base}.maskSize", ipam.cluster_pool_v4_mask)]
    if to_mode == "multi-pool" and start == "cluster-pool":
        assignments.append(("extraConfig.enable-cluster-pool-to-multi-pool-migration", "true"))
    if to_mode not in MIGRATION_MODES:
        raise ConfigError(f"--to {to_mode!r} is not a mode migrate simulates; expected {_one_of(MIGRATION_MODES)}")
    return None, A.HelmUpgrade(tuple(assignments), None, True)


def _one_of(names) -> str:
    """``a, b or c``."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


def _node_names(settings_nodes: tuple[str, ...], prefix: tuple[Step, ...]) -> list[str]:
    names = list(settings_nodes)
    for step in prefix:
        if isinstance(step.action, A.AddNodes):
            names += [n for n in step.action.names if n not in names]
        elif isinstance(step.action, A.DeleteNodes):
            names = [n for n in names if n not in step.action.names]
    return names


def in_place_steps(prefix: tuple[Step, ...], target: A.HelmUpgrade, t0: float, nodes: list[str], timing,
                   batch: int | None) -> list[Step]:
    """The steps of an in-place strategy: all at once (``batch`` None) or node by node.

    Parameters
    ----------
    prefix : tuple of Step
        Steps before the migration (replayed first).
    target : HelmUpgrade
        The upgrade to the target configuration.
    t0 : float
        When the migration starts.
    nodes : list of str
        Node names, in the order batches take them.
    timing : MigrationTiming
    batch : int or None
        Nodes per batch; ``None`` for all at once.

    Returns
    -------
    list of Step
    """
    out = list(prefix)

    def add(at, action):
        """Append a step at ``at``."""
        out.append(_step(len(out), at, action))

    add(t0, target)
    add(t0, A.RolloutRestart("kube-system", (A.OPERATOR_DEPLOYMENT,)))
    t = t0 + timing.operator_restart_s
    if batch is None:
        add(t, A.DeleteCiliumNodes(tuple(nodes), only_in_error=True))
        add(t, A.RestartAgents(tuple(nodes)))
        add(t + timing.agent_restart_s, A.RestartStalePods(None))
        return out
    for start in range(0, len(nodes), batch):
        group = tuple(nodes[start:start + batch])
        add(t, A.Drain(group, skip_bare=True))
        t += timing.drain_s
        add(t, A.DeleteCiliumNodes(group, only_in_error=True))
        add(t, A.RestartAgents(group))
        t += timing.agent_restart_s
        add(t, A.Uncordon(group))
        add(t, A.RestartStalePods(group))
        t += timing.pod_restart_s
    return out


def _row(name: str, description: str, s: dict, start: float) -> PlanRow:
    return PlanRow(name, description, s["disrupted_pod_seconds"], s["peak_disrupted_pods"], s["disruption_seconds"],
                   s["unavailable_pod_seconds"], s["pod_starts"], max(0.0, s["settled_at_s"] - start),
                   s["addresses_needed"], s["conflicts"], s["stale_at_end"], s["nodes_waiting_at_end"])


def check_plan_arguments(scenario, *, batch: int = 1, to_mode: str | None = None, nodes: int | None = None,
                         pods_per_node: int | None = None, seed: int | None = None):
    """Check a plan's inputs before any work: the numbers' bounds, the steps and the target.

    Parameters
    ----------
    scenario, batch, to_mode, nodes, pods_per_node, seed
        As for :func:`plan_migration`.

    Returns
    -------
    tuple
        ``(source, settings, steps, target_index, target)`` as the planner uses them.

    Raises
    ------
    ConfigError
        As :func:`plan_migration` documents.
    """
    check_count("--batch", batch, 1, MAX_PLAN_NODES, "nodes per batch, at most the planner's node limit")
    if nodes is not None:
        check_count("--nodes", nodes, 1, MAX_PLAN_NODES, MAX_PLAN_NODES_WHY)
    if pods_per_node is not None:
        check_count("--pods-per-node", pods_per_node, 1, scenario.cluster.max_pods,
                    "the scenario's cluster.kubelet.maxPods: the kubelet admits no more")
    if seed is not None:
        check_seed("--seed", seed)
    source = scenario_source(scenario)
    settings = read_settings(scenario, source)
    steps = parse_steps(scenario, source)
    index, target = _target_step(scenario, steps, to_mode)
    return source, settings, steps, index, target


def plan_migration(scenario, *, batch: int = 1, to_mode: str | None = None, nodes: int | None = None,
                   pods_per_node: int | None = None, seed: int | None = None, settle_s: float = 600.0,
                   progress=None) -> Plan:
    """Run every strategy on the same cluster and target and compare them.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        The cluster (its ``cilium:`` values, KCM flags, ``migration:`` timing) and, in its
        steps, the pods before the first ``helm upgrade`` and that upgrade as the target.
    batch : int
        Nodes per batch for node by node.
    to_mode : str, optional
        Plan for a switch to this mode (with the scenario's own pool values) instead of the
        scenario's helm upgrade.
    nodes, pods_per_node : int, optional
        Plan on a generated steady state of ``nodes`` nodes x ``pods_per_node`` pods
        (Deployments of ``migration.replicasPerDeployment``, plus two kube-dns replicas)
        instead of the scenario's pods. Also used when the scenario applies no pods before
        its upgrade, unless it names a dumped cluster (``initialState`` of an IPv4
        ``kubernetes``, ``cluster-pool`` or ``multi-pool`` cluster,
        :mod:`ipam_core.migration.imported`): then the plan starts from its nodes' CIDRs
        (each pool's, in multi-pool) and its pods' addresses.
    seed : int, optional
        Instead of the scenario's.
    settle_s : float
        How long in-place strategies run after their last step.
    progress : callable, optional
        ``progress(strategy, fraction)`` as each strategy's run advances (strategies in
        :data:`STRATEGIES` order).

    Returns
    -------
    Plan

    Raises
    ------
    ConfigError
        No target (no helm upgrade and no ``to_mode``), any step error, or a number out of
        bounds: ``batch`` or ``nodes`` not from 1 to
        :data:`~ipam_core.scenario.limits.MAX_PLAN_NODES` (Kubernetes' limit; the
        planner takes about 2 ms per node), ``pods_per_node`` not from 1 to the scenario's ``maxPods``, a
        seed not from 0 to 2^63 - 1.
    """
    source, settings, steps, index, target = check_plan_arguments(scenario, batch=batch, to_mode=to_mode, nodes=nodes,
                                                                  pods_per_node=pods_per_node, seed=seed)
    first_upgrade = next((i for i, s in enumerate(steps) if isinstance(s.action, A.HelmUpgrade)), None)
    prefix = steps[:first_upgrade] if first_upgrade is not None else steps  # the cluster before any upgrade
    applies = any(isinstance(s.action, A.Apply) for s in prefix)
    generated = nodes is not None or pods_per_node is not None or not applies
    # an imported cluster (initialState) without pods of its own steps: start from its nodes and pods
    imported = None if (nodes is not None or pods_per_node is not None or applies) else \
        imported_cluster(scenario, resolve(_helm_values(scenario)).mode)
    if imported is not None:
        generated = False
        if len(settings.nodes) > MAX_PLAN_NODES:
            raise ConfigError(f"--plan on {len(settings.nodes):,} nodes (the imported cluster): expected at most "
                              f"{MAX_PLAN_NODES:,} ({MAX_PLAN_NODES_WHY})")
        steady, t0 = None, 60.0
    elif generated:
        count = nodes if nodes is not None else len(_node_names(settings.nodes, prefix))
        if count > MAX_PLAN_NODES:  # the scenario's own cluster, without --nodes
            raise ConfigError(f"--plan on {count:,} nodes (the scenario's cluster): expected at most "
                              f"{MAX_PLAN_NODES:,} ({MAX_PLAN_NODES_WHY}); pass --nodes N")
        settings = replace(settings, nodes=tuple(f"node-{i:04d}" for i in range(count)))
        prefix = ()
        steady = (pods_per_node or settings.pods_per_node, settings.replicas_per_deployment)
        t0 = 60.0
    else:
        steady = None
        t0 = steps[first_upgrade].at_s if first_upgrade is not None else (prefix[-1].at_s if prefix else 0.0) + 60.0
    names = _node_names(settings.nodes, prefix)
    timing = settings.timing
    common = dict(seed=seed, record=False, settings=settings, steady_state=steady, migration_start=t0,
                  imported=imported)

    def report(name):
        return None if progress is None else (lambda fraction: progress(name, fraction))

    def run(name, step_list):
        """The overall figures of one strategy's steps."""
        end = max(s.at_s for s in step_list) + settle_s
        return MigrationEngine(scenario, step_list, end=end, **common).run(report(name)).summary

    rows = []
    for name, size, text in (("all-at-once", None, "every node at once, then every stale pod restarted"),
                             ("node-by-node", batch, f"{batch} node(s) at a time: drain, reset, restart, uncordon")):
        summary = run(name, in_place_steps(prefix, target, t0, names, timing, size))
        rows.append(_row(name, text, summary, t0))
    new_cluster, pods_before = _new_cluster(scenario, prefix, target, t0, common, settle_s, report("new-cluster"))
    rows.append(new_cluster)
    if not generated and index is not None and to_mode is None:
        as_written = MigrationEngine(scenario, steps, **{**common, "migration_start": t0})
        summary = as_written.run(report("as-written")).summary
        rows.append(_row("as-written", "the scenario's own steps", summary, t0))
    start_mode = resolve(_helm_values(scenario)).mode
    target_cfg = resolve(upgrade_values(_helm_values(scenario), target.assignments, target.values,
                                        target.reuse_values))
    return Plan(scenario.name, start_mode, target_cfg.mode, len(names), pods_before, batch, A.describe(target),
                tuple(rows))


def _new_cluster(scenario, prefix, target: A.HelmUpgrade, t0: float, common: dict, settle_s: float,
                 progress=None) -> tuple[PlanRow, int]:
    """A new cluster with the target values beside the old one; the workloads start there, the old one goes.

    Also returns the old cluster's pods at ``t0``, the plan's pod count (its cluster is built once).
    """
    old = MigrationEngine(scenario, prefix, end=t0, **common)
    old.run()
    pods_before = old.n_live
    templates = [replace(g.template, replicas=g.replicas) for g in old.groups if not g.deleted and g.replicas > 0]
    values = upgrade_values(_helm_values(scenario), target.assignments, target.values, target.reuse_values)
    apply = _step(0, t0, A.Apply(tuple(templates)))
    same_nodes = replace(common["settings"], nodes=tuple(n.name for n in old.nodes if n.exists))
    new = MigrationEngine(scenario, [apply], end=t0 + settle_s, helm_values=values, pools=dict(old.pool_objects),
                          **{**common, "steady_state": None, "settings": same_nodes, "imported": None})
    summary = new.run(progress).summary
    both = old.addresses_in_use + summary["addresses_needed"]
    row = PlanRow("new-cluster", "a second cluster with the target values, workloads moved, old cluster deleted",
                  0.0, 0, 0.0, 0.0, summary["pod_starts"],  # the old cluster serves until the new one is up
                  max(0.0, summary["settled_at_s"] - t0), both, summary["conflicts"], 0,
                  summary["nodes_waiting_at_end"])
    return row, pods_before


def plan_table(plan: Plan) -> pa.Table:
    """The plan as an Arrow table (one row per strategy) with units in field metadata.

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    pyarrow.Table
    """
    fields = [pa.field("strategy", pa.string(), metadata={"unit": "", "description": "strategy"}),
              pa.field("description", pa.string(), metadata={"unit": "", "description": "what the strategy does"})]
    arrays = [pa.array([r.strategy for r in plan.rows]), pa.array([r.description for r in plan.rows])]
    for name, label, unit in COLUMNS[1:]:
        values = [getattr(r, name) for r in plan.rows]
        type_ = pa.float64() if isinstance(values[0], float) else pa.int64()
        fields.append(pa.field(name, type_, metadata={"unit": unit, "description": label}))
        arrays.append(pa.array(values, type=type_))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def write_plan_csv(plan: Plan, path: str | os.PathLike[str]) -> Path:
    """Write the plan as CSV (header row, one row per strategy), atomically.

    Parameters
    ----------
    plan : Plan
    path : str or os.PathLike
        Destination; its folder is created if missing.

    Returns
    -------
    pathlib.Path
    """
    import pyarrow.csv as pa_csv

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, "wb") as handle:
        pa_csv.write_csv(plan_table(plan), handle)
    return target


def format_plan(plan: Plan) -> str:
    """The plan as a readable table with a one-line heading.

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    str
    """
    head = (f"ipam-bench migrate --plan: {plan.scenario}, {plan.start_mode} -> {plan.target_mode}, "
            f"{plan.nodes} node(s), {plan.pods} pod(s), node-by-node batch {plan.batch}")
    rows = []
    for r in plan.rows:
        rows.append([r.strategy, f"{r.disrupted_pod_seconds:,.0f}", str(r.peak_disrupted_pods),
                     fmt_time(r.disruption_seconds), f"{r.unavailable_pod_seconds:,.0f}", str(r.pod_restarts),
                     fmt_time(r.duration_s), f"{r.addresses_needed:,}", str(r.conflicts), str(r.stale_at_end),
                     str(r.nodes_waiting_at_end)])
    lines = table([label for _, label, _ in COLUMNS], rows)
    notes = [f"target: {plan.target_command}"] + [f"{r.strategy}: {r.description}" for r in plan.rows]
    return "\n".join([head, "", *lines, "", *notes]) + "\n"


__all__ = ["COLUMNS", "Plan", "PlanRow", "STRATEGIES", "check_plan_arguments", "format_plan", "in_place_steps", "plan_migration",
           "plan_table", "write_plan_csv"]
