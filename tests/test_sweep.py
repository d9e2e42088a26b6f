"""Sweeps: spec validation, sampling, seeds, results keyed by parameters, resume, executors, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ipam_core.cli import app
from ipam_core.errors import ConfigError
from ipam_core.sweep import WALL_COLUMNS, aggregate, load_spec, plan, read_sweep, resolve_path, run_sweep, t_interval
from ipam_core.sweep.results import POINTS_DIR
from ipam_core.sweep.sampling import sample_points
from ipam_core.sweep.tasks import make_tasks
from sweep_specs import TINY, write_spec

runner = CliRunner()
MASK = "ipam.operator.clusterPoolIPv4MaskSize"


def test_axis_paths_read_helm_keys_under_cilium_and_indices():
    assert resolve_path(MASK) == ("cilium", "ipam", "operator", "clusterPoolIPv4MaskSize")
    assert resolve_path("cluster.nodes") == ("cluster", "nodes")
    assert resolve_path("manifests[0].spec.ipv4.maskSize") == ("manifests", 0, "spec", "ipv4", "maskSize")
    assert resolve_path("manifests.1.spec") == ("manifests", 1, "spec")
    with pytest.raises(ConfigError, match="'clustr' is not a scenario key"):
        resolve_path("clustr.nodes")


def test_every_point_sets_its_values_into_the_scenario(tmp_path):
    spec = load_spec(write_spec(tmp_path, {MASK: [24, 26], "cluster.nodes": [2, 5], "ipam.mode": ["multi-pool"]}))
    points = plan(spec)
    assert [p.params for p in points] == [
        {MASK: 24, "cluster.nodes": 2, "ipam.mode": "multi-pool"}, {MASK: 24, "cluster.nodes": 5, "ipam.mode": "multi-pool"},
        {MASK: 26, "cluster.nodes": 2, "ipam.mode": "multi-pool"}, {MASK: 26, "cluster.nodes": 5, "ipam.mode": "multi-pool"}]
    got = [(p.scenario.ipam.cluster_pool_v4_mask, p.scenario.cluster.nodes, p.modes) for p in points]
    assert got == [(24, 2, ("multi-pool",)), (24, 5, ("multi-pool",)), (26, 2, ("multi-pool",)), (26, 5, ("multi-pool",))]


@pytest.mark.parametrize("sampling", ["random", "latin-hypercube"])
def test_random_and_latin_hypercube_are_seeded_and_stay_in_range(tmp_path, sampling):
    axes = {"workload.churnPerSecond": {"min": 0.5, "max": 4.0}, "cluster.nodes": {"min": 2, "max": 6}, MASK: [24, 25]}
    a = sample_points(load_spec(write_spec(tmp_path, axes, sampling=sampling, samples=12, seed=3)))
    b = sample_points(load_spec(write_spec(tmp_path, axes, sampling=sampling, samples=12, seed=3)))
    c = sample_points(load_spec(write_spec(tmp_path, axes, sampling=sampling, samples=12, seed=4)))
    assert a == b and a != c and len(a) == 12
    assert all(0.5 <= p["workload.churnPerSecond"] <= 4.0 and p["cluster.nodes"] in range(2, 7) for p in a)
    assert all(isinstance(p["cluster.nodes"], int) and p[MASK] in (24, 25) for p in a)


def test_latin_hypercube_uses_every_stratum_once(tmp_path):
    spec = load_spec(write_spec(tmp_path, {"workload.churnPerSecond": {"min": 0.0, "max": 10.0}},
                                sampling="latin-hypercube", samples=10))
    strata = sorted(int(p["workload.churnPerSecond"]) for p in sample_points(spec))
    assert strata == list(range(10))


def test_seeds_common_per_replicate_or_per_point(tmp_path):
    spec = load_spec(write_spec(tmp_path, {MASK: [24, 25]}, replicates=3, seed=7))
    seeds = [(t.point, t.replicate, t.seed) for t in make_tasks(spec, plan(spec))]
    by_rep = {r: {s for p, rr, s in seeds if rr == r} for r in range(3)}
    assert all(len(v) == 1 for v in by_rep.values()) and len({next(iter(v)) for v in by_rep.values()}) == 3
    # the formula docs/sweep.md gives
    assert by_rep[2] == {int(np.random.SeedSequence([7, 2]).generate_state(1, dtype=np.uint32)[0])}
    spec_p = load_spec(write_spec(tmp_path, {MASK: [24, 25]}, replicates=3, seed=7, seedBy="point"))
    per_point = [t.seed for t in make_tasks(spec_p, plan(spec_p))]
    assert len(set(per_point)) == 6


BAD_POINTS = [
    ({MASK: [24, 33]}, "sweep axis ipam.operator.clusterPoolIPv4MaskSize value 33: "),
    ({"cluster.nodes": [2, 0]}, "sweep axis cluster.nodes value 0: "),
    ({"ipam.mode": ["cluster-pool", "calico"]}, "sweep axis ipam.mode value calico: "),
    ({"clustr.nodes": [2]}, "sweep axis 'clustr.nodes': 'clustr' is not a scenario key"),
]


@pytest.mark.parametrize("axes, message", BAD_POINTS)
def test_one_bad_point_is_one_line_exit_2_and_nothing_written(tmp_path, axes, message):
    spec = write_spec(tmp_path, axes)
    out = tmp_path / "out"
    result = runner.invoke(app, ["sweep", spec, "--out", str(out)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ipam-bench: error: " + message), result.stderr
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    ({"sampling": "sobol"}, "sampling: 'sobol'"),
    ({"samples": 5}, "samples: set with sampling: grid"),
    ({"replicates": 0}, "replicates: 0 is not an integer ≥ 1"),
    ({"axez": {}}, "axez: unknown key"),
])
def test_bad_spec_keys_are_one_line(tmp_path, extra, message):
    result = runner.invoke(app, ["sweep", write_spec(tmp_path, {MASK: [24]}, **extra), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def _table(path):
    table, meta = read_sweep(path)
    return table.drop_columns(list(WALL_COLUMNS)), meta


def test_table_rows_are_points_x_modes_x_replicates_with_params_and_metrics(tmp_path):
    spec = load_spec(write_spec(tmp_path, {MASK: [24, 27]}, modes=["cluster-pool", "multi-pool"], replicates=2))
    run = run_sweep(spec, tmp_path / "out", workers=1)
    table, meta = read_sweep(run.table_path)
    assert table.num_rows == 2 * 2 * 2
    rows = table.select(["point", MASK, "mode", "replicate"]).to_pylist()
    assert [(r["point"], r[MASK], r["mode"], r["replicate"]) for r in rows] == [
        (p, m, mode, r) for p, m in ((0, 24), (1, 27)) for mode in ("cluster-pool", "multi-pool") for r in (0, 1)]
    for col in ("pods_failed", "failed_free_elsewhere", "peak_carved", "idle_pct", "reserved_pct", "stranded_mean",
                "largest_free_block_end", "cidr_carves", "cidr_releases", "cloud_api_calls", "wall_s", "seed"):
        assert col in table.column_names
    # a /27 per node (30 pods after router and health) cannot hold 40 pods per node: failures; a /24 can
    failed = {(r[MASK], r["mode"]): r["pods_failed"] for r in table.select([MASK, "mode", "pods_failed"]).to_pylist()}
    assert failed[(24, "cluster-pool")] == 0 and failed[(27, "cluster-pool")] > 0
    assert meta["name"] == "t" and meta["replicates"] == 2 and MASK in meta["spec"]
    assert {"numpy", "numba", "pyarrow"} <= set(meta["versions"])


def test_same_spec_same_table_whatever_the_worker_count(tmp_path):
    spec = load_spec(write_spec(tmp_path, {MASK: [24, 26], "cluster.nodes": [2, 3]}, replicates=2))
    one = run_sweep(spec, tmp_path / "w1", workers=1)
    two = run_sweep(spec, tmp_path / "w2", workers=2)
    a, meta_a = _table(one.table_path)
    b, meta_b = _table(two.table_path)
    assert a.equals(b) and meta_a == meta_b
    assert a.schema.metadata == b.schema.metadata


def test_interrupted_sweep_resumes_and_loses_nothing(tmp_path):
    spec = load_spec(write_spec(tmp_path, {MASK: [24, 25, 26]}, replicates=2))
    out = tmp_path / "out"
    calls = []

    def stop_after_two(done, total):
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, workers=1, progress=stop_after_two)
    from ipam_core.sweep.results import done_keys

    assert len(done_keys(out)) == 2  # both finished tasks were written before the interrupt propagated
    assert not [p for p in (out / POINTS_DIR).iterdir() if p.name.startswith(".")]  # no half-written file
    resumed = run_sweep(spec, out, workers=2)
    assert (resumed.skipped, resumed.ran) == (2, 4)
    fresh = run_sweep(spec, tmp_path / "fresh", workers=1)
    assert _table(resumed.table_path)[0].equals(_table(fresh.table_path)[0])
    again = run_sweep(spec, out, workers=1)
    assert (again.skipped, again.ran) == (6, 0)


def test_t_interval_matches_the_textbook():
    # n=5, s=2: t(0.975, 4) = 2.7764 -> half width 2.7764 * 2 / sqrt(5) = 2.4833
    lo, hi = t_interval(10.0, 2.0, 5)
    assert math.isclose(hi - 10.0, 2.4833, abs_tol=1e-3) and math.isclose(10.0 - lo, hi - 10.0)
    assert all(math.isnan(v) for v in t_interval(1.0, 0.0, 1))


def test_aggregate_mean_and_interval_over_replicates(tmp_path):
    spec = load_spec(write_spec(tmp_path, {MASK: [27]}, modes=["cluster-pool"], replicates=4))
    table, _ = read_sweep(run_sweep(spec, tmp_path / "out", workers=2).table_path)
    agg = aggregate(table, ["point", "mode", "family"], ["pods_failed"]).to_pylist()[0]
    values = np.asarray(table["pods_failed"].to_pylist(), dtype=float)
    assert agg["replicates"] == 4 and math.isclose(agg["pods_failed_mean"], values.mean())
    half = 3.1824 * values.std(ddof=1) / 2  # t(0.975, 3) = 3.1824
    assert math.isclose(agg["pods_failed_hi"] - agg["pods_failed_mean"], half, rel_tol=1e-3, abs_tol=1e-9)


def test_cli_sweep_prints_points_writes_table_aggregate_and_plots(tmp_path):
    out = tmp_path / "out"
    spec = write_spec(tmp_path, {MASK: [24, 27], "cluster.nodes": [2, 3]}, modes=["cluster-pool", "multi-pool"])
    result = runner.invoke(app, ["sweep", spec, "--out", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "clusterPoolIPv4MaskSize" in result.stdout and "multi-pool v4" in result.stdout
    for name in ("sweep.parquet", "aggregate.csv", "sweep-tradeoff.png", "sweep-axes.png", "sweep-heatmap.png",
                 "spec.yaml", "sweep.json"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "sweep.json").read_text())["ran"] == 4
    assert pq.read_table(out / "sweep.parquet").num_rows == 4 * 2
    rerun = runner.invoke(app, ["sweep", spec, "--out", str(out), "--no-plot"])
    assert rerun.exit_code == 0 and "0 run(s), 4 already done" in rerun.stdout
    # ipam-bench plot dispatches on the folder: a sweep folder gets the sweep figures
    (out / "sweep-heatmap.png").unlink()
    replot = runner.invoke(app, ["plot", str(out)])
    assert replot.exit_code == 0 and (out / "sweep-heatmap.png").is_file()


def test_keep_traces_writes_a_trace_per_task(tmp_path):
    spec = load_spec(write_spec(tmp_path, {MASK: [24]}, modes=["cluster-pool"], replicates=2))
    run = run_sweep(spec, tmp_path / "out", workers=1, keep_traces=True)
    from ipam_core.trace import read_trace

    for task in run.tasks:
        assert read_trace(tmp_path / "out" / "traces" / task.key).num_rows > 0


def test_workers_below_one_is_refused_before_writing(tmp_path):
    result = runner.invoke(app, ["sweep", write_spec(tmp_path, {MASK: [24]}), "--out", str(tmp_path / "o"),
                                 "--workers", "0"])
    assert result.exit_code == 2 and "--workers 0" in result.stderr and not (tmp_path / "o").exists()


def test_the_shipped_example_specs_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "scenarios" / "sweeps"
    specs = sorted(root.glob("*.yaml"))
    assert specs
    for path in specs:
        text = path.read_text()
        if "size:" in text:
            from ipam_core.sweep.size import load_size_spec

            load_size_spec(path)
        else:
            assert plan(load_spec(path))


def test_tiny_base_is_valid():
    assert TINY["cluster"]["nodes"] == 3


def test_progress_bar_shows_tasks_done_and_eta(monkeypatch):
    import io
    import sys

    from rich.console import Console

    import ipam_core.cli as cli

    buf = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=buf, force_terminal=True, width=120))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with cli._task_bar("sweep") as progress:
        progress(1, 4)
        progress(4, 4)
    text = buf.getvalue()
    assert "4/4" in text and "ETA" in text


def test_cloud_warm_target_and_preallocate_axes_reach_the_scenario(tmp_path):
    from pathlib import Path

    base = Path(__file__).resolve().parent.parent / "scenarios" / "cloud-modes.yaml"
    spec_path = tmp_path / "cloud.yaml"
    spec_path.write_text(f"base: {base}\naxes:\n  cloud.awsVpcCni.WARM_IP_TARGET: [0, 4]\n"
                         "  ipam.operator.preAllocate: [2, 16]\nmodes: [aws-vpc-cni, eni]\n")
    points = plan(load_spec(spec_path))
    got = [(p.scenario.ipam.cloud.vpc_cni.warm_ip_target, p.scenario.ipam.cloud.watermarks.pre_allocate, p.modes)
           for p in points]
    assert got == [(0, 2, ("aws-vpc-cni", "eni")), (0, 16, ("aws-vpc-cni", "eni")), (4, 2, ("aws-vpc-cni", "eni")),
                   (4, 16, ("aws-vpc-cni", "eni"))]


def test_a_combination_bad_only_together_names_every_value(tmp_path):
    axes = {"ipam.operator.clusterPoolIPv4PodCIDRList": [["10.0.0.0/24"]], MASK: [20]}
    result = runner.invoke(app, ["sweep", write_spec(tmp_path, axes), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith('ipam-bench: error: sweep point ipam.operator.clusterPoolIPv4PodCIDRList='
                                    '["10.0.0.0/24"], ipam.operator.clusterPoolIPv4MaskSize=20: ')
    assert not (tmp_path / "o").exists()


def test_pareto_front_keeps_only_points_nothing_beats_on_both():
    from ipam_core.sweep_plot import pareto_front

    cost = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    risk = np.array([0.0, 9.0, 1.0, 5.0, 1.0])
    # (4, 1) is beaten by (3, 1); every other point is best on one side
    assert pareto_front(cost, risk).tolist() == [1, 3, 2, 0]


def test_workers_started_beside_other_threads_give_the_same_table(tmp_path):
    import threading

    from ipam_core.sweep.executors import _context

    spec = load_spec(write_spec(tmp_path, {MASK: [24, 27]}, replicates=2))
    forked = run_sweep(spec, tmp_path / "fork", workers=2)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert _context().get_start_method() == "forkserver"  # no fork while another thread may hold a lock
        served = run_sweep(spec, tmp_path / "server", workers=2)
    finally:
        stop.set()
        other.join()
    assert _table(forked.table_path)[0].equals(_table(served.table_path)[0])


def test_dask_batches_keep_every_task_once_in_order():
    from ipam_core.sweep.executors import _batches

    for n, threads in ((200, 2), (7, 2), (1000, 4), (1, 1)):
        batches = _batches(list(range(n)), threads)
        assert [t for b in batches for t in b] == list(range(n))
        assert max(len(b) for b in batches) <= 8 and (n < 16 * threads or len(batches) >= 8 * threads)
