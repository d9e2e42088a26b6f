"""Engine state memory against nodes, live pods, pod ids and bitmap bits, per mode.

Command (writes ``results/memory-scaling.csv`` and ``results/memory-scaling.md``)::

    /work/main/.venv/bin/python bench/memory_scaling.py --out-dir results

For each mode, node count, pods per node, churn length and node-CIDR mask of
a small grid it runs the engine on a ``steady-churn`` workload
(``ipam_core.pipeline.run.Simulation``, advanced past the last event: the
timer heap and the node-timer rings start small and grow while the run goes
on, engine/timer_room.py; every other table is sized up front) and records
``sum(a.nbytes for a in state)`` at the end, split by what each array grows
with:

* ``pod_bytes``: the pods table, ``pod_since``, the pod-retry ring (sized at a
  retry per live pod) and the timer heap;
* ``node_bytes``: node rows, each node's CIDR list, per node x pool x family
  demand counters, the scheduler's count tree and buckets, the rings of node timers;
* ``bitmap_bytes``: node-CIDR bitmaps of every pool CIDR (one bit per node
  CIDR) and the pod-address bitmaps of every node CIDR that can be live at
  once (one bit per usable address, padded to 64);
* ``slot_bytes``: the table of live node CIDRs and its free stacks;
* ``other_bytes``: configuration and counters.

The Markdown file ends with the bytes per unit fitted over the grid.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import shlex
import sys
from pathlib import Path

import numpy as np

from ipam_core.atomic import atomic_write_text
from ipam_core.engine import tables as T
from ipam_core.pipeline.run import Simulation
from ipam_core.engine.state import CORE_FIELDS, named_arrays, state_nbytes
from ipam_core.scenario import parse_scenario, scenario_for_mode
from ipam_core.workloads import generate

MODES = ("kubernetes", "cluster-pool", "multi-pool")
NODES = (100, 1_000, 5_000)
PODS_PER_NODE = (30, 110)
CHURN_S = (0.0, 1_800.0)  # steady churn at 20 replacements per second after the fill
NODE_MASKS = (24, 22)
CHURN_PER_S = 20.0

GROUPS = {
    "pod_bytes": ("pods", "pod_since", "pod_failed_at", "pod_row", "pod_pool", "retry_t", "retry_row", "retry_seq", "heap_t", "heap_i"),
    "node_bytes": ("nodes", "node_slots", "np_inuse", "np_pending", "np_requested", "tree_cnt",
                   "bucket_words", "bucket_summary", "bucket_count", "node_ring_t", "node_ring_i", "node_ring_pos",
                   "quiet"),
    "bitmap_bytes": ("set_words", "set_summary", "ip_words", "ip_summary"),
    "slot_bytes": ("slots", "slot_stack", "chunk_stack"),
    "other_bytes": ("sets", "pools", "pool_free", "pool_carvable", "cfg", "icfg", "cnt", "next_timer"),
}
COLUMNS = ("mode", "nodes", "pods_per_node", "live_pods", "churn_s", "pod_ids", "node_mask", "node_cidr_bits",
           "pod_bitmap_bits", "state_bytes", *GROUPS)


def scenario(nodes: int, pods_per_node: int, churn_s: float, node_mask: int):
    return parse_scenario({
        "name": "memory-scaling",
        "seed": 1,
        "duration": max(churn_s, 1.0),
        "sampleInterval": max(churn_s, 1.0),
        "cluster": {"nodes": nodes, "kubelet": {"maxPods": 110},
                    "kubeControllerManager": {"cluster-cidr": "10.0.0.0/8", "node-cidr-mask-size": node_mask}},
        "cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["10.0.0.0/8"],
                                         "clusterPoolIPv4MaskSize": node_mask}}},
        "workload": {"generator": "steady-churn", "podsPerNode": pods_per_node, "churnPerSecond": CHURN_PER_S},
    })


def measure(mode: str, nodes: int, pods_per_node: int, churn_s: float, node_mask: int) -> dict:
    """One grid point: the state's bytes, split by what each array grows with."""
    sc = scenario_for_mode(scenario(nodes, pods_per_node, churn_s, node_mask), mode)
    w = generate(sc.workload, nodes=nodes, max_pods=110, namespaces=["default"], duration_s=sc.duration_s,
                 seed=sc.seed)
    sim = Simulation(sc, w, mode)
    sim.advance(math.nextafter(float(w.time[-1]), math.inf))  # the timer tables at the size the run grew them to
    st = sim.state
    arrays = named_arrays(st)
    row = {
        "mode": mode,
        "nodes": nodes,
        "pods_per_node": pods_per_node,
        "live_pods": nodes * pods_per_node,
        "churn_s": churn_s,
        "pod_ids": w.n_pods,
        "node_mask": node_mask,
        "node_cidr_bits": int(st.core.cidr.sets[:, T.S_N].sum()),
        "pod_bitmap_bits": int(st.core.cidr.ip_words.size * 64),
        "state_bytes": state_nbytes(st),
    }
    for group, names in GROUPS.items():
        row[group] = int(sum(arrays[n].nbytes for n in names))
    # the tables a rules family adds after its core tables (engine/state.py family_state)
    row["other_bytes"] += sum(a.nbytes for n, a in arrays.items() if n not in CORE_FIELDS)
    assert sum(row[g] for g in GROUPS) == row["state_bytes"], "an array is in no group"
    return row


def per_unit(rows: list[dict]) -> list[str]:
    """Bytes per live pod, per pod id, per node and per bitmap bit, fitted over the grid (least squares)."""
    lines = []
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        pod = np.array([r["pod_bytes"] for r in mine], float)
        ids = np.array([r["pod_ids"] for r in mine], float)
        live = np.array([r["live_pods"] for r in mine], float)
        node = np.array([r["node_bytes"] for r in mine], float)
        n = np.array([r["nodes"] for r in mine], float)
        bits = np.array([r["node_cidr_bits"] + r["pod_bitmap_bits"] for r in mine], float)
        bm = np.array([r["bitmap_bytes"] for r in mine], float)
        per_live, per_id = np.linalg.lstsq(np.c_[live, ids, np.ones_like(ids)], pod, rcond=None)[0][:2]
        per_node = np.linalg.lstsq(np.c_[n, np.ones_like(n)], node, rcond=None)[0]
        per_bit = np.linalg.lstsq(np.c_[bits, np.ones_like(bits)], bm, rcond=None)[0]
        lines.append(f"| {mode} | {per_live:.1f} | {per_id:.1f} | {per_node[0]:.1f} | {per_bit[0] * 8:.3f} |")
    return lines


def markdown(rows: list[dict], command: str) -> str:
    mib = 2**20
    out = [
        "# Engine state memory",
        "",
        f"Command: `{command}`",
        "",
        "State bytes = `state_nbytes(sim.state)` (engine/state.py) after `Simulation(...).advance` past the last",
        "event (the timer heap and node-timer rings grow while the run goes on, engine/timer_room.py; every other",
        "table is sized before it). Workload: `steady-churn` to `pods_per_node` x nodes live pods, then `churn_s` seconds of",
        f"churn at {CHURN_PER_S:g} replacements/s, each a new pod id. Pools: 10.0.0.0/8 cut into /`node_mask`.",
        "Columns in MiB except counts.",
        "",
        "| mode | nodes | live pods | pod ids | mask | node-CIDR bits | pod-bitmap bits | state MiB | pods+heap |"
        " nodes | bitmaps | slots |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['mode']} | {r['nodes']:,} | {r['live_pods']:,} | {r['pod_ids']:,} | /{r['node_mask']} | "
            f"{r['node_cidr_bits']:,} | {r['pod_bitmap_bits']:,} | {r['state_bytes'] / mib:.2f} | "
            f"{r['pod_bytes'] / mib:.2f} | {r['node_bytes'] / mib:.2f} | {r['bitmap_bytes'] / mib:.2f} | "
            f"{r['slot_bytes'] / mib:.2f} |"
        )
    out += [
        "",
        "## Bytes per unit (least squares over the grid)",
        "",
        "| mode | bytes per live pod (pods table, retry ring) | bytes per pod id (id -> row map) | bytes per node"
        " | state bits per bitmap bit (summaries and 64-bit padding included) |",
        "|---|---:|---:|---:|---:|",
        *per_unit(rows),
        "",
        "Pod tables grow with the pods alive at once (rows are reused); each pod id ever created costs only",
        "its entry in the id-to-row map (and its pool in multi-pool). Bitmaps grow with the pools' node CIDRs (one bit",
        "each) and with the usable addresses of the node CIDRs that can be live at once (nodes x CIDRs per",
        "node, capped by the pool), so a shorter node mask costs bitmap bits, not rows.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv])
    rows = [measure(mode, nodes, ppn, churn, mask)
            for mode in MODES for nodes in NODES for ppn in PODS_PER_NODE for churn in CHURN_S
            for mask in NODE_MASKS]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out_dir / "memory-scaling.csv", f"# command: {command}\n" + buf.getvalue())
    atomic_write_text(args.out_dir / "memory-scaling.md", markdown(rows, command))
    print(f"wrote {args.out_dir / 'memory-scaling.csv'} and {args.out_dir / 'memory-scaling.md'} "
          f"({len(rows)} states)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
