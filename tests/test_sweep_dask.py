"""The Dask executor: a real LocalCluster of 2 worker processes gives the local executor's table."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ipam_core.cli import app
from ipam_core.sweep import WALL_COLUMNS, load_spec, read_sweep, run_sweep
from sweep_specs import write_spec

pytest.importorskip("distributed")

MASK = "ipam.operator.clusterPoolIPv4MaskSize"


def test_dask_local_cluster_table_equals_the_local_executors(tmp_path):
    spec = load_spec(write_spec(tmp_path, {MASK: [24, 27], "cluster.nodes": [2, 3]},
                                modes=["cluster-pool", "multi-pool"], replicates=2))
    local = run_sweep(spec, tmp_path / "local", workers=2)
    dask = run_sweep(spec, tmp_path / "dask", workers=2, dask="local")
    a, meta_a = read_sweep(local.table_path)
    b, meta_b = read_sweep(dask.table_path)
    assert b.num_rows == 4 * 2 * 2 and dask.ran == 8
    assert a.drop_columns(list(WALL_COLUMNS)).equals(b.drop_columns(list(WALL_COLUMNS)))
    assert meta_a == meta_b


def test_dask_warms_each_worker_once_with_the_plugin(tmp_path):
    from distributed import Client, LocalCluster

    from ipam_core.sweep.dask_plugin import WarmEngine

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.register_plugin(WarmEngine(), name="ipam-bench-warm-engine")
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
        assert len(plugins) == 2 and all("ipam-bench-warm-engine" in p for p in plugins.values())


def test_unreachable_scheduler_is_one_line_exit_2(tmp_path):
    spec = write_spec(tmp_path, {MASK: [24]})
    result = CliRunner().invoke(app, ["sweep", spec, "--out", str(tmp_path / "o"), "--dask", "tcp://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("ipam-bench: error: --dask tcp://127.0.0.1:9: cannot reach the scheduler")
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
