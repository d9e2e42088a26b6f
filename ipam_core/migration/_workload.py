"""Workload side of the migration engine: Deployments and Pods, placement, addresses, removal.

Everything here works on whole arrays of pods at once: a Deployment controller pass
(:meth:`WorkloadMixin._reconcile`) over every Deployment that changed, one compiled
placement call for every unscheduled pod, one allocator call per node for the pods waiting
for an address. Python loops run over groups and nodes, never over pods.

Deployment controller model (kubernetes ``pkg/controller/deployment/rolling.go``, simplified):
a rollout bumps the template generation; old-generation pods that are not ready go first,
ready old pods go while at least ``replicas - maxUnavailable`` pods stay ready, and new pods
are created while the total stays within ``replicas + maxSurge``. A deleted pod is replaced
by one of the current generation. Among pods of one kind the newest goes first.
"""

from __future__ import annotations

import numpy as np

from ipam_core.migration._place import place_pods, tree_size
from ipam_core.migration.cluster import AGENT_READY, GONE, LIVE, PENDING, STARTING, Group
from ipam_core.migration.objects import PodTemplate


def distinct(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of an integer array by a sort (cheaper than numpy's hashing for the small arrays here)."""
    if values.shape[0] < 2:
        return values.copy()
    ordered = np.sort(values)
    keep = np.empty(ordered.shape[0], dtype=np.bool_)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def merge_ids(parts: list[np.ndarray]) -> np.ndarray:
    """The distinct ids of sorted, duplicate-free id arrays, ascending."""
    if not parts:
        return np.zeros(0, dtype=np.int64)
    if len(parts) == 1:
        return parts[0]
    return distinct(np.concatenate(parts))


def _rank_take(ids: np.ndarray, pos: np.ndarray, keys: list[np.ndarray], quota: np.ndarray) -> np.ndarray:
    """Per group ``pos``, the first ``quota[pos]`` ids in order of ``keys`` (last key sorts first)."""
    if ids.shape[0] == 0:
        return ids
    order = np.lexsort((*keys, pos))
    ids, pos = ids[order], pos[order]
    first = np.searchsorted(pos, pos, side="left")
    rank = np.arange(pos.shape[0]) - first
    return ids[rank < quota[pos]]


class WorkloadMixin:
    """Groups (Deployments, bare Pods) and their pods; used by :class:`~ipam_core.migration.engine.MigrationEngine`."""

    # ---------------------------------------------------------------- groups
    def _group_arrays_grow(self) -> None:
        g = len(self.groups)
        if g > self.g_rep.shape[0]:
            cap = max(g, 2 * self.g_rep.shape[0])
            for name in ("g_rep", "g_surge", "g_unav", "g_gen", "g_pin", "g_live", "g_short"):
                old = getattr(self, name)
                new = np.zeros(cap, dtype=old.dtype)
                new[: old.shape[0]] = old
                setattr(self, name, new)
        self.pods.reserve_heads(len(self.nodes), g)

    def _sync_group(self, gid: int) -> None:
        self.counts_changed = True
        grp = self.groups[gid]
        self.g_rep[gid] = 0 if grp.deleted else grp.replicas
        self.g_surge[gid] = grp.surge()
        self.g_unav[gid] = grp.unavailable()
        self.g_gen[gid] = grp.gen
        self.g_pin[gid] = grp.pin
        self._shortfall(np.array([gid], dtype=np.int64))
        self.dirty_groups.add(gid)

    def _shortfall(self, gids: np.ndarray) -> None:
        """Refresh the unavailable-pod count of groups whose replicas or running pods changed."""
        if gids.shape[0] == 1:  # the common case, without numpy's per-call cost
            g = int(gids[0])
            short = max(int(self.g_rep[g]) - int(self.g_live[g]), 0)
            self.n_unavail += short - int(self.g_short[g])
            self.g_short[g] = short
            return
        short = np.clip(self.g_rep[gids] - self.g_live[gids], 0, None)
        self.n_unavail += int(short.sum() - self.g_short[gids].sum())
        self.g_short[gids] = short

    def _went_live(self, ids: np.ndarray) -> None:
        """Pods that just started running: counted now, their flags computed by the next mask update."""
        p = self.pods
        p.state[ids] = LIVE
        p.dis[ids] = False
        p.stale[ids] = False
        self.n_live += int(ids.shape[0])
        groups = p.group[ids]
        np.add.at(self.g_live, groups, 1)
        self._shortfall(distinct(groups).astype(np.int64))
        self.new_live.append(ids)

    def _left_live(self, ids: np.ndarray) -> None:
        """Running pods that are leaving: take them out of the counts."""
        p = self.pods
        self.n_live -= int(ids.shape[0])
        self.n_dis -= int(np.count_nonzero(p.dis[ids]))
        self.n_stale -= int(np.count_nonzero(p.stale[ids]))
        groups = p.group[ids]
        np.subtract.at(self.g_live, groups, 1)
        self._shortfall(distinct(groups).astype(np.int64))

    def _add_groups(self, templates: list[PodTemplate]) -> None:
        """Create many new groups at once, unpinned (a generated steady state): as ``_upsert_group`` each would."""
        self._flags.clear()
        first = len(self.groups)
        gids = range(first, first + len(templates))
        new = [Group(t, t.replicas if t.kind == "Deployment" else 1, -1, hash_key=f"{self.seed}/{gid}")
               for gid, t in zip(gids, templates)]
        self.groups.extend(new)
        self.group_ids.update((t.key, gid) for gid, t in zip(gids, templates))
        if len(self.group_ids) != len(self.groups):
            raise ValueError("_add_groups: a template's group already exists")
        self._group_arrays_grow()
        self._anti_dirty = True
        self.counts_changed = True
        rolling = {}  # (maxSurge, maxUnavailable) per distinct spec, as Group.surge/unavailable give them
        for grp in new:
            spec = (grp.template.max_surge, grp.template.max_unavailable, grp.replicas, grp.bare)
            if spec not in rolling:
                rolling[spec] = (grp.surge(), grp.unavailable())
        ids = np.arange(first, len(self.groups), dtype=np.int64)
        self.g_rep[ids] = [0 if grp.deleted else grp.replicas for grp in new]
        surge_unav = np.array([rolling[(g.template.max_surge, g.template.max_unavailable, g.replicas, g.bare)]
                               for g in new], dtype=np.int64).reshape(-1, 2)
        self.g_surge[ids], self.g_unav[ids] = surge_unav[:, 0], surge_unav[:, 1]
        self.g_gen[ids] = 0
        self.g_pin[ids] = -1
        self._shortfall(ids)
        self.dirty_groups.update(ids.tolist())

    def _upsert_group(self, template: PodTemplate, pin: int) -> tuple[int, str]:
        """Create or update the group of ``template``; returns (group id, what happened)."""
        key = template.key
        self._flags.clear()  # the group's kind and labels may change
        gid = self.group_ids.get(key)
        if gid is None:
            gid = len(self.groups)
            grp = Group(template, template.replicas if template.kind == "Deployment" else 1, pin,
                        hash_key=f"{self.seed}/{gid}")
            self.groups.append(grp)
            self.group_ids[key] = gid
            self._group_arrays_grow()
            self._anti_dirty = True
            self._sync_group(gid)
            return gid, "created"
        grp = self.groups[gid]
        changed_template = (grp.template.labels != template.labels or grp.template.annotations != template.annotations
                            or grp.pin != pin or grp.template.anti_affinity != template.anti_affinity)
        was_deleted = grp.deleted
        grp.deleted = False
        grp.template = template
        grp.pin = pin
        what = "unchanged"
        if template.kind == "Pod":
            alive = self._alive_of_group(gid)
            if grp.replicas == 0 or was_deleted or alive == 0:
                grp.replicas = 1
                what = "created"
        else:
            if grp.replicas != template.replicas:
                what = f"scaled to {template.replicas}"
            grp.replicas = template.replicas
            if changed_template and not was_deleted:
                grp.gen += 1
                what = "configured (rollout)"
            elif was_deleted:
                what = "created"
        if changed_template:
            self._anti_dirty = True
        self._sync_group(gid)
        return gid, what

    def _group_flags(self, attr: str) -> np.ndarray:
        """A boolean per group (``bare``, ``dns``), for indexing with the pods' group column (cached)."""
        flags = self._flags.get(attr)
        if flags is None:
            flags = self._flags[attr] = np.array([getattr(g, attr) for g in self.groups] or [False], dtype=bool)
        return flags

    def _alive_of_group(self, gid: int) -> int:
        return int(self.pods.of_groups([gid]).shape[0])

    def _anti_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """Required anti-affinity as CSR lists of groups, both directions (kube-scheduler InterPodAffinity)."""
        if not self._anti_dirty:
            return self._anti
        g = len(self.groups)
        pairs: set[tuple[int, int]] = set()
        with_rules = [i for i, grp in enumerate(self.groups) if grp.template.anti_affinity]
        for i in with_rules:
            gi = self.groups[i]
            for j, gj in enumerate(self.groups):
                if gj.template.namespace != gi.template.namespace:
                    continue
                if any(sel.matches(gj.template.labels) for sel in gi.template.anti_affinity):
                    pairs.add((i, j))
                    pairs.add((j, i))
        ptr = np.zeros(max(g, self.g_rep.shape[0]) + 1, dtype=np.int64)
        idx = np.zeros(len(pairs), dtype=np.int64)
        if pairs:
            ordered = sorted(pairs)
            src = np.array([a for a, _ in ordered], dtype=np.int64)
            idx[:] = [b for _, b in ordered]
            np.add.at(ptr, src + 1, 1)
            ptr = np.cumsum(ptr)
        self._anti = (ptr, idx)
        self._anti_dirty = False
        return self._anti

    # ---------------------------------------------------------------- the Deployment controller
    def _reconcile(self) -> bool:
        """Create and delete pods so every dirty group converges on its spec; True if anything changed."""
        if not self.dirty_groups:
            return False
        dirty = np.array(sorted(self.dirty_groups), dtype=np.int64)
        self.dirty_groups.clear()
        p = self.pods
        sel = p.of_groups(dirty)
        gpos = np.searchsorted(dirty, p.group[sel])
        is_new = p.gen[sel] == self.g_gen[p.group[sel]]
        live = p.state[sel] == LIVE
        k = dirty.shape[0]

        def count(mask):
            """Pods per dirty group under ``mask``."""
            return np.bincount(gpos[mask], minlength=k).astype(np.int64)

        old_live, old_nl = count(~is_new & live), count(~is_new & ~live)
        new_live, new_nl = count(is_new & live), count(is_new & ~live)
        rep = self.g_rep[dirty].astype(np.int64)
        surge = self.g_surge[dirty].astype(np.int64)
        min_avail = rep - self.g_unav[dirty].astype(np.int64)
        total = old_live + old_nl + new_live + new_nl
        rm_old_nl = np.clip(np.minimum(old_nl, total - min_avail - new_nl), 0, None)
        rm_old_live = np.clip(np.minimum(old_live, old_live + new_live - min_avail), 0, None)
        n_new = new_live + new_nl
        no_old = (old_live + old_nl - rm_old_nl - rm_old_live) == 0
        rm_new = np.where(no_old, np.clip(n_new - rep, 0, None), 0)
        remaining = total - rm_old_nl - rm_old_live - rm_new
        create = np.clip(np.minimum(rep - (n_new - rm_new), rep + surge - remaining), 0, None)

        victims = [
            _rank_take(sel[~is_new & ~live], gpos[~is_new & ~live], [-sel[~is_new & ~live]], rm_old_nl),
            _rank_take(sel[~is_new & live], gpos[~is_new & live], [-sel[~is_new & live]], rm_old_live),
            _rank_take(sel[is_new], gpos[is_new], [-sel[is_new], live[is_new].astype(np.int8)], rm_new),
        ]
        gone = np.concatenate(victims)
        changed = False
        if gone.shape[0]:
            self._remove_pods(gone, replace=False)
            changed = True
        if create.sum():
            groups = np.repeat(dirty, create).astype(np.int32)
            self._create_pods(groups)
            changed = True
        return changed

    def _create_pods(self, groups: np.ndarray) -> np.ndarray:
        gens = self.g_gen[groups].astype(np.int32)
        tags = self.name_rng.integers(0, 27 ** 5, size=groups.shape[0], dtype=np.int64)
        ids = self.pods.add(groups, gens, self.now, tags)
        self.to_place.append(ids)
        if self.now >= self.migration_start:
            self.pod_starts += int(ids.shape[0])
        self.need_place = True
        return ids

    # ---------------------------------------------------------------- placement
    def _place(self) -> bool:
        """Schedule every unscheduled pod (one compiled call); True if any was placed."""
        if not self.need_place:
            return False
        self.need_place = False
        p = self.pods
        todo = merge_ids(self.to_place)
        todo = todo[(p.state[todo] == PENDING) & (p.node[todo] < 0)]  # as a scan of every pod would find them
        self.to_place = [todo]
        if todo.shape[0] == 0:
            return False
        groups = p.group[todo]
        pins = self.g_pin[groups].astype(np.int32)
        ptr, idx = self._anti_csr()
        n = len(self.nodes)
        out = np.empty(todo.shape[0], dtype=np.int32)
        c = p.cols
        rebuild = self.tree_nodes != n
        if rebuild:
            self.tree = np.empty(tree_size(n), dtype=np.int64)
            self.tree_nodes = n
        dirty = np.array(sorted(self.tree_dirty), dtype=np.int64)
        self.tree_dirty.clear()
        placed = place_pods(self.tree, rebuild, dirty, todo, groups.astype(np.int32), pins, self.node_exists[:n],
                            self.node_open[:n], self.node_room[:n], self.node_pods[:n], c["node"], p.node_head,
                            c["nnext"], c["nprev"], p.group_head, c["gnext"], ptr, idx, out)
        if placed == 0:
            return False
        self.to_place = [todo[out < 0]]
        self.to_alloc.append(todo[out >= 0])
        self.need_alloc = True
        return True

    # ---------------------------------------------------------------- addresses
    def _allocate(self) -> bool:
        """Give addresses to placed pods on nodes whose agent is ready; True if any got one."""
        if not self.need_alloc:
            return False
        self.need_alloc = False
        p = self.pods
        waiting = merge_ids(self.to_alloc)
        waiting = waiting[(p.state[waiting] == PENDING) & (p.node[waiting] >= 0)]
        self.to_alloc = [waiting]
        if waiting.shape[0] == 0:
            return False
        on = distinct(p.node[waiting])
        ready = np.array([self.nodes[v].agent.state == AGENT_READY for v in on.tolist()], dtype=bool)
        waiting = waiting[ready[np.searchsorted(on, p.node[waiting])]]
        if waiting.shape[0] == 0:
            return False
        nodes = p.node[waiting]
        order = np.argsort(nodes, kind="stable")
        waiting, nodes = waiting[order], nodes[order]
        starts = np.flatnonzero(np.concatenate(([True], nodes[1:] != nodes[:-1])))
        ends = np.concatenate((starts[1:], [nodes.shape[0]]))
        got_any = False
        new_ids: list[np.ndarray] = []
        for a, b in zip(starts.tolist(), ends.tolist()):
            chunk = waiting[a:b]
            node = self.nodes[int(nodes[a])]
            if node.agent.mode == "multi-pool":
                done = self._allocate_multi_pool(node, chunk)
            else:
                done = self._allocate_single(node, chunk)
            if done.shape[0]:
                new_ids.append(done)
                got_any = True
        if got_any:
            ids = np.concatenate(new_ids)
            self._hold(ids, +1)
            p.state[ids] = STARTING
            p.managed[ids] = True
            ready = self.now + self.timing.pod_restart_s
            p.ready_at[ids] = ready
            self.starting.setdefault(ready, []).append(ids)
            self._schedule_ready(ready)
            self.held_changed = True
            self._check_conflicts_after_alloc()
        return got_any

    def _allocate_single(self, node, chunk: np.ndarray) -> np.ndarray:
        if not node.agent.ranges:
            return chunk[:0]
        r = node.agent.ranges[0]
        offs = r.alloc.allocate_next_many(chunk.shape[0])
        done = chunk[: offs.shape[0]]
        self.pods.addr[done] = r.base + offs
        return done

    def _allocate_multi_pool(self, node, chunk: np.ndarray) -> np.ndarray:
        p = self.pods
        cfg = node.agent.cfg
        groups, inverse = np.unique(p.group[chunk], return_inverse=True)
        per_group = np.array([self._pool_index(self._pod_pool(int(g), cfg)) for g in groups], dtype=np.int16)
        pools = per_group[inverse]
        p.pool[chunk] = pools
        done_parts = []
        for pool_idx in np.unique(pools):
            ids = chunk[pools == pool_idx]
            name = self.pool_names[int(pool_idx)]
            for r in node.agent.ranges:
                if r.pool != name or ids.shape[0] == 0:
                    continue
                offs = r.alloc.allocate_next_many(ids.shape[0])
                if offs.shape[0]:
                    p.addr[ids[: offs.shape[0]]] = r.base + offs
                    done_parts.append(ids[: offs.shape[0]])
                    ids = ids[offs.shape[0]:]
            if ids.shape[0]:
                p.failed_at[ids] = self.now  # a pending request: demand until it succeeds (pendingAllocationTTL)
        self.mp_dirty.add(node.id)  # each allocation or failed request triggers the agent's sync, as in the engine
        return np.concatenate(done_parts) if done_parts else chunk[:0]

    def _pod_pool(self, gid: int, cfg) -> str:
        return self.groups[gid].template.pool or cfg.default_pool

    def _pool_index(self, name: str) -> int:
        idx = self.pool_ids.get(name)
        if idx is None:
            idx = len(self.pool_names)
            self.pool_names.append(name)
            self.pool_ids[name] = idx
        return idx

    def _schedule_ready(self, t: float) -> None:
        if t not in self.ready_times:
            self.ready_times.add(t)
            self._push(t, 0, self._pods_ready, t)

    def _pods_ready(self, t: float) -> None:
        self.ready_times.discard(t)
        p = self.pods
        due = [ids for when in [w for w in self.starting if w <= self.now] for ids in self.starting.pop(when)]
        ready = distinct(np.concatenate(due)) if due else np.zeros(0, dtype=np.int64)
        ready = ready[(p.state[ready] == STARTING) & (p.ready_at[ready] <= self.now)]  # as a scan would find them
        if ready.shape[0] == 0:
            return
        self._went_live(ready)
        self.last_change = self.now
        for gid in distinct(p.group[ready]).tolist():
            if not self.groups[gid].bare:
                self.dirty_groups.add(gid)

    # ---------------------------------------------------------------- removal
    def _remove_pods(self, ids: np.ndarray, *, replace: bool = True) -> None:
        """Delete pods: free their addresses and node slots.

        With ``replace`` a Deployment re-creates its pods and a bare pod is gone for good (nothing
        re-creates it); without, the caller decides (the controller's own scale-down, or a bare pod
        re-created by ``kubectl replace --force``).
        """
        if ids.shape[0] == 0:
            return
        p = self.pods
        ids = ids[p.state[ids] > GONE]
        if ids.shape[0] > 1 and not (ids[1:] > ids[:-1]).all():  # each pod leaves once (its list links and counts)
            _, first = np.unique(ids, return_index=True)
            ids = ids[np.sort(first)]
        if ids.shape[0] == 0:
            return
        # close the disruption interval of pods that leave while disrupted
        open_ = ~np.isnan(p.dis_since[ids])
        if open_.any():
            p.dis_acc[ids[open_]] += self.now - p.dis_since[ids[open_]]
            p.dis_since[ids[open_]] = np.nan
        self._left_live(ids[p.state[ids] == LIVE])
        p.unlink(ids)
        placed = ids[p.node[ids] >= 0]
        if placed.shape[0]:
            np.subtract.at(self.node_pods, p.node[placed], 1)
            self.tree_dirty.update(p.node[placed].tolist())
            addressed = placed[p.addr[placed] >= 0]
            self._hold(addressed, -1)
            if addressed.shape[0]:
                nodes = p.node[addressed]
                for n in distinct(nodes).tolist():
                    node = self.nodes[n]
                    mine = addressed[nodes == n]
                    for r in node.agent.ranges:
                        hit = r.contains(p.addr[mine])
                        if hit.any():
                            r.alloc.release_offsets(p.addr[mine[hit]] - r.base)
                    if node.agent.mode == "multi-pool":
                        self.mp_dirty.add(n)
        p.state[ids] = GONE
        self.gone_rows += int(ids.shape[0])
        self.last_change = self.now
        self.held_changed = True
        self.counts_changed = True
        self.need_place = True
        self.need_alloc = True
        if replace:
            for gid in distinct(p.group[ids]).tolist():
                if self.groups[gid].bare:
                    self.groups[gid].replicas = 0
                    self._sync_group(gid)
                else:
                    self.dirty_groups.add(gid)

    def _node_mask(self, node_ids) -> np.ndarray:
        """Per pod, whether it is on one of ``node_ids`` (a gather, not a search)."""
        flag = np.zeros(len(self.nodes) + 1, dtype=bool)  # the last slot stands for "no node" (-1)
        flag[np.asarray(node_ids, dtype=np.int64)] = True
        flag[-1] = False
        return flag[self.pods.node]

    def _pods_on(self, node_ids: list[int], *, addressed_only: bool = False) -> np.ndarray:
        """Pods on ``node_ids`` that are not gone (with an address only, if asked), ascending."""
        ids = self.pods.on_nodes(node_ids)
        return ids[self.pods.addr[ids] >= 0] if addressed_only else ids


__all__ = ["WorkloadMixin"]
