"""Upper bounds on every size a user can ask for, each with the reason a message gives.

The bounds are fixed numbers, not derived from the free memory of the machine at hand,
so a scenario accepted on a laptop is accepted in CI and the other way round. They sit
far above any real cluster (Kubernetes' scalability thresholds in
``/work/shared/data/k8s_scalability_thresholds.csv``: 5,000 nodes, 150,000 pods,
110 pods per node) and far below what would exhaust memory or never finish, so a typo
(``1e12`` for ``12``, hours for seconds) is refused before any work starts.
docs/scenario.md lists the same table.
"""

from __future__ import annotations

from ipam_core.errors import ConfigError

#: Nodes in a cluster (``cluster.nodes``, ``maxNodes``): 20x Kubernetes' 5,000-node threshold.
MAX_NODES = 100_000
MAX_NODES_WHY = "20x Kubernetes' 5,000-node scalability threshold"

#: Pods per node (``cluster.kubelet.maxPods``, ``podsPerNode``): above the largest published
#: per-node limit (AWS VPC CNI eni-max-pods.txt: 1,514 for x8i.metal) and a /21 node CIDR.
MAX_PODS_PER_NODE = 2_048
MAX_PODS_PER_NODE_WHY = "above every published kubelet maxPods (AWS eni-max-pods.txt tops at 1,514)"

#: Pods alive at once (nodes x podsPerNode, ``scale-out`` ``pods``): the engine keeps ~166 B per
#: live pod (results/memory-scaling.md), so 20 M pods are ~3.3 GB, a fixed cap of about a seventh
#: of the 24 GiB CI machine and 133x Kubernetes' 150,000-pod threshold.
MAX_LIVE_PODS = 20_000_000
MAX_LIVE_PODS_WHY = "~166 B of engine state per live pod: 20 M pods are ~3.3 GB (fixed cap, not free RAM)"

#: Seeds: the engine's SplitMix64 state and the trace metadata store the seed as a signed 64-bit int.
MAX_SEED = 2**63 - 1
SEED_WHY = "the engine stores the seed as a signed 64-bit integer"

#: Simulated time: one year covers any recorded trace; finer limits come from the sample count.
MAX_DURATION_S = 366 * 86_400.0
MAX_DURATION_WHY = "one year of simulated time"

#: Trace rows per mode (duration / sampleInterval): ~30 counters x 8 B, so 1 M samples are ~0.25 GB.
MAX_SAMPLES = 1_000_000
#: Node-sample rows per mode (nodes x duration / nodeSampleInterval): ~40 B each, so 50 M rows ~2 GB.
MAX_NODE_SAMPLES = 50_000_000

#: Rates (``churnPerSecond``, ``qps``, ``fillQps``): 10,000x the 20/s churn SLO; the event count
#: (rate x duration) is bounded by ``ipam_core.workloads.generators.MAX_EVENTS`` too.
MAX_RATE = 200_000.0
MAX_RATE_WHY = "10,000x Kubernetes' 20/s steady-state churn"

#: ``migrate --plan``: Kubernetes' 5,000-node threshold. The planner grows about linearly (~2 ms of CPU per
#: node with 30 pods each; results/bench-migration.md), so 5,000 nodes plan in ~10 s; 10,000,000 nodes used
#: to run until killed.
MAX_PLAN_NODES = 5_000
MAX_PLAN_NODES_WHY = ("Kubernetes' 5,000-node scalability threshold; the planner takes ~2 ms per node, about 10 s "
                      "at 5,000 (results/bench-migration.md)")


def check_count(name: str, value: object, lo: int, hi: int, why: str = "") -> int:
    """A command-line integer within ``[lo, hi]``, or a one-line error naming the flag.

    Parameters
    ----------
    name : str
        How the message names the value (``--nodes``).
    value : object
        The value given.
    lo, hi : int
        Inclusive bounds.
    why : str
        Reason for ``hi``, appended in parentheses.

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        ``--nodes 0: expected an integer from 1 to 5,000 (reason)``.
    """
    reason = f" ({why})" if why else ""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} {value!r}: expected an integer from {lo:,} to {hi:,}{reason}")
    return value


def check_seed(name: str, value: object) -> int:
    """A seed from 0 to 2^63 - 1 (see :data:`MAX_SEED`).

    Parameters
    ----------
    name : str
        How the message names the value (``--seed``).
    value : object

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        Not an integer, negative, or 2^63 or more.
    """
    return check_count(name, value, 0, MAX_SEED, f"below 2^63: {SEED_WHY}")
