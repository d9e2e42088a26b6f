"""Speed of the subnet modes at 5,000 nodes, with and without zones, node groups, shared subnets and reservations.

Group ``cloud-subnets-5000``: 5,000 nodes, 20 pods each (100,000 pods), churn 20/s for 30 min, in
four /16 subnets, through ``eni``, ``aws-vpc-cni``, ``azure`` and ``crd``. Variants:

* ``plain``: the subnets as CIDR strings, one instance type (m5.large): none of the new features,
  the run every scenario written before them makes.
* ``groups``: the same subnets as mappings in two zones, a tagged pod subnet per zone, three node
  groups (m5.large, m5.xlarge, m5.2xlarge) with Cilium ``subnet-tags`` (``eni``) and subnet
  discovery (``aws-vpc-cni``): launch-subnet and ENI-subnet choices per node, per-group limits.
* ``shared``: ``plain`` with 20 % of each subnet held by other consumers and a /18 prefix reservation
  in each (single addresses skip it).

A round times the event loop (``Simulation.advance``); the state is built and faulted in by the
pedantic ``setup``. ``extra_info["ops"]`` is the workload's events. Under ``--benchmark-disable``
(CI) the same cases run on 40 nodes for 5 minutes. The pure-Python baseline (``bench/baseline_engine.py``
with ``bench/baseline_cloud.py``) runs the ``eni`` arms on 500 nodes (30 min), one round: compare it per
event (``ns_per_op``), not per round.

Run (results/bench-cloud-subnets.md)::

    python -m pytest bench/test_bench_cloud_subnets.py --benchmark-timer=time.process_time \\
        --benchmark-json=results/bench-cloud-subnets.json -q -p no:cacheprovider
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import pytest

from ipam_core.engine import tables as T
from ipam_core.pipeline import warmup
from ipam_core.pipeline.run import Simulation
from ipam_core.scenario import parse_scenario, scenario_for_mode
from ipam_core.workloads import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_engine import BaselineEngine  # noqa: E402
from bench_util import record_speed  # noqa: E402

GROUP = "cloud-subnets-5000"
MODES = ("eni", "aws-vpc-cni", "azure", "crd")
VARIANTS = ("plain", "groups", "shared")
CIDRS = ("10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16")
#: the pure-Python baseline's size: 5,000 nodes would take it most of an hour a round
BASELINE_NODES = 500


def _cloud(variant: str) -> dict:
    if variant == "plain":
        return {"subnets": list(CIDRS)}
    if variant == "shared":
        return {"subnets": [{"cidr": c, "sharedUsed": 0.2,
                             "reservations": [{"cidr": c.replace(".0.0/16", ".192.0/18"), "type": "prefix"}]}
                            for c in CIDRS]}
    zones = ("us-east-1a", "us-east-1b")
    subnets = [{"cidr": c, "id": f"s{i}", "zone": zones[i % 2],
                "tags": {"role": "nodes"} if i < 2 else {"role": "pods", "kubernetes.io/role/cni": "1"}}
               for i, c in enumerate(CIDRS)]
    groups = [{"name": t.replace(".", "-"), "instanceType": t, "share": share, "nodeSubnetTags": {"role": "nodes"},
               "subnetTags": {"role": "pods"}}
              for t, share in (("m5.large", 2), ("m5.xlarge", 1), ("m5.2xlarge", 1))]
    return {"subnets": subnets, "nodeGroups": groups}


@functools.cache
def scenario(variant: str, nodes: int):
    duration = "30m" if nodes >= BASELINE_NODES else "5m"
    return parse_scenario({
        "name": f"cloud-subnets-{variant}", "seed": 0, "duration": duration, "sampleInterval": "30s",
        "modes": list(MODES),
        "cluster": {"nodes": nodes, "instanceType": "m5.large", "kubelet": {"maxPods": 29}},
        "cilium": {"ipv4": {"enabled": True}, "ipam": {"mode": "eni"}},
        "cloud": _cloud(variant),
        "workload": {"generator": "steady-churn", "podsPerNode": 20, "churnPerSecond": 20},
    })


@functools.cache
def workload(nodes: int):
    s = scenario("plain", nodes)
    return generate(s.workload, nodes=s.cluster.nodes, max_pods=s.cluster.max_pods, namespaces=["default"],
                    duration_s=s.duration_s, seed=s.seed)


@pytest.fixture(scope="module")
def disabled(request) -> bool:
    return bool(request.config.getoption("benchmark_disable"))


@pytest.fixture(scope="module")
def nodes(disabled) -> int:
    return 40 if disabled else 5_000


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    warmup()


@functools.cache
def warm(mode: str, variant: str) -> None:
    """One untimed small run of the case first (compiled code loaded, caches filled)."""
    w = workload(20)
    Simulation(scenario_for_mode(scenario(variant, 20), mode), w, mode).advance(_end(w))


def _end(w) -> float:
    return math.nextafter(float(w.time[-1]), math.inf)


def _record(benchmark, impl: str, w, **info) -> None:
    benchmark.extra_info.update(ops=len(w), impl=impl, **info)
    record_speed(benchmark, len(w))


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", MODES)
def test_subnet_modes_kernel(benchmark, nodes, mode, variant):
    warm(mode, variant)
    s, w = scenario_for_mode(scenario(variant, nodes), mode), workload(nodes)
    sims = [None]

    def setup():
        sims[0] = None
        sims[0] = Simulation(s, w, mode)
        return (sims[0],), {}

    benchmark.pedantic(lambda sim: sim.advance(_end(w)), setup=setup, rounds=3, warmup_rounds=1)
    st = sims[0].state
    assert st.core.cnt[T.K_EVENT] == len(w) and st.core.cnt[T.K_NODES] == nodes
    _record(benchmark, "kernel", w, mode=mode, variant=variant, nodes=nodes,
            running=int(st.core.cnt[T.K_RUNNING]), failed=int(st.core.cnt[T.K_FAILED]))


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("variant", ("plain", "groups"))
def test_subnet_modes_python_baseline(benchmark, disabled, variant):
    mode, nodes = "eni", 20 if disabled else BASELINE_NODES
    s, w = scenario_for_mode(scenario(variant, nodes), mode), workload(nodes)
    engines = [None]

    def setup():
        engines[0] = BaselineEngine(s, w, mode)
        return (engines[0],), {}

    benchmark.pedantic(lambda engine: engine.advance(_end(w)), setup=setup, rounds=1, warmup_rounds=0)
    assert engines[0].next_event == len(w)
    _record(benchmark, "python-baseline", w, mode=mode, variant=variant, nodes=nodes)
