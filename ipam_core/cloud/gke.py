"""GKE flexible pod CIDR: the per-node pod range that follows the node pool's max pods.

A VPC-native GKE node gets a pod range holding at least twice its max pods, a
/28 for 8 pods up to a /24 for 65–110 (cloud.google.com
``kubernetes-engine/docs/how-to/flexible-pod-cidr``). The table is the ``gke``
``standard_vpc_native`` rows of ``cloud_pod_cidr_limits.csv``; the row for
111–256 pods (/23) is derived from the 2× rule for newer versions and is marked
so in the file.
"""

from __future__ import annotations

from ipam_core.cloud.limits import pod_cidr_rows
from ipam_core.errors import ConfigError

#: GKE's default max pods per node (Standard clusters).
DEFAULT_MAX_PODS = 110
#: Autopilot's fixed max pods per node.
AUTOPILOT_MAX_PODS = 32


def max_pods_table(include_derived: bool = True) -> list[tuple[int, int, int]]:
    """``(max pods low, max pods high, node mask)`` rows of the GKE table, smallest range first.

    Parameters
    ----------
    include_derived : bool
        Keep the row the stored page does not state (111–256 pods → /23).

    Returns
    -------
    list of tuple of int
    """
    rows = []
    for row in pod_cidr_rows():
        if row.provider != "gke" or row.ipam_mode != "standard_vpc_native":
            continue
        if not include_derived and "DERIVED" in row.allocation_rule:
            continue
        rows.append((row.max_pods_lo, row.max_pods_hi, int(row.per_node_block.lstrip("/"))))
    return sorted(rows)


def node_mask_for_max_pods(max_pods: int, include_derived: bool = True) -> int:
    """The IPv4 prefix length of a GKE node's pod range.

    Parameters
    ----------
    max_pods : int
        ``--max-pods-per-node`` of the node pool.
    include_derived : bool
        Accept 111–256 pods (/23), from the 2× rule rather than the stored page.

    Returns
    -------
    int
        28 for 8 pods, 27 for 9–16, 26 for 17–32, 25 for 33–64, 24 for 65–110
        (23 for 111–256).

    Raises
    ------
    ConfigError
        ``max_pods`` outside the table (GKE accepts 8 to 110, or 256 on newer versions).
    """
    table = max_pods_table(include_derived)
    for lo, hi, mask in table:
        if lo <= max_pods <= hi:
            return mask
    raise ConfigError(f"gke.maxPodsPerNode {max_pods} is outside GKE's flexible pod CIDR table; expected "
                      f"{table[0][0]} to {table[-1][1]}")
