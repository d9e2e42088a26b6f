"""Apply a migration's steps in time order to a simulated cluster, and record what each does.

:class:`MigrationEngine` keeps one event queue: the scenario's steps, and what they set in
motion (agents and the operator finishing their restarts, pods becoming ready, the
operator's unmanaged-pod watcher, the agent DaemonSet's rolling update). After every event
the cluster settles: the Deployment controller creates and deletes pods, the scheduler
places them, agents hand out addresses. Between events the state is constant, so the
disruption integrals are exact sums of count x duration.

Definitions (what the report counts):

* **disrupted**: a running pod whose address is outside every CIDR its node's agent
  currently routes;
* **stale**: a running pod whose address is outside every CIDR the operator in effect
  accepts for its node (KCM's podCIDR in kubernetes mode, the recorded CIDRs in cluster-pool,
  the pool allocations in multi-pool): it will need a restart sooner or later;
* **conflict**: two pods holding one address;
* **addresses in use**: the union of the CIDRs nodes route and of the older CIDRs their
  pods still hold addresses in: what must stay unique in the network during the migration.

Each step's snapshot is taken just before the next step runs (or at the scenario's end), so
it shows what the step led to once the time until the next step has passed.
"""

from __future__ import annotations

import copy
import functools
import heapq
import itertools
from dataclasses import dataclass, field

import numpy as np
import yaml

from ipam_core.addr import overlaps
from ipam_core.cidrset import CIDRSet
from ipam_core.errors import ConfigError
from ipam_core.migration import actions as A
from ipam_core.migration._agents import AgentMixin
from ipam_core.migration._workload import WorkloadMixin, distinct, merge_ids
from ipam_core.migration.cluster import (AGENT_READY, AGENT_WAITING, GONE, LIVE, PENDING, STARTING, STATE_NAMES,
                                         CidrCover, PodTable, cidr_bounds, ip_text)
from ipam_core.migration.imported import ImportedCluster
from ipam_core.migration.helm import changed_values, resolve, upgrade_problems, upgrade_values
from ipam_core.migration.objects import PodTemplate, PoolObject, SkippedObject
from ipam_core.migration.observe import render_observation
from ipam_core.migration.settings import MigrationSettings, read_settings, scenario_source
from ipam_core.migration.steps import Step, parse_steps
from ipam_core.splitmix import SplitMix64Stream

@dataclass(frozen=True)
class Conflict:
    """Two or more pods holding one address at ``time_s``."""

    time_s: float
    address: str
    pods: tuple[str, ...]


@dataclass
class MigrationResult:
    """What a replay found: per-step snapshots, events, conflicts and the overall figures.

    Attributes
    ----------
    scenario : str
    seed : int
    steps : tuple of Step
    step_rows, node_rows, pod_rows : list of dict
        One row per step; per step and node; per step and pod (see :mod:`ipam_core.migration.report`).
    events : list of (float, int, str)
        Time, index of the step in effect (-1 before the first), what happened.
    observations : dict of int to list of str
        What each read-only step (``kubectl get ...``) would print.
    conflicts : list of Conflict
    summary : dict
        ``disrupted_pod_seconds``, ``peak_disrupted_pods`` (most at once for a non-zero time),
        ``disruption_seconds``,
        ``unavailable_pod_seconds``, ``pod_starts``, ``migration_start_s``, ``settled_at_s``,
        ``addresses_needed``, ``conflicts``, ``stale_at_end``, ``disrupted_at_end``, ``pods_at_end``,
        ``nodes_in_error_at_end``, ``nodes_waiting_at_end``, ``start_mode``, ``end_mode``.
    """

    scenario: str
    seed: int
    steps: tuple[Step, ...]
    step_rows: list[dict] = field(default_factory=list)
    node_rows: list[dict] = field(default_factory=list)
    pod_rows: list[dict] = field(default_factory=list)
    events: list[tuple[float, int, str]] = field(default_factory=list)
    observations: dict[int, list[str]] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def nodes_at(self, step: int) -> dict[str, dict]:
        """Node rows of one step's snapshot, by node name."""
        return {r["node"]: r for r in self.node_rows if r["step"] == step}

    def pods_at(self, step: int) -> list[dict]:
        """Pod rows of one step's snapshot."""
        return [r for r in self.pod_rows if r["step"] == step]


@functools.lru_cache(maxsize=16)
def _helm_values_of(text: str) -> dict:
    doc = yaml.safe_load(text) or {}
    values = doc.get("cilium") if isinstance(doc, dict) else None
    return dict(values or {})


def _helm_values(scenario) -> dict:
    """The scenario's ``cilium:`` mapping as written: the values the release was installed with."""
    return copy.deepcopy(_helm_values_of(scenario.source_text))


class MigrationEngine(WorkloadMixin, AgentMixin):
    """A simulated cluster driven by migration steps.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        Initial cluster (``cilium:`` Helm values, KCM flags, ``maxPods``, pool manifests)
        and, unless ``steps`` is given, its ``steps:``.
    steps : sequence of Step, optional
        Steps to run instead of the scenario's (planning builds its own).
    seed : int, optional
        Instead of the scenario's seed.
    record : bool
        Keep per-step node and pod rows, events and observations (a replay); planning
        turns it off and keeps only the overall figures.
    settings : MigrationSettings, optional
        Instead of the scenario's ``migration:`` mapping.
    steady_state : (int, int), optional
        ``(pods per node, replicas per Deployment)``: start with that many running pods,
        in Deployments spread over the nodes, plus two kube-dns replicas.
    migration_start : float, optional
        When the migration begins (pods started after it are counted); default: the first
        ``helm upgrade`` step, else the first step.
    end : float, optional
        Simulated end, instead of the scenario's ``duration``.
    helm_values : dict, optional
        Cilium Helm values the cluster is installed with, instead of the scenario's
        ``cilium:`` (planning installs a new cluster with the target values).
    pools : dict of str to PoolSpec, optional
        CiliumPodIPPools present from the start, added to the scenario's manifests.
    imported : ImportedCluster, optional
        A dumped cluster (:func:`~ipam_core.migration.imported.imported_cluster`): its nodes
        boot holding exactly their CIDRs (multi-pool: their ``spec.ipam.pools.allocated``) and
        its pods run at t=0 at exactly their addresses, as bare pods pinned to their nodes.

    Raises
    ------
    ConfigError
        The scenario's ``cilium:`` values are not simulated (IPv6, another mode), a step is
        malformed, or (when run) a step names what does not exist or breaks an upstream rule.
    """

    def __init__(self, scenario, steps=None, *, seed: int | None = None, record: bool = True,
                 settings: MigrationSettings | None = None, steady_state: tuple[int, int] | None = None,
                 migration_start: float | None = None, end: float | None = None,
                 helm_values: dict | None = None, pools: dict | None = None,
                 imported: ImportedCluster | None = None):
        self.scenario = scenario
        self.imported = imported
        self.source = scenario_source(scenario)
        self.settings = settings if settings is not None else read_settings(scenario, self.source)
        self.steps: tuple[Step, ...] = tuple(steps) if steps is not None else parse_steps(scenario, self.source)
        self.seed = scenario.seed if seed is None else int(seed)
        self.record = record
        self.end = scenario.duration_s if end is None else float(end)
        self.max_pods = scenario.cluster.max_pods
        self.base_timing = self.settings.timing
        self.timing = self.base_timing
        self.values = _helm_values(scenario) if helm_values is None else dict(helm_values)
        self.start_mode = None
        try:
            self.cfg = resolve(self.values)
        except ConfigError as exc:
            raise self._config_error(f"cilium: {exc}") from None
        self.start_mode = self.cfg.mode
        ipam = scenario.ipam
        kcm_cidr = ipam.kcm_cidr(4)
        self.kcm = CIDRSet(kcm_cidr, ipam.kcm_node_mask_v4) if (ipam.kcm_allocate_node_cidrs and kcm_cidr) else None
        self.pool_objects = {} if ipam.pools_derived else {p.name: p for p in ipam.pools if p.ipv4_cidrs}
        self.pool_objects.update(pools or {})
        if migration_start is None:
            helm = [s.at_s for s in self.steps if isinstance(s.action, A.HelmUpgrade)]
            migration_start = helm[0] if helm else (self.steps[0].at_s if self.steps else 0.0)
        self.migration_start = migration_start

        # cluster state
        self.nodes = []
        self.node_ids: dict[str, int] = {}
        self.groups = []
        self.group_ids: dict[tuple[str, str, str], int] = {}
        self.pods = PodTable()
        self.pool_names: list[str] = []
        self.pool_ids: dict[str, int] = {}
        cap_n, cap_g = 8, 8
        self.node_exists = np.zeros(cap_n, dtype=np.bool_)
        self.node_open = np.zeros(cap_n, dtype=np.bool_)
        self.node_room = np.zeros(cap_n, dtype=np.int64)
        self.node_pods = np.zeros(cap_n, dtype=np.int64)
        self.g_rep = np.zeros(cap_g, dtype=np.int64)
        self.g_surge = np.zeros(cap_g, dtype=np.int64)
        self.g_unav = np.zeros(cap_g, dtype=np.int64)
        self.g_gen = np.zeros(cap_g, dtype=np.int32)
        self.g_pin = np.full(cap_g, -1, dtype=np.int32)
        self.g_live = np.zeros(cap_g, dtype=np.int64)    # running pods per group
        self.g_short = np.zeros(cap_g, dtype=np.int64)   # max(replicas - running, 0) per group
        self.rows = {kind: [np.ones((cap_n, 1), dtype=np.int64), np.zeros((cap_n, 1), dtype=np.int64)]
                     for kind in ("route", "acc", "hist")}
        self.hist_held = np.zeros((cap_n, 1), dtype=np.int64)  # pods holding an address in each history CIDR
        self.cover = CidrCover()  # routed CIDRs and the history CIDRs pods still hold addresses in
        self.hist_nodes: dict[tuple[int, int], set[int]] = {}
        self.hist_cover = CidrCover()  # every CIDR any node ever routed
        self._anti_dirty = True
        self._anti = (np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64))
        self.name_rng = np.random.default_rng([self.seed, 7])
        # pod (router, health) address starts: the engine's one SplitMix64 stream per run, seeded as it seeds
        # a run (engine/rng.py), drawn once per address in the order the agents allocate
        self.address_stream = SplitMix64Stream(self.seed)

        # the control plane
        self.operator = None
        self.operator_cfg = None
        self.op_token = 0
        self.op_started = 0.0
        self.op_step = None
        self.ds = None

        # event loop and dirty flags
        self.now = 0.0
        self.heap: list = []
        self._seq = itertools.count()
        self.dirty_groups: set[int] = set()
        self.cn_dirty: set[int] = set()
        self.mp_dirty: set[int] = set()
        self.accepted_dirty: set[int] = set()
        self.ready_times: set[float] = set()
        self.starting: dict[float, list[np.ndarray]] = {}  # pods given an address, by when they become ready
        self.watcher_times: set[float] = set()
        self.need_place = self.need_alloc = False
        self.tree = np.zeros(0, dtype=np.int64)  # placement tree (see _place.place_pods), rebuilt when nodes join
        self.tree_nodes = -1
        self.tree_dirty: set[int] = set()        # nodes whose open flag or pod count changed since the last placement
        self.to_place: list[np.ndarray] = []  # pods created and not yet placed (may be gone by now)
        self.to_alloc: list[np.ndarray] = []  # pods placed and waiting for an address (may be gone by now)
        self.mask_all = True            # recompute every running pod's flags
        self.mask_nodes: set[int] = set()   # nodes whose routes / accepted CIDRs changed
        self.new_live: list[np.ndarray] = []  # pods that just started running
        self.held_changed = True        # addresses held or CIDRs routed changed
        self.counts_changed = True      # pods left
        self._shared = False            # two nodes ever held overlapping CIDRs
        self._same_node_risk = False
        self.gone_rows = 0

        # measurements
        self.n_dis = self.n_stale = self.n_unavail = self.n_live = 0
        self.dis_total = self.dis_time = self.unavail_total = 0.0
        self.peak_dis = 0
        self.addresses_in_use = self.peak_addresses = 0
        self.pod_starts = 0
        self.last_change = 0.0
        self.conflicts: list[Conflict] = []
        self._conflict_keys: set[tuple[str, tuple[str, ...]]] = set()
        self.conflict_ids = np.zeros(0, dtype=np.int64)
        self._flags: dict[str, np.ndarray] = {}

        # records
        self.result = MigrationResult(scenario.name, self.seed, self.steps)
        self.cur_step: Step | None = None
        self.step_dis_start = 0.0
        self.step_event_start = 0

        self._boot(steady_state)

    # ---------------------------------------------------------------- set-up
    def _config_error(self, message: str) -> ConfigError:
        name = self.source.name or "<scenario>"
        return ConfigError(f"{name}: {message}")

    def _boot(self, steady_state) -> None:
        if self.cfg.mode == "multi-pool":  # installed in multi-pool: the operator created its pools
            for pool in self.cfg.auto_pools:
                self.pool_objects.setdefault(pool.name, pool)
        for name in self.settings.nodes:
            self._add_node(name, boot=True)
        self.operator = self._make_operator(self.cfg)
        self.operator_cfg = self.cfg
        self.operator.resync(self.nodes)
        self.accepted_dirty.update(n.id for n in self.nodes)
        for node in self.nodes:
            node.agent.state = AGENT_WAITING
            self._configure_agent(node, restart=True)
        self._settle()
        if steady_state is not None:
            self._populate(*steady_state)
        if self.imported is not None:
            self._populate_imported()
        self.events_before = len(self.result.events)

    def _populate(self, pods_per_node: int, replicas: int) -> None:
        """A steady state: Deployments of ``replicas`` pods, ``pods_per_node`` per node, all running at t=0."""
        total = len(self.nodes) * pods_per_node
        n_dep = -(-total // replicas)
        templates = [PodTemplate("Deployment", "default", f"app-{i:04d}", {"app": f"app-{i:04d}"},
                                 replicas=min(replicas, total - i * replicas)) for i in range(n_dep)]
        templates.append(PodTemplate("Deployment", "kube-system", "coredns", {"k8s-app": "kube-dns"}, replicas=2))
        self._add_groups(templates)
        self._settle()
        p = self.pods
        starting = np.flatnonzero(p.state == STARTING)
        self._went_live(starting)
        p.ready_at[starting] = 0.0
        self.mask_all = True
        self._update_masks()

    def _populate_imported(self) -> None:
        """The dumped pods, running at t=0 on their nodes at their own addresses (the agents restore them)."""
        templates = [t for t, _ in self.imported.pods]
        first = len(self.groups)
        self._add_groups(templates)
        self.g_pin[first: len(self.groups)] = [self.node_ids[t.node_name] for t in templates]
        self._reconcile()  # the pods of the new groups
        self._place()  # pinned: each on its node
        p = self.pods
        ids = merge_ids(self.to_alloc)
        ids = ids[(p.state[ids] == PENDING) & (p.node[ids] >= 0)]
        self.to_alloc = [merge_ids(self.to_alloc)[:0]]
        addr = np.array([self.imported.address_of(self.groups[g].template) for g in p.group[ids].tolist()],
                        dtype=np.int64)
        nodes = p.node[ids]
        for nid in distinct(nodes).tolist():
            mine = addr[nodes == nid]
            for r in self.nodes[nid].agent.ranges:  # multi-pool: each address in its pool's CIDR
                hit = mine[r.contains(mine)]
                if hit.shape[0]:
                    r.alloc.allocate_offsets(hit - r.base)
        p.addr[ids] = addr
        self._hold(ids, +1)
        p.managed[ids] = True
        p.ready_at[ids] = 0.0
        self._went_live(ids)
        self.held_changed = True
        self.mask_all = True
        if self.cfg.mode == "multi-pool":  # the agents write their demand with the restored endpoints
            groups, inverse = np.unique(p.group[ids], return_inverse=True)
            p.pool[ids] = np.array([self._pool_index(self._pod_pool(int(g), self.cfg)) for g in groups],
                                   dtype=np.int16)[inverse]
            self.mp_dirty.update(n.id for n in self.nodes)
        self._settle()  # pods a full node could not take wait, as they would

    def _node_arrays_grow(self) -> None:
        n = len(self.nodes)
        cap = self.node_exists.shape[0]
        if n <= cap:
            return
        new = max(n, 2 * cap)
        for name in ("node_exists", "node_open", "node_room", "node_pods"):
            old = getattr(self, name)
            grown = np.zeros(new, dtype=old.dtype)
            grown[:cap] = old
            setattr(self, name, grown)
        self.pods.reserve_heads(new, len(self.groups))
        for kind, (lo, hi) in self.rows.items():
            lo2 = np.ones((new, lo.shape[1]), dtype=np.int64)
            hi2 = np.zeros((new, hi.shape[1]), dtype=np.int64)
            lo2[:cap], hi2[:cap] = lo, hi
            self.rows[kind] = [lo2, hi2]
        held = np.zeros((new, self.hist_held.shape[1]), dtype=np.int64)
        held[:cap] = self.hist_held
        self.hist_held = held

    def _write_row(self, kind: str, nid: int, cidrs: list[str]) -> None:
        lo, hi = self.rows[kind]
        if len(cidrs) > lo.shape[1]:
            width = max(len(cidrs), 2 * lo.shape[1])
            lo2 = np.ones((lo.shape[0], width), dtype=np.int64)
            hi2 = np.zeros((hi.shape[0], width), dtype=np.int64)
            lo2[:, : lo.shape[1]], hi2[:, : hi.shape[1]] = lo, hi
            self.rows[kind] = [lo2, hi2]
            lo, hi = lo2, hi2
            if kind == "hist":
                held = np.zeros((hi.shape[0], width), dtype=np.int64)
                held[:, : self.hist_held.shape[1]] = self.hist_held
                self.hist_held = held
        lo[nid, :], hi[nid, :] = 1, 0
        for k, cidr in enumerate(cidrs):
            lo[nid, k], hi[nid, k] = cidr_bounds(cidr)

    # ---------------------------------------------------------------- address space in use
    def _routes_changed(self, nid: int, old: list[str], new: list[str]) -> None:
        """Keep the cover of routed CIDRs in step with a node's routes."""
        for cidr in old:
            self.cover.remove(*cidr_bounds(cidr))
        for cidr in new:
            self.cover.add(*cidr_bounds(cidr))

    def _history_added(self, nid: int, slot: int, cidr: str) -> None:
        """A node routes a CIDR for the first time: count the pods already holding addresses in it."""
        lo, hi = cidr_bounds(cidr)
        self.hist_held[nid, slot] = 0
        if not self._shared:  # another node ever held an overlapping CIDR: pods may share an address
            self._shared = any(self.hist_nodes[key] - {nid} for key in self.hist_cover.overlapping(lo, hi))
        self.hist_cover.add(lo, hi)
        self.hist_nodes.setdefault((lo, hi), set()).add(nid)
        if self.node_pods[nid] == 0:  # a drained or new node: no pod holds an address in it
            return
        ids = self.pods.on_nodes([nid])
        addr = self.pods.addr[ids]
        count = int(np.count_nonzero((addr >= lo) & (addr <= hi)))
        self.hist_held[nid, slot] = count
        if count:
            self.cover.add(lo, hi)

    def _hold(self, ids: np.ndarray, sign: int) -> None:
        """Pods ``ids`` (placed, addressed) take (+1) or give back (-1) their addresses in their nodes' history."""
        if ids.shape[0] == 0:
            return
        p = self.pods
        addr, nodes = p.addr[ids], p.node[ids].astype(np.int64)
        hlo, hhi = self.rows["hist"]
        inside = (addr[:, None] >= hlo[nodes]) & (addr[:, None] <= hhi[nodes])
        rows, slots = np.nonzero(inside)
        if rows.shape[0] == 0:
            return
        width = self.hist_held.shape[1]
        flat_cells = np.sort(nodes[rows] * width + slots)
        starts = np.flatnonzero(np.concatenate(([True], flat_cells[1:] != flat_cells[:-1])))
        cells = flat_cells[starts]
        counts = np.diff(np.append(starts, flat_cells.shape[0]))
        flat = self.hist_held.reshape(-1)
        before = flat[cells].copy()
        flat[cells] = before + sign * counts
        for cell in cells[(before == 0) | (flat[cells] == 0)].tolist():
            nid, slot = divmod(cell, width)
            bounds = (int(hlo[nid, slot]), int(hhi[nid, slot]))
            if flat[cell]:
                self.cover.add(*bounds)
            else:
                self.cover.remove(*bounds)

    def _set_open(self, node) -> None:
        """The scheduler's view of a node: open when Ready and not cordoned."""
        self.node_open[node.id] = node.schedulable
        self.tree_dirty.add(node.id)

    # ---------------------------------------------------------------- events
    def _push(self, t: float, prio: int, fn, *args) -> None:
        heapq.heappush(self.heap, (t, prio, next(self._seq), fn, args))

    def _log(self, text: str) -> None:
        if self.record:
            index = self.cur_step.index if self.cur_step is not None else -1
            self.result.events.append((self.now, index, text))

    def run(self, progress=None) -> MigrationResult:
        """Run every step and what follows until the scenario's end.

        Parameters
        ----------
        progress : callable, optional
            ``progress(fraction)`` after each event, with the share of the simulated time done.

        Returns
        -------
        MigrationResult

        Raises
        ------
        ConfigError
            A step names a node, pod, Deployment or CiliumNode that does not exist at that
            moment, or asks for something upstream refuses (one line naming the step).
        """
        for step in self.steps:
            self._push(step.at_s, 1, self._run_step, step)
        while self.heap and self.heap[0][0] <= self.end:
            t, _, _, fn, args = heapq.heappop(self.heap)
            self._advance(t)
            self.timing = self.base_timing
            fn(*args)
            self._settle()
            if progress is not None:
                progress(min(1.0, t / self.end) if self.end > 0 else 1.0)
        self._advance(self.end)
        self._close_step()
        return self._finish()

    def _advance(self, t: float) -> None:
        dt = t - self.now
        if dt > 0:
            self.dis_total += self.n_dis * dt
            self.unavail_total += self.n_unavail * dt
            if self.n_dis:
                self.dis_time += dt
                self.peak_dis = max(self.peak_dis, self.n_dis)  # for a while, not for an instant
            self.now = t

    def _settle(self) -> None:
        for _ in range(200):
            changed = self._process_cn_changes()
            changed |= self._reconcile()
            changed |= self._place()
            changed |= self._allocate()
            if not changed:
                break
        self._refresh_accepted()
        self._update_masks()
        if self.gone_rows > max(4096, self.pods.n // 2):
            self.pods.compact()
            self.gone_rows = 0
            p = self.pods  # pod ids changed: find the work lists' pods again
            self.to_place = [np.flatnonzero((p.state == PENDING) & (p.node < 0))]
            self.to_alloc = [np.flatnonzero((p.state == PENDING) & (p.node >= 0))]
            starting = np.flatnonzero(p.state == STARTING)
            self.starting = {float(t): [starting[p.ready_at[starting] == t]]
                             for t in np.unique(p.ready_at[starting]).tolist()}

    def _refresh_accepted(self) -> None:
        if not self.accepted_dirty or self.operator is None:
            return
        for nid in self.accepted_dirty:
            node = self.nodes[nid]
            cidrs = self.operator.accepted(node) if node.exists else []
            self._write_row("acc", nid, cidrs)
        self.mask_nodes.update(self.accepted_dirty)
        self.accepted_dirty.clear()

    # ---------------------------------------------------------------- measurements
    def _in_rows(self, kind: str, addr: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        lo, hi = self.rows[kind]
        return ((addr[:, None] >= lo[nodes]) & (addr[:, None] <= hi[nodes])).any(axis=1)

    def _update_masks(self) -> None:
        """Refresh the disrupted / stale flags of the running pods that may have changed, and the counts."""
        p = self.pods
        if self.mask_all:
            ids = np.flatnonzero(p.state == LIVE)
        else:
            parts = list(self.new_live)
            if self.mask_nodes:
                on = p.on_nodes(sorted(self.mask_nodes))
                parts.append(on[p.state[on] == LIVE])
            ids = merge_ids(parts) if parts else None
        if ids is None and not self.counts_changed and not self.held_changed:
            return
        if ids is not None and ids.shape[0]:
            ids = ids[p.state[ids] == LIVE]
            addr, nodes = p.addr[ids], p.node[ids]
            dis = ~self._in_rows("route", addr, nodes)
            stale = ~self._in_rows("acc", addr, nodes)
            self.n_dis += int(np.count_nonzero(dis)) - int(np.count_nonzero(p.dis[ids]))
            self.n_stale += int(np.count_nonzero(stale)) - int(np.count_nonzero(p.stale[ids]))
            p.stale[ids] = stale
            was = ~np.isnan(p.dis_since[ids])
            start, stop = ids[dis & ~was], ids[~dis & was]
            p.dis_since[start] = self.now
            p.dis_acc[stop] += self.now - p.dis_since[stop]
            p.dis_since[stop] = np.nan
            p.dis[ids] = dis
        self.mask_all = False
        self.mask_nodes.clear()
        self.new_live.clear()
        self.counts_changed = False
        if self.held_changed:
            self.held_changed = False
            self.addresses_in_use = self.cover.size
            self.peak_addresses = max(self.peak_addresses, self.addresses_in_use)

    def _flags_of_live(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Running pods and their disrupted / stale flags (for snapshots and observations)."""
        p = self.pods
        live = np.flatnonzero(p.state == LIVE)
        return live, p.dis[live], p.stale[live]

    def _check_conflicts_after_alloc(self) -> None:
        if self._same_node_risk or self._shared:
            self._find_conflicts()

    def _find_conflicts(self) -> np.ndarray:
        """Record pods that hold one address; returns their ids."""
        p = self.pods
        held = np.flatnonzero((p.state > GONE) & (p.addr >= 0))
        if held.shape[0] < 2:
            self.conflict_ids = held[:0]
            return self.conflict_ids
        order = np.argsort(p.addr[held], kind="stable")
        ids = held[order]
        addr = p.addr[ids]
        same = addr[1:] == addr[:-1]
        if not same.any():
            self.conflict_ids = held[:0]
            return self.conflict_ids
        flag = np.zeros(ids.shape[0], dtype=bool)
        flag[1:] |= same
        flag[:-1] |= same
        out = ids[flag]
        for value in np.unique(p.addr[out]).tolist():
            members = out[p.addr[out] == value]
            names = tuple(sorted(self._pod_label(int(i)) for i in members))
            key = (ip_text(value), names)
            if key not in self._conflict_keys:
                self._conflict_keys.add(key)
                self.conflicts.append(Conflict(self.now, ip_text(value), names))
                self._log(f"ADDRESS CONFLICT: {ip_text(value)} held by {', '.join(names)}")
        self.conflict_ids = out
        return out

    def _pod_label(self, i: int) -> str:
        p = self.pods
        grp = self.groups[int(p.group[i])]
        return f"{grp.template.namespace}/{grp.pod_name(int(p.gen[i]), int(p.tag[i]))}"

    # ---------------------------------------------------------------- steps
    def _run_step(self, step: Step) -> None:
        self._close_step()
        self.cur_step = step
        self.step_dis_start = self.dis_total
        self.step_event_start = len(self.result.events)
        self.timing = self.base_timing.with_overrides(step.timing) if step.timing else self.base_timing
        handler = getattr(self, "_do_" + type(step.action).__name__)
        handler(step, step.action)
        if self.record and isinstance(step.action, A.Observe):
            self._settle()
            self.result.observations[step.index] = render_observation(self, step.action)

    def _node(self, step: Step, name: str, *, must_exist: bool = True):
        nid = self.node_ids.get(name)
        if nid is None or (must_exist and not self.nodes[nid].exists):
            names = [n.name for n in self.nodes if n.exists]
            shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            raise step.error(f"no node {name!r} in the cluster; expected one of: {shown or 'none'}")
        return self.nodes[nid]

    def _group(self, step: Step, kind: str, namespace: str, name: str):
        gid = self.group_ids.get((kind, namespace, name))
        if gid is None or self.groups[gid].deleted:
            names = sorted(f"{g.template.namespace}/{g.template.name}" for g in self.groups
                           if g.template.kind == kind and not g.deleted)
            shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            raise step.error(f"no {kind} {namespace}/{name}; expected one of: {shown or 'none'}")
        return gid

    def _do_HelmUpgrade(self, step: Step, action: A.HelmUpgrade) -> None:
        try:
            values = upgrade_values(self.values, action.assignments, action.values, action.reuse_values)
            cfg = resolve(values)
        except ConfigError as exc:
            raise step.error(str(exc)) from None
        running = self.operator_cfg
        holders = self.operator.holders() if self.operator is not None else {}
        errors, warnings = upgrade_problems(running, cfg, holders,
                                            self.operator is not None and self.operator.mode == "cluster-pool")
        if errors and not step.allow_unsupported:
            raise step.error(errors[0] + " (or set allowUnsupported: true on the step)")
        for text in errors:
            self._log(f"UNSUPPORTED (allowed by allowUnsupported): {text}")
        for text in warnings:
            self._log(f"warning: {text}")
        for pool in cfg.auto_pools:
            old = self.pool_objects.get(pool.name)
            if old is not None and old != pool:
                self._log(f"warning: CiliumPodIPPool {pool.name} already exists; autoCreateCiliumPodIPPools never "
                          "updates an existing pool")
        changes = changed_values(self.values, values)
        if not action.reuse_values and (action.assignments or action.values):
            self._log("values reset to the chart defaults before --set (no --reuse-values)")
        for text in changes:
            self._log(f"value {text}")
        self.values, self.cfg = values, cfg
        if changes and cfg.rollout_operator:
            self._log("operator.rollOutPods: the operator restarts with the new values")
            self._restart_operator(step)
        if changes and cfg.rollout_agents:
            self._log("rollOutCiliumPods: the agents restart with the new values")
            self._start_ds_rollout()

    def _do_RolloutRestart(self, step: Step, action: A.RolloutRestart) -> None:
        for name in action.daemonsets:
            if name != A.AGENT_DAEMONSET:
                raise step.error(f"no DaemonSet {action.namespace}/{name}; expected ds/cilium (the Cilium agent, the "
                                 "only DaemonSet simulated)")
            self._start_ds_rollout()
        for name in action.deployments:
            if name == A.OPERATOR_DEPLOYMENT:
                self._log("cilium-operator restarting")
                self._restart_operator(step)
                continue
            gid = self._group(step, "Deployment", action.namespace, name)
            grp = self.groups[gid]
            grp.gen += 1
            self._sync_group(gid)
            self._log(f"deployment {action.namespace}/{name}: rolling restart of {grp.replicas} pod(s)")

    def _do_DeleteCiliumNodes(self, step: Step, action: A.DeleteCiliumNodes) -> None:
        nodes = [n for n in self.nodes if n.exists and n.cn is not None] if action.all else \
            [self._node(step, name) for name in action.names]
        if action.only_in_error:
            nodes = [n for n in nodes if n.cn is not None and n.cn.status_error]
        for node in nodes:
            if node.cn is None:
                if action.ignore_missing:
                    continue
                raise step.error(f"ciliumnode {node.name!r} not found (already deleted); expected an existing "
                                 "CiliumNode")
            node.cn = None
            self._log(f"{node.name}: CiliumNode deleted; the running agent keeps "
                      f"{', '.join(node.agent.routed) or 'no CIDR'} until it restarts")
            if self.operator is not None:
                self.operator.delete(node.name)
            self.accepted_dirty.add(node.id)

    def _do_RestartAgents(self, step: Step, action: A.RestartAgents) -> None:
        nodes = [n for n in self.nodes if n.exists] if action.nodes is None else \
            [self._node(step, name) for name in action.nodes]
        for node in nodes:
            self._restart_agent(node)
        self._log(f"agent pod(s) deleted on {', '.join(n.name for n in nodes)}: restarting")

    def _do_DeletePods(self, step: Step, action: A.DeletePods) -> None:
        p = self.pods
        alive = np.flatnonzero(p.state > GONE)
        ns_ok = np.array([self.groups[g].template.namespace == action.namespace for g in range(len(self.groups))]
                         or [False], dtype=bool)
        alive = alive[ns_ok[p.group[alive]]]
        mask = np.ones(alive.shape[0], dtype=bool)
        if action.node is not None:
            node = self._node(step, action.node)
            mask &= p.node[alive] == node.id
        if action.selector:
            match = np.array([all(self.groups[g].template.labels.get(k) == v for k, v in action.selector.items())
                              for g in range(len(self.groups))] or [False], dtype=bool)
            mask &= match[p.group[alive]]
        victims = alive[mask]
        if action.names:
            names = {self._pod_label(int(i)).split("/", 1)[1]: int(i) for i in victims}
            missing = [n for n in action.names if n not in names]
            if missing and not action.ignore_missing:
                shown = ", ".join(sorted(names)[:8]) + (" ..." if len(names) > 8 else "")
                raise step.error(f"no pod {action.namespace}/{missing[0]}; expected one of: {shown or 'none'}")
            victims = np.array([names[n] for n in action.names if n in names], dtype=np.int64)
        if victims.shape[0] == 0 and not action.ignore_missing and not action.names:
            raise step.error(f"no pod in {action.namespace} matches; expected at least one")
        self._log(f"deleted {victims.shape[0]} pod(s): "
                  + ", ".join(self._pod_label(int(i)) for i in victims[:6]) + (" ..." if victims.shape[0] > 6 else ""))
        self._remove_pods(victims)

    def _do_DeleteDeployments(self, step: Step, action: A.DeleteDeployments) -> None:
        for name in action.names:
            gid = self.group_ids.get(("Deployment", action.namespace, name))
            if (gid is None or self.groups[gid].deleted) and action.ignore_missing:
                continue
            gid = self._group(step, "Deployment", action.namespace, name)
            self.groups[gid].deleted = True
            self._sync_group(gid)
            self._log(f"deployment {action.namespace}/{name} deleted")

    def _do_Apply(self, step: Step, action: A.Apply) -> None:
        for obj in action.objects:
            if isinstance(obj, SkippedObject):
                self._log(f"{obj.kind.lower()}/{obj.name}: no pod addresses, skipped")
            elif isinstance(obj, PoolObject):
                self._apply_pool(step, obj.pool)
            elif obj.host_network:
                self._log(f"{obj.kind.lower()}/{obj.name}: hostNetwork pods use the node's address, skipped")
            else:
                pin = self._node(step, obj.node_name).id if obj.node_name else -1
                _, what = self._upsert_group(obj, pin)
                self._log(f"{obj.kind.lower()} {obj.namespace}/{obj.name} {what}")

    def _apply_pool(self, step: Step, pool) -> None:
        old = self.pool_objects.get(pool.name)
        if old is not None and old.ipv4_mask_size != pool.ipv4_mask_size:
            raise step.error(f"CiliumPodIPPool {pool.name}: cannot change IPv4 mask size in existing pool "
                             f"({old.ipv4_mask_size} -> {pool.ipv4_mask_size}); expected {old.ipv4_mask_size}")
        for other in self.pool_objects.values():
            if other.name == pool.name:
                continue
            for a in pool.ipv4_cidrs:
                for b in other.ipv4_cidrs:
                    if overlaps(a, b):
                        raise step.error(f"CiliumPodIPPool {pool.name}: {a} overlaps pool {other.name}'s {b}; expected "
                                         "pools that do not overlap (multi-pool does not support overlapping pools)")
        if old is not None:
            gone = [c for c in old.ipv4_cidrs if c not in pool.ipv4_cidrs]
            if gone:
                self._log(f"warning: CiliumPodIPPool {pool.name}: {', '.join(gone)} removed; CIDRs nodes still use "
                          "from it stay with them as orphans")
        self.pool_objects[pool.name] = pool
        if self.operator is not None and self.operator.mode == "multi-pool":
            self.operator.upsert_pool(pool)
        self._log(f"ciliumpodippool/{pool.name} {'configured' if old else 'created'} "
                  f"({', '.join(pool.ipv4_cidrs)}, /{pool.ipv4_mask_size})")

    def _do_Scale(self, step: Step, action: A.Scale) -> None:
        gid = self._group(step, "Deployment", action.namespace, action.name)
        self.groups[gid].replicas = action.replicas
        self._sync_group(gid)
        self._log(f"deployment {action.namespace}/{action.name} scaled to {action.replicas}")

    def _do_AddNodes(self, step: Step, action: A.AddNodes) -> None:
        for name in action.names:
            if name in self.node_ids and self.nodes[self.node_ids[name]].exists:
                raise step.error(f"node {name!r} already exists; expected a new node name")
            if name in self.node_ids:
                raise step.error(f"node {name!r} was deleted earlier; expected a new node name (a re-join with the "
                                 "same name is not simulated)")
            self._add_node(name)

    def _do_DeleteNodes(self, step: Step, action: A.DeleteNodes) -> None:
        for name in action.names:
            self._delete_node(self._node(step, name))

    def _do_Drain(self, step: Step, action: A.Drain) -> None:
        nodes = [self._node(step, name) for name in action.nodes]
        p = self.pods
        for node in nodes:
            node.cordoned = True
            self._set_open(node)
        on = self._pods_on([n.id for n in nodes])
        bare = self._group_flags("bare")[p.group[on]]
        if bare.any() and not action.force and not action.skip_bare:
            names = ", ".join(self._pod_label(int(i)) for i in on[bare][:4])
            raise step.error(f"cannot delete Pods that declare no controller (use --force to override): {names}")
        evict = on if action.force else on[~bare]
        self._log(f"drained {', '.join(n.name for n in nodes)}: {evict.shape[0]} pod(s) evicted"
                  + (f", {int(bare.sum())} bare pod(s) left" if action.skip_bare and bare.any() else ""))
        self._remove_pods(evict)

    def _do_Cordon(self, step: Step, action: A.Cordon) -> None:
        for name in action.nodes:
            node = self._node(step, name)
            node.cordoned = True
            self._set_open(node)

    def _do_Uncordon(self, step: Step, action: A.Uncordon) -> None:
        for name in action.nodes:
            node = self._node(step, name)
            node.cordoned = False
            self._set_open(node)
        self.need_place = True

    def _do_RestartStalePods(self, step: Step, action: A.RestartStalePods) -> None:
        nodes = [n for n in self.nodes if n.exists] if action.nodes is None else \
            [self._node(step, name) for name in action.nodes]
        p = self.pods
        ids = self._pods_on([n.id for n in nodes], addressed_only=True)
        if ids.shape[0] == 0:
            return
        nodes_of = p.node[ids]
        on = distinct(nodes_of)
        node_ready = np.array([self.nodes[v].agent.state == AGENT_READY for v in on.tolist()], dtype=bool)
        ready = node_ready[np.searchsorted(on, nodes_of)]
        outside = np.ones(ids.shape[0], dtype=bool)
        for n in distinct(nodes_of).tolist():
            mine = nodes_of == n
            for r in self.nodes[n].agent.ranges:
                outside[mine] &= ~r.contains(p.addr[ids[mine]])
        victims = ids[ready & outside]
        if victims.shape[0] == 0:
            return
        groups = np.unique(p.group[victims])
        bare_group = self._group_flags("bare")[groups]
        for gid in groups[~bare_group].tolist():  # kubectl rollout restart deploy/NAME
            grp = self.groups[gid]
            grp.gen += 1
            self._sync_group(gid)
        bare = victims[self._group_flags("bare")[p.group[victims]]]
        self._log(f"{victims.shape[0]} pod(s) with addresses outside their node's CIDRs: "
                  f"{int((~bare_group).sum())} Deployment(s) restarted, {bare.shape[0]} bare pod(s) re-created")
        self._remove_pods(bare, replace=False)
        for gid in groups[bare_group].tolist():  # kubectl replace --force: the same Pod, created again
            self.dirty_groups.add(gid)

    def _do_Observe(self, step: Step, action: A.Observe) -> None:
        """Read-only: the snapshot and the rendered output are all it produces."""

    # ---------------------------------------------------------------- snapshots
    def _close_step(self) -> None:
        step = self.cur_step
        if step is None or not self.record:
            return
        self._update_masks()
        conflict_ids = self._find_conflicts()
        res = self.result
        events = [text for _, _, text in res.events[self.step_event_start:]]
        in_error = sum(1 for n in self.nodes if n.exists and n.cn is not None and n.cn.status_error)
        p = self.pods
        res.step_rows.append({
            "step": step.index, "at_s": step.at_s, "snapshot_s": self.now, "command": step.command,
            "kind": type(step.action).__name__, "note": step.note,
            "operator_mode": self.operator.mode if self.operator is not None else "restarting",
            "pods_running": self.n_live,
            "pods_pending": int(np.count_nonzero((p.state == PENDING) | (p.state == STARTING))),
            "pods_stale": self.n_stale, "pods_disrupted": self.n_dis,
            "disrupted_pod_s": self.dis_total - self.step_dis_start, "disrupted_pod_s_total": self.dis_total,
            "conflicts": int(np.unique(p.addr[conflict_ids]).shape[0]), "nodes_in_error": in_error,
            "addresses_in_use": self.addresses_in_use, "events": events,
        })
        live, live_dis, live_stale = self._flags_of_live()
        per_node_dis = np.bincount(p.node[live][live_dis], minlength=len(self.nodes))
        per_node_stale = np.bincount(p.node[live][live_stale], minlength=len(self.nodes))
        per_node = np.bincount(p.node[p.state > GONE][p.node[p.state > GONE] >= 0], minlength=len(self.nodes))
        for node in self.nodes:
            if not node.exists:
                continue
            cn = node.cn
            res.node_rows.append({
                "step": step.index, "time_s": self.now, "node": node.name, "kcm_pod_cidrs": [node.kcm_cidr]
                if node.kcm_cidr else [], "ciliumnode_pod_cidrs": list(cn.pod_cidrs) if cn else [],
                "pools_allocated": [f"{pool}={c}" for pool, cidrs in cn.allocated.items() for c in cidrs] if cn else [],
                "ciliumnode_exists": cn is not None, "status_error": cn.status_error if cn else "",
                "routed_cidrs": list(node.agent.routed), "agent_mode": node.agent.mode or "",
                "agent_state": node.agent.state, "cordoned": node.cordoned, "pods": int(per_node[node.id]),
                "pods_stale": int(per_node_stale[node.id]), "pods_disrupted": int(per_node_dis[node.id]),
            })
        alive = np.flatnonzero(p.state > GONE)
        dis = np.zeros(p.n, dtype=bool)
        stale = np.zeros(p.n, dtype=bool)
        dis[live] = live_dis
        stale[live] = live_stale
        conflict = np.zeros(p.n, dtype=bool)
        conflict[conflict_ids] = True
        for i in alive.tolist():
            grp = self.groups[int(p.group[i])]
            open_s = self.now - p.dis_since[i] if not np.isnan(p.dis_since[i]) else 0.0
            res.pod_rows.append({
                "step": step.index, "time_s": self.now, "namespace": grp.template.namespace,
                "pod": grp.pod_name(int(p.gen[i]), int(p.tag[i])),
                "owner": "pod" if grp.bare else f"deployment/{grp.template.name}",
                "node": self.nodes[int(p.node[i])].name if p.node[i] >= 0 else "",
                "address": ip_text(int(p.addr[i])), "state": STATE_NAMES[int(p.state[i])],
                "managed": bool(p.managed[i]), "stale": bool(stale[i]), "disrupted": bool(dis[i]),
                "disrupted_s": float(p.dis_acc[i] + open_s), "conflict": bool(conflict[i]),
            })

    def _finish(self) -> MigrationResult:
        self._update_masks()
        self._find_conflicts()
        res = self.result
        res.conflicts = list(self.conflicts)
        res.summary = {
            "disrupted_pod_seconds": self.dis_total,
            "peak_disrupted_pods": self.peak_dis,
            "disruption_seconds": self.dis_time,
            "unavailable_pod_seconds": self.unavail_total,
            "pod_starts": self.pod_starts,
            "migration_start_s": self.migration_start,
            "settled_at_s": self.last_change,
            "addresses_needed": self.peak_addresses,
            "conflicts": len(self.conflicts),
            "stale_at_end": self.n_stale,
            "disrupted_at_end": self.n_dis,
            "pods_at_end": self.n_live,
            "nodes_in_error_at_end": sum(1 for n in self.nodes if n.exists and n.cn and n.cn.status_error),
            "nodes_waiting_at_end": sum(1 for n in self.nodes if n.exists and n.agent.state == AGENT_WAITING),
            "start_mode": self.start_mode,
            "end_mode": self.cfg.mode,
        }
        return res


def run_migration(scenario, *, seed: int | None = None, progress=None) -> MigrationResult:
    """Replay a scenario's migration steps.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        With ``steps:`` (and optionally ``migration:``).
    seed : int, optional
        Instead of the scenario's.
    progress : callable, optional
        ``progress(fraction)`` as the replay advances through the simulated time.

    Returns
    -------
    MigrationResult

    Raises
    ------
    ConfigError
        A malformed or impossible step (one line naming it).
    """
    return MigrationEngine(scenario, seed=seed).run(progress)


__all__ = ["Conflict", "MigrationEngine", "MigrationResult", "run_migration"]
