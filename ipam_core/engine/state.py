"""Build the engine's state tables for one mode, one scenario and one workload.

A state is its rules family's namedtuple (:func:`family_state`): ``core``, the :class:`CoreTables` every
mode shares (nodes, :class:`PodTables`, :class:`CidrTables`, :class:`TimerTables`, :class:`SchedTables`,
settings and counters), then the family's own tables. docs/layout.md has the table.
"""

from __future__ import annotations

import functools
import threading
from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from ipam_core.engine import tables as T
from ipam_core.engine.hooks import state_class
from ipam_core.engine.layout import Layout, pod_range
from ipam_core.engine.rng import seed_state
from ipam_core.engine.timer_room import TIMER_ROOM, set_limits, start_capacity
from ipam_core.errors import ConfigError
from ipam_core.kernels._jit import kjit
from ipam_core.kernels.layout import bm_init, bm_sizes
from ipam_core.workloads.events import OP_NODE_ADD, OP_POD_ADD, OP_POD_DEL

#: The pods: a row per pod alive at once (rows reused), and a slot per workload pod id.
PodTables = namedtuple("PodTables", (
    "pods",  # int32 [rows, D_NCOL]: one row per live pod, rows reused; one 64-byte line per pod
    "pod_since",  # float64 [rows]: when the pod started waiting
    "pod_failed_at",  # float64 [rows, or 1 outside multi-pool]: its last failed allocation (pending expiry)
    "pod_row",  # int32 [pod ids]: row of each workload pod id (POD_ROW_UNSEEN / POD_ROW_GONE)
    "pod_pool",  # int16 [pod ids or 1, 2]: pool per pod id and family (one shared row unless multi-pool)
))

#: The node CIDRs: the pools' sets and their bitmaps, each live node CIDR (a slot) with its address bitmap,
#: which node holds which, and the addresses in use, asked for and free per node, pool and family.
CidrTables = namedtuple("CidrTables", (
    "sets",  # int64 [sets, S_NCOL]
    "set_words",  # uint64: node-CIDR bitmaps of every set, back to back
    "set_summary",
    "pools",  # int64 [pools, P_NCOL]
    "chunk_stack",  # int64: per set, a stack of free pod-bitmap chunks
    "ip_words",  # uint64: pod-address bitmaps of every node CIDR that can be live
    "ip_summary",
    "slots",  # int64 [slots, L_NCOL]
    "slot_stack",  # int64: free slot ids
    "node_slots",  # int64 [nodes, max CIDRs per node]: the agent's CIDR order
    "np_inuse",  # int64 [nodes, pools, 2]: addresses in use per node, pool, family
    "np_pending",  # int64 [nodes, pools, 2]: pending requests (multi-pool demand)
    "np_requested",  # int64 [nodes, pools, 2]: what the agent last asked for
    "pool_free",  # int64 [pools, 2]: usable free addresses in live node CIDRs
    "pool_carvable",  # int64 [pools, 2]: node CIDRs the pool can still hand out
))

#: The timers: the pod-retry ring, a ring per periodic node timer kind, and a heap for every other timer.
TimerTables = namedtuple("TimerTables", (
    "retry_t",  # float64 [ring]: pod-retry timers, first in first out (all share one delay); sized at its bound
    # (the heap and node rings below start small and grow while the run goes on: engine/timer_room.py)
    "retry_row",  # int32 [ring]: the pod's row (-1: the pod went; its row's D_RETRY_AT points here while armed)
    "retry_seq",  # int64 [ring]: timer sequence number
    "node_ring_t",  # float64 [3, ring]: T_CARVE / T_AGENT_SYNC / T_REFRESH timers set in time order
    "node_ring_i",  # int64 [3, ring, 3]: node, node generation, sequence number
    "node_ring_pos",  # int64 [3, 2]: first timer and count per ring
    "heap_t",  # float64 [timers]: every other timer, a binary heap
    "heap_i",  # int64 [timers, H_NCOL]
    "next_timer",  # float64 [1]: no timer in the rings or the heap is due before this
))

#: The scheduler: a count tree of schedulable nodes, and per spread / pack key a bucket of nodes.
SchedTables = namedtuple("SchedTables", (
    "tree_cnt",  # int64: scheduler count tree, schedulable nodes below each tree node
    "bucket_words",  # uint64 [keys * bucket words]: spread / pack buckets, one bitmap of nodes per key
    "bucket_summary",  # uint64 [keys * bucket summary words]; 0 bit = node in the bucket
    "bucket_count",  # int64 [keys]: nodes per bucket
))

#: The core tables, the same for every mode: nodes, pods, node CIDRs, timers, scheduler, settings and
#: counters. The loop's shared machinery (timers, scheduler, pod rows, node-CIDR slots) takes the tables it
#: reads and writes, not a family's State, so it compiles once for every mode and its cache entries name
#: these classes alone.
CoreTables = namedtuple("CoreTables", (
    "nodes",  # int32 [nodes, N_NCOL]: one 64-byte line per node
    "pod_tables",  # PodTables
    "cidr",  # CidrTables
    "timer",  # TimerTables
    "sched",  # SchedTables
    "cfg",  # float64 [C_NCOL]: seconds and rates
    "icfg",  # int64 [I_NCOL]: codes, counts and flags
    "cnt",  # int64 [K_NCOL]
    "quiet",  # float64 [3 + nodes]: periodic passes that provably change nothing (engine/core.py QUIET_*)
))
_GROUP_OF_FIELD = {"pod_tables": PodTables, "cidr": CidrTables, "timer": TimerTables, "sched": SchedTables}
_GROUPS = tuple(_GROUP_OF_FIELD.values())
#: Every array of the core tables by name (the names are unique across the groups).
CORE_FIELDS = tuple(name for group in (CoreTables, *_GROUPS) for name in group._fields if name not in _GROUP_OF_FIELD)


def core_tables(**arrays: np.ndarray) -> CoreTables:
    """The core tables from their arrays, each named as in :data:`CORE_FIELDS`."""
    return CoreTables(**{name: _GROUP_OF_FIELD[name](*[arrays[a] for a in _GROUP_OF_FIELD[name]._fields])
                         if name in _GROUP_OF_FIELD else arrays[name] for name in CoreTables._fields})


def family_state(name: str, module: str, extension: tuple[str, ...] = ()) -> type:
    """A rules family's State class: ``core`` (:class:`CoreTables`), then the family's own tables.

    Parameters
    ----------
    name : str
        The class name; the module must bind it under that name (the kernel cache pickles the class).
    module : str
        That module's ``__name__``.
    extension : tuple of str
        The family's own tables (the cloud modes' interfaces and units, calico's blocks), filled by
        its ``prepare`` step (engine/hooks.py :func:`~ipam_core.engine.hooks.register`).

    Returns
    -------
    type
        A namedtuple class. Each family has its own, so the compiled loop resolves each hook to that
        family's rules (engine/hooks.py); ``State`` names any of them in docs and hints.
    """
    return namedtuple(name, ("core", *extension), module=module)


#: Any family's state, in docs and hints: ``core`` and the family's own tables.
State = family_state("State", __name__)


@dataclass(frozen=True)
class EngineConfig:
    """Timing and policy knobs of one run, in seconds where they are times."""

    scheduler: int
    max_pods: int
    health_ip: bool
    operator_delay_s: float
    update_rate_s: float
    refresh_s: float
    pod_retry_s: float
    pod_timeout_s: float
    carve_retry_s: float
    seed: int
    pending_ttl_s: float = 300.0
    address_filter: int = T.ADDRESS_FILTER_NONE
    released_cidrs: int = T.RELEASED_CIDRS_FREED  # multi-pool fault model (workload.lifecycle.releasedCIDRs)


def _cidrs_per_node(layout: Layout, max_pods: int) -> np.ndarray:
    """Upper bound on node CIDRs one node holds, per pool and family (sizes the tables)."""
    per_node = np.zeros((len(layout.pool_names), 2), dtype=np.int64)
    for spec in layout.sets:
        usable, _ = pod_range(spec.network, spec.node_mask)
        if layout.policy == T.POLICY_ONE_PER_FAMILY:
            need = 1
        elif layout.policy in (T.POLICY_CLOUD, T.POLICY_CALICO):
            need = 0  # cloud modes and calico hold addresses in their own tables, not in node-CIDR slots
        else:
            # demand never exceeds max pods + 2 reserved + twice the pre-allocation buffer;
            # pinned pods may overshoot max pods, hence the factor 2
            demand = 2 * (max_pods + 2) + 2 * layout.pre_allocation[spec.pool]
            need = -(-demand // usable) + 1
        cell = per_node[spec.pool, spec.family]
        per_node[spec.pool, spec.family] = max(cell, need)
    return per_node


#: dtype of the per-pod and per-node tables (``pods``, ``nodes``): 16 int32 columns are one 64-byte cache line
ROW_DTYPE = np.int32
INT32_MAX = int(np.iinfo(np.int32).max)
CACHE_LINE = 64


def _fresh_row(width: int, unset: list[int]) -> np.ndarray:
    """A table row of zeros with -1 in the ``unset`` columns (read-only: copied by broadcasting)."""
    row = np.zeros(width, dtype=ROW_DTYPE)
    row[unset] = -1
    row.flags.writeable = False
    return row


# what a node or pod row holds before the engine touches it: no head, bucket, node, slot, link, pin
_NODE_ROW = _fresh_row(T.N_NCOL, [T.N_HEAD, T.N_BUCKET])
_POD_ROW = _fresh_row(T.D_NCOL, [T.D_NODE, T.D_SLOT, T.D_SLOT + 1, T.D_NEXT, T.D_PREV, T.D_PENDING_FAMILY, T.D_PIN,
                                  T.D_RETRY_AT])


_SetTables = namedtuple(
    "_SetTables",
    "per_node sets pools set_words set_summary chunk_stack pool_carvable family_carvable chunk_off ipw_off ips_off",
)


@functools.lru_cache(maxsize=64)
def _set_tables(layout: Layout, max_pods: int, n_nodes: int) -> _SetTables:
    """The tables that follow from the layout alone (no seed, no events), built once per process.

    A sweep runs the same layout for many seeds; building these per run (a
    Python loop per set, an ``ipaddress`` parse and a bitmap init per set) cost
    a tenth of a small point. The arrays are read-only: :func:`build_state`
    copies them.
    """
    n_pools = len(layout.pool_names)
    n_sets = len(layout.sets)
    per_node = _cidrs_per_node(layout, max_pods)
    sets = np.zeros((n_sets, T.S_NCOL), dtype=np.int64)
    pools = np.zeros((n_pools, T.P_NCOL), dtype=np.int64)
    pools[:, T.P_PRE_ALLOC] = layout.pre_allocation
    w_off = s_off = ipw_off = ips_off = chunk_off = 0
    for i, spec in enumerate(layout.sets):
        capacity = spec.capacity
        # calico's sets only name its blocks (nodes.arrow text, addrs_pool): its own tables hold them, and
        # an IPv6 pool of /122 blocks has too many for a bitmap
        nw, ns = (0, 0) if layout.policy == T.POLICY_CALICO else bm_sizes(capacity)
        usable, counted = pod_range(spec.network, spec.node_mask)
        slot_nw, slot_ns = bm_sizes(usable)
        chunks = int(min(capacity, max(1, n_nodes) * per_node[spec.pool, spec.family]))
        sets[i, T.S_FAMILY] = spec.family
        sets[i, T.S_POOL] = spec.pool
        sets[i, T.S_N] = capacity
        sets[i, T.S_W_OFF], sets[i, T.S_W_LEN] = w_off, nw
        sets[i, T.S_S_OFF], sets[i, T.S_S_LEN] = s_off, ns
        sets[i, T.S_SLOT_MAX] = usable
        sets[i, T.S_SLOT_WORDS], sets[i, T.S_SLOT_SWORDS] = slot_nw, slot_ns
        sets[i, T.S_IPW_OFF], sets[i, T.S_IPS_OFF] = ipw_off, ips_off
        sets[i, T.S_CHUNK_OFF], sets[i, T.S_CHUNK_CAP], sets[i, T.S_CHUNK_TOP] = chunk_off, chunks, chunks
        sets[i, T.S_ADDRS] = counted
        w_off += nw
        s_off += ns
        ipw_off += chunks * slot_nw
        ips_off += chunks * slot_ns
        chunk_off += chunks
    for pool in range(n_pools):
        for family in range(2):
            members = [i for i, spec in enumerate(layout.sets) if spec.pool == pool and spec.family == family]
            if members:
                pools[pool, T.P_SET_LO + family] = members[0]
                pools[pool, T.P_SET_HI + family] = members[-1] + 1
                if members != list(range(members[0], members[-1] + 1)):
                    raise ValueError("layout sets must be grouped by pool and family")
    set_words = np.zeros(max(w_off, 1), dtype=np.uint64)
    set_summary = np.zeros(max(s_off, 1), dtype=np.uint64)
    for i in range(n_sets):
        if sets[i, T.S_W_LEN] == 0:
            continue
        w0, s0 = sets[i, T.S_W_OFF], sets[i, T.S_S_OFF]
        bm_init(set_words[w0 : w0 + sets[i, T.S_W_LEN]], set_summary[s0 : s0 + sets[i, T.S_S_LEN]], sets[i, T.S_N])
    # chunks are handed out from the top of each stack: lowest chunk first
    chunk_stack = np.zeros(max(chunk_off, 1), dtype=np.int64)
    for i in range(n_sets):
        off, cap = sets[i, T.S_CHUNK_OFF], sets[i, T.S_CHUNK_CAP]
        chunk_stack[off : off + cap] = np.arange(cap - 1, -1, -1)
    pool_carvable = np.zeros((n_pools, 2), dtype=np.int64)
    family_carvable = [0, 0]
    for spec in layout.sets:
        pool_carvable[spec.pool, spec.family] += spec.capacity
        family_carvable[spec.family] += spec.capacity
    arrays = (per_node, sets, pools, set_words, set_summary, chunk_stack, pool_carvable)
    for a in arrays:
        a.flags.writeable = False  # shared by every run of this layout
    return _SetTables(*arrays, tuple(family_carvable), chunk_off, ipw_off, ips_off)


def _line_aligned(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose first byte starts a cache line.

    A 64-byte row of a line-aligned table sits in one cache line; NumPy only
    aligns to 16 bytes, which splits three rows in four across two lines.
    """
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = np.empty(nbytes + CACHE_LINE, dtype=np.uint8)
    start = -buf.ctypes.data % CACHE_LINE
    return buf[start : start + nbytes].view(dtype).reshape(shape)


def check_int32_fit(n_nodes: int, n_pods: int, rows: int, n_slots: int, n_node_adds: int, slot_max: int,
                    retry_entries: int = 0) -> None:
    """Refuse a run whose ids or counts would not fit the int32 ``pods`` and ``nodes`` tables.

    Parameters
    ----------
    n_nodes, n_pods, rows, n_slots, n_node_adds : int
        Node ids, pod ids, pod rows, node-CIDR slots and node-add events of the run.
    slot_max : int
        Most usable addresses of one node CIDR (``pods[:, D_OFF]`` holds offsets below it).
    retry_entries : int
        Most entries of the pod-retry ring (``pods[:, D_RETRY_AT]`` holds one of them).

    Raises
    ------
    ConfigError
        One line naming the figure that exceeds 2**31 - 1. Checked once when the tables
        are built, so no event pays for it: a node's generation counts the node adds,
        every other column is an id, an offset or a count of pods, nodes or slots.
    """
    for name, value in (("nodes", n_nodes), ("pod ids", n_pods), ("pods alive at once", rows),
                        ("node CIDR slots", n_slots), ("node-add events", n_node_adds),
                        ("addresses per node CIDR", slot_max), ("pod-retry ring entries", retry_entries)):
        if value > INT32_MAX:
            raise ConfigError(f"{name}: {value:,} do not fit the engine's int32 tables; "
                              f"expected at most {INT32_MAX:,}")


#: States up to this size are built by copying a per-process template (see build_state).
TEMPLATE_MAX_BYTES = 8 << 20
#: Most bytes all templates hold together; the oldest go first.
TEMPLATE_BUDGET_BYTES = 64 << 20
_TEMPLATES: dict[tuple, dict] = {}  # key -> per array name (read-only copy or None for zeros, shape, dtype)
_TEMPLATE_BYTES: dict[tuple, int] = {}
_TEMPLATE_LOCK = threading.Lock()  # Dask worker threads build states concurrently


def build_state(
    layout: Layout,
    config: EngineConfig,
    n_nodes: int,
    n_pods: int,
    n_node_adds: int,
    max_live: int | None = None,
    stale_timers: int = 0,
) -> State:
    """Allocate and initialise every table for a run.

    Parameters
    ----------
    layout : Layout
        The mode's pools and rules.
    config : EngineConfig
        Timing and policy knobs.
    n_nodes : int
        Distinct node ids in the workload.
    n_pods : int
        Distinct pod ids in the workload.
    n_node_adds : int
        Node-add events (refused past int32, :func:`check_int32_fit`).
    max_live : int, optional
        Most pods alive at once (:func:`workload_bounds`); rows of the pods
        table. Defaults to ``n_pods``.
    stale_timers : int
        Most retry timers that can outlive their pod (:func:`workload_bounds`).

    Returns
    -------
    State
        Fresh state. Memory is one bit per node CIDR and per usable pod
        address of every node CIDR that can be live at once, a row per pod
        alive at once, and 6 bytes per pod id (its row and, in multi-pool, its pool).

    Notes
    -----
    Only the seed differs between the runs of a sweep's replicates (and
    often between its points): the tables of a (layout, knobs, workload size)
    are built once per process as a template, and each run gets copies of its
    arrays (all-zero ones as fresh zeros) with the seed written in. Building
    them table by table cost a sixth of a small sweep point (issue #10).
    States larger than :data:`TEMPLATE_MAX_BYTES` are built directly (their
    run dwarfs the set-up, and a template would double their memory).
    """
    seedless = tuple(value for name, value in vars(config).items() if name != "seed")
    key = (layout, seedless, n_nodes, n_pods, n_node_adds, max_live, stale_timers)
    template = _TEMPLATES.get(key)
    if template is None:
        state = _new_state(layout, config, n_nodes, n_pods, n_node_adds, max_live, stale_timers)
        size = state_nbytes(state)
        if size <= TEMPLATE_MAX_BYTES:
            # per array: a read-only copy to copy from, or None where np.zeros gives the same
            template = {name: (_read_only_copy(a) if a.any() else None, a.shape, a.dtype)
                        for name, a in named_arrays(state.core).items()}  # a family's own tables: its prepare step
            with _TEMPLATE_LOCK:
                while _TEMPLATE_BYTES and sum(_TEMPLATE_BYTES.values()) + size > TEMPLATE_BUDGET_BYTES:
                    oldest = next(iter(_TEMPLATE_BYTES))
                    del _TEMPLATE_BYTES[oldest], _TEMPLATES[oldest]
                _TEMPLATES[key] = template
                _TEMPLATE_BYTES[key] = size
        return state
    core = core_tables(**{name: _template_copy(a, shape, dtype) for name, (a, shape, dtype) in template.items()})
    core.icfg[T.I_SEED] = config.seed  # the only tables the seed reaches (see _new_state)
    core.cnt[T.K_RNG] = seed_state(config.seed)
    return _family_state_around(layout, core)


def _family_state_around(layout: Layout, core: CoreTables) -> State:
    """The state of the layout's family around ``core``; its own tables (``None`` here) are its prepare step's."""
    cls = state_class(layout.policy)
    return cls(core, *[None] * (len(cls._fields) - 1))


def _template_copy(a: np.ndarray | None, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A fresh writable array from a template entry: zeros for None, line-aligned when it holds rows."""
    if a is None:
        return np.zeros(shape, dtype)
    if a.ndim == 2 and a.dtype == ROW_DTYPE:  # pods, nodes: keep each row in one cache line
        out = _line_aligned(shape, dtype)
        out[...] = a
        return out
    return a.copy()


def _read_only_copy(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def _new_state(layout: Layout, config: EngineConfig, n_nodes: int, n_pods: int, n_node_adds: int,
               max_live: int | None, stale_timers: int) -> State:
    """:func:`build_state` from scratch, table by table."""
    n_pools = len(layout.pool_names)
    tables = _set_tables(layout, config.max_pods, n_nodes)
    per_node, chunk_off, ipw_off, ips_off = tables.per_node, tables.chunk_off, tables.ipw_off, tables.ips_off
    sets, pools, chunk_stack = tables.sets.copy(), tables.pools.copy(), tables.chunk_stack.copy()
    set_words, set_summary = tables.set_words.copy(), tables.set_summary.copy()
    n_slots = max(chunk_off, 1)
    rows = max(1, n_pods if max_live is None else max_live)
    check_int32_fit(n_nodes, n_pods, rows, n_slots, n_node_adds, int(sets[:, T.S_SLOT_MAX].max(initial=0)),
                    rows + stale_timers + TIMER_ROOM)
    slots = np.zeros((n_slots, T.L_NCOL), dtype=np.int64)
    slot_stack = np.arange(n_slots - 1, -1, -1, dtype=np.int64)
    nodes = _line_aligned((max(n_nodes, 1), T.N_NCOL), ROW_DTYPE)
    nodes[:] = _NODE_ROW  # one broadcast write rather than a zero fill and a pass per -1 column
    nodes[:, T.N_MAX_PODS] = config.max_pods  # cloud node groups set their own (modes/cloud_pool.py init_cloud)
    node_slots = np.full((max(n_nodes, 1), max(1, int(per_node.sum()))), -1, dtype=np.int64)
    pods = _line_aligned((rows, T.D_NCOL), ROW_DTYPE)
    pods[:] = _POD_ROW
    pod_pool = np.full((max(n_pods, 1) if layout.policy == T.POLICY_MULTI_POOL else 1, 2), layout.default_pool, dtype=np.int16)
    # the heap and node rings start small and grow (engine/timer_room.py); the retry ring never needs more
    # than a timer per live pod and per retry outliving its pod (`stale_timers`), and a run whose pods wait
    # fills it to nearly that: sized at the bound, it never grows (growing it in the loop cost 18-23 %)
    ring_cap = rows + stale_timers + TIMER_ROOM
    heap_cap = node_ring_cap = start_capacity(n_nodes)
    size = 1
    while size < max(n_nodes, 1):
        size <<= 1
    # spread and pack keep one bucket per key (pods, or maxPods - pods): keys 0..maxPods
    keys = config.max_pods + 1 if config.scheduler != T.SCHED_RANDOM else 1
    bucket_nw, bucket_ns = bm_sizes(max(n_nodes, 1))
    cfg, icfg = _settings(layout, config)
    cnt = np.zeros(T.K_NCOL, dtype=np.int64)
    cnt[T.K_SLOT_TOP] = n_slots
    cnt[T.K_ROW_TOP] = rows
    cnt[T.K_ROW_FREE] = -1  # no row freed yet: rows are handed out from 0 up (K_ROW_FRESH)
    cnt[T.K_RNG] = seed_state(config.seed)
    cnt[T.K_SCHED_MIN] = keys
    pool_carvable = tables.pool_carvable.copy()
    for family in range(2):
        cnt[T.K_FAMILY_BASE + T.FAMILY_STRIDE * family + T.F_CARVABLE] = tables.family_carvable[family]
    core = core_tables(
        sets=sets,
        set_words=set_words,
        set_summary=set_summary,
        pools=pools,
        chunk_stack=chunk_stack,
        ip_words=np.zeros(max(ipw_off, 1), dtype=np.uint64),
        ip_summary=np.zeros(max(ips_off, 1), dtype=np.uint64),
        slots=slots,
        slot_stack=slot_stack,
        nodes=nodes,
        node_slots=node_slots,
        pods=pods,
        pod_since=np.zeros(rows, dtype=np.float64),
        # read by multi-pool alone (modes/multi_pool.py); the other families write one shared entry
        pod_failed_at=np.zeros(rows if layout.policy == T.POLICY_MULTI_POOL else 1, dtype=np.float64),
        pod_row=np.full(max(n_pods, 1), T.POD_ROW_UNSEEN, dtype=np.int32),
        pod_pool=pod_pool,
        np_inuse=np.zeros((max(n_nodes, 1), n_pools, 2), dtype=np.int64),
        np_pending=np.zeros((max(n_nodes, 1), n_pools, 2), dtype=np.int64),
        np_requested=np.zeros((max(n_nodes, 1), n_pools, 2), dtype=np.int64),
        pool_free=np.zeros((n_pools, 2), dtype=np.int64),
        pool_carvable=pool_carvable,
        retry_t=np.zeros(ring_cap, dtype=np.float64),
        retry_row=np.zeros(ring_cap, dtype=np.int32),
        retry_seq=np.zeros(ring_cap, dtype=np.int64),
        node_ring_t=np.zeros((3, node_ring_cap), dtype=np.float64),
        node_ring_i=np.zeros((3, node_ring_cap, 3), dtype=np.int64),
        node_ring_pos=np.zeros((3, 2), dtype=np.int64),
        heap_t=np.zeros(heap_cap, dtype=np.float64),
        next_timer=np.full(1, np.inf),
        heap_i=np.zeros((heap_cap, T.H_NCOL), dtype=np.int64),
        tree_cnt=np.zeros(2 * size, dtype=np.int64),
        # every bit set: every bucket empty (pad bits included, so the summary is all ones too)
        bucket_words=np.full(keys * bucket_nw, np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64),
        bucket_summary=np.full(keys * bucket_ns, np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64),
        bucket_count=np.zeros(keys, dtype=np.int64),
        cfg=cfg,
        icfg=icfg,
        cnt=cnt,
        quiet=np.zeros(3 + max(n_nodes, 1), dtype=np.float64),  # all zero: every node loud, skipping on
    )
    set_limits(core)
    return _family_state_around(layout, core)


def _settings(layout: Layout, config: EngineConfig) -> tuple[np.ndarray, np.ndarray]:
    """The state's settings: ``cfg`` (float64, seconds) and ``icfg`` (int64, codes, counts and flags)."""
    cfg = np.zeros(T.C_NCOL, dtype=np.float64)
    cfg[T.C_OPERATOR_DELAY] = config.operator_delay_s
    cfg[T.C_UPDATE_RATE] = config.update_rate_s
    cfg[T.C_REFRESH] = config.refresh_s
    cfg[T.C_RETRY] = config.pod_retry_s
    cfg[T.C_TIMEOUT] = config.pod_timeout_s
    cfg[T.C_CARVE_RETRY] = config.carve_retry_s
    cfg[T.C_PENDING_TTL] = config.pending_ttl_s
    icfg = np.zeros(T.I_NCOL, dtype=np.int64)
    icfg[T.I_POLICY] = layout.policy
    for family in layout.families:
        icfg[T.I_FAMILY + family] = 1
    icfg[T.I_HEALTH] = config.health_ip
    icfg[T.I_SCHEDULER] = config.scheduler
    icfg[T.I_MAX_PODS] = config.max_pods
    icfg[T.I_REVERT_PARTIAL] = layout.revert_partial
    icfg[T.I_DEFAULT_POOL] = layout.default_pool
    icfg[T.I_SEED] = config.seed
    icfg[T.I_ADDRESS_FILTER] = config.address_filter
    icfg[T.I_RELEASED_CIDRS] = config.released_cidrs
    return cfg, icfg


def workload_bounds(workload, retry_s: float) -> tuple[int, int]:
    """Most pods alive at once, and most pod deletes within one retry interval.

    Parameters
    ----------
    workload : ipam_core.workloads.Workload
    retry_s : float
        Pod retry interval: a pod deleted while its retry timer is armed
        leaves that timer in the heap for at most this long.

    Returns
    -------
    tuple of int
        ``(max_live, stale_timers)``; both upper bounds (pods that fail or
        leave with their node free their row earlier).
    """
    max_live, stale_timers, _ = scan_workload(workload, retry_s)
    return max_live, stale_timers


def scan_workload(workload, retry_s: float) -> tuple[int, int, int]:
    """:func:`workload_bounds` and :func:`count_node_adds` in one compiled pass over the events.

    Parameters
    ----------
    workload : ipam_core.workloads.Workload
    retry_s : float
        Pod retry interval.

    Returns
    -------
    tuple of int
        ``(max_live, stale_timers, node_adds)``.
    """
    max_live, stale_timers, node_adds = _scan_bounds(
        np.ascontiguousarray(workload.time, dtype=np.float64), np.ascontiguousarray(workload.op, dtype=np.int8),
        float(retry_s),
    )
    return int(max_live), int(stale_timers), int(node_adds)


@kjit
def _scan_bounds(time, op, retry_s):
    """One pass over the events: (most pods alive at once, most deletes within ``retry_s``, node adds).

    The most pods alive is the largest running sum of +1 per add and -1 per
    delete (0 for no events); the delete window counts, for each delete, the
    deletes at or before its time plus ``retry_s`` that are not before it.
    ``time`` is ascending, so both pointers only move forward.
    """
    n = op.size
    live = 0
    max_live = 0 if n == 0 else -(1 << 62)
    node_adds = 0
    deletes_seen = 0  # deletes before event i
    ahead = 0  # events with time <= the current delete's time + retry_s
    deletes_ahead = 0  # deletes among them
    stale = 0
    for i in range(n):
        kind = op[i]
        if kind == OP_POD_ADD:
            live += 1
        elif kind == OP_POD_DEL:
            live -= 1
            limit = time[i] + retry_s
            while ahead < n and time[ahead] <= limit:
                if op[ahead] == OP_POD_DEL:
                    deletes_ahead += 1
                ahead += 1
            stale = max(stale, deletes_ahead - deletes_seen)
            deletes_seen += 1
        elif kind == OP_NODE_ADD:
            node_adds += 1
        max_live = max(max_live, live)
    return max_live, stale, node_adds


def count_node_adds(op: np.ndarray) -> int:
    """Number of node-add events in a workload's ``op`` column."""
    return int(np.count_nonzero(op == OP_NODE_ADD))


def named_arrays(tables) -> dict[str, np.ndarray]:
    """Every array of a state (or of any namedtuple of tables) by name, nested tables flattened.

    Parameters
    ----------
    tables : State or namedtuple

    Returns
    -------
    dict of str to numpy.ndarray
        The core tables under their own names (they are unique), a family's nested tables as
        ``"table.field"`` (calico's ``cal``); fields not filled yet (``None``) left out.
    """
    out = {}
    for name, value in zip(tables._fields, tables):
        if isinstance(value, tuple):
            inner = named_arrays(value)
            core_group = isinstance(value, (CoreTables, *_GROUPS))
            out.update(inner if core_group else {f"{name}.{k}": a for k, a in inner.items()})
        elif value is not None:
            out[name] = value
    return out


def state_nbytes(state: State) -> int:
    """Bytes held by the state's arrays, a family's own tables included (the memory figure recorded in bench/)."""
    if state is None:
        return 0
    if isinstance(state, tuple):
        return int(sum([state_nbytes(a) for a in state]))
    return int(state.nbytes)
