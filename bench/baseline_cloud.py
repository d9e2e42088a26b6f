"""The cloud IPAM modes in plain Python: an oracle for ``ipam_core/modes/cloud_pool.py``.

Written from the upstream rules (named per class and method below) and the
model ``docs/cloud-modes.md`` states, with plain containers: a subnet is a
``set`` of taken address offsets, an interface a list of unit slots, a unit
(a secondary address or a /28 prefix) a ``set`` of the offsets pods use. It
does not import the engine's rule helpers (``ipam_core.cloud.watermarks``,
``ipam_core.cloud.vpc_cni``): the watermark and warm-target arithmetic is
written again here from cilium ``pkg/ipam/node.go`` and ipamd's
``datastoreTargetState`` so that the comparison checks them too. What it
shares with the engine is configuration only: the mode's resolved
:class:`~ipam_core.modes.cloud_pool.CloudConfig` (instance limits, watermarks,
timers), the subnets, the timing knobs and the scheduler.

The trace columns are computed from the state at each sample (how many
addresses every subnet has taken, what the nodes hold, what pods use), not
from running counters; only the cumulative columns (carves, releases,
allocations, failures, cloud calls) are counted as the events happen.

Where upstream leaves an order open, the model's choice (``docs/cloud-modes.md``):

* EC2 and Azure hand out single addresses from a uniform random start with a
  forward scan (EC2 publishes no order); /28 prefixes are the lowest free
  aligned block; a static ``crd`` pool is first fit.
* Cilium's agent takes any free address of its pool (Go map order: a uniform
  draw over the free addresses in interface, unit-slot, offset order); ipamd
  the first free one in that order (the order its documented examples show).
* A new unit takes its interface's first free slot (an ENI's address limit
  is a row of slots; a released address leaves a hole the next one fills).

The random draws come from :class:`SplitMix64`, the engine's seeded stream
written again in Python, and are taken at the same points (a subnet address,
a pod's address, the random scheduler), so that offsets, and with them
``largest_free_block``, prefix availability and which interface has free
addresses, can be compared exactly rather than only in distribution.

Upstream rules the engine departs from, or departed from when the oracle
was written, are switches of :class:`CloudIPAM` (``prefix_use_from_status``
and ``ipamd_one_more_ip``, both since fixed in the engine), on by default; the
tests turn a departure off to compare everything else and show it in an
``xfail`` test.

Simplifications the oracle shares with the engine (the model, not a rule
under test): the release handshake is collapsed into the operator's pass;
ENIs are visited in index order (a Go map upstream); API latency is the
operator's delay; a node counts its prefixes whole for excess while it holds
any. Whether Cilium asks for prefixes follows ``IsPrefixDelegated``
(``pkg/aws/eni/node.go``): not while an ENI holds secondary addresses and no
prefix (:meth:`CloudIPAM.prefix_delegated`); the dense arm of CFP
cilium/cilium#38499 keeps asking and packs the fallback's addresses
(:meth:`Subnet.take_densest`). API calls and their throttling:
``baseline_cloud_api.py``.
"""

from __future__ import annotations

import ipaddress
import math

import numpy as np
from baseline_cloud_api import ASSIGN, ATTACH, RELEASE, CloudAPI

from ipam_core.cloud.limits import PREFIX_SIZE
from ipam_core.cloud.placement import cidr_offsets, deal_nodes, listed_offsets, shared_offsets, zone_of_nodes
from ipam_core.engine.cloud_config import PICK_CILIUM, PICK_DISCOVERY, PICK_FLAGGED

MASK64 = (1 << 64) - 1
PREFIX_ORDER = 4  # a /28 holds 2**4 addresses
SUBNET_RESERVED_LOW = 4  # AWS VPC user guide "Subnet sizing": the first four ...
SUBNET_RESERVED_HIGH = 1  # ... and the last address (Azure reserves the same five)

# managers of a node's pool (CloudConfig.kind, ipam_core.engine.tables CLOUD_*)
CILIUM, VPC_CNI, AKS_DYNAMIC, AKS_STATIC, CRD_STATIC = "cilium", "vpc-cni", "aks-dynamic", "aks-static", "crd-static"


class SplitMix64:
    """SplitMix64 (Steele, Lea and Flood 2014) with Lemire's bounded draw, as the engine's stream.

    Parameters
    ----------
    seed : int
        The scenario's seed (its low 64 bits are the state).
    """

    GAMMA = 0x9E3779B97F4A7C15

    def __init__(self, seed: int):
        self.state = int(seed) & MASK64

    def below(self, bound: int) -> int:
        """A uniform integer in ``[0, bound)``, rejecting draws that would bias it."""
        threshold = (1 << 64) % bound
        while True:
            self.state = (self.state + self.GAMMA) & MASK64
            z = self.state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            z ^= z >> 31
            product = z * bound
            low = product & MASK64
            if low >= bound or low >= threshold:
                return product >> 64

    def choice(self, items: list):
        """One item, uniformly: the random scheduler's draw over the eligible nodes in id order."""
        return items[self.below(len(items))]


# ---------------------------------------------------------------------------- the cloud
class Subnet:
    """A subnet's addresses: the offsets taken, the cloud's own reservation included.

    ``spec`` (a ``cloud.subnets`` entry) adds what others hold: explicit reservations and
    shared addresses are taken at the start and counted with the cloud's; a ``prefix``
    reservation's range gives no single address (EC2 subnet CIDR reservations) and gives
    its /28s first.
    """

    __slots__ = ("size", "taken", "cloud_reserved", "prefix_ranges", "zone")

    def __init__(self, cidr: str, cloud_reserves: bool, spec=None, seed: int = 0, index: int = 0, zone: int = 0):
        network = ipaddress.ip_network(cidr)
        self.size = network.num_addresses
        self.zone = zone
        self.taken: set[int] = set()
        self.prefix_ranges: list[range] = []
        if cloud_reserves and self.size >= 8:
            self.taken.update(range(SUBNET_RESERVED_LOW))
            self.taken.update(self.size - 1 - k for k in range(SUBNET_RESERVED_HIGH))
        if spec is not None:
            self._others(spec, network, seed, index)
        self.cloud_reserved = len(self.taken)

    def _others(self, spec, network, seed: int, index: int) -> None:
        reserved: set[int] = set()
        explicit: set[int] = set()
        for r in spec.reservations:
            lo, hi = cidr_offsets(r.cidr, network)
            reserved.update(range(lo, hi))
            if r.kind == "explicit":
                explicit.update(range(lo, hi))
            else:
                self.prefix_ranges.append(range(lo, hi))
        before = set(self.taken)
        self.taken |= explicit
        if spec.shared_used_file:
            self.taken.update(o for o in listed_offsets(spec.shared_used_file, network).tolist() if o not in reserved)
        if spec.shared_used:
            free = np.array(sorted(o for o in range(self.size) if o not in before and o not in reserved), dtype=np.int64)
            self.taken.update(shared_offsets(spec.shared_used, free, seed, index).tolist())

    def in_prefix_range(self, offset: int) -> bool:
        return any(offset in r for r in self.prefix_ranges)

    @property
    def free(self) -> int:
        return self.size - len(self.taken)

    @property
    def free_singles(self) -> int:
        """Free addresses EC2 may give one by one: outside the prefix reservations."""
        return self.free - sum(1 for r in self.prefix_ranges for o in r if o not in self.taken)

    def take_random(self, rng: SplitMix64) -> int:
        """EC2 / Azure picking a secondary address: random start, forward scan, wrapping."""
        offset = rng.below(self.size)
        if self.free_singles == 0:
            return -1
        while offset in self.taken or self.in_prefix_range(offset):
            offset = offset + 1 if offset + 1 < self.size else 0
        self.taken.add(offset)
        return offset

    def take_first(self) -> int:
        offset = next(o for o in range(self.size) if o not in self.taken and not self.in_prefix_range(o))
        self.taken.add(offset)
        return offset

    def free_blocks(self) -> list[int]:
        """Offsets of the aligned /28 blocks with no address taken, lowest first."""
        used = {o >> PREFIX_ORDER for o in self.taken}
        return [b << PREFIX_ORDER for b in range(self.size >> PREFIX_ORDER) if b not in used]

    def take_densest(self) -> int:
        """CFP cilium/cilium#38499 "dense": the lowest free address of the aligned /28 with the fewest free
        addresses (lowest /28 on ties), so single addresses fill broken /28s and leave whole ones free."""
        free_in = {}
        for o in range(self.size):
            if o not in self.taken:
                free_in[o >> PREFIX_ORDER] = free_in.get(o >> PREFIX_ORDER, 0) + 1
        block = min(free_in, key=lambda b: (free_in[b], b))
        offset = next(o for o in range(block << PREFIX_ORDER, (block + 1) << PREFIX_ORDER) if o not in self.taken)
        self.taken.add(offset)
        return offset

    def take_block(self) -> int:
        """``AssignIpv6Prefixes``/``AssignPrivateIpAddresses --ipv4-prefix-count``: the lowest free /28 of the
        prefix reservations (in their order), else the lowest free /28."""
        blocks = self.free_blocks()
        reserved = [b for r in self.prefix_ranges for b in blocks if b in r]
        offset = (reserved or blocks)[0]
        self.taken.update(range(offset, offset + PREFIX_SIZE))
        return offset

    def largest_free_order(self) -> int:
        """Largest ``k`` with an aligned free block of ``2**k`` addresses; -1 if none."""
        order = self.size.bit_length() - 1
        while order >= 0:
            if len({o >> order for o in self.taken}) < self.size >> order:
                return order
            order -= 1
        return -1


class Unit:
    """A secondary address (size 1) or a /28 prefix (size 16) an interface holds; ``used``: offsets in use."""

    __slots__ = ("subnet", "offset", "size", "used")

    def __init__(self, subnet: int, offset: int, size: int):
        self.subnet = subnet
        self.offset = offset
        self.size = size
        self.used: set[int] = set()

    @property
    def free(self) -> int:
        return self.size - len(self.used)


class Interface:
    """An ENI, or the VM's NIC, or (``crd``) the pool's one row of units; ``slots`` is its address limit."""

    __slots__ = ("index", "subnet", "primary", "since", "slots")

    def __init__(self, index: int, subnet: int, slots: int, since: float):
        self.index = index
        self.subnet = subnet
        self.primary = -1  # the subnet offset of its primary address, -1 when it has none
        self.since = since
        self.slots: list[Unit | None] = [None] * slots

    def units(self) -> list[Unit]:
        return [u for u in self.slots if u is not None]

    @property
    def room(self) -> int:
        return self.slots.count(None)

    @property
    def prefixes(self) -> int:
        return sum(1 for u in self.units() if u.size > 1)

    @property
    def in_use(self) -> int:
        return sum(len(u.used) for u in self.units())


class CloudNode:
    """A node's side of the cloud: its interfaces and what its pool's manager remembers.

    ``cfg`` / ``ipamd`` are its node group's settings (its instance type's limits); ``group``
    its group's index.
    """

    def __init__(self, n_ifaces: int, subnet: int, prefix_delegation: bool, cfg=None, ipamd=None, group: int = 0):
        self.cfg = cfg
        self.ipamd = ipamd
        self.group = group
        self.ifaces: list[Interface | None] = [None] * n_ifaces
        self.subnet = subnet
        self.pd = prefix_delegation  # prefix delegation on and the instance Nitro
        self.agent_reserved = 0  # router / health / AKS reserved addresses the agent took
        self.reported_used = 0  # status.ipam.used as of the agent's last CiliumNode update
        self.reported_addresses: set[tuple[int, int]] = set()  # (subnet, address) in that status
        self.sync_armed = False
        self.last_sync = -math.inf
        self.op_at = math.inf  # the pending pass of the pool's manager
        self.excess_since = math.inf
        self.last_decrease = -math.inf
        self.cooldown_until = -math.inf
        self.api_at: float | None = None  # a call of the last pass was throttled: its tokens are there then

    def attached(self) -> list[Interface]:
        return [i for i in self.ifaces if i is not None]

    def units(self) -> list[Unit]:
        return [u for iface in self.attached() for u in iface.units()]

    @property
    def held(self) -> int:
        return sum(u.size for u in self.units())

    @property
    def in_use(self) -> int:
        return sum(len(u.used) for u in self.units())

    @property
    def free(self) -> int:
        return self.held - self.in_use

    @property
    def prefixes(self) -> int:
        return sum(1 for u in self.units() if u.size > 1)

    def free_prefixes(self) -> int:
        return sum(1 for u in self.units() if u.size > 1 and not u.used)


class CloudCounters:
    """The cumulative trace columns."""

    def __init__(self):
        self.carves = 0
        self.releases = 0
        self.frag_failures = 0


# ---------------------------------------------------------------------------- watermark arithmetic
def cilium_needed(available: int, used: int, pre: int, minimum: int, maximum: int) -> int:
    """Addresses the operator adds to a node's pool.

    Parameters
    ----------
    available, used : int
        The pool (``spec.ipam.pool``) and what the agent reported in use (``status.ipam.used``).
    pre, minimum, maximum : int
        ``spec.ipam`` ``pre-allocate``, ``min-allocate`` and ``max-allocate`` (0: none).

    Returns
    -------
    int
        Enough to keep ``pre`` free, hold at least ``minimum`` and at most ``maximum``; never negative.

    Notes
    -----
    Follows cilium ``pkg/ipam/node.go`` ``calculateNeededIPs``.
    """
    needed = pre - (available - used)
    if minimum > 0 and minimum - available > needed:
        needed = minimum - available
    if maximum > 0 and available + needed > maximum:
        needed = maximum - available
    return needed if needed > 0 else 0


def cilium_excess(available: int, used: int, pre: int, minimum: int, above: int) -> int:
    """Free addresses above the watermarks.

    Parameters
    ----------
    available, used, pre, minimum : int
        As in :func:`cilium_needed`.
    above : int
        ``spec.ipam.max-above-watermark``.

    Returns
    -------
    int
        0 while both the pool and its use are within the bootstrap allocation
        ``minimum + above``, else what is free beyond ``pre + above``.

    Notes
    -----
    Follows cilium ``pkg/ipam/node.go`` ``calculateExcessIPs``.
    """
    if used <= minimum + above and available <= minimum + above:
        return 0
    return max(available - used - pre - above, 0)


def ipamd_targets(total: int, assigned: int, prefixes: int, free_prefixes: int, warm_ip: int, min_ip: int,
                  pd: bool) -> tuple[int, int]:
    """How far the datastore is below and above ``WARM_IP_TARGET`` / ``MINIMUM_IP_TARGET``.

    Parameters
    ----------
    total, assigned : int
        Addresses in the datastore and addresses given to pods.
    prefixes, free_prefixes : int
        /28 prefixes held, and those with no address given.
    warm_ip, min_ip : int
        The targets (0: unset).
    pd : bool
        ``ENABLE_PREFIX_DELEGATION``.

    Returns
    -------
    tuple of int
        ``(short, over)``. With prefix delegation both are in prefixes: short rounded
        up to whole prefixes, over the free prefixes needed neither for
        ``assigned + WARM_IP_TARGET`` nor for ``MINIMUM_IP_TARGET``.

    Notes
    -----
    Follows aws/amazon-vpc-cni-k8s ``pkg/ipamd/ipamd.go`` ``datastoreTargetState``.
    """
    available = total - assigned
    short = max(warm_ip - available, 0, min_ip - total)
    over = max(min(max(available - warm_ip, 0), total - min_ip), 0)
    if not pd:
        return short, over
    short_prefixes = -(-short // PREFIX_SIZE)
    keep_warm = -(-(assigned + warm_ip) // PREFIX_SIZE)
    keep_min = -(-min_ip // PREFIX_SIZE)
    over_prefixes = max(min(free_prefixes, prefixes - keep_warm), 0)
    over_prefixes = max(min(over_prefixes, prefixes - keep_min), 0)
    return short_prefixes, over_prefixes


def ipamd_pool_too_low(total: int, assigned: int, prefixes: int, free_prefixes: int, t) -> bool:
    """Whether ipamd grows the pool (``isDatastorePoolTooLow``, ``pkg/ipamd/ipamd.go``).

    Parameters
    ----------
    total, assigned, prefixes, free_prefixes : int
        As in :func:`ipamd_targets`.
    t : IpamdTargets

    Returns
    -------
    bool
        Short of the IP targets when one is set; else fewer free addresses than
        ``WARM_ENI_TARGET`` ENIs' (``WARM_PREFIX_TARGET`` prefixes') worth, or none free
        with a target of 0.
    """
    if t.warm_ip or t.min_ip:
        return ipamd_targets(total, assigned, prefixes, free_prefixes, t.warm_ip, t.min_ip, t.pd)[0] > 0
    warm, per = (t.warm_prefix, PREFIX_SIZE) if t.pd else (t.warm_eni, t.per_eni)
    available = total - assigned
    return available < warm * per or (warm == 0 and available == 0)


def ipamd_pool_too_high(total: int, assigned: int, prefixes: int, free_prefixes: int, t) -> bool:
    """Whether ipamd may give addresses back (``isDatastorePoolTooHigh``, ``pkg/ipamd/ipamd.go``).

    Parameters
    ----------
    total, assigned, prefixes, free_prefixes : int
        As in :func:`ipamd_targets`.
    t : IpamdTargets

    Returns
    -------
    bool
        Over the IP targets when one is set; with prefixes, more free prefixes than
        ``WARM_PREFIX_TARGET``; otherwise never (``WARM_ENI_TARGET`` frees whole ENIs only).
    """
    if t.warm_ip or t.min_ip:
        return ipamd_targets(total, assigned, prefixes, free_prefixes, t.warm_ip, t.min_ip, t.pd)[1] > 0
    return t.pd and free_prefixes > t.warm_prefix


class IpamdTargets:
    """The aws-node environment as ipamd reads it, plus the instance's secondary addresses per ENI."""

    def __init__(self, cfg):
        self.warm_eni, self.warm_ip, self.min_ip = cfg.warm_eni, cfg.warm_ip, cfg.min_ip
        self.warm_prefix = cfg.warm_prefix
        self.pd = cfg.unit_size > 1
        self.per_eni = cfg.units


# ---------------------------------------------------------------------------- the managers
PASS, SYNC, REFRESH = "cloud-pass", "cloud-sync", "cloud-refresh"  # timer kinds of the host's heap
_KINDS = {0: CRD_STATIC, 1: CILIUM, 2: VPC_CNI, 3: AKS_DYNAMIC, 4: AKS_STATIC}  # CloudConfig.kind


class CloudIPAM:
    """Every node's pool in a cloud mode and whoever keeps it filled.

    Parameters
    ----------
    cfg : ipam_core.modes.cloud_pool.CloudConfig
        The mode's resolved settings (``ipam_core.modes.<mode>.cloud(scenario)``).
    subnets : sequence of str
        The subnets; node *i* lives in subnet *i mod n*.
    host : BaselineEngine
        The pod and node loop: ``push(t, kind, a, b)``, ``nodes[i].gen`` / ``.pending`` /
        ``.ready``, ``mark_ready(node)`` and ``rng`` (a :class:`SplitMix64`).
    operator_delay, update_rate : float
        ``operatorSyncInterval`` and ``ciliumNodeUpdateRate`` (seconds).
    """

    def __init__(self, cfg, subnets, host, operator_delay: float, update_rate: float, net=None):
        self.cfg = cfg
        self.kind = _KINDS[cfg.kind]
        self.net = net
        if net is None:
            self.subnets = [Subnet(c, cfg.subnet_reserved, zone=i) for i, c in enumerate(subnets)]
        else:
            self.subnets = [Subnet(c, cfg.subnet_reserved, spec, net.seed, i, int(net.subnet_zone[i]))
                            for i, (c, spec) in enumerate(zip(subnets, net.subnets))]
            self.group_of = deal_nodes(net.weights, len(host.nodes)).tolist()
            self.zone_of = zone_of_nodes(np.array(self.group_of), list(net.group_zones)).tolist()
            self.group_ipamd = [IpamdTargets(c) for c in net.configs]
        self.host = host
        self.rng: SplitMix64 = host.rng
        self.operator_delay = operator_delay
        self.update_rate = update_rate
        self.nodes: dict[int, CloudNode] = {}
        self.count = CloudCounters()
        self.api = CloudAPI(cfg)
        # Two upstream rules ipam_core/modes/cloud_pool.py departs from (tests/test_cloud_vs_baseline.py
        # turns them off to compare the rest, and shows each departure in an xfail test):
        #: cilium recalculate counts a prefix-delegated node's used prefixes from status.ipam.used, the
        #: agent's last CiliumNode update (GetUsedIPWithPrefixes), not from the pool as it is now.
        self.prefix_use_from_status = True
        #: ipamd tryAssignIPs asks for "just one more IP" when EC2 refuses the ENI's remaining addresses,
        #: and starts the insufficient-CIDR cooldown only when that fails too.
        self.ipamd_one_more_ip = True

    # ------------------------------------------------------------------ interfaces and units
    def add_unit(self, iface: Interface, subnet: int, offset: int, size: int) -> None:
        iface.slots[iface.slots.index(None)] = Unit(subnet, offset, size)
        self.count.carves += 1

    def drop_unit(self, iface: Interface, k: int) -> None:
        unit = iface.slots[k]
        self.subnets[unit.subnet].taken.difference_update(range(unit.offset, unit.offset + unit.size))
        iface.slots[k] = None
        self.count.releases += 1

    def attach(self, node: CloudNode, index: int, subnet: int, now: float) -> Interface:
        """An interface joins the instance; the cloud gives it a primary address of its subnet."""
        iface = node.ifaces[index] = Interface(index, subnet, node.cfg.units, now)
        if self.cfg.primary:
            iface.primary = self.subnets[subnet].take_random(self.rng)
        return iface

    def restore(self, nodes, ifaces, units, now: float) -> None:
        """A dumped cluster's interfaces and units, instead of the eth0 each node joined with.

        ``ifaces`` rows: node, interface index, subnet, primary offset (-1: not dumped);
        ``units`` rows: node, interface index, subnet, first offset, size. As
        ``ipam_core/modes/cloud_initial.py`` takes them: every fresh eth0 given back first,
        then the dumped interfaces and units at their own offsets, then a free primary address
        for an interface whose primary the dump lacks (an Azure NIC).
        """
        if self.cfg.nic:
            for node_id in nodes:
                n = self.nodes[node_id]
                self.detach(n, n.ifaces[0])
        for node_id, index, subnet, primary in ifaces:
            n = self.nodes[node_id]
            if self.cfg.nic:
                n.ifaces[index] = Interface(index, subnet, n.cfg.units, now)
                n.ifaces[index].primary = primary
                if primary >= 0:
                    self.subnets[subnet].taken.add(primary)
            else:
                n.ifaces[0].subnet = subnet
            if index == 0:
                n.subnet = subnet
        for node_id, index, subnet, offset, size in units:
            self.subnets[subnet].taken.update(range(offset, offset + size))
            self.add_unit(self.nodes[node_id].ifaces[index], subnet, offset, size)
        if self.cfg.nic and self.cfg.primary:
            for node_id, index, subnet, primary in ifaces:
                if primary < 0:
                    self.nodes[node_id].ifaces[index].primary = self.subnets[subnet].take_random(self.rng)

    @staticmethod
    def unit_of(node: CloudNode, subnet: int, offset: int) -> tuple[Unit, int] | None:
        """The node's unit holding address ``offset`` of ``subnet``, and its bit; None if taken or not held."""
        for unit in node.units():
            if unit.subnet == subnet and unit.offset <= offset < unit.offset + unit.size:
                bit = offset - unit.offset
                return None if bit in unit.used else (unit, bit)
        return None

    def agent_restore(self, node: CloudNode, dumped: list[tuple[int, int]]) -> None:
        """The agent's router and health addresses: the dumped ones the node holds, then free ones."""
        for subnet, offset in dumped:
            found = self.unit_of(node, subnet, offset) if node.agent_reserved < self.cfg.agent_reserved else None
            if found is not None:
                found[0].used.add(found[1])
                node.agent_reserved += 1
        for _ in range(self.cfg.agent_reserved - node.agent_reserved):
            found = self.pick(node)
            if found is None:
                break
            found[0].used.add(found[1])
            node.agent_reserved += 1

    def detach(self, node: CloudNode, iface: Interface) -> None:
        for k, unit in enumerate(iface.slots):
            if unit is not None:
                self.drop_unit(iface, k)
        if iface.primary >= 0:
            self.subnets[iface.subnet].taken.discard(iface.primary)
        node.ifaces[iface.index] = None

    def throttled(self, node: CloudNode, kind: int, now: float) -> bool:
        """The next call of the node's pass must wait for a token (``baseline_cloud_api``): remember when."""
        t = self.api.ready(kind, now)
        if t is None:
            return False
        node.api_at = t
        return True

    def call(self, node: CloudNode, kind: int, now: float) -> bool:
        """A call of ``kind`` now, unless throttled: whether it was made."""
        if self.throttled(node, kind, now):
            return False
        self.api.spend(kind, now)
        return True

    def assign(self, node: CloudNode, iface: Interface, addresses: int, pd: bool, fallback: bool, subnet: int,
               count_call: bool, now: float) -> int:
        """One ``AssignPrivateIpAddresses`` call (or the addresses of a create call): the addresses added
        (-1: throttled, no call made).

        With prefixes EC2 gives all ``ceil(addresses / 16)`` aligned /28s or none
        (``InsufficientCidrBlocks``); Cilium then asks for single addresses in a
        second call, on the same ENI (cilium ``pkg/aws/eni/node.go`` ``AllocateIPs``,
        PR #20822) or as a second create call without prefixes (``CreateInterface``);
        ipamd does not (``tryAssignPrefixes``). Single addresses also come all or
        none (``InsufficientFreeAddressesInSubnet``).
        """
        if iface.room <= 0 or addresses <= 0:
            return 0
        if count_call and self.throttled(node, ASSIGN, now):
            return -1
        sub = self.subnets[subnet]
        if pd:
            count = min(-(-addresses // PREFIX_SIZE), iface.room)
            if count_call:
                self.api.spend(ASSIGN, now, prefixes=True)
            if len(sub.free_blocks()) >= count:
                for _ in range(count):
                    self.add_unit(iface, subnet, sub.take_block(), PREFIX_SIZE)
                return count * PREFIX_SIZE
            if sub.free >= count * PREFIX_SIZE:
                self.count.frag_failures += 1  # the addresses are there, not as aligned /28s
            if not fallback:
                return 0
            self.api.spend(ASSIGN if count_call else ATTACH, now)
            count = min(addresses, iface.room)
            if sub.free < count:
                return 0
            dense = self.cfg.strategy == 1
            for _ in range(count):
                self.add_unit(iface, subnet, sub.take_densest() if dense else sub.take_random(self.rng), 1)
            return count
        count = min(addresses, iface.room)
        if count_call:
            self.api.spend(ASSIGN, now)
        if sub.free_singles < count:
            return 0
        for _ in range(count):
            self.add_unit(iface, subnet, sub.take_random(self.rng), 1)
        return count

    # ------------------------------------------------------------------ pods (the agent, the CNI)
    def free_addresses(self, node: CloudNode):
        """The pool's free addresses in interface, unit-slot, offset order."""
        for iface in node.attached():
            for unit in iface.units():
                for bit in range(unit.size):
                    if bit not in unit.used:
                        yield unit, bit

    def pick(self, node: CloudNode) -> tuple[Unit, int] | None:
        """ipamd: the first free address; Cilium's CRD allocator: any free one (Go map order)."""
        if self.cfg.fill_first:
            return next(self.free_addresses(node), None)
        if node.free <= 0:
            return None
        r = self.rng.below(node.free)
        for k, found in enumerate(self.free_addresses(node)):
            if k == r:
                return found
        raise AssertionError("the pool's free count and its free addresses disagree")

    def alloc(self, node_id: int) -> tuple[Unit, int] | None:
        found = self.pick(self.nodes[node_id])
        if found is not None:
            found[0].used.add(found[1])
        return found

    @staticmethod
    def release(unit: Unit, bit: int) -> None:
        unit.used.discard(bit)

    def agent_start(self, node: CloudNode) -> bool:
        """``hasMinimumIPsInPool`` (cilium ``pkg/ipam/crd.go``), then the router / health addresses."""
        if not self.pool_ready(node):
            return False
        for _ in range(self.cfg.agent_reserved):
            found = self.pick(node)
            if found is None:
                break
            found[0].used.add(found[1])
            node.agent_reserved += 1
        return True

    @staticmethod
    def pool_ready(node: CloudNode) -> bool:
        """``hasMinimumIPsInPool``: the pool holds the ready minimum (and an address)."""
        return node.held > 0 and node.held >= node.cfg.ready_min

    # ------------------------------------------------------------------ nodes and timers
    def node_added(self, node_id: int, now: float) -> None:
        """The instance comes with eth0 (or its NIC); the manager's first pass after the operator's delay."""
        if self.net is None:
            n = CloudNode(max(self.cfg.ifaces, 1), node_id % len(self.subnets), self.cfg.unit_size > 1, self.cfg,
                          IpamdTargets(self.cfg))
        else:
            g = self.group_of[node_id]
            cfg = self.net.configs[g]
            n = CloudNode(max(self.cfg.ifaces, 1), self.launch_subnet(g, self.zone_of[node_id]), cfg.unit_size > 1,
                          cfg, self.group_ipamd[g], g)
        self.nodes[node_id] = n
        if self.cfg.nic:
            self.attach(n, 0, n.subnet, now)
        else:  # a crd pool: one row of addresses, no cloud interface
            n.ifaces[0] = Interface(0, n.subnet, n.cfg.units, now)
        self.request_pass(node_id, now + self.operator_delay)
        if self.cfg.period_s > 0:
            self.host.push(now + self.cfg.period_s, REFRESH, node_id, self.host.nodes[node_id].gen)

    def most_free(self, candidates) -> int | None:
        """The candidate subnet with most free addresses, the first listed on ties."""
        best = None
        for s in candidates:
            if best is None or self.subnets[s].free > self.subnets[best].free:
                best = s
        return best

    def launch_subnet(self, group: int, zone: int) -> int:
        """Karpenter ``ZonalSubnetsForLaunch``: the group's subnet of the zone with most free addresses."""
        return self.most_free(s for s, sub in enumerate(self.subnets)
                              if sub.zone == zone and self.net.launch[group, s])

    def eni_subnet(self, n: CloudNode) -> int | None:
        """The subnet of a new ENI (cilium ``findSuitableSubnet``; ipamd subnet discovery or ENIConfig)."""
        if self.net is None:
            return n.subnet
        rule, flagged = self.net.pick[n.group], self.net.flagged[n.group]
        zone = self.subnets[n.subnet].zone
        in_zone = [s for s, sub in enumerate(self.subnets) if sub.zone == zone]
        if rule == PICK_CILIUM:
            chosen = self.most_free(s for s in in_zone if flagged[s])
            if chosen is not None:
                return chosen
            if self.subnets[n.subnet].free >= self.net.ipv4[n.group]:
                return n.subnet
            return self.most_free(in_zone)
        if rule == PICK_DISCOVERY:
            return self.most_free(s for s in in_zone if flagged[s] or s == n.subnet)
        if rule == PICK_FLAGGED:
            return self.most_free(s for s in in_zone if flagged[s])
        return n.subnet

    def node_removed(self, node_id: int) -> None:
        """Interfaces, units and primary addresses back to the subnets (pods are gone already)."""
        n = self.nodes.pop(node_id)
        for iface in n.attached():
            for unit in iface.units():
                unit.used.clear()  # the agent's reservations
            self.detach(n, iface)

    def request_pass(self, node_id: int, t: float) -> None:
        """At most one pending pass of the node's manager: the earliest request wins."""
        n = self.nodes[node_id]
        if t < n.op_at:
            n.op_at = t
            self.host.push(t, PASS, node_id, self.host.nodes[node_id].gen)

    def agent_changed(self, node_id: int, now: float) -> None:
        """The agent writes its CiliumNode status at most once per ``ciliumNodeUpdateRate`` (cilium ``crd.go``)."""
        n = self.nodes[node_id]
        if self.kind != CILIUM or n.sync_armed:
            return  # ipamd and CNS see their node directly
        n.sync_armed = True
        self.host.push(max(now, n.last_sync + self.update_rate), SYNC, node_id, self.host.nodes[node_id].gen)

    def settle(self, node_id: int, now: float, next_pass: float | None) -> None:
        if next_pass is not None:
            self.request_pass(node_id, next_pass)
        n = self.nodes[node_id]
        if not self.host.nodes[node_id].ready and self.agent_start(n):
            self.host.mark_ready(node_id)
            self.agent_changed(node_id, now)

    def on_timer(self, kind: str, node_id: int, now: float) -> None:
        n = self.nodes[node_id]
        if kind == PASS:
            if now != n.op_at:
                return  # superseded by an earlier request
            n.op_at = math.inf
            self.settle(node_id, now, self.manager_pass(node_id, now))
        elif kind == SYNC:
            n.sync_armed = False
            n.last_sync = now
            n.reported_used = n.in_use
            n.reported_addresses = {(u.subnet, u.offset + b) for u in n.units() for b in u.used}
            self.settle(node_id, now, now + self.operator_delay)
        else:
            self.settle(node_id, now, self.manager_pass(node_id, now))
            self.host.push(now + self.cfg.period_s, REFRESH, node_id, self.host.nodes[node_id].gen)

    def manager_pass(self, node_id: int, now: float) -> float | None:
        """One pass of the node's manager; when Cilium's operator changed something it comes back after its delay."""
        n = self.nodes[node_id]
        n.api_at = None
        if self.kind == CILIUM:
            if self.cilium_pass(node_id, n, now):
                return now + self.operator_delay
            return n.api_at  # throttled: the operator's limiter lets the call go then
        if self.kind == VPC_CNI:
            self.ipamd_pass(n, now)
        elif self.kind == AKS_DYNAMIC:
            self.cns_pass(n, now)
        else:
            self.static_pass(n, now)
        return None

    # ------------------------------------------------------------------ Cilium's operator (eni, azure, crd writer)
    def used_with_prefixes(self, n: CloudNode) -> int:
        """``GetUsedIPWithPrefixes`` (cilium ``pkg/aws/eni/node.go``): from ``status.ipam.used``, a prefix
        with any address in use counts whole."""
        prefixes = {(u.subnet, u.offset) for u in n.units() if u.size > 1}
        singles, used_prefixes = 0, set()
        used = n.reported_addresses if self.prefix_use_from_status else {
            (u.subnet, u.offset + b) for u in n.units() for b in u.used}
        for subnet, address in used:
            block = (subnet, address & ~(PREFIX_SIZE - 1))
            if block in prefixes:
                used_prefixes.add(block)
            else:
                singles += 1
        return singles + PREFIX_SIZE * len(used_prefixes)

    def cilium_pass(self, node_id: int, n: CloudNode, now: float) -> bool:
        """``maintainIPPool`` (cilium ``pkg/ipam/node.go``): release excess, else resolve the deficit.

        ``available`` is the pool, ``used`` the agent's last status. With release on
        and excess above the watermarks the pass only releases, once the excess has
        lasted ``--excess-ip-release-delay`` (``determineMaintenanceAction``,
        ``handleIPRelease``; the marking handshake with the agent is collapsed).
        Otherwise it asks for ``needed + max-above-watermark + surge`` addresses on
        the first interface with room whose subnet has free addresses
        (``PrepareIPAllocation``, ``handleIPAllocation``), else creates an interface
        (``createInterface``, ``CreateInterface``). Returns whether the cloud changed.
        """
        c = n.cfg
        available, used = n.held, n.reported_used
        needed = cilium_needed(available, used, c.pre, c.min_allocate, c.max_allocate)
        used_for_excess = self.used_with_prefixes(n) if n.prefixes else used
        excess = cilium_excess(available, used_for_excess, c.pre, c.min_allocate, c.above)
        if c.release and excess > 0:
            if n.excess_since == math.inf:
                n.excess_since = now
            if now - n.excess_since < c.release_delay_s:
                return False
            n.excess_since = math.inf
            return self.cilium_release(n, excess, now)
        n.excess_since = math.inf
        if needed == 0:
            return False
        pending = self.host.nodes[node_id].pending  # the operator watches the node's Pending pods
        to_allocate = needed + c.above + max(pending - needed, 0)
        pd = self.prefix_delegated(n)
        unit = PREFIX_SIZE if pd else 1
        for iface in n.attached():
            if iface.index < c.first_iface or iface.room == 0:
                continue
            subnet = iface.subnet
            if self.subnets[subnet].free == 0 and c.any_subnet:
                # Azure: an IP configuration may come from any subnet of the VNet with room
                subnet = next((s for s, sub in enumerate(self.subnets) if sub.free > 0), subnet)
            free = self.subnets[subnet].free
            if free == 0:
                continue
            got = self.assign(n, iface, min(free, iface.room * unit, to_allocate), pd, c.fallback, subnet, True, now)
            if got:
                return got > 0  # added, or throttled (the operator waits for its token)
            break  # "Unable to assign additional IPs to interface, will create new interface"
        if not c.attach:
            return False  # Azure and crd: no interface to create
        index = next((i for i in range(c.first_iface, c.ifaces) if n.ifaces[i] is None), None)
        if index is None:
            return False  # "Instance is out of interfaces"
        wanted = min(to_allocate, c.units)  # min(MaxIPsToAllocate, limits.IPv4 - 1)
        if not self.call(n, ATTACH, now):
            return False
        subnet = self.eni_subnet(n)
        if self.subnets[subnet].free < 1 + (PREFIX_SIZE if pd else wanted):
            return False  # CreateNetworkInterface refused: the subnet is too full
        iface = self.attach(n, index, subnet, now)
        if self.assign(n, iface, wanted, pd, c.fallback, subnet, False, now) == 0:
            self.detach(n, iface)  # the create call fails as a whole
            return False
        return True

    def prefix_delegated(self, n: CloudNode) -> bool:
        """``IsPrefixDelegated`` (cilium ``pkg/aws/eni/node.go``): prefix delegation on, and no ENI holding
        secondary addresses without a prefix (the primary address is not one); always, with the dense arm."""
        if not n.pd:
            return False
        if self.cfg.strategy == 1:
            return True
        return not any(iface.units() and not iface.prefixes for iface in n.attached())

    def cilium_release(self, n: CloudNode, excess: int, now: float) -> bool:
        """``PrepareIPRelease`` + ``ReleaseIPs``: free addresses of the interface with the most free (never
        one holding prefixes: their release is not supported upstream)."""
        best, best_count = None, 0
        for iface in n.attached():
            if iface.index < self.cfg.first_iface or iface.prefixes:
                continue
            count = min(sum(1 for u in iface.units() if not u.used), excess)
            if count > best_count:
                best, best_count = iface, count
        if best is None or not self.call(n, RELEASE, now):
            return False
        free_slots = [k for k, u in enumerate(best.slots) if u is not None and not u.used][:best_count]
        for k in free_slots:
            self.drop_unit(best, k)
        return True

    # ------------------------------------------------------------------ ipamd (aws-vpc-cni)
    def ipamd_stats(self, n: CloudNode) -> tuple[int, int, int, int]:
        return n.held, n.in_use, n.prefixes, n.free_prefixes()

    def ipamd_pass(self, n: CloudNode, now: float) -> None:
        """``updateIPPoolIfRequired`` (aws/amazon-vpc-cni-k8s ``pkg/ipamd/ipamd.go``), every ``ipamdPoolInterval``:
        grow when too low, else shrink when too high (at most every ``decreaseIPPoolInterval``),
        then try to free an ENI."""
        t = n.ipamd
        stats = self.ipamd_stats(n)
        if ipamd_pool_too_low(*stats, t):
            self.ipamd_increase(n, now)
        elif ipamd_pool_too_high(*stats, t) and now - n.last_decrease > self.cfg.decrease_s:
            self.ipamd_decrease(n, now)
        self.ipamd_free_eni(n, now)

    def ipamd_increase(self, n: CloudNode, now: float) -> bool:
        """``increaseDatastorePool``: ``tryAssignIPs`` / ``tryAssignPrefixes`` on the first ENI with room, else
        ``tryAllocateENI``. When EC2 refuses the addresses, ``tryAssignIPs`` asks for one more; a request
        that still fails (``InsufficientCidrBlocks`` or ``InsufficientFreeAddressesInSubnet``) starts the
        2 min ``insufficientCidrErrorCooldown``."""
        t = n.ipamd
        if now < n.cooldown_until:
            return False
        total, assigned, prefixes, free_prefixes = self.ipamd_stats(n)
        short = ipamd_targets(total, assigned, prefixes, free_prefixes, t.warm_ip, t.min_ip, t.pd)[0]
        targets_set = bool(t.warm_ip or t.min_ip)
        if t.pd:  # getPrefixesNeeded: at least one
            want = max(1, short) if targets_set else max(1, t.warm_prefix - free_prefixes)
        elif targets_set:
            if short == 0:
                return False
            want = short
        else:
            want = t.per_eni  # WARM_ENI_TARGET: fill the ENI
        unit = PREFIX_SIZE if t.pd else 1
        for iface in n.attached():
            if iface.room == 0 or iface.index < n.cfg.first_iface:  # custom networking: eth0 holds no pod
                continue
            got = self.assign(n, iface, min(iface.room, want) * unit, t.pd, False, iface.subnet, True, now)
            if got == 0 and not t.pd and self.ipamd_one_more_ip:
                got = self.assign(n, iface, 1, False, False, iface.subnet, True, now)  # "Try to just get one more IP"
            if got == 0:
                n.cooldown_until = now + self.cfg.cooldown_s
            return got > 0
        if len(n.attached()) >= n.cfg.ifaces:
            return False  # hasRoomForEni
        count = min(want, t.per_eni)
        subnet = self.eni_subnet(n)
        if subnet is None or self.subnets[subnet].free < 1 + (0 if t.pd else count):
            n.cooldown_until = now + self.cfg.cooldown_s
            return False
        if not self.call(n, ATTACH, now):
            return False  # throttled: ipamd tries again on its next tick
        iface = self.attach(n, n.ifaces.index(None), subnet, now)
        if self.assign(n, iface, count * unit, t.pd, False, subnet, False, now) == 0:
            self.detach(n, iface)  # AllocENI fails as a whole
            n.cooldown_until = now + self.cfg.cooldown_s
            return False
        return True

    def ipamd_decrease(self, n: CloudNode, now: float) -> None:
        """``decreaseDatastorePool`` / ``tryUnassignCidrsFromAll``: free addresses (prefixes) above the targets,
        newest ENI and newest slot first, one unassign call per ENI."""
        t = n.ipamd
        total, assigned, prefixes, free_prefixes = self.ipamd_stats(n)
        if t.warm_ip or t.min_ip:
            over = ipamd_targets(total, assigned, prefixes, free_prefixes, t.warm_ip, t.min_ip, t.pd)[1]
        elif t.pd:
            over = max(free_prefixes - t.warm_prefix, 0)  # computeExtraPrefixesOverWarmTarget
        else:
            over = 0
        if over > 0 and self.throttled(n, RELEASE, now):
            return
        n.last_decrease = now
        for iface in reversed(n.attached()):
            freed = 0
            for k in range(len(iface.slots) - 1, -1, -1):
                unit = iface.slots[k]
                if over > 0 and unit is not None and not unit.used:
                    self.drop_unit(iface, k)
                    over -= 1
                    freed += 1
            if freed:
                self.api.spend(RELEASE, now)

    def ipamd_free_eni(self, n: CloudNode, now: float) -> bool:
        """``tryFreeENI``: detach the newest unused ENI (never eth0) older than ``minENILifeTime`` that the targets
        do not need (``shouldRemoveExtraENIs``, datastore ``getDeletableENI``, ``isRequiredFor*Target``)."""
        t = n.ipamd
        total, assigned, _, free_prefixes = self.ipamd_stats(n)
        secondary_unused = [i for i in n.attached() if i.index > 0 and i.in_use == 0]
        available = total - assigned
        if not (t.warm_ip or t.min_ip):
            warm, per_eni = (t.warm_prefix, t.per_eni * PREFIX_SIZE) if t.pd else (t.warm_eni, t.per_eni)
            if available < (warm + 1) * per_eni and not (t.pd and secondary_unused):
                return False
        min_life_us = int(self.cfg.eni_min_life_s * 1e6)
        for iface in reversed(secondary_unused):
            if int(now * 1e6) - int(iface.since * 1e6) < min_life_us:
                continue  # isTooYoung
            held = sum(u.size for u in iface.units())
            if self.eni_needed(n, available - held, total - held, free_prefixes - iface.prefixes):
                continue
            if not self.call(n, RELEASE, now):
                return False
            self.detach(n, iface)
            return True
        return False

    def eni_needed(self, n: CloudNode, other_free: int, other_total: int, other_free_prefixes: int) -> bool:
        """Datastore ``isRequiredForWarmIPTarget`` / ``...MinimumIPTarget`` / ``...WarmPrefixTarget``: the other
        ENIs alone would fall short (targets rounded up to whole prefixes with delegation)."""
        t = n.ipamd

        def whole(x: int) -> int:
            return -(-x // PREFIX_SIZE) * PREFIX_SIZE if t.pd else x

        if t.warm_ip and other_free < whole(t.warm_ip):
            return True
        if t.min_ip and other_total < whole(t.min_ip):
            return True
        return t.pd and t.warm_prefix != 0 and other_free_prefixes < t.warm_prefix

    # ------------------------------------------------------------------ AKS pod subnet, static writers
    def cns_pass(self, n: CloudNode, now: float) -> None:
        """CNS ``ipampool`` (``calculateTargetIPCount``): ``batch * ceil(pct/100 + demand / batch)`` addresses,
        capped; grows to it in one request, gives back free addresses down to it."""
        c = self.cfg
        demand = n.in_use - n.agent_reserved
        target = min(c.batch * -(-(c.batch_pct * c.batch + 100 * demand) // (100 * c.batch)), c.max_ips)
        nic = n.ifaces[0]
        if target > n.held:
            self.assign(n, nic, min(target - n.held, self.subnets[n.subnet].free_singles), False, False, n.subnet, True, now)
        elif target < n.held:
            surplus = n.held - target
            free_slots = [k for k in range(len(nic.slots) - 1, -1, -1) if nic.slots[k] and not nic.slots[k].used]
            for k in free_slots[:surplus]:
                self.drop_unit(nic, k)
            if free_slots:
                self.api.spend(RELEASE, now)

    def static_pass(self, n: CloudNode, now: float) -> None:
        """Write the node's pool once: AKS static block's ``ceil((maxPods + 1) / 16)`` /28s (AKS
        ``concepts-network-azure-cni-pod-subnet.md``), or ``cloud.crd.poolPerNode`` first-fit addresses."""
        if n.units():
            return
        sub, count, row = self.subnets[n.subnet], self.cfg.static_units, n.ifaces[0]
        if self.kind == AKS_STATIC:
            self.assign(n, row, count * PREFIX_SIZE, True, False, n.subnet, True, now)
            return
        self.api.spend(ASSIGN, now)
        if sub.free_singles >= count:
            for _ in range(count):
                self.add_unit(row, n.subnet, sub.take_first(), 1)

    # ------------------------------------------------------------------ sampling
    def free_elsewhere(self, node_id: int) -> bool:
        """Free addresses in the subnets or in another node's pool."""
        return any(s.free for s in self.subnets) or any(n.free for i, n in self.nodes.items() if i != node_id)

    def sample(self, nodes: int) -> dict[str, int | float]:
        """The address columns of the trace, from the state."""
        present = list(self.nodes.values())
        carved = sum(len(s.taken) for s in self.subnets)
        pool = sum(s.size for s in self.subnets)
        reserved = sum(s.cloud_reserved for s in self.subnets) + sum(
            n.agent_reserved + sum(1 for i in n.attached() if i.primary >= 0) for n in present)
        used = sum(n.in_use - n.agent_reserved for n in present)
        orders = [s.largest_free_order() for s in self.subnets]
        count = self.count
        return {
            "addrs_pool": pool,
            "addrs_carved": carved,
            "addrs_reserved": reserved,
            "addrs_used": used,
            "addrs_idle": carved - reserved - used,
            "addrs_uncarved": pool - carved,
            "node_cidrs": sum(len(n.units()) for n in present),
            "carvable_node_cidrs": sum(s.free for s in self.subnets),
            "largest_free_block": max([1 << o for o in orders if o >= 0], default=0),
            "cidr_carves": count.carves,
            "cidr_releases": count.releases,
            "warm_addrs_per_node": sum(n.free for n in present) / nodes if nodes else 0.0,
            "interfaces": sum(len(n.attached()) for n in present) if self.cfg.nic else 0,
            "prefixes": sum(n.prefixes for n in present),
            "frag_failures": count.frag_failures,
            **self.api.columns(),
        }
