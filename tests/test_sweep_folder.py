"""The sweep folder's rules (issue #13): checked before any point runs, one sweep per folder, one writer,
stray temporary files cleaned; `report` keeps a run folder's manifest whole; Ctrl-C keeps what finished."""

from __future__ import annotations

import contextlib
import json

import pytest
import yaml
from typer.testing import CliRunner

from ipam_core import cli
from ipam_core.cli import app
from ipam_core.rundir import OutputLock, read_manifest, verify_run
from ipam_core.sweep import WALL_COLUMNS, read_sweep
from ipam_core.sweep.results import POINTS_DIR, done_keys
from sweep_specs import TINY, write_spec

runner = CliRunner()
MASK = "ipam.operator.clusterPoolIPv4MaskSize"
SIZE = {"target": "pods_failed == 0", "search": {"cluster-pool": {"axis": MASK, "values": [27, 24]}}}


def size_spec(tmp_path, name="size.yaml"):
    """A size spec over the tiny base: cluster-pool's mask, /27 then /24."""
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"name": "sz", "base": "base.yaml", "size": SIZE}, sort_keys=False))
    return str(path)


def spec_for(tmp_path, command):
    return size_spec(tmp_path) if command == "size" else write_spec(tmp_path, {MASK: [24]}, modes=["cluster-pool"])


def snapshot(folder):
    """Every file under ``folder`` with its bytes (None when the folder is missing)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(result, *needles):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("ipam-bench: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def done_sweep(tmp_path):
    """A finished sweep folder of a two-point spec (and the spec's path)."""
    spec = write_spec(tmp_path, {MASK: [24, 27]}, modes=["cluster-pool"])
    out = tmp_path / "out"
    result = runner.invoke(app, ["sweep", spec, "--out", str(out), "--workers", "1", "--no-plot"])
    assert result.exit_code == 0, result.output
    return spec, out


@pytest.mark.parametrize("command", ["sweep", "size"])
@pytest.mark.parametrize("where, needle", [
    ("file", "is a file; expected a folder"),
    ("under-file", "is a file; expected a path under a folder"),
    ("empty", "is the current folder or holds it"),
])
def test_a_bad_out_path_is_one_line_and_nothing_is_created(tmp_path, monkeypatch, command, where, needle):
    monkeypatch.chdir(tmp_path)
    spec = spec_for(tmp_path, command)
    (tmp_path / "f").write_text("a file")
    out = {"file": "f", "under-file": "f/run", "empty": ""}[where]
    before = snapshot(tmp_path)
    result = runner.invoke(app, [command, spec, "--out", out, "--workers", "1"])
    one_line_error(result, "--out", needle)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("workers", ["0", "257", "-3"])
def test_workers_out_of_range_is_one_line_and_nothing_is_created(tmp_path, workers):
    spec = write_spec(tmp_path, {MASK: [24]})
    result = runner.invoke(app, ["sweep", spec, "--out", str(tmp_path / "o"), "--workers", workers])
    one_line_error(result, f"--workers {workers}", "from 1 to 256")
    assert not (tmp_path / "o").exists()


def test_a_different_sweeps_folder_is_refused_and_left_unchanged(tmp_path, done_sweep):
    _, out = done_sweep
    before = snapshot(out)
    other = write_spec(tmp_path, {MASK: [24, 27]}, name="other.yaml", modes=["cluster-pool"], replicates=2)
    line = one_line_error(runner.invoke(app, ["sweep", other, "--out", str(out), "--workers", "1"]),
                          str(out), "spec.yaml differs")
    assert "another sweep" in line
    assert snapshot(out) == before


def test_a_spec_that_only_adds_axis_values_resumes_the_sweep(tmp_path, done_sweep):
    _, out = done_sweep
    grown = write_spec(tmp_path, {MASK: [24, 25, 27]}, name="grown.yaml", modes=["cluster-pool"])
    result = runner.invoke(app, ["sweep", grown, "--out", str(out), "--workers", "1", "--no-plot"])
    assert result.exit_code == 0, result.output
    assert "1 run(s), 2 already done" in result.stdout
    assert len(done_keys(out)) == 3
    fresh = tmp_path / "fresh"
    assert runner.invoke(app, ["sweep", grown, "--out", str(fresh), "--workers", "1", "--no-plot"]).exit_code == 0
    resumed, _ = read_sweep(out)
    assert resumed.drop_columns(list(WALL_COLUMNS)).equals(read_sweep(fresh)[0].drop_columns(list(WALL_COLUMNS)))
    assert resumed["point"].to_pylist() == [0, 1, 2]  # the points are renumbered in the grown spec's order


@pytest.mark.parametrize("command", ["sweep", "size"])
@pytest.mark.parametrize("content", [("manifest.json", "trace.arrow"), ("notes.txt",), ("data/",)])
def test_a_folder_of_another_command_or_foreign_files_is_refused(tmp_path, command, content):
    spec = spec_for(tmp_path, command)
    out = tmp_path / "out"
    out.mkdir()
    for name in content:
        (out / name).mkdir() if name.endswith("/") else (out / name).write_text("{}")
    before = snapshot(out)
    line = one_line_error(runner.invoke(app, [command, spec, "--out", str(out), "--workers", "1"]), str(out))
    assert ("run of another ipam-bench command" in line) == ("manifest.json" in content)
    assert snapshot(out) == before


@pytest.mark.parametrize("command", ["sweep", "size", "report"])
def test_a_second_writer_fails_with_one_line(tmp_path, done_sweep, command):
    spec, out = done_sweep
    if command == "size":
        spec = size_spec(tmp_path)
        out = tmp_path / "fresh"  # missing: created for the lock's sake only, and removed again
    before = snapshot(out)
    with OutputLock(out.resolve(), "--out"):
        args = ["report", str(out)] if command == "report" else [command, spec, "--out", str(out), "--workers", "1"]
        one_line_error(runner.invoke(app, args), "is being written by another ipam-bench")
    assert snapshot(out) == before


def test_stray_temporary_files_of_a_killed_writer_are_cleaned(tmp_path, done_sweep):
    spec, out = done_sweep
    strays = [out / ".sweep.parquet.0123456789ab.tmp", out / POINTS_DIR / ".f00d.arrow.ba9876543210.tmp"]
    for path in strays:
        path.write_bytes(b"half a file")
    result = runner.invoke(app, ["sweep", spec, "--out", str(out), "--workers", "1", "--no-plot"])
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in strays)
    assert not [p for p in out.rglob("*.tmp")]


def test_ctrl_c_keeps_the_finished_runs_and_the_previous_results(tmp_path, done_sweep, monkeypatch):
    _, out = done_sweep
    grown = write_spec(tmp_path, {MASK: [24, 25, 26, 27]}, name="grown.yaml", modes=["cluster-pool"])
    before = {name: (out / name).read_bytes() for name in ("sweep.parquet", "aggregate.csv", "sweep.json")}

    @contextlib.contextmanager
    def interrupting_bar(label):
        def progress(done, total):
            if done == 3:  # the two earlier points were skipped; one new run finished
                raise KeyboardInterrupt
        yield progress

    monkeypatch.setattr(cli, "_task_bar", interrupting_bar)
    result = runner.invoke(app, ["sweep", grown, "--out", str(out), "--workers", "1"])
    assert result.exit_code == cli.EXIT_INTERRUPTED
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "resume" in lines[0], result.stderr
    assert len(done_keys(out)) == 3  # the run that finished is kept
    assert {name: (out / name).read_bytes() for name in before} == before
    monkeypatch.undo()
    resumed = runner.invoke(app, ["sweep", grown, "--out", str(out), "--workers", "1", "--no-plot"])
    assert resumed.exit_code == 0 and "1 run(s), 3 already done" in resumed.stdout


def test_report_on_a_run_folder_joins_its_manifest(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(TINY, sort_keys=False))
    run = tmp_path / "run"
    assert runner.invoke(app, ["run", str(scenario), "--mode", "cluster-pool", "--out", str(run)]).exit_code == 0
    old = verify_run(run)
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    manifest = verify_run(run)  # every file listed, nothing else: report.html and the figures drawn for it
    assert "report.html" in manifest["files"] and set(old["files"]) < set(manifest["files"])
    assert any(name.endswith(".png") for name in manifest["files"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "s.yaml"]  # no staging or lock file left
    again = runner.invoke(app, ["report", str(run)])
    assert again.exit_code == 0 and verify_run(run) == read_manifest(run)


def test_report_on_a_sweep_folder_writes_under_its_lock(tmp_path, done_sweep):
    _, out = done_sweep
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").stat().st_size > 0
    assert json.loads((out / "sweep.json").read_text())["tasks"] == 2
    assert not (tmp_path / ".out.lock").exists()


def test_a_size_spec_with_another_target_resumes_but_another_search_axis_is_refused(tmp_path):
    out = tmp_path / "out"
    spec = size_spec(tmp_path)
    assert runner.invoke(app, ["size", spec, "--out", str(out), "--workers", "1"]).exit_code == 0
    doc = yaml.safe_load(open(spec))
    doc["size"]["target"] = "idle_pct <= 90"
    (tmp_path / "target.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    again = runner.invoke(app, ["size", str(tmp_path / "target.yaml"), "--out", str(out), "--workers", "1"])
    assert again.exit_code == 0, again.output
    doc["size"]["search"]["cluster-pool"]["axis"] = "cluster.kubelet.maxPods"
    doc["size"]["search"]["cluster-pool"]["values"] = [40, 60]
    (tmp_path / "axis.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    before = snapshot(out)
    one_line_error(runner.invoke(app, ["size", str(tmp_path / "axis.yaml"), "--out", str(out), "--workers", "1"]),
                   "spec.yaml differs")
    assert snapshot(out) == before
