"""Run one workload through one mode and sample what users care about.

:class:`Simulation` builds the state for a mode, lets the compiled loop
(:func:`ipam_core.engine.core.advance`) run up to each sample time, and
reads counters and tables with vectorised numpy in between: Python runs once
per sample, never per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from ipam_core.addr import format_cidrs
from ipam_core.engine import tables as T
from ipam_core.engine.cloud import init_cloud
from ipam_core.engine.core import advance
from ipam_core.engine.layout import Layout
from ipam_core.engine.pools import resolve_pod_pools
from ipam_core.engine.state import (
    EngineConfig,
    State,
    build_state,
    count_node_adds,
    workload_bounds,
)
from ipam_core.errors import IPAMBenchError
from ipam_core.kernels.bitmap import bm_largest_free_block
from ipam_core.workloads.events import OP_NODE_ADD, OP_POD_ADD, Workload

TRACE_COUNTERS = (
    "nodes",
    "nodes_ready",
    "pods_running",
    "pods_pending",
    "pods_failed",
    "pods_failed_free_elsewhere",
    "addrs_pool",
    "addrs_carved",
    "addrs_reserved",
    "addrs_used",
    "addrs_idle",
    "addrs_uncarved",
    "node_cidrs",
    "carvable_node_cidrs",
    "largest_free_block",
    "cidr_carves",
    "cidr_releases",
    "ip_allocs",
    "ip_alloc_failures",
    # cloud modes (0 in the pool modes): engine/cloud.py
    "warm_addrs_per_node",
    "interfaces",
    "prefixes",
    "frag_failures",
    "cloud_api_attach",
    "cloud_api_assign",
    "cloud_api_release",
)
#: Trace counters that are not whole numbers.
TRACE_FLOATS = frozenset({"warm_addrs_per_node"})
NODE_COUNTERS = ("used", "free", "reserved", "pending")

_ERRORS = {
    T.ERROR_HEAP_FULL: "timer heap",
    T.ERROR_SLOTS_FULL: "node-CIDR table",
    T.ERROR_CHUNKS_FULL: "pod-bitmap arena",
    T.ERROR_CLOUD_UNITS_FULL: "cloud unit table",
    T.ERROR_ROWS_FULL: "pod table",
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
        seed=int(scenario.seed),
    )


@dataclass
class ModeResult:
    """Samples of one mode's run.

    Attributes
    ----------
    mode : str
    families : tuple of int
        Families sampled (4 and/or 6).
    trace : dict of str to numpy.ndarray
        Columns of the trace table for this mode (``mode`` excluded).
    nodes : dict of str to numpy.ndarray
        Columns of the nodes table (``mode``, ``cidrs`` excluded) with
        ``cidrs_values`` (pyarrow strings) and ``cidrs_counts`` per row.
    state_bytes : int
        Memory held by the engine state.
    """

    mode: str
    families: tuple[int, ...]
    trace: dict[str, np.ndarray]
    nodes: dict[str, object]
    state_bytes: int
    state: State | None = field(default=None, repr=False)


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
    """

    def __init__(self, scenario, workload: Workload, mode: str | None = None):
        self.scenario = scenario
        self.workload = workload
        self.mode = mode or scenario.ipam.mode
        from ipam_core.modes import get_mode  # here: mode modules import engine.layout

        module = get_mode(self.mode)
        self.layout: Layout = module.layout(scenario)
        self.config = engine_config(scenario)
        if hasattr(module, "max_pods"):  # modes that set the kubelet's max pods (gke, cloud modes)
            self.config = replace(self.config, max_pods=int(module.max_pods(scenario)))
        max_live, stale_timers = workload_bounds(workload, self.config.pod_retry_s)
        self.state = build_state(
            self.layout,
            self.config,
            n_nodes=len(workload.node_names),
            n_pods=workload.n_pods,
            n_node_adds=count_node_adds(workload.op),
            max_live=max_live,
            stale_timers=stale_timers,
        )
        if hasattr(module, "cloud"):  # cloud modes: per-node pools from subnet bitmaps (engine/cloud.py)
            self.state = init_cloud(self.state, module.cloud(scenario), len(workload.node_names))
        resolve_pod_pools(self.state, self.layout, scenario, workload)
        self._pool_addrs = np.zeros(2, dtype=np.int64)
        for i, spec in enumerate(self.layout.sets):
            self._pool_addrs[spec.family] += self.state.sets[i, T.S_N] * self.state.sets[i, T.S_ADDRS]
        self._ev = (
            np.ascontiguousarray(workload.time, dtype=np.float64),
            np.ascontiguousarray(workload.op, dtype=np.int8),
            np.ascontiguousarray(workload.node, dtype=np.int32),
            np.ascontiguousarray(workload.pod, dtype=np.int32),
        )
        self.time = 0.0

    def advance(self, t_stop: float) -> None:
        """Process every event and timer due before ``t_stop``.

        Raises
        ------
        EngineCapacityError
            If an internal table ran out of room.
        """
        code = advance(self.state, *self._ev, float(t_stop))
        if code:
            raise EngineCapacityError(f"engine {_ERRORS.get(code, code)} ran out of room at t={t_stop:g}s in mode {self.mode}")
        self.time = t_stop

    # ------------------------------------------------------------------ sampling
    def _family_counter(self, family: int, field_: int) -> int:
        return int(self.state.cnt[T.K_FAMILY_BASE + T.FAMILY_STRIDE * family + field_])

    def largest_free_block(self, family: int) -> int:
        """Addresses in the largest aligned free block left in any pool of the family."""
        st = self.state
        best = 0
        for i, spec in enumerate(self.layout.sets):
            if spec.family != family:
                continue
            w0, nw = st.sets[i, T.S_W_OFF], st.sets[i, T.S_W_LEN]
            order = bm_largest_free_block(st.set_words[w0 : w0 + nw])
            if order >= 0:
                best = max(best, (1 << int(order)) * int(st.sets[i, T.S_ADDRS]))
        return best

    def sample(self) -> dict[int, dict[str, int]]:
        """The trace counters now, per enabled family (engine family index)."""
        c = self.state.cnt
        out = {}
        for family in self.layout.families:
            carved = self._family_counter(family, T.F_CARVED)
            reserved = self._family_counter(family, T.F_RESERVED)
            used = self._family_counter(family, T.F_USED)
            out[family] = {
                "nodes": int(c[T.K_NODES]),
                "nodes_ready": int(c[T.K_READY]),
                "pods_running": int(c[T.K_RUNNING]),
                "pods_pending": int(c[T.K_PENDING]),
                "pods_failed": int(c[T.K_FAILED]),
                "pods_failed_free_elsewhere": int(c[T.K_FAILED_FREE]),
                "addrs_pool": int(self._pool_addrs[family]),
                "addrs_carved": carved,
                "addrs_reserved": reserved,
                "addrs_used": used,
                "addrs_idle": carved - reserved - used,
                "addrs_uncarved": int(self._pool_addrs[family]) - carved,
                "node_cidrs": self._family_counter(family, T.F_NODE_CIDRS),
                "carvable_node_cidrs": self._family_counter(family, T.F_CARVABLE),
                "largest_free_block": self.largest_free_block(family),
                "cidr_carves": self._family_counter(family, T.F_CARVES),
                "cidr_releases": self._family_counter(family, T.F_RELEASES),
                "ip_allocs": self._family_counter(family, T.F_IP_ALLOCS),
                "ip_alloc_failures": self._family_counter(family, T.F_IP_FAILS),
                **self._cloud_sample(family),
            }
        return out

    def _cloud_sample(self, family: int) -> dict[str, float]:
        """The cloud columns: warm addresses per node, interfaces, prefixes, fragmentation, API calls."""
        c = self.state.cnt
        cloud = self.layout.policy == T.POLICY_CLOUD
        nodes = int(c[T.K_NODES])
        warm = self._family_counter(family, T.F_FREE) / nodes if cloud and nodes else 0.0
        return {
            "warm_addrs_per_node": float(warm),
            "interfaces": int(c[T.K_CL_IFACES]),
            "prefixes": int(c[T.K_CL_PREFIXES]),
            "frag_failures": int(c[T.K_CL_FRAG_FAILS]),
            "cloud_api_attach": int(c[T.K_CL_API_ATTACH]),
            "cloud_api_assign": int(c[T.K_CL_API_ASSIGN]),
            "cloud_api_release": int(c[T.K_CL_API_RELEASE]),
        }

    def node_rows(self) -> dict[str, object]:
        """Per present node and family: CIDRs, used, free, reserved, pending, status (vectorised)."""
        if self.layout.policy == T.POLICY_CLOUD:
            return self._cloud_node_rows()
        st = self.state
        present = np.flatnonzero(st.nodes[:, T.N_PRESENT] == 1)
        rows: dict[str, list] = {k: [] for k in ("node", "family", *NODE_COUNTERS, "status_code", "cidrs", "counts")}
        width = st.node_slots.shape[1]
        grid = st.node_slots[present]  # [nodes, width], -1 padded
        row_of = np.repeat(np.arange(present.size), width)
        flat = grid.ravel()
        held = flat >= 0
        slot_ids = flat[held]
        slot_rows = row_of[held]
        slots = st.slots[slot_ids]
        live = slots[:, T.L_STATE] == T.SLOT_LIVE
        for family in self.layout.families:
            mine = slots[:, T.L_FAMILY] == family
            r = slot_rows[mine]
            s = slots[mine]
            edge = st.sets[s[:, T.L_SET], T.S_ADDRS] - s[:, T.L_MAX]
            n = present.size
            used = np.bincount(r, weights=s[:, T.L_USED] - s[:, T.L_RESERVED], minlength=n).astype(np.int64)
            free = np.bincount(r, weights=np.where(live[mine], s[:, T.L_MAX] - s[:, T.L_USED], 0), minlength=n)
            reserved = np.bincount(r, weights=edge + s[:, T.L_RESERVED], minlength=n).astype(np.int64)
            rows["node"].append(present)
            rows["family"].append(np.full(n, 4 if family == 0 else 6, dtype=np.int8))
            rows["used"].append(used)
            rows["free"].append(free.astype(np.int64))
            rows["reserved"].append(reserved)
            rows["pending"].append(st.nodes[present, T.N_PENDING].copy())
            rows["status_code"].append(st.nodes[present, T.N_STATUS].copy())
            rows["counts"].append(np.bincount(r, minlength=n).astype(np.int64))
            rows["cidrs"].append(self._cidr_strings(s))
        return {
            "node": np.concatenate(rows["node"]) if rows["node"] else np.zeros(0, np.int64),
            "family": np.concatenate(rows["family"]) if rows["family"] else np.zeros(0, np.int8),
            **{k: np.concatenate(rows[k]) for k in NODE_COUNTERS},
            "status_code": np.concatenate(rows["status_code"]),
            "cidrs_counts": np.concatenate(rows["counts"]),
            "cidrs_values": pa.concat_arrays(rows["cidrs"]) if rows["cidrs"] else pa.array([], pa.string()),
        }

    def _cloud_node_rows(self) -> dict[str, object]:
        """Cloud modes: a node's /32 addresses and /28 prefixes as its CIDRs; pool used, free and reserved."""
        st = self.state
        present = np.flatnonzero(st.nodes[:, T.N_PRESENT] == 1)
        cn = st.cl_node[present]
        units = st.cl_unit[present]  # [nodes, units, CU_NCOL]
        live = units[:, :, T.CU_SET] >= 0
        row, col = np.nonzero(live)
        held = units[row, col]
        out = np.empty(held.shape[0], dtype=object)
        for i, spec in enumerate(self.layout.sets):
            for size, mask in ((1, 32), (16, 28)):
                pick = np.flatnonzero((held[:, T.CU_SET] == i) & (held[:, T.CU_SIZE] == size))
                if pick.size:
                    index = held[pick, T.CU_OFF] // size
                    out[pick] = format_cidrs(spec.network, mask, index).to_numpy(zero_copy_only=False)
        return {
            "node": present,
            "family": np.full(present.size, 4, dtype=np.int8),
            "used": cn[:, T.CN_USED] - cn[:, T.CN_RESERVED],
            "free": cn[:, T.CN_HELD] - cn[:, T.CN_USED],
            "reserved": cn[:, T.CN_RESERVED] + cn[:, T.CN_PRIMARIES],
            "pending": st.nodes[present, T.N_PENDING].copy(),
            "status_code": st.nodes[present, T.N_STATUS].copy(),
            "cidrs_counts": np.bincount(row, minlength=present.size).astype(np.int64),
            "cidrs_values": pa.array(out, pa.string()),
        }

    def _cidr_strings(self, slots: np.ndarray) -> pa.Array:
        """CIDR text of each slot row, in row order (grouped per set, then put back in order)."""
        if slots.shape[0] == 0:
            return pa.array([], pa.string())
        out = np.empty(slots.shape[0], dtype=object)
        for i, spec in enumerate(self.layout.sets):
            pick = np.flatnonzero(slots[:, T.L_SET] == i)
            if pick.size:
                out[pick] = format_cidrs(spec.network, spec.node_mask, slots[pick, T.L_INDEX]).to_numpy(
                    zero_copy_only=False
                )
        return pa.array(out, pa.string())


def warmup_engine() -> None:
    """Run the compiled loop once on tiny tables so later calls do not compile."""
    from ipam_core.addr import parse_cidr
    from ipam_core.engine.layout import SetSpec

    layout = Layout(
        mode="warmup",
        policy=T.POLICY_MULTI_POOL,
        families=(0,),
        pool_names=("default",),
        pre_allocation=(8,),
        sets=(SetSpec(0, parse_cidr("10.0.0.0/24"), 28),),
        default_pool=0,
        revert_partial=True,
    )
    config = EngineConfig(T.SCHED_SPREAD, 110, True, 1.0, 15.0, 60.0, 10.0, 300.0, 15.0, 0)
    state = build_state(layout, config, n_nodes=1, n_pods=1, n_node_adds=1)
    events = (
        np.array([0.0, 1.0], dtype=np.float64),
        np.array([OP_NODE_ADD, OP_POD_ADD], dtype=np.int8),
        np.array([0, -1], dtype=np.int32),
        np.array([-1, 0], dtype=np.int32),
    )
    advance(state, *events, 100.0)


def sample_times(duration_s: float, interval_s: float) -> np.ndarray:
    """Sample times ``0, interval, ...`` up to and including ``duration``."""
    n = int(np.floor(duration_s / interval_s + 1e-9))
    times = np.arange(n + 1, dtype=np.float64) * interval_s
    if times[-1] < duration_s:
        times = np.append(times, duration_s)
    return times


def run_mode(scenario, workload: Workload, mode: str, progress=None) -> ModeResult:
    """Run the workload through one mode, sampling the trace and node tables.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
    workload : Workload
    mode : str
    progress : callable, optional
        Called with ``(mode, fraction_done)`` after each sample.

    Returns
    -------
    ModeResult
    """
    sim = Simulation(scenario, workload, mode)
    times = sample_times(scenario.duration_s, scenario.sample_interval_s)
    node_every = max(1, int(round(scenario.node_sample_interval_s / scenario.sample_interval_s)))
    trace_cols: dict[str, list] = {k: [] for k in ("family", "time_s", *TRACE_COUNTERS)}
    node_parts: list[tuple[float, dict]] = []
    for i, t in enumerate(times):
        # samples describe the state just after time t: events at t are included
        sim.advance(np.nextafter(t, np.inf))
        for family, values in sim.sample().items():
            trace_cols["family"].append(4 if family == 0 else 6)
            trace_cols["time_s"].append(t)
            for k in TRACE_COUNTERS:
                trace_cols[k].append(values[k])
        if i % node_every == 0 or i == len(times) - 1:
            node_parts.append((t, sim.node_rows()))
        if progress is not None:
            progress(mode, (i + 1) / len(times))
    trace = {
        "family": np.asarray(trace_cols["family"], dtype=np.int8),
        "time_s": np.asarray(trace_cols["time_s"], dtype=np.float64),
        **{k: np.asarray(trace_cols[k], dtype=np.float64 if k in TRACE_FLOATS else np.int64) for k in TRACE_COUNTERS},
    }
    nodes = {
        "time_s": np.concatenate([np.full(p["node"].size, t) for t, p in node_parts]),
        "node": np.concatenate([p["node"] for _, p in node_parts]).astype(np.int32),
        "family": np.concatenate([p["family"] for _, p in node_parts]),
        **{k: np.concatenate([p[k] for _, p in node_parts]) for k in NODE_COUNTERS},
        "status_error": np.asarray(T.STATUS_TEXT, dtype=object)[np.concatenate([p["status_code"] for _, p in node_parts])],
        "cidrs_counts": np.concatenate([p["cidrs_counts"] for _, p in node_parts]),
        "cidrs_values": pa.concat_arrays([p["cidrs_values"] for _, p in node_parts]),
    }
    families = tuple(4 if f == 0 else 6 for f in sim.layout.families)
    return ModeResult(mode, families, trace, nodes, sum(a.nbytes for a in sim.state), sim.state)
