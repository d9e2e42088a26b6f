"""The interpreted engine (the kernels' Python source) gives the compiled engine's traces, and when each runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipam_core import cli, pipeline
from ipam_core.cli import app
from ipam_core.pipeline import engine_choice
from ipam_core.scenario import load_scenario
from ipam_core.trace import write_summary_csv

ROOT = Path(__file__).resolve().parent.parent
OUTPUTS = ("trace.arrow", "nodes.arrow", "summary.csv")
#: The shipped scenarios ``compare`` runs in seconds on the interpreted engine (scale-limits and
#: long-quiet take minutes that way: a cold cache compiles them, see test_an_over_budget_run_compiles).
QUICK = ("default", "cloud-modes", "dual-stack", "multi-pool-teams", "calico", "cl2-load", "kcm-host-scope",
         "cluster-pool-exhaustion", "cluster-pool-append", "replay", "seed-lab")


def scenario_arg(name: str) -> str:
    return name if name == "default" else str(ROOT / "scenarios" / f"{name}.yaml")


def compiled_outputs(name: str, folder: Path) -> Path:
    """What ``compare NAME --no-plot`` writes, computed in this (compiled) process."""
    scenario = load_scenario(scenario_arg(name))
    result = pipeline.simulate(scenario)
    folder.mkdir()
    pipeline.write_run(result, folder, command=["compiled"])
    write_summary_csv(folder / "summary.csv", pipeline.summarize(result))
    return folder


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_DISABLE_JIT", engine_choice.AUTO_INTERPRETED_ENV,
                                                            engine_choice.ENGINE_ENV, engine_choice.BUDGET_ENV)}
    return {**env, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", **extra}


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "ipam_core", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def engine_of(folder: Path) -> str:
    return json.loads((folder / "run.json").read_text())["engine"]


@pytest.mark.parametrize("name", QUICK)
def test_the_interpreted_engine_writes_the_compiled_engines_bytes(tmp_path, name):
    reference = compiled_outputs(name, tmp_path / "compiled")
    out = tmp_path / "interpreted"
    run_cli(["compare", scenario_arg(name), "--no-plot", "--out", str(out)], cli_env(IPAM_BENCH_ENGINE="interpreted"))
    assert engine_of(out) == "interpreted"
    for file in OUTPUTS:
        assert (out / file).read_bytes() == (reference / file).read_bytes(), file


def test_a_cold_cache_runs_interpreted_and_compiles_nothing_of_the_loop(tmp_path):
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    run_cli(["run", scenario_arg("cloud-modes"), "--mode", "eni", "--out", str(out)],
            cli_env(NUMBA_CACHE_DIR=str(cache)))
    assert engine_of(out) == "interpreted"
    assert not list(cache.rglob("*sample_run*")), "the loop was compiled"
    assert json.loads((out / "run.json").read_text())["command"].split()[1:3] == ["run", scenario_arg("cloud-modes")]


def test_a_warm_cache_runs_compiled_and_compiled_can_be_asked_for(tmp_path):
    pipeline.warmup()  # this process's cache (NUMBA_CACHE_DIR, inherited) holds the default scenario's loops
    run_cli(["compare", "--no-plot", "--out", str(tmp_path / "warm")], cli_env())
    assert engine_of(tmp_path / "warm") == "compiled"
    run_cli(["compare", "--no-plot", "--out", str(tmp_path / "asked")], cli_env(IPAM_BENCH_ENGINE="compiled"))
    assert engine_of(tmp_path / "asked") == "compiled"


def test_an_over_budget_run_compiles_and_writes_the_same_bytes(tmp_path):
    pipeline.warmup()
    reference = compiled_outputs("default", tmp_path / "compiled")
    out = tmp_path / "out"
    # as auto starts it on a cold cache, with no time to spare: the first progress step switches engines
    env = cli_env(NUMBA_DISABLE_JIT="1", IPAM_BENCH_AUTO_INTERPRETED="1", IPAM_BENCH_INTERPRETED_BUDGET_S="0")
    run_cli(["compare", "--no-plot", "--out", str(out)], env)
    assert engine_of(out) == "compiled"
    assert not list(tmp_path.glob(".out.staging-*"))
    for file in OUTPUTS:
        assert (out / file).read_bytes() == (reference / file).read_bytes(), file


def test_kernels_cached_names_the_state_classes_the_modes_compile_for(monkeypatch):
    scenario = load_scenario("default")
    pipeline.warmup(scenario)
    assert engine_choice.kernels_cached(scenario, scenario.modes)

    class NeverCompiled:
        pass

    monkeypatch.setattr(engine_choice, "state_class_of", lambda sc, mode: NeverCompiled if mode == "multi-pool"
                        else pipeline.run.state_class_of(sc, mode))
    assert engine_choice.kernels_cached(scenario, ["kubernetes", "cluster-pool"])
    assert not engine_choice.kernels_cached(scenario, ["kubernetes", "multi-pool"])


def test_the_cache_check_of_an_imported_cluster_starts_nothing(tmp_path):
    out = tmp_path / "imported"
    data = ROOT / "tests" / "data" / "import"
    done = CliRunner().invoke(app, ["import", str(data / "cluster-pool.json"), "--helm-values",
                                    str(data / "cluster-pool-values.yaml"), "--out", str(out)])
    assert done.exit_code == 0, done.output
    scenario = load_scenario(str(out / "scenario.yaml"))
    assert scenario.initial_state is not None
    assert pipeline.run.state_class_of(scenario, "cluster-pool") is type(
        pipeline.run.Simulation(scenario, pipeline.build_workload(scenario), "cluster-pool").state)
    cache = tmp_path / "cache"
    probe = ("import sys; from ipam_core.scenario import load_scenario; "
             "from ipam_core.pipeline.engine_choice import kernels_cached; "
             "print(kernels_cached(load_scenario(sys.argv[1]), ['cluster-pool']))")
    checked = subprocess.run([sys.executable, "-c", probe, str(out / "scenario.yaml")], capture_output=True, text=True,
                             env=cli_env(NUMBA_CACHE_DIR=str(cache)))
    assert checked.stdout.strip() == "False", checked.stderr[-2000:]
    # the start from the dumped state compiles for seconds: the check must leave it to the run
    assert not list(cache.rglob("*start_from_state*"))


def test_within_budget_stops_a_run_projected_past_it():
    now = [0.0]
    seen = []
    update = engine_choice.within_budget(lambda mode, f: seen.append((mode, f)), ["a", "b"], budget_s=10.0,
                                         clock=lambda: now[0])
    now[0] = 0.5
    update("a", 0.01)  # 0.5 s in, too early to project
    now[0] = 2.0
    update("a", 0.5)  # a quarter of the run in 2 s: 8 s in all
    assert seen == [("a", 0.01), ("a", 0.5)]
    now[0] = 4.0
    with pytest.raises(engine_choice.OverBudget, match="projected 16 s"):
        update("a", 0.5)  # still a quarter after 4 s: 16 s
    now[0] = 10.5
    with pytest.raises(engine_choice.OverBudget):
        update("b", 0.99)  # past the budget itself


def test_check_workload_estimates_before_the_run():
    engine_choice.check_workload(6_592, ["kubernetes", "cluster-pool", "multi-pool"], budget_s=30.0)  # ~1 s
    with pytest.raises(engine_choice.OverBudget, match=r"227,000 events x 3 modes: about 34 s"):
        engine_choice.check_workload(227_000, ["kubernetes", "cluster-pool", "multi-pool"], budget_s=30.0)


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("IPAM_BENCH_ENGINE", "fast", "IPAM_BENCH_ENGINE='fast' is not an engine; expected one of: auto, compiled, "
                                  "interpreted"),
    ("IPAM_BENCH_INTERPRETED_BUDGET_S", "soon", "IPAM_BENCH_INTERPRETED_BUDGET_S='soon' is not a number of seconds"),
    ("IPAM_BENCH_INTERPRETED_BUDGET_S", "-1", "IPAM_BENCH_INTERPRETED_BUDGET_S='-1' is not a number of seconds"),
])
def test_a_bad_engine_setting_is_one_line_and_nothing_runs(tmp_path, monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(pipeline, "simulate", lambda *a, **k: pytest.fail("ran"))
    result = CliRunner().invoke(app, ["compare", "--no-plot", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"ipam-bench: error: {expected}")
    assert not (tmp_path / "o").exists()


def test_compiled_asked_for_with_the_jit_off_is_one_line(monkeypatch):
    monkeypatch.setenv(engine_choice.ENGINE_ENV, "compiled")
    monkeypatch.setattr(engine_choice, "interpreted", lambda: True)
    with pytest.raises(engine_choice.ConfigError, match=r"IPAM_BENCH_ENGINE=compiled with NUMBA_DISABLE_JIT="):
        engine_choice.requested_engine()


@pytest.mark.parametrize(("engine", "auto", "set_", "unset"), [
    ("interpreted", True, {"NUMBA_DISABLE_JIT": "1", "IPAM_BENCH_AUTO_INTERPRETED": "1"}, ()),
    ("interpreted", False, {"NUMBA_DISABLE_JIT": "1"}, ("IPAM_BENCH_AUTO_INTERPRETED",)),
    ("compiled", False, {"IPAM_BENCH_ENGINE": "compiled"}, ("NUMBA_DISABLE_JIT", "IPAM_BENCH_AUTO_INTERPRETED")),
])
def test_main_replaces_the_process_with_the_same_command_on_the_other_engine(monkeypatch, engine, auto, set_, unset):
    calls = []
    monkeypatch.setattr(cli.os, "execve", lambda path, argv, env: calls.append((path, argv, env)))
    monkeypatch.setattr(sys, "argv", ["/usr/bin/ipam-bench", "compare", "--out", "x"])
    monkeypatch.setenv("NUMBA_DISABLE_JIT", "0")
    monkeypatch.setenv("IPAM_BENCH_AUTO_INTERPRETED", "1")

    def switching_app():
        raise cli._SwitchEngine(engine, auto=auto)

    monkeypatch.setattr(cli, "app", switching_app)
    monkeypatch.setattr(cli.gc, "freeze", lambda: None)
    cli.main()
    [(path, argv, env)] = calls
    assert path == sys.executable and argv == [sys.executable, "-m", "ipam_core", "compare", "--out", "x"]
    assert {k: env.get(k) for k in set_} == set_ and not any(k in env for k in unset)
    assert env["IPAM_BENCH_ARGV0"] == "/usr/bin/ipam-bench"  # run.json's command line stays the user's


def test_an_over_budget_progress_step_asks_for_the_compiled_engine(monkeypatch):
    monkeypatch.setattr(engine_choice, "chosen_by_auto", lambda: True)
    monkeypatch.setenv(engine_choice.BUDGET_ENV, "0")

    def simulate(scenario, modes, workload, progress):
        progress(modes[0], 0.5)
        pytest.fail("went on past the budget")

    monkeypatch.setattr(cli.pipeline, "simulate", simulate)
    monkeypatch.setattr(cli, "_warm_kernels", lambda *a: None)
    monkeypatch.setattr(engine_choice, "check_workload", lambda n, modes: None)  # the progress step decides
    with pytest.raises(cli._SwitchEngine) as switch:
        cli._simulate(load_scenario("default"), ["kubernetes"])
    assert switch.value.engine == "compiled" and isinstance(switch.value.__cause__, engine_choice.OverBudget)
    assert "projected" in str(switch.value.__cause__)
