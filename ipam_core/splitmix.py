"""The engine's random stream for Python callers: SplitMix64 draws outside an engine state.

The engine keeps one SplitMix64 stream per run in its state's counters
(:mod:`ipam_core.engine.rng`: seeded with the low 64 bits of the scenario's seed,
one ``draw(cnt, bound)`` per random start). :class:`SplitMix64Stream` holds such a
stream for code that is not the engine, such as the migration's agents, and draws
from it with the same kernel (:func:`ipam_core.kernels.rng.uniform_below`): the
same seed and the same bounds in the same order give the engine's values.
"""

from __future__ import annotations

import numpy as np

from ipam_core.kernels.rng import seed_bits, uniform_below_many

_BOUND_LIMIT = 1 << 32


class SplitMix64Stream:
    """A seeded SplitMix64 stream with the part of ``numpy.random.Generator.integers`` a pod range uses.

    Parameters
    ----------
    seed : int, default 0
        Seed; its low 64 bits are the first state, as the engine seeds a run
        (:func:`ipam_core.engine.rng.seed_state`).

    Notes
    -----
    :class:`~ipam_core.podiprange.PodIPRange` accepts a stream as its ``seed``
    and draws its random starts from it, one value per address taken, like the
    engine's ``_take_address``. Several ranges may share one stream: each draw
    advances it, so the values depend on the order of the calls, as the
    engine's do on the order of its events.
    """

    __slots__ = ("_state",)

    def __init__(self, seed: int = 0):
        self._state = np.array([seed_bits(seed)], dtype=np.uint64)

    @property
    def state(self) -> int:
        """The current SplitMix64 state (64 bits, as an unsigned int)."""
        return int(self._state[0])

    def integers(self, low: int, high: int, size: int | None = None, dtype=np.int64):
        """Uniform integers in ``[0, high)``, drawn as the engine draws a random start.

        Parameters
        ----------
        low : int
            Must be 0 (the only lower bound a random start has).
        high : int
            Exclusive bound, ``0 < high < 2**32``.
        size : int, optional
            How many; one Python int when omitted.
        dtype : numpy dtype, default int64
            Accepted for ``Generator.integers`` compatibility; the values are int64.

        Returns
        -------
        int or numpy.ndarray of int64

        Raises
        ------
        ValueError
            ``low`` is not 0 or ``high`` is outside ``(0, 2**32)``.
        """
        if low != 0 or not 0 < high < _BOUND_LIMIT:
            raise ValueError(f"bounds [{low}, {high}) are not [0, n) with 0 < n < 2**32")
        out = np.empty(1 if size is None else int(size), dtype=np.int64)
        uniform_below_many(self._state, int(high), out)
        return int(out[0]) if size is None else out

    def __repr__(self) -> str:
        return f"SplitMix64Stream(state={self.state:#018x})"


__all__ = ["SplitMix64Stream"]
