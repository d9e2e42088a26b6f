"""Small, seeded engine-like output for the trace and plot tests (not collected by pytest)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ipam_core.trace import nodes_table, run_metadata, trace_table

MODES = ["kubernetes", "cluster-pool"]
#: Every registered mode's name (tests/test_plot_layout.py checks this against ipam_core.modes.REGISTRY).
ALL_MODES = ["kubernetes", "cluster-pool", "multi-pool", "gke", "eni", "aws-vpc-cni", "azure", "crd", "calico"]
NODE_NAMES = ["node-a", "node-b", "node-c"]
SCENARIO_TEXT = "name: tiny\nnodes: 3\n"

# Contract (docs/dev/contracts.md section 2), typed out independently of ipam_core.trace.schema.
TRACE_UNITS = {
    "mode": "", "family": "", "time_s": "s", "nodes": "nodes", "nodes_ready": "nodes",
    "pods_running": "pods", "pods_pending": "pods", "pods_failed": "pods", "pods_failed_free_elsewhere": "pods",
    "addrs_pool": "addresses", "addrs_carved": "addresses", "addrs_reserved": "addresses",
    "addrs_used": "addresses", "addrs_idle": "addresses", "addrs_uncarved": "addresses",
    "node_cidrs": "CIDRs", "carvable_node_cidrs": "CIDRs", "largest_free_block": "addresses",
    "cidr_carves": "operations", "cidr_releases": "operations", "ip_allocs": "operations",
    "ip_alloc_failures": "operations",
    "warm_addrs_per_node": "addresses/node", "interfaces": "interfaces", "prefixes": "prefixes",
    "frag_failures": "operations", "cloud_api_attach": "operations", "cloud_api_assign": "operations",
    "cloud_api_release": "operations", "cloud_api_prefix": "operations", "cloud_api_throttled": "operations",
    "cloud_api_delay_ms": "ms", "pods_started": "pods", "pod_start_wait_ms": "ms",
}  # fmt: skip
NODES_UNITS = {
    "mode": "", "time_s": "s", "node": "", "family": "", "cidrs": "", "used": "addresses", "free": "addresses",
    "reserved": "addresses", "pending": "pods", "status_error": "",
}  # fmt: skip


def run(modes=MODES, seed=7, command=("ipam-bench", "run", "tiny.yaml")):
    """Run parameters as the CLI would record them."""
    return run_metadata("tiny", SCENARIO_TEXT, seed, list(modes), list(command))


def trace_columns(modes=MODES, families=(4, 6), n_samples=12, seed=7):
    """Plausible per-(mode, family, sample) counters; rows grouped by mode, then family."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list[np.ndarray]] = {}

    def add(name, values):
        cols.setdefault(name, []).append(np.asarray(values))

    time = np.arange(n_samples, dtype=np.float64) * 30.0
    for m, _ in enumerate(modes):
        for family in families:
            cidr_size = 256 if family == 4 else 65536
            pool_cidrs = 16
            nodes = np.minimum(1 + np.arange(n_samples) // 2, 5)
            node_cidrs = nodes + m  # the second mode carves one CIDR more
            running = np.minimum(rng.integers(0, 200, n_samples).cumsum() // n_samples, node_cidrs * 200)
            pending = rng.integers(0, 5, n_samples)
            running[0], pending[0] = 0, 150  # the start-up spike: every pod waits before nodes have CIDRs
            failed = np.cumsum(rng.integers(0, 3, n_samples))
            carved = node_cidrs * cidr_size
            reserved = node_cidrs * 4
            add("mode", np.full(n_samples, m, dtype=np.int8))
            add("family", np.full(n_samples, family, dtype=np.int8))
            add("time_s", time)
            add("nodes", nodes)
            add("nodes_ready", nodes - (pending > 3))
            add("pods_running", running)
            add("pods_pending", pending)
            add("pods_failed", failed)
            add("pods_failed_free_elsewhere", failed // 2)
            add("addrs_pool", np.full(n_samples, pool_cidrs * cidr_size))
            add("addrs_carved", carved)
            add("addrs_reserved", reserved)
            add("addrs_used", running)
            add("addrs_idle", carved - reserved - running)
            add("addrs_uncarved", (pool_cidrs - node_cidrs) * cidr_size)
            add("node_cidrs", node_cidrs)
            add("carvable_node_cidrs", pool_cidrs - node_cidrs)
            add("largest_free_block", (pool_cidrs - node_cidrs) // 2 * cidr_size)
            add("cidr_carves", np.maximum.accumulate(node_cidrs))
            add("cidr_releases", np.zeros(n_samples))
            add("ip_allocs", np.cumsum(rng.integers(0, 20, n_samples)))
            add("ip_alloc_failures", failed * 3)
            for cloud_column in ("warm_addrs_per_node", "interfaces", "prefixes", "frag_failures", "cloud_api_attach",
                                 "cloud_api_assign", "cloud_api_release", "cloud_api_prefix", "cloud_api_throttled",
                                 "cloud_api_delay_ms"):
                add(cloud_column, np.zeros(n_samples))  # pool modes report 0
            add("pods_started", np.cumsum(rng.integers(0, 10, n_samples)))
            add("pod_start_wait_ms", np.cumsum(rng.integers(0, 5000, n_samples)))
    dtypes = {"mode": np.int8, "family": np.int8, "time_s": np.float64, "warm_addrs_per_node": np.float64}
    return {name: np.concatenate(parts).astype(dtypes.get(name, np.int64)) for name, parts in cols.items()}


def nodes_columns(modes=MODES, families=(4, 6), n_samples=3, seed=7):
    """Per-(mode, node, family, sample) rows plus CIDRs as flat values and int32 offsets."""
    rng = np.random.default_rng(seed)
    rows = [
        (m, n, f, s)
        for m in range(len(modes))
        for n in range(len(NODE_NAMES))
        for f in families
        for s in range(n_samples)
    ]
    mode, node, family, sample = (np.array(c) for c in zip(*rows))
    n_cidrs = rng.integers(0, 3, len(rows))
    values = []
    for node_id, fam, k in zip(node, family, n_cidrs):
        for j in range(k):
            values.append(f"10.{node_id}.{j}.0/24" if fam == 4 else f"fd00:{node_id}:{j}::/112")
    offsets = np.concatenate([[0], np.cumsum(n_cidrs)]).astype(np.int32)
    used = rng.integers(0, 100, len(rows))
    columns = {
        "mode": mode.astype(np.int8),
        "time_s": sample.astype(np.float64) * 60.0,
        "node": node.astype(np.int32),
        "family": np.where(family == 4, 4, 6).astype(np.int8),
        "used": used.astype(np.int64),
        "free": (n_cidrs * 252 - np.minimum(used, n_cidrs * 252)).astype(np.int64),
        "reserved": (n_cidrs * 4).astype(np.int64),
        "pending": rng.integers(0, 3, len(rows)).astype(np.int64),
        "status_error": np.array(["" if k else "no more CIDRs" for k in n_cidrs], dtype=object),
    }
    return columns, pa.array(values, type=pa.string()), offsets


def build_trace(modes=MODES, families=(4, 6), seed=7):
    return trace_table(trace_columns(modes, families, seed=seed), run(modes, seed))


def build_nodes(modes=MODES, families=(4, 6), seed=7):
    columns, values, offsets = nodes_columns(modes, families, seed=seed)
    return nodes_table(columns, run(modes, seed), cidrs_values=values, cidrs_offsets=offsets, node_names=NODE_NAMES)
