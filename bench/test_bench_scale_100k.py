"""The engine at 100,000 nodes x 30 pods: time per event once the state no longer fits any cache.

Issue #9's memory-bound goal: <= 60 ns per event, and state memory <= 0.5 of the code before
the pod table was narrowed. One group, ``scale-100k``:

* Scenario: 100,000 nodes through ``cluster-pool`` (pools 10.0.0.0/7 cut into /24s: 131,072 node
  CIDRs, one per node; maxPods 110). A ``steady-churn`` workload fills 30 pods per node at t=0
  (3,000,000 live pods), then replaces a random pod ``CHURN_PER_S`` times per second for
  ``CHURN_S`` seconds, each replacement a new pod id.
* ``test_scale_100k_kernel[whole]``: the public engine path ``ipam_core.pipeline.run.Simulation``
  (what ``simulate`` runs per mode, without sampling) built in the pedantic setup with its pages
  faulted in; a round is ``Simulation.advance`` to just after the last event: node joins, the
  fill and the churn.
* ``test_scale_100k_kernel[churn]``: the setup also advances through the fill (to the first
  churn event); a round is the churn alone: random pods across 3,000,000 rows, the memory-bound part.
* ``test_scale_100k_python_baseline``: ``bench/baseline_engine.py`` (the plain-Python engine,
  same semantics) on the first ``BASELINE_EVENTS`` events of the same workload.

``extra_info`` records ns per event (min and median), the events of the round, the state's
bytes (``state_nbytes``, what ``bench/memory_scaling.py`` sums) and its bytes per table.

Under ``--benchmark-disable`` (CI) the cluster shrinks to ``SMALL_NODES`` nodes so the file
passes in seconds; the assertions are the same.

Run (figures in results/bench-scale-100k.md)::

    /work/main/.venv/bin/python -m pytest bench/test_bench_scale_100k.py -q -p no:cacheprovider \\
        --benchmark-json=results/bench-scale-100k.json --benchmark-timer=time.process_time
"""

from __future__ import annotations

import functools
import math
import os
import resource
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from ipam_core.engine import tables as T
from ipam_core.pipeline import warmup
from ipam_core.pipeline.run import Simulation
from ipam_core.engine.state import named_arrays, state_nbytes
from ipam_core.scenario import parse_scenario, scenario_for_mode
from ipam_core.workloads import Workload, generate
from ipam_core.workloads.events import OP_POD_DEL

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_engine import BaselineEngine  # noqa: E402

GROUP = "scale-100k"
MODE = "cluster-pool"
NODES = 100_000
SMALL_NODES = 500  # under --benchmark-disable
PODS_PER_NODE = 30
CHURN_PER_S = 10_000.0
CHURN_S = 100.0  # 1,000,000 replacements: 2,000,000 churn events after 3,100,000 fill events
SEED = 20_261_206
BASELINE_EVENTS = 200_000

_PROG = [sys.executable, "-m", "pytest"] if sys.argv[0].endswith("__main__.py") else sys.argv[:1]
COMMAND = shlex.join(_PROG + sys.argv[1:])


@functools.cache
def scenario_100k(nodes: int):
    """``nodes`` nodes x 30 pods in cluster-pool, a node CIDR for every node."""
    return scenario_for_mode(parse_scenario({
        "name": "scale-100k",
        "seed": SEED,
        "duration": CHURN_S,
        "sampleInterval": CHURN_S,
        "modes": [MODE],
        "cluster": {"nodes": nodes, "kubelet": {"maxPods": 110}},
        "cilium": {"ipam": {"mode": MODE, "operator": {
            "clusterPoolIPv4PodCIDRList": ["10.0.0.0/7"], "clusterPoolIPv4MaskSize": 24}}},
        "workload": {"generator": "steady-churn", "podsPerNode": PODS_PER_NODE, "churnPerSecond": CHURN_PER_S},
    }), MODE)


@functools.cache
def workload_100k(nodes: int) -> Workload:
    sc = scenario_100k(nodes)
    return generate(sc.workload, nodes=nodes, max_pods=sc.cluster.max_pods, namespaces=["default"],
                    duration_s=sc.duration_s, seed=sc.seed)


@pytest.fixture(scope="module")
def nodes(request) -> int:
    return SMALL_NODES if request.config.getoption("benchmark_disable", False) else NODES


@pytest.fixture(scope="module", autouse=True)
def _warm():
    """Compile (or load) the loop, then one untimed small run."""
    warmup()
    w = workload_100k(SMALL_NODES)
    Simulation(scenario_100k(SMALL_NODES), w, MODE).advance(end_time(w))


def end_time(w: Workload) -> float:
    """Just after the last event: a round processes every event and the timers due before."""
    return math.nextafter(float(w.time[-1]), math.inf)


def churn_start(w: Workload) -> int:
    """Index of the first churn event (the first pod delete): everything before is node joins and the fill."""
    return int(np.argmax(w.op == OP_POD_DEL)) if np.any(w.op == OP_POD_DEL) else len(w)


def prefault(state) -> None:
    """Write one byte per page of every table, so a round does not time the page faults of fresh zeros."""
    page = resource.getpagesize()
    for a in named_arrays(state).values():
        flat = a.reshape(-1).view(np.uint8)
        flat[::page] = flat[::page].copy()


def table_bytes(state) -> dict[str, int]:
    return {name: int(a.nbytes) for name, a in named_arrays(state).items()}


def record(benchmark, impl: str, events: int, state, **info) -> None:
    benchmark.extra_info.update(ops=events, impl=impl, command=COMMAND, loadavg_1min=os.getloadavg()[0],
                                mode=MODE, **info)
    if state is not None:
        benchmark.extra_info.update(state_bytes=state_nbytes(state), state_bytes_by_table=table_bytes(state))
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None:  # absent under --benchmark-disable
        benchmark.extra_info["ns_per_event_min"] = stats.min / events * 1e9
        benchmark.extra_info["ns_per_event_median"] = stats.median / events * 1e9


def test_workload_is_what_the_group_says(nodes):
    w = workload_100k(nodes)
    start = churn_start(w)
    assert start == nodes + nodes * PODS_PER_NODE  # node joins, then the fill
    assert len(w) - start == 2 * int(CHURN_S * CHURN_PER_S)  # a delete and a create per replacement


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("part", ["whole", "churn"])
def test_scale_100k_kernel(benchmark, nodes, part):
    sc, w = scenario_100k(nodes), workload_100k(nodes)
    t_end = end_time(w)
    first = 0 if part == "whole" else churn_start(w)
    t_from = math.nextafter(float(w.time[first]), -math.inf)  # just before the first timed event
    sims: list[Simulation | None] = [None]  # the last round's state only: each one is large

    def setup():
        sims[0] = None
        sim = Simulation(sc, w, MODE)
        prefault(sim.state)
        if first:
            sim.advance(t_from)
        sims[0] = sim
        return (sim,), {}

    benchmark.pedantic(lambda sim: sim.advance(t_end), setup=setup, rounds=3, warmup_rounds=1)
    st = sims[0].state
    assert st.core.cnt[T.K_EVENT] == len(w)
    assert st.core.cnt[T.K_NODES] == nodes and st.core.cnt[T.K_READY] == nodes
    assert st.core.cnt[T.K_RUNNING] == nodes * PODS_PER_NODE and st.core.cnt[T.K_FAILED] == 0 and st.core.cnt[T.K_PENDING] == 0
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * resource.getpagesize()
    record(benchmark, "kernel", len(w) - first, st, part=part, nodes=nodes, live_pods=nodes * PODS_PER_NODE,
           pod_ids=w.n_pods, path="ipam_core.pipeline.run.Simulation.advance (state built untimed)",
           rss_bytes=rss, peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


@pytest.mark.benchmark(group=GROUP)
def test_scale_100k_python_baseline(benchmark, nodes):
    sc, full = scenario_100k(nodes), workload_100k(nodes)
    n = min(BASELINE_EVENTS, len(full)) if benchmark.enabled else 2_000
    w = Workload(full.time[:n], full.op[:n], full.node[:n], full.pod[:n], full.namespace[:n], full.pool[:n],
                 full.node_names, full.namespaces, full.pool_names, full.n_pods)
    t_end = end_time(w)
    engines: list[BaselineEngine | None] = [None]

    def setup():
        engines[0] = None
        engines[0] = BaselineEngine(sc, w, MODE)
        return (engines[0],), {}

    benchmark.pedantic(lambda engine: engine.advance(t_end), setup=setup, rounds=1, warmup_rounds=0)
    assert engines[0].next_event == len(w)
    record(benchmark, "python-baseline", len(w), None, part=f"first {n} events", nodes=nodes)
