"""The shortcuts that keep a small point's Python work small give what the long way gives.

Issue #10: the compiled summary reductions, state templates, lazily built
columns and the per-process caches of mode settings and layouts must leave
every result as it was.
"""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ipam_core.pipeline.run as run_module
from ipam_core.pipeline import SUMMARY_NAMES, _scenario_for_mode, build_workload, simulate, summarize, summary_records
from ipam_core.engine import sampling as S
from ipam_core.pipeline.run import LazyColumns, Simulation, workload_facts
from ipam_core.engine.state import _new_state, build_state, named_arrays
from ipam_core.engine.summary import cast_mean_sum, idle_figures, pairwise_sum, summary_figures
from ipam_core.modes import get_mode
from ipam_core.scenario import load_scenario, scenario_for_mode
from ipam_core.scenario.defaults import ALL_MODES
from ipam_core.sweep.tasks import _extra_metrics, _extra_metrics_numpy
from ipam_core.workloads import generate, parse_workload
from ipam_core.workloads.events import OP_POD_ADD
from ipam_core.trace.metrics import startup_end

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ compiled summary
@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 3000), stride=st.integers(1, 3), start=st.integers(0, 2),
       scale=st.floats(1e-3, 1e9), seed=st.integers(0, 2**32 - 1))
def test_pairwise_sum_adds_in_numpys_order(n, stride, start, scale, seed):
    a = np.random.default_rng(seed).random(start + n * stride) * scale
    view = a[start::stride][:n]
    assert pairwise_sum(a, start, n, stride) == np.add.reduce(view)  # exactly, not approximately


def test_pairwise_sum_of_long_runs_and_signed_zero():
    a = np.random.default_rng(5).random(300_001) * 1e6
    for n in (129, 1024, 8191, 8192, 8193, 300_001):
        assert pairwise_sum(a, 0, n, 1) == np.add.reduce(a[:n])
    assert repr(float(pairwise_sum(np.array([-0.0]), 0, 1, 1))) == repr(float(np.add.reduce(np.array([-0.0]))))


def numpy_figures(block: np.ndarray, warm: np.ndarray, nf: int, f: int) -> tuple:
    """The numpy reductions the compiled summary replaced, for family index ``f``."""
    tr = block[:, f::nf]
    carved = tr[S.TR_CARVED].astype(np.float64)
    has = carved > 0
    shares = tr[[S.TR_IDLE, S.TR_RESERVED]][:, has] / carved[has]
    sums = np.add.reduce(shares, axis=1).tolist() if has.any() else [0.0, 0.0]
    after = startup_end(tr[S.TR_PENDING], tr[S.TR_RUNNING])
    return (tr[:, -1].tolist(), tr.max(axis=1).tolist(), int(tr[S.TR_PENDING, after:].max()), sums,
            int(has.sum()), float(np.add.reduce(warm[f::nf])))


@settings(max_examples=150, deadline=None)
@given(samples=st.integers(1, 400), nf=st.integers(1, 2), seed=st.integers(0, 2**32 - 1),
       never_carved=st.booleans())
def test_summary_figures_equal_numpy_reductions(samples, nf, seed, never_carved):
    rng = np.random.default_rng(seed)
    block = rng.integers(0, 50, (len(S.TRACE_COUNTERS), samples * nf)).astype(np.int64)
    block[S.TR_CARVED] = 0 if never_carved else rng.integers(0, 3, samples * nf) * rng.integers(1, 10**6)
    warm = rng.random(samples * nf) * 100
    ints, floats = summary_figures(block, warm, nf)
    n = len(S.TRACE_COUNTERS)
    for f in range(nf):
        last, peak, pending, (idle, reserved), carved_samples, warm_sum = numpy_figures(block, warm, nf, f)
        assert ints[f, :n].tolist() == last and ints[f, n : 2 * n].tolist() == peak
        assert ints[f, 2 * n] == pending
        assert floats[f].tolist() == [idle, reserved, carved_samples, warm_sum]


def reference_summary_rows(result) -> list[tuple]:
    """summarize's figures computed as it did before (numpy over each family's trace columns)."""
    rows = []
    for m in result.modes:
        nf = len(m.families)
        block = np.stack([np.asarray(m.trace[k], dtype=np.int64) for k in S.TRACE_COUNTERS])
        for fi, family in enumerate(m.families):
            tr = block[:, fi::nf]
            carved = tr[S.TR_CARVED].astype(np.float64)
            has = carved > 0
            if has.any():
                shares = tr[[S.TR_IDLE, S.TR_RESERVED]][:, has] / carved[has]
                idle, reserved = (100.0 * (np.add.reduce(shares, axis=1) / shares.shape[1])).tolist()
            else:
                idle = reserved = 0.0
            after = startup_end(tr[S.TR_PENDING], tr[S.TR_RUNNING])
            warm = np.asarray(m.trace["warm_addrs_per_node"])[fi::nf]
            rows.append((m.mode, family, int(tr[S.TR_FAILED, -1]), int(tr[S.TR_PENDING, after:].max()),
                         int(tr[S.TR_USED].max()), round(idle, 1), round(reserved, 1),
                         round(float(np.add.reduce(warm) / warm.size), 1)))
    return rows


@pytest.mark.parametrize("path", ["default", "dual-stack", "cluster-pool-exhaustion"])
def test_summary_equals_the_numpy_summary(path):
    sc = load_scenario(path if path == "default" else str(REPO / "scenarios" / f"{path}.yaml"))
    result = simulate(sc)
    got = [(r["mode"], r["family"], r["pods_failed"], r["peak_pending"], r["peak_used"], r["idle_pct"],
            r["reserved_pct"], r["warm_per_node"]) for r in summarize(result).to_pylist()]
    assert got == reference_summary_rows(result)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 20_000), seed=st.integers(0, 2**32 - 1))
def test_cast_mean_sum_is_the_sum_np_mean_takes(n, seed):
    values = np.random.default_rng(seed).integers(0, 2**40, n)
    total = cast_mean_sum(values.astype(np.float64), n)
    if n:
        assert total / n == values.mean()  # bit for bit
    else:
        assert total == 0.0


@settings(max_examples=100, deadline=None)
@given(samples=st.integers(1, 9000), nf=st.integers(1, 2), seed=st.integers(0, 2**32 - 1))
def test_sweep_idle_figures_equal_the_numpy_ones(samples, nf, seed):
    rng = np.random.default_rng(seed)
    block = np.zeros((len(S.TRACE_COUNTERS), samples * nf), dtype=np.int64)
    block[S.TR_IDLE] = rng.integers(0, 10**7, samples * nf)
    block[S.TR_FAILED_FREE] = np.cumsum(rng.random(samples * nf) < 0.3)  # cumulative, as in a trace
    families = (4, 6)[:nf]
    mode = run_module.ModeResult("m", families, {}, {}, 0, counters=block)
    trace = {"family": np.tile(np.array(families), samples), "addrs_idle": block[S.TR_IDLE],
             "pods_failed_free_elsewhere": block[S.TR_FAILED_FREE]}
    sums, counts = idle_figures(block, nf)
    for f, family in enumerate(families):
        idle = block[S.TR_IDLE, f::nf]
        stranding = np.diff(block[S.TR_FAILED_FREE, f::nf], prepend=0) > 0
        assert sums[f, 0] / counts[f, 0] == idle.mean()
        if stranding.any():
            assert sums[f, 1] / counts[f, 1] == idle[stranding].mean()
        assert counts[f, 2] == idle.max()
        assert _extra_metrics(mode)[family] == _extra_metrics_numpy(trace, family)


@pytest.mark.parametrize("path", ["default", "dual-stack"])
def test_summary_records_are_the_summary_tables_rows(path):
    sc = load_scenario(path if path == "default" else str(REPO / "scenarios" / f"{path}.yaml"))
    result = simulate(sc)
    rows = [dict(zip(SUMMARY_NAMES, record)) for record in summary_records(result)]
    table_rows = summarize(result).to_pylist()
    assert rows == table_rows
    assert [[type(v) for v in row.values()] for row in rows] == [[type(v) for v in row.values()] for row in table_rows]


# ------------------------------------------------------------------ state templates
@pytest.mark.parametrize("mode", ["kubernetes", "cluster-pool", "multi-pool"])
def test_state_from_template_equals_a_state_built_from_scratch(mode):
    sc = scenario_for_mode(load_scenario("default"), mode)
    w = build_workload(sc)
    sim = Simulation(sc, w, mode)
    b = workload_facts(w, sim.config.pod_retry_s)
    args = (len(w.node_names), w.n_pods, b.node_adds, b.max_live, b.stale_timers)
    for seed in (0, 1, 2**40 + 3):
        config = dataclasses.replace(sim.config, seed=seed)
        fresh = named_arrays(_new_state(sim.layout, config, *args))
        copied = named_arrays(build_state(sim.layout, config, *args))  # from the template the Simulation left
        assert list(fresh) == list(copied)
        for name, a, c in zip(fresh, fresh.values(), copied.values()):
            assert (a.dtype, a.shape) == (c.dtype, c.shape), name
            assert a.tobytes() == c.tobytes(), name
            assert c.flags.writeable and c.flags.c_contiguous, name
    # a run's writes never reach the template the next state copies
    sim.advance(sc.duration_s)
    again = build_state(sim.layout, sim.config, *args)
    again, fresh = named_arrays(again), named_arrays(_new_state(sim.layout, sim.config, *args))
    for name, a, c in zip(again, fresh.values(), again.values()):
        assert a.tobytes() == c.tobytes(), name


def test_runs_with_different_seeds_from_one_template_differ_as_they_should():
    sc = load_scenario("default")
    first = summarize(simulate(dataclasses.replace(sc, seed=11)))
    other = summarize(simulate(dataclasses.replace(sc, seed=12)))
    again = summarize(simulate(dataclasses.replace(sc, seed=11)))
    drop = ["wall_s"]
    assert first.drop_columns(drop).equals(again.drop_columns(drop))
    assert not first.drop_columns(drop).equals(other.drop_columns(drop))


# ------------------------------------------------------------------ lazy columns
def test_columns_are_built_on_first_read_only():
    calls = []
    cols = LazyColumns(lambda: calls.append(1) or {"a": np.arange(3)})
    assert calls == [] and "not built" in repr(cols)
    assert list(cols) == ["a"] and cols["a"].tolist() == [0, 1, 2]
    cols["b"] = 5
    assert dict(cols) == {"a": cols["a"], "b": 5} and calls == [1]
    assert pickle.loads(pickle.dumps(cols)).keys() == {"a", "b"}


def test_a_summarised_run_never_formats_its_node_cidrs(monkeypatch):
    sc = load_scenario("default")
    result = simulate(sc)
    formatted = []
    monkeypatch.setattr(Simulation, "_cidr_text", lambda self, *a: formatted.append(self.mode))
    summarize(result)
    assert formatted == []
    result.modes[0].nodes["used"]  # the first read builds the columns
    assert formatted == [result.modes[0].mode]


# ------------------------------------------------------------------ mode settings and layouts
def test_every_mode_layout_reads_only_the_ipam_settings():
    """run._layout_of keys a mode's layout by the IPAM settings object alone."""
    for mode in ALL_MODES:
        source = inspect.getsource(get_mode(mode).layout).split('"""')[-1]  # the body, after the docstring
        assert set(re.findall(r"scenario\.(\w+)", source)) <= {"ipam"}, mode


@pytest.mark.parametrize("path", ["default", "dual-stack", "multi-pool-teams", "cloud-modes"])
def test_cached_mode_scenarios_equal_scenario_for_mode(path):
    sc = load_scenario(path if path == "default" else str(REPO / "scenarios" / f"{path}.yaml"))
    for mode in sc.modes:
        want = scenario_for_mode(sc, mode)
        assert _scenario_for_mode(sc, mode) == want
        reseeded = dataclasses.replace(sc, seed=sc.seed + 1)  # what a sweep replicate runs: same settings object
        assert _scenario_for_mode(reseeded, mode) == scenario_for_mode(reseeded, mode)
        assert _scenario_for_mode(reseeded, mode).ipam is _scenario_for_mode(sc, mode).ipam
        module = get_mode(mode)
        assert run_module._layout_of(module, mode, want) == module.layout(want)


def test_layout_cache_follows_the_settings_object():
    sc = scenario_for_mode(load_scenario("default"), "cluster-pool")
    module = get_mode("cluster-pool")
    first = run_module._layout_of(module, "cluster-pool", sc)
    assert run_module._layout_of(module, "cluster-pool", sc) is first
    other_ipam = dataclasses.replace(sc.ipam, cluster_pool_v4_mask=27)
    other = run_module._layout_of(module, "cluster-pool", dataclasses.replace(sc, ipam=other_ipam))
    assert other.sets[0].node_mask == 27 and first.sets[0].node_mask == 26


# ------------------------------------------------------------------ multi-pool pool resolution
def test_pod_attributes_key_is_set_only_where_a_few_numbers_decide_the_pods():
    base = {"generator": "steady-churn", "podsPerNode": 5, "churnPerSecond": 2}
    plain = [generate(parse_workload(base), nodes=3, max_pods=110, namespaces=["a", "b"], duration_s=60, seed=s)
             for s in (1, 2)]
    assert plain[0].pod_attributes_key == plain[1].pod_attributes_key == ("round-robin", plain[0].n_pods, ("a", "b"))
    for w in plain:  # what the key promises: pod i is in namespace i % 2, without a pool
        adds = w.op == OP_POD_ADD
        assert (w.namespace[adds] == w.pod[adds] % 2).all() and (w.pool == -1).all()
    for extra in ({"namespaceWeights": {"a": 1, "b": 2}}, {"podPoolFractions": {"blue": 0.5}}):
        w = generate(parse_workload({**base, **extra}), nodes=3, max_pods=110, namespaces=["a", "b"],
                     duration_s=60, seed=1)
        assert w.pod_attributes_key is None


def test_pod_pool_resolution_is_reused_for_equal_pod_attributes(monkeypatch):
    teams = load_scenario(str(REPO / "scenarios" / "multi-pool-teams.yaml"))
    # round-robin over the teams' namespaces, whose annotations pick different pools
    sc = dataclasses.replace(teams, workload=dataclasses.replace(teams.workload, namespace_weights=()))
    mode_sc = _scenario_for_mode(sc, "multi-pool")
    calls = []
    real = run_module.resolve_pod_pools
    monkeypatch.setattr(run_module, "resolve_pod_pools", lambda *a: calls.append(1) or real(*a))
    run_module._POD_POOLS.clear()
    for seed in (1, 2, 1):
        seeded = dataclasses.replace(mode_sc, seed=seed)
        w = build_workload(seeded)
        sim = Simulation(seeded, w, "multi-pool")
        b = workload_facts(w, sim.config.pod_retry_s)
        want = _new_state(sim.layout, sim.config, len(w.node_names), w.n_pods, b.node_adds, b.max_live, b.stale_timers)
        real(want, sim.layout, seeded, w)
        assert sim.state.core.pod_tables.pod_pool.tobytes() == want.core.pod_tables.pod_pool.tobytes()
        assert len(np.unique(want.core.pod_tables.pod_pool[: w.n_pods, 0])) > 1  # a resolution worth checking
    assert calls == [1]  # resolved once, copied twice
    # another namespace list is another key: resolved again
    other = dataclasses.replace(mode_sc, namespaces=mode_sc.namespaces[:2])
    Simulation(other, build_workload(other), "multi-pool")
    assert calls == [1, 1]
