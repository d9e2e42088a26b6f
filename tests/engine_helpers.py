"""Small scenarios for engine tests, written as YAML like a user would write them."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import yaml

from ipam_core.scenario import load_scenario
from ipam_core.workloads.events import OP_NODE_ADD, OP_NODE_DEL, OP_POD_ADD, OP_POD_DEL, Workload

BASE = {
    "name": "t",
    "seed": 1,
    "duration": "10m",
    "sampleInterval": "10s",
    "modes": ["kubernetes", "cluster-pool", "multi-pool"],
    "cluster": {
        "nodes": 4,
        "scheduler": "spread",
        "kubelet": {"maxPods": 110},
        "kubeControllerManager": {"cluster-cidr": "10.244.0.0/16", "node-cidr-mask-size": 24},
    },
    "cilium": {
        "ipv4": {"enabled": True},
        "ipv6": {"enabled": False},
        "ipam": {
            "mode": "cluster-pool",
            "operator": {"clusterPoolIPv4PodCIDRList": ["10.0.0.0/16"], "clusterPoolIPv4MaskSize": 24},
        },
    },
    "workload": {"generator": "steady-churn", "podsPerNode": 20, "churnPerSecond": 1},
}


def merge(base: dict, patch: dict) -> dict:
    """Deep-merge ``patch`` into a copy of ``base`` (None deletes a key)."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def scenario(tmp_path: Path, patch: dict | None = None, name: str = "s.yaml"):
    """Write BASE merged with ``patch`` to a file and load it."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(merge(BASE, patch or {}), sort_keys=False))
    return load_scenario(str(path))


def workload(events: list[tuple], n_nodes: int, namespaces=("default",), pool_names=()) -> Workload:
    """A Workload from ``(time, op, node, pod)`` tuples (no pod annotations)."""
    ev = sorted(events, key=lambda e: e[0])
    t = np.array([e[0] for e in ev], dtype=np.float64)
    op = np.array([e[1] for e in ev], dtype=np.int8)
    node = np.array([e[2] for e in ev], dtype=np.int32)
    pod = np.array([e[3] for e in ev], dtype=np.int32)
    is_pod = (op == OP_POD_ADD) | (op == OP_POD_DEL)
    return Workload(
        time=t,
        op=op,
        node=node,
        pod=pod,
        namespace=np.where(is_pod, 0, -1),
        pool=np.full(t.size, -1),
        node_names=[f"node-{i}" for i in range(n_nodes)],
        namespaces=list(namespaces),
        pool_names=list(pool_names),
        n_pods=int(pod.max()) + 1 if pod.size and pod.max() >= 0 else 0,
    )


def nodes_then_pods(n_nodes: int, n_pods: int, start: float = 5.0, gap: float = 0.01, pinned=None):
    """Node adds at t=0, then pod adds (optionally all pinned to one node)."""
    events = [(0.0, OP_NODE_ADD, i, -1) for i in range(n_nodes)]
    events += [(start + p * gap, OP_POD_ADD, -1 if pinned is None else pinned, p) for p in range(n_pods)]
    return events
