"""A slow, obvious, set-based model of the bitmap kernels and of ``ipam_core.Bitmap``.

Every method here answers the question one of the kernels answers, by looking
at the slots one at a time with plain Python ints: no words, no summary, no
bit tricks. Tests run a kernel and this model side by side on the same state
and compare results *and* the resulting words and summary, which
:meth:`RefBitmap.words` / :meth:`RefBitmap.summary` build bit by bit from the
set.
"""

from __future__ import annotations

import numpy as np


class RefBitmap:
    """``n`` slots; ``used`` is a Python set of offsets; ``cursor`` is the next-fit rotor.

    Parameters
    ----------
    n : int
        Number of slots.
    used : iterable of int
        Offsets used at the start.
    """

    def __init__(self, n: int, used=()):
        self.n = n
        self.used = set(int(u) for u in used)
        assert all(0 <= u < n for u in self.used)
        self.cursor = 0

    # ---------------------------------------------------------------- layout
    def sizes(self) -> tuple[int, int]:
        nw = max(1, -(-self.n // 64))
        return nw, max(1, -(-nw // 64))

    def words(self) -> np.ndarray:
        """Leaf words: bit i set iff slot i is used or i >= n (pad)."""
        nw, _ = self.sizes()
        out = []
        for j in range(nw):
            w = 0
            for b in range(64):
                i = 64 * j + b
                if i >= self.n or i in self.used:
                    w |= 1 << b
            out.append(w)
        return np.array(out, dtype=np.uint64)

    def summary(self) -> np.ndarray:
        """Summary words: bit j set iff leaf word j is full or j >= nw (pad)."""
        nw, ns = self.sizes()
        words = [int(w) for w in self.words()]
        out = []
        for s in range(ns):
            w = 0
            for b in range(64):
                j = 64 * s + b
                if j >= nw or words[j] == (1 << 64) - 1:
                    w |= 1 << b
            out.append(w)
        return np.array(out, dtype=np.uint64)

    def copy(self) -> RefBitmap:
        other = RefBitmap(self.n, self.used)
        other.cursor = self.cursor
        return other

    # ---------------------------------------------------------------- queries
    def count(self) -> int:
        return len(self.used)

    def test(self, i: int) -> bool:
        return i in self.used

    def sorted_used(self) -> list[int]:
        return sorted(self.used)

    def find_free(self, start: int) -> int:
        """Lowest free slot >= start, or -1."""
        for i in range(max(start, 0), self.n):
            if i not in self.used:
                return i
        return -1

    def find_free_wrap(self, start: int) -> int:
        """First free slot in start, start+1, ..., n-1, 0, 1, ..., or -1."""
        for step in range(self.n):
            i = (start + step) % self.n
            if i not in self.used:
                return i
        return -1

    def block_is_free(self, start: int, order: int) -> bool:
        size = 1 << order
        return start + size <= self.n and all(i not in self.used for i in range(start, start + size))

    def free_blocks(self, order: int) -> int:
        """Aligned blocks of 2**order slots, inside [0, n), with no slot used."""
        size = 1 << order
        free = [i not in self.used for i in range(self.n)]
        return sum(1 for b in range(0, self.n - size + 1, size) if all(free[b : b + size]))

    def largest_free_block(self) -> int:
        """Largest order with a free aligned block, or -1."""
        for order in range(self.n.bit_length(), -1, -1):
            if self.free_blocks(order):
                return order
        return -1

    # ---------------------------------------------------------------- updates
    def set_many(self, offsets) -> int:
        flipped = 0
        for i in offsets:
            i = int(i)
            if i not in self.used:
                self.used.add(i)
                flipped += 1
        return flipped

    def clear_many(self, offsets) -> int:
        flipped = 0
        for i in offsets:
            i = int(i)
            if i in self.used:
                self.used.remove(i)
                flipped += 1
        return flipped

    def set_range(self, lo: int, hi: int) -> int:
        return self.set_many(range(lo, hi))

    def clear_range(self, lo: int, hi: int) -> int:
        return self.clear_many(range(lo, hi))

    def alloc_first(self, k: int) -> list[int]:
        """Up to k lowest free slots, taken."""
        out = []
        for i in range(self.n):
            if len(out) >= k:
                break
            if i not in self.used:
                out.append(i)
        self.used.update(out)
        return out

    def alloc_first_from(self, start: int, k: int) -> list[int]:
        """Up to k lowest free slots >= start, taken (no wrap)."""
        out = []
        for i in range(start, self.n):
            if len(out) >= k:
                break
            if i not in self.used:
                out.append(i)
        self.used.update(out)
        return out

    def alloc_next_fit(self, k: int) -> list[int]:
        """Up to k slots from the cursor, wrapping; cursor -> last taken + 1 (mod n)."""
        out = []
        while len(out) < k:
            i = self.find_free_wrap(self.cursor)
            if i < 0:
                break
            self.used.add(i)
            out.append(i)
            self.cursor = (i + 1) % self.n
        return out

    def alloc_scan(self, starts) -> list[int]:
        """For each start in turn, take the first free slot from it, wrapping; stop when full."""
        out = []
        for s in starts:
            if self.n == 0:
                break
            i = self.find_free_wrap(int(s) % self.n)
            if i < 0:
                break
            self.used.add(i)
            out.append(i)
        return out

    def alloc_block(self, order: int) -> int:
        """Take the lowest aligned free block of 2**order slots; -1 if none."""
        size = 1 << order
        for b in range(0, self.n - size + 1, size):
            if self.block_is_free(b, order):
                self.used.update(range(b, b + size))
                return b
        return -1

    def alloc_blocks(self, order: int, k: int) -> list[int]:
        out = []
        while len(out) < k:
            b = self.alloc_block(order)
            if b < 0:
                break
            out.append(b)
        return out

    def release_block(self, offset: int, order: int) -> int:
        return self.clear_range(offset, offset + (1 << order))


MASK64 = (1 << 64) - 1


def random_starts(seed: int, n: int, k: int) -> list[int]:
    """SplitMix64 draws mapped onto [0, n) by Lemire's method with rejection, in plain Python."""
    state = seed & MASK64
    threshold = (1 << 64) % n
    out = []
    while len(out) < k:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        x = state
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
        x ^= x >> 31
        product = x * n
        if product & MASK64 >= threshold:
            out.append(product >> 64)
    return out
