"""Stateful property tests: CIDRSet and PodIPRange beside the slow references.

Hypothesis drives random operation sequences (single and batch forms,
in-range and out-of-range inputs, IPv4 and IPv6) and every state is compared
after every step: counters, cursor, the full set of used slots, and the
exact error texts.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ipam_core import CIDRSet, PodIPRange
from ipam_core.errors import AlreadyAllocated, IPAMBenchError, NoCIDRsRemaining, NotInRange, RangeFull

from reference_alloc import RefCIDRSet, RefError, RefPodIPRange

# Small sets so the cursor wraps and the sets fill up within a run.
CIDRSET_CONFIGS = [
    ("10.96.0.0/20", 24),
    ("10.0.0.0/22", 26),
    ("172.16.0.0/24", 24),
    ("192.168.0.0/23", 30),
    ("2001:db8::/56", 64),
    ("fd00::/116", 120),
    ("fd00:1::/40", 48),
]

POD_CIDRS = ["10.0.0.0/28", "10.0.0.0/26", "10.0.0.0/31", "10.0.0.9/32", "fd00::/122", "fd00::/127", "fd00::7/128",
             "10.0.0.0/24", "fd00::/120"]

_KIND = {"full": (NoCIDRsRemaining, RangeFull), "not_in_range": NotInRange, "allocated": AlreadyAllocated}


def _same_outcome(call, ref_call):
    """Run both; they must return the same value or fail with the same text."""
    try:
        expected = ref_call()
    except RefError as exc:
        try:
            call()
        except IPAMBenchError as got:
            assert isinstance(got, _KIND[exc.kind]), (got, exc.kind)
            assert str(got) == exc.message
            return None
        raise AssertionError(f"expected error {exc.message!r}")
    assert call() == expected
    return expected


def _nearby_cidr(data, net) -> str:
    """A CIDR near ``net``: inside, straddling, a supernet, or outside it."""
    bits = net.max_prefixlen
    span = net.num_addresses
    start = int(net.network_address)
    value = data.draw(st.integers(max(0, start - span), min(2**bits - 1, start + 2 * span - 1)), label="addr")
    prefix = data.draw(st.integers(max(0, net.prefixlen - 3), bits), label="prefix")
    return str(ipaddress.ip_network((value, prefix), strict=False))


class CIDRSetMachine(RuleBasedStateMachine):
    @initialize(config=st.sampled_from(CIDRSET_CONFIGS))
    def start(self, config):
        cluster, mask = config
        self.cs = CIDRSet(cluster, mask)
        self.ref = RefCIDRSet(cluster, mask)

    @rule()
    def allocate_next(self):
        _same_outcome(self.cs.allocate_next, self.ref.allocate_next)

    @rule(k=st.integers(0, 40))
    def allocate_next_many(self, k):
        got = self.cs.cidrs_of(self.cs.allocate_next_many(k)).to_pylist()
        expected = []
        for _ in range(k):
            if self.ref.is_full:
                break
            expected.append(self.ref.allocate_next())
        assert got == expected

    @rule(data=st.data())
    def occupy(self, data):
        cidr = _nearby_cidr(data, self.ref.net)
        _same_outcome(lambda: self.cs.occupy(cidr), lambda: self.ref.occupy(cidr))

    @rule(data=st.data())
    def release(self, data):
        cidr = _nearby_cidr(data, self.ref.net)
        _same_outcome(lambda: self.cs.release(cidr), lambda: self.ref.release(cidr))

    @rule(k=st.integers(1, 70))
    def allocate_next_burst(self, k):
        """Many single calls in a row (the per-call path), then the texts back through release."""
        got = []
        for _ in range(k):
            got.append(_same_outcome(self.cs.allocate_next, self.ref.allocate_next))
        for text in got[: k // 2]:
            if text is not None:
                assert self.cs.release(text) == self.ref.release(text) == 1

    @precondition(lambda self: self.ref.used)
    @rule(data=st.data(), form=st.sampled_from(["network", "padded", "copy"]))
    def release_foreign_form(self, data, form):
        """A held block released as an ipaddress object or a text the set did not write."""
        index = data.draw(st.sampled_from(sorted(self.ref.used)))
        block = self.ref.block(index)
        cidr = {"network": block, "padded": f" {block} ", "copy": "".join(list(str(block)))}[form]
        assert self.cs.release(cidr) == self.ref.release(str(block)) == 1

    @rule(other=st.sampled_from(["fd00::/64", "10.96.0.0/24"]))
    def other_family_is_out_of_range(self, other):
        if ipaddress.ip_network(other).version != self.ref.net.version:
            _same_outcome(lambda: self.cs.release(other), lambda: self.ref.release(other))

    @precondition(lambda self: self.ref.used)
    @rule(data=st.data())
    def release_held(self, data):
        index = data.draw(st.sampled_from(sorted(self.ref.used)))
        cidr = str(self.ref.block(index))
        assert self.cs.release(cidr) == self.ref.release(cidr) == 1

    @rule(data=st.data())
    def index_batches(self, data):
        idx = data.draw(st.lists(st.integers(0, self.ref.max - 1), max_size=20))
        if data.draw(st.booleans(), label="occupy"):
            before = len(self.ref.used)
            self.ref.used.update(idx)
            assert self.cs.occupy_indices(np.array(idx, dtype=np.int64)) == len(self.ref.used) - before
        else:
            before = len(self.ref.used)
            self.ref.used.difference_update(idx)
            assert self.cs.release_indices(idx) == before - len(self.ref.used)

    @invariant()
    def same_state(self):
        if not hasattr(self, "cs"):
            return
        assert self.cs.allocated == self.ref.allocated
        assert self.cs.cursor == self.ref.cursor
        assert self.cs.is_full == self.ref.is_full
        assert self.cs.allocated_indices().tolist() == sorted(self.ref.used)


class PodIPRangeMachine(RuleBasedStateMachine):
    @initialize(cidr=st.sampled_from(POD_CIDRS), seed=st.integers(0, 2**32))
    def start(self, cidr, seed):
        self.r = PodIPRange(cidr, strategy="random", seed=seed)
        self.ref = RefPodIPRange(cidr)
        self.mirror = np.random.default_rng(seed)  # replays the documented draws
        net = self.ref.net
        low = max(0, int(net.network_address) - 2)
        high = min(2**net.max_prefixlen - 1, int(net.network_address) + min(net.num_addresses, 70000) + 1)
        self.candidates = st.integers(low, high).map(
            lambda v: str(ipaddress.ip_address(v) if net.version == 4 else ipaddress.IPv6Address(v))
        )

    @rule()
    def allocate_next(self):
        def ref_call():
            if self.ref.free == 0:
                raise RefError("full", "range is full")  # before any draw
            return self.ref.allocate_next_with_start(int(self.mirror.integers(0, self.ref.max)))

        _same_outcome(self.r.allocate_next, ref_call)

    @rule(k=st.integers(1, 90))
    def allocate_next_burst(self, k):
        """Single calls in a row: past DRAW_AHEAD_AFTER the range draws its starts ahead."""
        for _ in range(k):
            if self.ref.free == 0:
                with pytest.raises(RangeFull):
                    self.r.allocate_next()
                break
            expected = self.ref.allocate_next_with_start(int(self.mirror.integers(0, self.ref.max)))
            assert self.r.allocate_next() == expected
            if k % 3 == 0:
                self.r.release(expected)
                self.ref.release(expected)

    @rule(k=st.integers(0, 30))
    def allocate_next_many(self, k):
        m = min(k, self.ref.free)
        starts = self.mirror.integers(0, self.ref.max, size=m, dtype=np.int64) if m else []
        expected = [self.ref.allocate_next_with_start(int(s)) for s in starts]
        assert self.r.addresses(self.r.allocate_next_many(k)).to_pylist() == expected

    @precondition(lambda self: self.ref.max > 0)
    @rule(data=st.data())
    def allocate_with_start(self, data):
        start = data.draw(st.integers(0, self.ref.max - 1))
        _same_outcome(lambda: self.r.allocate_next_with_start(start), lambda: self.ref.allocate_next_with_start(start))

    @rule(data=st.data())
    def allocate_ip(self, data):
        ip = data.draw(self.candidates)
        _same_outcome(lambda: self.r.allocate(ip), lambda: self.ref.allocate(ip))

    @rule(data=st.data())
    def release_ip(self, data):
        ip = data.draw(self.candidates)
        self.r.release(ip)
        self.ref.release(ip)
        assert not self.r.has(ip)

    @precondition(lambda self: self.ref.used)
    @rule(data=st.data())
    def release_offsets(self, data):
        offs = data.draw(st.lists(st.sampled_from(sorted(self.ref.used)), max_size=6))
        before = len(self.ref.used)
        self.ref.used.difference_update(offs)
        assert self.r.release_offsets(offs) == before - len(self.ref.used)

    @precondition(lambda self: hasattr(self, "r"))
    @rule()
    def generator_state(self):
        """Reading rng settles the starts drawn ahead: same state as one integers() per call."""
        assert self.r.rng.bit_generator.state == self.mirror.bit_generator.state

    @invariant()
    def same_state(self):
        if not hasattr(self, "r"):
            return
        assert self.r.capacity == self.ref.max
        assert self.r.used == len(self.ref.used) and self.r.free == self.ref.free
        assert set(self.r.addresses(self.r.allocated_offsets()).to_pylist()) == self.ref.addresses_used()


TestCIDRSetMachine = CIDRSetMachine.TestCase
TestPodIPRangeMachine = PodIPRangeMachine.TestCase
