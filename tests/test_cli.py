"""The command line: outputs, one-line errors with exit status 2, nothing half-written."""

from __future__ import annotations

import csv

import pytest
import yaml
from typer.testing import CliRunner

from engine_helpers import BASE, merge
from ipam_core.cli import app

runner = CliRunner()
SMALL = merge(BASE, {"duration": "2m", "cluster": {"nodes": 3}, "workload": {"podsPerNode": 5}})


def write(tmp_path, data, name="s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_compare_writes_traces_summary_and_prints_modes_side_by_side(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["compare", write(tmp_path, SMALL), "--out", str(out), "--no-plot"])
    assert result.exit_code == 0, result.output
    for name in ("trace.arrow", "nodes.arrow", "summary.csv"):
        assert (out / name).stat().st_size > 0
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["mode"] for r in rows] == ["kubernetes", "cluster-pool", "multi-pool"]
    assert "kubernetes v4" in result.stdout and "multi-pool v4" in result.stdout


def test_run_writes_one_mode_and_plot_writes_pngs(tmp_path):
    out = tmp_path / "r"
    result = runner.invoke(app, ["run", write(tmp_path, SMALL), "--out", str(out), "--mode", "multi-pool"])
    assert result.exit_code == 0, result.output
    import polars as pl

    assert pl.read_ipc(out / "trace.arrow")["mode"].unique().to_list() == ["multi-pool"]
    result = runner.invoke(app, ["plot", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.png"))


BAD = [
    ({"cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["10.0.0.1/16"]}}}}, "10.0.0.1/16"),
    ({"cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["10.0.0.0/16", "10.0.128.0/17"]}}}}, "10.0.128.0/17"),
    ({"cilium": {"ipam": {"operator": {"clusterPoolIPv4MaskSize": 12}}}}, "12"),
    ({"cilium": {"ipam": {"mode": "calico"}}}, "calico"),
    ({"cluster": {"nodez": 3}}, "nodez"),
]


@pytest.mark.parametrize("patch, value", BAD)
def test_bad_scenario_is_one_line_exit_2_and_nothing_written(tmp_path, patch, value):
    out = tmp_path / "out"
    result = runner.invoke(app, ["compare", write(tmp_path, merge(SMALL, patch)), "--out", str(out)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ipam-bench: error:") and value in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_unknown_mode_on_the_command_line(tmp_path):
    result = runner.invoke(app, ["compare", write(tmp_path, SMALL), "--modes", "cluster-pool,eni2", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "eni2" in result.stderr and "cluster-pool" in result.stderr


def test_failed_run_keeps_what_was_already_written(tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", write(tmp_path, SMALL), "--out", str(out)]).exit_code == 0
    before = (out / "trace.arrow").read_bytes()
    bad = merge(SMALL, {"cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["nonsense"]}}}})
    assert runner.invoke(app, ["run", write(tmp_path, bad, "bad.yaml"), "--out", str(out)]).exit_code == 2
    assert (out / "trace.arrow").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_missing_scenario_file_and_missing_trace(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "nope.yaml" in result.stderr
    result = runner.invoke(app, ["plot", str(tmp_path)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_help_shows_examples():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "ipam-bench compare" in result.stdout


def test_replayed_event_file_runs_through_every_mode(tmp_path):
    from pathlib import Path

    import polars as pl

    scenario_file = Path(__file__).resolve().parent.parent / "scenarios" / "replay.yaml"
    out = tmp_path / "replay"
    result = runner.invoke(app, ["compare", str(scenario_file), "--out", str(out), "--no-plot"])
    assert result.exit_code == 0, result.output
    trace = pl.read_ipc(out / "trace.arrow")
    # the file's bursts of 240 pods reach every mode
    assert trace.group_by("mode").agg(pl.col("pods_running").max())["pods_running"].to_list() == [240, 240, 240]


@pytest.mark.parametrize("args, line", [
    (["compare", "--seed", "abc"], "ipam-bench: error: --seed 'abc': input should be a valid integer"),
    (["compare", "--seed", str(2**64)], f"ipam-bench: error: --seed {2**64}: expected an integer from 0 to "),
    (["compare", "--modes", "kubernetes, kubernetes"], "ipam-bench: error: --modes 'kubernetes, kubernetes' lists "
                                                       "'kubernetes' twice"),
    (["run", "default", "--mode", ""], "ipam-bench: error: --mode '': expected one of: kubernetes"),
    (["compare", "--bogus"], "ipam-bench: error: No such option: --bogus"),
])
def test_usage_errors_are_one_line_with_exit_2(tmp_path, args, line):
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(line), result.stderr
    assert not (tmp_path / "o").exists()


def test_modes_with_spaces_after_commas_run(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["compare", write(tmp_path, SMALL), "--modes", "kubernetes, multi-pool",
                                 "--out", str(out), "--no-plot"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["mode"] for r in rows] == ["kubernetes", "multi-pool"]
