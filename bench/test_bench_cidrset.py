"""Node-CIDR churn at 95 % occupancy: 10.0.0.0/8 carved into 65,536 /24s.

One operation is a *pair*: release a random held node CIDR, then
``allocate_next`` (next fit), as the upstream Go benchmark measured it
(Kubernetes 1,068 ns, Cilium 471 ns per pair on this kind of machine;
``upstream-observed.md``). Three implementations, same workload:

* ``kernel``: a compiled loop over ``CIDRSet.words``/``summary`` with the
  bitmap kernels (indices only; strings are formatted in bulk when needed);
* ``python-api``: one ``CIDRSet.release(str)`` + ``allocate_next() -> str``
  per pair;
* ``python-baseline``: what a user would write: a ``set`` of used indices, a
  next-fit cursor and ``ipaddress`` for the strings.

Which CIDR to release is workload randomness, drawn once per test (seeded)
and identical for all three; it is not timed.
"""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import numpy as np
import pytest

from ipam_core import CIDRSet
from ipam_core.kernels._jit import kjit
from ipam_core.kernels.bitmap import bm_clear, bm_find_free_wrap, bm_set
from bench_util import record_speed

CLUSTER = "10.0.0.0/8"
NODE_MASK = 24
BLOCKS = 1 << (NODE_MASK - 8)
OCCUPANCY = 0.95
HELD = int(BLOCKS * OCCUPANCY)
UPSTREAM_GO_NS = {"kubernetes": 1068, "cilium": 471}
GROUP = "cidrset-churn-95pct-slash8-slash24"
SEED = 20240611

PAIRS_KERNEL = 200_000
PAIRS_PYTHON = 20_000


@kjit
def churn_pairs(words, summary, n, cursor, held, picks):
    """Release ``held[p]`` then allocate by next fit into ``held[p]``, for each pick.

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The CIDR set's bitmap.
    n : int
        Number of node blocks.
    cursor : int
        Next-fit cursor.
    held : numpy.ndarray of int64
        Block indices currently held (updated in place).
    picks : numpy.ndarray of int64
        Positions in ``held`` to release, one per pair.

    Returns
    -------
    int
        The cursor after the last pair.
    """
    for k in range(picks.shape[0]):
        p = picks[k]
        bm_clear(words, summary, held[p])
        slot = bm_find_free_wrap(words, summary, cursor)  # never -1: one was just freed
        bm_set(words, summary, slot)
        held[p] = slot
        cursor = slot + 1
        if cursor == n:
            cursor = 0
    return cursor


class PyNodeCIDRSet:
    """The pure-Python baseline: a set of used indices, a cursor and ``ipaddress``."""

    def __init__(self, cluster: str, node_mask: int):
        self.net = ipaddress.ip_network(cluster)
        self.node_mask = node_mask
        self.shift = self.net.max_prefixlen - node_mask
        self.base = int(self.net.network_address)
        self.capacity = 2 ** (node_mask - self.net.prefixlen)
        self.used: set[int] = set()
        self.cursor = 0

    def allocate_next(self) -> str:
        if len(self.used) == self.capacity:
            raise RuntimeError("no remaining CIDRs")
        c = self.cursor
        while c in self.used:
            c = (c + 1) % self.capacity
        self.used.add(c)
        self.cursor = (c + 1) % self.capacity
        return str(ipaddress.ip_network((self.base + (c << self.shift), self.node_mask)))

    def release(self, cidr: str) -> None:
        net = ipaddress.ip_network(cidr)
        self.used.discard((int(net.network_address) - self.base) >> self.shift)


@pytest.fixture(scope="module")
def steady():
    """A set at 95 % after enough churn that the cursor is in steady state."""
    rng = np.random.default_rng(SEED)
    cs = CIDRSet(CLUSTER, NODE_MASK)
    cs.allocate_next_many(BLOCKS)
    cs.release_indices(rng.choice(BLOCKS, size=BLOCKS - HELD, replace=False))
    held = cs.allocated_indices()
    rng.shuffle(held)
    cs.cursor = churn_pairs(cs.words, cs.summary, cs.capacity, cs.cursor, held, rng.integers(0, HELD, size=BLOCKS))
    cs.recount()
    assert cs.allocated == HELD
    return SimpleNamespace(
        words=cs.words.copy(),
        summary=cs.summary.copy(),
        cursor=cs.cursor,
        held=held.copy(),
        held_cidrs=cs.cidrs_of(held).to_pylist(),
        picks_kernel=rng.integers(0, HELD, size=PAIRS_KERNEL),
        picks_python=rng.integers(0, HELD, size=PAIRS_PYTHON),
    )


def fresh_cidrset(state) -> CIDRSet:
    cs = CIDRSet(CLUSTER, NODE_MASK)
    cs.words[:] = state.words
    cs.summary[:] = state.summary
    cs.cursor = state.cursor
    cs.recount()
    return cs


def fresh_baseline(state) -> PyNodeCIDRSet:
    py = PyNodeCIDRSet(CLUSTER, NODE_MASK)
    py.used = set(state.held.tolist())
    py.cursor = state.cursor
    return py


def record(benchmark, impl: str, pairs: int) -> None:
    benchmark.extra_info.update(
        impl=impl,
        ops=pairs,
        op="pair = release(random held CIDR) + allocate_next",
        blocks=BLOCKS,
        occupancy=OCCUPANCY,
        upstream_go_ns=UPSTREAM_GO_NS,
    )


def test_churn_paths_agree(steady):
    """The three paths hand out the same CIDRs for the same picks (a plain test)."""
    picks = steady.picks_python[:3000]
    cs = fresh_cidrset(steady)
    held = steady.held.copy()
    cursor = churn_pairs(cs.words, cs.summary, cs.capacity, cs.cursor, held, picks)

    api = fresh_cidrset(steady)
    api_held = list(steady.held_cidrs)
    py = fresh_baseline(steady)
    py_held = list(steady.held_cidrs)
    for p in picks:
        api.release(api_held[p])
        api_held[p] = api.allocate_next()
        py.release(py_held[p])
        py_held[p] = py.allocate_next()
    assert cs.cidrs_of(held).to_pylist() == api_held == py_held
    assert cursor == api.cursor == py.cursor
    assert api.allocated == HELD


@pytest.mark.benchmark(group=GROUP)
def test_churn_kernel(benchmark, steady):
    picks = steady.picks_kernel
    fresh = fresh_cidrset(steady)
    churn_pairs(fresh.words, fresh.summary, fresh.capacity, fresh.cursor, steady.held.copy(), picks[:10])  # compile

    def setup():
        return (fresh_cidrset(steady), steady.held.copy()), {}

    def run(cs, held):
        cs.cursor = churn_pairs(cs.words, cs.summary, cs.capacity, cs.cursor, held, picks)
        return cs

    record(benchmark, "kernel", PAIRS_KERNEL)
    cs = benchmark.pedantic(run, setup=setup, rounds=40, warmup_rounds=1)
    assert cs.recount() == HELD
    record_speed(benchmark, PAIRS_KERNEL)


@pytest.mark.benchmark(group=GROUP)
def test_churn_python_api(benchmark, steady):
    picks = steady.picks_python.tolist()

    def setup():
        return (fresh_cidrset(steady), list(steady.held_cidrs)), {}

    def run(cs, held):
        for p in picks:
            cs.release(held[p])
            held[p] = cs.allocate_next()
        return cs

    record(benchmark, "python-api", PAIRS_PYTHON)
    cs = benchmark.pedantic(run, setup=setup, rounds=5, warmup_rounds=1)
    assert cs.allocated == HELD
    record_speed(benchmark, PAIRS_PYTHON)


@pytest.mark.benchmark(group=GROUP)
def test_churn_python_baseline(benchmark, steady):
    picks = steady.picks_python.tolist()

    def setup():
        return (fresh_baseline(steady), list(steady.held_cidrs)), {}

    def run(py, held):
        for p in picks:
            py.release(held[p])
            held[p] = py.allocate_next()
        return py

    record(benchmark, "python-baseline", PAIRS_PYTHON)
    py = benchmark.pedantic(run, setup=setup, rounds=5, warmup_rounds=1)
    assert len(py.used) == HELD
    record_speed(benchmark, PAIRS_PYTHON)
