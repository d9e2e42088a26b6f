"""The plain numpy tables of Calico IPAM, and how they are built from pools and settings.

One :class:`CalicoTables` namedtuple holds the whole allocator state that the compiled
rules in :mod:`ipam_core.modes.calico_rules` read and write: the IP pools, the claimed
blocks (affinity node, claim time, the ``Unallocated`` ordinal queue, who holds each
address), each pool's claimed block indexes in order (for the block walk), each node's
affine blocks in datastore order, the pool choices pods can make, the configuration as
numbers, counters and a scratch Go generator. Nothing here is Python per address.

Addresses handed out are *packed* ``int64`` values: ``slot << ADDR_SHIFT | ordinal``
(block slot in the tables, ordinal in the block). Negative values are the error codes
``E_*``; :data:`ERROR_TEXT` has upstream's wording for each.
"""

from __future__ import annotations

import ipaddress
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ipam_core.errors import ConfigError
from ipam_core.modes.calico_gorand import RNG_LEN, fnv1_32

#: ``maxBlocksPerHost`` when neither the request nor IPAMConfiguration sets one (v3.31.7 ``autoAssign``).
DEFAULT_MAX_BLOCKS = 20
#: kube-controllers ``LeakGracePeriod`` default, also the empty-block release grace.
DEFAULT_GRACE_S = 900.0
#: ``EmptyBlockMinReclaimAge`` (ipam_block_reader_writer.go).
RECLAIM_AGE_S = 60.0
#: kube-controllers' periodic IPAM sync without a grace period (grace/2 otherwise).
DEFAULT_SYNC_PERIOD_S = 300.0

#: Bytes of a block's affinity name: the longest IPv6 text (39), "-", the prefix length (3).
NAME_LEN = 44
#: Ordinals per block fit in 12 bits (/20 and /116 blocks hold 4096 addresses).
ADDR_SHIFT = 12
ORDINAL_MASK = (1 << ADDR_SHIFT) - 1

# ---------------------------------------------------------------- error codes (negative packed values)
E_NO_POOLS = -1  # determinePools found nothing for this node
E_BLOCK_LIMIT = -2  # ErrBlockLimit: no room in affine blocks and the node is at maxBlocksPerHost
E_EXHAUSTED = -3  # no block could be claimed and borrowing found no free address
E_STRICT = -4  # no block could be claimed and strictAffinity forbids borrowing
E_NO_AUTO = -5  # autoAllocateBlocks false and no affine block has room
E_CAPACITY = -6  # the simulation's block table is full (not an upstream failure)

#: Upstream's words for each error code; ``{node}``, ``{limit}``, ``{pools}``, ``{family}`` filled in.
ERROR_TEXT = {
    E_NO_POOLS: "no configured Calico pools for node {node}",
    E_BLOCK_LIMIT: ("cannot allocate new block due to per host block limit (Need to allocate an IPAM block but "
                    "could not - limit of {limit} blocks reached for this node)"),
    E_EXHAUSTED: "Assigned 0 out of 1 requested IPv{family} addresses; No IPs available in pools: [{pools}]",
    E_STRICT: ("Assigned 0 out of 1 requested IPv{family} addresses; No more free affine blocks and strict "
               "affinity enabled"),
    E_NO_AUTO: "failed to find or claim a block",
    E_CAPACITY: "the simulation's Calico block table is full ({capacity} blocks); raise block_capacity",
}

# ---------------------------------------------------------------- cfg (int64) and fcfg (float64) columns
CFG_STRICT = 0  # IPAMConfiguration strictAffinity
CFG_AUTO_ALLOCATE = 1  # autoAllocateBlocks
CFG_MAX_BLOCKS = 2  # maxBlocksPerHost as configured (0: none; the request then gets DEFAULT_MAX_BLOCKS)
CFG_QUEUE = 3  # width of the per-block ordinal rows
CFG_NCOL = 4
F_GRACE = 0  # LeakGracePeriod in seconds (0: kube-controllers never releases empty blocks)
F_RECLAIM_AGE = 1  # EmptyBlockMinReclaimAge in seconds
F_NCOL = 2

# ---------------------------------------------------------------- counters (int64)
K_FREE_SLOTS = 0  # entries on the free-slot stack
K_CLAIMS = 1  # blocks claimed (new, or taken over from another node)
K_RECLAIMS = 2  # of those, empty blocks taken over from another node
K_BLOCK_RELEASES = 3  # blocks deleted (empty-block release, node cleanup, last address of an orphan block)
K_ALLOCS = 4  # addresses assigned
K_BORROWS = 5  # of those, from a block not affine to the pod's node
K_FAILS = 6  # failed assignments
K_RELEASES = 7  # addresses released
K_LEAKS_GC = 8  # leaked addresses released by the leak GC
K_NCOL = 9
# stats (float64 [family, S_NCOL]): how long released affine blocks had been empty
S_DELAY_SUM = 0
S_DELAY_MAX = 1
S_DELAY_COUNT = 2
S_NCOL = 3

# ---------------------------------------------------------------- per-node metric columns (node_metrics)
NM_BLOCKS = 0  # affine blocks
NM_EMPTY_BLOCKS = 1  # affine blocks with no address in use
NM_USED = 2  # addresses in use in the node's affine blocks (by any node's pods)
NM_FREE = 3  # free addresses in the node's affine blocks
NM_STRANDED = 4  # free addresses in the node's partly used affine blocks
NM_BORROWED = 5  # addresses the node's pods hold in blocks not affine to it
NM_LENT = 6  # addresses of the node's affine blocks held by other nodes' pods
NM_NCOL = 7
NM_NAMES = ("blocks", "empty_blocks", "used", "free", "stranded", "borrowed", "lent")

CalicoTables = namedtuple("CalicoTables", [
    "cfg",  # int64 [CFG_NCOL]
    "fcfg",  # float64 [F_NCOL]
    "counters",  # int64 [K_NCOL]
    "stats",  # float64 [2, S_NCOL]: per family
    # pools, in the order upstream lists enabled pools (by name)
    "pool_family",  # int8 [P]: 0 IPv4, 1 IPv6
    "pool_base_hi", "pool_base_lo",  # uint64 [P]: first address
    "pool_block_bits",  # int64 [P]: host bits of a block (32 - blockSize or 128 - blockSize)
    "pool_n_blocks",  # uint64 [P]
    "pool_enabled",  # int8 [P]
    "pool_time_seeded",  # int8 [P]: /32 or /128 blocks: the walk is seeded by the clock, not the hostname
    "pool_sorted_idx",  # uint64 [P, C]: claimed block indexes, ascending
    "pool_sorted_slot",  # int32 [P, C]: their slots
    "pool_nclaimed",  # int32 [P]
    # pool choices: each row an ordered list of pools (-1 padded); explicit rows ignore node selectors
    "poolset",  # int32 [S, P]
    "poolset_explicit",  # int8 [S]
    # nodes
    "node_pool_ok",  # int8 [N, P]: the pool's nodeSelector matches the node
    "node_seed",  # int64 [N]: FNV-1 of the hostname
    "node_start",  # uint64 [N, P]: first block of the hostname-seeded walk
    "node_alive",  # int8 [N]
    "node_blk",  # int32 [N, M]: affine block slots in datastore order
    "node_nblk",  # int32 [N]
    "node_borrowed",  # int32 [N, 2]: addresses held in blocks not affine to the node, per family
    # blocks (slots)
    "blk_used",  # int8 [C]
    "blk_pool",  # int32 [C]
    "blk_index",  # uint64 [C]: block index inside its pool
    "blk_node",  # int32 [C]: affinity (-1: none)
    "blk_claim_t",  # float64 [C]: AffinityClaimTime
    "blk_name",  # uint8 [C, NAME_LEN]: the affinity's object name without "<host>-" ("10-0-0-96-28"), 0-padded
    "blk_size",  # int32 [C]: addresses
    "blk_nfree",  # int32 [C]: len(Unallocated)
    "blk_head",  # int32 [C]: first entry of the Unallocated ring
    "blk_foreign",  # int32 [C]: addresses in use by pods of a node other than the affinity
    "blk_q",  # int32 [C, Q]: Unallocated, a ring of ordinals
    "blk_owner",  # int32 [C, Q]: node whose pod holds the ordinal (-1: free)
    "blk_leak_t",  # float64 [C, Q]: when the address became a leak candidate (-1: not leaked)
    "blk_empty_mark",  # float64 [C]: blockReleaseTracker's first empty sighting (-1: none)
    "blk_empty_since",  # float64 [C]: when the block last became empty (-1: in use)
    "free_slots",  # int32 [C]: stack of unused slots
    # scratch
    "scratch_text",  # uint8 [64]: address text
    "scratch_index",  # int64 [1]
    "scratch_bounds",  # int64 [2]
    "rng_vec",  # uint64 [607]
    "rng_state",  # int64 [2]
    "scratch_pools",  # int32 [P]
])


@dataclass(frozen=True)
class PoolRule:
    """One IPPool as the allocator needs it.

    Attributes
    ----------
    name : str
    cidr : ipaddress.IPv4Network or ipaddress.IPv6Network
    block_size : int
        Prefix length of the pool's blocks.
    enabled : bool
        ``not spec.disabled``.
    automatic : bool
        ``assignmentMode: Automatic``.
    workload : bool
        ``allowedUses`` includes ``Workload``.
    """

    name: str
    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    block_size: int
    enabled: bool = True
    automatic: bool = True
    workload: bool = True

    @property
    def family(self) -> int:
        """0 for IPv4, 1 for IPv6."""
        return 0 if self.cidr.version == 4 else 1

    @property
    def block_bits(self) -> int:
        """Host bits of one block."""
        return self.cidr.max_prefixlen - self.block_size

    @property
    def n_blocks(self) -> int:
        """Blocks in the pool."""
        return 1 << (self.block_size - self.cidr.prefixlen)


def automatic_poolset(pools: Sequence[PoolRule], family: int) -> tuple[int, ...]:
    """Pools a pod without annotation may use: enabled, Automatic, for workloads, of the family.

    Parameters
    ----------
    pools : sequence of PoolRule
        In table order (by name).
    family : int

    Returns
    -------
    tuple of int
        Pool indexes, in table order.
    """
    return tuple(i for i, p in enumerate(pools) if p.family == family and p.enabled and p.automatic and p.workload)


def new_tables(pools: Sequence[PoolRule], node_names: Sequence[str], *, strict_affinity: bool = False,
               auto_allocate_blocks: bool = True, max_blocks_per_host: int = 0,
               leak_grace_s: float = DEFAULT_GRACE_S, poolsets: Sequence[tuple[tuple[int, ...], bool]] | None = None,
               node_pool_ok: np.ndarray | None = None, block_capacity: int | None = None,
               node_block_capacity: int | None = None) -> CalicoTables:
    """Empty allocator tables for the given pools, nodes and IPAMConfiguration.

    Parameters
    ----------
    pools : sequence of PoolRule
        Sorted by name (the order ``GetEnabledPools`` returns and the block search walks).
    node_names : sequence of str
        Node id -> hostname; the hostname seeds the block search.
    strict_affinity, auto_allocate_blocks, max_blocks_per_host
        IPAMConfiguration ``spec`` (``maxBlocksPerHost`` 0: none configured).
    leak_grace_s : float
        kube-controllers ``LeakGracePeriod`` (0: never release empty blocks or leaks).
    poolsets : sequence of (pool indexes, explicit), optional
        The pool choices pods make, row = poolset id. Default: row 0 the automatic IPv4
        pools, row 1 the automatic IPv6 pools.
    node_pool_ok : numpy.ndarray, optional
        int8 [nodes, pools]: whether each pool's nodeSelector selects each node (default all).
    block_capacity : int, optional
        Block slots (default: every block of the pools, at most 65,536).
    node_block_capacity : int, optional
        Affine blocks one node may hold in the tables (default: the effective block limit
        times the number of pools, plus one per pool).

    Returns
    -------
    CalicoTables

    Raises
    ------
    ConfigError
        Pools not sorted by name, a pool with more than 2**62 blocks, or a block of more
        than 4096 addresses.
    """
    if [p.name for p in pools] != sorted(p.name for p in pools):
        raise ConfigError("Calico pools must be given sorted by name (upstream walks them in that order)")
    n_pools = len(pools)
    n_nodes = len(node_names)
    for p in pools:
        if p.n_blocks > 1 << 62:
            raise ConfigError(f"pool {p.name} ({p.cidr}) has 2^{p.block_size - p.cidr.prefixlen} blocks of "
                              f"/{p.block_size}; expected at most 2^62 (the simulation indexes blocks in 64 bits)")
        if p.block_bits > ADDR_SHIFT:
            raise ConfigError(f"pool {p.name}: blockSize {p.block_size} holds 2^{p.block_bits} addresses; "
                              f"expected at most 2^{ADDR_SHIFT}")
    queue = max([1 << p.block_bits for p in pools] or [1])
    total_blocks = sum(p.n_blocks for p in pools)
    cap = int(block_capacity or min(total_blocks, 65_536) or 1)
    limit = max_blocks_per_host or DEFAULT_MAX_BLOCKS
    per_node = int(node_block_capacity or (limit + 1) * max(n_pools, 1))
    if poolsets is None:
        poolsets = [(automatic_poolset(pools, 0), False), (automatic_poolset(pools, 1), False)]
    cfg = np.zeros(CFG_NCOL, dtype=np.int64)
    cfg[CFG_STRICT] = int(strict_affinity)
    cfg[CFG_AUTO_ALLOCATE] = int(auto_allocate_blocks)
    cfg[CFG_MAX_BLOCKS] = int(max_blocks_per_host)
    cfg[CFG_QUEUE] = queue
    fcfg = np.zeros(F_NCOL, dtype=np.float64)
    fcfg[F_GRACE] = float(leak_grace_s)
    fcfg[F_RECLAIM_AGE] = RECLAIM_AGE_S
    counters = np.zeros(K_NCOL, dtype=np.int64)
    counters[K_FREE_SLOTS] = cap
    pset = np.full((max(len(poolsets), 1), max(n_pools, 1)), -1, dtype=np.int32)
    explicit = np.zeros(max(len(poolsets), 1), dtype=np.int8)
    for row, (ids, is_explicit) in enumerate(poolsets):
        pset[row, :len(ids)] = ids
        explicit[row] = int(is_explicit)
    base = [int(p.cidr.network_address) for p in pools]
    ok = (np.ones((n_nodes, n_pools), dtype=np.int8) if node_pool_ok is None
          else np.ascontiguousarray(node_pool_ok, dtype=np.int8))
    return CalicoTables(
        cfg=cfg, fcfg=fcfg, counters=counters, stats=np.zeros((2, S_NCOL), dtype=np.float64),
        pool_family=np.array([p.family for p in pools], dtype=np.int8),
        pool_base_hi=np.array([b >> 64 for b in base], dtype=np.uint64),
        pool_base_lo=np.array([b & ((1 << 64) - 1) for b in base], dtype=np.uint64),
        pool_block_bits=np.array([p.block_bits for p in pools], dtype=np.int64),
        pool_n_blocks=np.array([p.n_blocks for p in pools], dtype=np.uint64),
        pool_enabled=np.array([p.enabled for p in pools], dtype=np.int8),
        pool_time_seeded=np.array([p.block_bits == 0 for p in pools], dtype=np.int8),
        pool_sorted_idx=np.zeros((n_pools, cap), dtype=np.uint64),
        pool_sorted_slot=np.full((n_pools, cap), -1, dtype=np.int32),
        pool_nclaimed=np.zeros(n_pools, dtype=np.int32),
        poolset=pset, poolset_explicit=explicit,
        node_pool_ok=ok,
        node_seed=np.array([fnv1_32(n) for n in node_names], dtype=np.int64),
        node_start=np.zeros((n_nodes, n_pools), dtype=np.uint64),
        node_alive=np.zeros(n_nodes, dtype=np.int8),
        node_blk=np.full((n_nodes, per_node), -1, dtype=np.int32),
        node_nblk=np.zeros(n_nodes, dtype=np.int32),
        node_borrowed=np.zeros((n_nodes, 2), dtype=np.int32),
        blk_used=np.zeros(cap, dtype=np.int8),
        blk_pool=np.full(cap, -1, dtype=np.int32),
        blk_index=np.zeros(cap, dtype=np.uint64),
        blk_node=np.full(cap, -1, dtype=np.int32),
        blk_claim_t=np.zeros(cap, dtype=np.float64),
        blk_name=np.zeros((cap, NAME_LEN), dtype=np.uint8),
        blk_size=np.zeros(cap, dtype=np.int32),
        blk_nfree=np.zeros(cap, dtype=np.int32),
        blk_head=np.zeros(cap, dtype=np.int32),
        blk_foreign=np.zeros(cap, dtype=np.int32),
        blk_q=np.zeros((cap, queue), dtype=np.int32),
        blk_owner=np.full((cap, queue), -1, dtype=np.int32),
        blk_leak_t=np.full((cap, queue), -1.0, dtype=np.float64),
        blk_empty_mark=np.full(cap, -1.0, dtype=np.float64),
        blk_empty_since=np.full(cap, -1.0, dtype=np.float64),
        free_slots=np.arange(cap - 1, -1, -1, dtype=np.int32),  # pop from the end: slot 0 first
        scratch_text=np.zeros(64, dtype=np.uint8),
        scratch_index=np.zeros(1, dtype=np.int64),
        scratch_bounds=np.zeros(2, dtype=np.int64),
        rng_vec=np.zeros(RNG_LEN, dtype=np.uint64),
        rng_state=np.zeros(2, dtype=np.int64),
        scratch_pools=np.zeros(max(n_pools, 1), dtype=np.int32),
    )


def block_network(pools: Sequence[PoolRule], pool: int, index: int):
    """The CIDR of block ``index`` of pool ``pool``.

    Parameters
    ----------
    pools : sequence of PoolRule
    pool, index : int

    Returns
    -------
    ipaddress.IPv4Network or ipaddress.IPv6Network
    """
    rule = pools[pool]
    first = int(rule.cidr.network_address) + (index << rule.block_bits)
    return ipaddress.ip_network((first, rule.block_size))


def unpack(packed: int) -> tuple[int, int]:
    """``(slot, ordinal)`` of a packed address."""
    return packed >> ADDR_SHIFT, packed & ORDINAL_MASK
