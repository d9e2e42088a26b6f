"""Cilium's pre-allocation watermarks for CRD-backed IPAM (ENI, Azure, ``crd``).

The operator keeps each CiliumNode's pool of individual addresses between
watermarks taken from the node's ``spec.ipam`` (cilium ``pkg/ipam/node.go``
``calculateNeededIPs``, ``calculateExcessIPs``, ``determineMaintenanceAction``;
defaults in ``pkg/defaults/defaults.go``). The functions are compiled so the
engine's loop and the tests call the same code.

Terms, as upstream uses them: ``available`` is the number of addresses in the
node's pool (``len(spec.ipam.pool)``), ``used`` the number the agent reports in
use (``len(status.ipam.used)``, router and health addresses included).
"""

from __future__ import annotations

from ipam_core.cloud.limits import PREFIX_SIZE, InstanceLimits
from ipam_core.kernels._jit import kjit

#: cilium ``pkg/defaults/defaults.go`` ``IPAMPreAllocation`` (CiliumNode ``spec.ipam.pre-allocate`` when 0).
DEFAULT_PRE_ALLOCATE = 8
#: ``spec.ipam.min-allocate``: 0, no floor.
DEFAULT_MIN_ALLOCATE = 0
#: ``spec.ipam.max-allocate``: 0, meaning the instance's limit.
DEFAULT_MAX_ALLOCATE = 0
#: ``spec.ipam.max-above-watermark``: 0.
DEFAULT_MAX_ABOVE_WATERMARK = 0
#: cilium-operator ``--excess-ip-release-delay`` (seconds).
DEFAULT_EXCESS_IP_RELEASE_DELAY_S = 180.0
#: cilium ``defaults.ENIFirstInterfaceIndex``: eth0 holds pod addresses too.
DEFAULT_FIRST_INTERFACE_INDEX = 0


@kjit
def needed_ips(available, used, pre_allocate, min_allocate, max_allocate):
    """Addresses the operator must add to a node's pool (``calculateNeededIPs``).

    Parameters
    ----------
    available : int
        Addresses in the node's pool.
    used : int
        Addresses in use on the node.
    pre_allocate : int
        ``spec.ipam.pre-allocate``: free addresses to keep.
    min_allocate : int
        ``spec.ipam.min-allocate``: pool floor (0 = none).
    max_allocate : int
        ``spec.ipam.max-allocate``: pool ceiling (0 = none; the caller passes the
        instance limit when the spec leaves it at 0, as ``getMaxAllocate`` does).

    Returns
    -------
    int
        ``pre_allocate - (available - used)``, raised to ``min_allocate - available``
        when a floor is set, cut so ``available + needed <= max_allocate``, at least 0.

    Notes
    -----
    Follows cilium ``pkg/ipam/node.go`` ``calculateNeededIPs``.
    """
    needed = pre_allocate - (available - used)
    if min_allocate > 0:
        needed = max(needed, min_allocate - available)
    if max_allocate > 0 and available + needed > max_allocate:
        needed = max_allocate - available
    return max(needed, 0)


@kjit
def excess_ips(available, used, pre_allocate, min_allocate, max_above_watermark):
    """Free addresses above the watermarks (``calculateExcessIPs``).

    Parameters
    ----------
    available, used, pre_allocate, min_allocate, max_above_watermark : int
        As in :func:`needed_ips`; ``used`` counts whole /28 prefixes under prefix
        delegation (``GetUsedIPWithPrefixes``).

    Returns
    -------
    int
        0 while both ``used`` and ``available`` are within the bootstrap allocation
        ``min_allocate + max_above_watermark``; otherwise
        ``available - used - pre_allocate - max_above_watermark``, at least 0.

    Notes
    -----
    Follows cilium ``pkg/ipam/node.go`` ``calculateExcessIPs``. Excess is released
    only when release is enabled and after ``--excess-ip-release-delay``.
    """
    floor = min_allocate + max_above_watermark
    if used <= floor and available <= floor:
        return 0
    return max(available - used - pre_allocate - max_above_watermark, 0)


@kjit
def max_ips_to_allocate(needed, max_above_watermark, pending_pods):
    """How many addresses one allocation may add (``determineMaintenanceAction``).

    Parameters
    ----------
    needed : int
        From :func:`needed_ips`.
    max_above_watermark : int
        ``spec.ipam.max-above-watermark``.
    pending_pods : int
        Pods on the node in phase Pending (the operator watches Pods).

    Returns
    -------
    int
        ``needed + max_above_watermark + surge`` with ``surge = pending - needed`` when
        more pods are pending than needed, else 0; 0 when nothing is needed (the
        operator then takes no allocation action at all).
    """
    if needed <= 0:
        return 0
    surge = pending_pods - needed if pending_pods > needed else 0
    return needed + max_above_watermark + surge


@kjit
def used_with_prefixes(single_used, prefixes_with_use):
    """Used addresses counted for excess under prefix delegation (``GetUsedIPWithPrefixes``).

    Parameters
    ----------
    single_used : int
        Used addresses that are plain secondary IPs.
    prefixes_with_use : int
        /28 prefixes holding at least one used address.

    Returns
    -------
    int
        ``single_used + 16 * prefixes_with_use``: a prefix counts whole once any of its
        addresses is in use (cilium ``pkg/aws/eni/node.go``).
    """
    return single_used + PREFIX_SIZE * prefixes_with_use


def eni_max_allocatable(limits: InstanceLimits, first_interface_index: int = DEFAULT_FIRST_INTERFACE_INDEX,
                        prefix_delegation: bool = False) -> int:
    """Addresses an instance can hold for pods in Cilium ENI mode (``GetMaximumAllocatableIPv4``).

    Parameters
    ----------
    limits : InstanceLimits
    first_interface_index : int
        ``spec.eni.first-interface-index``: ENIs below it hold no pod addresses.
    prefix_delegation : bool
        Whether the node takes /28 prefixes (only Nitro and bare metal do).

    Returns
    -------
    int
        ``(enis - first_interface_index) * (ipv4_per_eni - 1)``, times 16 with prefix
        delegation; 0 (no limit upstream) when the index is past the ENI count.

    Notes
    -----
    Follows cilium ``pkg/aws/eni/node.go``.
    """
    if limits.enis < first_interface_index:
        return 0
    per = limits.secondary_per_eni * (PREFIX_SIZE if prefix_delegation and limits.supports_prefix_delegation else 1)
    return (limits.enis - first_interface_index) * per


def eni_default_pre_allocate(limits: InstanceLimits,
                             first_interface_index: int = DEFAULT_FIRST_INTERFACE_INDEX) -> int:
    """The ``spec.ipam.pre-allocate`` the operator writes when it is 0 (``GetMinimumAllocatableIPv4``).

    Returns
    -------
    int
        ``min(8, (enis - first_interface_index) * (ipv4_per_eni - 1))``; 0 when the
        index leaves no ENI for pods (cilium ``pkg/aws/eni/node.go``).
    """
    if first_interface_index >= limits.enis:
        return 0
    return min(DEFAULT_PRE_ALLOCATE, (limits.enis - first_interface_index) * limits.secondary_per_eni)


def pool_minimum(min_allocate: int, pre_allocate: int, health_checking: bool) -> int:
    """Addresses the agent waits for before it starts (crd.go ``hasMinimumIPsInPool``).

    Returns
    -------
    int
        ``min-allocate`` if set, else ``pre-allocate`` if set, else 2 with health
        checking (router and health addresses) and 1 without.
    """
    if min_allocate:
        return min_allocate
    if pre_allocate:
        return pre_allocate
    return 2 if health_checking else 1
