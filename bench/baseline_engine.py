"""The engine's semantics in plain Python: the benchmark baseline and the test oracle.

This is :mod:`ipam_core.engine.core` written the way a careful engineer would
write it without Numba: objects per node CIDR, node and pod, a Python ``set``
of node-CIDR indices per pool CIDR (``cidr_set.go``), a ``set`` of taken
offsets per node CIDR (cilium ``ipallocator`` over ``allocator/bitmap.go``), a
``heapq`` of timers ordered by ``(time, sequence)``, and a lazily cleaned
``heapq`` of ``(key, node id)`` for the spread and pack schedulers. Every
rule, timer and counter of the compiled loop is mirrored function by
function (the names say which ``core.py`` function each method mirrors), so
:func:`run_baseline` returns the same trace columns as
``ipam_core.pipeline.run.run_mode(...).trace``.

What it shares with the engine: the mode's :class:`~ipam_core.engine.layout.Layout`
(pools and CIDR lists, plain data built by ``ipam_core.modes``), the timing
knobs (``ipam_core.pipeline.run.engine_config``) and the scenario's pool
selection (``Scenario.select_pool``). Everything from there on is written
here from the semantics, not imported.

Randomness: pod-address scan starts and the ``random`` scheduler draw from
``random.Random(seed)``, not from the engine's SplitMix64 stream, so which *offset* a pod
gets differs from the engine. No count depends on the offset (the agent picks
a node CIDR by its fill, never by offsets), so with the ``spread`` and
``pack`` schedulers every trace column matches the engine exactly; with
``random`` scheduling only the totals that do not depend on placement do.

The cloud modes (``eni``, ``azure``, ``crd``, ``aws-vpc-cni``) keep this pod,
node and timer loop and hand every address question to
:class:`baseline_cloud.CloudIPAM` (``bench/baseline_cloud.py``), an oracle of
the cloud rules written from upstream rather than from ``modes/cloud_pool.py``.
Their offsets do change counts (/28 prefixes need aligned free blocks, the
operator releases from the interface with the most free addresses), so in
those modes the loop draws from the engine's SplitMix64 stream
(:class:`baseline_cloud.SplitMix64`) at the same points as the engine, and
every column matches with any scheduler.

Used by ``tests/test_engine_vs_baseline.py``, ``tests/test_cloud_vs_baseline.py``
and ``bench/test_bench_engine.py``.
"""

from __future__ import annotations

import heapq
import ipaddress
import math
import random

import numpy as np

from baseline_cloud import CloudIPAM, SplitMix64
from ipam_core.modes.cloud_initial import cloud_start_arrays
from ipam_core.pipeline.run import TRACE_COUNTERS, TRACE_FLOATS, engine_config  # the same columns as the engine
from ipam_core.engine.sampling import CALICO_COUNTERS
from ipam_core.engine.tables import (
    POLICY_CLOUD,
    POLICY_MULTI_POOL,
    RELEASED_CIDRS_FREED,
    RELEASED_CIDRS_RECLAIMED,
)
from ipam_core.errors import IPAMBenchError
from ipam_core.modes import get_mode
from ipam_core.engine.cloud_net import cloud_net
from ipam_core.workloads.events import (
    OP_AGENT_RESTART,
    OP_NODE_ADD,
    OP_NODE_CORDON,
    OP_NODE_DEL,
    OP_NODE_DRAIN,
    OP_POD_ADD,
    OP_POD_DEL,
    Workload,
)

# 0 in the modes modelled here
CLOUD_COUNTERS = TRACE_COUNTERS[TRACE_COUNTERS.index("warm_addrs_per_node") : TRACE_COUNTERS.index("pods_evicted")]
# Calico's own rows (modes/calico_hooks.py): 0 in every mode this baseline runs (calico's oracle: baseline_calico.py)

ONE_PER_FAMILY = "one-per-family"  # kubernetes, cluster-pool, gke
MULTI_POOL = "multi-pool"
CLOUD = "cloud"  # eni, azure, crd, aws-vpc-cni: bench/baseline_cloud.py

SPREAD, PACK, RANDOM = "spread", "pack", "random"

# pod states
NONE, PENDING, RUNNING, DELETED, FAILED = range(5)
# node-CIDR states
LIVE, RELEASED, FREED, STRANDED = range(4)
# timers
CARVE, AGENT_SYNC, REFRESH, POD_RETRY = range(4)
# operator status
STATUS_OK, STATUS_POOL_EXHAUSTED, STATUS_POOL_EMPTY, STATUS_NO_POOL = range(4)

IPV6_WINDOW_BITS = 16  # cilium ipallocator RangeSize caps IPv6 node ranges at 2**16 slots


def usable_addresses(network: ipaddress.IPv4Network | ipaddress.IPv6Network, node_mask: int) -> tuple[int, int]:
    """Usable pod addresses of one node CIDR and the addresses it counts as (``RangeSize``)."""
    host_bits = network.max_prefixlen - node_mask
    if host_bits >= network.max_prefixlen - 1:
        size = 0  # upstream's guard against huge ranges (IPv4 /0-/1, IPv6 /0-/1)
    elif network.version == 6:
        size = 2 ** min(host_bits, IPV6_WINDOW_BITS)
    else:
        size = 2**host_bits
    return (size - 2 if size > 2 else size), size


class CidrSet:
    """One pool CIDR cut into node CIDRs, next-fit (kubernetes ``cidrset/cidr_set.go``)."""

    __slots__ = ("family", "pool", "capacity", "cursor", "taken", "usable", "addrs")

    def __init__(self, family: int, pool: int, cidr: str, node_mask: int):
        network = ipaddress.ip_network(cidr)
        self.family = family
        self.pool = pool
        self.capacity = 2 ** (node_mask - network.prefixlen)
        self.cursor = 0
        self.taken: set[int] = set()
        self.usable, self.addrs = usable_addresses(network, node_mask)

    def full(self) -> bool:
        return len(self.taken) >= self.capacity

    def allocate_next(self) -> int:
        """Take the first free index from the cursor on, wrapping (caller checked ``full``)."""
        index = self.cursor
        while index in self.taken:
            index += 1
            if index == self.capacity:
                index = 0
        self.taken.add(index)
        self.cursor = index + 1 if index + 1 < self.capacity else 0
        return index

    def release(self, index: int) -> None:
        self.taken.discard(index)

    def largest_free_order(self) -> int:
        """Largest ``k`` with a free block of ``2**k`` indices aligned to ``2**k``; -1 if none."""
        order = self.capacity.bit_length() - 1  # capacity is a power of two
        while order >= 0:
            if len({i >> order for i in self.taken}) < self.capacity >> order:
                return order
            order -= 1
        return -1


class NodeCidr:
    """A node CIDR held by a node: its pod-address allocator (a set of taken offsets)."""

    __slots__ = ("cidr_set", "index", "node", "state", "size", "taken", "reserved", "family", "pool")

    def __init__(self, cidr_set: CidrSet, index: int, node: int):
        self.cidr_set = cidr_set
        self.index = index
        self.node = node
        self.state = LIVE
        self.size = cidr_set.usable  # usable addresses ("max")
        self.taken: set[int] = set()
        self.reserved = 0  # router and health addresses
        self.family = cidr_set.family
        self.pool = cidr_set.pool

    @property
    def used(self) -> int:
        return len(self.taken)


class Node:
    __slots__ = ("id", "present", "ready", "gen", "pods", "pending", "cidrs", "sync_armed", "status",
                 "in_use", "pending_demand", "requested", "cordoned", "max_pods")

    def __init__(self, node_id: int):
        self.id = node_id
        self.max_pods: int | None = None  # its node group's instance type, when groups differ
        self.present = False
        self.ready = False
        self.gen = 0
        self.pods: dict[int, None] = {}  # bound pods (running + pending), insertion ordered
        self.pending = 0
        self.cidrs: list[NodeCidr] = []  # the agent's CIDR order
        self.sync_armed = False
        self.status = STATUS_OK
        self.in_use: dict[tuple[int, int], int] = {}  # (pool, family) -> addresses in use
        self.pending_demand: dict[tuple[int, int], int] = {}  # (pool, family) -> pending requests
        self.requested: dict[tuple[int, int], int] = {}  # (pool, family) -> what the agent asked for
        self.cordoned = False


class Pod:
    __slots__ = ("state", "node", "pin", "cidr", "offset", "pool", "pending_family", "since", "evicted")

    def __init__(self, pools: tuple[int, int], pin: int = -1):
        self.state = NONE
        self.node = -1
        self.pin = pin  # the node the workload placed it on, -1 = the scheduler places it
        self.cidr: list[NodeCidr | None] = [None, None]
        self.offset = [-1, -1]
        self.pool = list(pools)
        self.pending_family = -1
        self.since = 0.0
        self.evicted = False  # evicted by a drain: its replacement's failure is counted


class Scheduler:
    """Spread (fewest pods), pack (fewest free slots under maxPods) or random, lowest id on ties.

    Spread and pack keep a heap of ``(key, node id)`` pushed on every change
    and cleaned lazily: an entry is valid while it equals the node's key now.
    """

    def __init__(self, policy: str, max_pods: int, nodes: list[Node], rng: random.Random):
        self.policy = policy
        self.max_pods = max_pods
        self.nodes = nodes
        self.rng = rng
        self.heap: list[tuple[int, int]] = []

    def key(self, node: Node) -> int | None:
        max_pods = self.max_pods if node.max_pods is None else node.max_pods
        if not (node.present and node.ready and not node.cordoned and len(node.pods) < max_pods):
            return None
        if self.policy == SPREAD:
            return len(node.pods)
        if self.policy == PACK:
            return max_pods - len(node.pods)
        return 0

    def update(self, node: Node) -> None:
        if self.policy == RANDOM:
            return
        key = self.key(node)
        if key is not None:
            heapq.heappush(self.heap, (key, node.id))
            if len(self.heap) > 4 * len(self.nodes) + 64:  # drop stale entries now and then
                self.heap = [(k, n.id) for n in self.nodes if (k := self.key(n)) is not None]
                heapq.heapify(self.heap)

    def pick(self) -> int:
        if self.policy == RANDOM:
            eligible = [n.id for n in self.nodes if self.key(n) is not None]
            return self.rng.choice(eligible) if eligible else -1
        heap = self.heap
        while heap:
            key, node_id = heap[0]
            if self.key(self.nodes[node_id]) == key:
                return node_id
            heapq.heappop(heap)
        return -1


class Counters:
    """Cluster-wide counters; per-family ones are two-element lists."""

    def __init__(self):
        self.running = self.pending = self.failed = self.failed_free = 0
        self.nodes = self.ready = 0
        self.carved = [0, 0]
        self.reserved = [0, 0]
        self.used = [0, 0]
        self.node_cidrs = [0, 0]
        self.carvable = [0, 0]
        self.carves = [0, 0]
        self.releases = [0, 0]
        self.ip_allocs = [0, 0]
        self.ip_fails = [0, 0]
        self.free = [0, 0]
        self.evicted = self.evicted_failed = 0
        self.started = 0  # pods that got their addresses
        self.start_wait_ms = 0  # whole milliseconds they waited pending first


def needed_ip_ceil(n: int, pre_alloc: int) -> int:
    """``neededIPCeil`` (cilium ``pkg/ipam/multipool_manager.go``)."""
    if pre_alloc == 0:
        return n
    if n % pre_alloc == 0:
        return (n // pre_alloc + 1) * pre_alloc
    return (n // pre_alloc + 2) * pre_alloc


class BaselineEngine:
    """One workload through one mode, one Python call per event and timer.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
    workload : Workload
    mode : str
    """

    def __init__(self, scenario, workload: Workload, mode: str):
        module = get_mode(mode)
        layout = module.layout(scenario)
        cfg = engine_config(scenario)
        self.policy = {POLICY_MULTI_POOL: MULTI_POOL, POLICY_CLOUD: CLOUD}.get(layout.policy, ONE_PER_FAMILY)
        self.families = tuple(layout.families)
        self.enabled = [f in self.families for f in (0, 1)]
        self.health = bool(cfg.health_ip)
        self.operator_delay = cfg.operator_delay_s
        self.update_rate = cfg.update_rate_s
        self.refresh = cfg.refresh_s
        self.retry = cfg.pod_retry_s
        self.released_cidrs = cfg.released_cidrs
        self.timeout = cfg.pod_timeout_s
        self.carve_retry = cfg.carve_retry_s
        # gke and the cloud modes set the kubelet's max pods themselves
        self.max_pods = int(module.max_pods(scenario)) if hasattr(module, "max_pods") else cfg.max_pods
        self.revert_partial = bool(layout.revert_partial)
        self.default_pool = layout.default_pool
        self.pre_alloc = list(layout.pre_allocation)
        self.n_pools = len(layout.pool_names)
        # pool CIDRs per (pool, family), in list order
        self.sets: dict[tuple[int, int], list[CidrSet]] = {}
        self.pool_addrs = [0, 0]
        self.pool_free: dict[tuple[int, int], int] = {}
        self.pool_carvable: dict[tuple[int, int], int] = {}
        self.c = Counters()
        for spec in layout.sets if self.policy != CLOUD else ():
            cset = CidrSet(spec.family, spec.pool, str(spec.network), spec.node_mask)
            self.sets.setdefault((spec.pool, spec.family), []).append(cset)
            self.pool_addrs[spec.family] += cset.capacity * cset.addrs
            self.pool_carvable[(spec.pool, spec.family)] = self.pool_carvable.get((spec.pool, spec.family), 0) \
                + cset.capacity
            self.c.carvable[spec.family] += cset.capacity
        # the cloud oracle draws from the engine's stream (see bench/baseline_cloud.py)
        self.rng = SplitMix64(cfg.seed) if self.policy == CLOUD else random.Random(cfg.seed)
        self.nodes = [Node(i) for i in range(len(workload.node_names))]
        scheduler = {0: SPREAD, 1: PACK, 2: RANDOM}[cfg.scheduler]
        self.scheduler = Scheduler(scheduler, self.max_pods, self.nodes, self.rng)
        self.pods: dict[int, Pod] = {}
        self.timers: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        # events as plain lists
        self.ev_time = workload.time.tolist()
        self.ev_op = workload.op.tolist()
        self.ev_node = workload.node.tolist()
        self.ev_pod = workload.pod.tolist()
        self.ev_ns = workload.namespace.tolist()
        self.ev_ann = workload.pool.tolist()
        self.next_event = 0
        self.scenario = scenario
        self.workload = workload
        self.pool_ids = {name: i for i, name in enumerate(layout.pool_names)}
        self._pool_cache: dict[tuple[int, int], tuple[int, int]] = {}
        self.cloud = None
        if self.policy == CLOUD:
            net = cloud_net(module, scenario)
            self.scheduler.max_pods = self.max_pods = net.merged().max_pods
            self.cloud = CloudIPAM(net.merged(), [str(spec.network) for spec in layout.sets], self,
                                   self.operator_delay, self.update_rate, net)
            if len(net.configs) > 1:  # node groups of several instance types: each node its own max pods
                for node, group in zip(self.nodes, self.cloud.group_of):
                    node.max_pods = net.configs[group].max_pods

        initial = scenario.initial_state
        if self.cloud is not None and initial is not None and initial.cloud is not None and initial.mode == mode \
                and initial.starts:
            self.start_from_state(*cloud_start_arrays(initial, workload))

    def start_from_state(self, nodes, ifaces, units, pod_rows, agents) -> None:
        """A cloud cluster's dumped state at t=0 (``ipam_core/modes/cloud_initial.py``), written again.

        The nodes join, their dumped interfaces and units replace the eth0 each joined with, each
        pod runs at its dumped address, then each agent whose pool holds the ready minimum takes
        its dumped router and health addresses (free ones for the rest) and writes its status.
        Rows come from :func:`~ipam_core.modes.cloud_initial.cloud_start_arrays` (configuration).
        """
        for node_id in nodes.tolist():
            self.node_add(node_id, 0.0)
        self.cloud.restore(nodes.tolist(), ifaces.tolist(), units.tolist(), 0.0)
        for pod_id, node_id, subnet, offset, *_ in pod_rows.tolist():
            pod = self.pods[pod_id] = Pod((self.default_pool, self.default_pool), node_id)
            unit, bit = self.cloud.unit_of(self.cloud.nodes[node_id], subnet, offset)
            unit.used.add(bit)
            self.bind(pod_id, pod, self.nodes[node_id])
            pod.cidr[0], pod.offset[0] = unit, bit
            pod.state = RUNNING
            self.c.running += 1
            self.c.used[0] += 1
            self.c.ip_allocs[0] += 1
        for node_id, agent in zip(nodes.tolist(), agents.tolist()):
            node, n = self.nodes[node_id], self.cloud.nodes[node_id]
            if not node.ready and self.cloud.pool_ready(n):
                self.cloud.agent_restore(n, [(agent[6 * k], agent[6 * k + 1]) for k in range(2) if agent[6 * k] >= 0])
                self.mark_ready(node_id)
            self.agent_notify(node, 0.0)

    # ------------------------------------------------------------------ pool selection
    def pod_pools(self, namespace: int, annotation: int) -> tuple[int, int]:
        """Pool per family of a pod (``GetIPPoolForPod``), cached per (namespace, annotation)."""
        key = (namespace, annotation)
        pools = self._pool_cache.get(key)
        if pools is None:
            chosen = [self.default_pool, self.default_pool]
            if self.policy == MULTI_POOL:
                ns_name = self.workload.namespaces[namespace]
                ann = {"ipam.cilium.io/ip-pool": self.workload.pool_names[annotation]} if annotation >= 0 else {}
                for family in self.families:
                    try:
                        name = self.scenario.select_pool(4 if family == 0 else 6, ns_name, pod_annotations=ann)
                    except IPAMBenchError:
                        chosen[family] = -1
                        continue
                    chosen[family] = self.pool_ids.get(name, -1)
            pools = self._pool_cache[key] = (chosen[0], chosen[1])
        return pools

    # ------------------------------------------------------------------ timers
    def push(self, t: float, kind: int, a: int, b: int) -> None:
        heapq.heappush(self.timers, (t, self.seq, kind, a, b))
        self.seq += 1

    # ------------------------------------------------------------------ node CIDRs (operator side)
    def carve(self, node: Node, pool: int, family: int) -> NodeCidr | None:
        """``_carve_slot``: one node CIDR from the first non-full pool CIDR."""
        for cset in self.sets.get((pool, family), ()):
            if cset.full():
                continue
            cidr = NodeCidr(cset, cset.allocate_next(), node.id)
            node.cidrs.append(cidr)
            c = self.c
            c.carved[family] += cset.addrs
            c.reserved[family] += cset.addrs - cidr.size
            c.node_cidrs[family] += 1
            c.carvable[family] -= 1
            c.carves[family] += 1
            c.free[family] += cidr.size
            self.pool_free[(pool, family)] = self.pool_free.get((pool, family), 0) + cidr.size
            self.pool_carvable[(pool, family)] -= 1
            return cidr
        return None

    def free_cidr(self, cidr: NodeCidr) -> None:
        """``_free_slot``: give a node CIDR back to its pool CIDR."""
        cset = cidr.cidr_set
        family, pool = cidr.family, cidr.pool
        cset.release(cidr.index)
        c = self.c
        if cidr.state == LIVE:
            free = cidr.size - cidr.used
            c.free[family] -= free
            self.pool_free[(pool, family)] -= free
        c.carved[family] -= cset.addrs
        c.reserved[family] -= cset.addrs - cidr.size + cidr.reserved
        c.node_cidrs[family] -= 1
        c.carvable[family] += 1
        c.releases[family] += 1
        self.pool_carvable[(pool, family)] += 1
        self.nodes[cidr.node].cidrs.remove(cidr)
        cidr.state = FREED

    # ------------------------------------------------------------------ addresses (agent side)
    def take_address(self, cidr: NodeCidr) -> int:
        """``_take_address``: random start, forward scan with wrap (``randomScanStrategy``)."""
        size = cidr.size
        if cidr.used >= size:
            return -1
        taken = cidr.taken
        offset = self.rng.randrange(size)
        while offset in taken:
            offset += 1
            if offset == size:
                offset = 0
        taken.add(offset)
        family, pool = cidr.family, cidr.pool
        self.c.free[family] -= 1
        self.pool_free[(pool, family)] -= 1
        in_use = self.nodes[cidr.node].in_use
        in_use[(pool, family)] = in_use.get((pool, family), 0) + 1
        return offset

    def give_address(self, cidr: NodeCidr, offset: int) -> None:
        cidr.taken.discard(offset)
        family, pool = cidr.family, cidr.pool
        self.c.free[family] += 1
        self.pool_free[(pool, family)] += 1
        self.nodes[cidr.node].in_use[(pool, family)] -= 1

    def find_cidr(self, node: Node, pool: int, family: int) -> NodeCidr | None:
        """``_find_slot``: host scope uses only its first CIDR of the family; multi-pool the first with room."""
        for cidr in node.cidrs:
            if cidr.state != LIVE or cidr.family != family or cidr.pool != pool:
                continue
            if cidr.used < cidr.size:
                return cidr
            if self.policy == ONE_PER_FAMILY:
                return None
        return None

    def take_reserved(self, node: Node, pool: int, family: int) -> bool:
        cidr = self.find_cidr(node, pool, family)
        if cidr is None:
            return False
        self.take_address(cidr)
        cidr.reserved += 1
        self.c.reserved[family] += 1
        return True

    def agent_start(self, node: Node) -> None:
        """Router and health addresses, then the node is ready."""
        pool = self.default_pool
        if pool < 0:
            return
        for family in self.families:
            self.take_reserved(node, pool, family)
            if self.health:
                self.take_reserved(node, pool, family)
        node.ready = True
        self.c.ready += 1
        self.scheduler.update(node)

    def alloc_pod(self, pod: Pod, node: Node) -> int:
        """An address per family, IPv6 first; -1 or the family that failed."""
        if self.cloud is not None:  # one IPv4 address of the node's pool
            found = self.cloud.alloc(node.id)
            if found is None:
                self.c.ip_fails[0] += 1
                return 0
            pod.cidr[0], pod.offset[0] = found
            self.c.used[0] += 1
            self.c.ip_allocs[0] += 1
            return -1
        for family in (1, 0):
            if not self.enabled[family]:
                continue
            pool = pod.pool[family]
            cidr = self.find_cidr(node, pool, family) if pool >= 0 else None
            if cidr is None:
                if family == 0 and pod.cidr[1] is not None:
                    self.give_address(pod.cidr[1], pod.offset[1])
                    pod.cidr[1] = None
                self.c.ip_fails[family] += 1
                if pool < 0:
                    node.status = STATUS_NO_POOL
                return family
            pod.cidr[family] = cidr
            pod.offset[family] = self.take_address(cidr)
        for family in (0, 1):
            if pod.cidr[family] is not None:
                self.c.used[family] += 1
                self.c.ip_allocs[family] += 1
        return -1

    def release_pod_addresses(self, pod: Pod) -> None:
        if self.cloud is not None:
            if pod.cidr[0] is not None:
                self.cloud.release(pod.cidr[0], pod.offset[0])
                pod.cidr[0] = None
                self.c.used[0] -= 1
            return
        for family in (0, 1):
            cidr = pod.cidr[family]
            if cidr is not None:
                self.give_address(cidr, pod.offset[family])
                pod.cidr[family] = None
                self.c.used[family] -= 1

    # ------------------------------------------------------------------ multi-pool agent and operator
    def agent_notify(self, node: Node, now: float) -> None:
        """The agent's allocations changed: multi-pool arms its CiliumNode update, a cloud agent its status."""
        if self.policy == MULTI_POOL:
            self.arm_sync(node, now)
        elif self.cloud is not None:
            self.cloud.agent_changed(node.id, now)

    def mark_ready(self, node_id: int) -> None:
        """A cloud agent started (``CloudIPAM`` took its reserved addresses)."""
        node = self.nodes[node_id]
        node.ready = True
        self.c.ready += 1
        self.scheduler.update(node)

    def arm_sync(self, node: Node, now: float) -> None:
        if not node.sync_armed:
            node.sync_armed = True
            self.push(now + self.update_rate, AGENT_SYNC, node.id, node.gen)

    def agent_sync(self, node: Node, now: float) -> None:
        """Demand per pool and family, give back excess CIDRs last first, ask the operator."""
        node.sync_armed = False
        for pool in range(self.n_pools):
            for family in self.families:
                key = (pool, family)
                in_use = node.in_use.get(key, 0)
                needed = needed_ip_ceil(in_use + node.pending_demand.get(key, 0), self.pre_alloc[pool])
                node.requested[key] = needed
                mine = [x for x in node.cidrs if x.state == LIVE and x.pool == pool and x.family == family]
                total_free = sum(x.size - x.used for x in mine)
                threshold = max(needed - in_use, 0)
                if total_free < threshold and self.released_cidrs == RELEASED_CIDRS_RECLAIMED:
                    for cidr in node.cidrs:  # PR #46674: take released, still advertised CIDRs back
                        if total_free >= threshold:
                            break
                        if cidr.state == STRANDED and cidr.pool == pool and cidr.family == family:
                            total_free += self.unstrand(cidr)
                    mine = [x for x in node.cidrs if x.state == LIVE and x.pool == pool and x.family == family]
                for cidr in reversed(mine):
                    free = cidr.size - cidr.used
                    if cidr.used == 0 and total_free - free >= threshold:
                        cidr.state = RELEASED
                        total_free -= free
                        self.c.free[family] -= free
                        self.pool_free[key] -= free
        self.push(now + self.operator_delay, CARVE, node.id, node.gen)

    def pools_ready(self, node: Node) -> bool:
        """``waitForAllPools``: every pre-allocated pool has a free address per family."""
        for pool in range(self.n_pools):
            if self.pre_alloc[pool] == 0:
                continue
            for family in self.families:
                if self.find_cidr(node, pool, family) is None:
                    return False
        return True

    def operator_multi_pool(self, node: Node) -> None:
        for cidr in [x for x in node.cidrs if x.state == RELEASED]:
            if self.released_cidrs != RELEASED_CIDRS_FREED:
                cidr.state = STRANDED  # the fault model: advertised still, never allocated from
            else:
                self.free_cidr(cidr)
        status = STATUS_OK
        for pool in range(self.n_pools):
            for family in (0, 1):
                needed = node.requested.get((pool, family), 0)
                if needed <= 0:
                    continue
                have = sum(x.size for x in node.cidrs if x.pool == pool and x.family == family)
                while have < needed:
                    cidr = self.carve(node, pool, family)
                    if cidr is None or cidr.size == 0:  # no CIDR left, or CIDRs without usable addresses
                        status = STATUS_POOL_EMPTY
                        break
                    have += cidr.size
        node.status = status
        if not node.ready and self.pools_ready(node):
            self.agent_start(node)

    def operator_one_per_family(self, node: Node, now: float) -> None:
        missing = False
        for family in self.families:
            has = any(x.family == family for x in node.cidrs)
            if not has and self.carve(node, 0, family) is None:
                missing = True
        if missing:
            if self.revert_partial:
                while node.cidrs:
                    self.free_cidr(node.cidrs[0])
            node.status = STATUS_POOL_EXHAUSTED
            self.push(now + self.carve_retry, CARVE, node.id, node.gen)
            return
        node.status = STATUS_OK
        if not node.ready:
            self.agent_start(node)

    # ------------------------------------------------------------------ pods
    def bind(self, pod_id: int, pod: Pod, node: Node) -> None:
        pod.node = node.id
        node.pods[pod_id] = None
        self.scheduler.update(node)

    def unbind(self, pod_id: int, pod: Pod) -> None:
        if pod.node < 0:
            return
        node = self.nodes[pod.node]
        del node.pods[pod_id]
        pod.node = -1
        self.scheduler.update(node)

    def clear_pending_demand(self, pod: Pod) -> None:
        family = pod.pending_family
        if family >= 0:
            pool = pod.pool[family]
            if pod.node >= 0 and pool >= 0:
                self.nodes[pod.node].pending_demand[(pool, family)] -= 1
            pod.pending_family = -1

    def leave_pending(self, pod: Pod) -> None:
        self.clear_pending_demand(pod)
        self.c.pending -= 1
        if pod.node >= 0:
            self.nodes[pod.node].pending -= 1

    def count_start(self, pod: Pod, now: float) -> None:
        """The pod got its addresses: its start latency is the time since it began waiting (0 at once)."""
        self.c.started += 1
        if pod.state == PENDING:
            self.c.start_wait_ms += math.floor((now - pod.since) * 1e3 + 0.5)

    def try_start(self, pod_id: int, pod: Pod, now: float) -> None:
        """The bound pod asks its agent for addresses: running, or (still) pending and retried."""
        node = self.nodes[pod.node]
        failed = self.alloc_pod(pod, node)
        if failed < 0:
            self.count_start(pod, now)
            if pod.state == PENDING:
                self.leave_pending(pod)
            pod.state = RUNNING
            self.c.running += 1
            self.agent_notify(node, now)
            return
        if pod.state != PENDING:
            pod.state = PENDING
            pod.since = now
            self.c.pending += 1
            node.pending += 1
        if pod.pending_family != failed:
            self.clear_pending_demand(pod)
            pool = pod.pool[failed]
            if pool >= 0:
                key = (pool, failed)
                node.pending_demand[key] = node.pending_demand.get(key, 0) + 1
                pod.pending_family = failed
        self.agent_notify(node, now)
        self.push(now + self.retry, POD_RETRY, pod_id, 0)

    def free_elsewhere(self, pod: Pod) -> bool:
        family = pod.pending_family
        if family < 0:
            return False
        pool = pod.pool[family]
        if pool < 0:
            return False
        if self.cloud is not None:
            return self.cloud.free_elsewhere(pod.node)
        if self.pool_carvable.get((pool, family), 0) > 0:
            return True
        node = self.nodes[pod.node]
        here = sum(x.size - x.used for x in node.cidrs if x.state == LIVE and x.pool == pool and x.family == family)
        return self.pool_free.get((pool, family), 0) - here > 0

    def fail(self, pod_id: int, pod: Pod) -> None:
        if self.free_elsewhere(pod):
            self.c.failed_free += 1
        if pod.evicted:
            self.c.evicted_failed += 1
        self.leave_pending(pod)
        self.unbind(pod_id, pod)
        pod.state = FAILED
        self.c.failed += 1

    def placement(self, pod: Pod) -> int:
        """Its pinned node once that is present, else the scheduler's pick; -1 to wait."""
        if pod.pin >= 0:
            return pod.pin if self.nodes[pod.pin].present else -1
        return self.scheduler.pick()

    def pod_add(self, pod_id: int, pinned: int, namespace: int, annotation: int, now: float) -> None:
        if pod_id in self.pods:
            return
        pod = self.pods[pod_id] = Pod(self.pod_pools(namespace, annotation), pinned)
        self.schedule(pod_id, pod, now)

    def schedule(self, pod_id: int, pod: Pod, now: float) -> None:
        """A new (or replacement) pod: bound to its node and started, or left waiting unscheduled."""
        node_id = self.placement(pod)
        if node_id < 0:
            # unschedulable for now, or its node is not there yet: waits in the scheduling queue
            pod.state = PENDING
            pod.since = now
            self.c.pending += 1
            self.push(now + self.retry, POD_RETRY, pod_id, 0)
            return
        self.bind(pod_id, pod, self.nodes[node_id])
        self.try_start(pod_id, pod, now)

    def pod_retry(self, pod_id: int, now: float) -> None:
        pod = self.pods[pod_id]
        if pod.state != PENDING:
            return
        if pod.node < 0:
            node_id = self.placement(pod)
            if node_id < 0:
                self.push(now + self.retry, POD_RETRY, pod_id, 0)
                return
            self.c.pending -= 1
            pod.state = NONE
            self.bind(pod_id, pod, self.nodes[node_id])
            self.try_start(pod_id, pod, now)
            return
        node = self.nodes[pod.node]
        if now - pod.since >= self.timeout:
            # one last attempt, then give up
            if self.alloc_pod(pod, node) < 0:
                self.count_start(pod, now)
                self.leave_pending(pod)
                pod.state = RUNNING
                self.c.running += 1
            else:
                self.fail(pod_id, pod)
            self.agent_notify(node, now)
            return
        self.try_start(pod_id, pod, now)

    def pod_delete(self, pod_id: int, now: float) -> None:
        pod = self.pods.get(pod_id)
        if pod is None:
            return
        node_id = pod.node
        if pod.state == RUNNING:
            self.release_pod_addresses(pod)
            self.c.running -= 1
        elif pod.state == PENDING:
            self.leave_pending(pod)
        else:
            return
        self.unbind(pod_id, pod)
        pod.state = DELETED
        if node_id >= 0:
            self.agent_notify(self.nodes[node_id], now)

    # ------------------------------------------------------------------ nodes
    def node_add(self, node_id: int, now: float) -> None:
        node = self.nodes[node_id]
        if node.present:
            return
        node.present = True
        node.ready = False
        node.gen += 1
        node.status = STATUS_OK
        node.sync_armed = False
        self.c.nodes += 1
        if self.policy == MULTI_POOL:
            self.agent_sync(node, now)
            self.push(now + self.refresh, REFRESH, node_id, node.gen)
        elif self.cloud is not None:
            self.cloud.node_added(node_id, now)
        else:
            self.push(now + self.operator_delay, CARVE, node_id, node.gen)
        self.scheduler.update(node)

    def node_delete(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if not node.present:
            return
        for pod_id in node.pods:
            pod = self.pods[pod_id]
            if pod.state == RUNNING:
                self.release_pod_addresses(pod)
                self.c.running -= 1
            else:
                self.leave_pending(pod)
            pod.state = DELETED
            pod.node = -1
        node.pods = {}
        node.pending = 0
        if self.cloud is not None:
            self.cloud.node_removed(node_id)
        while node.cidrs:
            self.free_cidr(node.cidrs[-1])
        if node.ready:
            self.c.ready -= 1
        node.ready = False
        node.present = False
        node.cordoned = False
        node.status = STATUS_OK
        self.c.nodes -= 1
        node.in_use.clear()
        node.pending_demand.clear()
        node.requested.clear()
        self.scheduler.update(node)

    # ------------------------------------------------------------------ node lifecycle
    def node_lifecycle(self, op: int, node: Node, now: float) -> None:
        """Cordon, drain (cordon and evict every pod not pinned to the node) or agent restart."""
        if op == OP_AGENT_RESTART:
            if self.policy == MULTI_POOL:  # the agent's released set starts empty
                for cidr in node.cidrs:
                    if cidr.state == STRANDED:
                        self.unstrand(cidr)
                self.arm_sync(node, now)
            return
        node.cordoned = True
        self.scheduler.update(node)
        if op == OP_NODE_CORDON:
            return
        assert op == OP_NODE_DRAIN
        for pod_id in reversed(list(node.pods)):  # the engine walks a node's pods newest first
            pod = self.pods[pod_id]
            if pod.pin < 0:
                self.evict(pod_id, pod, now)
        self.agent_notify(node, now)

    def evict(self, pod_id: int, pod: Pod, now: float) -> None:
        """The replica's replacement is scheduled at once; a pod still waiting is placed at its next retry."""
        self.c.evicted += 1
        pod.evicted = True
        if pod.state == RUNNING:
            self.release_pod_addresses(pod)
            self.c.running -= 1
            self.unbind(pod_id, pod)
            pod.state = NONE
            self.schedule(pod_id, pod, now)
            return
        self.leave_pending(pod)
        self.unbind(pod_id, pod)
        self.c.pending += 1

    def unstrand(self, cidr: NodeCidr) -> int:
        cidr.state = LIVE
        free = cidr.size - cidr.used
        self.c.free[cidr.family] += free
        self.pool_free[(cidr.pool, cidr.family)] += free
        return free

    def lifecycle_sample(self, family: int) -> dict[str, int]:
        cordoned = [n for n in self.nodes if n.present and n.cordoned]
        if self.cloud is not None:
            held = sum(self.cloud.nodes[n.id].held for n in cordoned) if family == 0 else 0
        else:
            held = sum(x.cidr_set.addrs for n in cordoned for x in n.cidrs if x.family == family)
        stranded = [x for n in self.nodes if n.present for x in n.cidrs if x.state == STRANDED and x.family == family]
        return {"pods_evicted": self.c.evicted, "pods_evicted_failed": self.c.evicted_failed,
                "nodes_cordoned": len(cordoned), "addrs_held_cordoned": held,
                "cidrs_stranded": len(stranded), "addrs_stranded": sum(x.size for x in stranded)}

    # ------------------------------------------------------------------ the loop
    def on_timer(self, kind: int, a: int, b: int, now: float) -> None:
        if kind == POD_RETRY:
            self.pod_retry(a, now)
            return
        node = self.nodes[a]
        if not node.present or node.gen != b:
            return  # a timer of a deleted node or an earlier incarnation
        if self.cloud is not None:
            self.cloud.on_timer(kind, a, now)
            return
        if kind == CARVE:
            if self.policy == MULTI_POOL:
                self.operator_multi_pool(node)
            else:
                self.operator_one_per_family(node, now)
        elif kind == AGENT_SYNC:
            self.agent_sync(node, now)
        elif kind == REFRESH:
            self.agent_sync(node, now)
            self.push(now + self.refresh, REFRESH, a, b)

    def advance(self, t_stop: float) -> None:
        """Process every event and timer due before ``t_stop``; timers first on equal times."""
        ev_time, ev_op = self.ev_time, self.ev_op
        n_events = len(ev_time)
        timers = self.timers
        while True:
            e = self.next_event
            t_event = ev_time[e] if e < n_events else math.inf
            t_timer = timers[0][0] if timers else math.inf
            if t_timer <= t_event:
                if t_timer >= t_stop:
                    break
                _, _, kind, a, b = heapq.heappop(timers)
                self.on_timer(kind, a, b, t_timer)
                continue
            if t_event >= t_stop:
                break
            self.next_event = e + 1
            op = ev_op[e]
            if op == OP_POD_ADD:
                self.pod_add(self.ev_pod[e], self.ev_node[e], self.ev_ns[e], self.ev_ann[e], t_event)
            elif op == OP_POD_DEL:
                self.pod_delete(self.ev_pod[e], t_event)
            elif op == OP_NODE_ADD:
                self.node_add(self.ev_node[e], t_event)
            elif op == OP_NODE_DEL:
                self.node_delete(self.ev_node[e])
            elif self.nodes[self.ev_node[e]].present:
                self.node_lifecycle(op, self.nodes[self.ev_node[e]], t_event)

    # ------------------------------------------------------------------ sampling
    def largest_free_block(self, family: int) -> int:
        best = 0
        for (_, fam), csets in self.sets.items():
            if fam != family:
                continue
            for cset in csets:
                order = cset.largest_free_order()
                if order >= 0:
                    best = max(best, (1 << order) * cset.addrs)
        return best

    def sample(self, with_largest_free_block: bool = True) -> dict[int, dict[str, int]]:
        """Trace counters now, per enabled family (0 = IPv4, 1 = IPv6)."""
        c = self.c
        out = {}
        if self.cloud is not None:
            counts = {"nodes": c.nodes, "nodes_ready": c.ready, "pods_running": c.running, "pods_pending": c.pending,
                      "pods_failed": c.failed, "pods_failed_free_elsewhere": c.failed_free,
                      "ip_allocs": c.ip_allocs[0], "ip_alloc_failures": c.ip_fails[0],
                      "pods_started": c.started, "pod_start_wait_ms": c.start_wait_ms}
            out[0] = {**counts, **self.cloud.sample(c.nodes), **self.lifecycle_sample(0),
                      **dict.fromkeys(CALICO_COUNTERS, 0)}
            if not with_largest_free_block:
                out[0]["largest_free_block"] = -1
            return out
        for family in self.families:
            carved, reserved, used = c.carved[family], c.reserved[family], c.used[family]
            out[family] = {
                "nodes": c.nodes,
                "nodes_ready": c.ready,
                "pods_running": c.running,
                "pods_pending": c.pending,
                "pods_failed": c.failed,
                "pods_failed_free_elsewhere": c.failed_free,
                "addrs_pool": self.pool_addrs[family],
                "addrs_carved": carved,
                "addrs_reserved": reserved,
                "addrs_used": used,
                "addrs_idle": carved - reserved - used,
                "addrs_uncarved": self.pool_addrs[family] - carved,
                "node_cidrs": c.node_cidrs[family],
                "carvable_node_cidrs": c.carvable[family],
                "largest_free_block": self.largest_free_block(family) if with_largest_free_block else -1,
                "cidr_carves": c.carves[family],
                "cidr_releases": c.releases[family],
                "ip_allocs": c.ip_allocs[family],
                "ip_alloc_failures": c.ip_fails[family],
                **dict.fromkeys(CLOUD_COUNTERS, 0),
                "pods_started": c.started,
                "pod_start_wait_ms": c.start_wait_ms,
                **self.lifecycle_sample(family),
                **dict.fromkeys(CALICO_COUNTERS, 0),
            }
        return out


def run_baseline(scenario, workload: Workload, mode: str, sample_times, *,
                 largest_free_block: bool = True) -> dict[str, np.ndarray]:
    """Run the workload through one mode in plain Python and sample like ``run_mode``.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        Validated scenario (its mode is overridden by `mode`).
    workload : Workload
        The events.
    mode : str
        Any mode: ``kubernetes``, ``cluster-pool``, ``gke`` and ``multi-pool`` run here,
        ``eni``, ``azure``, ``crd`` and ``aws-vpc-cni`` through ``bench/baseline_cloud.py``.
    sample_times : array_like of float
        Simulated times; each sample includes the events at its time.
    largest_free_block : bool, default True
        Compute the ``largest_free_block`` column (else it is -1).

    Returns
    -------
    dict of str to numpy.ndarray
        The columns of ``run_mode(...).trace``: ``family``, ``time_s`` and
        every trace counter, one row per (sample, enabled family).
    """
    return baseline_trace(BaselineEngine(scenario, workload, mode), sample_times,
                          largest_free_block=largest_free_block)


def baseline_trace(engine: BaselineEngine, sample_times, *, largest_free_block: bool = True) -> dict[str, np.ndarray]:
    """Advance `engine` to each sample time and sample there (:func:`run_baseline` on an engine of your own).

    Parameters
    ----------
    engine : BaselineEngine
        A fresh engine; afterwards it holds the state at the last sample.
    sample_times : array_like of float
    largest_free_block : bool, default True

    Returns
    -------
    dict of str to numpy.ndarray
        As :func:`run_baseline`.
    """
    cols: dict[str, list] = {k: [] for k in ("family", "time_s", *TRACE_COUNTERS)}
    for t in sample_times:
        engine.advance(math.nextafter(float(t), math.inf))
        for family, values in engine.sample(largest_free_block).items():
            cols["family"].append(4 if family == 0 else 6)
            cols["time_s"].append(float(t))
            for k in TRACE_COUNTERS:
                cols[k].append(values[k])
    return {
        "family": np.asarray(cols["family"], dtype=np.int8),
        "time_s": np.asarray(cols["time_s"], dtype=np.float64),
        **{k: np.asarray(cols[k], dtype=np.float64 if k in TRACE_FLOATS else np.int64) for k in TRACE_COUNTERS},
    }
