"""The command line: outputs, one-line errors with exit status 2, nothing half-written."""

from __future__ import annotations

import json

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from engine_helpers import BASE, merge
from ipam_core import cli, pipeline
from ipam_core.cli import app
from ipam_core.rundir import MANIFEST_FILE, verify_run

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
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


def test_failed_run_keeps_what_was_already_written(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", write(tmp_path, SMALL), "--out", str(out)]).exit_code == 0
    before = verify_run(out)
    bad = merge(SMALL, {"cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["nonsense"]}}}})
    assert runner.invoke(app, ["run", write(tmp_path, bad, "bad.yaml"), "--out", str(out)]).exit_code == 2
    assert verify_run(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    # an error inside the simulation, after the folder was locked
    import ipam_core.pipeline
    from ipam_core.errors import ConfigError

    def fail(*args, **kwargs):
        raise ConfigError("mode 'x': needs what the scenario lacks")

    monkeypatch.setattr(ipam_core.pipeline, "simulate", fail)
    result = runner.invoke(app, ["run", write(tmp_path, SMALL), "--out", str(out)])
    assert result.exit_code == 2 and result.stderr.strip().endswith("needs what the scenario lacks")
    assert verify_run(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "out", "s.yaml"]  # no staging, no lock


def test_missing_scenario_file_and_missing_trace(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "nope.yaml" in result.stderr
    result = runner.invoke(app, ["plot", str(tmp_path)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_help_shows_examples():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "ipam-bench compare" in result.stdout


def test_replayed_event_file_runs_through_every_mode(tmp_path):
    import polars as pl

    scenario_file = Path(__file__).resolve().parent.parent / "scenarios" / "replay.yaml"
    out = tmp_path / "replay"
    result = runner.invoke(app, ["compare", str(scenario_file), "--out", str(out), "--no-plot"])
    assert result.exit_code == 0, result.output
    trace = pl.read_ipc(out / "trace.arrow")
    # the file's bursts of 240 pods reach every mode
    assert trace.group_by("mode").agg(pl.col("pods_running").max())["pods_running"].to_list() == [240, 240, 240]


# ---------------------------------------------------------------- the output folder, before any work
def _no_simulation(monkeypatch):
    import ipam_core.pipeline

    calls = []
    monkeypatch.setattr(ipam_core.pipeline, "simulate", lambda *a, **k: calls.append(a))
    return calls


@pytest.mark.parametrize("command", ["run", "compare"])
@pytest.mark.parametrize("where, needle", [
    ("", "expected a folder path"),
    ("file/run", "is a file; expected a path under a folder"),
    ("file", "is a file; expected a folder"),
    ("/proc/ipam-bench-test/run", "cannot create '/proc/ipam-bench-test'"),
    ("foreign", "'notes.txt', which no ipam-bench run wrote"),
])
def test_an_unusable_out_is_one_line_before_any_simulation(tmp_path, monkeypatch, command, where, needle):
    monkeypatch.chdir(tmp_path)
    scenario = write(tmp_path, SMALL)
    (tmp_path / "file").write_text("a file")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    calls = _no_simulation(monkeypatch)
    result = runner.invoke(app, [command, scenario, "--out", where])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ipam-bench: error: --out ") and needle in lines[0]
    assert result.stdout == "" and calls == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def _stopped_writer(args, point):
    """A CLI process that stopped itself at ``point`` of its write phase (test hook), holding its lock."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IPAM_BENCH_TEST_STOP_AT": point}
    proc = subprocess.Popen([sys.executable, "-m", "ipam_core", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        pid, status = os.waitpid(proc.pid, os.WNOHANG | os.WUNTRACED)
        assert not pid or os.WIFSTOPPED(status), proc.stderr.read()
        if pid:
            return proc
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"never reached {point}")


def test_a_second_writer_to_the_same_out_fails_with_one_line(tmp_path):
    scenario, out = write(tmp_path, SMALL), tmp_path / "out"
    first = _stopped_writer(["run", scenario, "--out", str(out)], "trace.arrow")
    try:
        result = runner.invoke(app, ["run", scenario, "--out", str(out)])
    finally:
        first.kill()
        first.wait()
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"ipam-bench: error: --out {str(out)!r} is being written by another ipam-bench "
                                     f"(pid {first.pid}); expected one writer per folder at a time")


def test_ctrl_c_leaves_the_previous_run_and_says_so(tmp_path):
    scenario, out = write(tmp_path, SMALL), tmp_path / "out"
    assert runner.invoke(app, ["run", scenario, "--out", str(out)]).exit_code == 0
    previous = verify_run(out)
    proc = _stopped_writer(["compare", scenario, "--seed", "9", "--out", str(out)], "nodes.arrow")
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=120) == 130
    assert proc.stderr.read() == f"ipam-bench: interrupted; {out} left as it was\n"
    assert verify_run(out) == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.yaml"]  # staging folder and lock removed


def test_run_publishes_a_manifest_and_prints_one_line_per_mode(tmp_path):
    import polars as pl

    from ipam_core.pipeline import build_workload
    from ipam_core.scenario import load_scenario

    scenario, out = write(tmp_path, SMALL), tmp_path / "r"
    result = runner.invoke(app, ["run", scenario, "--out", str(out), "--mode", "cluster-pool"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out / MANIFEST_FILE}" in result.stdout
    assert sorted(verify_run(out)["files"]) == ["nodes.arrow", "run.json", "trace.arrow"]
    run = json.loads((out / "run.json").read_text())
    assert run["out_dir"] == str(out) and set(run["wall_s"]) == {"cluster-pool"}  # the folder, not its staging
    trace = pl.read_ipc(out / "trace.arrow")
    failed = trace["pods_failed"][-1]
    pods = build_workload(load_scenario(scenario)).n_pods
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith(f"cluster-pool v4: {pods:,} pods, {failed:,} failed (")
    assert f"peak {trace['addrs_used'].max():,} addresses used" in line


def test_plot_adds_figures_to_the_published_run(tmp_path):
    out = tmp_path / "r"
    assert runner.invoke(app, ["run", write(tmp_path, SMALL), "--out", str(out)]).exit_code == 0
    run_id = verify_run(out)["run_id"]
    result = runner.invoke(app, ["plot", str(out)])
    assert result.exit_code == 0, result.output
    manifest = verify_run(out)
    assert manifest["run_id"] != run_id and any(name.endswith(".png") for name in manifest["files"])


def test_reading_a_folder_that_mixes_two_runs_is_refused(tmp_path):
    scenario = write(tmp_path, SMALL)
    for name, seed in (("a", "1"), ("b", "2")):
        assert runner.invoke(app, ["run", scenario, "--out", str(tmp_path / name), "--seed", seed]).exit_code == 0
    (tmp_path / "a" / "nodes.arrow").write_bytes((tmp_path / "b" / "nodes.arrow").read_bytes())
    from ipam_core.trace import TraceError, read_nodes, read_trace

    read_trace(tmp_path / "a")  # still run a's
    with pytest.raises(TraceError, match="mixes files of two runs"):
        read_nodes(tmp_path / "a")
    result = runner.invoke(app, ["plot", str(tmp_path / "a")])  # adding figures does not bless the mix
    assert result.exit_code == 2 and "mixes files of two runs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not list((tmp_path / "a").glob("*.png"))


# ---------------------------------------------------------------- rough edges
def test_scenarios_lists_builtins_and_the_repository_files_with_descriptions(monkeypatch):
    from ipam_core.scenario import load_scenario

    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["scenarios"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    files = sorted((ROOT / "scenarios").glob("*.yaml"))
    assert len(files) >= 12
    for source, label in [("default", "default"), *((f, f"scenarios/{f.name}") for f in files)]:
        row = next(line for line in lines if line.split()[0] == label)
        description = " ".join(load_scenario(source).description.split())
        assert description and description in row, label


def test_scenarios_in_a_folder_shows_invalid_files_without_stopping(tmp_path):
    write(tmp_path, SMALL, "good.yaml")
    write(tmp_path, merge(SMALL, {"cluster": {"nodez": 1}}), "bad.yaml")
    result = runner.invoke(app, ["scenarios", str(tmp_path)])
    assert result.exit_code == 0
    good = next(line for line in result.stdout.splitlines() if "good.yaml" in line)
    assert "kubernetes, cluster-pool, multi-pool" in good and " 3 " in good
    assert "[invalid]" in next(line for line in result.stdout.splitlines() if "bad.yaml" in line)
    result = runner.invoke(app, ["scenarios", str(tmp_path / "good.yaml")])
    assert result.exit_code == 2 and "not a folder" in result.stderr


def test_kernels_cached_tells_a_fresh_cache_from_a_warm_one(tmp_path):
    probe = [sys.executable, "-c", "from ipam_core.pipeline.engine_choice import kernels_cached; "
             "from ipam_core.scenario import load_scenario; sc = load_scenario('default'); "
             "print(kernels_cached(sc, sc.modes))"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    from ipam_core.pipeline import warmup

    warmup()  # this process's cache (NUMBA_CACHE_DIR) now holds the engine
    assert subprocess.run(probe, env=env, capture_output=True, text=True).stdout.strip() == "True"
    fresh = {**env, "NUMBA_CACHE_DIR": str(tmp_path)}
    assert subprocess.run(probe, env=fresh, capture_output=True, text=True).stdout.strip() == "False"


def test_compiling_is_announced_on_a_terminal(monkeypatch):
    import io

    from rich.console import Console

    from ipam_core.pipeline import engine_choice

    scenario = cli.load_scenario("default")
    screen = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=screen, force_terminal=True, width=100))
    monkeypatch.setattr(engine_choice, "kernels_cached", lambda sc, modes: False)
    cli._warm_kernels(scenario, scenario.modes)
    assert "compiling kernels (first run only" in screen.getvalue()
    quiet = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=quiet, force_terminal=True, width=100))
    monkeypatch.setattr(engine_choice, "kernels_cached", lambda sc, modes: True)
    cli._warm_kernels(scenario, scenario.modes)
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("args", [["compare", "--no-plot"], ["migrate", str(ROOT / "scenarios" / "seed-lab.yaml")]],
                         ids=["compare", "migrate"])
def test_a_closed_pipe_ends_quietly(tmp_path, args):
    scenario = write(tmp_path, SMALL)
    extra = [scenario] if args[0] == "compare" else []
    argv = [sys.executable, "-m", "ipam_core", *args, *extra, "--out", str(tmp_path / "o")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-1"], stdin=writer.stdout, stdout=subprocess.PIPE)
    writer.stdout.close()  # only head reads: its exit closes the pipe
    first = head.communicate()[0].decode()
    code = writer.wait(timeout=300)
    assert first.startswith("ipam-bench")
    assert writer.stderr.read() == b"" and code in (0, 141)
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


def _summary_of(modes):
    """A summary table with every figure 0 for the given modes (no engine run)."""
    names = [n for n, _ in (*pipeline.SUMMARY_COLUMNS, *pipeline.CALICO_SUMMARY_COLUMNS)]
    rows = [{n: 0 for n in names} | {"mode": m, "family": 4} for m in modes]
    return pa.Table.from_pylist(rows)


def test_compare_table_marks_figures_a_mode_does_not_have(capsys, monkeypatch):
    monkeypatch.setattr(cli, "out", Console(width=300, no_color=True))
    cli._print_summary(_summary_of(["cluster-pool", "eni", "calico"]))
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in capsys.readouterr().out.splitlines() if line.count("│") > 2}
    assert rows["most ENIs / NICs attached at once"] == ["–", "0", "–"]
    assert rows["cloud API calls: attach + assign + release"] == ["–", "0", "–"]
    assert rows["calico: most empty affine blocks held at once"] == ["–", "–", "0"]
    assert rows["allocations failed for fragmentation with free addresses left"] == ["–", "0", "–"]
    assert rows["node-CIDR allocations"] == ["0", "0", "0"]


def test_compare_table_leaves_out_rows_no_mode_has(capsys, monkeypatch):
    monkeypatch.setattr(cli, "out", Console(width=300, no_color=True))
    cli._print_summary(_summary_of(["kubernetes", "multi-pool"]))
    printed = capsys.readouterr().out
    assert "node-CIDR allocations" in printed
    assert "ENIs" not in printed and "cloud API" not in printed and "calico:" not in printed and "–" not in printed
