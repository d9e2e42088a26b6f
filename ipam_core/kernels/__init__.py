"""Compiled kernels of ipam_core, importable on their own.

The ``bm_*`` functions work on a two-level ``uint64`` bitmap (see
:mod:`ipam_core.kernels.layout` for the layout). They never raise and never
allocate: they return counts, offsets or -1, so callers can use them inside
their own compiled loops. :class:`ipam_core.Bitmap` is the checked Python API
over them.

Modules, by topic: :mod:`~ipam_core.kernels.bits` (bit counts and prefetch
hints), :mod:`~ipam_core.kernels.layout` (sizes and setup),
:mod:`~ipam_core.kernels.slots` (set, clear, test and count given slots),
:mod:`~ipam_core.kernels.scan` (find and take free slots: first fit, next fit,
scans from given or random starts), :mod:`~ipam_core.kernels.blocks` (aligned
blocks), :mod:`~ipam_core.kernels.rng` (SplitMix64 draws),
:mod:`~ipam_core.kernels.carve` (which CIDR set a node CIDR comes from),
:mod:`~ipam_core.kernels.arena` (one slot per Python call),
:mod:`~ipam_core.kernels.fastcall` (the arena kernels bound to their arrays,
callable from Python without Numba's dispatcher) and
:mod:`~ipam_core.kernels.addrfmt` (address texts).
"""

from ipam_core.kernels.blocks import (
    bm_alloc_block,
    bm_alloc_blocks,
    bm_free_blocks,
    bm_largest_free_block,
    bm_release_block,
    bm_release_blocks,
)
from ipam_core.kernels.carve import (
    first_open_set,
)
from ipam_core.kernels.layout import (
    bm_init,
    bm_sizes,
)
from ipam_core.kernels.rng import (
    bm_random_starts,
)
from ipam_core.kernels.scan import (
    bm_alloc_first,
    bm_alloc_first_from,
    bm_alloc_next_fit,
    bm_alloc_next_fit_batch,
    bm_alloc_random,
    bm_alloc_scan,
    bm_find_free,
    bm_find_free_wrap,
    bm_take_next_fit,
    bm_take_scan,
)
from ipam_core.kernels.slots import (
    bm_clear,
    bm_clear_many,
    bm_clear_many_branchless,
    bm_clear_many_rebuild,
    bm_clear_range,
    bm_count,
    bm_set,
    bm_set_many,
    bm_set_range,
    bm_test,
    bm_test_many,
    bm_used_offsets,
)

__all__ = [
    "bm_alloc_block",
    "bm_alloc_blocks",
    "bm_alloc_first",
    "bm_alloc_first_from",
    "bm_alloc_next_fit",
    "bm_alloc_next_fit_batch",
    "bm_alloc_random",
    "bm_alloc_scan",
    "bm_clear",
    "bm_clear_many",
    "bm_clear_many_branchless",
    "bm_clear_many_rebuild",
    "bm_clear_range",
    "bm_count",
    "bm_find_free",
    "bm_find_free_wrap",
    "bm_free_blocks",
    "bm_init",
    "bm_largest_free_block",
    "bm_random_starts",
    "bm_release_block",
    "bm_release_blocks",
    "bm_set",
    "bm_set_many",
    "bm_set_range",
    "bm_sizes",
    "bm_take_next_fit",
    "bm_take_scan",
    "bm_test",
    "bm_test_many",
    "bm_used_offsets",
    "first_open_set",
]
