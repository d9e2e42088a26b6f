"""Which way of handing a compiled loop its mode's rules survives Numba's on-disk cache?

Run twice in a row with the same cache folder (each run is a new process)::

    python docs/dev/spikes/hook_cache.py /tmp/hook-cache
    python docs/dev/spikes/hook_cache.py /tmp/hook-cache

The second run prints cache hits for the overload mechanism and misses for the dispatcher-argument
mechanism (see docs/dev/engine-rooms.md). It writes a throwaway module next to the cache, because
Numba caches only functions defined in files.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

MODULE = '''
from collections import namedtuple
import numba as nb
from numba.core import types
from numba.extending import overload

EniState = namedtuple("EniState", ["x", "warm"])
PoolState = namedtuple("PoolState", ["x", "cidr"])
HOOKS = {}

def take_address(st, i):
    raise NotImplementedError("called from compiled code only")

@overload(take_address)
def _take_address(st, i):
    if isinstance(st, (types.NamedTuple, types.NamedUniTuple)):
        impl = HOOKS[st.instance_class]
        return lambda st, i: impl(st, i)

@nb.njit(cache=True)
def eni_take(st, i):
    return st.x[i] + st.warm[0]

@nb.njit(cache=True)
def pool_take(st, i):
    return st.x[i] * st.cidr[0]

HOOKS[EniState] = eni_take
HOOKS[PoolState] = pool_take

@nb.njit(cache=True)
def loop_overload(st):
    s = 0
    for i in range(st.x.shape[0]):
        s += take_address(st, i)
    return s

@nb.njit(cache=True)
def loop_argument(st, hook):
    s = 0
    for i in range(st.x.shape[0]):
        s += hook(st, i)
    return s
'''


def main(folder: str) -> None:
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    (root / "hook_spike_module.py").write_text(MODULE)
    import numba
    import numpy as np

    numba.config.CACHE_DIR = str(root / "cache")
    sys.path.insert(0, str(root))
    m = importlib.import_module("hook_spike_module")
    x = np.arange(10)
    eni, pool = m.EniState(x, np.array([1])), m.PoolState(x, np.array([2]))
    m.loop_overload(eni), m.loop_overload(pool)
    m.loop_argument(eni, m.eni_take), m.loop_argument(pool, m.pool_take)
    for loop in (m.loop_overload, m.loop_argument):
        hits, misses = sum(loop.stats.cache_hits.values()), sum(loop.stats.cache_misses.values())
        print(f"{loop.__name__}: {hits} cache hits, {misses} misses")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/hook-cache")
