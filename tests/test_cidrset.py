"""CIDRSet against kubernetes cidr_set_test.go-style tables and upstream-observed facts.

Rows come in IPv4/IPv6 pairs. Cluster CIDRs that the Go tests write with host
bits (``ParseCIDRSloppy`` masks them) are written here as network addresses,
because ipam_core parses strictly.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from ipam_core import CIDRSet
from ipam_core.errors import CIDRError, ConfigError, NoCIDRsRemaining, NotInRange
from ipam_core.kernels.scan import bm_find_free_wrap
from ipam_core.kernels.slots import bm_clear, bm_set

from reference_alloc import RefCIDRSet

NO_CIDRS = "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"


def used_indices(cs: CIDRSet) -> list[int]:
    return cs.allocated_indices().tolist()


# --------------------------------------------------------------------------- index -> CIDR
@pytest.mark.parametrize(
    "cluster, mask, index, expected",
    [
        ("127.123.0.0/16", 24, 0, "127.123.0.0/24"),
        ("127.123.0.0/16", 24, 15, "127.123.15.0/24"),
        ("192.168.5.208/28", 32, 5, "192.168.5.213/32"),
        ("2001:db8:1234::/48", 64, 0, "2001:db8:1234::/64"),
        ("2001:db8:1234::/48", 64, 15, "2001:db8:1234:f::/64"),
        ("2001:db8:85a3::/50", 63, 6425, "2001:db8:85a3:3232::/63"),
        ("2001:db8::/32", 48, 0, "2001:db8::/48"),
        ("2001:db8::/32", 48, 15, "2001:db8:f::/48"),
        ("2001:db8::/32", 48, 6425, "2001:db8:1919::/48"),
        ("2001:db8:1234:ff00::/56", 72, 0, "2001:db8:1234:ff00::/72"),
        ("2001:db8:1234:ff00::/56", 72, 15, "2001:db8:1234:ff00:f00::/72"),
        ("2001:db8:1234:ff00::/56", 72, 6425, "2001:db8:1234:ff19:1900::/72"),
        ("2001:db8:1234:0:1234::/80", 96, 0, "2001:db8:1234:0:1234::/96"),
        ("2001:db8:1234:0:1234::/80", 96, 15, "2001:db8:1234:0:1234:f::/96"),
        ("2001:db8:1234:ff00::/80", 96, 6425, "2001:db8:1234:ff00:0:1919::/96"),
        ("10.0.0.0/8", 24, 65535, "10.255.255.0/24"),
        ("fd00::/112", 128, 65535, "fd00::ffff/128"),
    ],
)
def test_index_to_cidr_block(cluster, mask, index, expected):
    cs = CIDRSet(cluster, mask)
    assert cs.cidr_of(index) == expected
    assert cs.cidrs_of([index]).to_pylist() == [expected]
    assert cs.index_of(expected) == index


# --------------------------------------------------------------------------- whole-set behaviour
@pytest.mark.parametrize("cluster", ["127.123.234.0/30", "beef:1234::/30"])
def test_fully_allocated_single_block(cluster):
    cs = CIDRSet(cluster, 30)
    assert cs.capacity == 1
    assert cs.allocate_next() == cluster
    with pytest.raises(NoCIDRsRemaining):
        cs.allocate_next()
    cs.release(cluster)
    assert cs.allocate_next() == cluster
    with pytest.raises(NoCIDRsRemaining):
        cs.allocate_next()


@pytest.mark.parametrize("cluster", ["127.123.0.0/16", "beef::/16"])
def test_release_all_then_reallocate_gives_the_same_sequence(cluster):
    cs = CIDRSet(cluster, 24)
    first = [cs.allocate_next() for _ in range(256)]
    assert len(set(first)) == 256
    with pytest.raises(NoCIDRsRemaining):
        cs.allocate_next()
    for c in first:
        cs.release(c)
    again = [cs.allocate_next() for _ in range(256)]
    assert again == first


@pytest.mark.parametrize("cluster", ["127.123.0.0/16", "beef::/16"])
def test_occupied_blocks_are_skipped(cluster):
    cs = CIDRSet(cluster, 24)
    cidrs = [cs.allocate_next() for _ in range(256)]
    for c in cidrs:
        cs.release(c)
    for c in cidrs[128:]:
        cs.occupy(c)
    cs.occupy(cidrs[128])
    assert cs.allocated == 128
    again = [cs.allocate_next() for _ in range(128)]
    with pytest.raises(NoCIDRsRemaining):
        cs.allocate_next()
    assert again + cidrs[128:] == cidrs


def test_double_occupy_release_counts_only_flipped_bits():
    cs = CIDRSet("10.42.0.0/16", 24)
    steps = [
        ("occupy", "10.42.5.0/24", 1, 1),
        ("occupy", "10.42.9.0/24", 1, 2),
        ("occupy", "10.42.8.0/22", 3, 5),  # four blocks, one already used
        ("occupy", "10.42.9.0/24", 0, 5),
        ("release", "10.42.9.0/24", 1, 4),
        ("release", "10.42.9.0/24", 0, 4),  # double release: silent
        ("release", "10.42.4.0/22", 1, 3),  # four blocks, only .5 used
    ]
    for op, cidr, flipped, allocated in steps:
        assert getattr(cs, op)(cidr) == flipped, (op, cidr)
        assert cs.allocated == allocated, (op, cidr)
        assert cs.cursor == 0
    assert used_indices(cs) == [8, 10, 11]
    for _ in range(256 - 3):
        cs.allocate_next()
    with pytest.raises(NoCIDRsRemaining):
        cs.allocate_next()


@pytest.mark.parametrize(
    "cluster, mask, cidr, expected",
    [
        ("127.0.0.0/8", 16, "127.0.0.0/16", 0),
        ("be00::/8", 16, "be00::/16", 0),
        ("127.0.0.0/8", 16, "127.123.0.0/16", 123),
        ("be00::/8", 16, "beef::/16", 0xEF),
        ("192.168.0.0/16", 24, "192.168.151.0/24", 151),
        ("beef::/16", 24, "beef:9700::/24", 0x97),
    ],
)
def test_index_of_node_cidr(cluster, mask, cidr, expected):
    assert CIDRSet(cluster, mask).index_of(cidr) == expected


@pytest.mark.parametrize(
    "cluster, mask, cidr, error",
    [
        ("192.168.0.0/16", 24, "127.168.224.0/24", NotInRange),
        ("beef::/16", 24, "2001:db00::/24", NotInRange),
        ("192.168.0.0/16", 24, "fd00::/24", NotInRange),
        ("192.168.0.0/16", 24, "192.168.0.0/25", CIDRError),
        ("192.168.0.0/16", 24, "192.168.0.1/24", CIDRError),
    ],
)
def test_index_of_errors(cluster, mask, cidr, error):
    with pytest.raises(error):
        CIDRSet(cluster, mask).index_of(cidr)


@pytest.mark.parametrize(
    "cluster, mask, cidr, begin, end",
    [
        ("127.0.0.0/8", 16, "127.0.0.0/8", 0, 255),
        ("2001:beef:1200::/40", 48, "2001:beef:1200::/40", 0, 255),
        ("127.0.0.0/8", 16, "64.0.0.0/2", 0, 255),
        ("2001:beef:1200::/40", 48, "2001:beef::/34", 0, 255),
        ("127.0.0.0/8", 16, "127.0.0.0/16", 0, 0),
        ("2001:beef:1200::/40", 48, "2001:beef:1200::/48", 0, 0),
        ("127.0.0.0/8", 32, "127.0.0.0/16", 0, 65535),
        ("2001:beef:1200::/48", 64, "2001:beef:1200::/48", 0, 65535),
        ("126.0.0.0/7", 16, "127.0.0.0/15", 256, 257),
        ("2001:beef:7e00::/39", 48, "2001:beef:7f00::/47", 256, 257),
        ("126.0.0.0/7", 15, "127.0.0.0/15", 128, 128),
        ("2001:beef:7e00::/39", 47, "2001:beef:7f00::/47", 128, 128),
        ("126.0.0.0/7", 18, "127.0.0.0/15", 1024, 1031),
        ("2001:beef:7e00::/39", 50, "2001:beef:7f00::/47", 1024, 1031),
        ("10.96.0.0/20", 24, "10.96.5.16/28", 5, 5),
        ("2001:db8::/48", 64, "2001:db8:0:7::1:0/112", 7, 7),
    ],
)
def test_occupy_marks_exactly_the_span(cluster, mask, cidr, begin, end):
    cs = CIDRSet(cluster, mask)
    assert cs.span(cidr) == (begin, end + 1)
    assert cs.occupy(cidr) == end - begin + 1
    assert used_indices(cs) == list(range(begin, end + 1))
    assert cs.allocated == end - begin + 1
    assert cs.is_allocated(cidr)
    assert cs.release(cidr) == end - begin + 1
    assert cs.allocated == 0 and used_indices(cs) == []


@pytest.mark.parametrize(
    "cluster, mask, first, second",
    [
        ("127.0.0.0/8", 32, "127.0.0.0/32", "127.0.0.1/32"),
        ("2001:beef:1234:3690::/60", 64, "2001:beef:1234:3690::/64", "2001:beef:1234:3691::/64"),
        ("10.244.0.0/16", 16, "10.244.0.0/16", None),
    ],
)
def test_first_allocations(cluster, mask, first, second):
    cs = CIDRSet(cluster, mask)
    assert cs.allocate_next() == first
    if second is None:
        with pytest.raises(NoCIDRsRemaining):
            cs.allocate_next()
    else:
        assert cs.allocate_next() == second


# --------------------------------------------------------------------------- upstream-observed
def test_freed_block_is_not_reused_until_the_cursor_wraps():
    cs = CIDRSet("10.244.0.0/16", 24)
    first = cs.allocate_next()
    assert first == "10.244.0.0/24"
    cs.release(first)
    assert cs.allocate_next() == "10.244.1.0/24"


def test_full_set_with_cursor_at_6_release_3_and_9():
    cs = CIDRSet("10.96.0.0/20", 24)
    for i in range(6):
        assert cs.allocate_next() == f"10.96.{i}.0/24"
    cs.occupy("10.96.0.0/20")  # the rest; occupy does not move the cursor
    assert cs.is_full and cs.cursor == 6
    cs.release("10.96.3.0/24")
    cs.release("10.96.9.0/24")
    assert cs.cursor == 6
    assert cs.allocate_next() == "10.96.9.0/24"
    assert cs.allocate_next() == "10.96.3.0/24"
    assert cs.cursor == 4


def test_failed_allocation_leaves_the_cursor():
    cs = CIDRSet("10.96.0.0/20", 24)
    cs.allocate_next_many(7)
    cs.occupy("10.96.0.0/20")
    with pytest.raises(NoCIDRsRemaining) as err:
        cs.allocate_next()
    assert str(err.value) == NO_CIDRS
    assert cs.cursor == 7
    assert len(cs.allocate_next_many(5)) == 0 and cs.cursor == 7


def test_supernet_release_frees_everything_and_outside_is_refused():
    cs = CIDRSet("10.96.0.0/20", 24)
    cs.allocate_next_many(16)
    assert cs.release("10.0.0.0/8") == 16
    assert cs.allocated == 0 and cs.cursor == 0
    assert cs.occupy("0.0.0.0/0") == 16 and cs.is_full
    with pytest.raises(NotInRange) as err:
        cs.occupy("10.97.0.0/24")
    assert str(err.value) == "cidr 10.97.0.0/24 is out the range of cluster cidr 10.96.0.0/20"
    with pytest.raises(NotInRange, match="cidr fd00::/64 is out the range of cluster cidr 10.96.0.0/20"):
        cs.release("fd00::/64")
    with pytest.raises(CIDRError):
        cs.release("10.96.0.1/24")


def test_ipv6_slash64_node_cidrs_from_a_slash48():
    cs = CIDRSet("2001:db8::/48", 64)
    assert cs.capacity == 65536
    assert [cs.allocate_next() for _ in range(3)] == ["2001:db8::/64", "2001:db8:0:1::/64", "2001:db8:0:2::/64"]
    cs.occupy("2001:db8::/48")
    assert cs.is_full and cs.allocated == 65536
    cs.release("2001:db8:0:ffff::/64")
    assert cs.allocate_next() == "2001:db8:0:ffff::/64"


@pytest.mark.parametrize(
    "cluster, mask, capacity",
    [
        ("2001:db8::/48", 64, 65536),
        ("fd00::/112", 128, 65536),
        ("10.0.0.0/8", 32, 2**24),  # no 16-bit limit for IPv4
        ("10.96.0.0/20", 20, 1),
        ("0.0.0.0/0", 16, 65536),
    ],
)
def test_capacity(cluster, mask, capacity):
    cs = CIDRSet(cluster, mask)
    assert cs.capacity == capacity and cs.free == capacity and not cs.is_full


# --------------------------------------------------------------------------- construction errors
@pytest.mark.parametrize(
    "cluster, mask, upstream",
    [
        ("2001:db8::/47", 64, "New CIDR set failed; the node CIDR size is too big"),
        ("beef:1234::/32", 49, "New CIDR set failed; the node CIDR size is too big"),
        ("10.0.0.0/8", 33, "SubNetMask is invalid, should be lower or equal to 32 for IPv4 and to 128 for IPv6"),
        ("fd00::/120", 129, "SubNetMask is invalid, should be lower or equal to 32 for IPv4 and to 128 for IPv6"),
        (
            "10.0.0.0/26",
            24,
            "Invalid --cluster-cidr, mask size of cluster CIDR must be less than or equal to "
            "--node-cidr-mask-size configured for CIDR family",
        ),
        (
            "fd00::/64",
            56,
            "Invalid --cluster-cidr, mask size of cluster CIDR must be less than or equal to "
            "--node-cidr-mask-size configured for CIDR family",
        ),
    ],
)
def test_construction_errors_carry_upstream_text_and_both_values(cluster, mask, upstream):
    with pytest.raises(ConfigError) as err:
        CIDRSet(cluster, mask)
    message = str(err.value)
    assert message.startswith(upstream)
    assert cluster in message and f"node mask {mask}" in message
    assert "\n" not in message


@pytest.mark.parametrize("mask", [24.0, "24", None, True])
def test_node_mask_must_be_an_int(mask):
    with pytest.raises(ConfigError, match="must be an integer"):
        CIDRSet("10.0.0.0/8", mask)


def test_bad_cluster_cidr():
    with pytest.raises(CIDRError, match="host bits set"):
        CIDRSet("10.96.0.1/20", 24)


def test_short_node_mask_without_strict_is_upstreams_zero_capacity_set():
    cs = CIDRSet("10.96.0.0/20", 16, strict=False)
    assert cs.capacity == 0 and cs.is_full
    with pytest.raises(NoCIDRsRemaining):
        cs.allocate_next()
    assert cs.occupy("10.96.0.0/20") == 0 and cs.release("10.0.0.0/8") == 0
    with pytest.raises(NotInRange) as err:
        cs.occupy("10.96.1.0/24")
    assert str(err.value) == "CIDR: 10.96.0.0/16 is out of the range of CIDR allocator"


# --------------------------------------------------------------------------- batch forms
@pytest.mark.parametrize("cluster, mask", [("10.0.0.0/16", 24), ("fd00:1::/52", 64)])
def test_allocate_next_many_equals_single_calls(cluster, mask):
    rng = np.random.default_rng(11)
    a, b = CIDRSet(cluster, mask), CIDRSet(cluster, mask)
    pre = rng.choice(a.capacity, size=a.capacity // 3, replace=False)
    a.occupy_indices(pre)
    for i in pre:
        b.occupy(b.cidr_of(i))
    for k in [5, 40, 1, 200, 10_000]:
        got = a.allocate_next_many(k)
        singles = []
        for _ in range(k):
            try:
                singles.append(b.allocate_next())
            except NoCIDRsRemaining:
                break
        assert a.cidrs_of(got).to_pylist() == singles
        assert a.cursor == b.cursor and a.allocated == b.allocated
        drop = rng.choice(used_indices(a), size=min(30, a.allocated), replace=False)
        assert a.release_indices(drop) == len(drop)
        for i in drop:
            b.release(b.cidr_of(i))


def test_index_batch_errors_and_idempotence():
    cs = CIDRSet("10.96.0.0/20", 24)
    assert cs.occupy_indices([1, 1, 2]) == 2
    assert cs.occupy_indices([2]) == 0
    assert cs.release_indices([2, 2, 7]) == 1
    assert cs.allocated == 1
    with pytest.raises(NotInRange, match="index 16"):
        cs.occupy_indices([3, 16])
    with pytest.raises(NotInRange, match="index -1"):
        cs.release_indices([-1])
    assert used_indices(cs) == [1]  # nothing changed by the refused batches
    with pytest.raises(NotInRange):
        cs.cidr_of(16)


def test_compiled_caller_can_run_its_own_loop_and_write_back():
    cs = CIDRSet("10.0.0.0/16", 24)
    cs.allocate_next_many(10)
    ref = RefCIDRSet("10.0.0.0/16", 24)
    for _ in range(10):
        ref.allocate_next()
    # one release + next-fit allocation straight on the arrays, as a kernel loop would
    bm_clear(cs.words, cs.summary, 3)
    slot = bm_find_free_wrap(cs.words, cs.summary, cs.cursor)
    bm_set(cs.words, cs.summary, slot)
    cs.cursor = (slot + 1) % cs.capacity
    cs.recount()
    ref.release("10.0.3.0/24")
    assert cs.cidr_of(slot) == ref.allocate_next()
    assert cs.cursor == ref.cursor and cs.allocated == ref.allocated
    with pytest.raises(ConfigError):
        cs.cursor = 256


def test_cidr_strings_are_canonical_ipv6():
    cs = CIDRSet("2001:db8::/48", 64)
    cs.allocate_next_many(2)
    assert cs.allocate_next() == "2001:db8:0:2::/64"
    assert ipaddress.ip_network(cs.cidr_of(0)).compressed == cs.cidr_of(0)


# --------------------------------------------------------------------------- per-call path
@pytest.mark.parametrize(
    "cluster, mask",
    [("10.0.0.0/22", 26), ("255.255.255.0/24", 32), ("0.0.0.0/28", 32), ("2001:db8::/116", 120),
     ("::/120", 128), ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", 128), ("::ffff:0.0.0.0/120", 124)],
)
def test_per_call_texts_equal_batch_texts_and_ipaddress(cluster, mask):
    cs = CIDRSet(cluster, mask)
    ref = RefCIDRSet(cluster, mask)
    indices = np.arange(cs.capacity, dtype=np.int64)
    expected = [str(ref.block(i)) for i in range(ref.max)]
    assert [cs.cidr_of(i) for i in range(cs.capacity)] == expected
    assert cs.cidrs_of(indices).to_pylist() == expected
    assert [cs.allocate_next() for _ in range(cs.capacity)] == expected


def test_release_of_texts_the_set_did_not_write_parses_and_refuses_as_before():
    cs = CIDRSet("10.96.0.0/20", 24)
    taken = [cs.allocate_next() for _ in range(4)]
    # equal text from elsewhere, padded text, an ipaddress object: all release the block
    assert cs.release("".join(list(taken[0]))) == 1
    assert cs.release(f" {taken[1]} ") == 1
    assert cs.release(ipaddress.ip_network(taken[2])) == 1
    assert cs.release(taken[2]) == 0  # already free
    assert used_indices(cs) == [3]
    # a remembered padded text still means its block
    cs.occupy("10.96.1.0/24")
    assert cs.release(f" {taken[1]} ") == 1 and used_indices(cs) == [3]
    with pytest.raises(CIDRError, match="host bits set"):
        cs.release("10.96.3.1/24")
    with pytest.raises(CIDRError, match="expected an IPv4 or IPv6 prefix"):
        cs.release("10.96.3.0/24x")
    with pytest.raises(CIDRError, match="expected an IPv4 or IPv6 prefix"):
        cs.release(["10.96.3.0/24"])  # unhashable: parsed, refused
    with pytest.raises(NotInRange) as err:
        cs.release("10.97.0.0/24")
    assert str(err.value) == "cidr 10.97.0.0/24 is out the range of cluster cidr 10.96.0.0/20"
    with pytest.raises(NotInRange):
        cs.release("fd00::/64")
    assert used_indices(cs) == [3] and cs.allocated == 1


def test_release_of_a_smaller_cidr_text_frees_its_enclosing_block_each_time():
    cs = CIDRSet("10.96.0.0/20", 24)
    cs.occupy_indices([3])
    assert cs.release("10.96.3.16/28") == 1  # remembered as block 3 after the parse
    cs.occupy_indices([3])
    assert cs.release("10.96.3.16/28") == 1 and cs.allocated == 0


def test_large_sets_keep_a_bounded_dict_of_texts(monkeypatch):
    from ipam_core import addr

    monkeypatch.setattr(addr, "TEXT_CACHE_LIMIT", 8)
    cs = CIDRSet("10.96.0.0/24", 30)  # 64 blocks > limit: dict mode, emptied every 8 texts
    ref = RefCIDRSet("10.96.0.0/24", 30)
    assert isinstance(cs._texts, dict)
    rng = np.random.default_rng(1)
    for step in range(400):
        if ref.used and rng.random() < 0.45:
            cidr = str(ref.block(int(rng.choice(sorted(ref.used)))))
            assert cs.release(cidr) == ref.release(cidr) == 1
        elif not ref.is_full:
            assert cs.allocate_next() == ref.allocate_next()
        assert len(cs._texts) <= 8 and len(cs._index_of) <= 8
    assert used_indices(cs) == sorted(ref.used) and cs.cursor == ref.cursor


def test_copies_are_independent():
    import copy
    import pickle

    cs = CIDRSet("10.96.0.0/20", 24)
    first = cs.allocate_next()
    for twin in (copy.deepcopy(cs), pickle.loads(pickle.dumps(cs))):
        assert twin.allocate_next() == "10.96.1.0/24" and twin.release(first) == 1
        assert twin.allocated == 1 and twin.cursor == 2
    assert cs.allocated == 1 and cs.cursor == 1 and used_indices(cs) == [0]
    assert cs.allocate_next() == "10.96.1.0/24"


def test_counters_follow_batch_and_per_call_mixes():
    cs = CIDRSet("10.96.0.0/20", 24)
    ref = RefCIDRSet("10.96.0.0/20", 24)
    got = cs.cidrs_of(cs.allocate_next_many(5)).to_pylist()
    assert got == [ref.allocate_next() for _ in range(5)]
    assert cs.release(got[1]) == ref.release(got[1]) == 1
    assert cs.release_indices([2, 2, 3]) == 2
    ref.release(got[2])
    ref.release(got[3])
    for _ in range(14):
        assert cs.allocate_next() == ref.allocate_next()
    assert cs.is_full and cs.allocated == ref.allocated == 16 and cs.cursor == ref.cursor
    with pytest.raises(NoCIDRsRemaining):
        cs.allocate_next()
    assert cs.cursor == ref.cursor
