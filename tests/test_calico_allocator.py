"""Calico IPAM's allocator (ipam_core/modes/calico_rules.py) against hand-worked cases and its Python oracle.

Each rule of projectcalico/calico v3.31.7 has a case worked out by hand below; the block
each node starts its search from is derived in the test's docstring from Go's generator.
A hypothesis test then runs random traces (pods added and deleted, nodes added and deleted,
time passing with the controller's passes, leaks) through the compiled rules and through
``bench/baseline_calico.py`` and compares every result and the whole state after each step.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ipam_core.errors import ConfigError
from ipam_core.modes import REGISTRY
from ipam_core.modes import calico
from ipam_core.modes.calico_gorand import block_walk_start, fnv1_32, go_int63, go_seed
from ipam_core.modes.calico_tables import (E_BLOCK_LIMIT, E_EXHAUSTED, E_NO_POOLS, E_STRICT, NM_NAMES, NM_NCOL,
                                           PoolRule, new_tables, unpack)
from ipam_core.scenario._where import Where
from ipam_core.scenario.calico import read_calico_manifests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from baseline_calico import CalicoReference, GoRand, Pool  # noqa: E402


# ---------------------------------------------------------------------------- helpers
def rules(*specs):
    """PoolRules from (name, cidr, blockSize) triples, sorted by name."""
    return [PoolRule(n, ipaddress.ip_network(c), b) for n, c, b in sorted(specs)]


def cluster(pool_rules, names, **kw):
    """Compiled tables with every node added."""
    t = new_tables(pool_rules, names, **kw)
    for node in range(len(names)):
        calico.node_added(t, node)
    return t


def where(t, pool_rules, packed):
    """(block CIDR, address) of a packed address."""
    slot, ordinal = unpack(int(packed))
    block = pool_rules[t.blk_pool[slot]].cidr
    bits = pool_rules[t.blk_pool[slot]].block_bits
    first = ipaddress.ip_network((int(block.network_address) + (int(t.blk_index[slot]) << bits),
                                  pool_rules[t.blk_pool[slot]].block_size))
    return str(first), str(first.network_address + ordinal)


# ---------------------------------------------------------------------------- Go's generator
def test_go_math_rand_matches_go_printed_outputs():
    # Go: rand.New(rand.NewSource(1)).Int63() three times (the values every Go playground printed).
    vec, state = np.zeros(607, np.uint64), np.zeros(2, np.int64)
    go_seed(vec, state, 1)
    assert [int(go_int63(vec, state)) for _ in range(3)] == [
        5577006791947779410, 8674665223082153551, 6129484611666145821]
    ref = GoRand(1)
    assert [ref.int63() for _ in range(3)] == [5577006791947779410, 8674665223082153551, 6129484611666145821]
    # A negative seed (Go's % keeps the dividend's sign, then adds 2**31 - 1): Seed(-19) -> 3548795938379065937,
    # the value a published C++ port of rng.go asserts at start-up.
    go_seed(vec, state, -19)
    assert int(go_int63(vec, state)) == 3548795938379065937 == GoRand(-19).int63()
    # golang/go src/math/rand/example_test.go: rand.Seed(42); Intn(20) -> "As I see it yes" (answer 5),
    # and ExampleIntn: rand.Seed(86); Intn(100) x3 -> 42, 76, 30.
    assert GoRand(42).int31n(20) == 5
    r = GoRand(86)
    assert [r.int31n(100) for _ in range(3)] == [42, 76, 30]


def test_fnv1_not_fnv1a():
    # FNV-1 32 test vector: "a" -> 0x050c5d7e (FNV-1a would give 0xe40c292c); Calico's "n1" -> 1668749522.
    assert fnv1_32("a") == 0x050C5D7E
    assert fnv1_32("n1") == 1668749522


def test_block_walk_start_of_n1_in_a_four_block_pool():
    """Hand derivation for host "n1", pool 10.0.0.0/24 of /26 blocks (numBlocks = 4, bit length 3, mask 7).

    seed = FNV-1("n1") = 1668749522; the first word is Uint32() | Uint32() << 32 =
    2583572206 | 1335948070 << 32 = 5737853272387890926, masked to 6, not below 4: drawn again;
    3027159202 | 3333416487 << 32 = 14316914798639368354, masked to 2. The walk starts at block
    2 (10.0.0.128/26), then 3, 0, 1.
    """
    vec, state = np.zeros(607, np.uint64), np.zeros(2, np.int64)
    assert int(block_walk_start(vec, state, 1668749522, np.uint64(4))) == 2
    r = GoRand(1668749522)
    assert [r.uint32() for _ in range(4)] == [2583572206, 1335948070, 3027159202, 3333416487]
    pools = rules(("default", "10.0.0.0/24", 26))
    t = cluster(pools, ["n1"])
    assert where(t, pools, calico.assign(t, 0, 0, 0.0)) == ("10.0.0.128/26", "10.0.0.128")


# ---------------------------------------------------------------------------- addresses in a block
def test_unallocated_is_a_queue_released_ordinals_go_to_the_back():
    # /30 blocks: ordinals 0..3 in order; releasing 2 then 0 puts them behind nothing else: 2 first, then 0.
    pools = rules(("p", "10.0.0.0/28", 30))
    t = cluster(pools, ["n3"])  # "n3" starts at block 0 of 4: 10.0.0.0/30
    got = [calico.assign(t, 0, 0, 0.0) for _ in range(4)]
    assert [where(t, pools, g)[1] for g in got] == ["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert calico.release(t, got[2], 1.0) and calico.release(t, got[0], 1.0)
    assert not calico.release(t, got[0], 1.0)  # already free: upstream lists it as unallocated
    again = [where(t, pools, calico.assign(t, 0, 0, 2.0))[1] for _ in range(2)]
    assert again == ["10.0.0.2", "10.0.0.0"]


# ---------------------------------------------------------------------------- affine blocks in datastore order
def test_affine_blocks_are_tried_in_kubernetes_name_order_not_address_order():
    """Host "n23" starts at block 6 of 10.0.0.0/24 in /28 blocks: 10.0.0.96/28, then 10.0.0.112/28.

    Its BlockAffinity names are "n23-10-0-0-96-28" and "n23-10-0-0-112-28"; the API server lists
    them by name, so ".112" ('1' < '9') comes first although its address is higher.
    """
    pools = rules(("p", "10.0.0.0/24", 28))
    t = cluster(pools, ["n23"])
    first = [calico.assign(t, 0, 0, 0.0) for _ in range(16)]
    assert {where(t, pools, a)[0] for a in first} == {"10.0.0.96/28"}
    second = calico.assign(t, 0, 0, 1.0)  # block full: the walk goes on to block 7
    assert where(t, pools, second)[0] == "10.0.0.112/28"
    assert calico.node_cidrs(t, pools, 0) == ["10.0.0.112/28", "10.0.0.96/28"]
    calico.release(t, first[5], 2.0)
    calico.release(t, second, 2.0)
    # .112 went to the back of its queue, so .113 is next
    assert where(t, pools, calico.assign(t, 0, 0, 3.0)) == ("10.0.0.112/28", "10.0.0.113")


def test_ipv6_affinities_sort_by_their_compressed_text():
    """fd00::/120 in /122 blocks: fd00::/122, fd00::40/122, fd00::80/122, fd00::c0/122.

    Host "n1" starts at block 2 (the same draws as the IPv4 case: 4 blocks), so it claims
    fd00::80/122 then fd00::c0/122; their names "n1-fd00--80-122" and "n1-fd00--c0-122" sort
    as written. With a third pool block the walk wraps to fd00::/122, named "n1-fd00---122":
    '-' sorts before '8', so it is listed, and tried, first.
    """
    pools = rules(("v6", "fd00::/120", 122))
    t = cluster(pools, ["n1"], poolsets=[((0,), False)])
    got = [calico.assign(t, 0, 0, 0.0) for _ in range(3 * 64)]
    assert calico.node_cidrs(t, pools, 0) == ["fd00::/122", "fd00::80/122", "fd00::c0/122"]
    calico.release(t, got[0], 1.0)  # fd00::80 (first block claimed)
    calico.release(t, got[-1], 1.0)  # in fd00::/122 (the third)
    assert where(t, pools, calico.assign(t, 0, 0, 2.0))[0] == "fd00::/122"


# ---------------------------------------------------------------------------- block limit
def test_default_block_limit_is_20_and_does_not_borrow():
    pools = rules(("p", "10.0.0.0/24", 30))  # 64 blocks of 4
    t = cluster(pools, ["n1", "n2"])
    assert calico.assign(t, 1, 0, 0.0) >= 0  # n2 holds a block with 3 free addresses
    for _ in range(20 * 4):
        assert calico.assign(t, 0, 0, 0.0) >= 0
    assert t.node_nblk[0] == 20
    assert calico.assign(t, 0, 0, 1.0) == E_BLOCK_LIMIT  # free addresses elsewhere, but no borrowing
    assert calico.error_message(t, pools, E_BLOCK_LIMIT, node="n1", poolset=0).startswith(
        "cannot allocate new block due to per host block limit")
    assert "limit of 20 blocks reached" in calico.error_message(t, pools, E_BLOCK_LIMIT, node="n1", poolset=0)


def test_configured_block_limit():
    pools = rules(("p", "10.0.0.0/24", 30))
    t = cluster(pools, ["n1"], max_blocks_per_host=2, strict_affinity=True)
    for _ in range(8):
        assert calico.assign(t, 0, 0, 0.0) >= 0
    assert calico.assign(t, 0, 0, 0.0) == E_BLOCK_LIMIT


# ---------------------------------------------------------------------------- no block left: reclaim, borrow, strict
def four_nodes_four_blocks(**kw):
    """Pool 10.0.0.0/24 in /26 blocks; n3, n2, n1, n5 start at blocks 0, 1, 2, 3 and each claims its start."""
    pools = rules(("p", "10.0.0.0/24", 26))
    names = ["n3", "n2", "n1", "n5"]
    t = cluster(pools, names, **kw)
    got = [calico.assign(t, node, 0, 0.0) for node in range(4)]
    assert [where(t, pools, g)[0] for g in got] == ["10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/26", "10.0.0.192/26"]
    return t, pools, got


def test_borrows_from_the_walk_order_when_no_block_can_be_claimed():
    t, pools, got = four_nodes_four_blocks()
    for _ in range(63):
        calico.assign(t, 2, 0, 10.0)  # n1 fills 10.0.0.128/26
    # n1's walk is 2, 3, 0, 1: its own block is full, so 10.0.0.192/26 (n5's) lends its next ordinal.
    borrowed = calico.assign(t, 2, 0, 10.0)
    assert where(t, pools, borrowed) == ("10.0.0.192/26", "10.0.0.193")
    rows = calico.node_rows(t)
    assert rows["borrowed"][2, 0] == 1 and rows["lent"][3, 0] == 1


def test_strict_affinity_never_borrows():
    t, pools, _ = four_nodes_four_blocks(strict_affinity=True)
    for _ in range(63):
        calico.assign(t, 2, 0, 10.0)
    assert calico.assign(t, 2, 0, 10.0) == E_STRICT
    assert calico.error_message(t, pools, E_STRICT, node="n1", poolset=0) == (
        "Assigned 0 out of 1 requested IPv4 addresses; No more free affine blocks and strict affinity enabled")


def test_empty_block_of_another_node_is_taken_over_after_a_minute():
    t, pools, got = four_nodes_four_blocks(strict_affinity=True)
    calico.release(t, got[3], 5.0)  # n5's only block is empty (claimed at t=0)
    for _ in range(63):
        calico.assign(t, 2, 0, 10.0)
    assert calico.assign(t, 2, 0, 59.9) == E_STRICT  # claimed 59.9 s ago: too young
    taken = calico.assign(t, 2, 0, 60.0)
    assert where(t, pools, taken) == ("10.0.0.192/26", "10.0.0.192")
    assert calico.node_cidrs(t, pools, 3) == []
    assert calico.node_cidrs(t, pools, 2) == ["10.0.0.128/26", "10.0.0.192/26"]
    assert calico.cluster_counts(t)["block_reclaims"] == 1


def test_exhausted_pool_error_lists_the_pools():
    t, pools, _ = four_nodes_four_blocks()
    for node in range(4):
        while calico.assign(t, node, 0, 1.0) >= 0:
            pass
    assert calico.assign(t, 0, 0, 2.0) == E_EXHAUSTED
    assert calico.error_message(t, pools, E_EXHAUSTED, node="n3", poolset=0) == (
        "Assigned 0 out of 1 requested IPv4 addresses; No IPs available in pools: [10.0.0.0/24]")


# ---------------------------------------------------------------------------- kube-controllers
def test_empty_block_released_strictly_after_the_grace_period_but_never_the_last():
    pools = rules(("p", "10.0.0.0/24", 30))
    t = cluster(pools, ["n1", "n2"], leak_grace_s=900.0)
    a = [calico.assign(t, 0, 0, 0.0) for _ in range(5)]  # n1: a full block and a second one
    b = [calico.assign(t, 1, 0, 0.0) for _ in range(2)]  # n2: one block
    calico.release(t, a[4], 100.0)  # n1's second block is empty from t=100
    for g in b:
        calico.release(t, g, 100.0)  # n2's only block is empty too
    assert calico.next_block_release(t) == 1000.0
    assert calico.release_empty_blocks(t, 1000.0) == 0  # exactly 900 s: not strictly longer
    assert calico.release_empty_blocks(t, 1000.001) == 1
    assert calico.release_empty_blocks(t, 5000.0) == 0  # n2's last block stays
    assert t.node_nblk.tolist() == [1, 1]
    counts = calico.cluster_counts(t)
    assert counts["block_releases"] == 1 and counts["empty_block_release_mean_s"] == pytest.approx(900.001)
    assert calico.sync_period(t) == 450.0


def test_allocation_resets_the_grace_period():
    pools = rules(("p", "10.0.0.0/24", 30))
    t = cluster(pools, ["n1"])
    a = [calico.assign(t, 0, 0, 0.0) for _ in range(5)]
    calico.release(t, a[4], 100.0)
    again = calico.assign(t, 0, 0, 500.0)  # lands in the first block? no: that one is full; the second
    assert where(t, pools, again)[0] == where(t, pools, a[4])[0]
    calico.release(t, again, 600.0)
    assert calico.release_empty_blocks(t, 1001.0) == 0  # the clock restarted at 600
    assert calico.release_empty_blocks(t, 1500.5) == 1


def test_node_deletion_releases_its_blocks_and_orphans_a_lending_block():
    t, pools, got = four_nodes_four_blocks()
    for _ in range(63):
        calico.assign(t, 2, 0, 10.0)
    borrowed = calico.assign(t, 2, 0, 10.0)  # n1 holds an address of n5's block
    calico.release(t, got[3], 10.0)  # n5's own pod goes; its block still lends to n1
    calico.node_deleted(t, 3, 20.0)
    rows = calico.show_blocks(t, pools, ["n3", "n2", "n1", "n5"])
    assert rows[3] == {"block": "10.0.0.192/26", "affinity": "", "size": 64, "in_use": 1, "free": 63,
                       "borrowed_out": 1}
    calico.release(t, borrowed, 30.0)  # last address of a block without affinity: the block goes
    assert [r["block"] for r in calico.show_blocks(t, pools, ["n3", "n2", "n1", "n5"])] == [
        "10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/26"]
    calico.node_deleted(t, 2, 40.0)  # n1's pods are gone with it: its full block is released at once
    assert [r["block"] for r in calico.show_blocks(t, pools, ["n3", "n2", "n1", "n5"])] == [
        "10.0.0.0/26", "10.0.0.64/26"]


def test_leaked_address_collected_after_the_grace_period():
    pools = rules(("p", "10.0.0.0/24", 26))
    t = cluster(pools, ["n1"], leak_grace_s=900.0)
    a = calico.assign(t, 0, 0, 0.0)
    calico.mark_leaked(t, a, 10.0)
    assert calico.gc_leaks(t, 909.0) == 0
    assert calico.gc_leaks(t, 910.0) == 1
    assert not calico.release(t, a, 911.0)


# ---------------------------------------------------------------------------- pools chosen per pod, dual stack
MANIFESTS = """
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: a-v4}
spec: {cidr: 10.1.0.0/24, nodeSelector: "zone == 'a'"}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: b-v4}
spec: {cidr: 10.2.0.0/24, blockSize: 28}
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: c-manual}
spec: {cidr: 10.3.0.0/24, assignmentMode: Manual}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: v6}
spec: {cidr: "fd00:10::/120"}
"""


def test_pool_choice_selectors_manual_pools_and_dual_stack():
    m = read_calico_manifests(Where(("manifests",)), MANIFESTS)
    pools = m.pools
    rows = [calico.automatic_row(pools, 4, {}), calico.automatic_row(pools, 6, {}),
            calico.explicit_row(pools, ["c-manual"])]
    t, r = calico.build_tables(m, ["in-a", "in-b"], node_labels=[{"zone": "a"}, {"zone": "b"}], poolsets=rows)
    for node in range(2):
        calico.node_added(t, node)
    # automatic: both Automatic v4 pools in name order; in-b is not selected by a-v4
    assert str(calico.address_of(t, r, calico.assign(t, 0, 0, 0.0))).startswith("10.1.0.")
    assert str(calico.address_of(t, r, calico.assign(t, 1, 0, 0.0))).startswith("10.2.0.")
    assert str(calico.address_of(t, r, calico.assign(t, 1, 2, 0.0))).startswith("10.3.0.")  # named: Manual is fine
    v6 = calico.assign(t, 0, 1, 0.0)
    slot, _ = unpack(int(v6))
    assert ipaddress.ip_address(calico.address_of(t, r, v6)) in ipaddress.ip_network("fd00:10::/120")
    assert t.blk_size[slot] == 64  # /122 by default
    nr = calico.node_rows(t)
    assert nr["used"][0].tolist() == [1, 1] and nr["blocks"][0].tolist() == [1, 1]
    cols = calico.trace_columns(t, r)
    # IPv4: a-v4 (256) + b-v4 (256) + c-manual (256) in pools; blocks: a /26, a /28, a /26 (named pool)
    assert cols[4] == {"addrs_pool": 768, "addrs_carved": 64 + 16 + 64, "addrs_used": 3, "addrs_idle": 141,
                       "addrs_uncarved": 768 - 144, "node_cidrs": 3, "carvable_node_cidrs": 4 + 16 + 4 - 3,
                       "affine_blocks": 3, "empty_affine_blocks": 0, "borrowed": 0}
    assert (cols[6]["addrs_pool"], cols[6]["node_cidrs"], cols[6]["addrs_used"]) == (256, 1, 1)


def test_tunnel_address_pins_the_first_block():
    text = MANIFESTS.split("---")[1].replace("blockSize: 28}", "blockSize: 28, vxlanMode: CrossSubnet}")
    m = read_calico_manifests(Where(("manifests",)), text)
    assert m.pools[0].tunnel
    rows = [calico.automatic_row(m.pools, 4, {}), calico.tunnel_row(m.pools, 4), calico.tunnel_row(m.pools, 6)]
    assert rows[2] == ((), False)
    t, r = calico.build_tables(m, ["n1"], poolsets=rows)
    calico.node_added(t, 0)
    tunnel = calico.assign(t, 0, 1, 0.0)  # calico-node starts: its VXLAN address claims the first block
    pods = [calico.assign(t, 0, 0, 1.0) for _ in range(16)]  # 15 fit beside it; the 16th claims a second
    assert t.node_nblk[0] == 2
    for p in pods:
        calico.release(t, p, 2.0)
    assert calico.release_empty_blocks(t, 2.0 + 901.0) == 1  # the pods' second block goes
    assert calico.node_cidrs(t, r, 0) == [str(calico.address_of(t, r, tunnel)) + "/28"]  # .0: block start
    assert calico.node_rows(t)["empty_blocks"][0, 0] == 0


def test_no_pool_for_the_node():
    m = read_calico_manifests(Where(("manifests",)), MANIFESTS.split("---")[0])
    t, r = calico.build_tables(m, ["in-b"], node_labels=[{"zone": "b"}])
    calico.node_added(t, 0)
    assert calico.assign(t, 0, 0, 0.0) == E_NO_POOLS
    assert calico.error_message(t, r, E_NO_POOLS, node="in-b", poolset=0) == "no configured Calico pools for node in-b"


def test_time_seeded_walk_for_32_blocks_follows_the_clock():
    pools = rules(("p", "10.0.0.0/28", 32))  # 16 blocks of one address: seeded by the clock, not the host
    t = cluster(pools, ["n1", "n2"])
    ref = GoRand(int(5.0 * 1e9)).big_below(16)
    assert where(t, pools, calico.assign(t, 0, 0, 5.0))[1] == f"10.0.0.{ref}"
    # same clock, another host: same start (taken), so the next index
    assert where(t, pools, calico.assign(t, 1, 0, 5.0))[1] == f"10.0.0.{(ref + 1) % 16}"


# ---------------------------------------------------------------------------- the mode's check
def test_check_refuses_a_family_without_a_usable_pool():
    m = read_calico_manifests(Where(("manifests",)), MANIFESTS)
    calico.check(SimpleNamespace(families=(4, 6), calico=m), Where())
    only_v4 = read_calico_manifests(Where(("manifests",)), MANIFESTS.split("---")[1])
    with pytest.raises(ConfigError, match=r"^manifests: no enabled Automatic IPv6 IPPool"):
        calico.check(SimpleNamespace(families=(4, 6), calico=only_v4), Where())
    manual = read_calico_manifests(Where(("manifests",)), MANIFESTS.split("---")[2])
    with pytest.raises(ConfigError, match="IPv4"):
        calico.check(SimpleNamespace(families=(4,), calico=manual), Where())
    assert REGISTRY["calico"] is calico.MODE and calico.MODE.named_only  # run only when named


# ---------------------------------------------------------------------------- compiled == reference on random traces
POOL_CONFIGS = [
    [("a", "10.0.0.0/28", 30)],  # 4 blocks of 4
    [("a", "10.0.0.0/27", 29)],  # 4 blocks of 8: .0 .8 .16 .24, whose names sort .16 .24 .8
    [("a", "10.0.0.0/29", 30), ("b", "10.0.1.0/29", 30)],  # two pools of 2 blocks of 4
    [("a", "10.0.0.0/29", 32)],  # /32 blocks: clock-seeded walk
    [("a", "10.0.0.0/28", 30), ("v6", "fd00::/124", 126)],  # dual stack
    [("a", "10.0.0.0/26", 30)],  # 16 blocks of 4: names sort .0 .12 .16 ... .4 .40 ...
]
NAMES = ["n1", "n2", "n3", "node-a", "node-b"]

_assign = st.tuples(st.just("assign"), st.integers(0, len(NAMES) - 1), st.sampled_from([0, 0, 0, 1]),
                    st.sampled_from([1, 1, 4, 9]))  # pods at once: pools should fill up, so that claims,
op = st.one_of(                                         # limits, reclaims and borrowing all happen
    _assign, _assign, _assign,  # pools should fill up often: claims, limits, reclaims and borrowing need it
    st.tuples(st.just("release"), st.integers(0, 10_000)),
    st.tuples(st.just("release"), st.integers(0, 10_000)),
    st.tuples(st.just("leak"), st.integers(0, 10_000)),
    st.tuples(st.just("tick"), st.sampled_from([0.5, 30.0, 59.5, 61.0, 450.0, 900.0, 901.0])),
    st.tuples(st.just("node_del"), st.integers(0, len(NAMES) - 1)),
    st.tuples(st.just("node_add"), st.integers(0, len(NAMES) - 1)),
)


def tables_state(t, pool_rules):
    """The compiled state in the reference's terms: {(pool, index): block fields}."""
    out = {}
    for slot in np.flatnonzero(t.blk_used):
        size, head, nfree = int(t.blk_size[slot]), int(t.blk_head[slot]), int(t.blk_nfree[slot])
        queue = [int(t.blk_q[slot, (head + i) % size]) for i in range(nfree)]
        allocations = {o: int(t.blk_owner[slot, o]) for o in range(size) if t.blk_owner[slot, o] >= 0}
        leaks = {o: float(t.blk_leak_t[slot, o]) for o in range(size) if t.blk_leak_t[slot, o] >= 0}
        node = int(t.blk_node[slot])
        mark = float(t.blk_empty_mark[slot])
        out[int(t.blk_pool[slot]), int(t.blk_index[slot])] = (
            None if node < 0 else node, float(t.blk_claim_t[slot]), queue, allocations, leaks,
            None if mark < 0 else mark)
    return out


def ref_state(ref):
    return {k: (b.affinity, b.claim_time, list(b.unallocated), dict(b.allocations), dict(b.leaks), b.empty_mark)
            for k, b in ref.blocks.items()}


@settings(max_examples=300, deadline=None)
@given(config=st.sampled_from(range(len(POOL_CONFIGS))), strict=st.booleans(),
       limit=st.sampled_from([0, 0, 0, 1, 2]), ops=st.lists(op, min_size=20, max_size=120))
def test_compiled_rules_agree_with_the_python_reference(config, strict, limit, ops):
    specs = sorted(POOL_CONFIGS[config])
    pool_rules = rules(*specs)
    ref_pools = [Pool(n, c, b) for n, c, b in specs]
    t = new_tables(pool_rules, NAMES, strict_affinity=strict, max_blocks_per_host=limit, leak_grace_s=900.0)
    ref = CalicoReference(ref_pools, NAMES, strict_affinity=strict, max_blocks_per_host=limit, leak_grace_s=900.0)
    now = 0.0
    held: list[tuple[int, tuple[int, int, int]]] = []  # (packed, (pool, index, ordinal))
    for node in range(3):
        calico.node_added(t, node)
        ref.node_added(node)
    for step in ops:
        kind = step[0]
        if kind == "assign":
            node, family = step[1], step[2]
            for _ in range(step[3] if ref.alive[node] else 0):
                got = int(calico.assign(t, node, family, now))
                want = ref.assign(node, family, now)
                if got < 0:
                    event(f"assign error {got}")
                    assert got == want
                else:
                    slot, ordinal = unpack(got)
                    assert (int(t.blk_pool[slot]), int(t.blk_index[slot]), ordinal) == want
                    if t.blk_node[slot] != node:
                        event("borrowed")
                    held.append((got, want))
        elif kind in ("release", "leak") and held:
            packed, key = held[step[1] % len(held)]
            if kind == "release":
                held.remove((packed, key))
                assert bool(calico.release(t, packed, now)) == ref.release(*key, now)
            else:
                calico.mark_leaked(t, packed, now)
                ref.mark_leaked(*key, now)
        elif kind == "tick":
            now += step[1]
            assert calico.gc_leaks(t, now) == ref.gc_leaks(now)
            assert calico.release_empty_blocks(t, now) == ref.release_empty_blocks(now)
        elif kind == "node_del" and ref.alive[step[1]]:
            calico.node_deleted(t, step[1], now)
            ref.node_deleted(step[1], now)
        elif kind == "node_add" and not ref.alive[step[1]]:
            calico.node_added(t, step[1])
            ref.node_added(step[1])
        # addresses released behind the caller's back (node deletion, leak GC) leave the held list
        held = [(p, k) for p, k in held if k[:2] in ref.blocks and k[2] in ref.blocks[k[:2]].allocations]
        assert tables_state(t, pool_rules) == ref_state(ref)
    out = np.zeros((len(NAMES), 2, NM_NCOL), np.int64)
    calico.node_metrics(t, out)
    for node in range(len(NAMES)):
        want = ref.node_metrics(node)
        for family in (0, 1):
            assert dict(zip(NM_NAMES, out[node, family].tolist())) == want[family]
    counts = calico.cluster_counts(t)
    assert (counts["block_claims"], counts["block_releases"], counts["ip_allocs"], counts["ip_borrows"],
            counts["ip_alloc_failures"], counts["leaks_collected"]) == (
        ref.counts["claims"], ref.counts["block_releases"], ref.counts["allocs"], ref.counts["borrows"],
        ref.counts["fails"], ref.counts["leaks_gc"])
