"""A long, quiet trace through every mode: periodic passes that change nothing must cost (almost) nothing.

``scenarios/long-quiet.yaml`` replays 149 days of a 1,523-node cluster with about 7,000
pods alive and a few events a day (``scenarios/long-quiet.csv.gz``, written by the seeded
``scenarios/long-quiet.py``). Simulated naively, every node's periodic pass runs: ipamd's
every 5 s (``aws-vpc-cni``: 3.9 billion passes), Cilium's operator resync and multi-pool's
refresh every minute (327 million each). Issue #9's goal: every mode <= 30 s.

One group, ``quiet-trace``, two members per mode:

* ``kernel``: the whole trace as ``ipam-bench compare`` runs a mode (the state built in
  setup, then ``Simulation.record`` over every sample: the loop and its sampling);
* ``kernel-every-pass``: the same loop with skipping switched off
  (``state.core.quiet[QUIET_OFF] = 1``, the engine before this change) on the first
  ``SLICE_DAYS`` days only, since the whole trace takes up to an hour that way; its
  traces are checked equal to the skipping run's over the same days.

``extra_info["ops"]`` is simulated days, so ns/op is the cost of one simulated day and
``full_trace_s`` (ns/op x 149 days) extrapolates the every-pass member to the whole trace.
Under ``--benchmark-disable`` both members run shorter (``DISABLED_DAYS`` and
``DISABLED_SLICE_DAYS``) so the file passes as a plain test in seconds.

Run: ``python -m pytest bench/test_bench_quiet.py --benchmark-json=results/bench-quiet.json -q``;
summary with ``bench/summarize.py``; figures and command in ``results/bench-quiet.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from ipam_core.pipeline import build_workload
from ipam_core.engine import core
from ipam_core.pipeline.run import Simulation, node_sample_mask, sample_times, warm_mode
from ipam_core.scenario import load_scenario, scenario_for_mode
from ipam_core.workloads.events import truncate

REPO = Path(__file__).resolve().parents[1]
GROUP = "quiet-trace"
MODES = ("kubernetes", "cluster-pool", "multi-pool", "gke", "eni", "aws-vpc-cni", "azure", "crd")
DAY_S = 86_400.0
SLICE_DAYS = 2.0  # the every-pass member at full size
DISABLED_DAYS = 3.0  # under --benchmark-disable
DISABLED_SLICE_DAYS = 0.1

_PROG = [sys.executable, "-m", "pytest"] if sys.argv[0].endswith("__main__.py") else sys.argv[:1]
COMMAND = shlex.join(_PROG + sys.argv[1:])


@functools.cache
def trace(days: float | None = None):
    """The long-quiet scenario and its workload, cut to the first ``days`` days."""
    scenario = load_scenario(REPO / "scenarios" / "long-quiet.yaml")
    w = build_workload(scenario)
    if days is not None:
        scenario = dataclasses.replace(scenario, duration_s=days * DAY_S)
        w = truncate(w, scenario.duration_s)
    return scenario, w


def prepare(scenario, w, mode: str, skip: bool):
    """A fresh state for ``mode`` and the sample times, as ``run_mode`` makes them."""
    ms = scenario_for_mode(scenario, mode)
    sim = Simulation(ms, w, mode)
    sim.state.core.quiet[core.QUIET_OFF] = 0.0 if skip else 1.0
    times = sample_times(ms.duration_s, ms.sample_interval_s)
    every = max(1, int(round(ms.node_sample_interval_s / ms.sample_interval_s)))
    return sim, times, node_sample_mask(times.size, every)


def run_rounds(benchmark, scenario, w, mode: str, skip: bool, rounds: int):
    runs = []

    def setup():
        runs.clear()
        runs.append(prepare(scenario, w, mode, skip))
        return runs[0], {}

    benchmark.pedantic(lambda sim, times, mask: runs.append(sim.record(times, mask)), setup=setup, rounds=rounds)
    return runs[0][0], runs[1]


def record(benchmark, impl: str, days: float, sim, **info) -> None:
    st = sim.state
    benchmark.extra_info.update(ops=days, impl=impl, command=COMMAND, loadavg_1min=os.getloadavg()[0],
                                simulated_days=days, timers_set=int(st.core.cnt[core.K_SEQ]), **info)
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None:  # absent under --benchmark-disable
        benchmark.extra_info["full_trace_s"] = stats.median / days * 149.0


@pytest.fixture(scope="module", autouse=True)
def _warm():
    scenario, _ = trace()
    for mode in MODES:
        warm_mode(scenario_for_mode(scenario, mode), mode)


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("mode", MODES)
def test_quiet_trace_kernel(benchmark, mode):
    days = DISABLED_DAYS if benchmark.disabled else 149.0
    scenario, w = trace(None if days == 149.0 else days)
    sim, (tr, _) = run_rounds(benchmark, scenario, w, mode, skip=True, rounds=3)
    assert tr["nodes_ready"][-1] >= 1523 and tr["pods_running"][-1] >= 6_900 and tr["pods_failed"][-1] == 0
    record(benchmark, "kernel", days, sim, nodes=len(w.node_names), events=len(w))


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("mode", MODES)
def test_quiet_trace_every_pass(benchmark, mode):
    days = DISABLED_SLICE_DAYS if benchmark.disabled else SLICE_DAYS
    scenario, w = trace(days)
    sim, (tr, nodes) = run_rounds(benchmark, scenario, w, mode, skip=False, rounds=1)
    skipping, times, mask = prepare(scenario, w, mode, skip=True)
    same_tr, same_nodes = skipping.record(times, mask)
    for key in tr:
        np.testing.assert_array_equal(tr[key], same_tr[key], err_msg=key)
    for key in ("node", "used", "free", "reserved", "pending", "cidrs_counts"):
        np.testing.assert_array_equal(nodes[key], same_nodes[key], err_msg=key)
    record(benchmark, "kernel-every-pass", days, sim, nodes=len(w.node_names), events=len(w))
