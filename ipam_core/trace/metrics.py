"""Figures derived from trace columns that the summary table and the plots both use."""

from __future__ import annotations

import numpy as np

__all__ = ["node_cidr_size", "startup_end"]


def startup_end(pending: np.ndarray, running: np.ndarray) -> int:
    """Index of the first sample after start-up: the first at which as many pods run as wait.

    A scenario that creates its pods at t=0 has every one of them waiting at
    the first sample, before any node has a CIDR; that spike says nothing about
    the IPAM mode. Start-up ends at the first sample where ``running >=
    pending`` (a workload that ramps up from zero ends it at once).

    Parameters
    ----------
    pending, running : numpy.ndarray
        ``pods_pending`` and ``pods_running`` of one mode and family, in time order.

    Returns
    -------
    int
        Index of that sample, or 0 when running never catches up with pending
        (start-up never ends: the whole run counts).
    """
    caught_up = np.flatnonzero(np.asarray(running) >= np.asarray(pending))
    return int(caught_up[0]) if len(caught_up) else 0


def node_cidr_size(carved: np.ndarray, node_cidrs: np.ndarray) -> int | None:
    """Addresses per node CIDR when every carved CIDR of the series has one size.

    Parameters
    ----------
    carved, node_cidrs : numpy.ndarray
        ``addrs_carved`` and ``node_cidrs`` of one mode and family.

    Returns
    -------
    int or None
        The common size (a power of two), or None when there is no node CIDR
        or the sizes differ (several pools with different masks, cloud modes
        that mix prefixes and single addresses).
    """
    held = np.asarray(node_cidrs) > 0
    if not held.any():
        return None
    carved, node_cidrs = np.asarray(carved)[held], np.asarray(node_cidrs)[held]
    size = int(carved[0] // node_cidrs[0])
    if size <= 0 or size & (size - 1) or not np.array_equal(carved, node_cidrs * size):
        return None
    return size
