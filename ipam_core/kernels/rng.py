"""Seeded random draws for the kernels: SplitMix64 and unbiased bounded integers.

The arithmetic wraps modulo ``2**64`` on purpose (``numpy.uint64``); without
the JIT, NumPy warns about that wrap, which changes no result.
"""

from __future__ import annotations

import numpy as np
from numba.extending import overload

from ipam_core.kernels._jit import ZERO, kjit

_SPLITMIX_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SPLITMIX_M1 = np.uint64(0xBF58476D1CE4E5B9)
_SPLITMIX_M2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_THIRTY_TWO = np.uint64(32)
_LOW64 = (1 << 64) - 1


def seed_bits(seed):
    """The low 64 bits of ``seed`` as a ``numpy.uint64``: a negative seed wraps modulo ``2**64``.

    Compiled, ``np.uint64(seed)`` wraps an ``int64`` by itself; plain NumPy
    refuses a negative Python int, so without the JIT this masks first.

    Parameters
    ----------
    seed : int or numpy integer
        The seed, ``-2**63 <= seed < 2**64``.

    Returns
    -------
    numpy.uint64
    """
    return np.uint64(int(seed) & _LOW64)


@overload(seed_bits, jit_options={"cache": True})
def _seed_bits_jit(seed):
    def impl(seed):
        return np.uint64(seed)

    return impl


@kjit(inline=True)
def splitmix64(state):
    """One step of SplitMix64 (Steele, Lea and Flood 2014).

    Parameters
    ----------
    state : numpy.uint64
        Generator state.

    Returns
    -------
    tuple of numpy.uint64
        ``(new_state, output)``.
    """
    state = state + _SPLITMIX_GAMMA
    x = state
    x = (x ^ (x >> np.uint64(30))) * _SPLITMIX_M1
    x = (x ^ (x >> np.uint64(27))) * _SPLITMIX_M2
    return state, x ^ (x >> np.uint64(31))


@kjit(inline=True)
def uniform_below(state, bound):
    """A uniform integer in ``[0, bound)`` for ``0 < bound < 2**32`` (Lemire 2019, with rejection).

    A draw whose low half falls below ``2**64 mod bound``
    (:func:`rejection_threshold`) would bias the result and is drawn again.
    That threshold is below ``bound``, so it takes its division only in the
    rare case the low half is below ``bound`` itself.

    Parameters
    ----------
    state : numpy.uint64
        SplitMix64 state.
    bound : numpy.uint64
        Exclusive bound.

    Returns
    -------
    tuple
        ``(new_state, value)`` with ``value`` an int64.
    """
    while True:
        state, x = splitmix64(state)
        low = x * bound
        if low >= bound or low >= rejection_threshold(bound):
            high = ((x >> _THIRTY_TWO) * bound + (((x & _LOW32) * bound) >> _THIRTY_TWO)) >> _THIRTY_TWO
            return state, np.int64(high)


@kjit(inline=True)
def rejection_threshold(bound):
    """``2**64 mod bound``: :func:`uniform_below` rejects draws whose low half falls below it."""
    return (ZERO - bound) % bound


@kjit
def uniform_below_many(state, bound, out):
    """:func:`uniform_below` drawn ``out.shape[0]`` times from the stream in ``state[0]``, which is advanced.

    The engine's draw (:func:`ipam_core.engine.rng.draw`) kept outside an
    engine state: from the same 64 bits of state, ``k`` calls of ``draw``
    with one bound give these ``k`` values and leave the same state.

    Parameters
    ----------
    state : numpy.ndarray of uint64, shape (1,)
        SplitMix64 state; holds the advanced state on return.
    bound : int
        Exclusive bound, ``0 < bound < 2**32``.
    out : numpy.ndarray of int64
        Receives one value per element.
    """
    s = state[0]
    b = np.uint64(bound)
    for i in range(out.shape[0]):
        s, out[i] = uniform_below(s, b)
    state[0] = s


@kjit
def bm_random_starts(seed, n, out):
    """The start offsets :func:`bm_alloc_random` draws, for replay or checking.

    Parameters
    ----------
    seed : int or numpy.uint64
        Seed (pass a ``numpy.uint64`` for values of 2**63 and above); a
        negative seed stands for its low 64 bits (:func:`seed_bits`).
    n : int
        Exclusive bound, ``0 < n < 2**32``.
    out : numpy.ndarray of int64
        Receives one start per element.
    """
    state = seed_bits(seed)
    bound = np.uint64(n)
    for i in range(out.shape[0]):
        state, out[i] = uniform_below(state, bound)
