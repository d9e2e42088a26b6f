"""The compiled event loop: scheduler, pod lifecycle, timers, and the node-CIDR machinery the pool modes share.

Everything that happens per event, per pod or per address runs here, in one
Numba-compiled loop over the state tables described in
:mod:`ipam_core.engine.tables`. Python only builds the state
(:mod:`ipam_core.engine.state`), calls :func:`advance` up to each sample time
and reads counters (:mod:`ipam_core.pipeline.run`).

The loop names no mode. Where an agent or an operator acts it calls a hook of
:mod:`ipam_core.engine.hooks`, which Numba resolves from the state's class to
the rules of its family, so a run compiles only its own family's rules:

* :mod:`ipam_core.modes.node_cidr` (``kubernetes``, ``cluster-pool``,
  ``gke``): one node CIDR per family when the node appears;
* :mod:`ipam_core.modes.multi_pool` (``multi-pool``): node CIDRs per
  pool as the agent's demand asks;
* :mod:`ipam_core.modes.cloud_hooks` (``eni``, ``aws-vpc-cni``, ``azure``,
  ``crd``): per-node pools of addresses and /28 prefixes from subnet bitmaps
  (the rules in :mod:`ipam_core.modes.cloud_pool`).

What this module models itself, and from which upstream file:

* Node CIDR carving, shared by the node-CIDR and multi-pool families: one
  ``cidr_set.go`` next-fit bitmap per pool CIDR (kubernetes
  ``pkg/controller/nodeipam/ipam/cidrset/cidr_set.go``); the first set in list
  order that is not full is used (cilium
  ``pkg/ipam/allocator/podcidr/podcidr.go`` ``allocateFirstFreeCIDR`` and
  ``pkg/ipam/allocator/multipool/pool_allocator.go``).
* Pod addresses: Cilium's ``ipallocator`` over ``allocator/bitmap.go``: a
  uniform random start and a forward scan with wrap-around in the node
  CIDR's bitmap; host-scope agents use only the first CIDR per family
  (``pkg/ipam/ipam.go``), multi-pool agents the first CIDR of the pod's pool
  with a free address (``pkg/ipam/pool.go``). Dual-stack takes IPv6 first
  and gives it back when IPv4 fails (``pkg/ipam/allocator.go``). Router and
  health addresses are random slots too (``daemon/cmd/ipam.go``).
* Pods: the scheduler places a pod on a ready node with room under
  ``maxPods`` (spread, pack or random) and, with ``cluster.addressFilter``,
  a free pod address (the family's ``address_room`` hook); a pod that gets no address stays on
  its node, is retried every ``podRetryInterval`` and fails after
  ``podPendingTimeout`` (kubelet behaviour, a modelling choice).

Random draws come from the state's own SplitMix64 stream (:mod:`ipam_core.engine.rng`).
"""

from __future__ import annotations

import numpy as np

from ipam_core.engine.hooks import (  # each family's rules, chosen by the state's class (engine/hooks.py)
    address_room,
    agent_restarted,
    carve_follows_refresh,
    carves_on_demand,
    give_pod_addresses,
    node_added,
    node_deleted,
    node_timer,
    one_cidr_per_family,
    pod_changed,
    quiet_refresh,
    refresh_period,
    take_pod_addresses,
)
from ipam_core.engine.rng import draw
from ipam_core.engine.tables import (
    ADDRESS_FILTER_FREE,
    ADDRESS_FILTER_NONE,
    C_OPERATOR_DELAY,
    C_RETRY,
    C_TIMEOUT,
    D_EVICTED,
    D_ID,
    D_NEXT,
    D_NODE,
    D_OFF,
    D_PENDING_FAMILY,
    D_PIN,
    D_POOL,
    D_PREV,
    D_RETRY_AT,
    D_SLOT,
    D_STATE,
    ERROR_CHUNKS_FULL,
    ERROR_HEAP_FULL,
    ERROR_ROWS_FULL,
    ERROR_SLOTS_FULL,
    GROW_TIMERS,
    F_CARVABLE,
    F_CARVED,
    F_CARVES,
    F_FREE,
    F_IP_ALLOCS,
    F_IP_FAILS,
    F_NODE_CIDRS,
    F_RELEASES,
    F_RESERVED,
    F_USED,
    FAMILY_STRIDE,
    H_A,
    H_B,
    H_KIND,
    H_SEQ,
    I_ADDRESS_FILTER,
    I_DEFAULT_POOL,
    I_FAMILY,
    I_HEALTH,
    I_MAX_PODS,
    I_SCHEDULER,
    K_CORDONED,
    K_ERROR,
    K_EVENT,
    K_EVICTED,
    K_EVICTED_FAILED,
    K_FAILED,
    K_FAILED_FREE,
    K_FAMILY_BASE,
    K_HEAP,
    K_HEAP_LIMIT,
    K_HEAP_NEED,
    K_NODES,
    K_PENDING,
    K_READY,
    K_RETRY_HEAD,
    K_RETRY_LEN,
    K_RING_LIMIT,
    K_RING_NEED,
    K_ROW_FREE,
    K_ROW_FRESH,
    K_ROW_TOP,
    K_RUNNING,
    K_SCHED_MIN,
    K_SEQ,
    K_SLOT_TOP,
    K_STARTED,
    K_START_WAIT_MS,
    L_CHUNK,
    L_FAMILY,
    L_INDEX,
    L_MAX,
    L_NODE,
    L_POOL,
    L_RESERVED,
    L_SET,
    L_STATE,
    L_USED,
    N_ADDR_ROOM,
    N_BUCKET,
    N_CORDONED,
    N_GEN,
    N_HEAD,
    N_MAX_PODS,
    N_NSLOTS,
    N_PENDING,
    N_PODS,
    N_PRESENT,
    N_READY,
    N_STATUS,
    N_SYNC_ARMED,
    P_SET_HI,
    P_SET_LO,
    POD_DELETED,
    POD_FAILED,
    POD_NONE,
    POD_PENDING,
    POD_ROW_GONE,
    POD_ROW_UNSEEN,
    POD_RUNNING,
    S_ADDRS,
    S_ALLOCATED,
    S_CHUNK_OFF,
    S_CHUNK_TOP,
    S_CURSOR,
    S_IPS_OFF,
    S_IPW_OFF,
    S_N,
    S_S_LEN,
    S_S_OFF,
    S_SLOT_MAX,
    S_SLOT_SWORDS,
    S_SLOT_WORDS,
    S_W_LEN,
    S_W_OFF,
    SCHED_RANDOM,
    SCHED_SPREAD,
    SLOT_FREE,
    SLOT_LIVE,
    STATUS_NO_POOL,
    STATUS_OK,
    T_CARVE,
    T_POD_RETRY,
    T_REFRESH,
)
from ipam_core.kernels._jit import kjit
from ipam_core.kernels.bits import prefetch_row, prefetch_word
from ipam_core.kernels.layout import bm_init
from ipam_core.kernels.carve import first_open_set
from ipam_core.kernels.scan import bm_find_free, bm_take_next_fit, bm_take_scan
from ipam_core.kernels.slots import bm_clear, bm_set, bm_test
from ipam_core.workloads.events import (
    OP_AGENT_RESTART,
    OP_NODE_ADD,
    OP_NODE_CORDON,
    OP_NODE_DEL,
    OP_NODE_DRAIN,
    OP_POD_ADD,
    OP_POD_DEL,
)



@kjit
def _fc(family, field):
    # index of a per-family counter
    return K_FAMILY_BASE + FAMILY_STRIDE * family + field


# --------------------------------------------------------------------------- timers
# The heap and the node-timer rings start small and grow (engine/timer_room.py). Each has a limit below
# its capacity (cnt K_*_LIMIT): a push past it still fits, and asks for room (K_ERROR = GROW_TIMERS), which
# stops the loop before its next step; Python grows the table and calls again. The room above the limit
# covers one step's timers (timer_room.py TIMER_ROOM); the steps that set timers in bulk ask for their room
# first. The pod-retry ring is sized at its bound from the start (engine/state.py): it never asks.
@kjit(inline=True)
def _ask_room(cnt, need_col, fill):
    """Stop the loop after this step, to grow a timer table to hold ``fill`` timers (``need_col``: its K_*_NEED)."""
    if cnt[need_col] < fill:
        cnt[need_col] = fill
    if cnt[K_ERROR] == 0:
        cnt[K_ERROR] = GROW_TIMERS


@kjit(inline=True)
def _heap_room_for(cnt, heap):
    """Whether ``heap`` more heap timers stay within the heap's limit; else ask for the room."""
    if cnt[K_HEAP] + heap > cnt[K_HEAP_LIMIT]:
        _ask_room(cnt, K_HEAP_NEED, cnt[K_HEAP] + heap)
        return False
    return True


@kjit
def _push(timer, cnt, t, kind, a, b):
    # A node timer due no earlier than the last one of its kind goes to the end of that kind's
    # ring: those all wait one fixed delay, so the ring stays in (time, sequence) order at O(1)
    # per timer; anything else, and a full ring, goes to the heap. Multi-pool sets 2.3 such
    # timers per pod event (each node's refresh, debounced update and operator pass).
    seq = cnt[K_SEQ]
    if t < timer.next_timer[0]:
        timer.next_timer[0] = t
    if kind < timer.node_ring_t.shape[0]:
        n = timer.node_ring_pos[kind, 1]
        cap = timer.node_ring_t.shape[1]
        if n < cap:
            i = timer.node_ring_pos[kind, 0] + n
            if i >= cap:
                i -= cap
            last = i - 1 if i > 0 else cap - 1
            if n == 0 or t >= timer.node_ring_t[kind, last]:
                cnt[K_SEQ] = seq + 1
                timer.node_ring_t[kind, i] = t
                timer.node_ring_i[kind, i, 0] = a
                timer.node_ring_i[kind, i, 1] = b
                timer.node_ring_i[kind, i, 2] = seq
                timer.node_ring_pos[kind, 1] = n + 1
                if n >= cnt[K_RING_LIMIT]:
                    _ask_room(cnt, K_RING_NEED, n + 1)
                return
    heap_t = timer.heap_t
    heap_i = timer.heap_i
    n = cnt[K_HEAP]
    if n >= cnt[K_HEAP_LIMIT]:
        if n >= heap_t.shape[0]:
            cnt[K_ERROR] = ERROR_HEAP_FULL
            return
        _ask_room(cnt, K_HEAP_NEED, n + 1)
    cnt[K_SEQ] = seq + 1
    cnt[K_HEAP] = n + 1
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if heap_t[p] < t or (heap_t[p] == t and heap_i[p, H_SEQ] < seq):
            break
        heap_t[i] = heap_t[p]
        for c in range(4):
            heap_i[i, c] = heap_i[p, c]
        i = p
    heap_t[i] = t
    heap_i[i, H_KIND] = kind
    heap_i[i, H_A] = a
    heap_i[i, H_B] = b
    heap_i[i, H_SEQ] = seq


@kjit(inline=True)
def _push_retry(pod_tables, timer, cnt, t, row):
    # Pod retries all wait C_RETRY, so they come due in the order they are set: a ring
    # buffer keeps them in exactly the heap's (time, sequence) order at O(1) per timer.
    # A live pod has at most one armed; its row points at it (D_RETRY_AT), so that freeing
    # the row voids it (_row_free) rather than each entry carrying the row's generation.
    # The ring holds its bound (a retry per live pod and per retry outliving its pod): it
    # never grows, so pushing costs no limit test (a full ring would be a bug in the bound).
    n = cnt[K_RETRY_LEN]
    cap = timer.retry_t.shape[0]
    if n >= cap:
        cnt[K_ERROR] = ERROR_HEAP_FULL
        return
    i = cnt[K_RETRY_HEAD] + n
    if i >= cap:
        i -= cap
    seq = cnt[K_SEQ]
    cnt[K_SEQ] = seq + 1
    if t < timer.next_timer[0]:
        timer.next_timer[0] = t
    timer.retry_t[i] = t
    timer.retry_row[i] = row
    timer.retry_seq[i] = seq
    pod_tables.pods[row, D_RETRY_AT] = i
    cnt[K_RETRY_LEN] = n + 1


@kjit(inline=True)
def _pop_retry(pod_tables, timer, cnt):
    # the pod's row, or -1 when the pod went while its retry was armed
    i = cnt[K_RETRY_HEAD]
    row = np.int64(timer.retry_row[i])
    if row >= 0 and pod_tables.pods[row, D_RETRY_AT] == i:
        pod_tables.pods[row, D_RETRY_AT] = -1
    cnt[K_RETRY_HEAD] = 0 if i + 1 == timer.retry_t.shape[0] else i + 1
    cnt[K_RETRY_LEN] -= 1
    return row


@kjit(inline=True)
def _pop_node_ring(timer, kind):
    i = timer.node_ring_pos[kind, 0]
    a = timer.node_ring_i[kind, i, 0]
    b = timer.node_ring_i[kind, i, 1]
    i += 1
    timer.node_ring_pos[kind, 0] = 0 if i == timer.node_ring_t.shape[1] else i
    timer.node_ring_pos[kind, 1] -= 1
    return a, b


@kjit
def _before(heap_t, heap_i, x, y):
    return heap_t[x] < heap_t[y] or (heap_t[x] == heap_t[y] and heap_i[x, H_SEQ] < heap_i[y, H_SEQ])


@kjit
def _pop(timer, cnt):
    heap_t = timer.heap_t
    heap_i = timer.heap_i
    kind = heap_i[0, H_KIND]
    a = heap_i[0, H_A]
    b = heap_i[0, H_B]
    n = cnt[K_HEAP] - 1
    cnt[K_HEAP] = n
    if n > 0:
        heap_t[0] = heap_t[n]
        for c in range(4):
            heap_i[0, c] = heap_i[n, c]
        i = 0
        while True:
            left = 2 * i + 1
            if left >= n:
                break
            child = left
            if left + 1 < n and _before(heap_t, heap_i, left + 1, left):
                child = left + 1
            if not _before(heap_t, heap_i, child, i):
                break
            tt = heap_t[i]
            heap_t[i] = heap_t[child]
            heap_t[child] = tt
            for c in range(4):
                v = heap_i[i, c]
                heap_i[i, c] = heap_i[child, c]
                heap_i[child, c] = v
            i = child
    return kind, a, b


# --------------------------------------------------------------------------- quiet nodes
# A node's periodic pass (multi-pool refresh, cloud resync / ipamd tick / CNS tick) is a pure function of
# the node's own tables and the time. After each pass that runs, a predicate of its mode says until when
# the next passes provably change nothing as long as nothing touches the node (the node's "wake" time;
# LOUD: run the next one). Every event that changes what a pass reads makes the node loud again. A quiet
# node's pass is skipped; when every present node is quiet, the ring of periodic timers is fast-forwarded
# in one step (_fast_forward_refresh). `quiet` holds a small header, then one wake time per node.
QUIET_COUNT = 0  # present nodes whose wake time is set
QUIET_OFF = 1  # 1.0: never skip (a reference run: every pass runs)
QUIET_NO_BULK_BEFORE = 2  # a node wakes then: no fast-forward before it
QUIET_HEAD = 3
LOUD = 0.0


@kjit(inline=True)
def _loud(quiet, node):
    """Something the node's periodic pass reads changed: the next pass runs."""
    i = QUIET_HEAD + node
    if quiet[i] != LOUD:
        quiet[i] = LOUD
        quiet[QUIET_COUNT] -= 1.0


@kjit(inline=True)
def _set_wake(quiet, node, wake, now):
    """After a pass at ``now``: the passes before ``wake`` change nothing (``wake <= now``: loud)."""
    if quiet[QUIET_OFF] != 0.0 or not wake > now:
        _loud(quiet, node)
        return
    i = QUIET_HEAD + node
    if quiet[i] == LOUD:
        quiet[QUIET_COUNT] += 1.0
    quiet[i] = wake


@kjit(inline=True)
def _quiet_at(quiet, node, now):
    return quiet[QUIET_HEAD + node] > now


# --------------------------------------------------------------------------- scheduler
@kjit(inline=True)
def _bucket(nodes, sched, key):
    # the bitmap of bucket `key`: node i is in the bucket when its bit is 0 ("free")
    nw = max(1, (nodes.shape[0] + 63) >> 6)  # bm_sizes(nodes), with shifts: a division costs ~15 ns here
    ns = max(1, (nw + 63) >> 6)
    return sched.bucket_words[key * nw : (key + 1) * nw], sched.bucket_summary[key * ns : (key + 1) * ns]


@kjit(inline=True)
def _free_addresses(nodes, cidr, node, pool, family, primary_only):
    # free addresses where the agent takes them (_find_slot): its first CIDR only, or every live one
    sl = cidr.slots
    free = 0
    for k in range(nodes[node, N_NSLOTS]):
        slot = cidr.node_slots[node, k]
        if sl[slot, L_STATE] != SLOT_LIVE or sl[slot, L_FAMILY] != family or sl[slot, L_POOL] != pool:
            continue
        free += sl[slot, L_MAX] - sl[slot, L_USED]
        if primary_only:
            break
    return free


@kjit
def slot_address_room(st, node):
    """The node-CIDR families' ``address_room`` hook: the bound pods below which the address filter (``cluster.addressFilter``) lets a pod onto ``node``.

    The filter plugin kube-scheduler lacks (kubernetes/enhancements#611,
    aws/amazon-vpc-cni-k8s#2638), seen as an extended resource the node
    publishes and bound pods consume. ``warm``: the node's running pods plus
    the free addresses it holds now, per enabled family the fewest, where
    its agent takes them (host scope only its first CIDR; multi-pool the live
    CIDRs of the default pool; cloud modes its pool of secondary addresses
    and prefixes): a pod is placed while the free addresses outnumber the
    pods already waiting there. ``free``: that, or one the node can still
    get: multi-pool while the default pool has a node CIDR left to carve (no
    limit then); cloud modes the addresses the node can hold (its pool, the
    room on its interfaces and on those it may still attach, capped by
    ``max-allocate``) less its reservations. A host-scope node never gets a
    second CIDR, so there ``free`` is ``warm``.

    Notes
    -----
    A pod that takes an address, gives one back, waits or leaves does not
    change the figure (running pods and free addresses move together), so it
    is recomputed only where addresses come or go otherwise: node CIDR carved
    or freed, agent start and release, cloud passes. Pods of a non-default
    multi-pool pool are filtered on the default pool.
    """
    core = st.core
    running = core.nodes[node, N_PODS] - core.nodes[node, N_PENDING]
    grow = core.icfg[I_ADDRESS_FILTER] == ADDRESS_FILTER_FREE
    pool = core.icfg[I_DEFAULT_POOL]
    if pool < 0:
        return 0
    host_scope = one_cidr_per_family(st)
    room = core.icfg[I_MAX_PODS] + 1  # no family enabled: no limit but maxPods
    for family in range(2):
        if core.icfg[I_FAMILY + family] == 0:
            continue
        if grow and carves_on_demand(st) and core.cidr.pool_carvable[pool, family] > 0:
            continue
        room = min(room, running + _free_addresses(core.nodes, core.cidr, node, pool, family, host_scope))
    return room


@kjit
def _sched_readdress(st, node):
    core = st.core
    core.nodes[node, N_ADDR_ROOM] = address_room(st, node)
    _sched_update(core.nodes, core.sched, core.icfg, core.cnt, node)


@kjit(inline=True)  # off: one comparison at each call site, no call
def _sched_addresses_changed(st, node):
    # a node's free addresses changed: re-file it when the scheduler looks at them
    if st.core.icfg[I_ADDRESS_FILTER] != ADDRESS_FILTER_NONE:
        _sched_readdress(st, node)


@kjit
def _sched_carvable_changed(st, pool, family, before):
    core = st.core
    # multi-pool `free` counts "the pool can still carve" for every node: when that flips, re-file all
    # nodes (once per flip, not per pod)
    if (
        core.icfg[I_ADDRESS_FILTER] == ADDRESS_FILTER_FREE
        and carves_on_demand(st)
        and pool == core.icfg[I_DEFAULT_POOL]
        and (before > 0) != (core.cidr.pool_carvable[pool, family] > 0)
    ):
        for other in range(core.nodes.shape[0]):
            _sched_readdress(st, other)


@kjit(inline_llvm=True)
def _sched_update(nodes, sched, icfg, cnt, node):
    """Re-file one node with the scheduler after its pods, readiness or presence changed.

    A node can take a pod when present, ready, below ``maxPods`` and, with an
    address filter, below the pods its addresses allow (``N_ADDR_ROOM``, set
    by :func:`_sched_readdress` where addresses change: kept out of here,
    which runs per pod, and out of its code, as a larger function is no
    longer inlined into its callers: 10 -> 24 ms on the 200,000-event bench).
    ``tree_cnt`` is a count tree over node ids (the random policy descends
    it); it changes only when that flips. Spread and pack file each such
    node in the bucket of its key (pods, or ``maxPods - pods``): moving a
    node between buckets is two bit flips, where re-ranking it in a
    min-tree climbed ten levels per pod event (25 ns of the ~57 ns an
    event took, bench/test_bench_engine.py).
    """
    max_pods = nodes[node, N_MAX_PODS]  # its own: node groups of several instance types differ
    pods = nodes[node, N_PODS]
    eligible = (
        nodes[node, N_PRESENT] == 1
        and nodes[node, N_READY] == 1
        and nodes[node, N_CORDONED] == 0
        and pods < max_pods
        and (icfg[I_ADDRESS_FILTER] == ADDRESS_FILTER_NONE or pods < nodes[node, N_ADDR_ROOM])
    )
    policy = icfg[I_SCHEDULER]
    if policy != SCHED_RANDOM:
        key = -1
        if eligible:
            key = pods if policy == SCHED_SPREAD else max_pods - pods
        old = nodes[node, N_BUCKET]
        if key != old:
            if old >= 0:
                words, summary = _bucket(nodes, sched, old)
                bm_set(words, summary, node)
                sched.bucket_count[old] -= 1
            if key >= 0:
                words, summary = _bucket(nodes, sched, key)
                bm_clear(words, summary, node)
                sched.bucket_count[key] += 1
                if key < cnt[K_SCHED_MIN]:
                    cnt[K_SCHED_MIN] = key
            nodes[node, N_BUCKET] = key
    size = sched.tree_cnt.shape[0] // 2
    i = size + node
    delta = (1 if eligible else 0) - sched.tree_cnt[i]
    if delta != 0:
        while i >= 1:
            sched.tree_cnt[i] += delta
            i >>= 1


@kjit(inline_llvm=True)
def _sched_pick(nodes, sched, icfg, cnt):
    """The node for the next pod: fewest pods (spread), fewest free (pack) or uniform (random); -1 if none.

    Spread and pack take the lowest node id among the best, like the
    baseline's ``min`` over ``(key, node)``.
    """
    if sched.tree_cnt[1] == 0:
        return -1
    if icfg[I_SCHEDULER] != SCHED_RANDOM:
        key = cnt[K_SCHED_MIN]
        while sched.bucket_count[key] == 0:  # stops: some bucket holds a node
            key += 1
        cnt[K_SCHED_MIN] = key
        words, summary = _bucket(nodes, sched, key)
        return bm_find_free(words, summary, 0)
    size = sched.tree_cnt.shape[0] // 2
    r = draw(cnt, sched.tree_cnt[1])
    i = 1
    while i < size:
        left = 2 * i
        if sched.tree_cnt[left] > r:
            i = left
        else:
            r -= sched.tree_cnt[left]
            i = left + 1
    return i - size


# --------------------------------------------------------------------------- bitmaps of sets and slots
@kjit(inline=True)  # tiny: a compiled function of its own is optimised again in each caller
def _set_bitmap(cidr, s):
    w0 = cidr.sets[s, S_W_OFF]
    s0 = cidr.sets[s, S_S_OFF]
    return cidr.set_words[w0 : w0 + cidr.sets[s, S_W_LEN]], cidr.set_summary[s0 : s0 + cidr.sets[s, S_S_LEN]]


@kjit(inline=True)
def _slot_bitmap(cidr, slot):
    s = cidr.slots[slot, L_SET]
    chunk = cidr.slots[slot, L_CHUNK]
    nw = cidr.sets[s, S_SLOT_WORDS]
    ns = cidr.sets[s, S_SLOT_SWORDS]
    w0 = cidr.sets[s, S_IPW_OFF] + chunk * nw
    s0 = cidr.sets[s, S_IPS_OFF] + chunk * ns
    return cidr.ip_words[w0 : w0 + nw], cidr.ip_summary[s0 : s0 + ns]


# --------------------------------------------------------------------------- node CIDRs (operator side)
@kjit
def _carve_slot(st, node, pool, family):
    """Carve one node CIDR for ``node`` from the first non-full set of the pool; return the slot or -1.

    The set and the CIDR in it are chosen by the kernels the migration's operators call too
    (:func:`~ipam_core.kernels.carve.first_open_set`, :func:`~ipam_core.kernels.scan.bm_take_next_fit`).
    """
    core = st.core
    sets = core.cidr.sets
    s = first_open_set(sets[:, S_ALLOCATED], sets[:, S_N], core.cidr.pools[pool, P_SET_LO + family],
                       core.cidr.pools[pool, P_SET_HI + family])
    if s < 0:
        return -1
    if not _slot_room(core.nodes, core.cidr, core.cnt, node, s):
        return -1
    words, summary = _set_bitmap(core.cidr, s)
    index, cursor = bm_take_next_fit(words, summary, sets[s, S_N], sets[s, S_CURSOR])
    sets[s, S_CURSOR] = cursor
    return _occupy_slot(st, node, pool, family, s, index)


@kjit(inline=True)
def _slot_room(nodes, cidr, cnt, node, s):
    """Whether a slot, a place in the node's row and a pod-bitmap chunk of set ``s`` are left (else K_ERROR)."""
    # the node's row of `node_slots` is full too: stop rather than write into the next row
    if cnt[K_SLOT_TOP] == 0 or nodes[node, N_NSLOTS] >= cidr.node_slots.shape[1]:
        cnt[K_ERROR] = ERROR_SLOTS_FULL
        return False
    if cidr.sets[s, S_CHUNK_TOP] == 0:
        cnt[K_ERROR] = ERROR_CHUNKS_FULL
        return False
    return True


@kjit
def _occupy_slot(st, node, pool, family, s, index):
    """Give ``node`` the node CIDR ``index`` of set ``s``, whose bit the caller has just set; return its slot."""
    core = st.core
    sets = core.cidr.sets
    top = core.cnt[K_SLOT_TOP]
    sets[s, S_ALLOCATED] += 1
    chunk_top = sets[s, S_CHUNK_TOP] - 1
    sets[s, S_CHUNK_TOP] = chunk_top
    chunk = core.cidr.chunk_stack[sets[s, S_CHUNK_OFF] + chunk_top]
    core.cnt[K_SLOT_TOP] = top - 1
    slot = core.cidr.slot_stack[top - 1]
    max_addrs = sets[s, S_SLOT_MAX]
    sl = core.cidr.slots
    sl[slot, L_STATE] = SLOT_LIVE
    sl[slot, L_SET] = s
    sl[slot, L_INDEX] = index
    sl[slot, L_NODE] = node
    sl[slot, L_CHUNK] = chunk
    sl[slot, L_USED] = 0
    sl[slot, L_MAX] = max_addrs
    sl[slot, L_RESERVED] = 0
    sl[slot, L_FAMILY] = family
    sl[slot, L_POOL] = pool
    pw, ps = _slot_bitmap(core.cidr, slot)
    bm_init(pw, ps, max_addrs)
    k = core.nodes[node, N_NSLOTS]
    core.cidr.node_slots[node, k] = slot
    core.nodes[node, N_NSLOTS] = k + 1
    c = core.cnt
    c[_fc(family, F_CARVED)] += sets[s, S_ADDRS]
    c[_fc(family, F_RESERVED)] += sets[s, S_ADDRS] - max_addrs
    c[_fc(family, F_NODE_CIDRS)] += 1
    c[_fc(family, F_CARVABLE)] -= 1
    c[_fc(family, F_CARVES)] += 1
    c[_fc(family, F_FREE)] += max_addrs
    core.cidr.pool_free[pool, family] += max_addrs
    core.cidr.pool_carvable[pool, family] -= 1
    _sched_carvable_changed(st, pool, family, core.cidr.pool_carvable[pool, family] + 1)
    _sched_addresses_changed(st, node)
    return slot


@kjit
def _free_slot(st, slot):
    """Give a node CIDR back to its set (operator side) and drop it from its node's list."""
    core = st.core
    sl = core.cidr.slots
    s = sl[slot, L_SET]
    family = sl[slot, L_FAMILY]
    pool = sl[slot, L_POOL]
    words, summary = _set_bitmap(core.cidr, s)
    bm_clear(words, summary, sl[slot, L_INDEX])
    core.cidr.sets[s, S_ALLOCATED] -= 1
    top = core.cidr.sets[s, S_CHUNK_TOP]
    core.cidr.chunk_stack[core.cidr.sets[s, S_CHUNK_OFF] + top] = sl[slot, L_CHUNK]
    core.cidr.sets[s, S_CHUNK_TOP] = top + 1
    c = core.cnt
    max_addrs = sl[slot, L_MAX]
    if sl[slot, L_STATE] == SLOT_LIVE:
        free = max_addrs - sl[slot, L_USED]
        c[_fc(family, F_FREE)] -= free
        core.cidr.pool_free[pool, family] -= free
    c[_fc(family, F_CARVED)] -= core.cidr.sets[s, S_ADDRS]
    c[_fc(family, F_RESERVED)] -= core.cidr.sets[s, S_ADDRS] - max_addrs + sl[slot, L_RESERVED]
    c[_fc(family, F_NODE_CIDRS)] -= 1
    c[_fc(family, F_CARVABLE)] += 1
    c[_fc(family, F_RELEASES)] += 1
    core.cidr.pool_carvable[pool, family] += 1
    node = sl[slot, L_NODE]
    n = core.nodes[node, N_NSLOTS]
    k = 0
    while core.cidr.node_slots[node, k] != slot:
        k += 1
    for j in range(k, n - 1):
        core.cidr.node_slots[node, j] = core.cidr.node_slots[node, j + 1]
    core.cidr.node_slots[node, n - 1] = -1
    core.nodes[node, N_NSLOTS] = n - 1
    sl[slot, L_STATE] = SLOT_FREE
    tops = core.cnt[K_SLOT_TOP]
    core.cidr.slot_stack[tops] = slot
    core.cnt[K_SLOT_TOP] = tops + 1
    _sched_carvable_changed(st, pool, family, core.cidr.pool_carvable[pool, family] - 1)
    _sched_addresses_changed(st, node)


# --------------------------------------------------------------------------- addresses (agent side)
@kjit(inline_llvm=True)
def _take_address(cidr, cnt, slot):
    """Random-start scan for a free address in ``slot`` (``randomScanStrategy``); -1 when full."""
    sl = cidr.slots
    max_addrs = sl[slot, L_MAX]
    if sl[slot, L_USED] >= max_addrs:
        return -1
    words, summary = _slot_bitmap(cidr, slot)
    offset = bm_take_scan(words, summary, draw(cnt, max_addrs))
    _address_taken(cidr, cnt, slot)
    return offset


@kjit
def _take_offset(cidr, cnt, slot, offset):
    """Take the address at ``offset`` of ``slot`` (a pod's address as dumped); False when it is not free."""
    words, summary = _slot_bitmap(cidr, slot)
    if offset < 0 or offset >= cidr.slots[slot, L_MAX] or bm_test(words, offset):
        return False
    bm_set(words, summary, offset)
    _address_taken(cidr, cnt, slot)
    return True


@kjit(inline=True)
def _address_taken(cidr, cnt, slot):
    sl = cidr.slots
    sl[slot, L_USED] += 1
    family = sl[slot, L_FAMILY]
    pool = sl[slot, L_POOL]
    cnt[_fc(family, F_FREE)] -= 1
    cidr.pool_free[pool, family] -= 1
    cidr.np_inuse[sl[slot, L_NODE], pool, family] += 1


@kjit(inline_llvm=True)
def _give_address(cidr, cnt, slot, offset):
    sl = cidr.slots
    words, summary = _slot_bitmap(cidr, slot)
    bm_clear(words, summary, offset)
    sl[slot, L_USED] -= 1
    family = sl[slot, L_FAMILY]
    pool = sl[slot, L_POOL]
    cnt[_fc(family, F_FREE)] += 1
    cidr.pool_free[pool, family] += 1
    cidr.np_inuse[sl[slot, L_NODE], pool, family] -= 1


@kjit
def _find_slot(st, node, pool, family):
    """The node CIDR the agent draws from: host scope uses only its first CIDR of the family."""
    core = st.core
    primary_only = one_cidr_per_family(st)
    sl = core.cidr.slots
    for k in range(core.nodes[node, N_NSLOTS]):
        slot = core.cidr.node_slots[node, k]
        if sl[slot, L_STATE] != SLOT_LIVE or sl[slot, L_FAMILY] != family or sl[slot, L_POOL] != pool:
            continue
        if sl[slot, L_USED] < sl[slot, L_MAX]:
            return slot
        if primary_only:
            return -1
    return -1


@kjit
def _take_reserved(st, node, pool, family):
    core = st.core
    # router (cilium_host) or health address: a random slot like any other
    slot = _find_slot(st, node, pool, family)
    if slot < 0:
        return False
    _take_address(core.cidr, core.cnt, slot)
    core.cidr.slots[slot, L_RESERVED] += 1
    core.cnt[_fc(family, F_RESERVED)] += 1
    return True


@kjit
def _agent_start(st, node):
    """Take router and health addresses and mark the node ready."""
    core = st.core
    pool = core.icfg[I_DEFAULT_POOL]
    if pool < 0:
        return
    for family in range(2):
        if core.icfg[I_FAMILY + family] == 0:
            continue
        _take_reserved(st, node, pool, family)
        if core.icfg[I_HEALTH] != 0:
            _take_reserved(st, node, pool, family)
    _agent_ready(st, node)


@kjit(inline=True)
def _holds_family(nodes, cidr, node, family):
    """Whether the node holds a CIDR of ``family``."""
    for k in range(nodes[node, N_NSLOTS]):
        if cidr.slots[cidr.node_slots[node, k], L_FAMILY] == family:
            return True
    return False


@kjit
def _agent_ready(st, node):
    """The agent holds its router and health addresses: the node is ready for pods."""
    core = st.core
    core.nodes[node, N_READY] = 1
    core.cnt[K_READY] += 1
    _sched_update(core.nodes, core.sched, core.icfg, core.cnt, node)
    _sched_addresses_changed(st, node)  # after the router and health addresses


@kjit  # a hook (engine/hooks.py): called, not inlined
def take_slot_addresses(st, pod, node, now):
    """The node-CIDR families' ``take_pod_addresses`` hook: an address per family from the node's CIDRs.

    IPv6 first; returns -1 or the family that failed.
    """
    core = st.core
    pods = core.pod_tables.pods
    for step in range(2):
        family = 1 - step
        if core.icfg[I_FAMILY + family] == 0:
            continue
        pool = pods[pod, D_POOL + family]
        slot = -1
        if pool >= 0:
            slot = _find_slot(st, node, pool, family)
        if slot < 0:
            if step == 1 and pods[pod, D_SLOT + 1] >= 0:
                _give_address(core.cidr, core.cnt, pods[pod, D_SLOT + 1], pods[pod, D_OFF + 1])
                pods[pod, D_SLOT + 1] = -1
            core.cnt[_fc(family, F_IP_FAILS)] += 1
            if pool < 0:
                core.nodes[node, N_STATUS] = STATUS_NO_POOL
            return family
        pods[pod, D_SLOT + family] = slot
        pods[pod, D_OFF + family] = _take_address(core.cidr, core.cnt, slot)
    for family in range(2):
        if pods[pod, D_SLOT + family] >= 0:
            core.cnt[_fc(family, F_USED)] += 1
            core.cnt[_fc(family, F_IP_ALLOCS)] += 1
    return -1


@kjit
def give_slot_addresses(st, pod):
    """The node-CIDR families' ``give_pod_addresses`` hook: the pod's addresses back to their node CIDRs."""
    core = st.core
    pods = core.pod_tables.pods
    for family in range(2):
        slot = pods[pod, D_SLOT + family]
        if slot >= 0:
            _give_address(core.cidr, core.cnt, slot, pods[pod, D_OFF + family])
            pods[pod, D_SLOT + family] = -1
            core.cnt[_fc(family, F_USED)] -= 1


# --------------------------------------------------------------------------- pods
@kjit(inline_llvm=True)
def _bind(nodes, pod_tables, sched, icfg, cnt, pod, node):
    pods = pod_tables.pods
    pods[pod, D_NODE] = node
    head = nodes[node, N_HEAD]
    pods[pod, D_NEXT] = head
    pods[pod, D_PREV] = -1
    if head >= 0:
        pods[head, D_PREV] = pod
    nodes[node, N_HEAD] = pod
    nodes[node, N_PODS] += 1
    _sched_update(nodes, sched, icfg, cnt, node)


@kjit(inline_llvm=True)
def _unbind(nodes, pod_tables, sched, icfg, cnt, pod):
    pods = pod_tables.pods
    node = pods[pod, D_NODE]
    if node < 0:
        return
    nxt = pods[pod, D_NEXT]
    prv = pods[pod, D_PREV]
    if prv >= 0:
        pods[prv, D_NEXT] = nxt
    else:
        nodes[node, N_HEAD] = nxt
    if nxt >= 0:
        pods[nxt, D_PREV] = prv
    pods[pod, D_NODE] = -1
    nodes[node, N_PODS] -= 1
    _sched_update(nodes, sched, icfg, cnt, node)


@kjit
def _clear_pending_demand(pod_tables, cidr, pod):
    family = pod_tables.pods[pod, D_PENDING_FAMILY]
    if family >= 0:
        node = pod_tables.pods[pod, D_NODE]
        pool = pod_tables.pods[pod, D_POOL + family]
        if node >= 0 and pool >= 0:
            cidr.np_pending[node, pool, family] -= 1
        pod_tables.pods[pod, D_PENDING_FAMILY] = -1


@kjit
def _leave_pending(nodes, pod_tables, cidr, cnt, pod):
    _clear_pending_demand(pod_tables, cidr, pod)
    cnt[K_PENDING] -= 1
    node = pod_tables.pods[pod, D_NODE]
    if node >= 0:
        nodes[node, N_PENDING] -= 1


@kjit(inline=True)  # per-event path: see the note above advance
def _count_start(pod_tables, cnt, pod, now):
    """The pod got its addresses: count it, and how long it waited pending before (whole milliseconds)."""
    cnt[K_STARTED] += 1
    if pod_tables.pods[pod, D_STATE] == POD_PENDING:
        cnt[K_START_WAIT_MS] += np.int64(np.floor((now - pod_tables.pod_since[pod]) * 1e3 + 0.5))


@kjit(inline=True)  # per-event path: see the note above advance
def _try_start(st, pod, now):
    """Bound pod asks its node's agent for addresses; becomes running or (stays) pending."""
    core = st.core
    pods = core.pod_tables.pods
    node = pods[pod, D_NODE]
    failed = take_pod_addresses(st, pod, node, now)
    if failed < 0:
        _count_start(core.pod_tables, core.cnt, pod, now)
        if pods[pod, D_STATE] == POD_PENDING:
            _leave_pending(core.nodes, core.pod_tables, core.cidr, core.cnt, pod)
        pods[pod, D_STATE] = POD_RUNNING
        core.cnt[K_RUNNING] += 1
        pod_changed(st, node, now)
        return
    failed_at = core.pod_tables.pod_failed_at
    failed_at[min(pod, failed_at.shape[0] - 1)] = now  # one shared entry unless multi-pool
    if pods[pod, D_STATE] != POD_PENDING:
        pods[pod, D_STATE] = POD_PENDING
        core.pod_tables.pod_since[pod] = now
        core.cnt[K_PENDING] += 1
        core.nodes[node, N_PENDING] += 1
    if pods[pod, D_PENDING_FAMILY] != failed:
        _clear_pending_demand(core.pod_tables, core.cidr, pod)
        pool = pods[pod, D_POOL + failed]
        if pool >= 0:
            core.cidr.np_pending[node, pool, failed] += 1
            pods[pod, D_PENDING_FAMILY] = failed
    pod_changed(st, node, now)
    _push_retry(core.pod_tables, core.timer, core.cnt, now + core.cfg[C_RETRY], pod)


@kjit(inline=True)  # _fail's only
def _free_elsewhere(nodes, pod_tables, cidr, pod):
    # Were addresses free on other nodes' CIDRs, or uncarved in the pool, for the family that failed?
    family = pod_tables.pods[pod, D_PENDING_FAMILY]
    if family < 0:
        return False
    pool = pod_tables.pods[pod, D_POOL + family]
    if pool < 0:
        return False
    if cidr.pool_carvable[pool, family] > 0:
        return True
    node = pod_tables.pods[pod, D_NODE]
    here = 0
    sl = cidr.slots
    for k in range(nodes[node, N_NSLOTS]):
        slot = cidr.node_slots[node, k]
        if sl[slot, L_STATE] == SLOT_LIVE and sl[slot, L_POOL] == pool and sl[slot, L_FAMILY] == family:
            here += sl[slot, L_MAX] - sl[slot, L_USED]
    return cidr.pool_free[pool, family] - here > 0


@kjit
def _fail(nodes, pod_tables, cidr, timer, sched, icfg, cnt, pod):
    if _free_elsewhere(nodes, pod_tables, cidr, pod):
        cnt[K_FAILED_FREE] += 1
    if pod_tables.pods[pod, D_EVICTED] == 1:
        cnt[K_EVICTED_FAILED] += 1
    _leave_pending(nodes, pod_tables, cidr, cnt, pod)
    _unbind(nodes, pod_tables, sched, icfg, cnt, pod)
    pod_tables.pods[pod, D_STATE] = POD_FAILED
    cnt[K_FAILED] += 1
    _row_free(pod_tables, timer, cnt, pod)


@kjit(inline=True)  # per-event path: see the note above advance
def _row_alloc(pod_tables, cnt, pod_id):
    """A fresh pods-table row for a new workload pod id; -1 if the id was seen before."""
    if pod_tables.pod_row[pod_id] != POD_ROW_UNSEEN:
        return -1
    top = cnt[K_ROW_TOP]
    if top == 0:
        cnt[K_ERROR] = ERROR_ROWS_FULL
        return -1
    cnt[K_ROW_TOP] = top - 1
    pods = pod_tables.pods
    row = cnt[K_ROW_FREE]  # the last row freed, as a stack of free rows would hand out, else a fresh one
    if row >= 0:
        cnt[K_ROW_FREE] = pods[row, D_NEXT]
    else:
        row = cnt[K_ROW_FRESH]
        cnt[K_ROW_FRESH] = row + 1
    pods[row, D_STATE] = POD_NONE
    pods[row, D_NODE] = -1
    pods[row, D_PENDING_FAMILY] = -1
    pods[row, D_EVICTED] = 0
    source = pod_id if pod_tables.pod_pool.shape[0] > 1 else 0
    for family in range(2):
        pods[row, D_SLOT + family] = -1
        pods[row, D_POOL + family] = pod_tables.pod_pool[source, family]
    pods[row, D_ID] = pod_id
    pod_tables.pod_row[pod_id] = row
    return row


@kjit(inline=True)  # per-event path: see the note above advance
def _row_free(pod_tables, timer, cnt, row):
    """Give a deleted or failed pod's row back; its pod id is gone for good."""
    pods = pod_tables.pods
    pod_tables.pod_row[pods[row, D_ID]] = POD_ROW_GONE
    pods[row, D_STATE] = POD_NONE
    pods[row, D_NODE] = -1
    armed = pods[row, D_RETRY_AT]
    if armed >= 0:  # its retry outlives it: void it, the row may hold another pod when it fires
        timer.retry_row[armed] = -1
        pods[row, D_RETRY_AT] = -1
    pods[row, D_NEXT] = cnt[K_ROW_FREE]  # unbound: the link is free to chain the free rows
    cnt[K_ROW_FREE] = row
    cnt[K_ROW_TOP] += 1


@kjit(inline=True)  # per-event path: see the note above advance
def _placement(nodes, pod_tables, sched, icfg, cnt, pod):
    """The node for an unbound pod: its pinned node once that is present, else the scheduler's pick; -1 to wait."""
    pinned = pod_tables.pods[pod, D_PIN]
    if pinned >= 0:
        return pinned if nodes[pinned, N_PRESENT] == 1 else -1
    return _sched_pick(nodes, sched, icfg, cnt)


@kjit(inline=True)  # per-event path: see the note above advance
def _pod_add(st, pod, pinned, now):
    core = st.core
    if core.pod_tables.pods[pod, D_STATE] != POD_NONE:
        return
    core.pod_tables.pods[pod, D_PIN] = pinned
    node = _placement(core.nodes, core.pod_tables, core.sched, core.icfg, core.cnt, pod)
    if node < 0:
        # unschedulable for now, or its node is not there yet: waits in the scheduling queue, retried
        core.pod_tables.pods[pod, D_STATE] = POD_PENDING
        core.pod_tables.pod_since[pod] = now
        core.cnt[K_PENDING] += 1
        _push_retry(core.pod_tables, core.timer, core.cnt, now + core.cfg[C_RETRY], pod)
        return
    _bind(core.nodes, core.pod_tables, core.sched, core.icfg, core.cnt, pod, node)
    _try_start(st, pod, now)


@kjit(inline=True)  # per-event path: see the note above advance
def _pod_retry(st, pod, now):
    core = st.core
    pods = core.pod_tables.pods
    if pods[pod, D_STATE] != POD_PENDING:
        return
    node = pods[pod, D_NODE]
    if node < 0:
        node = _placement(core.nodes, core.pod_tables, core.sched, core.icfg, core.cnt, pod)
        if node < 0:
            _push_retry(core.pod_tables, core.timer, core.cnt, now + core.cfg[C_RETRY], pod)
            return
        core.cnt[K_PENDING] -= 1
        pods[pod, D_STATE] = POD_NONE
        _bind(core.nodes, core.pod_tables, core.sched, core.icfg, core.cnt, pod, node)
    elif now - core.pod_tables.pod_since[pod] >= core.cfg[C_TIMEOUT]:
        # one last attempt, then give up
        failed = take_pod_addresses(st, pod, node, now)
        if failed < 0:
            _count_start(core.pod_tables, core.cnt, pod, now)
            _leave_pending(core.nodes, core.pod_tables, core.cidr, core.cnt, pod)
            pods[pod, D_STATE] = POD_RUNNING
            core.cnt[K_RUNNING] += 1
        else:
            _fail(core.nodes, core.pod_tables, core.cidr, core.timer, core.sched, core.icfg, core.cnt, pod)
        pod_changed(st, node, now)
        return
    _try_start(st, pod, now)


@kjit(inline=True)  # per-event path: see the note above advance
def _pod_delete(st, pod, now):
    core = st.core
    pods = core.pod_tables.pods
    state = pods[pod, D_STATE]
    node = pods[pod, D_NODE]
    if state == POD_RUNNING:
        give_pod_addresses(st, pod)
        core.cnt[K_RUNNING] -= 1
    elif state == POD_PENDING:
        _leave_pending(core.nodes, core.pod_tables, core.cidr, core.cnt, pod)
    else:
        return
    _unbind(core.nodes, core.pod_tables, core.sched, core.icfg, core.cnt, pod)
    pods[pod, D_STATE] = POD_DELETED
    _row_free(core.pod_tables, core.timer, core.cnt, pod)
    if node >= 0:
        pod_changed(st, node, now)


# --------------------------------------------------------------------------- nodes
@kjit(inline=True)  # into _node_event (engine/core.py): one library, not one per step
def _node_add(st, node, now):
    core = st.core
    nodes = core.nodes
    if nodes[node, N_PRESENT] == 1:
        return
    nodes[node, N_PRESENT] = 1
    nodes[node, N_READY] = 0
    nodes[node, N_GEN] += 1
    nodes[node, N_STATUS] = STATUS_OK
    nodes[node, N_SYNC_ARMED] = 0
    core.cnt[K_NODES] += 1
    node_added(st, node, now)
    _sched_update(core.nodes, core.sched, core.icfg, core.cnt, node)


@kjit(inline=True)  # into _node_event (engine/core.py): one library, not one per step
def _node_delete(st, node):
    core = st.core
    nodes = core.nodes
    if nodes[node, N_PRESENT] == 0:
        return
    pods = core.pod_tables.pods
    pod = nodes[node, N_HEAD]
    while pod >= 0:
        nxt = pods[pod, D_NEXT]
        if pods[pod, D_STATE] == POD_RUNNING:
            give_pod_addresses(st, pod)
            core.cnt[K_RUNNING] -= 1
        else:
            _leave_pending(core.nodes, core.pod_tables, core.cidr, core.cnt, pod)
        pods[pod, D_STATE] = POD_DELETED
        pods[pod, D_NODE] = -1
        _row_free(core.pod_tables, core.timer, core.cnt, pod)
        pod = nxt
    nodes[node, N_HEAD] = -1
    nodes[node, N_PODS] = 0
    nodes[node, N_PENDING] = 0
    node_deleted(st, node)
    while nodes[node, N_NSLOTS] > 0:
        _free_slot(st, core.cidr.node_slots[node, nodes[node, N_NSLOTS] - 1])
    if nodes[node, N_READY] == 1:
        core.cnt[K_READY] -= 1
    nodes[node, N_READY] = 0
    nodes[node, N_PRESENT] = 0
    if nodes[node, N_CORDONED] == 1:  # a node added again under this id starts schedulable
        nodes[node, N_CORDONED] = 0
        core.cnt[K_CORDONED] -= 1
    nodes[node, N_STATUS] = STATUS_OK
    core.cnt[K_NODES] -= 1
    _loud(core.quiet, node)  # not counted while absent; a new incarnation starts loud
    for pool in range(core.cidr.pools.shape[0]):
        for family in range(2):
            core.cidr.np_inuse[node, pool, family] = 0
            core.cidr.np_pending[node, pool, family] = 0
            core.cidr.np_requested[node, pool, family] = 0
    _sched_update(core.nodes, core.sched, core.icfg, core.cnt, node)


# --------------------------------------------------------------------------- node lifecycle
# Cordon, drain and agent restart (ipam_core/workloads/lifecycle.py writes the events). What a drained
# node keeps is each mode's own rule, unchanged: its node CIDRs (host scope, cluster-pool: until the
# Node / CiliumNode is deleted), the multi-pool agent's pre-allocation buffer (its agent still runs and
# gives back what exceeds it), the cloud pool at its watermarks (Cilium ENI / Azure operator, ipamd's
# warm targets: aws/amazon-vpc-cni-k8s#3263).
@kjit(inline=True)  # into _node_event (engine/core.py): one library, not one per step
def _evict(st, pod, now):
    """Evict a bound pod (Eviction API): its addresses go back to its node; a replacement is scheduled.

    The workload's pod id stands for the replica: its controller creates the
    replacement at once and the scheduler places it on another node (this
    row, ``D_EVICTED`` set, so that a replacement that fails for want of an
    address is counted). A pod that was still waiting for an address keeps
    its retry timer and is placed again when it fires.
    """
    core = st.core
    pods = core.pod_tables.pods
    core.cnt[K_EVICTED] += 1
    pods[pod, D_EVICTED] = 1
    if pods[pod, D_STATE] == POD_RUNNING:
        give_pod_addresses(st, pod)
        core.cnt[K_RUNNING] -= 1
        _unbind(core.nodes, core.pod_tables, core.sched, core.icfg, core.cnt, pod)
        pods[pod, D_STATE] = POD_NONE
        _pod_add(st, pod, -1, now)
        return
    # waiting on the node: now waits in the scheduling queue
    _leave_pending(core.nodes, core.pod_tables, core.cidr, core.cnt, pod)
    _unbind(core.nodes, core.pod_tables, core.sched, core.icfg, core.cnt, pod)
    core.cnt[K_PENDING] += 1


@kjit(inline=True)  # into _node_event (engine/core.py): one library, not one per step
def _cordon(nodes, sched, icfg, cnt, node):
    # spec.unschedulable: the scheduler passes the node by; its pods stay
    if nodes[node, N_CORDONED] == 0:
        nodes[node, N_CORDONED] = 1
        cnt[K_CORDONED] += 1
        _sched_update(nodes, sched, icfg, cnt, node)


@kjit(inline=True)  # into _node_event (engine/core.py): one library, not one per step
def _node_drain(st, node, now):
    """``kubectl drain``: cordon, then evict every pod not pinned to the node (pinned ones are its DaemonSets)."""
    core = st.core
    pods = core.pod_tables.pods
    _cordon(core.nodes, core.sched, core.icfg, core.cnt, node)
    pod = core.nodes[node, N_HEAD]
    while pod >= 0:
        nxt = pods[pod, D_NEXT]
        if pods[pod, D_PIN] < 0:
            _evict(st, pod, now)
        pod = nxt
    pod_changed(st, node, now)  # the agent still runs: multi-pool writes its lower demand, cloud pools settle


@kjit(inline=True)  # into _node_event (engine/core.py): one library, not one per step
def _node_lifecycle(st, op, node, now):
    """The node-lifecycle events of ``advance`` (a node that is not present ignores them)."""
    core = st.core
    if core.nodes[node, N_PRESENT] == 0:
        return
    if op == OP_NODE_CORDON:
        _cordon(core.nodes, core.sched, core.icfg, core.cnt, node)
    elif op == OP_NODE_DRAIN:
        _node_drain(st, node, now)
    elif op == OP_AGENT_RESTART:
        agent_restarted(st, node, now)


@kjit
def _node_event(st, op, node, now):
    """A node event of ``advance``: added, deleted, cordoned, drained or its agent restarted.

    Rare next to pod events, so out of the loop's body (a call), and one
    compiled function with its steps inlined: each compiled function is
    optimised and turned into machine code again, with everything it calls,
    in every function that calls it (results/first-run.md).
    """
    if op == OP_NODE_ADD:
        _node_add(st, node, now)
    elif op == OP_NODE_DEL:
        _node_delete(st, node)
    else:
        _node_lifecycle(st, op, node, now)


# --------------------------------------------------------------------------- quiet periodic passes
@kjit
def _dyadic(t, period, until):
    """Whether ``t + k * period`` is exact in float64 for every ``t + k * period < until`` (+ two periods).

    Then the loop's repeated ``now + period`` equals ``t + k * period``: both are
    multiples of one power of two (whole seconds, halves ...) well inside 2**52.
    """
    scale = 1.0
    for _ in range(40):
        a = t * scale
        b = period * scale
        if a == np.floor(a) and b == np.floor(b):
            return (abs(until) + 2.0 * period + abs(t)) * scale < 4503599627370496.0  # 2**52
        scale *= 2.0
    return False


@kjit
def _grid(t, period, until):
    """The periodic timer at ``t``, set again ``period`` later each time it fires, fired while before ``until``.

    Returns ``(fired, last, next)``: how many times it fires, its last firing time and the
    time it is set for afterwards (``t`` when it does not fire), each time computed as
    the loop does, by adding ``period`` again and again.
    """
    if not t < until:
        return 0, t, t
    if _dyadic(t, period, until):
        k = max(np.int64((until - t) / period), np.int64(1))
        while t + k * period < until:
            k += 1
        while k > 1 and not t + (k - 1) * period < until:
            k -= 1
        return k, t + (k - 1) * period, t + k * period
    k = 0
    last = t
    nxt = t
    while nxt < until:
        last = nxt
        nxt = nxt + period
        k += 1
    return k, last, nxt


@kjit(inline=True)
def _ring_swap(timer, kind, i, j):
    tt = timer.node_ring_t[kind, i]
    timer.node_ring_t[kind, i] = timer.node_ring_t[kind, j]
    timer.node_ring_t[kind, j] = tt
    for c in range(3):
        v = timer.node_ring_i[kind, i, c]
        timer.node_ring_i[kind, i, c] = timer.node_ring_i[kind, j, c]
        timer.node_ring_i[kind, j, c] = v


@kjit(inline=True)  # helpers of _fast_forward_refresh only
def _ring_reverse(timer, kind, lo, hi):
    # reverse the ring's entries at logical positions lo .. hi - 1 (from its head)
    cap = timer.node_ring_t.shape[1]
    head = timer.node_ring_pos[kind, 0]
    hi -= 1
    while lo < hi:
        _ring_swap(timer, kind, (head + lo) % cap, (head + hi) % cap)
        lo += 1
        hi -= 1


@kjit(inline=True)
def _other_timers_at(timer, cnt, skip_carves):
    """The earliest timer outside the periodic ring (and outside the operator ring when ``skip_carves``)."""
    t = np.inf
    if cnt[K_HEAP] > 0:
        t = timer.heap_t[0]
    if cnt[K_RETRY_LEN] > 0:
        t = min(t, timer.retry_t[cnt[K_RETRY_HEAD]])
    for kind in range(timer.node_ring_t.shape[0]):
        if kind == T_REFRESH or (kind == T_CARVE and skip_carves):
            continue
        if timer.node_ring_pos[kind, 1] > 0:
            t = min(t, timer.node_ring_t[kind, timer.node_ring_pos[kind, 0]])
    return t


# A fast-forward costs a few passes over the ring; firing timers one by one costs a call each. It pays
# from about an eighth of a round on (e.g. 10 s samples with a 60 s resync).
MIN_FAST_FORWARD = 0.125


@kjit
def _fast_forward_refresh(st, t_limit):
    """Fire the periodic timers of quiet nodes in one step, up to the next thing that is not one.

    Called when the periodic ring's head is the loop's next timer. When every
    present node is quiet, every firing before the earliest of ``t_limit`` (the
    next event, or where the loop stops), any other timer and any node's wake
    is a pass that changes nothing (multi-pool: plus an operator pass that
    changes nothing), in the ring's round-robin order. The ring is left as
    the loop would leave it: stale timers of deleted nodes dropped, each entry
    at its next time, entries that fired re-numbered in the order they last
    fired, and the multi-pool operator timers of the last firings that are
    still due set as the loop would have set them. Returns False (nothing
    done) when less than ``MIN_FAST_FORWARD`` of a period could be skipped.
    """
    core = st.core
    if core.quiet[QUIET_OFF] != 0.0 or core.quiet[QUIET_COUNT] != np.float64(core.cnt[K_NODES]):
        return False
    kind = T_REFRESH
    multi_pool = carve_follows_refresh(st)
    period = refresh_period(st)
    delay = core.cfg[C_OPERATOR_DELAY]
    if not period > 0.0 or (multi_pool and not delay < period):
        return False  # (an operator timer of an earlier firing could still be due: not modelled here)
    if multi_pool and not _heap_room_for(core.cnt, core.timer.node_ring_pos[kind, 1]):
        return True  # an operator timer per ring entry may land in the heap: the loop stops for room first
    cap = core.timer.node_ring_t.shape[1]
    head = core.timer.node_ring_pos[kind, 0]
    count = core.timer.node_ring_pos[kind, 1]
    head_t = core.timer.node_ring_t[kind, head]
    if head_t < core.quiet[QUIET_NO_BULK_BEFORE]:
        return False
    until = min(t_limit, _other_timers_at(core.timer, core.cnt, multi_pool))
    if until < head_t + period * MIN_FAST_FORWARD or not until < np.inf:
        return False
    for i in range(count):  # a node that wakes: its pass there runs
        r = (head + i) % cap
        node = core.timer.node_ring_i[kind, r, 0]
        if core.nodes[node, N_PRESENT] == 1 and core.nodes[node, N_GEN] == core.timer.node_ring_i[kind, r, 1]:
            wake = core.quiet[QUIET_HEAD + node]
            if wake < until:
                _, _, at = _grid(core.timer.node_ring_t[kind, r], period, wake)
                until = min(until, at)
    if until < head_t + period * MIN_FAST_FORWARD:
        core.quiet[QUIET_NO_BULK_BEFORE] = until
        return False
    # fire: drop stale timers that fire, keep each entry's last firing time, in ring order
    kept = 0
    most = -1
    split = -1
    for i in range(count):
        r = (head + i) % cap
        t = core.timer.node_ring_t[kind, r]
        node = core.timer.node_ring_i[kind, r, 0]
        gen = core.timer.node_ring_i[kind, r, 1]
        seq = core.timer.node_ring_i[kind, r, 2]
        fired = 0
        if core.nodes[node, N_PRESENT] == 1 and core.nodes[node, N_GEN] == gen:
            fired, last, _ = _grid(t, period, until)
            if fired > 0:
                t = last
                seq = -1  # numbered below, once the order of the last firings is known
        elif t < until:
            continue  # a timer of a deleted node fires and is gone
        if kept == 0:
            most = fired
        elif split < 0 and fired < most:
            split = kept
        w = (head + kept) % cap
        core.timer.node_ring_t[kind, w] = t
        core.timer.node_ring_i[kind, w, 0] = node
        core.timer.node_ring_i[kind, w, 1] = gen
        core.timer.node_ring_i[kind, w, 2] = seq
        kept += 1
    core.timer.node_ring_pos[kind, 1] = kept
    if split > 0:  # round robin: the entries that fired one time fewer fired last before the others
        _ring_reverse(core.timer, kind, 0, split)
        _ring_reverse(core.timer, kind, split, kept)
        _ring_reverse(core.timer, kind, 0, kept)
    if multi_pool:  # the operator timers that fired before `until` were no-ops on quiet nodes
        ring_t, ring_pos = core.timer.node_ring_t, core.timer.node_ring_pos
        while ring_pos[T_CARVE, 1] > 0 and ring_t[T_CARVE, ring_pos[T_CARVE, 0]] < until:
            _pop_node_ring(core.timer, T_CARVE)
    for i in range(kept):  # number the fired entries in firing order, setting what each last firing set
        r = (head + i) % cap
        if core.timer.node_ring_i[kind, r, 2] != -1:
            continue
        last = core.timer.node_ring_t[kind, r]
        node = core.timer.node_ring_i[kind, r, 0]
        gen = core.timer.node_ring_i[kind, r, 1]
        if multi_pool and not last + delay < until:
            _push(core.timer, core.cnt, last + delay, T_CARVE, node, gen)
        seq = core.cnt[K_SEQ]
        core.cnt[K_SEQ] = seq + 1
        core.timer.node_ring_i[kind, r, 2] = seq
        core.timer.node_ring_t[kind, r] = last + period
    return True


# --------------------------------------------------------------------------- the loop
# The functions on the per-event path (_pod_add, _pod_delete, _try_start,
# _pod_retry, _timer) are inlined into `advance` at the Numba IR level (the hooks they call are
# calls: see engine/hooks.py): a call that is
# not inlined passes the State namedtuple as ~210 scalar arguments (7-9 per array), which
# cost more than the work itself (1M events through cluster-pool: 199 -> 84 ns/event,
# bench/test_bench_engine.py).
@kjit(inline=True)  # per-event path: see the note above advance
def _timer(st, kind, a, b, now):
    core = st.core
    if kind == T_POD_RETRY:
        if a >= 0:  # else its pod went (_row_free)
            _pod_retry(st, a, now)
        return
    node = a
    if core.nodes[node, N_PRESENT] == 0 or core.nodes[node, N_GEN] != b:
        return  # a timer of a deleted node or an earlier incarnation
    if kind == T_REFRESH and _quiet_at(core.quiet, node, now):
        quiet_refresh(st, node, b, now)  # the pass would change nothing: only the timers it sets
        return
    node_timer(st, kind, node, b, now)


FROM_HEAP = -1  # the next timer's source in advance: the heap, or a ring named by its timer kind
BIG_SEQ = np.int64(1) << np.int64(62)
PREFETCH_EVENTS = 16  # how far ahead the loop prefetches a pod's row-map entry; its row at half that


@kjit(inline=True)
def _prefetch_events(nodes, pod_tables, cidr, sched, ev_op, ev_pod, e, n_events):
    # A deleted pod's entry in `pod_row` and its row in `pods` are random accesses into
    # tables of megabytes; loading them a few events early overlaps the misses. A quarter
    # ahead, its row is in cache: then the rows its delete writes (its node's, its neighbours'
    # in the node's pod list, its node CIDRs') are loaded too, and an eighth ahead the rows a
    # pod added to that node writes (the head of its pod list, its CIDR list).
    ahead = e + PREFETCH_EVENTS
    if ahead < n_events:
        prefetch_word(pod_tables.pod_row, ev_pod[ahead])
    half = e + PREFETCH_EVENTS // 2
    if half < n_events and ev_op[half] == OP_POD_DEL:
        row = pod_tables.pod_row[ev_pod[half]]
        if row >= 0:
            prefetch_row(pod_tables.pods, row)
    quarter = e + PREFETCH_EVENTS // 4
    if quarter < n_events and ev_op[quarter] == OP_POD_DEL:
        row = pod_tables.pod_row[ev_pod[quarter]]
        if row >= 0:
            pods = pod_tables.pods
            prefetch_row(nodes, pods[row, D_NODE])  # a prefetch of any row never faults
            prefetch_row(pods, pods[row, D_NEXT])
            prefetch_row(pods, pods[row, D_PREV])
            prefetch_row(cidr.slots, pods[row, D_SLOT])
            prefetch_row(cidr.slots, pods[row, D_SLOT + 1])
    eighth = e + PREFETCH_EVENTS // 8
    if eighth < n_events and ev_op[eighth] == OP_POD_DEL:
        row = pod_tables.pod_row[ev_pod[eighth]]
        if row >= 0:
            node = pod_tables.pods[row, D_NODE]
            if node >= 0:  # its node's row is in cache now; a new pod often lands there next (spread)
                prefetch_row(pod_tables.pods, nodes[node, N_HEAD])
                prefetch_row(cidr.node_slots, node)
                prefetch_word(sched.tree_cnt, sched.tree_cnt.shape[0] // 2 + node)
                prefetch_word(cidr.np_inuse.reshape(-1), node * cidr.np_inuse.shape[1] * 2)
            slot = pod_tables.pods[row, D_SLOT]
            if 0 <= slot < cidr.slots.shape[0]:  # its IPv4 address's bitmap word (node-CIDR modes)
                s = cidr.slots[slot, L_SET]
                if 0 <= s < cidr.sets.shape[0]:
                    words = cidr.sets[s, S_IPW_OFF] + cidr.slots[slot, L_CHUNK] * cidr.sets[s, S_SLOT_WORDS]
                    prefetch_word(cidr.ip_words, words + (pod_tables.pods[row, D_OFF] >> 6))


#: Most timers a drained node's evicted pod sets, besides its own retry (the retry ring holds it): its new
#: node's operator request and agent sync, one more for a multi-pool or cloud pass it triggers, each
#: possibly in the heap.
DRAIN_TIMERS_PER_POD = 4


@kjit
def _drain_room(nodes, cnt, node):
    """Whether the heap has room for draining ``node`` (every pod on it evicted); else ask for it."""
    pods = np.int64(nodes[node, N_PODS]) if nodes[node, N_PRESENT] == 1 else np.int64(0)
    return _heap_room_for(cnt, DRAIN_TIMERS_PER_POD * pods)


@kjit(inline=True)
def _next_timer(timer, cnt):
    """The earliest (time, sequence) among the heap's top and the rings' heads: ``(source, time)``."""
    t_timer = np.inf
    seq = BIG_SEQ
    source = FROM_HEAP
    if cnt[K_HEAP] > 0:
        t_timer = timer.heap_t[0]
        seq = timer.heap_i[0, H_SEQ]
    if cnt[K_RETRY_LEN] > 0:
        head = cnt[K_RETRY_HEAD]
        t_ring = timer.retry_t[head]
        if t_ring < t_timer or (t_ring == t_timer and timer.retry_seq[head] < seq):
            t_timer = t_ring
            seq = timer.retry_seq[head]
            source = T_POD_RETRY
    for kind in range(timer.node_ring_t.shape[0]):
        if timer.node_ring_pos[kind, 1] > 0:
            head = timer.node_ring_pos[kind, 0]
            t_ring = timer.node_ring_t[kind, head]
            if t_ring < t_timer or (t_ring == t_timer and timer.node_ring_i[kind, head, 2] < seq):
                t_timer = t_ring
                seq = timer.node_ring_i[kind, head, 2]
                source = kind
    return source, t_timer


@kjit(inline=True)  # into sample_run, its one caller: a separate copy cost a second LLVM pass over the loop
def advance(st, ev_time, ev_op, ev_node, ev_pod, t_stop):
    """Process every event and timer due before ``t_stop``.

    Parameters
    ----------
    st : State
        The engine state (:class:`ipam_core.engine.state.State`), updated in place.
    ev_time, ev_op, ev_node, ev_pod : numpy.ndarray
        The workload's event columns (float64, int8, int32, int32).
    t_stop : float
        Simulated time to stop at (exclusive).

    Returns
    -------
    int
        0, or an ``ERROR_*`` code when an internal table ran out of room.

    Notes
    -----
    Timers due at the same time as an event fire first; equal timers fire in
    the order they were set. The loop can be resumed with a later ``t_stop``.
    """
    core = st.core
    n_events = ev_time.shape[0]
    while core.cnt[K_ERROR] == 0:
        e = core.cnt[K_EVENT]
        t_event = ev_time[e] if e < n_events else np.inf
        if core.timer.next_timer[0] <= t_event:  # else no timer is due before the event: skip the search
            source, t_timer = _next_timer(core.timer, core.cnt)
            core.timer.next_timer[0] = t_timer
            if t_timer <= t_event:
                if t_timer >= t_stop:
                    break
                if (source == T_REFRESH and core.quiet[QUIET_COUNT] == np.float64(core.cnt[K_NODES])
                        and _fast_forward_refresh(st, min(t_event, t_stop))):
                    continue  # quiet nodes' periodic passes skipped up to the next thing that matters
                # one call site: each inlined copy of _timer costs seconds of compile time
                kind = source
                if source == T_POD_RETRY:
                    # a pod's retry has a row and no generation
                    a, b = _pop_retry(core.pod_tables, core.timer, core.cnt), np.int64(0)
                elif source == FROM_HEAP:
                    kind, a, b = _pop(core.timer, core.cnt)
                else:
                    a, b = _pop_node_ring(core.timer, source)
                _timer(st, kind, a, b, t_timer)
                continue
        if t_event >= t_stop:
            break
        op = ev_op[e]
        if op == OP_NODE_DRAIN and not _drain_room(core.nodes, core.cnt, np.int64(ev_node[e])):
            break  # K_ERROR asks for room: the drain runs when the loop is called again
        core.cnt[K_EVENT] = e + 1
        # once per event: timers between events add no work
        _prefetch_events(core.nodes, core.pod_tables, core.cidr, core.sched, ev_op, ev_pod, e, n_events)
        if op == OP_POD_ADD:
            row = _row_alloc(core.pod_tables, core.cnt, np.int64(ev_pod[e]))  # int64: one compile, not one per id width
            if row >= 0:
                _pod_add(st, row, np.int64(ev_node[e]), t_event)
        elif op == OP_POD_DEL:
            row = np.int64(core.pod_tables.pod_row[ev_pod[e]])  # int64 like every other row: one compile of its callees
            if row >= 0:
                _pod_delete(st, row, t_event)
        else:
            _node_event(st, op, np.int64(ev_node[e]), t_event)
    return core.cnt[K_ERROR]
