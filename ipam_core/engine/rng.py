"""The engine's random stream: SplitMix64 kept in the state's counters.

Each :class:`~ipam_core.engine.state.State` carries its own generator state
(``cnt[K_RNG]``, seeded from the scenario's seed by ``build_state``), so two
simulations can be advanced in any interleaving and each still gives the
same trace for its seed. Drawing costs about 2 ns against about 9 ns for
Numba's ``np.random.randint`` on its process-wide Mersenne Twister.
"""

from __future__ import annotations

import numpy as np

from ipam_core.engine.tables import K_RNG
from ipam_core.kernels._jit import kjit
from ipam_core.kernels.rng import uniform_below


def seed_state(seed: int) -> int:
    """The ``cnt[K_RNG]`` value for ``seed``: its low 64 bits, as a signed int64."""
    bits = int(seed) % (1 << 64)
    return bits - (1 << 64) if bits >= 1 << 63 else bits


@kjit(inline=True)
def draw(cnt, bound):
    """A uniform integer in ``[0, bound)`` for ``0 < bound < 2**32`` from the stream in ``cnt``.

    The same draw as the bitmap kernels' random starts
    (:func:`ipam_core.kernels.rng.uniform_below`), on the state's stream.

    Parameters
    ----------
    cnt : numpy.ndarray of int64
        The state's counters; ``cnt[K_RNG]`` holds the generator state and is advanced.
    bound : int
        Exclusive upper bound.

    Returns
    -------
    int
    """
    state, value = uniform_below(np.uint64(cnt[K_RNG]), np.uint64(bound))
    cnt[K_RNG] = np.int64(state)
    return value
