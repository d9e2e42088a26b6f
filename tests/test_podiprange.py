"""PodIPRange against upstream-observed facts and the reference range."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from ipam_core import PodIPRange
from ipam_core.errors import AlreadyAllocated, CIDRError, ConfigError, NotInRange, RangeFull

from reference_alloc import RefError, RefPodIPRange


# --------------------------------------------------------------------------- capacity and window
@pytest.mark.parametrize(
    "cidr, capacity, first, last",
    [
        ("10.0.0.0/24", 254, "10.0.0.1", "10.0.0.254"),
        ("10.1.0.0/28", 14, "10.1.0.1", "10.1.0.14"),
        ("10.0.0.0/30", 2, "10.0.0.1", "10.0.0.2"),
        ("10.0.0.0/31", 2, "10.0.0.0", "10.0.0.1"),
        ("10.0.0.7/32", 1, "10.0.0.7", "10.0.0.7"),
        ("10.0.0.0/16", 65534, "10.0.0.1", "10.0.255.254"),
        ("fd00::/64", 65534, "fd00::1", "fd00::fffe"),
        ("fd00::/112", 65534, "fd00::1", "fd00::fffe"),
        ("fd00::/120", 254, "fd00::1", "fd00::fe"),
        ("fd00::/127", 2, "fd00::", "fd00::1"),
        ("fd00::5/128", 1, "fd00::5", "fd00::5"),
    ],
)
def test_capacity_and_usable_window(cidr, capacity, first, last):
    r = PodIPRange(cidr, strategy="first-fit")
    assert r.capacity == capacity and r.free == capacity and r.used == 0
    assert r.address_of(0) == first and r.address_of(capacity - 1) == last
    taken = r.allocate_next_many(capacity + 5)
    assert len(taken) == capacity and r.is_full
    texts = r.addresses(taken).to_pylist()
    assert texts[0] == first and texts[-1] == last
    assert texts == [str(ipaddress.ip_address(first) + i) for i in range(capacity)]


@pytest.mark.parametrize("cidr", ["0.0.0.0/1", "0.0.0.0/0", "::/1", "::/0"])
def test_upstream_rangesize_guard_gives_zero(cidr):
    r = PodIPRange(cidr)
    assert r.capacity == 0 and r.is_full
    with pytest.raises(RangeFull):
        r.allocate_next()


def test_ipv6_window_end():
    r = PodIPRange("fd00::/64")
    r.allocate("fd00::fffe")
    assert r.has("fd00::fffe")
    for outside in ["fd00::ffff", "fd00::1:0", "fd00::ffff:ffff:ffff:ffff", "fd00::", "fd00:0:0:1::1"]:
        with pytest.raises(NotInRange) as err:
            r.allocate(outside)
        assert str(err.value) == "provided IP is not in the valid range. The range of valid IPs is fd00::/64"
        assert not r.has(outside)


# --------------------------------------------------------------------------- errors
def test_error_texts():
    r = PodIPRange("10.1.0.0/28", seed=3)
    for ip in ["10.1.0.0", "10.1.0.15", "10.1.0.16", "10.2.0.1", "fd00::1"]:
        with pytest.raises(NotInRange) as err:
            r.allocate(ip)
        assert str(err.value) == "provided IP is not in the valid range. The range of valid IPs is 10.1.0.0/28"
    r.allocate("10.1.0.1")
    with pytest.raises(AlreadyAllocated) as err:
        r.allocate("10.1.0.1")
    assert str(err.value) == "provided IP is already allocated"
    while r.free:
        r.allocate_next()
    with pytest.raises(RangeFull) as err:
        r.allocate_next()
    assert str(err.value) == "range is full"
    with pytest.raises(RangeFull):
        r.allocate_next_with_start(0)
    with pytest.raises(CIDRError, match="invalid IP address"):
        r.allocate("10.1.0.x")
    with pytest.raises(ConfigError, match="strategy 'best-fit'"):
        PodIPRange("10.1.0.0/28", strategy="best-fit")
    with pytest.raises(CIDRError, match="host bits"):
        PodIPRange("10.1.0.1/28")


def test_release_is_idempotent_and_silent_outside_the_range():
    r = PodIPRange("10.1.0.0/28")
    r.allocate("10.1.0.5")
    r.allocate("10.1.0.6")
    for ip in ["10.1.0.5", "10.1.0.5", "10.1.0.9", "10.1.0.0", "10.1.0.15", "192.168.0.1", "fd00::5"]:
        r.release(ip)
    assert r.used == 1 and r.free == 13
    assert r.has("10.1.0.6") and not r.has("10.1.0.5")
    assert r.allocated_offsets().tolist() == [5]
    with pytest.raises(CIDRError):
        r.release("nonsense")


# --------------------------------------------------------------------------- strategies
def test_first_fit_takes_the_lowest_free():
    r = PodIPRange("10.0.0.0/24", strategy="first-fit")
    assert [r.allocate_next() for _ in range(4)] == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    r.release("10.0.0.2")
    assert r.allocate_next() == "10.0.0.2"
    assert r.allocate_next() == "10.0.0.5"


def test_next_fit_goes_round_and_wraps():
    r = PodIPRange("10.1.0.0/29", strategy="next-fit")  # 6 usable
    assert [r.allocate_next() for _ in range(3)] == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
    r.release("10.1.0.1")
    assert [r.allocate_next() for _ in range(3)] == ["10.1.0.4", "10.1.0.5", "10.1.0.6"]
    assert r.allocate_next() == "10.1.0.1"  # wrapped
    with pytest.raises(RangeFull):
        r.allocate_next()


def test_random_starts_come_from_rng_integers():
    seed = 42
    r = PodIPRange("10.0.0.0/26", strategy="random", seed=seed)
    ref = RefPodIPRange("10.0.0.0/26")
    mirror = np.random.default_rng(seed)
    for _ in range(ref.max):
        assert r.allocate_next() == ref.allocate_next_with_start(int(mirror.integers(0, ref.max)))
    # full: no draw happens, so the generator state is untouched
    state = r.rng.bit_generator.state
    with pytest.raises(RangeFull):
        r.allocate_next()
    assert r.rng.bit_generator.state == state


def test_same_seed_same_sequence_and_seeds_matter():
    def run(seed):
        r = PodIPRange("10.0.0.0/24", seed=seed)
        out = [r.allocate_next() for _ in range(50)]
        r.release(out[3])
        out += list(r.addresses(r.allocate_next_many(30)).to_pylist())
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_random_is_not_lowest_free():
    r = PodIPRange("10.0.0.0/16", seed=0)
    taken = r.allocate_next_many(100)
    assert sorted(taken.tolist()) != list(range(100))
    assert len(set(taken.tolist())) == 100


def test_accepts_a_generator_as_seed():
    g = np.random.default_rng(9)
    r = PodIPRange("10.0.0.0/24", seed=g)
    assert r.rng is g


# --------------------------------------------------------------------------- replay
@pytest.mark.parametrize("cidr", ["10.0.0.0/24", "10.0.0.0/31", "fd00::/120", "fd00::/64"])
def test_replay_with_explicit_starts_matches_reference(cidr):
    r = PodIPRange(cidr)
    ref = RefPodIPRange(cidr)
    rng = np.random.default_rng(5)
    for step in range(400):
        if ref.used and rng.random() < 0.3:
            victim = str(ref.usable[int(rng.choice(sorted(ref.used)))])
            r.release(victim)
            ref.release(victim)
            continue
        start = int(rng.integers(0, ref.max))
        try:
            expected = ref.allocate_next_with_start(start)
        except RefError as exc:
            with pytest.raises(RangeFull, match=exc.message):
                r.allocate_next_with_start(start)
            continue
        assert r.allocate_next_with_start(start) == expected, step
        assert r.used == len(ref.used) and r.free == ref.free


def test_batch_replay_with_starts():
    r = PodIPRange("10.0.0.0/28")
    ref = RefPodIPRange("10.0.0.0/28")
    starts = [13, 13, 0, 5, 5, 5, 13, 2]
    got = r.allocate_next_with_starts(starts)
    assert r.addresses(got).to_pylist() == [ref.allocate_next_with_start(s) for s in starts]
    with pytest.raises(ConfigError, match="start 14"):
        r.allocate_next_with_starts([14])
    with pytest.raises(ConfigError, match="start -1"):
        r.allocate_next_with_start(-1)


# --------------------------------------------------------------------------- batch forms
def test_random_batch_matches_reference_with_the_batch_draw():
    seed = 8
    r = PodIPRange("10.0.0.0/25", seed=seed)
    ref = RefPodIPRange("10.0.0.0/25")
    mirror = np.random.default_rng(seed)
    got = r.allocate_next_many(200)  # only 126 free: 126 starts drawn in one call
    starts = mirror.integers(0, ref.max, size=ref.max, dtype=np.int64)
    assert r.addresses(got).to_pylist() == [ref.allocate_next_with_start(int(s)) for s in starts]
    assert r.rng.bit_generator.state == mirror.bit_generator.state


@pytest.mark.parametrize("strategy", ["first-fit", "next-fit"])
def test_deterministic_batches_equal_single_calls(strategy):
    a = PodIPRange("10.0.0.0/22", strategy=strategy)
    b = PodIPRange("10.0.0.0/22", strategy=strategy)
    rng = np.random.default_rng(4)
    for k in [10, 1, 300, 77, 2000]:
        got = a.addresses(a.allocate_next_many(k)).to_pylist()
        singles = []
        for _ in range(k):
            try:
                singles.append(b.allocate_next())
            except RangeFull:
                break
        assert got == singles
        drop = rng.choice(a.allocated_offsets(), size=min(50, a.used), replace=False)
        assert a.release_offsets(drop) == len(drop)
        for ip in a.addresses(drop).to_pylist():
            b.release(ip)
        assert a.allocated_offsets().tolist() == b.allocated_offsets().tolist()


def test_allocate_offsets_is_all_or_nothing():
    r = PodIPRange("10.0.0.0/24")
    assert r.allocate_offsets([0, 5, 9]) == 3
    with pytest.raises(AlreadyAllocated):
        r.allocate_offsets([1, 5])
    with pytest.raises(AlreadyAllocated):
        r.allocate_offsets([2, 2])
    with pytest.raises(NotInRange, match="offset 254"):
        r.allocate_offsets([3, 254])
    assert r.allocated_offsets().tolist() == [0, 5, 9] and r.used == 3
    assert r.has("10.0.0.6") and r.has("10.0.0.1") and not r.has("10.0.0.2")
    assert r.release_offsets([5, 5, 6]) == 1 and r.used == 2
    with pytest.raises(NotInRange):
        r.release_offsets([-1])
    assert r.allocate_offsets([]) == 0


def test_addresses_offsets_round_trip():
    r = PodIPRange("2001:db8:0:7::/64")
    offs = np.array([0, 1, 65533, 4095])
    texts = r.addresses(offs).to_pylist()
    assert texts == ["2001:db8:0:7::1", "2001:db8:0:7::2", "2001:db8:0:7::fffe", "2001:db8:0:7::1000"]
    assert [r.offset_of(t) for t in texts] == offs.tolist()
    assert r.offset_of("2001:db8:0:7::") == -1 and r.offset_of("10.0.0.1") == -1
    with pytest.raises(NotInRange):
        r.addresses([65534])
    with pytest.raises(NotInRange):
        r.address_of(-1)


def test_recount_after_direct_kernel_use():
    from ipam_core.kernels.slots import bm_clear, bm_set

    r = PodIPRange("10.0.0.0/24", strategy="first-fit")
    r.allocate_next_many(10)
    bm_clear(r.words, r.summary, 4)
    bm_set(r.words, r.summary, 100)
    bm_set(r.words, r.summary, 101)
    assert r.recount() == 11 and r.used == 11 and r.free == 243
    assert r.has("10.0.0.102") and not r.has("10.0.0.5")


# --------------------------------------------------------------------------- texts: per call, batch, ipaddress
IPV4_EDGES = [0, 1, 255, 256, 0x0A000001, 0x7F000001, 0xC0A80164, 0xFFFFFFFE, 0xFFFFFFFF]
IPV6_EDGES = [
    0, 1, 2**128 - 1, 1 << 112, 0x20010DB8000000000000000000000001, 0x20010DB8000000010000000000000001,
    0x20010DB8000000000001000000000000,  # two runs of equal length: the leftmost becomes ::
    0x20010DB8000100000001000100010001,  # a single zero group is not compressed
    0xFFFF0A000001,  # IPv4-mapped ::ffff:10.0.0.1
    0x0A000001,  # IPv4-compatible ::10.0.0.1
    0xFD000000000000000000000000000000, 0x00000000000000000000000000010000,
]


def _batch_text(version: int, value: int) -> str:
    from ipam_core.addr import format_values

    return format_values(version, value, np.zeros(1, dtype=np.int64)).to_pylist()[0]


@pytest.mark.parametrize("value", IPV4_EDGES)
def test_ipv4_text_equals_ipaddress_and_the_batch_formatter(value):
    from ipam_core.addr import ip_text

    assert ip_text(4, value) == str(ipaddress.IPv4Address(value)) == _batch_text(4, value)


@pytest.mark.parametrize("value", IPV6_EDGES)
def test_ipv6_text_equals_ipaddress_and_the_batch_formatter(value):
    import sys

    from ipam_core.addr import ip_text, ipv6_text

    assert ip_text(6, value) == ipv6_text(value) == _batch_text(6, value)
    mapped = (value >> 32) == 0xFFFF
    if sys.version_info < (3, 13) or not mapped:  # 3.13 writes a dotted tail for IPv4-mapped
        assert ipv6_text(value) == str(ipaddress.IPv6Address(value))


def test_ipv6_text_on_random_values_with_zero_runs():
    from ipam_core.addr import ip_text, ipv6_text

    rng = np.random.default_rng(11)
    for _ in range(3000):
        groups = rng.integers(0, 2**16, size=8) * (rng.random(8) < 0.5)  # many zero groups
        value = int.from_bytes(b"".join(int(g).to_bytes(2, "big") for g in groups), "big")
        if (value >> 32) == 0xFFFF:
            continue
        assert ip_text(6, value) == ipv6_text(value) == str(ipaddress.IPv6Address(value))


@pytest.mark.parametrize("cidr", ["10.0.0.7/32", "10.0.0.0/31", "255.255.255.252/30", "fd00::5/128", "::/127",
                                  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124", "::ffff:10.0.0.0/120"])
def test_per_call_address_texts_equal_batch_and_ipaddress(cidr):
    r = PodIPRange(cidr, strategy="first-fit")
    ref = RefPodIPRange(cidr)
    expected = [str(ip) for ip in ref.usable]
    assert [r.address_of(i) for i in range(r.capacity)] == expected
    assert r.addresses(np.arange(r.capacity)).to_pylist() == expected
    assert [r.allocate_next() for _ in range(r.capacity)] == expected
    for text in expected:
        r.release(text)
    assert r.used == 0


def test_release_and_allocate_of_texts_the_range_did_not_write():
    r = PodIPRange("10.1.0.0/28", strategy="first-fit")
    a, b, c = (r.allocate_next() for _ in range(3))
    r.release(" 10.1.0.1 ")  # padded: parsed, then remembered
    r.release(ipaddress.IPv4Address("10.1.0.2"))
    assert r.allocated_offsets().tolist() == [2]
    r.allocate(" 10.1.0.1 ")
    with pytest.raises(AlreadyAllocated):
        r.allocate(" 10.1.0.1 ")
    assert r.has(" 10.1.0.1 ") and r.has("10.1.0.1") and not r.has("10.1.0.2")
    with pytest.raises(NotInRange) as err:
        r.allocate("10.1.0.15")
    assert str(err.value) == "provided IP is not in the valid range. The range of valid IPs is 10.1.0.0/28"
    for bad in ["10.1.0.x", "10.1.0.01", ["10.1.0.3"]]:
        with pytest.raises(CIDRError, match="invalid IP address"):
            r.release(bad)
    assert r.offset_of("10.1.0.3") == 2 and r.offset_of("fd00::3") == -1
    assert sorted(r.allocated_offsets().tolist()) == [0, 2]


def test_copies_are_independent():
    import copy
    import pickle

    r = PodIPRange("10.0.0.0/24", seed=3)
    first = [r.allocate_next() for _ in range(40)]  # past DRAW_AHEAD_AFTER: starts drawn ahead
    mirror = np.random.default_rng(3)
    ref = RefPodIPRange("10.0.0.0/24")
    assert first == [ref.allocate_next_with_start(int(mirror.integers(0, 254))) for _ in range(40)]
    for twin in (copy.deepcopy(r), pickle.loads(pickle.dumps(r))):
        twin_ref = copy.deepcopy(ref)
        twin_mirror = copy.deepcopy(mirror)
        assert [twin.allocate_next() for _ in range(30)] == [
            twin_ref.allocate_next_with_start(int(twin_mirror.integers(0, 254))) for _ in range(30)
        ]
        twin.release(first[0])
    assert r.used == 40 and r.has(first[0])


# --------------------------------------------------------------------------- starts drawn ahead = rng.integers per call
@pytest.mark.parametrize("n", [2, 3, 14, 254, 65534, 2**31 - 1, 3 * 2**29 + 5, 2**32 - 1])
@pytest.mark.parametrize("odd_start", [False, True])
def test_starts_ahead_are_integers_per_call_with_the_same_state(n, odd_start):
    from ipam_core.podiprange import StartsAhead

    seed = 1000 + n % 97
    rng, mirror = np.random.default_rng(seed), np.random.default_rng(seed)
    if odd_start:  # leaves half of a 64-bit output in has_uint32/uinteger
        rng.integers(0, 10)
        mirror.integers(0, 10)
    ahead = StartsAhead(rng, n)
    for used in [0, 1, 2, 5, 300, 17]:
        values = ahead.draw(count=200)
        ahead.settle(used)
        assert values[:used] == [int(mirror.integers(0, n)) for _ in range(used)]
        assert rng.bit_generator.state == mirror.bit_generator.state
        assert int(rng.integers(0, 1000)) == int(mirror.integers(0, 1000))  # the generator goes on as the mirror


def test_long_runs_of_single_calls_replay_rng_integers_with_batches_between():
    from ipam_core.podiprange import DRAW_AHEAD_AFTER

    seed = 77
    r = PodIPRange("10.0.0.0/22", seed=seed)
    ref = RefPodIPRange("10.0.0.0/22")
    mirror = np.random.default_rng(seed)
    rng = np.random.default_rng(5)

    def single():
        return ref.allocate_next_with_start(int(mirror.integers(0, ref.max)))

    for burst in [DRAW_AHEAD_AFTER + 50, 3, 5000 // 4, 200]:
        for _ in range(burst):
            if ref.free == 0:
                break
            assert r.allocate_next() == single()
        drop = rng.choice(sorted(ref.used), size=min(60, len(ref.used)), replace=False)
        texts = [str(ref.usable[int(o)]) for o in drop]
        for t in texts:
            r.release(t)
            ref.release(t)
        m = min(25, ref.free)
        starts = mirror.integers(0, ref.max, size=m, dtype=np.int64)
        assert r.addresses(r.allocate_next_many(25)).to_pylist() == [
            ref.allocate_next_with_start(int(s)) for s in starts
        ]
        assert r.allocate_next_with_start(7) == ref.allocate_next_with_start(7)  # no draw
    while ref.free:
        assert r.allocate_next() == single()
    with pytest.raises(RangeFull):
        r.allocate_next()  # full: nothing drawn, even with starts drawn ahead
    assert r.used == r.capacity
    assert r.rng.bit_generator.state == mirror.bit_generator.state


def test_a_generator_passed_in_is_drawn_from_once_per_call():
    g, mirror = np.random.default_rng(9), np.random.default_rng(9)
    r = PodIPRange("10.0.0.0/24", seed=g)
    ref = RefPodIPRange("10.0.0.0/24")
    for k in range(120):  # the caller draws from the shared generator between calls
        assert r.allocate_next() == ref.allocate_next_with_start(int(mirror.integers(0, 254)))
        if k % 7 == 0:
            assert g.random() == mirror.random()
    assert g.bit_generator.state == mirror.bit_generator.state


def test_reading_rng_settles_and_then_shares_it():
    r = PodIPRange("10.0.0.0/24", seed=4)
    mirror = np.random.default_rng(4)
    ref = RefPodIPRange("10.0.0.0/24")
    for _ in range(60):
        assert r.allocate_next() == ref.allocate_next_with_start(int(mirror.integers(0, 254)))
    g = r.rng
    assert g.bit_generator.state == mirror.bit_generator.state
    for _ in range(60):
        assert g.integers(0, 5) == mirror.integers(0, 5)
        assert r.allocate_next() == ref.allocate_next_with_start(int(mirror.integers(0, 254)))


def test_text_memory_grows_with_use_not_capacity():
    r = PodIPRange("fd00::/64", seed=2)  # 65,534 addresses
    got = [r.allocate_next() for _ in range(30)]
    assert isinstance(r._texts, dict) and len(r._texts) == 30
    for ip in got:
        r.release(ip)
    offsets = r.allocate_next_many(5000)
    texts = [r.address_of(o) for o in offsets.tolist()]  # past 1/16 of the slots: a list
    assert isinstance(r._texts, list) and len(r._texts) == r.capacity
    assert texts == r.addresses(offsets).to_pylist()
    assert [r.address_of(o) for o in range(40)] == [str(ipaddress.ip_address("fd00::1") + o) for o in range(40)]
    for ip in texts:
        r.release(ip)
    assert r.used == 0
