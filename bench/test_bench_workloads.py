"""Generating a steady-churn workload: ~1,000,000 pod events for 1,000 nodes.

1,000 nodes x 30 pods fill the cluster at t=0, then 485,000 churn steps (each
a delete of a random live pod and a create) at 1,000 steps/s for 485 s: 30,000
+ 2 x 485,000 = 1,000,000 pod events plus 1,000 node joins. Two members:

* ``numpy``: :func:`ipam_core.workloads.generate` (whole-array numpy);
* ``python-baseline``: what a user would write, a loop per step over a list
  of live pods with ``random.Random``, run at a tenth of the size.

``extra_info["ops"]`` is the number of events a round produces; compare the
members per event (``ns_per_op_*``).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from ipam_core.workloads import OP_NODE_ADD, OP_POD_ADD, OP_POD_DEL, Workload, generate, parse_workload
from bench_util import record_speed

GROUP = "workloads-generate-steady-churn-1M"
NODES = 1_000
PODS_PER_NODE = 30
STEPS_PER_S = 1_000.0
DURATION_S = 485.0
SEED = 20240611
BASELINE_DURATION_S = DURATION_S / 10

SPEC = parse_workload({"generator": "steady-churn", "podsPerNode": PODS_PER_NODE,
                       "churnPerSecond": STEPS_PER_S})


def generate_numpy(duration_s: float = DURATION_S) -> Workload:
    return generate(SPEC, nodes=NODES, max_pods=110, namespaces=["default"], duration_s=duration_s, seed=SEED)


def generate_python(duration_s: float = BASELINE_DURATION_S) -> Workload:
    """Steady churn the plain-Python way: one loop turn per event."""
    rnd = random.Random(SEED)
    time, op, node, pod = [], [], [], []
    for n in range(NODES):
        time.append(0.0), op.append(OP_NODE_ADD), node.append(n), pod.append(-1)
    live = []
    for p in range(NODES * PODS_PER_NODE):
        time.append(0.0), op.append(OP_POD_ADD), node.append(-1), pod.append(p)
        live.append(p)
    next_pod = len(live)
    for k in range(int(duration_s * STEPS_PER_S)):
        t = (k + 1) / STEPS_PER_S
        slot = rnd.randrange(len(live))
        time.append(t), op.append(OP_POD_DEL), node.append(-1), pod.append(live[slot])
        time.append(t), op.append(OP_POD_ADD), node.append(-1), pod.append(next_pod)
        live[slot] = next_pod
        next_pod += 1
    pod_arr = np.array(pod)
    ns = np.where(pod_arr >= 0, 0, -1)
    return Workload(np.array(time), np.array(op), np.array(node), pod_arr, ns, np.full(len(pod), -1),
                    [f"node-{i}" for i in range(NODES)], ["default"], [], next_pod)


def record(benchmark, impl: str, events: int) -> None:
    benchmark.extra_info.update(ops=events, impl=impl, nodes=NODES, generator="steady-churn")


def test_members_build_the_same_kind_of_workload():
    small_np, small_py = generate_numpy(5.0), generate_python(5.0)
    for w in (small_np, small_py):
        w.validate()
    assert len(small_np) == len(small_py)
    assert np.array_equal(small_np.op, small_py.op) and np.allclose(small_np.time, small_py.time)


@pytest.mark.benchmark(group=GROUP)
def test_generate_numpy(benchmark):
    generate_numpy(1.0)  # warm up imports and allocator paths
    events = len(generate_numpy())
    assert events >= 1_000_000
    record(benchmark, "numpy", events)
    w = benchmark.pedantic(generate_numpy, rounds=10, warmup_rounds=1)
    assert len(w) == events
    record_speed(benchmark, events)


@pytest.mark.benchmark(group=GROUP)
def test_generate_python_baseline(benchmark):
    events = len(generate_python())
    record(benchmark, "python-baseline", events)
    w = benchmark.pedantic(generate_python, rounds=3, warmup_rounds=1)
    assert len(w) == events
    record_speed(benchmark, events)
