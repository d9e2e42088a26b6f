"""Column layout of the engine's state tables.

The engine keeps its whole state in a handful of integer tables so one
compiled loop can touch any node, pod or CIDR without Python in between.
Each table is an integer array of shape ``(rows, NCOL)``: ``int64``, except
the per-pod and per-node tables (``pods``, ``nodes``), which are ``int32`` with
16 columns so a row is one 64-byte cache line (engine/state.py checks at build
time that every id and count fits). The constants below name the columns. Numba treats module globals as compile-time
constants, so reading ``slots[s, L_USED]`` costs nothing extra.

Families are indexed ``0`` (IPv4) and ``1`` (IPv6) everywhere.
"""

from __future__ import annotations

import numpy as np

# Layout.policy and CloudConfig.kind codes: the mode modules build them, below the engine.
from ipam_core.engine.cloud_config import (  # noqa: F401
    CLOUD_AKS_DYNAMIC, CLOUD_AKS_STATIC, CLOUD_CILIUM, CLOUD_CRD_STATIC, CLOUD_VPC_CNI, PICK_CILIUM, PICK_DISCOVERY,
    PICK_FLAGGED, PICK_NODE_SUBNET, STRATEGY_DENSE, STRATEGY_UPSTREAM)
from ipam_core.engine.layout import (  # noqa: F401
    POLICY_CALICO, POLICY_CLOUD, POLICY_MULTI_POOL, POLICY_ONE_PER_FAMILY)

# ---- CIDR sets: one node-CIDR bitmap per pool CIDR (cidr_set.go), table `sets`
S_FAMILY = 0  # 0 = IPv4, 1 = IPv6
S_POOL = 1  # pool id (0 for the single pool of kubernetes / cluster-pool)
S_N = 2  # node CIDRs in the set: 2**(node_mask - prefix)
S_CURSOR = 3  # next-fit cursor (nextCandidate)
S_ALLOCATED = 4  # node CIDRs taken
S_W_OFF = 5  # offset of the set's bitmap in `set_words`
S_W_LEN = 6
S_S_OFF = 7  # offset of its summary in `set_summary`
S_S_LEN = 8
S_SLOT_MAX = 9  # usable pod addresses in one node CIDR (PodIPRange max)
S_SLOT_WORDS = 10  # words of one node CIDR's pod bitmap
S_SLOT_SWORDS = 11  # summary words of one node CIDR's pod bitmap
S_IPW_OFF = 12  # where this set's pod bitmaps start in `ip_words`
S_IPS_OFF = 13  # ... and their summaries in `ip_summary`
S_CHUNK_OFF = 14  # offset of this set's free-chunk stack in `chunk_stack`
S_CHUNK_CAP = 15  # pod bitmaps this set can have live at once
S_CHUNK_TOP = 16  # chunks still on the free stack
S_ADDRS = 17  # addresses counted per node CIDR (IPv6 capped at the 65,536 window)
S_NCOL = 18

# ---- pools, table `pools`: each pool's sets are contiguous, in list order
P_SET_LO = 0  # + family: first set of the pool for that family
P_SET_HI = 2  # + family: one past the last
P_PRE_ALLOC = 4  # multi-pool pre-allocation (ipam-multi-pool-pre-allocation)
P_NCOL = 5

# ---- node CIDRs held by nodes ("slots"), table `slots`
L_STATE = 0  # SLOT_FREE / SLOT_LIVE / SLOT_RELEASED (given back by the agent, not yet freed by the operator)
L_SET = 1
L_INDEX = 2  # node-CIDR index inside the set
L_NODE = 3
L_CHUNK = 4  # which pod bitmap of the set it uses
L_USED = 5  # bits taken in the pod bitmap (pods + router + health)
L_MAX = 6  # usable addresses
L_RESERVED = 7  # router / health addresses taken inside
L_FAMILY = 8
L_POOL = 9
L_NCOL = 10

SLOT_FREE = 0
SLOT_LIVE = 1
SLOT_RELEASED = 2
SLOT_STRANDED = 3  # fault model: given back by the agent, kept on the node by the operator, unusable (engine/lifecycle.py)

# ---- nodes, table `nodes`
N_PRESENT = 0
N_READY = 1
N_GEN = 2  # incarnation: timers of an earlier incarnation are ignored
N_PODS = 3  # pods bound to the node (running + pending)
N_PENDING = 4  # bound pods still waiting for an address
N_NSLOTS = 5
N_SYNC_ARMED = 6  # multi-pool: a debounced CiliumNode update is scheduled
N_STATUS = 7  # operator status error code (STATUS_*)
N_HEAD = 8  # first pod of the node's pod list (-1 = none)
N_BUCKET = 9  # spread / pack: the scheduler bucket (key) the node is in, -1 = not schedulable
N_ADDR_ROOM = 10  # address filter on: the node is feasible while its bound pods are below this (core._sched_readdress)
N_MAX_PODS = 11  # its kubelet's max pods: cluster-wide, or its instance type's (cloud.nodeGroups)
N_CORDONED = 12  # 1: cordoned (unschedulable) by a cordon or drain event; cleared when the node goes
N_NCOL = 16  # 13 columns and 3 spare: an int32 row is one 64-byte cache line

STATUS_OK = 0
STATUS_POOL_EXHAUSTED = 1  # cluster-pool / KCM: no CIDR left in any entry
STATUS_POOL_EMPTY = 2  # multi-pool: "pool empty"
STATUS_NO_POOL = 3  # multi-pool: pod asked for a pool that does not exist
STATUS_TEXT = (
    "",
    "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range",
    "pool empty",
    "pool not found",
)

# ---- pods, table `pods`: one row per live pod. Rows are reused (a free-row stack), so
# memory follows the most pods alive at once, not every pod id ever created;
# `pod_row[pod id]` maps a workload pod id to its row (-1 never seen, -2 gone).
D_STATE = 0  # POD_*
D_NODE = 1  # bound node, -1 while unscheduled
D_SLOT = 2  # + family: slot holding the address, -1 = none
D_OFF = 4  # + family: offset of the address in the slot's bitmap
D_POOL = 6  # + family: pool the pod draws from (-1 = selection failed)
D_NEXT = 8  # doubly linked list of the pods of one node
D_PREV = 9
D_PENDING_FAMILY = 10  # family whose allocation failed last (-1 = none): counts as multi-pool demand
D_ID = 11  # the workload's pod id held by this row
D_RETRY_AT = 12  # entry of the pod's armed retry in the `retry_*` ring, -1 = none (freeing the row voids it)
D_PIN = 13  # node the workload placed the pod on (its spec.nodeName), -1 = the scheduler places it
D_EVICTED = 14  # 1: the pod was evicted by a drain (its restart is counted when it fails)
D_NCOL = 16  # 15 columns and 1 spare: an int32 row is one 64-byte cache line

POD_NONE = 0
POD_PENDING = 1
POD_RUNNING = 2
POD_DELETED = 3
POD_FAILED = 4

# ---- timers
# T_CARVE, T_AGENT_SYNC and T_REFRESH index the state's node_ring_* arrays: keep them 0, 1, 2. NumPy
# integers, not Python ones: a Python int constant passed to a compiled function is typed as a literal,
# and the function compiles once per kind (the timer push did, five times per State class).
T_CARVE = np.int64(0)  # operator handles the node (carve node CIDRs / multi-pool allocate)
T_AGENT_SYNC = np.int64(1)  # multi-pool agent writes its CiliumNode (after the debounce)
T_REFRESH = np.int64(2)  # multi-pool agent's periodic refresh
T_POD_RETRY = np.int64(3)  # kubelet retries a pending pod
H_KIND = 0
H_A = 1
H_B = 2
H_SEQ = 3
H_NCOL = 4

# ---- settings. Codes, counts and flags (0 / 1) are int64, in the vector `icfg`; seconds, rates and other
# real-valued settings are float64, in the vector `cfg`. The compiled rules read each as it is: no casts.
# int64 vector `icfg`
I_POLICY = 0  # POLICY_*
I_FAMILY = 1  # + family: 1 when enabled
I_HEALTH = 3  # 1: the agent takes a health address per family
I_SCHEDULER = 4  # SCHED_*
I_MAX_PODS = 5
I_REVERT_PARTIAL = 6  # 1: a node that gets one family but not the other gives it back (Cilium); 0: keep (KCM)
I_DEFAULT_POOL = 7  # pool id of the default pool (router / health addresses)
I_SEED = 8
I_ADDRESS_FILTER = 9  # ADDRESS_FILTER_*: the scheduler's view of a node's free pod addresses
I_RELEASED_CIDRS = 10  # RELEASED_CIDRS_*: what the operator does with a CIDR the multi-pool agent gave back
# cloud modes (POLICY_CLOUD; rules in ipam_core/modes/cloud_pool.py)
I_CL_KIND = 11  # CLOUD_*
I_CL_IFACES = 12  # interfaces (ENIs / NICs) a node can attach
I_CL_UNITS = 13  # secondary IPs or /28 prefixes one interface holds
I_CL_UNIT_SIZE = 14  # 16 when the node starts with prefix delegation, else 1
I_CL_FIRST_IFACE = 15  # interfaces below this index hold no pod address (first-interface-index)
I_CL_PRIMARY = 16  # 1: every interface takes a primary address from its subnet
I_CL_ATTACH = 17  # 1: the operator may attach interfaces (ENI); 0: fixed (Azure NIC)
I_CL_FALLBACK = 18  # 1: no free /28 -> single addresses instead (Cilium); 0: cool down (VPC CNI)
I_CL_FILL_FIRST = 19  # 1: pods take the first free address (VPC CNI); 0: a random one (Go map order)
I_CL_AGENT_RESERVED = 20  # addresses the agent takes from its pool at start (router, health, AKS reservation)
I_CL_READY_MIN = 21  # pool size the agent waits for (crd.go hasMinimumIPsInPool)
I_CL_PRE = 22  # spec.ipam.pre-allocate (resolved)
I_CL_MIN = 23  # spec.ipam.min-allocate
I_CL_MAX = 24  # spec.ipam.max-allocate (resolved: the instance limit when 0)
I_CL_ABOVE = 25  # spec.ipam.max-above-watermark
I_CL_RELEASE = 26  # 1: excess addresses are released
I_CL_WARM_ENI = 27  # WARM_ENI_TARGET
I_CL_WARM_IP = 28  # WARM_IP_TARGET
I_CL_MIN_IP = 29  # MINIMUM_IP_TARGET
I_CL_WARM_PREFIX = 30  # WARM_PREFIX_TARGET
I_CL_BATCH = 31  # AKS CNS batch size
I_CL_BATCH_PCT = 32  # AKS CNS request threshold percent
I_CL_MAX_IPS = 33  # AKS CNS max IPs per node
I_CL_STATIC_UNITS = 34  # units written once per node (crd poolPerNode, AKS static blocks)
I_CL_SUBNET_RESERVED = 35  # 1: the cloud keeps each subnet's first four and last address
I_CL_NIC = 36  # 1: a node comes with a cloud interface (eth0 / the VM's NIC); 0: crd pools
# cloud API cost and prefix fallback (ipam_core/modes/cloud_api.py)
I_CL_STRATEGY = 37  # STRATEGY_*: what Cilium does after InsufficientCidrBlocks
I_CL_THROTTLE = 38  # 1: cloud calls take tokens from the buckets below
I_CL_CLIENT_BURST = 39  # tokens in the manager's own client bucket (--limit-ipam-api-burst)
I_CL_BUCKET = 40  # tokens in the cloud's bucket per API (EC2) or per operation type (Azure)
I_CL_SHARED_BUCKET = 41  # 1: every call kind draws from one cloud bucket (Azure writes); 0: one per API (EC2)
I_CL_ANY_SUBNET = 42  # 1: a full interface subnet gives way to any subnet with free addresses (Azure VNet, crd)
I_NCOL = 43
# float64 vector `cfg`
C_OPERATOR_DELAY = 0  # s between a CiliumNode change and the operator's answer
C_UPDATE_RATE = 1  # s: CiliumNode update debounce (multi-pool)
C_REFRESH = 2  # s: multi-pool agent periodic refresh
C_RETRY = 3  # s: pod retry interval
C_TIMEOUT = 4  # s: a pod pending this long fails
C_CARVE_RETRY = 5  # s: operator retry after a failed carve
C_PENDING_TTL = 6  # s: a failed request counts as multi-pool demand this long (pendingAllocationTTL)
C_CL_RELEASE_DELAY = 7  # s: --excess-ip-release-delay
C_CL_PERIOD = 8  # s: periodic pass (operator resync, ipamd tick, CNS tick); 0 = none
C_CL_DECREASE = 9  # s: ipamd decreaseIPPoolInterval
C_CL_ENI_MIN_LIFE = 10  # s: ipamd minimum ENI age before it is freed
C_CL_COOLDOWN = 11  # s: ipamd pause after InsufficientCidrBlocks
C_CL_CLIENT_QPS = 12  # tokens/s of the manager's own client limiter (Cilium --limit-ipam-api-qps); 0 = none
C_CL_REFILL = 13  # the cloud bucket's refill, tokens/s
C_NCOL = 14

# node table `cl_node` [nodes (+ network rows, below), CN_NCOL or wider]
CN_IFACES = 0  # interfaces attached
CN_UNITS = 1  # secondary IPs + prefixes held
CN_PREFIXES = 2
CN_HELD = 3  # addresses in the pool (units' addresses)
CN_USED = 4  # addresses taken: pods + agent reservations
CN_RESERVED = 5  # agent reservations among CN_USED
CN_PD = 6  # 1: the node asks for /28 prefixes
CN_SYNC_ARMED = 7  # an agent CiliumNode update is scheduled
CN_REPORTED = 8  # used addresses in the last CiliumNode status the operator saw
CN_SUBNET = 9  # the node's subnet (set index)
CN_PRIMARIES = 10  # interface primary addresses held
CN_REPORTED_SINGLES = 11  # in that status: used addresses that are single secondary IPs
CN_REPORTED_PREFIXES = 12  # in that status: /28 prefixes holding a used address
CN_RESET = 13  # columns below this are cleared when the node joins or leaves; the ones from here are fixed
CN_GROUP = 13  # its node group (cloud.nodeGroups), dealt by weight
CN_ZONE = 14  # its zone index (round-robin over the group's zones)
CN_NCOL = 15
# float table `cl_time` [nodes, CT_NCOL], seconds
CT_OP_AT = 0  # when the pending operator pass runs (inf: none)
CT_LAST_SYNC = 1
CT_EXCESS_SINCE = 2  # excess first seen (inf: no excess)
CT_LAST_DECREASE = 3
CT_COOLDOWN = 4  # no prefix requests before this time
CT_API_AT = 5  # a cloud call of the node's last pass was throttled: a token is there at this time (-inf: none)
CT_NCOL = 6
# interface table `cl_iface` [nodes, interfaces, CI_NCOL]
CI_ATTACHED = 0
CI_SET = 1
CI_PRIMARY = 2  # offset of the primary address in the subnet, -1 = none
CI_UNITS = 3
CI_PREFIXES = 4
CI_SINCE_US = 5  # attach time, microseconds
CI_NCOL = 6
# unit table `cl_unit` [nodes, interfaces * units, CU_NCOL]: unit j lives on interface j // units
CU_SET = 0  # -1: empty
CU_OFF = 1  # first address (offset in the subnet)
CU_SIZE = 2  # 1 or 16
CU_MASK = 3  # addresses taken, one bit each
CU_USED = 4
CU_NCOL = 5
# The cloud network lives in extra rows of `cl_node`, below the node rows (no State field of its own: each
# field adds arguments to every compiled call). With n = nodes.shape[0], S subnets, G node groups:
#   rows n + s          subnet s: CS_* columns, then flags per group (CS_NCOL + g: its instances launch there,
#                       CS_NCOL + G + g: its rule flags it for new interfaces)
#   rows n + S + g      node group g (a cloud.nodeGroups entry; one when the scenario lists none): CG_* columns
#   rows n + S + G + r  prefix reservation r: [first offset, end offset) in its subnet (RV_LO, RV_HI)
CS_ZONE = 0  # zone index
CS_RESV_FIRST = 1  # row of its first prefix reservation
CS_RESV_COUNT = 2
CS_RESV_FREE = 3  # free addresses inside its prefix reservations (single addresses never come from them)
CS_OTHERS = 4  # addresses other consumers hold (sharedUsed, sharedUsedFile, explicit reservations)
CS_GROUPS = 5  # G: where its per-group flags split
CS_NCOL = 6
CG_IFACES = 0  # interfaces an instance attaches
CG_UNITS = 1  # secondary IPs or /28 prefixes one interface holds
CG_UNIT_SIZE = 2  # 16 with prefix delegation on this instance type, else 1
CG_PRE = 3  # pre-allocate (resolved for the instance)
CG_MAX_ALLOC = 4  # max-allocate (resolved for the instance)
CG_READY_MIN = 5
CG_MAX_PODS = 6
CG_PICK = 7  # how an extra interface's subnet is chosen (PICK_*, ipam_core/engine/cloud_config.py)
CG_IPV4 = 8  # addresses per interface (cilium limits.IPv4: the node's subnet must have as many free)
CG_NCOL = 9
RV_LO = 0
RV_HI = 1

SCHED_SPREAD = 0
SCHED_PACK = 1
SCHED_RANDOM = 2
SCHEDULERS = {"spread": SCHED_SPREAD, "pack": SCHED_PACK, "random": SCHED_RANDOM}
# cluster.addressFilter: which nodes the scheduler sees as feasible (the families' address_room hooks, engine/hooks.py)
ADDRESS_FILTER_NONE = 0  # address-blind, as kube-scheduler is today
ADDRESS_FILTER_FREE = 1  # a free address now, or one the node can still get (multi-pool carve, ENI room)
ADDRESS_FILTER_WARM = 2  # a free address the node holds now
ADDRESS_FILTERS = {"none": ADDRESS_FILTER_NONE, "free": ADDRESS_FILTER_FREE, "warm": ADDRESS_FILTER_WARM}

# ---- counters, int64 vector `cnt`
K_EVENT = 0  # next external event
K_HEAP = 1  # timers in the heap
K_SEQ = 2  # timer sequence number (stable order)
K_RUNNING = 3
K_PENDING = 4
K_FAILED = 5
K_FAILED_FREE = 6  # failed while addresses were free elsewhere
K_NODES = 7
K_READY = 8
K_ERROR = 9  # internal capacity error (heap / slot table full): the run stops
K_SLOT_TOP = 10  # free slot ids left on the `slot_stack`
K_ROW_TOP = 11  # free pod rows left (K_ROW_FREE, K_ROW_FRESH)
K_RETRY_HEAD = 12  # first pod-retry timer in the `retry_*` ring
K_RETRY_LEN = 13  # pod-retry timers in the ring
K_RNG = 14  # SplitMix64 state of the run's random stream (engine/rng.py), as int64 bits
K_SCHED_MIN = 15  # spread / pack: no scheduler bucket below this key has a node
K_FAMILY_BASE = 16  # + FAMILY_STRIDE * family + F_*
FAMILY_STRIDE = 16
F_CARVED = 0  # addresses in node CIDRs
F_RESERVED = 1  # network/last + router/health
F_USED = 2  # pod addresses
F_NODE_CIDRS = 3
F_CARVABLE = 4  # node CIDRs the pools can still hand out
F_CARVES = 5
F_RELEASES = 6
F_IP_ALLOCS = 7
F_IP_FAILS = 8
F_FREE = 9  # usable free addresses in live node CIDRs
# cloud counters (0 in the pool modes)
K_CL_BASE = K_FAMILY_BASE + 2 * FAMILY_STRIDE
K_CL_IFACES = K_CL_BASE + 0  # interfaces attached
K_CL_PREFIXES = K_CL_BASE + 1  # /28 prefixes held
K_CL_FRAG_FAILS = K_CL_BASE + 2  # cumulative: prefix requests refused with enough free addresses in the subnet
K_CL_API_ATTACH = K_CL_BASE + 3  # cumulative: interface create + attach calls
K_CL_API_ASSIGN = K_CL_BASE + 4  # cumulative: address / prefix assign calls
K_CL_API_RELEASE = K_CL_BASE + 5  # cumulative: unassign and interface detach + delete calls
K_CL_API_PREFIX = K_CL_BASE + 6  # cumulative: assign calls asking for /28 prefixes (refused ones included)
K_CL_API_THROTTLED = K_CL_BASE + 7  # cumulative: passes whose next cloud call waited for a token
K_CL_API_DELAY_US = K_CL_BASE + 8  # cumulative: microseconds those calls waited
K_STARTED = K_CL_BASE + 9  # cumulative: pods that got their addresses (all modes)
K_START_WAIT_MS = K_CL_BASE + 10  # cumulative: milliseconds those pods waited pending first (all modes)
K_CL_TOKENS = K_CL_BASE + 11  # + bucket (API_BUCKETS): micro-tokens in the bucket
K_CL_TOKENS_AT = K_CL_TOKENS + 4  # + bucket: microseconds of its last refill

# node lifecycle (engine/lifecycle.py)
K_LC_BASE = K_CL_TOKENS_AT + 4
K_EVICTED = K_LC_BASE + 0  # cumulative: pods evicted by drains
K_EVICTED_FAILED = K_LC_BASE + 1  # cumulative: evicted pods that then failed for want of an address
K_CORDONED = K_LC_BASE + 2  # present nodes cordoned now

# timer tables that grow (engine/timer_room.py): per table, the fill past which the loop asks for room, and
# the fill it asked room for; the ring columns cover the three node-timer rings together (the pod-retry
# ring does not grow: it is sized at its bound, engine/state.py)
K_TIMER_BASE = K_LC_BASE + 3
K_HEAP_LIMIT = K_TIMER_BASE + 0
K_RING_LIMIT = K_TIMER_BASE + 1
K_HEAP_NEED = K_TIMER_BASE + 2
K_RING_NEED = K_TIMER_BASE + 3
# free pod rows: a last-in first-out list linked through the free rows' D_NEXT, then the rows never used
K_ROW_FREE = K_TIMER_BASE + 4  # the last row freed (-1 = none)
K_ROW_FRESH = K_TIMER_BASE + 5  # the first row never used
K_NCOL = K_TIMER_BASE + 6

# icfg[I_RELEASED_CIDRS]: a CIDR the multi-pool agent released (releaseExcessCIDRsMultiPool) ...
RELEASED_CIDRS_FREED = 0  # ... is freed by the operator (multi-pool: it leaves spec.ipam.pools.allocated)
RELEASED_CIDRS_STRANDED = 1  # ... stays advertised, and the agent never takes it back (before cilium PR #46674)
RELEASED_CIDRS_RECLAIMED = 2  # ... stays advertised; the agent takes it back when short (cilium PR #46674)
RELEASED_CIDRS = {"freed": RELEASED_CIDRS_FREED, "stranded": RELEASED_CIDRS_STRANDED,
                  "reclaimed": RELEASED_CIDRS_RECLAIMED}

ERROR_HEAP_FULL = 1
ERROR_SLOTS_FULL = 2
ERROR_CHUNKS_FULL = 3
ERROR_CLOUD_UNITS_FULL = 4  # a node's unit table is full (sized from the mode's limits)
ERROR_ROWS_FULL = 5  # more pods alive at once than the workload's bound (a bug)
ERROR_CALICO_BLOCKS_FULL = 6  # calico: the block table (sized from the workload, modes/calico.py) is full
#: not an error: a timer table passed its limit (K_*_LIMIT); the loop stopped between two steps, so the
#: caller grows the table (engine/timer_room.py) and calls again, as if it had never stopped
GROW_TIMERS = 7

POD_ROW_UNSEEN = -1
POD_ROW_GONE = -2
