"""kube-controllers' side of Calico IPAM, compiled: empty-block release, leak GC, node deletion, metrics.

Follows projectcalico/calico v3.31.7 ``kube-controllers/pkg/controllers/node/ipam.go``:
``releaseUnusedBlocks`` deletes an affine block that is empty, not its node's only block,
and first seen empty by a sync strictly more than the grace period ago;
``garbageCollectKnownLeaks`` releases leak candidates after the grace period; a deleted
node's allocations are confirmed leaks at once (``checkAllocations``) and released, then its
affinities (``cleanupNode`` / ``ReleaseHostAffinities``). Builds on the allocator rules of
:mod:`ipam_core.modes.calico_rules`.
"""

from __future__ import annotations

import numpy as np

from ipam_core.kernels._jit import kjit
from ipam_core.modes.calico_rules import delete_block, free_address, unlink_from_node
from ipam_core.modes.calico_tables import (ADDR_SHIFT, F_GRACE, K_LEAKS_GC, NM_BLOCKS, NM_BORROWED, NM_EMPTY_BLOCKS,
                                           NM_FREE, NM_LENT, NM_STRANDED, NM_USED, ORDINAL_MASK, S_DELAY_COUNT,
                                           S_DELAY_MAX, S_DELAY_SUM)


@kjit
def mark_leaked(t, packed, now):
    """Make an address a leak candidate: its pod is gone but the CNI never released it.

    Parameters
    ----------
    t : CalicoTables
    packed : int
    now : float
        When kube-controllers first found the pod missing.
    """
    slot = packed >> ADDR_SHIFT
    ordinal = packed & ORDINAL_MASK
    if t.blk_owner[slot, ordinal] >= 0 and t.blk_leak_t[slot, ordinal] < 0:
        t.blk_leak_t[slot, ordinal] = now


@kjit
def gc_leaks(t, now):
    """Release leak candidates older than the grace period (kube-controllers ``garbageCollectKnownLeaks``).

    Parameters
    ----------
    t : CalicoTables
    now : float

    Returns
    -------
    int
        Addresses released.
    """
    grace = t.fcfg[F_GRACE]
    if grace <= 0:
        return 0
    released = 0
    for slot in range(t.blk_used.shape[0]):
        if t.blk_used[slot] == 0:
            continue
        for o in range(t.blk_size[slot]):
            if t.blk_leak_t[slot, o] >= 0 and now - t.blk_leak_t[slot, o] >= grace:
                free_address(t, slot, o, now)
                t.counters[K_LEAKS_GC] += 1
                released += 1
                if t.blk_used[slot] == 0:  # the block went with its last address
                    break
    return released


@kjit
def release_empty_blocks(t, now):
    """kube-controllers ``releaseUnusedBlocks``: delete empty affine blocks past the grace period.

    A block goes when it is empty, its node holds another block, and the sync that first saw
    it so was strictly more than ``LeakGracePeriod`` ago. Upstream walks its empty blocks in
    Go map order; here nodes go in id order and each node's blocks in datastore order, so of
    two such blocks of a two-block node the first listed goes.

    Parameters
    ----------
    t : CalicoTables
    now : float

    Returns
    -------
    int
        Blocks deleted.
    """
    grace = t.fcfg[F_GRACE]
    if grace <= 0:
        return 0
    released = 0
    for node in range(t.node_nblk.shape[0]):
        k = 0
        while k < t.node_nblk[node]:
            slot = t.node_blk[node, k]
            if t.blk_nfree[slot] == t.blk_size[slot] and t.node_nblk[node] > 1:
                if t.blk_empty_mark[slot] < 0:
                    t.blk_empty_mark[slot] = now
                elif now - t.blk_empty_mark[slot] > grace:
                    delay = now - t.blk_empty_since[slot]
                    family = t.pool_family[t.blk_pool[slot]]
                    t.stats[family, S_DELAY_SUM] += delay
                    t.stats[family, S_DELAY_MAX] = max(t.stats[family, S_DELAY_MAX], delay)
                    t.stats[family, S_DELAY_COUNT] += 1.0
                    delete_block(t, slot)  # the list shifts left: the next block is now at k
                    released += 1
                    continue
            k += 1
    return released


@kjit
def next_block_release(t):
    """When :func:`release_empty_blocks` will next delete a block, if nothing changes (inf: never).

    Parameters
    ----------
    t : CalicoTables

    Returns
    -------
    float
        The earliest first-empty sighting plus the grace period; a pass must run *after* it.
    """
    grace = t.fcfg[F_GRACE]
    due = np.inf
    if grace <= 0:
        return due
    for slot in range(t.blk_used.shape[0]):
        node = t.blk_node[slot]
        if (t.blk_used[slot] != 0 and node >= 0 and t.blk_nfree[slot] == t.blk_size[slot]
                and t.node_nblk[node] > 1 and t.blk_empty_mark[slot] >= 0):
            due = min(due, t.blk_empty_mark[slot] + grace)
    return due


@kjit
def node_deleted(t, node, now):
    """A node is deleted: kube-controllers releases what its pods held, then its affinities.

    The node's allocations (pods gone with the node) are confirmed leaks at once and
    released; each empty affine block is deleted; a block still lending addresses to other
    nodes loses its affinity and is deleted when its last address is released.

    Parameters
    ----------
    t : CalicoTables
    node : int
    now : float
    """
    t.node_alive[node] = 0
    if t.node_borrowed[node, 0] + t.node_borrowed[node, 1] > 0:
        for slot in range(t.blk_used.shape[0]):
            if t.blk_used[slot] != 0 and t.blk_node[slot] != node:
                for o in range(t.blk_size[slot]):
                    if t.blk_owner[slot, o] == node:
                        free_address(t, slot, o, now)
                        if t.blk_used[slot] == 0:
                            break
    for k in range(t.node_nblk[node]):
        slot = t.node_blk[node, k]
        for o in range(t.blk_size[slot]):
            if t.blk_owner[slot, o] == node:
                free_address(t, slot, o, now)
    while t.node_nblk[node] > 0:
        slot = t.node_blk[node, t.node_nblk[node] - 1]
        if t.blk_nfree[slot] == t.blk_size[slot]:
            delete_block(t, slot)
        else:
            unlink_from_node(t, slot)


@kjit
def node_metrics(t, out):
    """Per node and family: what ``calicoctl ipam show --show-blocks`` and kube-controllers' gauges show.

    Parameters
    ----------
    t : CalicoTables
    out : numpy.ndarray
        int64 [nodes, 2, NM_NCOL], overwritten (``NM_*`` columns of calico_tables).
    """
    out[:] = 0
    for node in range(t.node_nblk.shape[0]):
        for family in range(2):
            out[node, family, NM_BORROWED] = t.node_borrowed[node, family]
        for k in range(t.node_nblk[node]):
            slot = t.node_blk[node, k]
            family = t.pool_family[t.blk_pool[slot]]
            size = t.blk_size[slot]
            free = t.blk_nfree[slot]
            out[node, family, NM_BLOCKS] += 1
            out[node, family, NM_USED] += size - free
            out[node, family, NM_FREE] += free
            out[node, family, NM_LENT] += t.blk_foreign[slot]
            if free == size:
                out[node, family, NM_EMPTY_BLOCKS] += 1
            elif free > 0:
                out[node, family, NM_STRANDED] += free
