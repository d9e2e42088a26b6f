"""The cilium-operator's node-CIDR side, per IPAM mode, acting on CiliumNode objects.

* ``kubernetes``: the operator allocates nothing; a node's CIDR is KCM's ``spec.podCIDRs``.
* ``cluster-pool``: follows cilium ``pkg/ipam/allocator/podcidr/podcidr.go``
  (``NodesPodCIDRManager``). One :class:`~ipam_core.cidrset.CIDRSet` per
  ``clusterPoolIPv4PodCIDRList`` entry, in list order. A CiliumNode that already has
  ``spec.ipam.podCIDRs`` goes through ``reuseIPNets``/``allocateIPNet``: each CIDR must be in
  range of a set (else "allocator not configured for the requested CIDR X"), in a set that
  is not full, and not yet allocated; then it is occupied and the node recorded. On an error
  the status says so, the spec is left untouched, and nothing is recorded, so deleting that
  CiliumNode releases nothing. A CiliumNode without podCIDRs gets the next CIDR (next fit)
  from the first set that is not full (``allocateFirstFreeCIDR``; "allocator full" when none).
  At start (``resync``) nodes with podCIDRs are occupied before any is allocated.
* ``multi-pool``: follows cilium ``pkg/ipam/allocator/multipool`` (``AllocateToNode``):
  occupy every CIDR in ``spec.ipam.pools.allocated``, release those the agent dropped, then
  carve whole ``maskSize`` CIDRs from the first non-full CIDR of the pool until the usable
  addresses cover ``requested``. With ``enable-cluster-pool-to-multi-pool-migration``
  (cilium PR #46104) a CiliumNode that still has cluster-pool ``podCIDRs`` and no pool
  allocation gets them copied into the default pool first, so its pods keep their addresses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping

from ipam_core.addr import overlaps as _overlaps
from ipam_core.cidrset import CIDRSet
from ipam_core.engine.layout import pod_range
from ipam_core.migration._rules import cidrs_to_carve, first_open_set
from ipam_core.migration.cluster import Node, usable_addresses
from ipam_core.scenario.model import PoolSpec

overlaps = functools.lru_cache(maxsize=65536)(_overlaps)  # the same few CIDRs, compared per node and restart

Notify = Callable[[Node], None]
Log = Callable[[str], None]


def first_open(sets: list[CIDRSet]) -> CIDRSet | None:
    """The first set with a free node CIDR: the engine's choice (:func:`~ipam_core.kernels.carve.first_open_set`).

    Parameters
    ----------
    sets : list of CIDRSet
        A pool's sets (or the ``clusterPoolIPv4PodCIDRList`` entries), in list order.

    Returns
    -------
    CIDRSet or None
        None when every set is full.
    """
    index = first_open_set([s.allocated for s in sets], [s.capacity for s in sets], 0, len(sets))
    return None if index < 0 else sets[index]


class KubernetesOperator:
    """``ipam: kubernetes``: no CIDR allocation; a node's accepted CIDR is KCM's."""

    mode = "kubernetes"

    def __init__(self, cfg, log: Log, notify: Notify):
        self.cfg = cfg

    def resync(self, nodes: Iterable[Node]) -> None:
        """Nothing to allocate."""

    def upsert(self, node: Node) -> None:
        """Nothing to allocate."""

    def delete(self, name: str) -> None:
        """Nothing to release."""

    def accepted(self, node: Node) -> list[str]:
        """KCM's podCIDR of the node."""
        return [node.kcm_cidr] if node.kcm_cidr else []

    def holders(self) -> dict[str, list[str]]:
        """No cluster-pool entries."""
        return {}

    def describe(self) -> str:
        """One line for the timeline."""
        return "kubernetes mode (node CIDRs come from kube-controller-manager)"


class ClusterPoolOperator:
    """``ipam: cluster-pool``: one next-fit CIDR set per list entry (``NodesPodCIDRManager``)."""

    mode = "cluster-pool"

    def __init__(self, cfg, log: Log, notify: Notify):
        self.cfg = cfg
        self.log = log
        self.notify = notify
        self.sets = [CIDRSet(c, cfg.cluster_pool_mask) for c in cfg.cluster_pool]
        self.recorded: dict[str, list[str]] = {}

    def describe(self) -> str:
        """One line for the timeline."""
        return (f"cluster-pool mode ({', '.join(self.cfg.cluster_pool)}, /{self.cfg.cluster_pool_mask} per node)")

    def resync(self, nodes: Iterable[Node]) -> None:
        """Start: occupy every existing podCIDR, then allocate for nodes without one (the ``Resync`` gate)."""
        nodes = [n for n in nodes if n.exists and n.cn is not None]
        for node in nodes:
            if node.cn.pod_cidrs:
                self._reuse(node)
        for node in nodes:
            if not node.cn.pod_cidrs:
                self._allocate(node)

    def upsert(self, node: Node) -> None:
        """A CiliumNode was created or its spec changed."""
        cn = node.cn
        held = self.recorded.get(node.name)
        if held is not None:
            if cn.pod_cidrs == held:
                return
            if not cn.pod_cidrs:  # allocateNext returns the node's recorded CIDRs
                cn.pod_cidrs = list(held)
                cn.status_error = ""
                self.notify(node)
                return
            if not all(c in held for c in cn.pod_cidrs):
                cn.status_error = (f"node has CIDRs allocated ({', '.join(held)}) that conflict with requested "
                                   f"CIDRs [{' '.join(cn.pod_cidrs)}]")
                return
        if cn.pod_cidrs:
            self._reuse(node)
        else:
            self._allocate(node)

    def delete(self, name: str) -> None:
        """Release the CIDRs of a deleted CiliumNode, if they were recorded (``releaseIPNets``)."""
        cidrs = self.recorded.pop(name, None)
        if cidrs is None:
            self.log(f"{name}: operator released nothing (the node's CIDRs were never recorded)")
            return
        for cidr in cidrs:
            for s in self.sets:
                if overlaps(s.cluster_cidr, cidr):
                    s.release(cidr)
                    break
        self.log(f"{name}: operator released {', '.join(cidrs)}")

    def accepted(self, node: Node) -> list[str]:
        """The node's recorded CIDRs."""
        return list(self.recorded.get(node.name, ()))

    def holders(self) -> dict[str, list[str]]:
        """List entry -> nodes holding a CIDR from it."""
        out: dict[str, list[str]] = {}
        for name, cidrs in self.recorded.items():
            for cidr in cidrs:
                for entry in self.cfg.cluster_pool:
                    if overlaps(entry, cidr):
                        out.setdefault(entry, []).append(name)
        return out

    def _reuse(self, node: Node) -> None:
        cn = node.cn
        done: list[tuple[CIDRSet, str]] = []
        error = ""
        for cidr in cn.pod_cidrs:
            error = f"allocator not configured for the requested CIDR {cidr}"
            for s in self.sets:
                if not overlaps(s.cluster_cidr, cidr):
                    continue
                if s.is_full:
                    error = f"allocator {s.cluster_cidr} full"
                elif s.is_allocated(cidr):
                    error = f"requested CIDR ({cidr}) is already allocated"
                else:
                    s.occupy(cidr)
                    done.append((s, cidr))
                    error = ""
                break
            if error:
                break
        if error:
            for s, cidr in done:  # revert, as allocateIPNet's revert stack does
                s.release(cidr)
            if cn.status_error != error:
                self.log(f"{node.name}: operator status error: {error} (spec.ipam.podCIDRs "
                         f"{', '.join(cn.pod_cidrs)} left as it is)")
            cn.status_error = error
            return
        self.recorded[node.name] = list(cn.pod_cidrs)
        if cn.status_error:
            self.log(f"{node.name}: operator status error cleared")
        cn.status_error = ""

    def _allocate(self, node: Node) -> None:
        cn = node.cn
        s = first_open(self.sets)
        if s is not None:
            cidr = s.allocate_next()
        else:
            if cn.status_error != "allocator full":
                self.log(f"{node.name}: operator status error: allocator full (every "
                         "clusterPoolIPv4PodCIDRList entry is exhausted)")
            cn.status_error = "allocator full"
            return
        cn.pod_cidrs = [cidr]
        cn.status_error = ""
        self.recorded[node.name] = [cidr]
        self.log(f"{node.name}: operator allocated {cidr}")
        self.notify(node)


class MultiPoolOperator:
    """``ipam: multi-pool``: per-pool CIDR sets, allocation on the agents' demand."""

    mode = "multi-pool"

    def __init__(self, cfg, pools: Mapping[str, PoolSpec], log: Log, notify: Notify):
        self.cfg = cfg
        self.log = log
        self.notify = notify
        self.pools: dict[str, list[CIDRSet]] = {}
        self.masks: dict[str, int] = {}
        for name, pool in pools.items():
            self.upsert_pool(pool)
        self.tracked: dict[str, dict[str, list[str]]] = {}

    def describe(self) -> str:
        """One line for the timeline."""
        shown = "; ".join(f"{name}: {', '.join(str(s.cluster_cidr) for s in sets)} /{self.masks[name]}"
                          for name, sets in self.pools.items())
        return f"multi-pool mode (pools {shown or 'none'})"

    def upsert_pool(self, pool: PoolSpec) -> None:
        """Create a pool's sets or append new CIDRs (``UpsertPool``); the mask is immutable."""
        if not pool.ipv4_cidrs:
            return
        sets = self.pools.setdefault(pool.name, [])
        self.masks.setdefault(pool.name, pool.ipv4_mask_size)
        have = {str(s.cluster_cidr) for s in sets}
        for cidr in pool.ipv4_cidrs:
            if cidr not in have:
                sets.append(CIDRSet(cidr, pool.ipv4_mask_size))

    def resync(self, nodes: Iterable[Node]) -> None:
        """Start: process every CiliumNode."""
        for node in nodes:
            if node.exists and node.cn is not None:
                self.upsert(node)

    def _set_for(self, pool: str, cidr: str) -> CIDRSet | None:
        for s in self.pools.get(pool, ()):
            if overlaps(s.cluster_cidr, cidr) and int(cidr.rsplit("/", 1)[1]) >= s.cluster_cidr.prefixlen:
                return s
        return None

    def upsert(self, node: Node) -> None:
        """``AllocateToNode``: occupy, release what the agent dropped, allocate for its demand."""
        cn = node.cn
        pool_default = self.cfg.default_pool
        if self.cfg.migrate_cluster_pool and cn.pod_cidrs and not cn.allocated:
            cn.allocated = {pool_default: list(cn.pod_cidrs)}
            self.log(f"{node.name}: operator migrated spec.ipam.podCIDRs {', '.join(cn.pod_cidrs)} to pool "
                     f"{pool_default!r} (cluster-pool to multi-pool migration)")
            cn.pod_cidrs = []
        tracked = self.tracked.setdefault(node.name, {})
        errors = []
        for pool, cidrs in cn.allocated.items():
            mine = tracked.setdefault(pool, [])
            for cidr in cidrs:
                if cidr in mine:
                    continue
                s = self._set_for(pool, cidr)
                if s is None:
                    errors.append(f"CIDR {cidr} of pool {pool} is not in the pool (orphaned, kept)")
                elif s.is_allocated(cidr):
                    errors.append(f"requested CIDR ({cidr}) is already allocated")
                else:
                    s.occupy(cidr)
                    mine.append(cidr)
        for pool, mine in tracked.items():
            listed = cn.allocated.get(pool, [])
            for cidr in [c for c in mine if c not in listed]:
                s = self._set_for(pool, cidr)
                if s is not None:
                    s.release(cidr)
                mine.remove(cidr)
                self.log(f"{node.name}: operator released {cidr} (pool {pool})")
        changed = False
        for pool, needed in sorted(cn.requested.items()):
            have = sum(usable_addresses(c) for c in cn.allocated.get(pool, ()))
            sets = self.pools.get(pool)
            per_cidr = pod_range(sets[0].cluster_cidr, self.masks[pool])[0] if sets else 0
            for _ in range(cidrs_to_carve(have, needed, per_cidr)):  # the engine's count
                if not sets:
                    errors.append(f"pool {pool} does not exist")
                    break
                free = first_open(sets)
                if free is None:
                    errors.append(f"pool {pool} empty")
                    break
                cidr = free.allocate_next()
                cn.allocated.setdefault(pool, []).append(cidr)
                tracked.setdefault(pool, []).append(cidr)
                changed = True
                self.log(f"{node.name}: operator allocated {cidr} from pool {pool}")
        error = "; ".join(errors)
        if error and error != cn.status_error:
            self.log(f"{node.name}: operator status error: {error}")
        cn.status_error = error
        if changed:
            self.notify(node)

    def delete(self, name: str) -> None:
        """Release every CIDR of a deleted CiliumNode (``ReleaseNode``)."""
        tracked = self.tracked.pop(name, {})
        released = []
        for pool, cidrs in tracked.items():
            for cidr in cidrs:
                s = self._set_for(pool, cidr)
                if s is not None:
                    s.release(cidr)
                released.append(cidr)
        if released:
            self.log(f"{name}: operator released {', '.join(released)}")

    def accepted(self, node: Node) -> list[str]:
        """The node's CIDRs the operator holds for it."""
        return [c for cidrs in self.tracked.get(node.name, {}).values() for c in cidrs]

    def holders(self) -> dict[str, list[str]]:
        """No cluster-pool entries."""
        return {}


__all__ = ["ClusterPoolOperator", "KubernetesOperator", "MultiPoolOperator", "first_open"]
