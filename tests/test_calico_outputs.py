"""Calico's figures in the run outputs: trace.arrow's calico_* columns, nodes.arrow's show-blocks view, summary.

Hand-worked cases through the engine, the tables a run writes (Calico columns only when a calico mode
runs, 0 / empty in the other modes' rows of such a run), and the compiled sampler against the
plain-Python oracle's metrics on random sequences.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam_core.pipeline import calico_node_columns, simulate, summarize, trace_tables
from ipam_core.pipeline.run import Simulation
from ipam_core.engine.sampling import CALICO_COUNTERS
from ipam_core.workloads.events import OP_NODE_ADD, OP_POD_ADD, OP_POD_DEL
from test_calico_engine import SMALL_POOL, drive_reference, random_events, scenario, walk_start, workload

ONE_NODE = [(0.0, OP_NODE_ADD, 0, -1)]


def calico_now(sim, family=0):
    """The Calico trace counters sampled now."""
    row = sim.sample()[family]
    return {k.removeprefix("calico_"): row[k] for k in CALICO_COUNTERS}


def test_trace_counts_blocks_empty_stranded_and_the_release_wait():
    sc = scenario(SMALL_POOL)  # 8 blocks of 8; leakGracePeriod 1m, passes every 30 s
    events = [*ONE_NODE, *[(1.0 + i, OP_POD_ADD, 0, i) for i in range(9)],
              (10.0, OP_POD_DEL, -1, 8),  # the second block is empty from t = 10
              (95.0, OP_POD_DEL, -1, 0)]  # the first block loses one address
    sim = Simulation(sc, workload(events, ["node-a"]), "calico")
    sim.advance(11.0)
    assert calico_now(sim) == {"affine_blocks": 2, "blocks_per_node_max": 2, "empty_affine_blocks": 1,
                               "stranded_addrs": 0, "borrowed_addrs": 0, "empty_block_releases": 0,
                               "empty_block_wait_ms": 0}
    sim.advance(91.0)  # the pass at 90 s releases it: empty for 80 s
    assert calico_now(sim) == {"affine_blocks": 1, "blocks_per_node_max": 1, "empty_affine_blocks": 0,
                               "stranded_addrs": 0, "borrowed_addrs": 0, "empty_block_releases": 1,
                               "empty_block_wait_ms": 80_000}
    sim.advance(96.0)
    assert calico_now(sim)["stranded_addrs"] == 1


BORROW = [("pool-a", {"cidr": "10.0.0.0/28", "blockSize": 29})]  # 2 blocks of 8
BORROW_EVENTS = [(0.0, OP_NODE_ADD, 0, -1), (0.0, OP_NODE_ADD, 1, -1),
                 *[(1.0 + i, OP_POD_ADD, 0, i) for i in range(9)], (20.0, OP_POD_ADD, 1, 9)]


def test_a_borrowed_address_shows_in_the_trace_and_on_both_nodes_rows():
    sim = Simulation(scenario(BORROW), workload(BORROW_EVENTS, ["node-a", "node-b"]), "calico")
    sim.advance(21.0)
    assert calico_now(sim)["borrowed_addrs"] == 1 and calico_now(sim)["stranded_addrs"] == 6
    rows = sim.node_rows()
    assert list(rows["borrowed"]) == [0, 1] and list(rows["lent"]) == [1, 0]
    assert list(rows["empty_blocks"]) == [0, 0] and list(rows["stranded"]) == [6, 0]
    offsets = np.zeros(rows["cidrs_counts"].size + 1, dtype=np.int32)
    np.cumsum(rows["cidrs_counts"], out=offsets[1:])
    blocks = calico_node_columns(rows, offsets)["blocks"].to_pylist()
    first = walk_start("node-a", 2)
    by_index = {first: 8, 1 - first: 1}  # ips in use: 8 pods in the first block; a's 9th pod and b's borrower
    by_index[1 - first] += 1
    assert blocks[1] == []  # node-b holds no block
    assert sorted(blocks[0], key=lambda b: b["block"]) == sorted(
        [{"block": f"10.0.0.{8 * i}/29", "ips_in_use": n, "ips_free": 8 - n, "ips_lent": int(i != first)}
         for i, n in by_index.items()], key=lambda b: b["block"])


def test_calico_columns_only_in_runs_with_calico_and_zero_in_other_modes_rows():
    sc = scenario(BORROW)
    w = workload(BORROW_EVENTS, ["node-a", "node-b"])
    trace, nodes = trace_tables(simulate(sc, ["cluster-pool"], workload=w))
    assert not any(c.startswith("calico_") for c in trace.column_names)
    assert "blocks" not in nodes.column_names
    result = simulate(sc, ["calico", "cluster-pool"], workload=w)
    trace, nodes = (pl.from_arrow(t) for t in trace_tables(result))
    other = trace.filter(pl.col("mode") == "cluster-pool")
    assert other.select(list(CALICO_COUNTERS)).to_numpy().sum() == 0
    assert trace.filter(pl.col("mode") == "calico")["calico_borrowed_addrs"].max() == 1
    assert nodes.filter(pl.col("mode") == "cluster-pool")["blocks"].list.len().sum() == 0
    shown = nodes.filter(pl.col("mode") == "calico").explode("blocks").unnest("blocks")
    assert shown["ips_lent"].max() == 1 and set(shown.columns) >= {"free", "ips_free", "lent", "ips_lent"}
    summary = pl.from_arrow(summarize(result))
    row = summary.filter(pl.col("mode") == "calico").row(0, named=True)
    assert (row["peak_borrowed"], row["peak_blocks_per_node"], row["empty_block_releases"]) == (1, 2, 0)
    assert "peak_borrowed" not in summarize(simulate(sc, ["cluster-pool"], workload=w)).column_names


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_sampled_counters_agree_with_the_oracles_metrics(seed):
    rng = np.random.default_rng(seed)
    names = [f"node-{c}" for c in "abcde"]
    sc = scenario([("pool-a", {"cidr": "10.0.0.0/26", "blockSize": 29})], nodes=len(names))
    events, t_last = random_events(rng, names, 160)
    sim = Simulation(sc, workload(events, names), "calico")
    t_end = t_last + 1.0
    sim.advance(t_end)
    ref, _, _ = drive_reference(sim, events, t_end, names)
    metrics = [ref.node_metrics(n)[0] for n in range(len(names))]
    got = calico_now(sim)
    assert got == {
        "affine_blocks": sum(m["blocks"] for m in metrics),
        "blocks_per_node_max": max(m["blocks"] for m in metrics),
        "empty_affine_blocks": sum(m["empty_blocks"] for m in metrics),
        "stranded_addrs": sum(m["stranded"] for m in metrics),
        "borrowed_addrs": sum(m["borrowed"] for m in metrics),
        "empty_block_releases": len(ref.release_delays),
        "empty_block_wait_ms": int(sum(ref.release_delays) * 1000.0 + 0.5),
    }
    rows = sim.node_rows()
    by_node = {int(n): i for i, n in enumerate(rows["node"])}
    for node, m in enumerate(metrics):
        if node in by_node:
            i = by_node[node]
            assert (rows["empty_blocks"][i], rows["stranded"][i], rows["borrowed"][i], rows["lent"][i]) == (
                m["empty_blocks"], m["stranded"], m["borrowed"], m["lent"])
