"""The simulation engine: run a scenario's workload through IPAM modes.

The one entry point most callers need is :func:`simulate`; :func:`write_run`
writes its traces and :func:`summarize` reduces it to one row per mode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ipam_core.engine.run import ModeResult, Simulation, engine_config, run_mode, warm_mode, workload_facts
from ipam_core.trace.metrics import startup_end
from ipam_core.workloads import Workload, generate

__all__ = ["ModeResult", "RunResult", "Simulation", "build_workload", "simulate", "summarize", "warmup", "write_run"]


@dataclass
class RunResult:
    """Every mode's samples for one scenario and one workload."""

    scenario: object
    workload: Workload
    modes: list[ModeResult]
    wall_s: dict[str, float]


def build_workload(scenario) -> Workload:
    """The scenario's events: generated with its seed, or replayed from its file.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario

    Returns
    -------
    Workload
    """
    # the loader already resolved a replay path against the scenario's folder
    return generate(
        scenario.workload,
        nodes=scenario.cluster.nodes,
        max_pods=scenario.cluster.max_pods,
        namespaces=[ns.name for ns in scenario.namespaces],
        duration_s=scenario.duration_s,
        seed=scenario.seed,
    )


def warmup(scenario=None, modes=None) -> None:
    """Load (or compile) the engine's kernels so that later runs time the run alone.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario, optional
        Warm the kernels its modes call (default: the built-in scenario).
    modes : sequence of str, optional
        Modes to warm; defaults to ``scenario.modes``.

    Notes
    -----
    Each mode (and family set) is warmed once per process
    (:func:`ipam_core.engine.run.warm_mode`); :func:`simulate` does this
    before it starts any mode's clock.
    """
    from ipam_core.scenario import load_scenario, scenario_for_mode

    scenario = scenario if scenario is not None else load_scenario("default")
    for mode in list(modes or scenario.modes):
        warm_mode(scenario_for_mode(scenario, mode), mode)


def simulate(scenario, modes=None, workload: Workload | None = None, progress=None) -> RunResult:
    """Run the same workload through each mode.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        Validated scenario.
    modes : sequence of str, optional
        Modes to run; defaults to ``scenario.modes``.
    workload : Workload, optional
        Events to use instead of the scenario's own.
    progress : callable, optional
        ``progress(mode, fraction)`` after each chunk of samples.

    Returns
    -------
    RunResult
        ``wall_s[mode]`` times the mode's run alone: every mode's kernels are
        loaded (or compiled) before the first clock starts.
    """
    from ipam_core.scenario import scenario_for_mode

    modes = list(modes or scenario.modes)
    workload = workload if workload is not None else build_workload(scenario)
    mode_scenarios = [scenario_for_mode(scenario, mode) for mode in modes]
    for mode, mode_scenario in zip(modes, mode_scenarios):
        warm_mode(mode_scenario, mode)  # not timed: the first mode is not charged the cache load
    bounds = workload_facts(workload, engine_config(scenario).pod_retry_s)  # once: every mode's tables use it
    results, wall = [], {}
    for mode, mode_scenario in zip(modes, mode_scenarios):
        start = time.perf_counter()
        results.append(run_mode(mode_scenario, workload, mode, progress, bounds))
        wall[mode] = time.perf_counter() - start
    return RunResult(scenario, workload, results, wall)


def _run_meta(result: RunResult, command) -> dict:
    from ipam_core.trace import run_metadata

    sc = result.scenario
    return run_metadata(sc.name, sc.source_text, sc.seed, [m.mode for m in result.modes], command)


def trace_tables(result: RunResult, command=None) -> tuple[pa.Table, pa.Table]:
    """The trace and nodes tables of a run (all modes, in run order)."""
    from ipam_core.trace import nodes_table, trace_table

    run = _run_meta(result, command)
    traces, nodes = [], []
    for code, m in enumerate(result.modes):
        n_rows = m.trace["time_s"].size
        traces.append(trace_table({"mode": np.full(n_rows, code, dtype=np.int32), **m.trace}, run))
        cols = {k: v for k, v in m.nodes.items() if k not in ("cidrs_values", "cidrs_counts")}
        offsets = np.zeros(m.nodes["cidrs_counts"].size + 1, dtype=np.int32)
        np.cumsum(m.nodes["cidrs_counts"], out=offsets[1:])
        nodes.append(
            nodes_table(
                {"mode": np.full(cols["node"].size, code, dtype=np.int32), **cols},
                run,
                cidrs_values=m.nodes["cidrs_values"],
                cidrs_offsets=offsets,
                node_names=result.workload.node_names,
            )
        )
    return pa.concat_tables(traces, promote_options="permissive"), pa.concat_tables(nodes, promote_options="permissive")


def write_run(result: RunResult, out_dir, command=None) -> list[Path]:
    """Write ``trace.arrow``, ``nodes.arrow`` and ``run.json`` into ``out_dir``, published as one run.

    Parameters
    ----------
    result : RunResult
    out_dir : str or pathlib.Path
        The run folder. Its previous contents are replaced as a whole (see
        :class:`ipam_core.rundir.RunPublisher`); the staging folder of an open
        publisher adds the files to that publisher's run instead.
    command : str or sequence of str, optional
        Command line recorded in the files (default ``sys.argv``).

    Returns
    -------
    list of pathlib.Path
        The trace, nodes and ``run.json`` files in ``out_dir``. ``run.json``
        holds what differs between runs of identical data (command line, Numba
        threads, wall seconds per mode, output folder).

    Raises
    ------
    ipam_core.rundir.OutputDirError
        ``out_dir`` cannot take the run (a file, foreign files, another writer).
    """
    from ipam_core.rundir import published_path, staged_folder
    from ipam_core.trace import write_run_json, write_tables

    trace, nodes = trace_tables(result, command)
    with staged_folder(out_dir) as folder:
        written = write_tables(folder, trace, nodes)
        written.append(write_run_json(folder, _run_meta(result, command), wall_s=result.wall_s,
                                      recorded_out=published_path(out_dir)))
    return [Path(out_dir) / p.name for p in written]


SUMMARY_COLUMNS = (
    ("mode", "IPAM mode"),
    ("family", "4 or 6"),
    ("pods_failed", "pods that gave up waiting for an address"),
    ("failed_free_elsewhere", "of those, while addresses were free elsewhere"),
    ("peak_pending", "most pods waiting at once after start-up"),
    ("peak_used", "most pod addresses held at once"),
    ("peak_carved", "most addresses in node CIDRs at once"),
    ("idle_pct", "mean share of carved addresses left idle (%)"),
    ("reserved_pct", "mean share of carved addresses reserved (%)"),
    ("peak_node_cidrs", "most node CIDRs held at once"),
    ("cidr_carves", "node-CIDR allocations"),
    ("cidr_releases", "node-CIDR releases"),
    ("carvable_end", "node CIDRs still available at the end"),
    ("largest_free_block_end", "largest aligned free block at the end (addresses)"),
    ("warm_per_node", "mean addresses held warm per node (cloud modes)"),
    ("peak_interfaces", "most ENIs / NICs attached at once"),
    ("frag_failures", "allocations failed for fragmentation with free addresses left"),
    ("cloud_api_calls", "cloud API calls: attach + assign + release"),
    ("wall_s", "wall-clock seconds for the mode"),
    ("state_mib", "engine state memory (MiB)"),
)


def summarize(result: RunResult) -> pa.Table:
    """One row per mode and family: the figures users compare.

    Parameters
    ----------
    result : RunResult

    Returns
    -------
    pyarrow.Table
        Columns :data:`SUMMARY_COLUMNS`.

    Notes
    -----
    ``peak_pending`` leaves out start-up, the samples before as many pods run
    as wait (:func:`ipam_core.trace.metrics.startup_end`): a workload that
    creates its pods at t=0 has all of them waiting at the first sample,
    whatever the mode.
    """
    rows = {name: [] for name, _ in SUMMARY_COLUMNS}
    for m in result.modes:
        families = m.trace["family"]
        for family in m.families:
            pick = slice(None) if len(m.families) == 1 else families == family
            tr = _Columns(m.trace, pick)
            carved = tr["addrs_carved"].astype(np.float64)
            has = carved > 0
            idle = 100.0 * np.mean(tr["addrs_idle"][has] / carved[has]) if has.any() else 0.0
            reserved = 100.0 * np.mean(tr["addrs_reserved"][has] / carved[has]) if has.any() else 0.0
            rows["mode"].append(m.mode)
            rows["family"].append(family)
            rows["pods_failed"].append(int(tr["pods_failed"][-1]))
            rows["failed_free_elsewhere"].append(int(tr["pods_failed_free_elsewhere"][-1]))
            # The t=0 spike (every pod waits before any node has a CIDR) would equal the pod count in every mode.
            after = startup_end(tr["pods_pending"], tr["pods_running"])
            rows["peak_pending"].append(int(tr["pods_pending"][after:].max()))
            rows["peak_used"].append(int(tr["addrs_used"].max()))
            rows["peak_carved"].append(int(tr["addrs_carved"].max()))
            rows["idle_pct"].append(round(float(idle), 1))
            rows["reserved_pct"].append(round(float(reserved), 1))
            rows["peak_node_cidrs"].append(int(tr["node_cidrs"].max()))
            rows["cidr_carves"].append(int(tr["cidr_carves"][-1]))
            rows["cidr_releases"].append(int(tr["cidr_releases"][-1]))
            rows["carvable_end"].append(int(tr["carvable_node_cidrs"][-1]))
            rows["largest_free_block_end"].append(int(tr["largest_free_block"][-1]))
            rows["warm_per_node"].append(round(float(np.mean(tr["warm_addrs_per_node"])), 1))
            rows["peak_interfaces"].append(int(tr["interfaces"].max()))
            rows["frag_failures"].append(int(tr["frag_failures"][-1]))
            calls = tr["cloud_api_attach"][-1] + tr["cloud_api_assign"][-1] + tr["cloud_api_release"][-1]
            rows["cloud_api_calls"].append(int(calls))
            rows["wall_s"].append(round(result.wall_s[m.mode], 3))
            rows["state_mib"].append(round(m.state_bytes / 2**20, 2))
    return pa.table(rows)


class _Columns:
    """One family's rows of a mode's trace, selected per column as it is read (a summary reads few)."""

    def __init__(self, trace: dict, pick):
        self._trace, self._pick = trace, pick

    def __getitem__(self, name: str) -> np.ndarray:
        return self._trace[name][self._pick]
