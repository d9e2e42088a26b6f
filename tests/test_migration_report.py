"""The Arrow report: schemas with units, loadable by polars and pandas, byte-identical for one seed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow.ipc as ipc
import pytest

from ipam_core.migration import run_migration
from ipam_core.migration.report import (NODES_FILE, NODES_SCHEMA, PODS_FILE, PODS_SCHEMA, STEPS_FILE, STEPS_SCHEMA,
                                        report_tables, write_report)
from ipam_core.scenario import load_scenario
from ipam_core.rundir import MANIFEST_FILE
from ipam_core.trace import RUN_FILE, run_params
from ipam_core.trace.schema import RUN_METADATA_KEY

SEED_LAB = Path(__file__).resolve().parent.parent / "scenarios" / "seed-lab.yaml"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    scenario = load_scenario(SEED_LAB)
    result = run_migration(scenario)
    out = tmp_path_factory.mktemp("report")
    paths = write_report(result, scenario, out, command=["ipam-bench", "migrate", "seed-lab.yaml"])
    return scenario, result, out, paths


@pytest.mark.parametrize("schema", [STEPS_SCHEMA, NODES_SCHEMA, PODS_SCHEMA], ids=["steps", "nodes", "pods"])
def test_every_field_has_a_unit_and_a_description(schema):
    for field in schema:
        meta = field.metadata or {}
        assert b"unit" in meta and meta[b"description"], field.name
    units = {f.name: f.metadata[b"unit"].decode() for f in schema}
    for name, unit in units.items():
        if name.endswith("_s") and name != "time_s":
            assert unit in ("s", "pod-seconds"), name


def test_files_hold_the_result_rows_with_run_metadata(written):
    scenario, result, out, paths = written
    assert [p.name for p in paths] == [STEPS_FILE, NODES_FILE, PODS_FILE, RUN_FILE]
    steps = pl.read_ipc(out / STEPS_FILE)
    assert steps.height == len(result.steps) == len(result.step_rows)
    assert steps["disrupted_pod_s"].sum() == pytest.approx(result.summary["disrupted_pod_seconds"])
    pods = pd.read_feather(out / PODS_FILE)
    assert len(pods) == len(result.pod_rows) and pods["namespace"].dtype.name == "category"
    nodes = pl.read_ipc(out / NODES_FILE)
    assert set(nodes["node"].cast(pl.Utf8)) == {"k8s-ctr", "k8s-w1"}
    run = run_params(out / STEPS_FILE)
    assert run["scenario"] == "seed-lab" and run["seed"] == scenario.seed
    assert run["modes"] == ["kubernetes", "cluster-pool"]
    assert "command" not in run  # run-varying: kept in run.json, out of the data files' bytes
    assert json.loads((out / RUN_FILE).read_text())["command"] == "ipam-bench migrate seed-lab.yaml"


def test_same_seed_gives_byte_identical_files(tmp_path):
    scenario = load_scenario(SEED_LAB)
    for folder, command in (("a", "x"), ("b", "ipam-bench migrate other")):
        write_report(run_migration(scenario), scenario, tmp_path / folder, command=command)
    for name in (STEPS_FILE, NODES_FILE, PODS_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_tables_match_their_schemas(written):
    _, result, out, _ = written
    tables = report_tables(result, {"scenario": "x"})
    for kind, schema in (("migration_steps", STEPS_SCHEMA), ("migration_nodes", NODES_SCHEMA),
                         ("migration_pods", PODS_SCHEMA)):
        assert tables[kind].schema.remove_metadata().equals(schema.remove_metadata())
    with ipc.open_file(out / PODS_FILE) as reader:
        assert RUN_METADATA_KEY.encode() in reader.schema.metadata


def test_writing_over_an_existing_report_leaves_no_temporary_files(written):
    scenario, result, out, _ = written
    write_report(result, scenario, out, command="again")
    assert sorted(p.name for p in out.iterdir()) == sorted([STEPS_FILE, NODES_FILE, PODS_FILE, RUN_FILE, MANIFEST_FILE])
