"""Calico's address path through the compiled engine (mode ``calico``) against the pure-Python reference.

The cluster of ``bench/test_bench_calico.py`` (500 EKS-named nodes, 10.244.0.0/16 in /26
blocks, 30 pods per node), now as a workload the engine's loop runs: node adds, then the
fill (15,000 pod adds pinned to their node), then 20,000 churn pairs (a random pod of a
random node deleted, a new pod added on that node). Each event goes through the loop's pod
lifecycle and the ``calico`` hooks (``modes/calico_hooks.py``: ``assign`` / ``release`` and
the shared counters); no kube-controllers pass falls inside (the run lasts less than its
7.5 min period).

=============================  ===============================================  =================
group                          one op                                           per round
=============================  ===============================================  =================
calico-engine-500-nodes        one pod event (add or delete) of the workload    55,000 events
=============================  ===============================================  =================

The kernel row times ``Simulation.advance`` over the whole workload on a fresh state
(built in the untimed setup); the ``python-baseline`` row runs the same pod sequence through
``bench/baseline_calico.py`` (``CalicoReference``), the allocator alone, with no scheduler
or pod lifecycle around it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench_util import record_speed
from ipam_core.engine import tables as T
from ipam_core.pipeline.run import Simulation
from ipam_core.scenario import load_scenario
from ipam_core.workloads.events import OP_NODE_ADD, OP_POD_ADD, OP_POD_DEL, Workload

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_calico import CalicoReference, Pool  # noqa: E402
# The same 500-node cluster as the allocator-alone bench, on purpose: the two figures sit side by side.
from test_bench_calico import NAMES, NODES, PAIRS, PODS_PER_NODE, POOL, SEED  # noqa: E402

COMMAND = ("python -m pytest bench/test_bench_calico_engine.py --benchmark-timer=time.process_time "
           "--benchmark-json=results/bench-calico-engine.json")
ROUNDS = 5
GROUP = "calico-engine-500-nodes"


def scenario():
    doc = {"name": "calico-bench", "duration": "10m", "modes": ["calico"], "cluster": {"nodes": NODES},
           "workload": {"generator": "steady-churn"},
           "manifests": [{"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": POOL[0]},
                          "spec": {"cidr": POOL[1], "blockSize": POOL[2]}}]}
    return load_scenario(yaml.safe_dump(doc, sort_keys=False))


def events():
    """(time, op, node, pod): node adds, the fill, the churn pairs; every pod pinned to its node."""
    rng = np.random.default_rng(SEED)
    rows = [(0.0, OP_NODE_ADD, n, -1) for n in range(NODES)]
    held = np.zeros((NODES, PODS_PER_NODE), dtype=np.int64)
    t, pod = 1.0, 0
    for k in range(PODS_PER_NODE):
        for node in range(NODES):
            rows.append((t, OP_POD_ADD, node, pod))
            held[node, k] = pod
            t += 0.001
            pod += 1
    for node, pick in zip(rng.integers(0, NODES, PAIRS).tolist(), rng.integers(0, PODS_PER_NODE, PAIRS).tolist()):
        rows.append((t, OP_POD_DEL, -1, int(held[node, pick])))
        rows.append((t + 0.0005, OP_POD_ADD, node, pod))
        held[node, pick] = pod
        t += 0.001
        pod += 1
    return rows


def workload(rows):
    t, op, node, pod = (np.array(c) for c in zip(*rows))
    is_pod = op != OP_NODE_ADD
    return Workload(t.astype(np.float64), op.astype(np.int8), node.astype(np.int32),
                    np.where(is_pod, pod, -1).astype(np.int32), np.where(is_pod, 0, -1).astype(np.int32),
                    np.full(len(rows), -1, np.int32), NAMES, ["default"], [], int(pod.max()) + 1)


@pytest.fixture(scope="module")
def setting():
    rows = events()
    return scenario(), workload(rows), rows


def reference_run(rows):
    """The allocator alone, in plain Python, through the same pod events."""
    ref = CalicoReference([Pool(*POOL)], NAMES)
    held = {}
    for time, op, node, pod in rows:
        if op == OP_NODE_ADD:
            ref.node_added(node)
        elif op == OP_POD_ADD:
            held[pod] = ref.assign(node, 0, time)
        else:
            ref.release(*held.pop(pod), time)
    return ref, held


def record(benchmark, impl: str, ops: int) -> None:
    benchmark.extra_info.update(impl=impl, ops=ops, op="pod event (add or delete)", nodes=NODES,
                                pods_per_node=PODS_PER_NODE, pool=f"{POOL[1]} /{POOL[2]} blocks", command=COMMAND)
    record_speed(benchmark, ops)


def test_engine_and_reference_hold_the_same_addresses(setting):
    sc, w, rows = setting
    sim = Simulation(sc, w, "calico")
    sim.advance(float(w.time[-1]) + 1.0)
    ref, held = reference_run(rows)
    st = sim.state
    assert int(st.core.cnt[T.K_RUNNING]) == len(held) == NODES * PODS_PER_NODE
    for pod in list(held)[::97]:
        packed = int(st.cal_addr[st.core.pod_tables.pod_row[pod], 0])
        slot = packed >> 12
        assert (int(st.cal.blk_pool[slot]), int(st.cal.blk_index[slot]), packed & 0xFFF) == held[pod]


@pytest.mark.benchmark(group=GROUP)
def test_engine_pod_events_kernel(benchmark, setting):
    sc, w, _ = setting
    end = float(w.time[-1]) + 1.0
    Simulation(sc, w, "calico").advance(end)  # compile or load the loop

    def run(sim):
        sim.advance(end)
        return int(sim.state.core.cnt[T.K_RUNNING])

    running = benchmark.pedantic(run, setup=lambda: ((Simulation(sc, w, "calico"),), {}), rounds=ROUNDS,
                                 warmup_rounds=1)
    assert running == NODES * PODS_PER_NODE
    record(benchmark, "kernel", len(w) - NODES)


@pytest.mark.benchmark(group=GROUP)
def test_engine_pod_events_python_baseline(benchmark, setting):
    _, w, rows = setting

    def run(rows):
        return len(reference_run(rows)[1])

    running = benchmark.pedantic(run, setup=lambda: ((rows,), {}), rounds=ROUNDS, warmup_rounds=1)
    assert running == NODES * PODS_PER_NODE
    record(benchmark, "python-baseline", len(w) - NODES)
