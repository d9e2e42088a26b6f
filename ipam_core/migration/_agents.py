"""Cilium side of the migration engine: agents, the operator, the DaemonSet rollout, the unmanaged-pod watcher.

Agent model (cilium ``pkg/ipam/ipam.go``, ``hostscope.go``, ``multipool_manager.go``):

* An agent reads the ConfigMap when it (re)starts; its allocator state is in memory only.
* ``kubernetes``: allocates from KCM's ``spec.podCIDRs`` and copies it into
  ``CiliumNode.spec.ipam.podCIDRs`` (the only mode that does, which is why a migrated node
  keeps 10.244.x.0/24).
* ``cluster-pool``: waits until ``spec.ipam.podCIDRs`` has a CIDR, allocates from the first,
  routes all of them.
* ``multi-pool``: asks the operator for ``neededIPCeil(inUse + pending, preAllocation)``
  addresses per pool and allocates from the pool's CIDRs in order; gives unused CIDRs back,
  last first, while the free buffer stays covered ([main] rule).
* On restart it restores the endpoints whose address is inside its new allocation CIDRs;
  the others lose their CiliumEndpoint ("unmanaged") and keep their address, outside every
  CIDR the node routes: disrupted until restarted. The router and health addresses are
  allocated afresh.
* While restarting, existing pods keep working (the datapath stays) but new pods get no
  address; a waiting agent routes nothing.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ipam_core.addr import as_network
from ipam_core.migration._rules import gives_back_unused, still_pending  # the engine's rules (compare/run)
from ipam_core.modes.multi_pool import needed_ip_ceil  # the one neededIPCeil, shared with compare/run
from ipam_core.migration.cluster import (AGENT_READY, AGENT_RESTARTING, AGENT_WAITING, LIVE, PENDING, CiliumNode,
                                         Node, Range, cidr_bounds)
from ipam_core.migration.operator import ClusterPoolOperator, KubernetesOperator, MultiPoolOperator, overlaps
from ipam_core.podiprange import PodIPRange

_network = functools.lru_cache(maxsize=65536)(as_network)  # agents re-create ranges of the same CIDRs


class AgentMixin:
    """Agents, operator and watcher; used by :class:`~ipam_core.migration.engine.MigrationEngine`."""

    # ---------------------------------------------------------------- agents
    def _restart_agent(self, node, delay: float | None = None) -> None:
        a = node.agent
        a.token += 1
        a.state = AGENT_RESTARTING
        a.pending_cfg = self.cfg
        wait = self.timing.agent_restart_s if delay is None else delay
        self._push(self.now + wait, 0, self._agent_ready, node.id, a.token)

    def _agent_ready(self, node_id: int, token: int) -> None:
        node = self.nodes[node_id]
        a = node.agent
        if token != a.token or not node.exists:
            return
        a.cfg = a.pending_cfg
        a.mode = a.cfg.mode
        if node.cn is None:
            node.cn = CiliumNode()
            self._log(f"{node.name}: agent {'re-' if node.history else ''}created its CiliumNode")
        if a.mode == "kubernetes":
            node.cn.pod_cidrs = [node.kcm_cidr] if node.kcm_cidr else []
        self._operator_upsert(node)
        a.state = AGENT_WAITING  # up, not ready until it has a CIDR
        self._configure_agent(node, restart=True)
        self.last_change = self.now

    def _configure_agent(self, node, *, restart: bool) -> None:
        """(Re)build the agent's allocation ranges and routes from its CiliumNode / KCM CIDR."""
        a = node.agent
        was = a.state
        if restart:
            a.ranges = []
            self.pods.failed_at[self._pods_on([node.id])] = np.nan  # the pending map is in memory only
        if a.mode == "multi-pool":
            self._configure_multi_pool(node, restart)
        else:
            cidrs = ([node.kcm_cidr] if node.kcm_cidr else []) if a.mode == "kubernetes" else list(node.cn.pod_cidrs)
            if not cidrs:
                a.state = AGENT_WAITING
                a.waiting_for = ("kube-controller-manager podCIDR" if a.mode == "kubernetes"
                                 else "spec.ipam.podCIDRs from the operator")
                self._set_routes(node, [])
                if was != AGENT_WAITING:
                    self._log(f"{node.name}: agent ({a.mode}) waiting for {a.waiting_for}")
                return
            if not a.ranges or a.ranges[0].cidr != cidrs[0]:
                a.ranges = [self._new_range(node, "", cidrs[0])]
                restored = self._restore(node)
                self._reserve(node, a.ranges[0])
                self._log(f"{node.name}: agent ready ({a.mode}), allocating from {cidrs[0]}"
                          + (f", routes {', '.join(cidrs)}" if len(cidrs) > 1 else "") + restored)
            a.state = AGENT_READY
            self._set_routes(node, cidrs)
        if a.state == AGENT_READY:
            self._became_ready(node)
            self._ds_agent_ready(node.id)

    def _new_range(self, node, pool: str, cidr: str) -> Range:
        # the run's stream, as the engine's; the planner calls batch methods only
        alloc = PodIPRange(_network(cidr), "random", seed=self.address_stream, batch_only=True)
        lo, hi = cidr_bounds(cidr)
        return Range(pool, cidr, lo, hi, int(alloc.base), alloc)

    def _restore(self, node, ranges=None) -> str:
        """Re-reserve the addresses of the node's pods inside the ranges; the rest lose their endpoint."""
        p = self.pods
        ids = self._pods_on([node.id], addressed_only=True)
        if ids.shape[0] == 0:
            return ""
        addr = p.addr[ids]
        inside = np.zeros(ids.shape[0], dtype=bool)
        for r in (ranges if ranges is not None else node.agent.ranges):
            hit = r.contains(addr) & ~inside
            if hit.any():
                offs = np.unique(addr[hit] - r.base)
                r.alloc.allocate_offsets(offs)
                inside |= hit
        p.managed[ids] = inside
        lost = int((~inside).sum())
        if lost:
            if self._group_flags("dns")[p.group[ids[~inside]]].any():
                self._schedule_watcher()
            return f"; {lost} endpoint(s) not restored (addresses outside the new CIDR)"
        return ""

    def _reserve(self, node, r: Range) -> None:
        """Router address, and the health endpoint's when enabled (random slots, as upstream)."""
        count = 2 if node.agent.cfg.health_ip else 1
        held = self._imported_offsets(node, r)  # a dumped cluster's pods come after: keep their addresses free
        if held.shape[0]:
            r.alloc.allocate_offsets(held)
        r.alloc.allocate_next_many(count)
        if held.shape[0]:
            r.alloc.release_offsets(held)

    def _imported_pending(self) -> bool:
        """Whether a dumped cluster's pods are still to be placed (at boot)."""
        return self.imported is not None and not self.pods.n

    def _imported_offsets(self, node, r: Range) -> np.ndarray:
        """Offsets in ``r`` of the addresses the dumped cluster's pods on ``node`` hold (none otherwise)."""
        if not self._imported_pending():
            return np.zeros(0, dtype=np.int64)
        addr = self.imported.addresses_on(node.name)
        return np.unique(addr[r.contains(addr)] - r.base)

    def _set_routes(self, node, cidrs: list[str]) -> None:
        a = node.agent
        if a.routed == cidrs and all(c in node.history for c in cidrs):
            return
        self._routes_changed(node.id, a.routed, cidrs)
        a.routed = list(cidrs)
        added = [c for c in dict.fromkeys(cidrs) if c not in node.history]
        node.history.extend(added)
        self._write_row("route", node.id, a.routed)
        if added:
            self._write_row("hist", node.id, node.history)
        for c in added:
            self._history_added(node.id, node.history.index(c), c)
        self.mask_nodes.add(node.id)
        self.held_changed = True

    # ---------------------------------------------------------------- multi-pool agents
    def _configure_multi_pool(self, node, restart: bool) -> None:
        a = node.agent
        cn = node.cn
        if restart:
            a.ranges = [self._new_range(node, pool, c) for pool, cidrs in cn.allocated.items() for c in cidrs]
            a.reserved = False
            restored = self._restore(node)
            if a.ranges:
                self._log(f"{node.name}: agent (multi-pool) restored pools "
                          + ", ".join(f"{r.pool}={r.cidr}" for r in a.ranges) + restored)
        self._multi_pool_sync(node)

    def _pickup_ranges(self, node) -> bool:
        """Add allocators for CIDRs the operator wrote into ``pools.allocated``; reserve router/health."""
        a = node.agent
        have = {(r.pool, r.cidr) for r in a.ranges}
        grew = False
        for pool, cidrs in node.cn.allocated.items():
            for c in cidrs:
                if (pool, c) not in have:
                    if any(overlaps(c, old) for old in node.history):
                        # pods that failed to restore may still hold addresses in it: check for conflicts
                        self._same_node_risk = True
                    a.ranges.append(self._new_range(node, pool, c))
                    grew = True
        if not a.reserved:
            r = next((r for r in a.ranges if r.pool == a.cfg.default_pool and r.alloc.free > 0), None)
            if r is not None:
                self._reserve(node, r)
                a.reserved = True
                self.mp_dirty.add(node.id)  # an allocation triggers the agent's sync: its demand now holds them
        return grew

    def _multi_pool_sync(self, node) -> bool:
        """Agent side: drop unused CIDRs, write the demand, pick up what the operator gave; True if CIDRs grew."""
        a = node.agent
        cn = node.cn
        if cn is None or a.state == AGENT_RESTARTING:
            return False
        grew = self._pickup_ranges(node)
        default = a.cfg.default_pool
        pools = {default} | {r.pool for r in a.ranges}
        pending_by_pool = self._pending_requests(node)
        pools.update(pending_by_pool)
        requested = {}
        for pool in sorted(pools):
            mine = [r for r in a.ranges if r.pool == pool]
            in_use = sum(r.alloc.used for r in mine)  # the router and health addresses once the agent holds them
            # the engine's demand (modes/multi_pool.py _agent_sync): addresses held plus pending requests
            needed = int(needed_ip_ceil(in_use + pending_by_pool.get(pool, 0), a.cfg.pre_allocation.get(pool, 0)))
            # release unused CIDRs, last first, while the free buffer stays covered ([main])
            free = sum(r.alloc.free for r in mine)
            threshold = max(needed - in_use, 0)
            for r in reversed(mine):
                # at boot a dumped cluster's pods are not placed yet: its CIDRs wait for their demand
                if gives_back_unused(r.alloc.used, r.alloc.free, free, threshold) and not self._imported_pending():
                    a.ranges.remove(r)
                    cn.allocated[pool].remove(r.cidr)
                    free -= r.alloc.free
                    self._log(f"{node.name}: agent gave back {r.cidr} (pool {pool}, unused)")
            if pool in cn.allocated and not cn.allocated[pool]:
                del cn.allocated[pool]
            if needed > 0:
                requested[pool] = needed
        cn.requested = requested
        self._operator_upsert(node)
        grew |= self._pickup_ranges(node)
        was = a.state
        a.state = AGENT_READY if a.reserved else AGENT_WAITING
        if not a.reserved:
            a.waiting_for = f"pool {default!r} to become available"
            if was != AGENT_WAITING:
                self._log(f"{node.name}: agent (multi-pool) waiting for {a.waiting_for}")
        elif was != AGENT_READY:
            self._log(f"{node.name}: agent ready (multi-pool), pools "
                      + ", ".join(f"{r.pool}={r.cidr}" for r in a.ranges))
            grew = True
            self._became_ready(node)
            self._ds_agent_ready(node.id)
        self._set_routes(node, [r.cidr for r in a.ranges] if a.reserved else [])
        return grew

    def _pending_requests(self, node) -> dict[str, int]:
        """Pool -> the agent's pending requests (``pendingAllocationTTL``), counted as the engine counts them.

        A pod counts while it waits for an address its agent failed to give it (and that failure
        still counts, :func:`~ipam_core.modes.multi_pool.still_pending`); pods its agent has not
        tried yet (placed while it restarts or waits) do not. The router's request counts once it
        failed: when the default pool has no pre-allocation the agent does not wait for it
        (``waitForAllPools``) and asks for the router address at once.
        """
        a = node.agent
        p = self.pods
        on_node = self._pods_on([node.id])
        waiting = on_node[(p.state[on_node] == PENDING) & (p.addr[on_node] < 0)]
        since = self.now - p.failed_at[waiting]  # NaN: never failed since the agent started
        timing = self.scenario.timing
        counts = np.broadcast_to(still_pending(since, timing.pod_retry_interval_s, timing.pending_allocation_ttl_s),
                                 since.shape)
        failed = waiting[~np.isnan(since) & counts]
        out: dict[str, int] = {}
        groups, per_group = np.unique(p.group[failed], return_counts=True)
        for gid, count in zip(groups.tolist(), per_group.tolist()):
            name = self._pod_pool(gid, a.cfg)
            out[name] = out.get(name, 0) + count
        default = a.cfg.default_pool
        if not a.reserved and a.cfg.pre_allocation.get(default, 0) == 0:
            out[default] = out.get(default, 0) + 1  # the router's failed request (health is asked for after it)
        return out

    def _process_cn_changes(self) -> bool:
        """React to operator writes: waiting agents start, multi-pool agents pick up CIDRs."""
        if not self.cn_dirty and not self.mp_dirty:
            return False
        todo = sorted(self.cn_dirty | self.mp_dirty)
        self.cn_dirty.clear()
        self.mp_dirty.clear()
        for nid in todo:
            node = self.nodes[nid]
            a = node.agent
            if not node.exists or node.cn is None or a.state == AGENT_RESTARTING:
                continue
            if a.mode == "multi-pool":
                if self._multi_pool_sync(node):
                    self.need_alloc = True
            elif a.state == AGENT_WAITING:
                self._configure_agent(node, restart=False)
        return True

    def _became_ready(self, node) -> None:
        self.need_alloc = True
        if not node.ever_ready:
            node.ever_ready = True
            self._set_open(node)
            self.need_place = True

    # ---------------------------------------------------------------- the agent DaemonSet rollout
    def _start_ds_rollout(self) -> None:
        order = [n.id for n in self.nodes if n.exists]
        limit = self.cfg.max_unavailable(len(order))
        inflight = self.ds["inflight"] if self.ds else set()
        self.ds = {"queue": [n for n in order if n not in inflight], "inflight": set(inflight), "limit": limit,
                   "delay": self.timing.agent_restart_s}
        self._log(f"ds/cilium rolling restart of {len(order)} agent(s), {limit} at a time")
        self._ds_pump()

    def _ds_pump(self) -> None:
        ds = self.ds
        while ds["queue"] and len(ds["inflight"]) < ds["limit"]:
            nid = ds["queue"].pop(0)
            node = self.nodes[nid]
            if not node.exists:
                continue
            ds["inflight"].add(nid)
            self._restart_agent(node, ds["delay"])
        if not ds["queue"] and not ds["inflight"]:
            self.ds = None

    def _ds_agent_ready(self, nid: int) -> None:
        if self.ds and nid in self.ds["inflight"]:
            self.ds["inflight"].discard(nid)
            self._ds_pump()
            if self.ds is None:
                self._log("ds/cilium rollout complete")

    # ---------------------------------------------------------------- the operator
    def _make_operator(self, cfg):
        if cfg.mode == "cluster-pool":
            return ClusterPoolOperator(cfg, self._log, self._notify)
        if cfg.mode == "multi-pool":
            return MultiPoolOperator(cfg, self.pool_objects, self._log, self._notify)
        return KubernetesOperator(cfg, self._log, self._notify)

    def _notify(self, node) -> None:
        self.cn_dirty.add(node.id)
        self.accepted_dirty.add(node.id)

    def _operator_upsert(self, node) -> None:
        if self.operator is not None and node.cn is not None:
            self.operator.upsert(node)
            self.accepted_dirty.add(node.id)

    def _restart_operator(self, step=None) -> None:
        self.op_token += 1
        self.operator = None
        self.op_step = step
        self._push(self.now + self.timing.operator_restart_s, 0, self._operator_ready, self.op_token, self.cfg)

    def _operator_ready(self, token: int, cfg) -> None:
        if token != self.op_token:
            return
        if cfg.mode == "multi-pool":
            for pool in cfg.auto_pools:
                if pool.name not in self.pool_objects:
                    self.pool_objects[pool.name] = pool
                    self._log(f"operator created CiliumPodIPPool {pool.name} ({', '.join(pool.ipv4_cidrs)}, "
                              f"/{pool.ipv4_mask_size})")
            if cfg.migrate_cluster_pool:
                self._check_migration_pool(cfg)
        self.operator = self._make_operator(cfg)
        self.operator_cfg = cfg
        self.op_started = self.now
        self._log(f"operator ready in {self.operator.describe()}")
        self.operator.resync(self.nodes)
        self.accepted_dirty.update(n.id for n in self.nodes)
        self.last_change = self.now
        self._schedule_watcher()

    def _check_migration_pool(self, cfg) -> None:
        """cluster-pool -> multi-pool (PR #46104): the default pool must cover every podCIDR, same mask."""
        pool = self.pool_objects.get(cfg.default_pool)
        step = self.op_step
        fail = (step.error if step is not None else self._config_error)
        if pool is None or not pool.ipv4_cidrs:
            raise fail(f"cluster-pool to multi-pool migration needs the default pool {cfg.default_pool!r}; expected a "
                       "CiliumPodIPPool or ipam.operator.autoCreateCiliumPodIPPools entry of that name")
        for node in self.nodes:
            if not node.exists or node.cn is None or node.cn.allocated:
                continue
            for cidr in node.cn.pod_cidrs:
                inside = any(overlaps(c, cidr) and int(c.split("/")[1]) <= int(cidr.split("/")[1])
                             for c in pool.ipv4_cidrs)
                if not inside or int(cidr.split("/")[1]) != pool.ipv4_mask_size:
                    raise fail(f"default pool {pool.name!r} ({', '.join(pool.ipv4_cidrs)}, /{pool.ipv4_mask_size}) "
                               f"does not cover node {node.name}'s podCIDR {cidr} with the same mask; expected the "
                               "pool to cover every allocated podCIDR with the cluster-pool mask size (Cilium docs)")

    # ---------------------------------------------------------------- the unmanaged-pod watcher
    def _schedule_watcher(self) -> None:
        cfg = self.operator_cfg
        if self.operator is None or cfg is None or not cfg.watcher_restart or cfg.watcher_interval_s <= 0:
            return
        step = cfg.watcher_interval_s
        k = math.floor((self.now - self.op_started) / step + 1e-9) + 1
        t = self.op_started + k * step
        if t not in self.watcher_times:
            self.watcher_times.add(t)
            self._push(t, 0, self._watcher_tick, t, self.op_token)

    def _watcher_tick(self, t: float, token: int) -> None:
        """operator/pkg/unmanagedpods: delete running kube-dns pods that have no CiliumEndpoint."""
        self.watcher_times.discard(t)
        if token != self.op_token or self.operator is None:
            return
        p = self.pods
        victims = np.flatnonzero((p.state == LIVE) & ~p.managed & self._group_flags("dns")[p.group])
        if victims.shape[0] == 0:
            return
        names = [self._pod_label(int(i)) for i in victims[:6]]
        self._log(f"operator restarted unmanaged kube-dns pod(s) {', '.join(names)}"
                  + (" ..." if victims.shape[0] > 6 else ""))
        self._remove_pods(victims)

    # ---------------------------------------------------------------- nodes joining and leaving
    def _add_node(self, name: str, *, boot: bool = False) -> None:
        nid = len(self.nodes)
        node = Node(nid, name)
        self.nodes.append(node)
        self.node_ids[name] = nid
        self._node_arrays_grow()
        self.node_exists[nid] = True
        self.node_open[nid] = False  # NotReady until its agent is up (no CNI config yet)
        self.node_room[nid] = self.max_pods
        dumped = self.imported.node_cidrs.get(name) if boot and self.imported is not None else None
        if self.kcm is not None and dumped is not None and self.cfg.mode == "kubernetes":
            self.kcm.occupy(dumped)  # the node's own podCIDR, as a restarted range_allocator.go occupies it
            node.kcm_cidr = dumped
        elif self.kcm is not None:
            try:
                node.kcm_cidr = self.kcm.allocate_next()
            except Exception:
                node.kcm_cidr = None
                self._log(f"{name}: kube-controller-manager has no CIDR left (CIDRNotAvailable)")
        a = node.agent
        a.cfg = self.cfg
        a.pending_cfg = self.cfg
        a.mode = self.cfg.mode
        if boot:
            node.cn = CiliumNode()
            if a.mode == "kubernetes":
                node.cn.pod_cidrs = [node.kcm_cidr] if node.kcm_cidr else []
            elif dumped is not None:  # cluster-pool: the operator occupies it at its resync
                node.cn.pod_cidrs = [dumped]
            elif a.mode == "multi-pool" and self.imported is not None:
                # spec.ipam.pools.allocated as dumped: the operator occupies each CIDR at its resync
                held = self.imported.node_pools.get(name, {})
                node.cn.allocated = {pool: list(cidrs) for pool, cidrs in held.items()}
            a.state = AGENT_RESTARTING  # configured once the operator has synced
        else:
            self._log(f"{name}: node joined" + (f", kube-controller-manager gave it {node.kcm_cidr}"
                                                 if node.kcm_cidr else ""))
            self._restart_agent(node)
        self.need_place = True

    def _delete_node(self, node) -> None:
        pods = self._pods_on([node.id])
        node.exists = False
        self.node_exists[node.id] = False
        self.node_open[node.id] = False
        self.tree_dirty.add(node.id)
        self._remove_pods(pods)
        if self.kcm is not None and node.kcm_cidr:
            self.kcm.release(node.kcm_cidr)
        if node.cn is not None:
            node.cn = None
            if self.operator is not None:
                self.operator.delete(node.name)
        node.agent.token += 1
        self._set_routes(node, [])
        self.accepted_dirty.add(node.id)
        self._log(f"{node.name}: node deleted ({pods.shape[0]} pod(s) removed)")


__all__ = ["AgentMixin"]
