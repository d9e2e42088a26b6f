"""Which CIDR set a node CIDR is carved from: the first of the list that is not full.

Over plain arrays, so that the engine's compiled carving (``engine/core.py``
``_carve_slot``, over its set table) and the migration's operators
(``migration/operator.py``, over :class:`~ipam_core.cidrset.CIDRSet` objects)
take the same set; inside the set, :func:`ipam_core.kernels.scan.bm_take_next_fit`
takes the CIDR.
"""

from __future__ import annotations

from ipam_core.kernels._jit import kjit


@kjit(inline=True)
def first_open_set(allocated, capacity, lo, hi):
    """The first set in ``[lo, hi)`` with a free node CIDR.

    Follows cilium ``pkg/ipam/allocator/podcidr/podcidr.go``
    (``allocateFirstFreeCIDR``: the first ``clusterPoolIPv4PodCIDRList``
    entry that is not full), cilium
    ``pkg/ipam/allocator/multipool/pool_allocator.go`` (the pool's first
    CIDR that is not full) and kubernetes
    ``pkg/controller/nodeipam/ipam/range_allocator.go`` (one set per family).

    Parameters
    ----------
    allocated, capacity : numpy.ndarray of int64
        Node CIDRs in use and in all, per set (any stride).
    lo, hi : int
        The sets of one pool and family, in list order.

    Returns
    -------
    int
        The set's index, or -1 when every set in the range is full.
    """
    for s in range(lo, hi):
        if allocated[s] < capacity[s]:
            return s
    return -1
