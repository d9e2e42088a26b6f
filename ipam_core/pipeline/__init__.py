"""The simulation engine: run a scenario's workload through IPAM modes.

The one entry point most callers need is :func:`simulate`; :func:`write_run`
writes its traces and :func:`summarize` reduces it to one row per mode.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from ipam_core.engine import sampling as S
from ipam_core.pipeline.run import (
    CALICO_NODE_COLUMNS,
    TRACE_COUNTERS,
    TRACE_FLOATS,
    ModeResult,
    Simulation,
    engine_config,
    run_mode,
    uses_lifecycle,
    warm_mode,
    workload_facts,
)
from ipam_core.engine.summary import summary_figures
from ipam_core.modes import RULES_CALICO, mode_spec
from ipam_core.rundir import published_path, staged_folder
from ipam_core.scenario import load_scenario, scenario_for_mode
from ipam_core.trace import nodes_table, run_metadata, trace_table, write_run_json, write_tables
from ipam_core.trace.schema import CALICO_BLOCK_TYPE
from ipam_core.workloads import Workload, generate

__all__ = [
    "CALICO_SUMMARY_COLUMNS", "ModeResult", "RunResult", "SUMMARY_COLUMNS", "SUMMARY_NAMES", "Simulation",
    "applies", "build_workload", "calico_node_columns", "simulate", "summarize", "summary_records", "warmup", "write_run",
]


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
    (:func:`ipam_core.pipeline.run.warm_mode`); :func:`simulate` does this
    before it starts any mode's clock.
    """
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
    modes = list(modes or scenario.modes)
    workload = workload if workload is not None else build_workload(scenario)
    mode_scenarios = [_scenario_for_mode(scenario, mode) for mode in modes]
    for mode, mode_scenario in zip(modes, mode_scenarios):
        warm_mode(mode_scenario, mode)  # not timed: the first mode is not charged the cache load
    bounds = workload_facts(workload, engine_config(scenario).pod_retry_s)  # once: every mode's tables use it
    results, wall = [], {}
    for mode, mode_scenario in zip(modes, mode_scenarios):
        start = time.perf_counter()
        results.append(run_mode(mode_scenario, workload, mode, progress, bounds))
        wall[mode] = time.perf_counter() - start
    return RunResult(scenario, workload, results, wall)


# (id(IPAM settings), mode) -> (those settings, their validated copy for the mode); see _scenario_for_mode
_MODE_IPAM: dict[tuple[int, str], tuple[object, object]] = {}
_MODE_IPAM_SLOTS = 64
_MODE_IPAM_LOCK = threading.Lock()


def _scenario_for_mode(scenario, mode: str):
    """:func:`ipam_core.scenario.scenario_for_mode`, validating each IPAM settings object once per mode.

    ``scenario_for_mode`` checks the IPAM settings for the mode and returns
    the scenario with a copy of them whose ``mode`` is replaced; nothing else
    changes, and the check reads the settings alone (a test holds both). A
    sweep's replicates (``replace(scenario, seed=...)``) and repeated
    :func:`simulate` calls share one settings object, so the checked copy is
    kept and put into the scenario: this saves the check and the copy (a few
    percent of a small point) and keeps the mode's layout cached
    (:func:`ipam_core.pipeline.run._layout_of` keys it by the settings object).
    """

    ipam = scenario.ipam
    key = (id(ipam), mode)
    hit = _MODE_IPAM.get(key)
    if hit is not None and hit[0] is ipam:
        return replace(scenario, ipam=hit[1])
    mode_scenario = scenario_for_mode(scenario, mode)
    with _MODE_IPAM_LOCK:
        if len(_MODE_IPAM) >= _MODE_IPAM_SLOTS:
            del _MODE_IPAM[next(iter(_MODE_IPAM))]
        _MODE_IPAM[key] = (ipam, mode_scenario.ipam)
    return mode_scenario


def _runs_calico(result: RunResult) -> bool:
    """Whether a mode of the run follows Calico's rules: its outputs then carry the Calico columns."""
    return any(mode_spec(m.mode).rules == RULES_CALICO for m in result.modes)


def _run_meta(result: RunResult, command) -> dict:
    sc = result.scenario
    return run_metadata(sc.name, sc.source_text, sc.seed, [m.mode for m in result.modes], command)


def trace_tables(result: RunResult, command=None) -> tuple[pa.Table, pa.Table]:
    """The trace and nodes tables of a run (all modes, in run order)."""
    run = _run_meta(result, command)
    traces, nodes = [], []
    # the lifecycle and calico columns only where used: other runs keep the trace columns (and bytes) they had
    dropped = () if uses_lifecycle(result.scenario, result.workload) else S.LIFECYCLE_COUNTERS
    calico = _runs_calico(result)
    dropped += () if calico else S.CALICO_COUNTERS
    for code, m in enumerate(result.modes):
        n_rows = m.trace["time_s"].size
        columns = {k: v for k, v in m.trace.items() if k not in dropped}
        traces.append(trace_table({"mode": np.full(n_rows, code, dtype=np.int32), **columns}, run))
        cols = {k: v for k, v in m.nodes.items() if k not in ("cidrs_values", "cidrs_counts", *CALICO_NODE_COLUMNS)}
        offsets = np.zeros(m.nodes["cidrs_counts"].size + 1, dtype=np.int32)
        np.cumsum(m.nodes["cidrs_counts"], out=offsets[1:])
        if calico:
            cols.update(calico_node_columns(m.nodes, offsets))
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


def calico_node_columns(nodes, offsets: np.ndarray) -> dict:
    """nodes.arrow's Calico columns (``blocks``, ``empty_blocks``, ``stranded``, ``borrowed``, ``lent``) of one mode.

    Parameters
    ----------
    nodes : mapping
        :attr:`ModeResult.nodes`; a mode of another family has none of
        :data:`~ipam_core.pipeline.run.CALICO_NODE_COLUMNS`: its blocks are empty lists, its counts 0.
    offsets : numpy.ndarray of int32
        Each row's first CIDR entry (rows + 1 entries).

    Returns
    -------
    dict
        ``blocks`` a list array of ``CALICO_BLOCK_TYPE`` (a row's blocks are its ``cidrs``, in order).
    """
    n = nodes["cidrs_counts"].size
    if "block_in_use" not in nodes:
        zeros = np.zeros(n, dtype=np.int64)
        empty = pa.array([], type=CALICO_BLOCK_TYPE)
        return {"blocks": pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), empty),
                "empty_blocks": zeros, "stranded": zeros, "borrowed": zeros, "lent": zeros}
    values = nodes["cidrs_values"]
    blocks = pa.StructArray.from_arrays(
        [values if values.type == pa.string() else values.cast(pa.string()),
         *(pa.array(nodes[k]) for k in ("block_in_use", "block_free", "block_lent"))],
        fields=list(CALICO_BLOCK_TYPE))
    return {"blocks": pa.ListArray.from_arrays(pa.array(offsets), blocks),
            **{k: nodes[k] for k in ("empty_blocks", "stranded", "borrowed", "lent")}}


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
    ("api_calls_per_min", "cloud API calls per minute over the run"),
    ("api_peak_per_min", "cloud API calls per minute, highest between two samples"),
    ("api_throttled", "cloud call attempts refused for want of a token (each retry counts)"),
    ("start_wait_s", "mean seconds a started pod had waited for its addresses"),
    ("pods_evicted", "pods evicted by drains (workload.lifecycle)"),
    ("evicted_failed", "of those, replacements that failed for want of an address"),
    ("peak_held_cordoned", "most addresses held by cordoned nodes at once"),
    ("peak_cidrs_stranded", "most node CIDRs stranded at once (releasedCIDRs fault)"),
    ("wall_s", "wall-clock seconds for the mode"),
    ("state_mib", "engine state memory (MiB)"),
)


#: Summary figures only the cloud modes have (the other modes' rows hold 0); ``frag_failures`` counts
#: prefix requests a subnet refused (EC2's InsufficientCidrBlocks).
CLOUD_ONLY_SUMMARY = frozenset({"warm_per_node", "peak_interfaces", "frag_failures", "cloud_api_calls",
                                "api_calls_per_min", "api_peak_per_min", "api_throttled"})


def applies(mode: str, column: str) -> bool:
    """Whether a summary figure is one the mode has, rather than the 0 its row holds for the column.

    Parameters
    ----------
    mode : str
        Mode name.
    column : str
        A name of :data:`SUMMARY_COLUMNS` or :data:`CALICO_SUMMARY_COLUMNS`.

    Returns
    -------
    bool
        False for a cloud figure of a mode that is not a cloud mode, and a
        calico figure of a mode that is not calico.
    """
    spec = mode_spec(mode)
    if column in CLOUD_ONLY_SUMMARY:
        return spec.cloud
    if column in _CALICO_SUMMARY_NAMES:
        return spec.rules == RULES_CALICO
    return True


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

    Each mode's counters are read as one 2-D block (``ModeResult.counters``)
    and reduced by one compiled call (:func:`ipam_core.engine.summary.summary_figures`)
    rather than two or three numpy calls per column, which for a small point
    cost as much as the run (issue #10). Its means add in numpy's order, so
    the figures are those of ``np.mean``.
    """
    records = _summary_rows(result)
    if not _runs_calico(result):
        return _summary_table([record for record, _ in records])
    return _summary_table([(*record, *calico) for record, calico in records], calico=True)


#: Columns :func:`summarize` appends when a calico mode runs (0 in the other modes' rows).
CALICO_SUMMARY_COLUMNS = (
    ("peak_blocks_per_node", "calico: most affine blocks one node held at once"),
    ("peak_empty_blocks", "calico: most empty affine blocks held at once"),
    ("peak_stranded", "calico: most free addresses stranded in partly used affine blocks at once"),
    ("peak_borrowed", "calico: most addresses borrowed from other nodes' blocks at once"),
    ("empty_block_releases", "calico: empty affine blocks kube-controllers released"),
    ("empty_block_release_s", "calico: mean seconds a released block had been empty (time until release)"),
)
_CALICO_SUMMARY_NAMES = frozenset(name for name, _ in CALICO_SUMMARY_COLUMNS)


def summary_records(result: RunResult) -> list[tuple]:
    """The rows of :func:`summarize` as tuples of Python values, in :data:`SUMMARY_COLUMNS` order.

    ``dict(zip(SUMMARY_NAMES, record))`` is the row ``summarize(result).to_pylist()``
    gives; a sweep task takes them this way, without building the table
    (issue #10: the table and its ``to_pylist`` cost a tenth of a small point).

    Parameters
    ----------
    result : RunResult

    Returns
    -------
    list of tuple
    """
    return [record for record, _ in _summary_rows(result)]


def _summary_rows(result: RunResult) -> list[tuple[tuple, tuple]]:
    """Per mode and family: the :data:`SUMMARY_COLUMNS` record and the :data:`CALICO_SUMMARY_COLUMNS` figures."""
    records = []
    n_counters = len(TRACE_COUNTERS)
    for m in result.modes:
        warm = m.warm if m.warm is not None else np.ascontiguousarray(m.trace["warm_addrs_per_node"], dtype=np.float64)
        nf = len(m.families)
        n_samples = warm.size // nf
        block = _counter_block(m)
        ints, floats = summary_figures(block, warm, nf)
        times = np.asarray(m.trace["time_s"], dtype=np.float64)
        wall, mib = round(result.wall_s[m.mode], 3), round(m.state_bytes / 2**20, 2)
        for f, (family, row, (idle_sum, reserved_sum, carved_samples, warm_sum)) in enumerate(zip(
            m.families, ints.tolist(), floats.tolist()
        )):
            last, peak = row[:n_counters], row[n_counters : 2 * n_counters]
            # np.mean's arithmetic over the samples with carved addresses: a sum, then one division
            idle = 100.0 * (idle_sum / carved_samples) if carved_samples else 0.0
            reserved = 100.0 * (reserved_sum / carved_samples) if carved_samples else 0.0
            api_calls = last[S.TR_API_ATTACH] + last[S.TR_API_ASSIGN] + last[S.TR_API_RELEASE]
            per_min, peak_per_min = _calls_per_minute(block[:, f::nf], times[f::nf])
            started = last[S.TR_STARTED]
            start_wait = round(last[S.TR_START_WAIT] / 1000.0 / started, 3) if started else 0.0
            c = S.TR_CALICO  # CALICO_COUNTERS' order: blocks, most per node, empty, stranded, borrowed, releases, ms
            releases = last[c + 5]
            records.append(((
                m.mode, family, last[S.TR_FAILED], last[S.TR_FAILED_FREE], row[2 * n_counters],
                peak[S.TR_USED], peak[S.TR_CARVED], round(idle, 1), round(reserved, 1), peak[S.TR_NODE_CIDRS],
                last[S.TR_CARVES], last[S.TR_RELEASES], last[S.TR_CARVABLE], last[S.TR_LARGEST],
                round(warm_sum / n_samples, 1), peak[S.TR_IFACES], last[S.TR_FRAG], api_calls, per_min, peak_per_min,
                last[S.TR_API_THROTTLED], start_wait, last[S.TR_EVICTED], last[S.TR_EVICTED_FAILED],
                peak[S.TR_HELD_CORDONED], peak[S.TR_CIDRS_STRANDED], wall, mib,
            ), (
                peak[c + 1], peak[c + 2], peak[c + 3], peak[c + 4], releases,
                round(last[c + 6] / 1000.0 / releases, 1) if releases else 0.0,
            )))
    return records


#: Summary columns holding decimals (float64); the rest after ``mode`` are whole numbers (int64).
_FLOAT_SUMMARY = frozenset({"idle_pct", "reserved_pct", "warm_per_node", "api_calls_per_min", "api_peak_per_min",
                            "start_wait_s", "wall_s", "state_mib", "empty_block_release_s"})
#: The summary's column names, in order.
SUMMARY_NAMES = tuple(name for name, _ in SUMMARY_COLUMNS)
def _summary_row(columns) -> pa.DataType:
    return pa.struct([
        (name, pa.string() if name == "mode" else pa.float64() if name in _FLOAT_SUMMARY else pa.int64())
        for name, _ in columns
    ])


_SUMMARY_ROW = _summary_row(SUMMARY_COLUMNS)
_SUMMARY_CALICO_ROW = _summary_row((*SUMMARY_COLUMNS, *CALICO_SUMMARY_COLUMNS))


def _summary_table(records: list[tuple], calico: bool = False) -> pa.Table:
    """The summary rows as a table: tuples in :data:`SUMMARY_COLUMNS` order (then :data:`CALICO_SUMMARY_COLUMNS`').

    One conversion of the tuples into a struct array of the summary's types,
    whose fields become the columns: a column at a time (``pa.table`` of
    lists infers each type; one Arrow array per column from numpy buffers
    costs a call per column) took a tenth of a small point (issue #10).
    """
    if not records:
        return pa.table({name: [] for name in SUMMARY_NAMES})
    return pa.Table.from_struct_array(pa.array(records, type=_SUMMARY_CALICO_ROW if calico else _SUMMARY_ROW))


def _calls_per_minute(block: np.ndarray, times: np.ndarray) -> tuple[float, float]:
    """Cloud API calls per minute of one family's samples: over the run, and the highest between two samples.

    Parameters
    ----------
    block : numpy.ndarray of int64, shape (len(TRACE_COUNTERS), samples)
    times : numpy.ndarray of float64, shape (samples,)
        ``time_s`` of those samples; the run starts at 0 with no call made.

    Returns
    -------
    (float, float)
        Rounded to 0.1.
    """
    if times.size == 0 or times[-1] <= 0:
        return 0.0, 0.0
    calls = block[S.TR_API_ATTACH] + block[S.TR_API_ASSIGN] + block[S.TR_API_RELEASE]
    dt = np.diff(times, prepend=0.0)
    dc = np.diff(calls, prepend=0)
    step = dt > 0
    peak = float(np.max(dc[step] * 60.0 / dt[step])) if step.any() else 0.0
    return round(float(calls[-1]) * 60.0 / float(times[-1]), 1), round(peak, 1)


def _counter_block(m: ModeResult) -> np.ndarray:
    """The mode's whole-number trace counters as one int64 [TRACE_COUNTERS, rows] block."""
    if m.counters is not None:
        return m.counters
    zeros = np.zeros(m.trace["time_s"].size, dtype=np.int64)  # the float counters are read from m.trace
    return np.stack([zeros if k in TRACE_FLOATS else np.asarray(m.trace[k], dtype=np.int64) for k in TRACE_COUNTERS])
