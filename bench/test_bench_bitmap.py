"""``ipam_core.Bitmap`` against what a user would write with a Python ``set``.

One pytest-benchmark group per operation, each at 2**16 and 2**24 slots and at
0 / 50 / 90 / 99 % fill:

=====================  ==============================================  ======================
group                  kernel (``impl="kernel"``)                      one op
=====================  ==============================================  ======================
bitmap-first-fit       ``allocate_first(k)``                           one slot
bitmap-next-fit        ``allocate_next_fit(k)``, cursor at n/2         one slot
bitmap-random-scan     ``allocate_random(k, seed)`` (draws included)   one slot
bitmap-block-order4    ``allocate_blocks(4, k)``                       one block of 16
bitmap-block-order8    ``allocate_blocks(8, k)``                       one block of 256
bitmap-release         ``release(offsets)``, k random used offsets     one slot
=====================  ==============================================  ======================

A round takes ``k = min(65536, what is free)`` (free slots, free aligned
blocks, or used slots for release); ``extra_info["ops"] = k``. The
``python-baseline`` of each group runs the very same ``k`` operations on the
same state with a ``set`` of used offsets and a loop. Both must do the same
work: at 2**16 slots a batch of 65,536 takes the bitmap from its fill to
full, so later operations scan much further than the first ones, and a
baseline timed over fewer operations would be timed on an emptier bitmap.

The fill is made once per state, seeded and untimed: a random choice of used
slots for the slot groups; for the block groups a random choice of used
*aligned blocks of the benchmarked order* (a pool carved into equal node
CIDRs). A random slot fill of 50 % or more leaves no aligned free block of 16
or 256 slots at all, so there would be nothing to measure.

Every state is a module-scoped fixture parameter, so pytest runs all tests of
one state together and builds each large Python set once, then drops it.
Mutating rounds start from a copy into one scratch bitmap (kernel) or undo the
previous round's changes (baseline), so every round sees the same state.

Cache: the setup rewrites the bitmap just before each round, so the kernel
rounds run with its words hot in cache (2 MiB of words at 2**24 slots). Cold
words cost more where access is random: a random-order release at 2**24 takes
about 8 ns per slot instead of 3 with the words in DRAM.
"""

from __future__ import annotations

import random
import shlex
import sys
from dataclasses import dataclass, field

import numpy as np
import pytest

from ipam_core import Bitmap
from ipam_core.errors import RangeFull

SIZES = (2**16, 2**24)
FILLS = (0.0, 0.5, 0.9, 0.99)
BATCH = 65_536
SEED = 20_240_612
ROUNDS = 5
SLOTS = "slots"  # fill kind: random used slots

# The JSON of pytest-benchmark does not keep the command line; summarize.py reads it from here.
_PROG = [sys.executable, "-m", "pytest"] if sys.argv[0].endswith("__main__.py") else sys.argv[:1]
COMMAND = shlex.join(_PROG + sys.argv[1:])


# ------------------------------------------------------------------------ the baseline
class SetBitmap:
    """The pure-Python baseline: a ``set`` of used offsets and plain loops.

    Same semantics as :class:`ipam_core.Bitmap` (lowest first, next fit from
    a cursor with wrap, random start then forward scan with wrap, aligned
    blocks, idempotent release), written the obvious way.
    """

    def __init__(self, n: int, used: set[int]):
        self.n = n
        self.used = used
        self.cursor = 0

    def _need(self, k: int) -> None:
        if k > self.n - len(self.used):
            raise RangeFull(f"cannot allocate {k} slots")

    def allocate_first(self, k: int) -> list[int]:
        self._need(k)
        out = []
        i = 0
        while len(out) < k:
            if i not in self.used:
                self.used.add(i)
                out.append(i)
            i += 1
        return out

    def allocate_next_fit(self, k: int) -> list[int]:
        self._need(k)
        out = []
        i = self.cursor
        while len(out) < k:
            if i not in self.used:
                self.used.add(i)
                out.append(i)
            i += 1
            if i == self.n:
                i = 0
        if out:
            self.cursor = i
        return out

    def allocate_random(self, k: int, rng: random.Random) -> list[int]:
        self._need(k)
        out = []
        for _ in range(k):
            i = rng.randrange(self.n)
            while i in self.used:
                i += 1
                if i == self.n:
                    i = 0
            self.used.add(i)
            out.append(i)
        return out

    def allocate_blocks(self, order: int, k: int) -> list[int]:
        size = 1 << order
        out = []
        for start in range(0, self.n - size + 1, size):
            if len(out) == k:
                break
            if self.used.isdisjoint(range(start, start + size)):
                self.used.update(range(start, start + size))
                out.append(start)
        if len(out) < k:
            for start in out:
                self.used.difference_update(range(start, start + size))
            raise RangeFull(f"only {len(out)} free blocks of {size}")
        return out

    def release(self, offsets: list[int]) -> int:
        freed = 0
        for o in offsets:
            if o in self.used:
                self.used.remove(o)
                freed += 1
        return freed


# ------------------------------------------------------------------------ states
@dataclass
class Filled:
    """One fill of one size: the kernel bitmap and, on demand, the baseline's set."""

    n: int
    fill: float
    kind: str | int  # SLOTS, or the block order
    bitmap: Bitmap
    _set: set[int] | None = field(default=None, repr=False)

    def used_set(self) -> set[int]:
        if self._set is None:
            self._set = set(self.bitmap.to_offsets().tolist())
        return self._set


def _pick(rng: np.random.Generator, total: int, chosen: int) -> np.ndarray:
    """``chosen`` distinct ints from ``range(total)``, sorted (fast at any ratio)."""
    if chosen <= total // 2:
        return np.sort(rng.choice(total, chosen, replace=False))
    keep = np.ones(total, dtype=bool)
    keep[rng.choice(total, total - chosen, replace=False)] = False
    return np.flatnonzero(keep)


def make_filled(n: int, fill: float, kind: str | int) -> Filled:
    """Seeded fill: random used slots, or random used aligned blocks of order ``kind``."""
    rng = np.random.default_rng([SEED, n, round(fill * 100), 99 if kind == SLOTS else kind])
    bm = Bitmap(n)
    if kind == SLOTS:
        bm.allocate(_pick(rng, n, round(fill * n)))
    else:
        size = 1 << kind
        blocks = _pick(rng, n // size, round(fill * (n // size)))
        bm.allocate((blocks[:, None] * size + np.arange(size)).ravel())
    return Filled(n, fill, kind, bm)


class State:
    """Everything one (size, fill) parameter needs, built lazily, one set alive at a time."""

    def __init__(self, n: int, fill: float):
        self.n, self.fill = n, fill
        self._kinds: dict = {}

    def get(self, kind: str | int) -> Filled:
        if kind not in self._kinds:
            for other in self._kinds.values():
                other._set = None  # tests run kind by kind: free the big sets early
            self._kinds[kind] = make_filled(self.n, self.fill, kind)
        return self._kinds[kind]


STATE_PARAMS = [(n, f) for n in SIZES for f in FILLS]


def warm_up_baseline() -> None:
    """Call every baseline method a dozen times on a tiny set.

    CPython 3.11 specialises a function's bytecode only after about 8 calls;
    without this the first state's baseline rounds run unspecialised, 2x slower.
    """
    for _ in range(12):
        sb = SetBitmap(64, {5})
        sb.allocate_first(2)
        sb.allocate_next_fit(2)
        sb.allocate_random(2, random.Random(0))
        sb.allocate_blocks(2, 2)
        sb.release([0, 1, 5])


@pytest.fixture(scope="module", params=STATE_PARAMS, ids=lambda p: f"n{p[0]}-fill{round(p[1] * 100)}")
def state(request):
    Bitmap.warmup()
    warm_up_baseline()
    yield State(*request.param)


IMPLS = ["kernel", "python-baseline"]


def record(benchmark, impl: str, filled: Filled, ops: int, what: str) -> None:
    benchmark.extra_info.update(
        impl=impl,
        ops=ops,
        op=what,
        n=filled.n,
        fill=filled.fill,
        fill_kind=str(filled.kind),
        command=COMMAND,
    )


def run_kernel(benchmark, filled: Filled, k: int, action, prepare=None):
    """Time ``action(bitmap)`` over rounds, each on the filled state copied into one scratch bitmap.

    Copying into the same arrays every round (rather than a fresh allocation)
    keeps page faults and allocator effects out of the rounds; it also means
    every round starts with the words hot in cache.
    """
    scratch = filled.bitmap.copy()

    def setup():
        bm = filled.bitmap.copy(out=scratch)
        if prepare is not None:
            prepare(bm)
        return (bm,), {}

    return benchmark.pedantic(action, setup=setup, rounds=ROUNDS, warmup_rounds=1)


def run_baseline(benchmark, filled: Filled, action, undo, prepare=None):
    """Time ``action(set_bitmap)`` over rounds on the shared set, undoing each round before the next."""
    sb = SetBitmap(filled.n, filled.used_set())
    last: list = []

    def setup():
        if last:
            undo(sb, last.pop())
        if prepare is not None:
            prepare(sb)
        return (sb,), {}

    def timed(bm):
        result = action(bm)
        last.append(result)
        return result

    try:
        return benchmark.pedantic(timed, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    finally:
        if last:
            undo(sb, last.pop())


def undo_allocation(sb: SetBitmap, taken: list[int]) -> None:
    sb.used.difference_update(taken)


# ------------------------------------------------------------------------ slot allocation
@pytest.mark.benchmark(group="bitmap-first-fit")
@pytest.mark.parametrize("impl", IMPLS)
def test_first_fit(benchmark, state, impl):
    filled = state.get(SLOTS)
    k = min(BATCH, filled.bitmap.free)
    if impl == "kernel":
        record(benchmark, impl, filled, k, "allocate_first: one slot")
        out = run_kernel(benchmark, filled, k, lambda bm: bm.allocate_first(k))
    else:
        record(benchmark, impl, filled, k, "set + loop from 0: one slot")
        out = run_baseline(benchmark, filled, lambda sb: sb.allocate_first(k), undo_allocation)
    assert len(out) == k


@pytest.mark.benchmark(group="bitmap-next-fit")
@pytest.mark.parametrize("impl", IMPLS)
def test_next_fit(benchmark, state, impl):
    filled = state.get(SLOTS)
    k = min(BATCH, filled.bitmap.free)
    middle = filled.n // 2  # from the middle, so a batch that needs it wraps

    def at_middle(b):
        b.cursor = middle

    if impl == "kernel":
        record(benchmark, impl, filled, k, "allocate_next_fit from n/2: one slot")
        out = run_kernel(benchmark, filled, k, lambda bm: bm.allocate_next_fit(k), prepare=at_middle)
    else:
        record(benchmark, impl, filled, k, "set + loop from a cursor at n/2, wrapping: one slot")
        out = run_baseline(
            benchmark, filled, lambda sb: sb.allocate_next_fit(k), undo_allocation, prepare=at_middle
        )
    assert len(out) == k


@pytest.mark.benchmark(group="bitmap-random-scan")
@pytest.mark.parametrize("impl", IMPLS)
def test_random_scan(benchmark, state, impl):
    filled = state.get(SLOTS)
    k = min(BATCH, filled.bitmap.free)
    if impl == "kernel":
        record(benchmark, impl, filled, k, "allocate_random (starts drawn inside): one slot")
        out = run_kernel(benchmark, filled, k, lambda bm: bm.allocate_random(k, SEED))
    else:
        record(benchmark, impl, filled, k, "set + random.randrange start + forward scan: one slot")
        out = run_baseline(
            benchmark, filled, lambda sb: sb.allocate_random(k, random.Random(SEED)), undo_allocation
        )
    assert len(out) == k


@pytest.mark.benchmark(group="bitmap-release")
@pytest.mark.parametrize("impl", IMPLS)
def test_release(benchmark, state, impl):
    filled = state.get(SLOTS)
    k = min(BATCH, filled.bitmap.used)
    if k == 0:
        pytest.skip("nothing to release at 0 % fill")
    rng = np.random.default_rng([SEED, filled.n, round(filled.fill * 100), 7])
    offsets = rng.choice(filled.bitmap.to_offsets(), k, replace=False)  # random order
    if impl == "kernel":
        record(benchmark, impl, filled, k, "release of random used offsets: one slot")
        freed = run_kernel(benchmark, filled, k, lambda bm: bm.release(offsets))
    else:
        chosen = offsets[:k].tolist()
        record(benchmark, impl, filled, k, "set + loop of `in`/remove: one slot")

        def release(sb):
            sb.release(chosen)
            return chosen

        freed = len(run_baseline(benchmark, filled, release, lambda sb, back: sb.used.update(back)))
    assert freed == k


# ------------------------------------------------------------------------ aligned blocks
def _bench_blocks(benchmark, state, impl, order):
    filled = state.get(order)
    k = min(BATCH, filled.bitmap.free_blocks(order))
    if impl == "kernel":
        record(benchmark, impl, filled, k, f"allocate_blocks: one aligned block of {1 << order}")
        out = run_kernel(benchmark, filled, k, lambda bm: bm.allocate_blocks(order, k))
    else:
        record(benchmark, impl, filled, k, f"set + loop over aligned starts, isdisjoint: one block of {1 << order}")

        def undo(sb, starts):
            for s in starts:
                sb.used.difference_update(range(s, s + (1 << order)))

        out = run_baseline(benchmark, filled, lambda sb: sb.allocate_blocks(order, k), undo)
    assert len(out) == k


@pytest.mark.benchmark(group="bitmap-block-order4")
@pytest.mark.parametrize("impl", IMPLS)
def test_block_order4(benchmark, state, impl):
    _bench_blocks(benchmark, state, impl, 4)


@pytest.mark.benchmark(group="bitmap-block-order8")
@pytest.mark.parametrize("impl", IMPLS)
def test_block_order8(benchmark, state, impl):
    _bench_blocks(benchmark, state, impl, 8)
