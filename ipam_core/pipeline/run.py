"""Run one workload through one mode and sample what users care about.

:class:`Simulation` builds the state for a mode; :meth:`Simulation.record`
lets the compiled loop (:func:`ipam_core.engine.sampling.sample_run`) run to
every sample time and write the counters and node rows into arrays there.
Python runs once per mode (and once per progress step), never per sample or
per event. The table columns are built when first read (:class:`LazyColumns`):
each node CIDR's text is formatted in bulk then, and a sweep that only
summarises a run never pays for it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from ipam_core.addr import format_cidrs, format_values
from ipam_core.engine import tables as T
from ipam_core.engine.initial import start_arrays, start_from_state
from ipam_core.engine.layout import Layout, pod_range
from ipam_core.engine.pools import resolve_pod_pools
from ipam_core.engine import sampling as S
from ipam_core.engine import hooks
from ipam_core.engine.sampling import TRACE_COUNTERS, TRACE_FLOATS, sample_run
from ipam_core.engine.state import (
    EngineConfig,
    State,
    build_state,
    scan_workload,
    state_nbytes,
)
from ipam_core.engine.timer_room import grow_timers
from ipam_core.errors import IPAMBenchError
from ipam_core.modes import calico_hooks, get_mode
from ipam_core.workloads.events import OP_NODE_ADD, OP_NODE_CORDON, OP_POD_ADD, Workload

__all__ = [
    "CALICO_NODE_COLUMNS", "NODE_COUNTERS", "TRACE_COUNTERS", "TRACE_FLOATS", "EngineCapacityError", "LazyColumns",
    "ModeResult", "Simulation",
    "WorkloadBounds", "engine_config", "node_sample_mask", "released_cidrs", "run_mode", "sample_times", "uses_lifecycle",
    "warm_mode", "workload_facts",
]

NODE_COUNTERS = ("used", "free", "reserved", "pending")
#: Node columns of a calico run (nodes.arrow ``empty_blocks`` ...; ``block_*`` per CIDR entry, as ``cidrs_values``).
CALICO_NODE_COLUMNS = ("empty_blocks", "stranded", "borrowed", "lent", "block_in_use", "block_free", "block_lent")
#: Most progress calls per mode: the samples run in this many compiled calls when progress is shown.
PROGRESS_STEPS = 50
#: Simulated seconds of the warm-up run: long enough for the operator to carve a node CIDR.
WARMUP_S = 600.0
#: Most addresses a trace counts in a pool (``addrs_pool``): 2**62, where int64 arithmetic stays exact.
ADDRS_CAP = 1 << 62
#: Node-CIDR entries preallocated up front when the exact bound is larger (then they grow).
CIDR_PREALLOC = 1 << 20
_NO_SAMPLE = np.zeros(1, dtype=np.bool_)  # Simulation.advance: one stop, nothing sampled
_NO_FAMILY = np.zeros(0, dtype=np.int64)
_STATUS_TEXT = np.asarray(T.STATUS_TEXT, dtype=object)

_ERRORS = {
    T.ERROR_HEAP_FULL: "timer heap",
    T.ERROR_SLOTS_FULL: "node-CIDR table",
    T.ERROR_CHUNKS_FULL: "pod-bitmap arena",
    T.ERROR_CLOUD_UNITS_FULL: "cloud unit table",
    T.ERROR_ROWS_FULL: "pod table",
    T.ERROR_CALICO_BLOCKS_FULL: "Calico block table",
}


#: Cilium operator's retry of a failed node-CIDR allocation (controller
#: ``update-cilium-nodes-pod-cidr``, pkg/ipam/allocator/podcidr/podcidr.go: every 15 s).
OPERATOR_RETRY_S = 15.0


class EngineCapacityError(IPAMBenchError):
    """An internal table sized from the workload ran out of room (a bug, reported plainly)."""


def engine_config(scenario) -> EngineConfig:
    """Engine knobs from a scenario's cluster and timing sections.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario

    Returns
    -------
    EngineConfig
    """
    timing = scenario.timing
    return EngineConfig(
        scheduler=T.SCHEDULERS[scenario.cluster.scheduler],
        max_pods=int(scenario.cluster.max_pods),
        health_ip=bool(scenario.ipam.health_ip),
        operator_delay_s=float(timing.operator_sync_interval_s),
        update_rate_s=float(timing.cilium_node_update_rate_s),
        refresh_s=float(timing.multi_pool_refresh_s),
        pod_retry_s=float(timing.pod_retry_interval_s),
        pod_timeout_s=float(timing.pod_pending_timeout_s),
        carve_retry_s=OPERATOR_RETRY_S,
        pending_ttl_s=float(timing.pending_allocation_ttl_s),
        address_filter=T.ADDRESS_FILTERS[scenario.cluster.address_filter],
        seed=int(scenario.seed),
        released_cidrs=T.RELEASED_CIDRS[released_cidrs(scenario)],
    )


def released_cidrs(scenario) -> str:
    """The scenario's ``workload.lifecycle.releasedCIDRs``.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario

    Returns
    -------
    str
        ``freed``, ``stranded`` or ``reclaimed``; ``freed`` without a lifecycle.
    """
    lifecycle = getattr(scenario.workload, "lifecycle", None)
    return "freed" if lifecycle is None else lifecycle.released_cidrs


def uses_lifecycle(scenario, workload) -> bool:
    """Whether a run has node-lifecycle events or the released-CIDR fault model.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
    workload : Workload

    Returns
    -------
    bool
        True when the trace of the run carries the lifecycle columns
        (:data:`ipam_core.trace.schema.LIFECYCLE_FIELDS`).
    """
    return released_cidrs(scenario) != "freed" or bool((workload.op >= OP_NODE_CORDON).any())


@dataclass
class ModeResult:
    """Samples of one mode's run.

    Attributes
    ----------
    mode : str
    families : tuple of int
        Families sampled (4 and/or 6).
    trace : mapping of str to numpy.ndarray
        Columns of the trace table for this mode (``mode`` excluded), built
        on first use (:class:`LazyColumns`).
    nodes : mapping of str to numpy.ndarray
        Columns of the nodes table (``mode``, ``cidrs`` excluded) with
        ``cidrs_values`` (pyarrow strings) and ``cidrs_counts`` per row,
        built on first use.
    state_bytes : int
        Memory held by the engine state.
    state : State, optional
        The engine state at the end.
    counters : numpy.ndarray, optional
        int64 [len(TRACE_COUNTERS), rows]: the whole-number trace columns as
        one block (``trace`` holds views of its rows; the float rows are 0
        here), so a summary reduces every column in one call.
    warm : numpy.ndarray, optional
        float64 [rows]: the ``warm_addrs_per_node`` column.
    """

    mode: str
    families: tuple[int, ...]
    trace: dict[str, np.ndarray]
    nodes: dict[str, object]
    state_bytes: int
    state: State | None = field(default=None, repr=False)
    counters: np.ndarray | None = field(default=None, repr=False)
    warm: np.ndarray | None = field(default=None, repr=False)


class LazyColumns(MutableMapping):
    """Table columns that are built the first time any of them is read.

    Parameters
    ----------
    build : callable
        Returns the columns as a dict; called at most once.

    Notes
    -----
    A sweep reads a run's summary, not its tables: building the columns
    (dtype conversions, node CIDR text) cost a tenth of a small point
    (issue #10). Pickles as the plain dict of its columns.
    """

    __slots__ = ("_build", "_columns")

    def __init__(self, build: Callable[[], dict]):
        self._build: Callable[[], dict] | None = build
        self._columns: dict | None = None

    @property
    def columns(self) -> dict:
        """The columns, built now if they were not yet."""
        if self._columns is None:
            self._columns = self._build()
            self._build = None  # let go of what it closed over
        return self._columns

    def __getitem__(self, key: str):
        return self.columns[key]

    def __setitem__(self, key: str, value) -> None:
        self.columns[key] = value

    def __delitem__(self, key: str) -> None:
        del self.columns[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __repr__(self) -> str:
        return f"LazyColumns({self.columns!r})" if self._columns is not None else "LazyColumns(<not built>)"

    def __reduce__(self):
        return dict, (self.columns,)


@dataclass(frozen=True)
class WorkloadBounds:
    """What sizes the state tables for one workload and pod retry interval (the same in every mode)."""

    retry_s: float
    max_live: int
    stale_timers: int
    node_adds: int


def workload_facts(workload: Workload, retry_s: float) -> WorkloadBounds:
    """:func:`~ipam_core.engine.state.workload_bounds` and the node adds of a workload.

    Parameters
    ----------
    workload : Workload
    retry_s : float
        The pod retry interval.

    Returns
    -------
    WorkloadBounds
    """
    max_live, stale_timers, node_adds = scan_workload(workload, retry_s)  # one compiled pass
    return WorkloadBounds(float(retry_s), max_live, stale_timers, node_adds)


# (mode, id(IPAM settings)) -> (those settings, the mode's layout of them); see _layout_of
_LAYOUTS: dict[tuple[str, int], tuple[object, Layout]] = {}
_LAYOUT_SLOTS = 64
_MEMO_LOCK = threading.Lock()  # Dask worker threads run simulations side by side


def _layout_of(module, mode: str, scenario) -> Layout:
    """``module.layout(scenario)``, once per process for each IPAM settings object and mode.

    A mode's layout is a function of the scenario's IPAM settings alone (every
    mode module's ``layout`` reads only ``scenario.ipam``; a test checks it).
    The runs of a sweep's replicates, and repeated :func:`ipam_core.pipeline.simulate`
    calls, share one settings object per mode, so its CIDR lists are parsed
    once (the ``ipaddress`` parsing cost a few percent of a small point). The
    cache holds the settings object, so its ``id`` cannot be reused while cached.
    """
    ipam = scenario.ipam
    key = (mode, id(ipam))
    hit = _LAYOUTS.get(key)
    if hit is not None and hit[0] is ipam:
        return hit[1]
    layout = module.layout(scenario)
    with _MEMO_LOCK:
        if len(_LAYOUTS) >= _LAYOUT_SLOTS:
            del _LAYOUTS[next(iter(_LAYOUTS))]
        _LAYOUTS[key] = (ipam, layout)
    return layout


# (pod attributes key, layout, id(IPAM settings), id(namespaces)) -> (those settings, those namespaces,
# the resolved pod_pool table); see _resolve_pod_pools
_POD_POOLS: dict[tuple, tuple] = {}
_POD_POOL_SLOTS = 16
_POD_POOL_MAX_BYTES = 8 << 20  # larger tables are resolved every time: a copy would double them


def _resolve_pod_pools(state: State, layout: Layout, scenario, workload: Workload) -> None:
    """:func:`ipam_core.engine.pools.resolve_pod_pools`, reused between workloads whose pods look alike.

    The resolution is a function of the fresh ``pod_pool`` table (the
    layout's), the layout's pools, the scenario's IPAM settings and
    namespaces (pool selection reads only those) and each pod's namespace and
    annotation, which a generator summarises as ``workload.pod_attributes_key``.
    A sweep's replicates share the settings and namespace objects and their
    keys are equal, so the multi-pool resolution (a pass over every event,
    a few percent of a small point) runs once per process and later runs
    copy its table.
    """
    key = workload.pod_attributes_key
    pod_pool = state.core.pod_tables.pod_pool
    if key is None or layout.policy != T.POLICY_MULTI_POOL or pod_pool.nbytes > _POD_POOL_MAX_BYTES:
        resolve_pod_pools(state, layout, scenario, workload)
        return
    memo_key = (key, layout, id(scenario.ipam), id(scenario.namespaces))
    hit = _POD_POOLS.get(memo_key)
    if hit is not None and hit[0] is scenario.ipam and hit[1] is scenario.namespaces and hit[2].shape == pod_pool.shape:
        np.copyto(pod_pool, hit[2])
        return
    resolve_pod_pools(state, layout, scenario, workload)
    with _MEMO_LOCK:
        if len(_POD_POOLS) >= _POD_POOL_SLOTS:
            del _POD_POOLS[next(iter(_POD_POOLS))]
        _POD_POOLS[memo_key] = (scenario.ipam, scenario.namespaces, pod_pool.copy())


@functools.lru_cache(maxsize=64)
def _layout_arrays(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """What the sampled loop reads of a layout: addresses in the pools per engine family, and the families.

    The pool addresses are each set's node CIDRs times the addresses counted
    per node CIDR (the state's ``S_N`` and ``S_ADDRS``). Shared by every run
    of the layout: the loop only reads them.
    """
    totals = [0, 0]
    for spec in layout.sets:
        totals[spec.family] += spec.capacity * pod_range(spec.network, spec.node_mask)[1]
    # a calico IPv6 /64 of /122 blocks counts 2**64 addresses: capped where int64 still holds it
    pool_addrs = np.array([min(total, ADDRS_CAP) for total in totals], dtype=np.int64)
    return pool_addrs, np.asarray(layout.families, dtype=np.int64)


class Simulation:
    """One workload through one mode.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        Validated scenario; ``mode`` overrides ``scenario.ipam.mode``.
    workload : Workload
        The events.
    mode : str, optional
        Mode name.
    bounds : WorkloadBounds, optional
        :func:`workload_facts` of ``workload`` for this scenario's retry
        interval, when the caller runs one workload through several modes.
    """

    def __init__(self, scenario, workload: Workload, mode: str | None = None, bounds: WorkloadBounds | None = None):
        self.scenario = scenario
        self.workload = workload
        self.mode = mode or scenario.ipam.mode
        module = get_mode(self.mode)
        self.layout: Layout = _layout_of(module, self.mode, scenario)
        self.config = engine_config(scenario)
        if hasattr(module, "max_pods"):  # modes that set the kubelet's max pods (gke; cloud modes: the largest group's)
            self.config = replace(self.config, max_pods=int(module.max_pods(scenario)))
        if bounds is None or bounds.retry_s != self.config.pod_retry_s:
            bounds = workload_facts(workload, self.config.pod_retry_s)
        self.state = build_state(
            self.layout,
            self.config,
            n_nodes=len(workload.node_names),
            n_pods=workload.n_pods,
            n_node_adds=bounds.node_adds,
            max_live=bounds.max_live,
            stale_timers=bounds.stale_timers,
        )
        self.state = hooks.prepare(self.state, module, scenario, workload)  # the family's own tables
        _resolve_pod_pools(self.state, self.layout, scenario, workload)
        initial = scenario.initial_state
        # other modes, and settings that cannot hold the state: a what-if, carved by the rules
        if initial is not None and initial.mode == self.mode and initial.starts and initial.cloud is None:
            self._start(initial)  # a cloud cluster's interfaces and addresses: the cloud family's prepare
        self._pool_addrs, self._families = _layout_arrays(self.layout)
        self._ev = (
            np.ascontiguousarray(workload.time, dtype=np.float64),
            np.ascontiguousarray(workload.op, dtype=np.int8),
            np.ascontiguousarray(workload.node, dtype=np.int32),
            np.ascontiguousarray(workload.pod, dtype=np.int32),
        )
        self.time = 0.0
        #: int64 [len(TRACE_COUNTERS), samples * families] of the last :meth:`record` call
        self.counters: np.ndarray | None = None
        #: float64 [samples * families]: its ``warm_addrs_per_node``
        self.warm: np.ndarray | None = None

    def _start(self, initial) -> None:
        """The cluster's node CIDRs and pod addresses at t=0 (:mod:`ipam_core.engine.initial`)."""
        code = start_from_state(self.state, *start_arrays(initial, self.workload))
        if code:
            what = _ERRORS.get(code, "initial state")
            raise EngineCapacityError(f"engine {what} could not take the initial state {initial.path.name} in mode "
                                      f"{self.mode} (code {code})")

    def advance(self, t_stop: float) -> None:
        """Process every event and timer due before ``t_stop``.

        Raises
        ------
        EngineCapacityError
            If an internal table ran out of room.
        """
        # through sample_run with no sample: the loop compiles once, inside it (engine/core.py advance)
        stops = np.full(1, float(t_stop))
        while True:
            code, _ = sample_run(self.state, *self._ev, stops, _NO_SAMPLE, 0, 1, _NO_FAMILY, self._pool_addrs,
                                 np.zeros((len(TRACE_COUNTERS), 0), dtype=np.int64), np.zeros(0),
                                 np.zeros((S.NR_NCOL, 0), dtype=np.int64), np.zeros((S.CD_NCOL, 0), dtype=np.int64),
                                 np.zeros(2, dtype=np.int64))
            if code != T.GROW_TIMERS:
                break
            self.state = grow_timers(self.state)  # the loop stopped for room in a timer table: grow it, go on
        if code:
            raise EngineCapacityError(f"engine {_ERRORS.get(code, code)} ran out of room at t={t_stop:g}s in mode {self.mode}")
        self.time = t_stop

    # ------------------------------------------------------------------ sampling
    def record(self, times, node_sample, progress=None, stops=None) -> tuple[dict, dict]:
        """Advance to each sample time and sample there, in one compiled call per progress step.

        Parameters
        ----------
        times : numpy.ndarray of float64
            Sample times, ascending; each sample describes the state just after
            its time (events at that time included).
        node_sample : numpy.ndarray of bool
            Which samples also record the node rows.
        progress : callable, optional
            ``progress(mode, fraction)`` after each of up to
            :data:`PROGRESS_STEPS` chunks of samples.
        stops : numpy.ndarray of float64, optional
            Where the loop stops for each sample (default: just after each time).

        Returns
        -------
        tuple of LazyColumns
            The trace columns (``family``, ``time_s`` and :data:`TRACE_COUNTERS`)
            and the node columns (``time_s``, ``node``, ``family``,
            :data:`NODE_COUNTERS`, ``status_code``, ``cidrs_counts``,
            ``cidrs_values``), as in :class:`ModeResult`; each mapping builds
            its columns when first read. :attr:`counters` and :attr:`warm`
            hold the trace's numbers right away.

        Raises
        ------
        EngineCapacityError
            If an internal table ran out of room.
        """
        times = np.ascontiguousarray(times, dtype=np.float64)
        stops = np.nextafter(times, np.inf) if stops is None else np.ascontiguousarray(stops, dtype=np.float64)
        node_sample = np.ascontiguousarray(node_sample, dtype=np.bool_)
        families = self._families
        n, nf = times.size, families.size
        cloud = self.layout.policy == T.POLICY_CLOUD
        trace = np.zeros((len(TRACE_COUNTERS), n * nf), dtype=np.int64)
        warm = np.zeros(n * nf, dtype=np.float64)
        # rows: exact bound (every node present at every node sample); CIDRs: the bound (every
        # node's CIDR table full) while it is small, else a guess that grows when the kernel asks
        rows = int(np.count_nonzero(node_sample)) * self.state.core.nodes.shape[0] * (1 if cloud else nf)
        width = self.state.cl_unit.shape[1] if cloud else self.state.core.cidr.node_slots.shape[1]
        calico = self.layout.policy == T.POLICY_CALICO  # its rows carry the show-blocks view too
        node_tab = np.empty((calico_hooks.NR_CALICO_NCOL if calico else S.NR_NCOL, rows), dtype=np.int64)
        cidr_tab = np.empty((calico_hooks.CD_CALICO_NCOL if calico else S.CD_NCOL,
                             min(rows * width, max(2 * rows, CIDR_PREALLOC))), dtype=np.int64)
        fill = np.zeros(2, dtype=np.int64)
        step = n if progress is None else max(1, -(-n // PROGRESS_STEPS))
        i = 0
        while i < n:
            code, i = sample_run(self.state, *self._ev, stops, node_sample, i, min(n, i + step), families,
                                 self._pool_addrs, trace, warm, node_tab, cidr_tab, fill)
            if code == S.NEED_ROOM:
                node_tab = _grown(node_tab, fill[0])
                cidr_tab = _grown(cidr_tab, fill[1])
                continue
            if code == T.GROW_TIMERS:  # the loop stopped for room in a timer table before sample i
                self.state = grow_timers(self.state)
                continue
            if code:
                raise EngineCapacityError(
                    f"engine {_ERRORS.get(code, code)} ran out of room at t={stops[i]:g}s in mode {self.mode}"
                )
            if progress is not None:
                progress(self.mode, i / n)
        if n:
            self.time = float(stops[-1])
        self.counters = trace  # the trace columns are its rows: summaries reduce it whole
        self.warm = warm
        n_rows, n_cidrs = int(fill[0]), int(fill[1])
        if cidr_tab.shape[1] > 2 * n_cidrs + 4096:  # keep what was written, not the room around it
            cidr_tab = cidr_tab[:, :n_cidrs].copy()
        return (
            LazyColumns(functools.partial(_trace_columns, trace, warm, times, families)),
            LazyColumns(functools.partial(self._node_columns, node_tab[:, :n_rows], cidr_tab[:, :n_cidrs], times)),
        )

    def _node_columns(self, tab: np.ndarray, cidrs: np.ndarray, times: np.ndarray) -> dict:
        """The node columns of :meth:`record` from the rows the kernel wrote (calico: CALICO_NODE_COLUMNS too)."""
        columns = {
            "time_s": times[tab[S.NR_SAMPLE]],
            "node": tab[S.NR_NODE].astype(np.int32),
            "family": np.where(tab[S.NR_FAMILY] == 0, 4, 6).astype(np.int8),
            "used": tab[S.NR_USED],
            "free": tab[S.NR_FREE],
            "reserved": tab[S.NR_RESERVED],
            "pending": tab[S.NR_PENDING],
            "status_code": tab[S.NR_STATUS],
            "cidrs_counts": tab[S.NR_CIDRS],
            "cidrs_values": self._cidr_text(cidrs[S.CD_GROUP], cidrs[S.CD_INDEX]),
        }
        if tab.shape[0] == calico_hooks.NR_CALICO_NCOL:
            rc = calico_hooks
            columns.update(empty_blocks=tab[rc.NR_EMPTY_BLOCKS], stranded=tab[rc.NR_STRANDED],
                           borrowed=tab[rc.NR_BORROWED], lent=tab[rc.NR_LENT], block_in_use=cidrs[rc.CD_IN_USE],
                           block_free=cidrs[rc.CD_FREE], block_lent=cidrs[rc.CD_LENT])
        return columns

    def sample(self) -> dict[int, dict[str, int]]:
        """The trace counters now, per enabled family (engine family index)."""
        trace, _ = self.record(np.array([self.time]), np.zeros(1, dtype=np.bool_), stops=np.array([self.time]))
        out = {}
        for f, family in enumerate(self.layout.families):
            out[family] = {k: (float(trace[k][f]) if k in TRACE_FLOATS else int(trace[k][f])) for k in TRACE_COUNTERS}
        return out

    def node_rows(self) -> dict[str, object]:
        """Per present node and family now: CIDRs, used, free, reserved, pending, status code."""
        _, nodes = self.record(np.array([self.time]), np.ones(1, dtype=np.bool_), stops=np.array([self.time]))
        return {k: v for k, v in nodes.items() if k != "time_s"}

    def largest_free_block(self, family: int) -> int:
        """Addresses in the largest aligned free block left in any pool of the family (engine index)."""
        return int(S.largest_free_block(self.state, family))

    def _cidr_text(self, group: np.ndarray, index: np.ndarray) -> pa.Array:
        """CIDR text of each (group, index) entry, in order: formatted in bulk per set and mask."""
        if group.size == 0:
            return pa.array([], pa.string())
        cloud = self.layout.policy == T.POLICY_CLOUD

        def text(g: int, idx: np.ndarray) -> pa.Array:
            spec = self.layout.sets[g // 2]
            mask = S.cidr_group_mask(g, spec.node_mask, cloud)
            net = spec.network
            # the engine's block indices lie in the set: format_values skips format_cidrs' range checks
            return format_values(net.version, int(net.network_address), np.ascontiguousarray(idx, dtype=np.int64),
                                 net.max_prefixlen - mask, f"/{mask}".encode())

        g0 = int(group[0])
        if not (group != g0).any():  # the common case: one set and mask
            return text(g0, index)
        # several sets or masks (cloud subnets, /32s and /28s): each distinct CIDR is formatted
        # once (a node keeps its CIDRs from one node sample to the next), then copied in order
        if int(index.max()) >> _KEY_SHIFT:  # calico's IPv6 blocks (2**58 /122s in a /64): pairs as rows
            distinct, pick = np.unique(np.stack([group, index], axis=1), axis=0, return_inverse=True)
            groups, indices = np.ascontiguousarray(distinct[:, 0]), np.ascontiguousarray(distinct[:, 1])
        else:
            distinct, pick = np.unique((group << _KEY_SHIFT) | index, return_inverse=True)
            groups, indices = distinct >> _KEY_SHIFT, distinct & ((1 << _KEY_SHIFT) - 1)
        cuts = np.flatnonzero(groups[1:] != groups[:-1]) + 1
        parts = [text(int(groups[a]), indices[a:b]) for a, b in zip(np.r_[0, cuts], np.r_[cuts, groups.size])]
        return _gather_strings(parts, pick.reshape(-1))


def _trace_columns(trace: np.ndarray, warm: np.ndarray, times: np.ndarray, families: np.ndarray) -> dict:
    """The trace columns of :meth:`Simulation.record`: views of the counter block's rows."""
    codes = np.where(families == 0, 4, 6).astype(np.int8)
    nf = families.size
    return {
        # one family (the common case): a fill; np.tile's Python wrapper costs more than the copy
        "family": np.full(times.size, codes[0], dtype=np.int8) if nf == 1 else np.tile(codes, times.size),
        "time_s": np.repeat(times, nf),
        **{k: warm if k in TRACE_FLOATS else trace[j] for j, k in enumerate(TRACE_COUNTERS)},
    }


# a CIDR entry's key: group above these bits, block index below (a set has < 2**40 node
# CIDRs: its bitmap would not fit in memory otherwise; calico's block indexes may not, see _cidr_text)
_KEY_SHIFT = 40


def _gather_strings(parts: list[pa.Array], pick: np.ndarray) -> pa.Array:
    """``concat(parts)[pick]`` as a string array (a compiled copy; Arrow's ``take`` would
    charge its compute-kernel setup, ~0.4 s, to the first run of a process)."""
    offsets, data = [np.zeros(1, dtype=np.int64)], []
    base = 0
    for part in parts:
        kind = np.int64 if pa.types.is_large_string(part.type) else np.int32
        off = np.frombuffer(part.buffers()[1], dtype=kind)[part.offset : part.offset + len(part) + 1].astype(np.int64)
        offsets.append(off[1:] - off[0] + base)
        data.append(np.frombuffer(part.buffers()[2], dtype=np.uint8)[off[0] : off[-1]])
        base += int(off[-1] - off[0])
    offsets = np.concatenate(offsets)
    pick = np.ascontiguousarray(pick, dtype=np.int64)
    out_offsets = np.empty(pick.size + 1, dtype=np.int64)
    out_data = np.empty(max(1, int(np.diff(offsets)[pick].sum())), dtype=np.uint8)
    S.gather_text(offsets, np.concatenate(data), pick, out_offsets, out_data)
    large = out_offsets[-1] > np.iinfo(np.int32).max
    kind, width = (pa.large_string(), np.int64) if large else (pa.string(), np.int32)
    return pa.Array.from_buffers(kind, pick.size, [None, pa.py_buffer(out_offsets.astype(width)), pa.py_buffer(out_data)])


def _grown(table: np.ndarray, used: int) -> np.ndarray:
    """A copy of ``table`` (columns = entries) with twice the room, its first ``used`` entries kept."""
    bigger = np.empty((table.shape[0], max(16, 2 * table.shape[1])), dtype=table.dtype)
    bigger[:, :used] = table[:, :used]
    return bigger


@functools.lru_cache(maxsize=16)
def _sample_plan(duration_s: float, interval_s: float, node_interval_s: float) -> tuple[np.ndarray, ...]:
    """:func:`sample_times`, its :func:`node_sample_mask` and the loop's stops (just after each time).

    Once per process for every mode and seed; shared between runs:
    :meth:`Simulation.record` only reads them.
    """
    times = sample_times(duration_s, interval_s)
    mask = node_sample_mask(times.size, max(1, int(round(node_interval_s / interval_s))))
    return times, mask, np.nextafter(times, np.inf)


def sample_times(duration_s: float, interval_s: float) -> np.ndarray:
    """Sample times ``0, interval, ...`` up to and including ``duration``."""
    n = int(np.floor(duration_s / interval_s + 1e-9))
    times = np.arange(n + 1, dtype=np.float64) * interval_s
    if times[-1] < duration_s:
        times = np.append(times, duration_s)
    return times


def node_sample_mask(n_samples: int, every: int) -> np.ndarray:
    """Which of ``n_samples`` samples record node rows: every ``every``-th and the last."""
    mask = np.arange(n_samples) % every == 0
    if n_samples:
        mask[-1] = True
    return mask


def run_mode(scenario, workload: Workload, mode: str, progress=None, bounds: WorkloadBounds | None = None) -> ModeResult:
    """Run the workload through one mode, sampling the trace and node tables.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
    workload : Workload
    mode : str
    progress : callable, optional
        Called with ``(mode, fraction_done)`` after each chunk of samples
        (at most :data:`PROGRESS_STEPS` calls).
    bounds : WorkloadBounds, optional
        :func:`workload_facts` of ``workload``, computed once for several modes.

    Returns
    -------
    ModeResult
    """
    sim = Simulation(scenario, workload, mode, bounds)
    times, node_sample, stops = _sample_plan(scenario.duration_s, scenario.sample_interval_s,
                                             scenario.node_sample_interval_s)
    trace, nodes = sim.record(times, node_sample, progress, stops)
    families = tuple(4 if f == 0 else 6 for f in sim.layout.families)
    return ModeResult(mode, families, trace, LazyColumns(functools.partial(_documented_nodes, nodes)),
                      state_nbytes(sim.state), sim.state, sim.counters, sim.warm)


def _documented_nodes(nodes: LazyColumns) -> dict:
    """:meth:`Simulation.record`'s node columns as :class:`ModeResult` documents them: status text, not codes."""
    cols = dict(nodes)
    cols["status_error"] = _STATUS_TEXT[cols.pop("status_code")]
    cols["cidrs_counts"] = cols.pop("cidrs_counts")  # keep the documented column order
    cols["cidrs_values"] = cols.pop("cidrs_values")
    return cols


def _one_pod(scenario) -> Workload:
    """A workload of one node and one pod at t=0, in the scenario's first namespace."""
    namespace = scenario.namespaces[0].name if scenario.namespaces else "default"
    return Workload(
        time=np.zeros(2), op=np.array([OP_NODE_ADD, OP_POD_ADD], dtype=np.int8), node=np.array([0, -1], dtype=np.int32),
        pod=np.array([-1, 0], dtype=np.int32), namespace=np.array([-1, 0], dtype=np.int32),
        pool=np.full(2, -1, dtype=np.int32), node_names=["warmup-0"], namespaces=[namespace], pool_names=[], n_pods=1,
    )


def state_class_of(scenario, mode: str) -> type:
    """The State class a run of ``mode`` compiles its loop for (the family's, or its pool manager's).

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        Validated for ``mode``.
    mode : str

    Returns
    -------
    type
        Built as a run builds it (:func:`~ipam_core.engine.state.build_state`, then the
        family's ``prepare``), for one node and one pod; nothing is run.
    """
    # without the cluster's own starting state (initialState): it does not pick the class, and
    # starting from it calls the compiled start-up (8 s to compile for an imported cluster-pool dump)
    return type(Simulation(replace(scenario, initial_state=None), _one_pod(scenario), mode).state)


# (mode, families) pairs whose compiled code this process has loaded: see warm_mode
_WARM: set[tuple[str, tuple[int, ...]]] = set()


def warm_mode(scenario, mode: str) -> bool:
    """Load (or compile) every kernel a run of ``mode`` calls, once per process.

    A run's first compiled call loads the kernels from Numba's cache (about
    0.2-0.5 s) or compiles them (a minute); timing a mode must not include
    that. This runs the mode on a one-node, one-pod workload, through the same
    calls as :func:`run_mode`, and formats one CIDR of each set.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        Validated for ``mode`` (:func:`ipam_core.scenario.scenario_for_mode`).
    mode : str

    Returns
    -------
    bool
        False when this process had already warmed the mode for the
        scenario's families (nothing was run).
    """
    key = (mode, tuple(scenario.ipam.families))
    if key in _WARM:
        return False
    sim = Simulation(scenario, _one_pod(scenario), mode)
    _, nodes = sim.record(np.array([0.0, WARMUP_S]), np.ones(2, dtype=np.bool_))
    nodes["cidrs_values"]  # the node columns are built when first read: build them now, as a trace write will
    for spec in sim.layout.sets:  # whatever the tiny run carved: every family's text kernel
        format_cidrs(spec.network, spec.node_mask, np.zeros(1, dtype=np.int64))
    _gather_strings([pa.array(["warm"])], np.zeros(1, dtype=np.int64))  # several sets' CIDRs in one row
    _WARM.add(key)
    return True
