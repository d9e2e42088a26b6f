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
  of 2 single-threaded worker processes, started and warmed before timing (the
  ``--dask tcp://...`` use: a cluster that is already running; goal: within 15 %).
  The cluster's own start-up is recorded in ``extra_info["cluster_start_s"]``.
* ``sweep-1000``: 1,000 points, 2 workers, validation included (what ``ipam-bench
  sweep`` does; goal: <= 120 s with a warm Numba cache).

``extra_info`` records the points, the executor, the machine's 1-minute load average when
the test ended (the machine is shared: a load above 2 means others used the cores), and the
CPU seconds per round of this process (the client: validation, writing, consolidating) and of
the local workers (Dask workers are not children: 0).

Under ``--benchmark-disable`` (CI) the sweeps are 6 and 10 points of a 2-minute,
8-node variant so the file runs in seconds.

Run: ``python -m pytest bench/test_bench_sweep.py --benchmark-json=results/bench-sweep.json -q``.
"""

from __future__ import annotations

import itertools
import os
import time

import pytest
import yaml

from ipam_core.engine import warmup
from ipam_core.sweep import load_spec, plan, run_sweep

FULL = {"workers": 1000, "big": 1000}
QUICK = {"workers": 6, "big": 10}


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


def _record(benchmark, points: int, executor: str, cpu_before: tuple[float, float], rounds: int) -> None:
    parent, children = (after - before for after, before in zip(_cpu(), cpu_before))
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
    _record(benchmark, len(points), f"local x{workers}", cpu, _rounds(tmp_path))


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    start = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with distributed.Client(cluster) as client:
        from ipam_core.sweep.dask_plugin import WarmEngine

        client.register_plugin(WarmEngine(), name="ipam-bench-warm-engine")
    started = time.perf_counter() - start
    yield cluster.scheduler_address, started
    cluster.close()


@pytest.mark.benchmark(group="sweep-executor")
@pytest.mark.parametrize("executor", ["local", "dask"])
def test_sweep_executors(benchmark, tmp_path, points_grp, executor, request):
    spec, points = points_grp
    address = None
    if executor == "dask":
        address, started = request.getfixturevalue("dask_cluster")
        benchmark.extra_info["cluster_start_s"] = round(started, 2)
    cpu = _cpu()
    result = benchmark.pedantic(lambda out: run_sweep(spec, out, points=points, workers=2, dask=address),
                                setup=lambda: ((), _fresh(tmp_path)), rounds=3, warmup_rounds=0)
    assert result.ran == len(points)
    _record(benchmark, len(points), "dask LocalCluster x2" if address else "local x2", cpu, _rounds(tmp_path))


@pytest.mark.benchmark(group="sweep-1000")
def test_sweep_1000_points(benchmark, tmp_path, sizes, quick):
    spec = _spec(sizes["big"], quick)

    def whole_sweep(out):
        return run_sweep(spec, out, points=plan(spec), workers=2)

    cpu = _cpu()
    result = benchmark.pedantic(whole_sweep, setup=lambda: ((), _fresh(tmp_path)), rounds=1, warmup_rounds=0)
    assert result.ran == sizes["big"]
    _record(benchmark, sizes["big"], "local x2", cpu, _rounds(tmp_path))
