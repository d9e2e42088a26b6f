"""Calico IPAM's allocator rules, compiled, over :class:`~ipam_core.modes.calico_tables.CalicoTables`.

Follows projectcalico/calico v3.31.7:

* ``libcalico-go/lib/ipam/ipam.go`` ``autoAssign`` / ``blockAssignState.findOrClaimBlock``:
  the node's affine blocks in datastore order, the first with a free address; else, below
  ``maxBlocksPerHost`` (the request's and the config's, 20 when neither sets one), a new
  block; else ``ErrBlockLimit`` (no borrowing); when no block can be claimed
  (``noFreeBlocksError``) and ``strictAffinity`` is off, a borrowed address from any block
  in the hostname-seeded walk order.
* ``libcalico-go/lib/ipam/ipam_block_reader_writer.go`` ``findUsableBlock``: per pool, the
  walk from ``randomBlockGenerator``'s start, wrapping, takes the first block index with
  no block (or an own block with room); when every pool is full of blocks, an empty block
  of another node claimed at least ``EmptyBlockMinReclaimAge`` (1 min) ago is taken over.
* ``libcalico-go/lib/ipam/ipam_block.go``: ``Unallocated`` is a queue of ordinals, 0..N-1
  at creation; ``autoAssign`` takes from the front, ``release`` appends to the back; an
  empty block without affinity is deleted on its last release (``releaseIPsFromBlock``).

Every function works on one address or one block; callers loop in compiled code.
kube-controllers' passes and node deletion are in :mod:`ipam_core.modes.calico_controllers`.
"""

from __future__ import annotations

import numpy as np

from ipam_core.kernels._jit import kjit
from ipam_core.kernels.addrfmt import fmt_ipv4, fmt_ipv6
from ipam_core.modes.calico_gorand import block_walk_start
from ipam_core.modes.calico_tables import (ADDR_SHIFT, CFG_AUTO_ALLOCATE, CFG_MAX_BLOCKS, CFG_STRICT,
                                           DEFAULT_MAX_BLOCKS, E_BLOCK_LIMIT, E_CAPACITY, E_EXHAUSTED,
                                           E_NO_AUTO, E_NO_POOLS, E_STRICT, F_RECLAIM_AGE, K_ALLOCS,
                                           K_BLOCK_RELEASES, K_BORROWS, K_CLAIMS, K_FAILS, K_FREE_SLOTS,
                                           K_RECLAIMS, K_RELEASES, ORDINAL_MASK)

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_CLAIM_FULL = -2  # _find_usable: the tables have no slot left
_DASH = 45
_DOT = 46
_COLON = 58


# ---------------------------------------------------------------------------- the order of affinities
@kjit
def _write_name(t, slot, pool, index):
    # Kubernetes lists a node's BlockAffinity objects by name: "<host>-" then the block CIDR with
    # '.', ':' and '/' turned into '-' (libcalico-go names.CIDRToName), e.g. "n1-10-0-0-112-28".
    bits = t.pool_block_bits[pool]
    t.scratch_index[0] = np.int64(index)
    empty = t.scratch_text[:0]
    if t.pool_family[pool] == 1:
        n = fmt_ipv6(t.pool_base_hi[pool], t.pool_base_lo[pool], t.scratch_index, bits, empty, t.scratch_text,
                     t.scratch_bounds)
        prefix = 128 - bits
    else:
        n = fmt_ipv4(t.pool_base_lo[pool], t.scratch_index, np.uint64(bits), empty, t.scratch_text,
                     t.scratch_bounds)
        prefix = 32 - bits
    for i in range(t.blk_name.shape[1]):
        t.blk_name[slot, i] = 0
    for i in range(n):
        c = t.scratch_text[i]
        t.blk_name[slot, i] = _DASH if c == _DOT or c == _COLON else c
    t.blk_name[slot, n] = _DASH
    n += 1
    if prefix >= 100:
        t.blk_name[slot, n] = 48 + prefix // 100
        n += 1
    if prefix >= 10:
        t.blk_name[slot, n] = 48 + prefix // 10 % 10
        n += 1
    t.blk_name[slot, n] = 48 + prefix % 10


@kjit(inline=True)
def _name_before(t, a, b):
    # Byte order of two affinity names (0 padding: a name that is a prefix of the other comes first).
    for i in range(t.blk_name.shape[1]):
        if t.blk_name[a, i] != t.blk_name[b, i]:
            return t.blk_name[a, i] < t.blk_name[b, i]
    return False


# ---------------------------------------------------------------------------- sorted per-pool claims
@kjit(inline=True)
def _lower_bound(t, pool, index):
    lo = 0
    hi = t.pool_nclaimed[pool]
    while lo < hi:
        mid = (lo + hi) // 2
        if t.pool_sorted_idx[pool, mid] < index:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kjit(inline=True)
def _walk_start(t, node, pool, now):
    # randomBlockGenerator's first index: hostname-seeded (cached per node), or clock-seeded for /32 blocks.
    if t.pool_time_seeded[pool] != 0:
        return block_walk_start(t.rng_vec, t.rng_state, np.int64(now * 1e9), t.pool_n_blocks[pool])
    return t.node_start[node, pool]


@kjit(inline=True)
def _existing_in_walk(t, pool, first, m):
    # The m-th existing block of the pool in walk order: its claims from sorted position `first` on, wrapping.
    pos = first + m
    if pos >= t.pool_nclaimed[pool]:
        pos -= t.pool_nclaimed[pool]
    return t.pool_sorted_slot[pool, pos]


@kjit(inline=True)
def _in_chosen(t, n_chosen, pool):
    for j in range(n_chosen):
        if t.scratch_pools[j] == pool:
            return True
    return False


@kjit
def chosen_pools(t, node, poolset):
    """Write the pools a request may use into ``t.scratch_pools`` and return how many.

    Follows ipam.go ``determinePools``: pools named by the pod's or namespace's annotation
    (an *explicit* poolset row) are used as given, selectors ignored; otherwise the row's
    enabled pools whose ``nodeSelector`` selects the node.

    Parameters
    ----------
    t : CalicoTables
    node, poolset : int

    Returns
    -------
    int
    """
    explicit = t.poolset_explicit[poolset] != 0
    count = 0
    for j in range(t.poolset.shape[1]):
        pool = t.poolset[poolset, j]
        if pool < 0:
            break
        if explicit or (t.pool_enabled[pool] != 0 and t.node_pool_ok[node, pool] != 0):
            t.scratch_pools[count] = pool
            count += 1
    return count


# ---------------------------------------------------------------------------- blocks: create, delete
@kjit
def _mark_empty_blocks(t, node, now):
    # Any block update makes kube-controllers sync; its releaseUnusedBlocks then sees the node's empty
    # blocks (once the node holds more than one) and starts their grace period.
    if t.node_nblk[node] <= 1:
        return
    for k in range(t.node_nblk[node]):
        slot = t.node_blk[node, k]
        if t.blk_nfree[slot] == t.blk_size[slot] and t.blk_empty_mark[slot] < 0:
            t.blk_empty_mark[slot] = now


@kjit
def _claim_new(t, pool, index, node, now):
    # claimAffineBlock: a fresh block (newBlock: Unallocated = 0..N-1) affine to `node`.
    free = t.counters[K_FREE_SLOTS]
    if free == 0 or t.node_nblk[node] >= t.node_blk.shape[1]:
        return _CLAIM_FULL
    t.counters[K_FREE_SLOTS] = free - 1
    slot = t.free_slots[free - 1]
    size = 1 << t.pool_block_bits[pool]
    t.blk_used[slot] = 1
    t.blk_pool[slot] = pool
    t.blk_index[slot] = index
    t.blk_node[slot] = node
    t.blk_claim_t[slot] = now
    t.blk_size[slot] = size
    t.blk_nfree[slot] = size
    t.blk_head[slot] = 0
    t.blk_foreign[slot] = 0
    for o in range(size):
        t.blk_q[slot, o] = o
        t.blk_owner[slot, o] = -1
        t.blk_leak_t[slot, o] = -1.0
    t.blk_empty_mark[slot] = -1.0
    t.blk_empty_since[slot] = now
    _write_name(t, slot, pool, index)
    # the pool's claimed indexes stay sorted
    k = _lower_bound(t, pool, index)
    n = t.pool_nclaimed[pool]
    for m in range(n, k, -1):
        t.pool_sorted_idx[pool, m] = t.pool_sorted_idx[pool, m - 1]
        t.pool_sorted_slot[pool, m] = t.pool_sorted_slot[pool, m - 1]
    t.pool_sorted_idx[pool, k] = index
    t.pool_sorted_slot[pool, k] = slot
    t.pool_nclaimed[pool] = n + 1
    # the node's affinities stay in datastore order
    nb = t.node_nblk[node]
    at = nb
    for m in range(nb):
        if _name_before(t, slot, t.node_blk[node, m]):
            at = m
            break
    for m in range(nb, at, -1):
        t.node_blk[node, m] = t.node_blk[node, m - 1]
    t.node_blk[node, at] = slot
    t.node_nblk[node] = nb + 1
    t.counters[K_CLAIMS] += 1
    _mark_empty_blocks(t, node, now)
    return slot


@kjit
def unlink_from_node(t, slot):
    """Remove a block from its node's affinity list; the block is left without affinity."""
    node = t.blk_node[slot]
    if node < 0:
        return
    nb = t.node_nblk[node]
    at = nb
    for m in range(nb):
        if t.node_blk[node, m] == slot:
            at = m
            break
    for m in range(at, nb - 1):
        t.node_blk[node, m] = t.node_blk[node, m + 1]
    if at < nb:
        t.node_blk[node, nb - 1] = -1
        t.node_nblk[node] = nb - 1
    t.blk_node[slot] = -1


@kjit
def delete_block(t, slot):
    """Delete a block: its affinity goes, its index is free to claim, its slot is reused.

    Parameters
    ----------
    t : CalicoTables
    slot : int
        A used block slot (callers check that it is empty).
    """
    pool = t.blk_pool[slot]
    k = _lower_bound(t, pool, t.blk_index[slot])
    n = t.pool_nclaimed[pool]
    for m in range(k, n - 1):
        t.pool_sorted_idx[pool, m] = t.pool_sorted_idx[pool, m + 1]
        t.pool_sorted_slot[pool, m] = t.pool_sorted_slot[pool, m + 1]
    t.pool_nclaimed[pool] = n - 1
    unlink_from_node(t, slot)
    t.blk_used[slot] = 0
    t.blk_pool[slot] = -1
    t.free_slots[t.counters[K_FREE_SLOTS]] = slot
    t.counters[K_FREE_SLOTS] += 1
    t.counters[K_BLOCK_RELEASES] += 1


# ---------------------------------------------------------------------------- addresses: take, free
@kjit
def _take(t, slot, node, now):
    # allocationBlock.autoAssign for one address: the front of Unallocated.
    size = t.blk_size[slot]
    head = t.blk_head[slot]
    ordinal = t.blk_q[slot, head]
    t.blk_head[slot] = head + 1 if head + 1 < size else 0
    t.blk_nfree[slot] -= 1
    t.blk_owner[slot, ordinal] = node
    t.blk_leak_t[slot, ordinal] = -1.0
    if t.blk_node[slot] != node:
        t.blk_foreign[slot] += 1
        t.node_borrowed[node, t.pool_family[t.blk_pool[slot]]] += 1
        t.counters[K_BORROWS] += 1
    t.blk_empty_mark[slot] = -1.0  # blockReleaseTracker.markInUse
    t.blk_empty_since[slot] = -1.0
    t.counters[K_ALLOCS] += 1
    return (np.int64(slot) << ADDR_SHIFT) | np.int64(ordinal)


@kjit
def free_address(t, slot, ordinal, now):
    """``allocationBlock.release`` for one address: the ordinal goes to the back of ``Unallocated``.

    An emptied block without affinity is deleted; an emptied affine block starts its grace
    period when its node holds another block.

    Parameters
    ----------
    t : CalicoTables
    slot, ordinal : int
    now : float

    Returns
    -------
    bool
        False when the address was not allocated.
    """
    owner = t.blk_owner[slot, ordinal]
    if owner < 0:
        return False
    if t.blk_node[slot] != owner:
        t.blk_foreign[slot] -= 1
        t.node_borrowed[owner, t.pool_family[t.blk_pool[slot]]] -= 1
    t.blk_owner[slot, ordinal] = -1
    t.blk_leak_t[slot, ordinal] = -1.0
    size = t.blk_size[slot]
    tail = t.blk_head[slot] + t.blk_nfree[slot]
    if tail >= size:
        tail -= size
    t.blk_q[slot, tail] = ordinal
    t.blk_nfree[slot] += 1
    t.counters[K_RELEASES] += 1
    if t.blk_nfree[slot] == size:
        node = t.blk_node[slot]
        if node < 0:
            delete_block(t, slot)  # releaseIPsFromBlock: empty and no affinity
        else:
            t.blk_empty_since[slot] = now
            if t.node_nblk[node] > 1 and t.blk_empty_mark[slot] < 0:
                t.blk_empty_mark[slot] = now
    return True


# ---------------------------------------------------------------------------- the block search
@kjit
def find_usable_block(t, node, n_chosen, now):
    """``findUsableBlock`` over the chosen pools, claiming what it finds for ``node``.

    Parameters
    ----------
    t : CalicoTables
    node : int
    n_chosen : int
        Pools in ``t.scratch_pools`` (:func:`chosen_pools`).
    now : float
        Simulated time in seconds.

    Returns
    -------
    int
        The slot of a block of ``node`` with a free address (newly claimed, taken over, or an
        own block the walk met), -1 when no block can be found (``noFreeBlocksError``), -2
        when the tables have no slot left.
    """
    for j in range(n_chosen):
        pool = t.scratch_pools[j]
        n = t.pool_nclaimed[pool]
        n_blocks = t.pool_n_blocks[pool]
        c = _walk_start(t, node, pool, now)
        k = _lower_bound(t, pool, c)
        visited = _U0
        while visited < n_blocks:
            if k < n and t.pool_sorted_idx[pool, k] == c:
                slot = t.pool_sorted_slot[pool, k]
                if t.blk_node[slot] == node and t.blk_nfree[slot] > 0:
                    return slot
                k += 1
                c += _U1
                visited += _U1
                if c == n_blocks:
                    c = _U0
                    k = 0
            else:
                return _claim_new(t, pool, c, node, now)
    # Every block of every pool exists: take over an empty block of another node, in walk order.
    for j in range(n_chosen):
        pool = t.scratch_pools[j]
        first = _lower_bound(t, pool, _walk_start(t, node, pool, now))
        for m in range(t.pool_nclaimed[pool]):
            slot = _existing_in_walk(t, pool, first, m)
            other = t.blk_node[slot]
            if (other >= 0 and other != node and t.blk_nfree[slot] == t.blk_size[slot]
                    and now - t.blk_claim_t[slot] >= t.fcfg[F_RECLAIM_AGE]):
                index = t.blk_index[slot]
                delete_block(t, slot)
                t.counters[K_RECLAIMS] += 1
                return _claim_new(t, pool, index, node, now)
    return -1


@kjit
def _borrow(t, node, n_chosen, now):
    # The non-affine pass of autoAssign: a fresh walk per pool; blocks that do not exist and full
    # blocks are skipped; the first block with a free address lends one, whoever owns it.
    for j in range(n_chosen):
        pool = t.scratch_pools[j]
        first = _lower_bound(t, pool, _walk_start(t, node, pool, now))
        for m in range(t.pool_nclaimed[pool]):
            slot = _existing_in_walk(t, pool, first, m)
            if t.blk_nfree[slot] > 0:
                return _take(t, slot, node, now)
    return np.int64(-1)


# ---------------------------------------------------------------------------- public rules
@kjit
def claim_block(t, node, poolset, now):
    """Claim a block for ``node`` as ``findOrClaimBlock`` does once its affine blocks are full.

    Parameters
    ----------
    t : CalicoTables
    node, poolset : int
    now : float

    Returns
    -------
    int
        The block slot, or a negative ``E_*`` code (``E_NO_POOLS``, ``E_NO_AUTO``,
        ``E_EXHAUSTED`` when no block can be claimed, ``E_CAPACITY``).
    """
    n_chosen = chosen_pools(t, node, poolset)
    if n_chosen == 0:
        return E_NO_POOLS
    if t.cfg[CFG_AUTO_ALLOCATE] == 0:
        return E_NO_AUTO
    slot = find_usable_block(t, node, n_chosen, now)
    if slot == _CLAIM_FULL:
        return E_CAPACITY
    if slot < 0:
        return E_EXHAUSTED
    return slot


@kjit
def assign(t, node, poolset, now):
    """One pod address for ``node`` from the pools of ``poolset`` (``AutoAssign`` with Num = 1).

    Follows ipam.go ``autoAssign``: the node's affine blocks of the chosen pools in datastore
    order, the first with a free address; else a new block when the node holds fewer than
    ``maxBlocksPerHost`` of them; else ``ErrBlockLimit``; when no block can be claimed, a
    borrowed address unless ``strictAffinity``.

    Parameters
    ----------
    t : CalicoTables
    node : int
        Node id (added with :func:`node_added`).
    poolset : int
        Row of ``t.poolset``: the pod's pool choice for one family.
    now : float
        Simulated time in seconds.

    Returns
    -------
    int
        The packed address ``slot << ADDR_SHIFT | ordinal``, or a negative ``E_*`` code
        (``calico_tables.ERROR_TEXT``).
    """
    n_chosen = chosen_pools(t, node, poolset)
    if n_chosen == 0:
        t.counters[K_FAILS] += 1
        return np.int64(E_NO_POOLS)
    owned = 0
    for k in range(t.node_nblk[node]):
        if _in_chosen(t, n_chosen, t.blk_pool[t.node_blk[node, k]]):
            owned += 1
    for k in range(t.node_nblk[node]):
        slot = t.node_blk[node, k]
        if t.blk_nfree[slot] > 0 and _in_chosen(t, n_chosen, t.blk_pool[slot]):
            return _take(t, slot, node, now)
    limit = t.cfg[CFG_MAX_BLOCKS]
    if limit == 0:
        limit = DEFAULT_MAX_BLOCKS
    if owned >= limit:
        t.counters[K_FAILS] += 1
        return np.int64(E_BLOCK_LIMIT)
    if t.cfg[CFG_AUTO_ALLOCATE] == 0:
        t.counters[K_FAILS] += 1
        return np.int64(E_NO_AUTO)
    slot = find_usable_block(t, node, n_chosen, now)
    if slot >= 0:
        return _take(t, slot, node, now)
    if slot == _CLAIM_FULL:
        t.counters[K_FAILS] += 1
        return np.int64(E_CAPACITY)
    if t.cfg[CFG_STRICT] != 0:
        t.counters[K_FAILS] += 1
        return np.int64(E_STRICT)
    packed = _borrow(t, node, n_chosen, now)
    if packed >= 0:
        return packed
    t.counters[K_FAILS] += 1
    return np.int64(E_EXHAUSTED)


@kjit
def release(t, packed, now):
    """Release one address (``ReleaseIPs``); an emptied block without affinity is deleted.

    Parameters
    ----------
    t : CalicoTables
    packed : int
        As :func:`assign` returned it.
    now : float

    Returns
    -------
    bool
        False when the address was not allocated (upstream lists it as unallocated).
    """
    return free_address(t, packed >> ADDR_SHIFT, packed & ORDINAL_MASK, now)


@kjit
def node_added(t, node):
    """A node joins: remember where its hostname-seeded block walk starts in each pool.

    Parameters
    ----------
    t : CalicoTables
    node : int
    """
    t.node_alive[node] = 1
    for pool in range(t.pool_n_blocks.shape[0]):
        if t.pool_time_seeded[pool] == 0:
            t.node_start[node, pool] = block_walk_start(t.rng_vec, t.rng_state, t.node_seed[node],
                                                        t.pool_n_blocks[pool])
