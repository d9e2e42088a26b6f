"""Calico IPAM in plain Python: the oracle for ``ipam_core/modes/calico_rules.py``.

Written again from projectcalico/calico v3.31.7 with plain containers, the way the
upstream code reads: a block is an object with an ``unallocated`` list of ordinals and an
``allocations`` dict (ordinal -> node), kept in a dict keyed by (pool, block index); a
node's affine blocks are found by scanning the blocks and sorted by their
Kubernetes object name; the block walk is a generator like ``randomBlockGenerator``, its
start drawn from a Go ``math/rand`` written again here (only the ``rngCooked`` table, data,
is shared with the compiled code). Nothing is cached: every walk seeds a new generator.

Choices the compiled rules make where upstream leaves an order open (docs/calico.md), made
the same way here so that the two can be compared exactly: empty blocks are released
node by node (node ids ascending) in each node's datastore order; the addresses of a
deleted node and leaked addresses are released in ascending ordinal order within a block.

Upstream files followed: ``libcalico-go/lib/ipam/ipam.go`` (``autoAssign``,
``findOrClaimBlock``, ``determinePools``), ``ipam_block_reader_writer.go``
(``findUsableBlock``, ``randomBlockGenerator``, ``determineSeed``), ``ipam_block.go``
(``autoAssign``, ``release``), ``kube-controllers/pkg/controllers/node/ipam.go``
(``releaseUnusedBlocks``, ``checkAllocations``, ``cleanupNode``).
"""

from __future__ import annotations

import ipaddress

from ipam_core.modes.calico_gorand import RNG_COOKED

# Error codes, as ipam_core/modes/calico_tables.py numbers them (values, not logic).
E_NO_POOLS, E_BLOCK_LIMIT, E_EXHAUSTED, E_STRICT, E_NO_AUTO = -1, -2, -3, -4, -5
DEFAULT_MAX_BLOCKS = 20
RECLAIM_AGE_S = 60.0
_COOKED = [int(v) for v in RNG_COOKED]


def fnv1_32(text: str) -> int:
    """hash/fnv New32 (FNV-1: multiply, then XOR)."""
    h = 2166136261
    for byte in text.encode():
        h = (h * 16777619) % 2**32
        h ^= byte
    return h


class GoRand:
    """``rand.New(rand.NewSource(seed))`` of Go's math/rand, with the methods Calico and the tests use."""

    def __init__(self, seed: int):
        m = 2**31 - 1
        seed = seed % m if seed >= 0 else -((-seed) % m)  # Go's % keeps the sign of the dividend
        if seed < 0:
            seed += m
        if seed == 0:
            seed = 89482311
        self.tap, self.feed = 0, 607 - 273
        self.vec = [0] * 607
        x = seed
        for i in range(-20, 607):
            x = self._seedrand(x)
            if i >= 0:
                u = x << 40
                x = self._seedrand(x)
                u ^= x << 20
                x = self._seedrand(x)
                u ^= x
                u ^= _COOKED[i]
                self.vec[i] = u % 2**63

    @staticmethod
    def _seedrand(x: int) -> int:
        hi, lo = divmod(x, 44488)
        x = 48271 * lo - 3399 * hi
        return x + 2**31 - 1 if x < 0 else x

    def int63(self) -> int:
        self.tap = (self.tap - 1) % 607
        self.feed = (self.feed - 1) % 607
        value = (self.vec[self.feed] + self.vec[self.tap]) % 2**63
        self.vec[self.feed] = value
        return value

    def uint32(self) -> int:
        return self.int63() >> 31

    def int31n(self, n: int) -> int:
        """``Rand.Int31n`` (what ``Intn`` calls for small n)."""
        if n & (n - 1) == 0:
            return (self.int63() >> 32) & (n - 1)
        top = 2**31 - 1 - (2**31 % n)
        value = self.int63() >> 32
        while value > top:
            value = self.int63() >> 32
        return value % n

    def big_below(self, limit: int) -> int:
        """``new(big.Int).Rand(r, limit)`` on a 64-bit machine."""
        words = (limit.bit_length() + 63) // 64
        top_bits = limit.bit_length() % 64 or 64
        while True:
            value = 0
            for i in range(words):
                word = self.uint32() | (self.uint32() << 32)
                if i == words - 1:
                    word &= (1 << top_bits) - 1
                value |= word << (64 * i)
            if value < limit:
                return value


class Pool:
    """An IPPool: CIDR, block size, whether enabled / Automatic / for workloads."""

    def __init__(self, name, cidr, block_size, enabled=True, automatic=True, workload=True):
        self.name = name
        self.cidr = ipaddress.ip_network(cidr)
        self.block_size = block_size
        self.enabled, self.automatic, self.workload = enabled, automatic, workload
        self.block_bits = self.cidr.max_prefixlen - block_size
        self.n_blocks = 2 ** (block_size - self.cidr.prefixlen)

    def block(self, index: int):
        first = int(self.cidr.network_address) + index * 2**self.block_bits
        return ipaddress.ip_network((first, self.block_size))


class Block:
    """An AllocationBlock: affinity, claim time, Unallocated, allocations, and the controller's view of it."""

    def __init__(self, pool: int, index: int, cidr, node: int, now: float):
        self.pool, self.index, self.cidr = pool, index, cidr
        self.affinity = node
        self.claim_time = now
        self.unallocated = list(range(cidr.num_addresses))
        self.allocations: dict[int, int] = {}
        self.leaks: dict[int, float] = {}
        self.empty_mark = None  # blockReleaseTracker: first sync that saw it empty
        self.empty_since = now


class CalicoReference:
    """The allocator, one object per simulated cluster.

    Parameters
    ----------
    pools : list of Pool
        Sorted by name.
    node_names : list of str
    strict_affinity, auto_allocate_blocks, max_blocks_per_host, leak_grace_s
        IPAMConfiguration and kube-controllers settings.
    poolsets : list of (pool indexes, explicit)
        The pools a request may use, one row per choice.
    node_pool_ok : list of list of bool, optional
        ``node_pool_ok[node][pool]``: the pool's nodeSelector selects the node.
    """

    def __init__(self, pools, node_names, *, strict_affinity=False, auto_allocate_blocks=True,
                 max_blocks_per_host=0, leak_grace_s=900.0, poolsets=None, node_pool_ok=None):
        self.pools = pools
        self.node_names = list(node_names)
        self.strict = strict_affinity
        self.auto = auto_allocate_blocks
        self.max_blocks = max_blocks_per_host
        self.grace = leak_grace_s
        self.poolsets = poolsets or [
            ([i for i, p in enumerate(pools) if p.cidr.version == v and p.enabled and p.automatic and p.workload],
             False) for v in (4, 6)]
        self.node_pool_ok = node_pool_ok or [[True] * len(pools) for _ in node_names]
        self.blocks: dict[tuple[int, int], Block] = {}
        self.alive = [False] * len(node_names)
        self.counts = {"claims": 0, "reclaims": 0, "block_releases": 0, "allocs": 0, "borrows": 0, "fails": 0,
                       "releases": 0, "leaks_gc": 0}
        self.release_delays: list[float] = []

    # ------------------------------------------------------------------ lookups
    def affine(self, node: int) -> list[Block]:
        """The node's blocks as the Kubernetes API lists BlockAffinity objects: by name."""
        def name(b: Block) -> bytes:  # libcalico-go names.CIDRToName
            return f"{self.node_names[node]}-{b.cidr}".replace(".", "-").replace(":", "-").replace("/", "-").encode()
        return sorted((b for b in self.blocks.values() if b.affinity == node), key=name)

    def walk(self, node: int, pool: int, now: float):
        """randomBlockGenerator: indexes from a seeded start, wrapping, each once."""
        p = self.pools[pool]
        seed = int(now * 1e9) if p.block_bits == 0 else fnv1_32(self.node_names[node])
        start = GoRand(seed).big_below(p.n_blocks)
        for i in range(p.n_blocks):
            yield (start + i) % p.n_blocks

    def chosen(self, node: int, poolset: int) -> list[int]:
        ids, explicit = self.poolsets[poolset]
        if explicit:
            return list(ids)
        return [i for i in ids if self.pools[i].enabled and self.node_pool_ok[node][i]]

    # ------------------------------------------------------------------ blocks
    def _claim(self, pool: int, index: int, node: int, now: float) -> Block:
        block = Block(pool, index, self.pools[pool].block(index), node, now)
        self.blocks[pool, index] = block
        self.counts["claims"] += 1
        self._sync_sees_empties(node, now)
        return block

    def _sync_sees_empties(self, node: int, now: float):
        mine = self.affine(node)
        if len(mine) > 1:
            for b in mine:
                if not b.allocations and b.empty_mark is None:
                    b.empty_mark = now

    def _delete(self, block: Block):
        del self.blocks[block.pool, block.index]
        self.counts["block_releases"] += 1

    def _take(self, block: Block, node: int, now: float):
        ordinal = block.unallocated.pop(0)
        block.allocations[ordinal] = node
        block.empty_mark = None
        block.empty_since = None
        if block.affinity != node:
            self.counts["borrows"] += 1
        self.counts["allocs"] += 1
        return block.pool, block.index, ordinal

    # ------------------------------------------------------------------ operations
    def node_added(self, node: int):
        self.alive[node] = True

    def assign(self, node: int, poolset: int, now: float):
        """One address: (pool, block index, ordinal), or a negative error code."""
        pools = self.chosen(node, poolset)
        if not pools:
            self.counts["fails"] += 1
            return E_NO_POOLS
        mine = [b for b in self.affine(node) if b.pool in pools]
        for block in mine:
            if block.unallocated:
                return self._take(block, node, now)
        if len(mine) >= (self.max_blocks or DEFAULT_MAX_BLOCKS):
            self.counts["fails"] += 1
            return E_BLOCK_LIMIT
        if not self.auto:
            self.counts["fails"] += 1
            return E_NO_AUTO
        block = self.find_usable_block(node, pools, now)
        if block is not None:
            return self._take(block, node, now)
        if self.strict:
            self.counts["fails"] += 1
            return E_STRICT
        for pool in pools:  # borrow: any existing block with a free address, in walk order
            for index in self.walk(node, pool, now):
                block = self.blocks.get((pool, index))
                if block is not None and block.unallocated:
                    return self._take(block, node, now)
        self.counts["fails"] += 1
        return E_EXHAUSTED

    def find_usable_block(self, node: int, pools: list[int], now: float):
        for pool in pools:
            for index in self.walk(node, pool, now):
                block = self.blocks.get((pool, index))
                if block is None:
                    return self._claim(pool, index, node, now)
                if block.affinity == node and block.unallocated:
                    return block
        for pool in pools:
            for index in self.walk(node, pool, now):
                block = self.blocks.get((pool, index))
                if (block.affinity is not None and block.affinity != node and not block.allocations
                        and now - block.claim_time >= RECLAIM_AGE_S):
                    self._delete(block)
                    self.counts["reclaims"] += 1
                    return self._claim(pool, index, node, now)
        return None

    def release(self, pool: int, index: int, ordinal: int, now: float) -> bool:
        block = self.blocks.get((pool, index))
        if block is None or ordinal not in block.allocations:
            return False
        del block.allocations[ordinal]
        block.leaks.pop(ordinal, None)
        block.unallocated.append(ordinal)
        self.counts["releases"] += 1
        if not block.allocations:
            if block.affinity is None:
                self._delete(block)
            else:
                block.empty_since = now
                if len(self.affine(block.affinity)) > 1 and block.empty_mark is None:
                    block.empty_mark = now
        return True

    def release_empty_blocks(self, now: float) -> int:
        if self.grace <= 0:
            return 0
        released = 0
        for node in range(len(self.node_names)):
            for block in self.affine(node):
                if block.allocations or len(self.affine(node)) <= 1:
                    continue
                if block.empty_mark is None:
                    block.empty_mark = now
                elif now - block.empty_mark > self.grace:
                    self.release_delays.append(now - block.empty_since)
                    self._delete(block)
                    released += 1
        return released

    def mark_leaked(self, pool: int, index: int, ordinal: int, now: float):
        block = self.blocks.get((pool, index))
        if block is not None and ordinal in block.allocations and ordinal not in block.leaks:
            block.leaks[ordinal] = now

    def gc_leaks(self, now: float) -> int:
        if self.grace <= 0:
            return 0
        due = sorted((b.pool, b.index, o) for b in self.blocks.values() for o, t in b.leaks.items()
                     if now - t >= self.grace)
        for pool, index, ordinal in due:
            self.release(pool, index, ordinal, now)
            self.counts["leaks_gc"] += 1
        return len(due)

    def node_deleted(self, node: int, now: float):
        self.alive[node] = False
        mine = {(b.pool, b.index) for b in self.affine(node)}
        held = sorted((b.pool, b.index, o) for b in self.blocks.values() for o, n in b.allocations.items()
                      if n == node)
        for key in [k for k in held if k[:2] not in mine] + [k for k in held if k[:2] in mine]:
            self.release(*key, now)
        for block in reversed(self.affine(node)):
            if block.allocations:
                block.affinity = None
            else:
                self._delete(block)

    # ------------------------------------------------------------------ views
    def node_metrics(self, node: int) -> dict:
        """blocks, empty_blocks, used, free, stranded, borrowed, lent per family (0: IPv4, 1: IPv6)."""
        out = {f: dict.fromkeys(("blocks", "empty_blocks", "used", "free", "stranded", "borrowed", "lent"), 0)
               for f in (0, 1)}
        for block in self.blocks.values():
            f = 0 if block.cidr.version == 4 else 1
            out[f]["borrowed"] += sum(1 for n in block.allocations.values() if n == node and block.affinity != node)
            if block.affinity != node:
                continue
            used, free = len(block.allocations), len(block.unallocated)
            out[f]["blocks"] += 1
            out[f]["used"] += used
            out[f]["free"] += free
            out[f]["lent"] += sum(1 for n in block.allocations.values() if n != node)
            if used == 0:
                out[f]["empty_blocks"] += 1
            elif free:
                out[f]["stranded"] += free
        return out
