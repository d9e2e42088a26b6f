"""Which pool each pod draws its addresses from.

Pool selection (cilium ``pkg/ipam/metadata/manager.go``) depends only on the
pod's namespace and its ``ipam.cilium.io/ip-pool`` annotation here, so it is
decided once per distinct (namespace, annotation) pair and spread to every
pod with numpy; the engine never calls Python per pod.
"""

from __future__ import annotations

import numpy as np

from ipam_core.engine import tables as T
from ipam_core.engine.layout import Layout
from ipam_core.errors import IPAMBenchError
from ipam_core.workloads.events import OP_POD_ADD, Workload

POOL_ANNOTATION = "ipam.cilium.io/ip-pool"


def resolve_pod_pools(state, layout: Layout, scenario, workload: Workload) -> None:
    """Fill the per-pod-id pool table (``state.core.pod_tables.pod_pool``) for multi-pool.

    Parameters
    ----------
    state : ipam_core.engine.state.State
        Its ``pod_pool`` table is updated in place.
    layout : Layout
        The mode's pools.
    scenario : ipam_core.scenario.Scenario
        Namespaces, pools and the selection rule.
    workload : Workload
        Pod namespaces and annotations.

    Notes
    -----
    Modes with a single pool leave every pod on pool 0. A pod whose selection
    fails (an unknown pool, several matching selectors, ``require-pool-match``)
    gets pool -1: its allocations fail, as upstream's do.
    """
    if layout.policy != T.POLICY_MULTI_POOL:
        return
    adds = np.flatnonzero(workload.op == OP_POD_ADD)  # indices: a boolean gather costs 5x more per column
    pod = workload.pod.take(adds)
    n_annotations = len(workload.pool_names) + 1
    # one key per (namespace, annotation or none); few distinct, so a lookup table indexed by key
    key = workload.namespace.take(adds)
    if n_annotations > 1:
        key = key.astype(np.int64) * n_annotations + (workload.pool.take(adds) + 1)
    n_keys = len(workload.namespaces) * n_annotations
    keys = np.flatnonzero(np.bincount(key, minlength=n_keys)) if key.size else key
    pool_ids = {name: i for i, name in enumerate(layout.pool_names)}
    chosen = np.empty(max(n_keys, 1), dtype=np.int16)
    for family in layout.families:
        for k in keys.tolist():
            ns_name = workload.namespaces[k // n_annotations]
            ann = k % n_annotations - 1
            annotations = {POOL_ANNOTATION: workload.pool_names[ann]} if ann >= 0 else {}
            try:
                name = scenario.select_pool(4 if family == 0 else 6, ns_name, pod_annotations=annotations)
            except IPAMBenchError:
                chosen[k] = -1
                continue
            chosen[k] = pool_ids.get(name, -1)
        state.core.pod_tables.pod_pool[pod, family] = chosen[key]
