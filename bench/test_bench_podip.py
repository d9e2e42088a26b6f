"""Pod-IP churn at 90 % fill of a /16 (65,534 usable addresses).

One operation is a *pair*: release a random held address, then allocate one
with upstream's random-start scan (``randomScanStrategy``: draw a start in
``[0, max)``, take the first free offset scanning forward with wrap). Cilium's
Go code takes 478 ns per pair on this kind of machine
(``upstream-observed.md``). Three implementations, same workload:

* ``kernel``: one seeded ``rng.integers`` call for all starts, then a compiled
  loop of ``bm_clear`` + one ``bm_alloc_scan`` step (``bm_find_free_wrap`` +
  ``bm_set``) over ``PodIPRange.words``;
* ``python-api``: one ``PodIPRange.release(str)`` + ``allocate_next() -> str``
  per pair;
* ``python-baseline``: what a user would write: a ``set`` of used offsets,
  ``random.Random`` for the start and ``ipaddress`` for the strings.

The start draws are the allocator's own randomness and are timed in every
implementation; which address to release is workload randomness, drawn once
(seeded) and not timed.
"""

from __future__ import annotations

import ipaddress
import random
from types import SimpleNamespace

import numpy as np
import pytest

from ipam_core import PodIPRange
from ipam_core.kernels._jit import kjit
from ipam_core.kernels.bitmap import bm_clear, bm_take_scan
from bench_util import record_speed

CIDR = "10.0.0.0/16"
USABLE = 2**16 - 2
FILL = 0.90
HELD = int(USABLE * FILL)
UPSTREAM_GO_NS = {"cilium": 478}
GROUP = "podip-churn-90pct-slash16"
SEED = 20240612

PAIRS_KERNEL = 200_000
PAIRS_PYTHON = 20_000


@kjit
def churn_pairs(words, summary, n, held, picks, starts):
    """Release ``held[picks[k]]`` then take the first free slot from ``starts[k]``.

    Parameters
    ----------
    words, summary : numpy.ndarray of uint64
        The range's bitmap.
    n : int
        Usable addresses (``max``).
    held : numpy.ndarray of int64
        Offsets currently held (updated in place).
    picks : numpy.ndarray of int64
        Positions in ``held`` to release, one per pair.
    starts : numpy.ndarray of int64
        Scan starts in ``[0, n)``, one per pair.

    Returns
    -------
    int
        Pairs done (all of them: a slot was always just freed).
    """
    for k in range(picks.shape[0]):
        p = picks[k]
        bm_clear(words, summary, held[p])
        # the body of bm_alloc_scan for one start (calling it on 1-element
        # slices costs ~10 % more per pair)
        slot = bm_take_scan(words, summary, starts[k])
        if slot < 0:
            return k
        held[p] = slot
    return picks.shape[0]


class PyPodIPRange:
    """The pure-Python baseline: a set of used offsets, ``random`` and ``ipaddress``."""

    def __init__(self, cidr: str, seed: int):
        net = ipaddress.ip_network(cidr)
        self.base = int(net.network_address) + 1
        self.max = net.num_addresses - 2
        self.used: set[int] = set()
        self.rng = random.Random(seed)

    def allocate_next(self) -> str:
        if len(self.used) >= self.max:
            raise RuntimeError("range is full")
        start = self.rng.randrange(self.max)
        for i in range(self.max):
            at = (start + i) % self.max
            if at not in self.used:
                self.used.add(at)
                return str(ipaddress.IPv4Address(self.base + at))
        raise RuntimeError("range is full")

    def release(self, ip: str) -> None:
        offset = int(ipaddress.IPv4Address(ip)) - self.base
        if 0 <= offset < self.max:
            self.used.discard(offset)


@pytest.fixture(scope="module")
def filled():
    """A /16 at 90 %, filled by upstream's random scan from a seeded generator."""
    r = PodIPRange(CIDR, seed=SEED)
    held = r.allocate_next_many(HELD)
    assert r.capacity == USABLE and r.used == HELD
    rng = np.random.default_rng(SEED + 1)
    return SimpleNamespace(
        words=r.words.copy(),
        summary=r.summary.copy(),
        held=held.copy(),
        held_ips=r.addresses(held).to_pylist(),
        picks_kernel=rng.integers(0, HELD, size=PAIRS_KERNEL),
        picks_python=rng.integers(0, HELD, size=PAIRS_PYTHON),
    )


def fresh_range(state, seed: int = SEED) -> PodIPRange:
    r = PodIPRange(CIDR, seed=seed)
    r.words[:] = state.words
    r.summary[:] = state.summary
    r.recount()
    return r


def fresh_baseline(state, seed: int = SEED) -> PyPodIPRange:
    py = PyPodIPRange(CIDR, seed)
    py.used = set(state.held.tolist())
    return py


def record(benchmark, impl: str, pairs: int) -> None:
    benchmark.extra_info.update(
        impl=impl,
        ops=pairs,
        op="pair = release(random held IP) + allocate_next (random start scan)",
        usable=USABLE,
        fill=FILL,
        upstream_go_ns=UPSTREAM_GO_NS,
    )


def test_churn_paths_agree(filled):
    """Kernel loop and the Python API give the same addresses for the same starts."""
    picks = filled.picks_python[:3000]
    starts = np.random.default_rng(3).integers(0, USABLE, size=picks.shape[0])
    r = fresh_range(filled)
    held = filled.held.copy()
    assert churn_pairs(r.words, r.summary, r.capacity, held, picks, starts) == picks.shape[0]

    api = fresh_range(filled)
    api_held = list(filled.held_ips)
    for p, s in zip(picks.tolist(), starts.tolist()):
        api.release(api_held[p])
        api_held[p] = api.allocate_next_with_start(s)
    assert r.addresses(held).to_pylist() == api_held
    assert sorted(api.allocated_offsets().tolist()) == sorted(held.tolist())
    assert api.used == HELD


@pytest.mark.benchmark(group=GROUP)
def test_churn_kernel(benchmark, filled):
    picks = filled.picks_kernel
    warm = fresh_range(filled)
    churn_pairs(warm.words, warm.summary, warm.capacity, filled.held.copy(), picks[:10], picks[:10])  # compile

    def setup():
        return (fresh_range(filled), filled.held.copy()), {}

    def run(r, held):
        starts = r.rng.integers(0, r.capacity, size=picks.shape[0])  # timed: the allocator's own draws
        return r, churn_pairs(r.words, r.summary, r.capacity, held, picks, starts)

    record(benchmark, "kernel", PAIRS_KERNEL)
    r, done = benchmark.pedantic(run, setup=setup, rounds=40, warmup_rounds=1)
    assert done == PAIRS_KERNEL
    assert r.allocated_offsets().shape[0] == HELD
    record_speed(benchmark, PAIRS_KERNEL)


@pytest.mark.benchmark(group=GROUP)
def test_churn_python_api(benchmark, filled):
    picks = filled.picks_python.tolist()

    def setup():
        return (fresh_range(filled), list(filled.held_ips)), {}

    def run(r, held):
        for p in picks:
            r.release(held[p])
            held[p] = r.allocate_next()
        return r

    record(benchmark, "python-api", PAIRS_PYTHON)
    r = benchmark.pedantic(run, setup=setup, rounds=5, warmup_rounds=1)
    assert r.used == HELD and r.allocated_offsets().shape[0] == HELD
    record_speed(benchmark, PAIRS_PYTHON)


@pytest.mark.benchmark(group=GROUP)
def test_churn_python_baseline(benchmark, filled):
    picks = filled.picks_python.tolist()

    def setup():
        return (fresh_baseline(filled), list(filled.held_ips)), {}

    def run(py, held):
        for p in picks:
            py.release(held[p])
            held[p] = py.allocate_next()
        return py

    record(benchmark, "python-baseline", PAIRS_PYTHON)
    py = benchmark.pedantic(run, setup=setup, rounds=5, warmup_rounds=1)
    assert len(py.used) == HELD
    record_speed(benchmark, PAIRS_PYTHON)
