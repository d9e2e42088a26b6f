"""The simulated cluster's objects: nodes with their CiliumNode and agent, workload groups, and pods.

Pods live in :class:`PodTable`, parallel numpy arrays with one row per pod ever created,
so whole-cluster questions (which pods are disrupted, stale, on this node, in that CIDR)
are array expressions, not Python loops. Nodes, their CiliumNode objects and agents, and
the workload groups (Deployments and bare Pods) are small Python objects: a cluster has
thousands of them at most.

IPv4 only: an address is an ``int64`` (``-1`` for none).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import ipaddress
from dataclasses import dataclass, field

import numpy as np

from ipam_core.engine.layout import pod_range
from ipam_core.migration._place import collect, link_many, rebuild, unlink_many
from ipam_core.migration.objects import PodTemplate, scaled
from ipam_core.podiprange import PodIPRange

# Pod states.
GONE, PENDING, STARTING, LIVE = 0, 1, 2, 3
STATE_NAMES = ("gone", "pending", "starting", "running")

# Agent states.
AGENT_READY, AGENT_RESTARTING, AGENT_WAITING = "ready", "restarting", "waiting"

#: Kubernetes' name-suffix alphabet (apimachinery ``rand.SafeEncodeString``: no vowels, no 0/1/3).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@functools.lru_cache(maxsize=65536)
def cidr_bounds(cidr: str) -> tuple[int, int]:
    """First and last address of an IPv4 CIDR as integers.

    Parameters
    ----------
    cidr : str

    Returns
    -------
    (int, int)
    """
    address, _, prefix = cidr.partition("/")
    octets = address.split(".")
    if len(octets) == 4 and prefix.isdigit() and all(o.isdigit() and len(o) <= 3 for o in octets):
        value = 0
        for o in octets:
            value = value * 256 + int(o)
        bits = 32 - int(prefix)
        if max(int(o) for o in octets) <= 255 and 0 <= bits <= 32 and value & ((1 << bits) - 1) == 0:
            return value, value + (1 << bits) - 1  # the common case, without ipaddress's object overhead
    net = ipaddress.IPv4Network(cidr)
    return int(net.network_address), int(net.broadcast_address)


def usable_addresses(cidr: str) -> int:
    """Pod addresses a CIDR gives the agent's allocator (a /24 gives 254).

    Parameters
    ----------
    cidr : str

    Returns
    -------
    int
        Follows cilium ``pkg/ipam/service/ipallocator`` ``RangeSize``: network and last
        address excluded when there are more than 2. The engine's count
        (:func:`ipam_core.engine.layout.pod_range`, each node CIDR's ``S_SLOT_MAX``).
    """
    network = ipaddress.IPv4Network(cidr)
    return pod_range(network, network.prefixlen)[0]


def ip_text(value: int) -> str:
    """Dotted text of an IPv4 address integer ("" for -1)."""
    return str(ipaddress.IPv4Address(int(value))) if value >= 0 else ""


def name_suffix(tag: int, length: int = 5) -> str:
    """Kubernetes-style name suffix (``5zlzm``) spelled from an integer.

    Parameters
    ----------
    tag : int
        A random integer drawn when the pod was created.
    length : int
        Characters (5 for a pod suffix, 10 for a pod-template hash).

    Returns
    -------
    str
    """
    out = []
    tag = int(tag)
    for _ in range(length):
        tag, r = divmod(tag, len(NAME_ALPHABET))
        out.append(NAME_ALPHABET[r])
    return "".join(out)


# ---------------------------------------------------------------- address space in use
class CidrCover:
    """How many addresses a changing multiset of CIDRs covers, kept up to date as CIDRs come and go.

    Two CIDRs are always nested or disjoint, so the union is the sum of the sizes of the
    CIDRs no other present CIDR contains (the "tops"). Adding or removing a CIDR touches only
    the tops inside it, so the count costs O(log k) per change instead of a sort of every
    interval on every change.
    """

    def __init__(self):
        self.refs: dict[tuple[int, int], int] = {}
        self.keys: list[tuple[int, int]] = []     # distinct present CIDRs by (lo, -hi): containers first
        self.top_lo: list[int] = []                # the tops, disjoint, by first address
        self.top_hi: dict[int, int] = {}
        self.size = 0

    def _top_containing(self, lo: int, hi: int) -> int | None:
        i = bisect.bisect_right(self.top_lo, lo) - 1
        if i >= 0 and self.top_hi[self.top_lo[i]] >= hi:
            return self.top_lo[i]
        return None

    def add(self, lo: int, hi: int) -> None:
        """Count one more holder of the CIDR ``[lo, hi]``."""
        key = (lo, hi)
        count = self.refs.get(key, 0)
        self.refs[key] = count + 1
        if count:
            return
        bisect.insort(self.keys, (lo, -hi))
        if self._top_containing(lo, hi) is not None:
            return
        a = bisect.bisect_left(self.top_lo, lo)
        b = bisect.bisect_right(self.top_lo, hi)
        for t in self.top_lo[a:b]:  # tops inside the new CIDR stop being tops
            self.size -= self.top_hi.pop(t) - t + 1
        self.top_lo[a:b] = [lo]
        self.top_hi[lo] = hi
        self.size += hi - lo + 1

    def remove(self, lo: int, hi: int) -> None:
        """Count one holder fewer of the CIDR ``[lo, hi]`` (it must be held)."""
        key = (lo, hi)
        count = self.refs[key] - 1
        if count:
            self.refs[key] = count
            return
        del self.refs[key]
        del self.keys[bisect.bisect_left(self.keys, (lo, -hi))]
        if self.top_hi.get(lo) != hi:
            return  # inside another CIDR still present
        del self.top_hi[lo]
        i = bisect.bisect_left(self.top_lo, lo)
        del self.top_lo[i]
        self.size -= hi - lo + 1
        # the present CIDRs inside it that no other contains become tops
        a = bisect.bisect_left(self.keys, (lo, -hi))
        b = bisect.bisect_right(self.keys, (hi, 1))
        reach = lo - 1
        fresh = []
        for klo, neg_hi in self.keys[a:b]:
            if klo > reach:
                fresh.append(klo)
                self.top_hi[klo] = -neg_hi
                self.size += -neg_hi - klo + 1
                reach = -neg_hi
        self.top_lo[i:i] = fresh

    def overlapping(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Present CIDRs that contain, equal or lie inside ``[lo, hi]``."""
        out = [(klo, -neg_hi) for klo, neg_hi in self.keys[bisect.bisect_left(self.keys, (lo, -hi)):
                                                             bisect.bisect_right(self.keys, (hi, 1))]]
        top = self._top_containing(lo, hi)
        if top is not None:  # containers: walk down from the top that holds it
            a = bisect.bisect_left(self.keys, (top, -self.top_hi[top]))
            b = bisect.bisect_left(self.keys, (lo, -hi))
            out += [(klo, -neg_hi) for klo, neg_hi in self.keys[a:b] if -neg_hi >= hi]
        return out


# ---------------------------------------------------------------- pods
class PodTable:
    """Pods as parallel arrays; a pod id is its row until :meth:`compact`.

    Columns: ``node`` (int32, -1 unscheduled), ``addr`` (int64, -1 none), ``state``
    (int8: GONE, PENDING, STARTING, LIVE), ``group`` (int32), ``gen`` (int32, the
    Deployment template generation), ``created``/``ready_at`` (float64 s), ``managed``
    (bool: has a CiliumEndpoint), ``tag`` (int64: name suffix), ``pool`` (int16: multi-pool
    pool index, -1 none), ``dis_since`` (float64: disrupted since, NaN when not),
    ``dis_acc`` (float64: disrupted seconds accumulated), ``failed_at`` (float64: when its
    agent last failed to give it an address in multi-pool mode, NaN when not since the agent
    started), ``dis`` / ``stale`` (bool: the flags as last computed for running pods).

    Two indexes keep "the pods on these nodes" and "the pods of these groups" proportional to
    what they hold (see :mod:`ipam_core.migration._place`): per-group lists of the pods not
    gone (``gnext``/``gprev``, heads in ``group_head``) and per-node lists of the pods placed
    and not gone (``nnext``/``nprev``, heads in ``node_head``).
    """

    COLUMNS = {
        "node": (np.int32, -1), "addr": (np.int64, -1), "state": (np.int8, GONE), "group": (np.int32, -1),
        "gen": (np.int32, 0), "created": (np.float64, 0.0), "ready_at": (np.float64, np.inf),
        "managed": (np.bool_, False), "tag": (np.int64, 0), "pool": (np.int16, -1),
        "dis_since": (np.float64, np.nan), "dis_acc": (np.float64, 0.0), "failed_at": (np.float64, np.nan),
        "dis": (np.bool_, False), "stale": (np.bool_, False),
        "nnext": (np.int64, -1), "nprev": (np.int64, -1), "gnext": (np.int64, -1), "gprev": (np.int64, -1),
    }

    def __init__(self, capacity: int = 64):
        self.cols: dict[str, np.ndarray] = {
            name: np.full(capacity, fill, dtype=dtype) for name, (dtype, fill) in self.COLUMNS.items()}
        self.n = 0
        self.node_head = np.full(8, -1, dtype=np.int64)
        self.group_head = np.full(8, -1, dtype=np.int64)

    def reserve_heads(self, nodes: int, groups: int) -> None:
        """Make room for list heads of ``nodes`` nodes and ``groups`` groups."""
        for name, need in (("node_head", nodes), ("group_head", groups)):
            old = getattr(self, name)
            if need > old.shape[0]:
                grown = np.full(max(need, 2 * old.shape[0]), -1, dtype=np.int64)
                grown[: old.shape[0]] = old
                setattr(self, name, grown)

    def on_nodes(self, node_ids) -> np.ndarray:
        """Pods placed on any of ``node_ids`` and not gone, ascending.

        Parameters
        ----------
        node_ids : sequence of int
            Distinct node indexes.

        Returns
        -------
        numpy.ndarray of int64
        """
        return collect(self.node_head, self.cols["nnext"], np.asarray(node_ids, dtype=np.int64).reshape(-1))

    def of_groups(self, group_ids) -> np.ndarray:
        """Pods of any of ``group_ids`` that are not gone, ascending.

        Parameters
        ----------
        group_ids : sequence of int
            Distinct group indexes.

        Returns
        -------
        numpy.ndarray of int64
        """
        return collect(self.group_head, self.cols["gnext"], np.asarray(group_ids, dtype=np.int64).reshape(-1))

    def unlink(self, ids: np.ndarray) -> None:
        """Take pods about to be marked gone off their group's list and, when placed, their node's."""
        c = self.cols
        unlink_many(self.group_head, c["gnext"], c["gprev"], c["group"][ids].astype(np.int64), ids)
        placed = ids[c["node"][ids] >= 0]
        if placed.shape[0]:
            unlink_many(self.node_head, c["nnext"], c["nprev"], c["node"][placed].astype(np.int64), placed)

    @property
    def n(self) -> int:
        """Rows in use: pod ids are ``0 .. n - 1``."""
        return self._n

    @n.setter
    def n(self, rows: int) -> None:
        # Each column's live rows as a plain attribute (``pods.node``): the engine reads them about
        # 100 times per pod, so the views are made when the row count or a column changes, not per read.
        self._n = rows
        self.__dict__.update({name: col[:rows] for name, col in self.cols.items()})

    def add(self, groups: np.ndarray, gens: np.ndarray, t: float, tags: np.ndarray) -> np.ndarray:
        """Append pods in state PENDING.

        Parameters
        ----------
        groups, gens : int arrays
            Group and template generation of each new pod.
        t : float
            Creation time.
        tags : int64 array
            Name suffix tags.

        Returns
        -------
        numpy.ndarray of int64
            The new pod ids.
        """
        k = int(groups.shape[0])
        need = self.n + k
        cap = self.cols["node"].shape[0]
        if need > cap:
            new_cap = max(need, 2 * cap)
            for name, (dtype, fill) in self.COLUMNS.items():
                grown = np.full(new_cap, fill, dtype=dtype)
                grown[: self.n] = self.cols[name][: self.n]
                self.cols[name] = grown
        ids = np.arange(self.n, need, dtype=np.int64)
        c = self.cols
        for name, (dtype, fill) in self.COLUMNS.items():
            c[name][self.n:need] = fill
        c["group"][self.n:need] = groups
        c["gen"][self.n:need] = gens
        c["created"][self.n:need] = t
        c["tag"][self.n:need] = tags
        c["state"][self.n:need] = PENDING
        self.n = need
        link_many(self.group_head, c["gnext"], c["gprev"], c["group"][ids].astype(np.int64), ids)
        return ids

    def compact(self) -> None:
        """Drop GONE rows (pod ids change; nothing outside holds them across events)."""
        keep = np.flatnonzero(self.cols["state"][: self.n] != GONE)
        for name in self.cols:
            self.cols[name][: keep.shape[0]] = self.cols[name][keep]
        self.n = int(keep.shape[0])
        c = self.cols
        k = self.n
        rebuild(self.group_head, c["gnext"][:k], c["gprev"][:k], c["group"][:k], np.ones(k, dtype=np.bool_))
        rebuild(self.node_head, c["nnext"][:k], c["nprev"][:k], c["node"][:k], c["node"][:k] >= 0)


# ---------------------------------------------------------------- groups (Deployments and bare Pods)
@dataclass
class Group:
    """A Deployment, or a bare Pod (a group of at most one pod that nothing re-creates)."""

    template: PodTemplate
    replicas: int
    pin: int = -1                  # node index of spec.nodeName, or -1
    gen: int = 0
    hash_key: str = ""             # seeds the pod-template-hash of each generation
    deleted: bool = False

    @property
    def bare(self) -> bool:
        """A Pod without a controller."""
        return self.template.kind == "Pod"

    @property
    def dns(self) -> bool:
        """A kube-dns pod: the operator's unmanaged-pod watcher restarts it (label ``k8s-app=kube-dns``)."""
        return self.template.labels.get("k8s-app") == "kube-dns"

    def surge(self) -> int:
        """Rolling update ``maxSurge`` in pods (rounded up; bare pods: 1)."""
        if self.bare:
            return 1
        surge = scaled(self.template.max_surge, self.replicas, round_up=True)
        unavailable = self.unavailable()
        return surge if (surge or unavailable) else 1  # both 0 is refused by Kubernetes; keep progress

    def unavailable(self) -> int:
        """Rolling update ``maxUnavailable`` in pods (rounded down; bare pods: 1)."""
        if self.bare:
            return 1
        return scaled(self.template.max_unavailable, self.replicas, round_up=False)

    def pod_name(self, gen: int, tag: int) -> str:
        """The pod's name: the Pod's own, or ``<deployment>-<template hash>-<suffix>``."""
        if self.bare:
            return self.template.name
        digest = hashlib.blake2b(f"{self.hash_key}/{gen}".encode(), digest_size=8).digest()
        return f"{self.template.name}-{name_suffix(int.from_bytes(digest, 'little'), 10)}-{name_suffix(tag)}"


# ---------------------------------------------------------------- nodes
@dataclass
class CiliumNode:
    """The CiliumNode object: ``spec.ipam.podCIDRs``, ``spec.ipam.pools`` and the operator's status error."""

    pod_cidrs: list[str] = field(default_factory=list)
    allocated: dict[str, list[str]] = field(default_factory=dict)
    requested: dict[str, int] = field(default_factory=dict)
    status_error: str = ""


@dataclass
class Range:
    """One CIDR the agent hands pod addresses out of."""

    pool: str
    cidr: str
    lo: int
    hi: int
    base: int
    alloc: PodIPRange

    def contains(self, addr: np.ndarray) -> np.ndarray:
        """Which addresses fall in the allocator's usable range."""
        return (addr >= self.base) & (addr < self.base + self.alloc.capacity)


@dataclass
class Agent:
    """The Cilium agent of a node: its mode, state, allocation ranges and routed CIDRs."""

    mode: str | None = None
    state: str = AGENT_READY
    token: int = 0
    cfg: object = None
    pending_cfg: object = None      # the ConfigMap read by the restart in progress
    ranges: list[Range] = field(default_factory=list)
    routed: list[str] = field(default_factory=list)
    waiting_for: str = ""
    reserved: bool = False          # multi-pool: router/health addresses taken


@dataclass
class Node:
    """A node: KCM's ``spec.podCIDRs``, its CiliumNode, its agent, cordon state and CIDR history."""

    id: int
    name: str
    kcm_cidr: str | None = None
    cn: CiliumNode | None = None
    agent: Agent = field(default_factory=Agent)
    exists: bool = True
    cordoned: bool = False
    history: list[str] = field(default_factory=list)
    ever_ready: bool = False        # the agent has written the CNI config: the node is Ready

    @property
    def schedulable(self) -> bool:
        """Ready (its agent came up once) and not cordoned: kube-scheduler may place pods here."""
        return self.exists and self.ever_ready and not self.cordoned


__all__ = ["AGENT_READY", "AGENT_RESTARTING", "AGENT_WAITING", "Agent", "CidrCover", "CiliumNode", "GONE", "Group",
           "LIVE", "NAME_ALPHABET", "Node", "PENDING", "PodTable", "Range", "STARTING", "STATE_NAMES", "cidr_bounds",
           "ip_text", "name_suffix", "usable_addresses"]
