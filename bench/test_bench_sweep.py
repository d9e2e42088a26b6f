"""Sweeps: how they scale with local workers, Dask against local, and a 1,000-point sweep.

The sweep is the built-in default scenario (32 nodes, ~55 pods each, 20 min of churn,
kubernetes + cluster-pool + multi-pool per point) varied by a Latin hypercube over the
cluster-pool mask (/25–/27), the churn rate (1–3 /s) and the node count (24–40), one
replicate per point. A round times ``run_sweep`` on already validated points into a new
folder: every task run, every point file written and fsync'd, ``sweep.parquet`` built.

Groups:

* ``sweep-workers``: 1,000 points with 1 and with 2 local worker processes (goal: 2
  workers >= 1.8x one on >= 200 points; at 200 points, ~4 ms each, the pool's start and the
  last batches are a tenth of the run, so 1,000 points measure the executor, not its start).
* ``sweep-executor``: the same 1,000 points on 2 local workers and on a Dask LocalCluster
  of 2 single-threaded worker processes (started as ``--dask local`` starts one, warmed, in a
  process of its own: the ``--dask tcp://...`` use, a cluster that is already running; goal:
  within 15 %). The executors alternate: before each timed round, one round of the other
  executor (``extra_info["interleaved_other_s"]``), so both see the same load; the ratios
  dask / local on the min, on the median and the median of the round-by-round ratios (each
  timed round over the other executor's round just before it) are in ``extra_info`` of both tests. The cluster
  runs outside this process because local workers fork only from a single-threaded process
  (a LocalCluster here would keep threads alive and send them to a fork server). The
  cluster's start-up is ``extra_info["cluster_start_s"]``, its CPU (scheduler, nannies,
  workers) ``cluster_cpu_s_per_round``.
* ``sweep-1000``: 1,000 points, 2 workers, validation included (what ``ipam-bench
  sweep`` does; goal: <= 120 s with a warm Numba cache).

``extra_info`` records the points, the executor, the machine's 1-minute load average when
the test ended (the machine is shared: a load above 2 means others used the cores), and the
CPU seconds per round of this process (the client: validation, writing, consolidating) and of
the local workers (Dask workers are not children: 0; see ``cluster_cpu_s_per_round``).

Under ``--benchmark-disable`` (CI) the sweeps are 6 and 10 points of a 2-minute,
8-node variant so the file runs in seconds.

Run: ``python -m pytest bench/test_bench_sweep.py --benchmark-json=results/bench-sweep.json -q``.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time

import pytest
import yaml

from ipam_core.pipeline import warmup
from ipam_core.sweep import load_spec, plan, run_sweep

FULL = {"workers": 1000, "big": 1000}
QUICK = {"workers": 6, "big": 10}
#: Timed rounds per executor in the executor group (each after one round of the other executor).
ROUNDS_EXECUTOR = 5


def _spec(samples: int, quick: bool):
    doc = {
        "name": f"bench-{samples}",
        "base": "default",
        "axes": {
            "ipam.operator.clusterPoolIPv4MaskSize": [25, 26, 27],
            "workload.churnPerSecond": {"min": 1, "max": 3},
            "cluster.nodes": {"min": 4, "max": 8} if quick else {"min": 24, "max": 40},
        },
        "sampling": "latin-hypercube",
        "samples": samples,
        "seed": 0,
    }
    if quick:
        doc["axes"]["duration"] = ["2m"]
    return load_spec(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def quick(request) -> bool:
    return bool(request.config.getoption("benchmark_disable", False))


@pytest.fixture(scope="module")
def sizes(quick):
    warmup()
    return QUICK if quick else FULL


@pytest.fixture(scope="module")
def points_grp(sizes, quick):
    spec = _spec(sizes["workers"], quick)
    return spec, plan(spec)


_round = itertools.count()


def _fresh(tmp_path):
    return {"out": tmp_path / f"round-{next(_round)}"}


def _rounds(tmp_path) -> int:
    """Rounds run so far in this test: one folder each."""
    return sum(1 for _ in tmp_path.glob("round-*"))


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process and of its reaped children (the local workers) so far."""
    import resource

    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time(), kids.ru_utime + kids.ru_stime


def _tree_cpu(pid: int) -> float:
    """CPU seconds so far of a process and its live descendants (the cluster: scheduler, nannies, workers)."""
    import psutil

    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def _since(before: tuple[float, float]) -> tuple[float, float]:
    """CPU seconds (this process, reaped children) spent since ``before`` (a :func:`_cpu` reading)."""
    return tuple(after - was for after, was in zip(_cpu(), before))


def _record(benchmark, points: int, executor: str, cpu_s: tuple[float, float], rounds: int) -> None:
    """``cpu_s``: CPU seconds of this process and of the local workers over ``rounds`` timed rounds."""
    parent, children = cpu_s
    benchmark.extra_info.update(ops=points, impl="kernel", executor=executor, points=points,
                                load_1min=round(os.getloadavg()[0], 2),
                                parent_cpu_s_per_round=round(parent / rounds, 2),
                                worker_cpu_s_per_round=round(children / rounds, 2))


@pytest.mark.benchmark(group="sweep-workers")
@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_local_workers(benchmark, tmp_path, points_grp, workers):
    spec, points = points_grp
    cpu = _cpu()
    result = benchmark.pedantic(lambda out: run_sweep(spec, out, points=points, workers=workers),
                                setup=lambda: ((), _fresh(tmp_path)), rounds=3, warmup_rounds=0)
    assert result.ran == len(points) * spec.replicates
    _record(benchmark, len(points), f"local x{workers}", _since(cpu), _rounds(tmp_path))


#: A Dask LocalCluster that is already running, in a process of its own (as ``dask scheduler`` would be):
#: started the way ``--dask local`` starts one, warmed, serving until the bench closes its stdin.
_SERVE_CLUSTER = """
import sys
from ipam_core.sweep.executors import connect_dask
session = connect_dask("local", 2)
print(session.cluster.scheduler_address, flush=True)
sys.stdin.read()
session.close()
"""


@pytest.fixture(scope="module")
def dask_cluster():
    pytest.importorskip("distributed")
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-c", _SERVE_CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    address = server.stdout.readline().strip()
    started = time.perf_counter() - start
    try:
        assert address.startswith("tcp://"), "the cluster process did not start"
        yield address, started, server.pid
    finally:
        server.stdin.close()
        server.wait(timeout=60)


@pytest.mark.benchmark(group="sweep-executor")
@pytest.mark.parametrize("executor", ["local", "dask"])
def test_sweep_executors(benchmark, tmp_path, points_grp, executor, dask_cluster):
    """Before each timed round, one round of the other executor (timed here, not by the benchmark).

    The two executors thus alternate on the same points under the same machine load; ``extra_info``
    keeps the other executor's seconds per round and the ratio dask / local on the min and the median.
    CPU seconds per round count the timed rounds only.
    """
    spec, points = points_grp
    address, started, cluster_pid = dask_cluster
    mine, other = (address, None) if executor == "dask" else (None, address)
    others: list[float] = []
    cpu = (0.0, 0.0)
    cluster_cpu = 0.0

    def setup():
        start = time.perf_counter()
        run_sweep(spec, _fresh(tmp_path)["out"], points=points, workers=2, dask=other)
        others.append(time.perf_counter() - start)
        return (), _fresh(tmp_path)

    def timed(out):
        nonlocal cpu, cluster_cpu
        before, cluster_before = _cpu(), _tree_cpu(cluster_pid)
        try:
            return run_sweep(spec, out, points=points, workers=2, dask=mine)
        finally:
            cpu = tuple(total + spent for total, spent in zip(cpu, _since(before)))
            cluster_cpu += _tree_cpu(cluster_pid) - cluster_before

    result = benchmark.pedantic(timed, setup=setup, rounds=ROUNDS_EXECUTOR, warmup_rounds=0)
    assert result.ran == len(points)
    _record(benchmark, len(points), "dask LocalCluster x2" if mine else "local x2", cpu, len(others))
    benchmark.extra_info.update(cluster_start_s=round(started, 2), interleaved_other_s=[round(t, 3) for t in others],
                                cluster_cpu_s_per_round=round(cluster_cpu / len(others), 2))
    if not benchmark.disabled:
        mine_s = list(benchmark.stats.stats.data)
        dask_s, local_s = (mine_s, others) if mine else (others, mine_s)
        # each timed round against the other executor's round just before it: the load changes less within a pair
        pairs = [d / loc for d, loc in zip(dask_s, local_s)]
        benchmark.extra_info.update(dask_over_local_min=round(min(dask_s) / min(local_s), 3),
                                    dask_over_local_median=round(statistics.median(dask_s) / statistics.median(local_s), 3),
                                    dask_over_local_paired_median=round(statistics.median(pairs), 3))


@pytest.mark.benchmark(group="sweep-1000")
def test_sweep_1000_points(benchmark, tmp_path, sizes, quick):
    spec = _spec(sizes["big"], quick)

    def whole_sweep(out):
        return run_sweep(spec, out, points=plan(spec), workers=2)

    cpu = _cpu()
    result = benchmark.pedantic(whole_sweep, setup=lambda: ((), _fresh(tmp_path)), rounds=1, warmup_rounds=0)
    assert result.ran == sizes["big"]
    _record(benchmark, sizes["big"], "local x2", _since(cpu), _rounds(tmp_path))
