"""The engine's event loop: 1,000,000 pod events, and Kubernetes' scalability limits.

Two groups:

* ``engine-1M-events``: 1,000 nodes through ``cluster-pool`` (10.0.0.0/8 in
  /24s, maxPods 110). A ``steady-churn`` workload fills 30 pods per node at
  t=0, then replaces a random pod 1,000 times per second for 485 s: 30,000 +
  2 x 485,000 pod events + 1,000 node joins = 1,001,000 events. Members:

  - ``kernel`` on all of it (``Simulation.advance`` to the end; the issue's
    goal is <= 2 s after warm-up on the 2-core machine);
  - ``kernel`` on the first ``SLICE_EVENTS`` events, and
  - ``python-baseline`` on the same slice (``bench/baseline_engine.py``, the
    same semantics in plain Python), so the speed-up is measured on
    identical work (goal: >= 100x).

* ``small-point``: one point of a sweep, the built-in default scenario (32
  nodes, 20 minutes, 6,592 events, 121 samples) through its three modes:
  ``simulate`` + ``summarize`` through the public API (``kernel``), the
  sweep's own task (``run_task``: the same plus the summary rows and the
  sweep's extra metrics, replicate seeds in turn), beside the compiled event
  loop alone (``Simulation.advance`` to the end, states built in setup), the
  loop with its sampling (``Simulation.record``) and the plain-Python engine
  (``python-baseline``, trace only). ``extra_info`` of the public-API and
  sweep-task members splits one point's time (median of ``SPLIT_REPS``
  points timed with ``time.process_time`` around each step): the share
  outside the compiled sampled loop ``sample_run`` (issue #10: <= 20 %; the
  public-API member also against the loop alone), and where that share goes
  (workload generation, mode settings, state set-up, ``record`` around its
  compiled call, ``summarize``, the rest).

* ``engine-scale-limits``: ``scenarios/scale-limits.yaml`` (5,000 nodes,
  150,000 pods at 30 per node, maxPods 110, churn 20/s for 30 min, /8 pools
  so nothing runs out) through each mode, kernel and baseline. Besides time,
  ``extra_info`` records the state's bytes (``sum(a.nbytes for a in
  sim.state)``), the process RSS after the round and its peak so far.

A round times the event loop only: the state (``Simulation``) is built, and
its pages faulted in, in the pedantic ``setup``; the workload once per module. ``extra_info["ops"]``
is the number of workload events a round processes; timers fired are
recorded beside (``timers``). Kernels are compiled (or loaded from the cache)
by ``ipam_core.pipeline.warmup()`` and one untimed small run per mode before
anything is timed.

Run: ``/tmp/venv/bin/python -m pytest bench/test_bench_engine.py
--benchmark-json=results/bench-engine.json -q``; summary with
``bench/summarize.py``. See also ``bench/memory_scaling.py``.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import resource
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

import ipam_core.pipeline as engine_api
import ipam_core.pipeline.run as run_module
import ipam_core.engine.state as state_module
import ipam_core.sweep.tasks as tasks_module
import ipam_core.workloads.generators as generators_module
from ipam_core.engine import tables as T
from ipam_core.pipeline import simulate, summarize, warmup
from ipam_core.pipeline.run import Simulation, node_sample_mask, sample_times
from ipam_core.engine.state import named_arrays, state_nbytes
from ipam_core.scenario import load_scenario, parse_scenario, scenario_for_mode
from ipam_core.sweep.tasks import Task
from ipam_core.workloads import Workload, generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_engine import BaselineEngine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GROUP_1M = "engine-1M-events"
GROUP_SCALE = "engine-scale-limits"
GROUP_POINT = "small-point"
SPLIT_REPS = 40
SWEEP_REPLICATES = 8
MODES = ("kubernetes", "cluster-pool", "multi-pool")

NODES = 1_000
PODS_PER_NODE = 30
STEPS_PER_S = 1_000.0
DURATION_S = 485.0
SEED = 20_240_613
SLICE_EVENTS = 200_000  # the baseline's share: the fill and 84.5 s of churn

# The JSON of pytest-benchmark does not keep the command line; summarize.py reads it from here.
_PROG = [sys.executable, "-m", "pytest"] if sys.argv[0].endswith("__main__.py") else sys.argv[:1]
COMMAND = shlex.join(_PROG + sys.argv[1:])


# ---------------------------------------------------------------------------- inputs
@functools.cache
def scenario_1m(address_filter: str = "none"):
    return parse_scenario({
        "name": "engine-1M-events",
        "seed": SEED,
        "duration": DURATION_S,
        "sampleInterval": DURATION_S,
        "modes": ["cluster-pool"],
        "cluster": {"nodes": NODES, "kubelet": {"maxPods": 110}, "addressFilter": address_filter},
        "cilium": {"ipam": {"mode": "cluster-pool", "operator": {
            "clusterPoolIPv4PodCIDRList": ["10.0.0.0/8"], "clusterPoolIPv4MaskSize": 24}}},
        "workload": {"generator": "steady-churn", "podsPerNode": PODS_PER_NODE, "churnPerSecond": STEPS_PER_S},
    })


def workload_for(scenario) -> Workload:
    return generate(scenario.workload, nodes=scenario.cluster.nodes, max_pods=scenario.cluster.max_pods,
                    namespaces=[ns.name for ns in scenario.namespaces] or ["default"],
                    duration_s=scenario.duration_s, seed=scenario.seed)


@functools.cache
def workload_1m() -> Workload:
    return workload_for(scenario_1m())


def first_events(w: Workload, n: int) -> Workload:
    """The first ``n`` events of ``w`` (same names and pod ids)."""
    return Workload(w.time[:n], w.op[:n], w.node[:n], w.pod[:n], w.namespace[:n], w.pool[:n],
                    w.node_names, w.namespaces, w.pool_names, w.n_pods)


@functools.cache
def slice_1m() -> Workload:
    return first_events(workload_1m(), SLICE_EVENTS)


def end_time(w: Workload) -> float:
    """Just after the last event: a round processes every event and the timers due before."""
    return math.nextafter(float(w.time[-1]), math.inf)


@functools.cache
def scale_scenario(mode: str):
    return scenario_for_mode(load_scenario(REPO / "scenarios" / "scale-limits.yaml"), mode)


@functools.cache
def scale_workload() -> Workload:
    return workload_for(scale_scenario("cluster-pool"))


# ---------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module", autouse=True)
def _warm():
    """Compile (or load) the loop, then one untimed small run per mode."""
    warmup()
    small = parse_scenario({
        "name": "warm", "seed": 1, "duration": "60s",
        "cluster": {"nodes": 4},
        "workload": {"generator": "steady-churn", "podsPerNode": 10, "churnPerSecond": 5},
    })
    w = workload_for(small)
    for mode in MODES:
        sim = Simulation(scenario_for_mode(small, mode), w, mode)
        sim.advance(end_time(w))
        BaselineEngine(scenario_for_mode(small, mode), w, mode).advance(end_time(w))


def timers_fired(st) -> int:
    outstanding = st.core.cnt[T.K_HEAP] + st.core.cnt[T.K_RETRY_LEN] + st.core.timer.node_ring_pos[:, 1].sum()
    return int(st.core.cnt[T.K_SEQ] - outstanding)


def rss_bytes() -> tuple[int, int]:
    """Resident set size now and the process's peak so far, in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    page = resource.getpagesize()
    return resident_pages * page, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def record(benchmark, impl: str, ops: int, **info) -> None:
    # the 1-minute load average tells a quiet machine (about 1: this run) from a shared one
    benchmark.extra_info.update(ops=ops, impl=impl, command=COMMAND, loadavg_1min=os.getloadavg()[0], **info)


def record_speed(benchmark, events: int) -> None:
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None:  # absent under --benchmark-disable
        benchmark.extra_info["ns_per_op_min"] = stats.min / events * 1e9
        benchmark.extra_info["ns_per_op_median"] = stats.median / events * 1e9
        benchmark.extra_info["seconds_per_1M_events_median"] = stats.median / events * 1e6


def prefault(state) -> None:
    """Write one byte per page of every table (its own value), so the OS maps the pages now.

    ``np.zeros`` hands out pages that are mapped and zeroed on first write; without this a
    round would time ~10,000 page faults of the 70 MB pods table along with the loop.
    """
    for a in named_arrays(state).values():
        flat = a.reshape(-1).view(np.uint8)
        flat[:: resource.getpagesize()] = flat[:: resource.getpagesize()].copy()


def run_kernel(benchmark, scenario, w: Workload, mode: str, rounds: int) -> Simulation:
    t_end = end_time(w)
    sims: list[Simulation | None] = [None]  # the last round's state only: each one is large

    def setup():
        sims[0] = None
        sims[0] = Simulation(scenario, w, mode)
        prefault(sims[0].state)
        return (sims[0],), {}

    benchmark.pedantic(lambda sim: sim.advance(t_end), setup=setup, rounds=rounds, warmup_rounds=1)
    sim = sims[0]
    assert sim.state.core.cnt[T.K_EVENT] == len(w)
    return sim


def run_python(benchmark, scenario, w: Workload, mode: str, rounds: int) -> BaselineEngine:
    t_end = end_time(w)
    engines: list[BaselineEngine | None] = [None]

    def setup():
        engines[0] = None
        engines[0] = BaselineEngine(scenario, w, mode)
        return (engines[0],), {}

    benchmark.pedantic(lambda engine: engine.advance(t_end), setup=setup, rounds=rounds, warmup_rounds=1)
    engine = engines[0]
    assert engine.next_event == len(w)
    return engine


# ---------------------------------------------------------------------------- engine-1M-events
def test_workloads_are_what_the_groups_say():
    w = workload_1m()
    assert len(w) == 1_001_000
    assert np.count_nonzero(w.op >= 2) == 1_000_000  # pod creates and deletes
    assert len(slice_1m()) == SLICE_EVENTS and slice_1m().time[-1] > 10.0  # fill, retries and churn


@pytest.mark.benchmark(group=GROUP_1M)
def test_engine_1m_events_kernel(benchmark):
    w = workload_1m()
    sim = run_kernel(benchmark, scenario_1m(), w, "cluster-pool", rounds=5)
    assert sim.state.core.cnt[T.K_RUNNING] == NODES * PODS_PER_NODE and sim.state.core.cnt[T.K_FAILED] == 0
    record(benchmark, "kernel", len(w), mode="cluster-pool", nodes=NODES, slice="all",
           timers=timers_fired(sim.state), state_bytes=state_nbytes(sim.state))
    record_speed(benchmark, len(w))


@pytest.mark.benchmark(group=GROUP_1M)
def test_engine_1m_events_slice_kernel(benchmark):
    w = slice_1m()
    sim = run_kernel(benchmark, scenario_1m(), w, "cluster-pool", rounds=10)
    record(benchmark, "kernel", len(w), mode="cluster-pool", nodes=NODES, slice=f"first {SLICE_EVENTS} events",
           timers=timers_fired(sim.state), running=int(sim.state.core.cnt[T.K_RUNNING]))
    record_speed(benchmark, len(w))


@pytest.mark.benchmark(group=GROUP_1M)
def test_engine_1m_events_slice_python_baseline(benchmark):
    w = slice_1m()
    engine = run_python(benchmark, scenario_1m(), w, "cluster-pool", rounds=5)
    # same semantics, same counts as the kernel on the same events
    sim = Simulation(scenario_1m(), w, "cluster-pool")
    sim.advance(end_time(w))
    c = engine.c
    assert (c.running, c.pending, c.ip_allocs[0]) == (
        sim.state.core.cnt[T.K_RUNNING], sim.state.core.cnt[T.K_PENDING],
        sim.state.core.cnt[T.K_FAMILY_BASE + T.F_IP_ALLOCS])
    record(benchmark, "python-baseline", len(w), mode="cluster-pool", nodes=NODES,
           slice=f"first {SLICE_EVENTS} events", timers=engine.seq - len(engine.timers), running=c.running)
    record_speed(benchmark, len(w))


@pytest.mark.benchmark(group=GROUP_1M)
@pytest.mark.parametrize("mode, address_filter", [("cluster-pool", "none"), ("cluster-pool", "free"),
                                                  ("cluster-pool", "warm"), ("multi-pool", "none"),
                                                  ("multi-pool", "warm")])
def test_engine_1m_events_slice_address_filter(benchmark, mode, address_filter):
    """The slice with ``cluster.addressFilter`` off and on: the address-aware scheduler's per-event cost.

    Same events, same state sizes; the filter re-files a node after each pod's allocation and each
    CIDR or agent change (engine/core.py ``_sched_addresses_changed``). Nothing runs out here, so
    the placements are the same and the difference is the bookkeeping alone.
    """
    w = slice_1m()
    sc = scenario_for_mode(scenario_1m(address_filter), mode)
    sim = run_kernel(benchmark, sc, w, mode, rounds=10)
    assert sim.state.core.cnt[T.K_FAILED] == 0
    record(benchmark, "kernel", len(w), mode=mode, nodes=NODES, slice=f"first {SLICE_EVENTS} events",
           address_filter=address_filter, timers=timers_fired(sim.state), running=int(sim.state.core.cnt[T.K_RUNNING]))
    record_speed(benchmark, len(w))


# ---------------------------------------------------------------------------- engine-scale-limits
@pytest.mark.benchmark(group=GROUP_SCALE)
@pytest.mark.parametrize("mode", MODES)
def test_engine_scale_limits_kernel(benchmark, mode):
    scenario, w = scale_scenario(mode), scale_workload()
    sim = run_kernel(benchmark, scenario, w, mode, rounds=2)
    st = sim.state
    assert st.core.cnt[T.K_NODES] == 5_000 and st.core.cnt[T.K_READY] == 5_000
    assert st.core.cnt[T.K_RUNNING] == 150_000 and st.core.cnt[T.K_FAILED] == 0 and st.core.cnt[T.K_PENDING] == 0
    rss, peak = rss_bytes()
    record(benchmark, "kernel", len(w), events=len(w), nodes=5_000, live_pods=150_000, pod_ids=w.n_pods,
           max_pods=110, timers=timers_fired(st), state_bytes=state_nbytes(st),
           state_bytes_by_array={name: int(a.nbytes) for name, a in named_arrays(st).items()},
           rss_bytes=rss, peak_rss_bytes=peak)
    record_speed(benchmark, len(w))


@pytest.mark.benchmark(group=GROUP_SCALE)
@pytest.mark.parametrize("mode", MODES)
def test_engine_scale_limits_python_baseline(benchmark, mode):
    scenario, w = scale_scenario(mode), scale_workload()
    engine = run_python(benchmark, scenario, w, mode, rounds=2)
    assert engine.c.running == 150_000 and engine.c.failed == 0
    rss, peak = rss_bytes()
    record(benchmark, "python-baseline", len(w), events=len(w), nodes=5_000, live_pods=150_000,
           pod_ids=w.n_pods, timers=engine.seq - len(engine.timers), rss_bytes=rss, peak_rss_bytes=peak)
    record_speed(benchmark, len(w))


# ---------------------------------------------------------------------------- small-point
@functools.cache
def point_scenario():
    return load_scenario("default")


def point_states(sc, w):
    return [Simulation(scenario_for_mode(sc, mode), w, mode) for mode in sc.modes]


def split_point(run_point, reps: int) -> dict:
    """Median CPU seconds of one point and of its parts, each timed around its own calls.

    ``run_point()`` runs one point. Timed inside it: the compiled sampled loop
    (``sample_run``, its Numba dispatch included), the other compiled calls
    (``churn_events``, ``_scan_bounds``, ``summary_figures``,
    ``idle_figures``: the share outside every compiled call is recorded
    beside the share outside the loop), and outside the loop the
    workload generation, the mode settings (``_scenario_for_mode``), each
    mode's state set-up (``Simulation.__init__``), ``Simulation.record``
    around its compiled call, and the summary (``summarize``; in a sweep task
    its rows and the extra metrics); ``rest`` is what remains (``simulate``'s
    own steps, ``run_mode``'s result, a sweep task's dicts).
    The outside share is ``1 - sampled loop / point``, of the medians and
    as the median of the points' own shares.
    """
    import time

    timed_parts = ("sampled_loop", "other_compiled", "workload", "mode_settings", "state_setup", "record", "summarize")
    parts: dict[str, list[float]] = {k: [] for k in ("point", *timed_parts, "share")}
    spent = dict.fromkeys(timed_parts, 0.0)

    def timed(key, fn):
        def call(*args, **kwargs):
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.process_time() - t0
        return call

    patches = [(run_module, "sample_run", "sampled_loop"),
               # the other compiled calls of a point: events, workload bounds, summary and sweep reductions
               (generators_module, "churn_events", "other_compiled"), (state_module, "_scan_bounds", "other_compiled"),
               (engine_api, "summary_figures", "other_compiled"), (tasks_module, "idle_figures", "other_compiled"),
               (engine_api, "build_workload", "workload"),
               (engine_api, "_scenario_for_mode", "mode_settings"), (Simulation, "__init__", "state_setup"),
               (Simulation, "record", "record"), (engine_api, "summarize", "summarize"),
               (tasks_module, "summary_records", "summarize"), (tasks_module, "_extra_metrics", "summarize")]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, key in patches:
        setattr(obj, name, timed(key, getattr(obj, name)))
    try:
        for _ in range(reps):
            spent.update(dict.fromkeys(spent, 0.0))
            t0 = time.process_time()
            run_point()
            parts["point"].append(time.process_time() - t0)
            parts["share"].append(1.0 - spent["sampled_loop"] / parts["point"][-1])
            for key, value in spent.items():
                parts[key].append(value)
    finally:
        for obj, name, fn in saved:
            setattr(obj, name, fn)
    med = {k: float(np.median(v)) for k, v in parts.items()}
    record_outside = float(np.median(np.subtract(parts["record"], parts["sampled_loop"])))
    outside = ("workload", "mode_settings", "state_setup", "summarize")
    return {
        "point_cpu_s_median": med["point"],
        "sampled_loop_cpu_s_median": med["sampled_loop"],
        **{f"{k}_cpu_s_median": med[k] for k in outside},
        "record_outside_loop_cpu_s_median": record_outside,
        "rest_cpu_s_median": med["point"] - med["sampled_loop"] - record_outside - sum(med[k] for k in outside),
        "outside_share_vs_sampled_loop": 1.0 - med["sampled_loop"] / med["point"],
        "outside_share_median_of_points": med["share"],
        # the compiled calls besides the loop (timed inside the parts above too)
        "other_compiled_cpu_s_median": med["other_compiled"],
        "outside_share_vs_all_compiled": 1.0 - (med["sampled_loop"] + med["other_compiled"]) / med["point"],
    }


def advance_alone(sc, reps: int) -> float:
    """Median CPU seconds of the compiled event loop alone through the point's modes (states built untimed)."""
    import time

    w = engine_api.build_workload(sc)
    times = []
    for _ in range(reps):
        sims = point_states(sc, w)
        t0 = time.process_time()
        for sim in sims:
            sim.advance(math.nextafter(sc.duration_s, math.inf))
        times.append(time.process_time() - t0)
    return float(np.median(times))


@pytest.mark.benchmark(group=GROUP_POINT)
def test_small_point_simulate_summarize(benchmark):
    sc = point_scenario()
    warmup(sc)
    table = benchmark.pedantic(lambda: summarize(simulate(sc)), rounds=40, warmup_rounds=2)
    assert table.num_rows == 3
    reps = SPLIT_REPS if benchmark.enabled else 2
    split = split_point(lambda: engine_api.summarize(engine_api.simulate(sc)), reps)
    loop_alone = advance_alone(sc, reps)
    record(benchmark, "kernel", 1, member="public API: simulate + summarize", modes=list(sc.modes), **split,
           advance_alone_cpu_s_median=loop_alone,
           outside_share_vs_advance_alone=1.0 - loop_alone / split["point_cpu_s_median"])


def sweep_tasks(sc, n: int) -> list[Task]:
    """``n`` replicates of the point, seeded as ``ipam-bench sweep`` seeds them (spec seed 0)."""
    seeds = [int(np.random.SeedSequence([0, r]).generate_state(1, dtype=np.uint32)[0]) for r in range(n)]
    return [Task(f"bench-{r}", 0, r, seed, sc, tuple(sc.modes)) for r, seed in enumerate(seeds)]


@pytest.mark.benchmark(group=GROUP_POINT)
def test_small_point_sweep_task(benchmark):
    sc = point_scenario()
    warmup(sc)
    tasks = itertools.cycle(sweep_tasks(sc, SWEEP_REPLICATES))
    out = benchmark.pedantic(lambda: tasks_module.run_task(next(tasks)), rounds=40, warmup_rounds=2)
    assert [row["mode"] for row in out["rows"]] == list(sc.modes)
    record(benchmark, "kernel", 1, member=f"sweep task (run_task), {SWEEP_REPLICATES} replicate seeds in turn",
           modes=list(sc.modes), **split_point(lambda: tasks_module.run_task(next(tasks)),
                                               SPLIT_REPS if benchmark.enabled else 2))


@pytest.mark.benchmark(group=GROUP_POINT)
def test_small_point_advance_alone(benchmark):
    sc = point_scenario()
    w = engine_api.build_workload(sc)
    t_end = math.nextafter(sc.duration_s, math.inf)  # where the sampled run stops

    def setup():
        return (point_states(sc, w),), {}

    def run(sims):
        for sim in sims:
            sim.advance(t_end)
        return sims

    sims = benchmark.pedantic(run, setup=setup, rounds=40, warmup_rounds=1)
    assert all(sim.state.core.cnt[T.K_EVENT] == len(w) for sim in sims)
    record(benchmark, "kernel", 1, member="compiled event loop alone, 3 modes")


@pytest.mark.benchmark(group=GROUP_POINT)
def test_small_point_sampled_loop(benchmark):
    sc = point_scenario()
    w = engine_api.build_workload(sc)
    times = sample_times(sc.duration_s, sc.sample_interval_s)
    nodes = node_sample_mask(times.size, max(1, round(sc.node_sample_interval_s / sc.sample_interval_s)))

    def setup():
        return (point_states(sc, w),), {}

    def run(sims):
        return [sim.record(times, nodes) for sim in sims]

    out = benchmark.pedantic(run, setup=setup, rounds=40, warmup_rounds=1)
    assert [trace["time_s"].size for trace, _ in out] == [times.size] * 3
    record(benchmark, "kernel", 1, member="compiled loop with its sampling + result arrays, 3 modes")


@pytest.mark.benchmark(group=GROUP_POINT)
def test_small_point_python_baseline(benchmark):
    from baseline_engine import run_baseline

    sc = point_scenario()
    w = engine_api.build_workload(sc)
    times = sample_times(sc.duration_s, sc.sample_interval_s)
    runs = benchmark.pedantic(
        lambda: [run_baseline(scenario_for_mode(sc, m), w, m, times) for m in sc.modes], rounds=2, warmup_rounds=0
    )
    assert [r["time_s"].size for r in runs] == [times.size] * 3
    record(benchmark, "python-baseline", 1, member="plain-Python engine (trace only), 3 modes")
