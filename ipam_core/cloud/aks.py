"""AKS pod subnet IPAM (Azure CNI with ``--pod-subnet-id``): dynamic batches or static /28 blocks.

Dynamic IP allocation (``podIPAllocationMode: DynamicIndividual``): the node's
CNS asks for pod addresses in batches and keeps at least half a batch free
(Azure/azure-container-networking ``cns/ipampool`` ``calculateTargetIPCount``,
docs ``feature/ipammath``; AKS docs: "16 IPs at start and another 16 whenever
fewer than 8 are unallocated"). Static block allocation
(``podIPAllocationMode: StaticBlock``): the node gets whole /28 blocks sized for
``maxPods`` plus one reserved address when it joins (AKS
``concepts-network-azure-cni-pod-subnet.md``). Figures are the rows of
``cloud_pod_cidr_limits.csv``.
"""

from __future__ import annotations

import math

from ipam_core.cloud.limits import PREFIX_SIZE
from ipam_core.kernels._jit import kjit

#: CNS scaler defaults for AKS pod subnet: BatchSize 16, RequestThresholdPercent 50, MaxIPCount 250.
DYNAMIC_BATCH = 16
DYNAMIC_REQUEST_THRESHOLD_PERCENT = 50
DYNAMIC_MAX_IPS = 250
#: cns/ipampool ``DefaultRefreshDelay``: the pool monitor reconciles every second.
CNS_REFRESH_S = 1.0
#: Static block: addresses reserved per node out of its blocks.
STATIC_RESERVED_PER_NODE = 1


@kjit
def dynamic_target(demand, batch, request_threshold_percent, max_ips):
    """Addresses CNS requests for a node (``calculateTargetIPCount``, clamped at the max).

    Parameters
    ----------
    demand : int
        Addresses assigned to pods on the node.
    batch : int
        Scaler ``BatchSize`` (16 on AKS).
    request_threshold_percent : int
        Scaler ``RequestThresholdPercent`` (50): the buffer is that share of a batch.
    max_ips : int
        Scaler ``MaxIPCount`` (250).

    Returns
    -------
    int
        ``batch * ceil(buffer + demand / batch)``, at most ``max_ips``: the pool grows by
        a batch when fewer than ``buffer * batch`` addresses are free and shrinks back
        to the same target when pods leave (the function is idempotent).
    """
    buffer = request_threshold_percent / 100.0
    target = batch * int(math.ceil(buffer + demand / batch))
    return min(target, max_ips)


def static_blocks(max_pods: int) -> int:
    """/28 blocks a node gets in static block mode.

    Parameters
    ----------
    max_pods : int
        The node pool's max pods.

    Returns
    -------
    int
        ``ceil((max_pods + 1) / 16)``: room for every pod plus the reserved address.
    """
    return math.ceil((max_pods + STATIC_RESERVED_PER_NODE) / PREFIX_SIZE)


def static_wasted(max_pods: int) -> int:
    """Addresses of a node's blocks that neither a pod nor the reservation can use.

    Returns
    -------
    int
        ``16 * blocks - 1 - max_pods`` (0 when ``max_pods = 16 N - 1``).
    """
    return static_blocks(max_pods) * PREFIX_SIZE - STATIC_RESERVED_PER_NODE - max_pods

