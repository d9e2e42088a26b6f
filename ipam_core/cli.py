"""``ipam-bench``: the command line. It parses, calls the library and prints; no logic of its own.

Every error a user can cause ends in one line on stderr and exit status 2,
with no traceback and no half-written output. The output folder is checked
and locked before any simulation, and a run's files are published together
(:mod:`ipam_core.rundir`): a killed or interrupted command (Ctrl-C: exit 130)
leaves the previous run as it was. A closed stdout (``| head``) ends the
command quietly with status 141, as other command-line tools do.
"""

from __future__ import annotations

import gc
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ipam_core import pipeline  # called as pipeline.simulate ...: tests stand in for it on the module
from ipam_core.address_arms import check_address_filters, compare_address_filters
from ipam_core.atomic import atomic_write_bytes, atomic_write_text
from ipam_core.errors import ConfigError, IPAMBenchError
from ipam_core.migration import actions, run_migration
from ipam_core.migration.plan import STRATEGIES, check_plan_arguments, format_plan, plan_migration, write_plan_csv
from ipam_core.migration.report import write_report as write_migration_report
from ipam_core.migration.settings import read_settings, scenario_source
from ipam_core.migration.steps import parse_steps
from ipam_core.migration.timeline import format_timeline
from ipam_core.modes import REGISTRY
from ipam_core.pipeline import engine_choice
from ipam_core.rundir import MANIFEST_FILE, RunPublisher
from ipam_core.scenario import builtin_scenarios, check_scenario_modes, limits, load_scenario
from ipam_core.trace import read_trace, write_summary_csv

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on the click package
    from click import exceptions as click_errors


def _flag_value(exc, args: list[str]) -> object:
    """The value a bad option was given: from typer's pydantic error, else from the command line."""
    cause = exc.__cause__
    if cause is not None and hasattr(cause, "errors"):
        return cause.errors()[0].get("input")
    opts = exc.param.opts if exc.param is not None else []
    for i, word in enumerate(args):
        name, eq, value = word.partition("=")
        if name in opts:
            return value if eq else (args[i + 1] if i + 1 < len(args) else None)
    return None


def _usage_line(exc, args: list[str]) -> str:
    """A click usage error as one line that names the flag and the value."""
    text = " ".join(exc.format_message().split())
    missing = isinstance(exc, click_errors.MissingParameter)
    if isinstance(exc, click_errors.BadParameter) and exc.param is not None and not missing:
        flag = max(exc.param.opts, key=len) if exc.param.opts else exc.param.name
        reason = " ".join(exc.message.split()).rstrip(".")
        return f"{flag} {_flag_value(exc, args)!r}: {reason[:1].lower()}{reason[1:]}"
    return text.rstrip(".")


class _OneLineErrors(typer.core.TyperGroup):
    """Typer's group with usage errors (``--nodes abc``) as one line on stderr and exit 2, not a box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Run the command line; see :meth:`click.Command.main`."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        words = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(words, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            typer.echo("ipam-bench: error: " + _usage_line(exc, words), err=True)
            sys.exit(2)
        except IPAMBenchError as exc:  # raised by an option's check
            typer.echo("ipam-bench: error: " + " ".join(str(exc).split()), err=True)
            sys.exit(2)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _seed_flag(value: Optional[int]) -> Optional[int]:
    """``--seed``: 0 to 2^63 - 1, checked before anything is read."""
    return None if value is None else limits.check_seed("--seed", value)


def _count_flag(name: str, hi: int, why: str):
    """A check of a count flag: an integer from 1 to ``hi``."""
    def check(value: Optional[int]) -> Optional[int]:
        return None if value is None else limits.check_count(name, value, 1, hi, why)
    return check


def _mode_flag(value: Optional[str]) -> Optional[str]:
    """``run --mode``: one known mode (an empty value used to fall back to the scenario's silently)."""
    if value is not None and value.strip() not in REGISTRY:
        raise ConfigError(f"--mode {value!r}: expected one of: {', '.join(REGISTRY)}")
    return None if value is None else value.strip()


app = typer.Typer(
    cls=_OneLineErrors,
    name="ipam-bench",
    help=(
        "How pod IP addresses get used, wasted and fragmented under each IPAM mode.\n\n"
        "Examples:\n\n"
        "  ipam-bench compare                       # built-in default scenario, all pool modes\n\n"
        "  ipam-bench compare scenarios/multi-pool-teams.yaml --modes cluster-pool,multi-pool\n\n"
        "  ipam-bench run scenarios/dual-stack.yaml --out out/ds\n\n"
        "  ipam-bench plot out/ds"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE, as `yes | head -1` reports under pipefail


class _Stdout(Console):
    """rich exits with status 1 on a closed pipe; ipam-bench exits as other tools do."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError  # _user_errors silences stdout and exits EXIT_CLOSED_PIPE


err = Console(stderr=True)
# piped or captured output is not cut to 80 columns: the side-by-side table stays one line per metric
out = _Stdout(width=None if sys.stdout.isatty() else 240)


#: Shown on stderr while the engine compiles (results/first-run.md: 41 s for the pool modes, 84 s more for the
#: cloud modes' rules, on this project's 2-core VM).
COMPILING = "compiling kernels (first run only, about a minute)…"


@dataclass
class _Output:
    """The folder a command writes, for the message after Ctrl-C."""

    folder: str | None = None
    publisher: RunPublisher | None = None

    def open(self, folder: str) -> RunPublisher:
        """Check and lock the folder before any work; the run's files go to ``publisher.staging``."""
        self.folder = folder
        self.publisher = RunPublisher(folder, label="--out")
        return self.publisher


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail again (Python docs, SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # not a real file (tests capture stdout)
        pass


@contextmanager
def _user_errors(output: _Output | None = None):
    """Turn library errors into one line and exit status 2; Ctrl-C and a closed pipe end quietly."""
    try:
        yield
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
    except IPAMBenchError as exc:
        typer.echo("ipam-bench: error: " + str(exc).replace("\n", " "), err=True)
        raise typer.Exit(2) from None
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(EXIT_CLOSED_PIPE) from None
    except OSError as exc:
        where = f" {exc.filename!s}" if exc.filename else ""
        typer.echo(f"ipam-bench: error:{where}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        if output is None or output.publisher is None:
            state = "nothing written"
        elif output.publisher.published is not None:
            state = f"{output.folder} holds the new run"
        else:
            state = f"{output.folder} left as it was"
        typer.echo(f"ipam-bench: interrupted; {state}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _load(scenario: str | None, seed: Optional[int]):
    from dataclasses import replace

    if seed is not None:
        limits.check_seed("--seed", seed)
    sc = load_scenario(scenario or "default")
    return replace(sc, seed=seed) if seed is not None else sc


def _modes(text: str | None, scenario) -> list[str]:
    """Modes from ``--modes a, b`` (commas, spaces allowed), or the scenario's; empty lists and repeats refused."""
    if text is None:
        return list(scenario.modes)
    names = [m.strip() for m in text.split(",")]
    if not any(names):
        raise ConfigError(f"--modes {text!r} names no mode; expected a comma-separated list from: "
                          f"{', '.join(REGISTRY)}")
    for name in names:
        if not name:
            raise ConfigError(f"--modes {text!r} has an empty entry; expected mode names separated by single commas")
        if name not in REGISTRY:
            raise ConfigError(f"--modes {text!r}: {name!r} is not a known IPAM mode; expected one of: "
                              f"{', '.join(REGISTRY)}")
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"--modes {text!r} lists {name!r} twice; expected each mode once")
    check_scenario_modes(scenario, names)  # what each mode needs, before the workload is built
    return names


def _warm_kernels(scenario, modes) -> None:
    """Compile (or load) the kernels of ``modes`` before the progress bars start, saying so when it takes a while."""
    if not err.is_terminal or engine_choice.interpreted() or engine_choice.kernels_cached(scenario, modes):
        return  # simulate() loads them in about a second
    with err.status(COMPILING, spinner="dots"):
        pipeline.warmup(scenario, modes)  # the modes about to run: a cloud mode's rules, not the default scenario's


class _SwitchEngine(Exception):
    """Run this command line again on another engine (:func:`main` replaces the process)."""

    def __init__(self, engine: str, auto: bool = False):
        super().__init__(engine)
        self.engine, self.auto = engine, auto


#: Set by main(): only a process's own command line may switch engines, never a caller of ``app``.
_PROCESS_ENTRY = False


def _choose_engine(scenario, modes) -> None:
    """Switch to the interpreted engine when asked, or when the modes' kernels are not compiled yet (auto)."""
    wanted = engine_choice.requested_engine()  # a bad value is an error wherever the command runs
    engine_choice.interpreted_budget_s()
    if _PROCESS_ENTRY and engine_choice.switch_to(scenario, modes) == "interpreted":
        raise _SwitchEngine("interpreted", auto=wanted == "auto")


@contextmanager
def _progress_bars(labels=()):
    """Transient bars on stderr (none when it is not a terminal); yields ``update(label, fraction)``."""
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not sys.stderr.isatty(),
        transient=True,
    ) as bar:
        tasks = {label: bar.add_task(label, total=1.0) for label in labels}

        def update(label: str, fraction: float) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=1.0)
            bar.update(tasks[label], completed=fraction)

        yield update


def _simulate(scenario, modes):
    _warm_kernels(scenario, modes)
    with _progress_bars(modes) as update:
        workload = None
        try:
            if engine_choice.chosen_by_auto():  # past the budget, compiling costs less
                update = engine_choice.within_budget(update, modes)
                workload = pipeline.build_workload(scenario)
                engine_choice.check_workload(len(workload.time), modes)
            return pipeline.simulate(scenario, modes, workload=workload, progress=update)
        except engine_choice.OverBudget as exc:
            raise _SwitchEngine("compiled") from exc


def _print_summary(table) -> None:
    """Metrics as rows, one column per mode and family: side by side.

    A figure a mode does not have (a cloud figure of a pool mode, a calico one
    of a Cilium mode) reads "–" rather than the 0 summary.csv holds; a row no
    mode of the table has is left out.
    """
    rows = table.to_pylist()
    view = Table(title="ipam-bench compare", title_justify="left")
    if engine_choice.interpreted():
        view.caption = "interpreted engine (the kernels' Python source): wall-clock seconds are its own"
        view.caption_justify = "left"
    view.add_column("metric", no_wrap=True)
    for row in rows:
        view.add_column(f"{row['mode']} v{row['family']}", justify="right")
    calico = pipeline.CALICO_SUMMARY_COLUMNS if pipeline.CALICO_SUMMARY_COLUMNS[0][0] in table.column_names else ()
    for name, meaning in (*pipeline.SUMMARY_COLUMNS[2:], *calico):
        has = [pipeline.applies(row["mode"], name) for row in rows]
        if any(has):
            view.add_row(meaning, *(str(row[name]) if h else "–" for row, h in zip(rows, has)))
    out.print(view)


def _run_lines(table, pods: int) -> list[str]:
    """One line per mode and family: what `run` users look at first."""
    return [
        f"{row['mode']} v{row['family']}: {pods:,} pods, {row['pods_failed']:,} failed "
        f"({row['failed_free_elsewhere']:,} while addresses were free elsewhere), "
        f"peak {row['peak_used']:,} addresses used of {row['peak_carved']:,} in node CIDRs"
        for row in table.to_pylist()
    ]


def _print_written(folder: str, names) -> None:
    for name in [*names, MANIFEST_FILE]:
        out.print(f"wrote {Path(folder) / name}", highlight=False)


def _default_out(scenario, kind: str) -> str:
    return str(Path("out") / f"{kind}-{scenario.name}")


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="Scenario YAML file, or the name of a built-in (default).")],
    out_dir: Annotated[Optional[str], typer.Option("--out", "-o", help="Output folder (default out/run-NAME).")] = None,
    mode: Annotated[Optional[str], typer.Option(help="Mode to run instead of the scenario's ipam.mode.",
                                                callback=_mode_flag)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed instead of the scenario's (0 to 2^63-1).",
                                                callback=_seed_flag)] = None,
    plot: Annotated[bool, typer.Option(help="Also write PNG figures.")] = False,
) -> None:
    """Run one mode and write DIR/trace.arrow and DIR/nodes.arrow.

    Example: ipam-bench run scenarios/dual-stack.yaml --out out/ds
    """
    output = _Output()
    with _user_errors(output):
        sc = _load(scenario, seed)
        modes = _modes(mode or sc.ipam.mode, sc)
        _choose_engine(sc, modes)
        target = out_dir if out_dir is not None else _default_out(sc, "run")
        with output.open(target) as publisher:
            result = _simulate(sc, modes)
            names = [p.name for p in pipeline.write_run(result, publisher.staging, command=sys.argv)]
            if plot:
                from ipam_core.plot import plot_run

                names += [p.name for p in plot_run(publisher.staging)]
            publisher.publish()
        _print_written(target, names)
        for line in _run_lines(pipeline.summarize(result), result.workload.n_pods):
            out.print(line, highlight=False)


@app.command()
def compare(
    scenario: Annotated[Optional[str], typer.Argument(help="Scenario YAML file or built-in name.")] = None,
    modes: Annotated[Optional[str], typer.Option(help="Comma-separated modes (default: the scenario's).")] = None,
    out_dir: Annotated[Optional[str], typer.Option("--out", "-o", help="Output folder (default out/compare-NAME).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed instead of the scenario's (0 to 2^63-1).",
                                                callback=_seed_flag)] = None,
    plot: Annotated[bool, typer.Option(help="Write PNG figures too.")] = True,
    address_filters: Annotated[Optional[str], typer.Option(
        "--address-filters", help="Also run each mode with these address-aware scheduler filters (free, warm; "
                                  "comma-separated) and write the blind scheduler's cost to "
                                  "address-filters.csv.")] = None,
) -> None:
    """Run the same workload through each mode and compare them side by side.

    Writes DIR/trace.arrow, DIR/nodes.arrow, DIR/summary.csv (and PNGs).
    With no scenario, runs the built-in default.

    Example: ipam-bench compare --modes kubernetes,cluster-pool,multi-pool
    """
    output = _Output()
    with _user_errors(output):
        sc = _load(scenario, seed)
        names = _modes(modes, sc)
        arms = _address_filters(address_filters)
        _choose_engine(sc, names)
        target = out_dir if out_dir is not None else _default_out(sc, "compare")
        with output.open(target) as publisher:
            result = _simulate(sc, names)
            summary = pipeline.summarize(result)
            written = [p.name for p in pipeline.write_run(result, publisher.staging, command=sys.argv)]
            written.append(write_summary_csv(publisher.staging / "summary.csv", summary).name)
            blind_cost = None
            if arms:
                blind_cost = compare_address_filters(sc, names, arms, workload=result.workload, done=result)
                written.append(write_summary_csv(publisher.staging / "address-filters.csv", blind_cost).name)
            if plot:
                from ipam_core.plot import plot_run

                written += [p.name for p in plot_run(publisher.staging)]
            publisher.publish()
        _print_summary(summary)
        if blind_cost is not None:
            _print_blind_cost(blind_cost)
        _print_written(target, written)


def _address_filters(text: str | None) -> list[str] | None:
    """Filters from ``--address-filters free, warm`` (checked before any run), or None."""
    if text is None:
        return None
    try:
        return check_address_filters(name.strip() for name in text.split(","))
    except ConfigError as exc:
        raise ConfigError(f"--address-filters {text!r}: {exc}") from None


def _print_blind_cost(table) -> None:
    """What the address-blind scheduler costs per mode: failures with and without the filter."""
    view = Table(title="address-aware scheduler (cluster.addressFilter)", title_justify="left")
    for name in ("mode", "family", "address_filter", "pods_failed", "failed_free_elsewhere", "blind_extra_failures"):
        view.add_column(name, justify="left" if name in ("mode", "address_filter") else "right")
    for row in table.to_pylist():
        view.add_row(row["mode"], f"v{row['family']}", row["address_filter"], str(row["pods_failed"]),
                     str(row["failed_free_elsewhere"]), str(row["blind_extra_failures"]))
    out.print(view)


@app.command("plot")
def plot_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Folder holding trace.arrow, or a sweep folder (sweep.parquet).")],
) -> None:
    """Write PNG figures of used / idle / failed over time and fragmentation, per mode.

    The figures join the run's files (and its manifest.json) in one step.

    Example: ipam-bench plot out/compare-default
    """
    from ipam_core.plot import plot_run
    from ipam_core.sweep.folder import hold_sweep_dir
    from ipam_core.sweep_plot import is_sweep_dir, plot_sweep

    if is_sweep_dir(run_dir):  # a sweep folder grows point by point; its figures are written file by file
        with _user_errors(), hold_sweep_dir(run_dir, label="run folder"):
            for p in plot_sweep(run_dir):
                out.print(f"wrote {p}", highlight=False)
        return
    output = _Output(str(run_dir))
    with _user_errors(output):
        read_trace(run_dir)  # a missing or mixed trace is reported with the folder's own name
        output.publisher = RunPublisher(run_dir, label="run folder", carry_over=True)
        with output.publisher as publisher:
            names = [p.name for p in plot_run(publisher.staging)]
            publisher.publish()
        _print_written(str(run_dir), names)


def _scenario_nodes(sc) -> int:
    """Nodes of a scenario; for a migration, those it starts with and those its steps add."""
    if not sc.steps:
        return sc.cluster.nodes

    source = scenario_source(sc)
    names = set(read_settings(sc, source).nodes)
    for step in parse_steps(sc, source):
        if isinstance(step.action, actions.AddNodes):
            names.update(step.action.names)
    return len(names)


def _scenario_row(label: str, source) -> list[str]:
    try:
        sc = load_scenario(source)
        kind = f"migrate from {sc.ipam.mode}" if sc.steps else ", ".join(sc.modes)
        return [label, kind, f"{_scenario_nodes(sc):,}", " ".join(sc.description.split())]
    except IPAMBenchError as exc:
        return [label, "", "", f"[invalid] {exc}"]


@app.command()
def scenarios(
    folder: Annotated[Optional[Path], typer.Argument(
        help="Folder of scenario files (default: the built-ins and ./scenarios when it exists).")] = None,
) -> None:
    """List scenarios with their modes, node count and description.

    Example: ipam-bench scenarios scenarios/
    """

    with _user_errors():
        rows = []
        if folder is None:
            rows += [_scenario_row(name, name) for name in builtin_scenarios()]
            folder = Path("scenarios") if Path("scenarios").is_dir() else None
        elif not folder.is_dir():
            raise ConfigError(f"scenarios: {str(folder)!r} is not a folder; expected a folder of .yaml files")
        if folder is not None:
            rows += [_scenario_row(str(path), path) for path in sorted(folder.glob("*.yaml"))]
        view = Table(box=None, pad_edge=False)
        for name, wrap in (("scenario", False), ("modes", False), ("nodes", False), ("description", True)):
            view.add_column(name, no_wrap=not wrap, justify="right" if name == "nodes" else "left")
        for row in rows:
            view.add_row(*(Text(cell) for cell in row))  # descriptions are text, not rich markup
        screen = out if out.is_terminal else _Stdout(width=100_000)  # piped: one line per scenario, for grep
        screen.print(view, highlight=False)


@app.command()
def migrate(
    scenario: Annotated[str, typer.Argument(help="Scenario YAML file with steps: (e.g. scenarios/seed-lab.yaml).")],
    out_dir: Annotated[Optional[str], typer.Option("--out", "-o", help="Output folder (default out/migrate-NAME).")] = None,
    plan: Annotated[bool, typer.Option("--plan", help="Compare strategies instead of replaying the steps.")] = False,
    batch: Annotated[int, typer.Option(help="--plan: nodes per batch for node-by-node.", callback=_count_flag(
        "--batch", limits.MAX_PLAN_NODES, limits.MAX_PLAN_NODES_WHY))] = 1,
    to: Annotated[Optional[str], typer.Option("--to", help="--plan: target mode instead of the scenario's helm upgrade.")] = None,
    nodes: Annotated[Optional[int], typer.Option(help="--plan: a generated cluster of this many nodes (1 to 5,000).",
                                                 callback=_count_flag("--nodes", limits.MAX_PLAN_NODES,
                                                                      limits.MAX_PLAN_NODES_WHY))] = None,
    pods_per_node: Annotated[Optional[int], typer.Option(
        help="--plan: pods per node of the generated cluster (1 to the scenario's maxPods).",
        callback=_count_flag("--pods-per-node", limits.MAX_PODS_PER_NODE, limits.MAX_PODS_PER_NODE_WHY))] = None,
    brief: Annotated[bool, typer.Option("--brief", help="Timeline without events and command output.")] = False,
    seed: Annotated[Optional[int], typer.Option(help="Seed instead of the scenario's (0 to 2^63-1).",
                                                callback=_seed_flag)] = None,
) -> None:
    """Replay a migration between IPAM modes step by step, or compare strategies with --plan.

    Writes DIR/migration_steps.arrow, DIR/migration_nodes.arrow, DIR/migration_pods.arrow
    (or DIR/migration_plan.csv with --plan).

    Example: ipam-bench migrate scenarios/seed-lab.yaml --plan --batch 1
    """
    output = _Output()
    with _user_errors(output):
        sc = _load(scenario, None)
        target = out_dir if out_dir is not None else _default_out(sc, "migrate")
        if not plan and (to is not None or nodes is not None or pods_per_node is not None):
            raise ConfigError("--to, --nodes and --pods-per-node go with --plan; expected --plan, or a replay "
                              "without them")
        # the migration: and steps: sections and the plan's numbers, checked before --out is touched
        if plan:
            check_plan_arguments(sc, batch=batch, to_mode=to, nodes=nodes, pods_per_node=pods_per_node, seed=seed)
        else:
            source = scenario_source(sc)
            read_settings(sc, source)
            parse_steps(sc, source)
        with output.open(target) as publisher:
            if plan:
                with _progress_bars(STRATEGIES[:3]) as update:
                    result = plan_migration(sc, batch=batch, to_mode=to, nodes=nodes, pods_per_node=pods_per_node,
                                            seed=seed, progress=update)
                names = [write_plan_csv(result, publisher.staging / "migration_plan.csv").name]
            else:
                with _progress_bars(["replay"]) as update:
                    result = run_migration(sc, seed=seed, progress=lambda fraction: update("replay", fraction))
                names = [p.name for p in write_migration_report(result, sc, publisher.staging, command=sys.argv)]
            publisher.publish()
        if plan:
            typer.echo(format_plan(result), nl=False)
        else:
            typer.echo(format_timeline(result, width_events=0 if brief else 16, observations=not brief), nl=False)
        _print_written(target, names)


@app.command("import")
def import_cmd(
    dumps: Annotated[list[Path], typer.Argument(
        help="kubectl get nodes,pods,ciliumnodes,ciliumpodippools -A -o json output (one file or several).")],
    out_dir: Annotated[str, typer.Option("--out", "-o", help="Folder for scenario.yaml, workload.csv and "
                                                             "initial-state.json.")],
    helm_values: Annotated[Optional[Path], typer.Option("--helm-values", help="helm get values cilium -o yaml "
                                                                             "output.")] = None,
    events: Annotated[Optional[Path], typer.Option("--events", help="kubectl get events -A -o json output: pod "
                                                                    "Scheduled / Killing times.")] = None,
) -> None:
    """Turn a cluster's own state into a scenario that run, compare, migrate --plan and sweep accept.

    Writes DIR/scenario.yaml, DIR/workload.csv (nodes and live pods pinned at t=0, recorded
    pod lifetimes) and DIR/initial-state.json (node CIDRs and pod addresses as dumped).

    Example: ipam-bench import cluster.json --helm-values values.yaml --out out/mycluster
    """
    with _user_errors():
        try:  # the import extra (pydantic models); the rest of the CLI runs without it
            from ipam_core.importer import import_cluster, write_import
        except ImportError as exc:
            raise ConfigError(f"ipam-bench import needs the 'import' extra ({exc.name} is missing): "
                              "pip install 'ipam-bench[import]'") from None
        name = Path(out_dir).name or "imported"
        imported = import_cluster(dumps, helm_values=helm_values, events=events, name=name)
        written = write_import(imported, out_dir)
        state = imported.state
        out.print(f"imported {len(state.nodes)} nodes, {sum(1 for p in state.pods if p.ips)} pods with addresses, "
                  f"mode {state.mode}", highlight=False)
        for note in imported.notes:
            out.print(f"note: {note}", highlight=False)
        _print_written(out_dir, [p.name for p in written])


# ---------------------------------------------------------------------------------------------------------------
# Sweeps and sizing (docs/sweep.md): sweep, size, report.

_SWEEP_SHOWN = 40  # rows of the aggregate table printed; the whole table is in aggregate.csv


@contextmanager
def _task_bar(label: str):
    """A transient progress bar over tasks with ETA (stderr; off when stderr is not a terminal)."""
    from rich.progress import MofNCompleteColumn

    with Progress(
        TextColumn(f"{label:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        disable=not sys.stderr.isatty(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _interval(mean, lo, hi) -> str:
    """``mean ± half-width`` of the 95 % interval (just the mean when replicates agree or there is one)."""
    import math

    def num(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"

    if lo is None or math.isnan(lo) or hi - lo < 1e-9:
        return num(mean)
    return f"{num(mean)} ± {num((hi - lo) / 2)}"


def _print_sweep(agg, axes: list[str], title: str) -> None:
    """Points × modes with the figures users weigh: failures, idle, stranded, carved, churn."""
    shown = [("pods_failed", "pods failed"), ("failed_free_elsewhere", "failed, free elsewhere"),
             ("idle_pct", "idle %"), ("stranded_mean", "stranded addrs"), ("peak_carved", "peak carved"),
             ("cidr_carves", "CIDR carves")]
    view = Table(title=title, title_justify="left")
    view.add_column("point", justify="right")
    for axis in axes:
        view.add_column(axis.rsplit(".", 1)[-1], justify="right")
    view.add_column("mode")
    for _, label in shown:
        view.add_column(label, justify="right")
    rows = agg.to_pylist()
    for row in rows[:_SWEEP_SHOWN]:
        cells = [str(row["point"]), *(str(row[a]) for a in axes), f"{row['mode']} v{row['family']}"]
        cells += [_interval(row[f"{m}_mean"], row[f"{m}_lo"], row[f"{m}_hi"]) for m, _ in shown]
        view.add_row(*cells)
    out.print(view)
    if len(rows) > _SWEEP_SHOWN:
        out.print(f"... {len(rows) - _SWEEP_SHOWN} more rows in aggregate.csv", highlight=False)


def _write_aggregate(target: Path, agg) -> Path:
    import io

    import pyarrow.csv as pacsv


    buf = io.BytesIO()
    pacsv.write_csv(agg, buf)
    return atomic_write_bytes(target / "aggregate.csv", buf.getvalue())


def _workers_flag(value: Optional[int]) -> Optional[int]:
    """``--workers``: 1 to MAX_WORKERS, checked before anything is read."""
    from ipam_core.sweep.executors import MAX_WORKERS, MAX_WORKERS_WHY

    return None if value is None else limits.check_count("--workers", value, 1, MAX_WORKERS, MAX_WORKERS_WHY)


@contextmanager
def _sweep_interrupts(folder: Path):
    """Ctrl-C during a sweep: one line saying what is kept and how to resume, exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        typer.echo(f"ipam-bench: interrupted; finished runs kept in {folder / 'points'}, the previous results in "
                   f"{folder} left as they were; rerun the same command to resume", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


@app.command()
def sweep(
    spec_file: Annotated[Path, typer.Argument(help="Sweep spec YAML (docs/sweep.md).")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Sweep folder (default out/sweep-NAME).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes, 1 to 256 (default: the usable cores).",
                                                   callback=_workers_flag)] = None,
    dask: Annotated[Optional[str], typer.Option(help="Run on Dask: tcp://scheduler:8786, or local.")] = None,
    keep_traces: Annotated[bool, typer.Option("--keep-traces", help="Also keep each run's trace.arrow.")] = False,
    plot: Annotated[bool, typer.Option(help="Write the sweep's PNG figures.")] = True,
) -> None:
    """Run a base scenario over a grid or a sample of parameter values, with replicates.

    Every point is validated and the folder checked before anything runs. Results:
    DIR/sweep.parquet (one row per point, mode, family and replicate), DIR/aggregate.csv
    (mean and 95 % interval over replicates). One writer per folder at a time; rerun the
    same command to resume an interrupted sweep.

    Example: ipam-bench sweep scenarios/sweeps/mask-size.yaml --workers 2
    """
    from ipam_core.sweep import aggregate, load_spec, plan, read_sweep, run_sweep
    from ipam_core.sweep.folder import hold_sweep_dir
    from ipam_core.sweep.results import metric_columns

    with _user_errors():
        spec = load_spec(spec_file)
        points = plan(spec)
        target = Path(out_dir) if out_dir is not None else Path("out") / f"sweep-{spec.name}"
        with hold_sweep_dir(target, spec.text, label="--out"), _sweep_interrupts(target):
            with _task_bar("sweep") as progress:
                result = run_sweep(spec, target, points=points, workers=workers, dask=dask, keep_traces=keep_traces,
                                   progress=progress, label="--out")
            table, _ = read_sweep(result.table_path)
            axes = [a.name for a in spec.axes]
            agg = aggregate(table, ["point", *axes, "mode", "family"], [n for n, _ in metric_columns()])
            varying = [a.name for a in spec.axes if a.values is None or len(a.values) > 1]
            _print_sweep(agg, varying, f"ipam-bench sweep {spec.name}: {len(points)} points × {spec.replicates} "
                                    f"replicate(s), mean ± 95 % interval")
            out.print(f"{result.ran} run(s), {result.skipped} already done, {result.wall_s:.1f} s", highlight=False)
            paths = [result.table_path, _write_aggregate(target, agg)]
            if plot:
                from ipam_core.sweep_plot import plot_sweep

                paths += plot_sweep(target)
            for p in paths:
                out.print(f"wrote {p}", highlight=False)


@app.command()
def size(
    spec_file: Annotated[Path, typer.Argument(help="Size spec YAML: a sweep spec with a size: section.")],
    target: Annotated[Optional[str], typer.Option(help="Target instead of the spec's, e.g. 'idle_pct <= 20'.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder (default out/size-NAME).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes, 1 to 256 (default: the usable cores).",
                                                   callback=_workers_flag)] = None,
    dask: Annotated[Optional[str], typer.Option(help="Run on Dask: tcp://scheduler:8786, or local.")] = None,
) -> None:
    """Find, per mode, the first value of a setting (mask, pool, warm target) that meets a target.

    Bisects each mode's ordered values, running every value tried with the spec's
    replicates, and prints the answer with the table of values tried. The folder is a
    sweep folder: checked first, one writer at a time, resumable.

    Example: ipam-bench size scenarios/sweeps/size-mask.yaml
    """
    import csv
    import io
    import json

    from ipam_core.sweep.folder import hold_sweep_dir
    from ipam_core.sweep.size import load_size_spec, parse_target, run_size

    with _user_errors():
        spec, searches, spec_target = load_size_spec(spec_file)
        goal = parse_target(target if target is not None else (spec_target or ""))
        folder = Path(out_dir) if out_dir is not None else Path("out") / f"size-{spec.name}"
        with hold_sweep_dir(folder, spec.text, label="--out"), _sweep_interrupts(folder):
            with _task_bar("size") as progress:
                result = run_size(spec, searches, goal, folder, workers=workers, dask=dask, progress=progress,
                                  label="--out")
            view = Table(title=f"ipam-bench size {spec.name}: target {goal}; {spec.replicates} replicate(s) per "
                               "value", title_justify="left")
            for name in ("mode", "axis", "value", goal.metric + " mean ± 95 %", "replicates meeting it", "meets"):
                view.add_column(name, justify="left" if name in ("mode", "axis") else "right")

            def shown(value) -> str:
                return json.dumps(value) if isinstance(value, (list, dict)) else str(value)

            for t in result.trials:
                view.add_row(t.mode, t.axis, shown(t.value), _interval(t.mean, t.lo, t.hi), f"{t.met}/{t.replicates}",
                             "yes" if t.meets else "no")
            out.print(view)
            for a in result.answers:
                if a.value is None:
                    out.print(f"{a.mode}: no value of {a.axis} in {shown(list(a.values))} meets the target",
                              highlight=False)
                else:
                    tried = sum(t.mode == a.mode for t in result.trials)
                    out.print(f"{a.mode}: {a.axis} = {shown(a.value)}  (first of {shown(list(a.values))} that meets "
                              f"the target; {tried} of {len(a.values)} values run)", highlight=False)
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["mode", "axis", "value", "replicates", "mean", "lo", "hi", "met", "meets", "answer"])
            answer = {a.mode: a.value for a in result.answers}
            for t in result.trials:
                w.writerow([t.mode, t.axis, t.value, t.replicates, t.mean, t.lo, t.hi, t.met, t.meets,
                            t.value == answer[t.mode]])
            out.print(f"wrote {atomic_write_text(folder / 'size.csv', buf.getvalue())}", highlight=False)
            out.print(f"wrote {folder / 'sweep.parquet'}", highlight=False)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (trace.arrow) or a sweep folder (sweep.parquet).")],
) -> None:
    """Write DIR/report.html: a self-contained page with the modes' table and the figures.

    On a run folder the page (and any figures drawn for it) join the run's files and its
    manifest.json in one step, as ``plot`` does; on a sweep folder it is written under
    the folder's lock.

    Example: ipam-bench report out/compare-default
    """
    from ipam_core.report import write_report

    with _user_errors():
        out.print(f"wrote {write_report(run_dir, label='run folder')}", highlight=False)


#: The command line as the user typed it, kept across a switch of engines (run.json records it).
_ARGV0_ENV = "IPAM_BENCH_ARGV0"


def _run_on(switch: _SwitchEngine) -> None:
    """Replace this process with the same command line on ``switch.engine`` (the JIT switch is read at import)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_DISABLE_JIT", engine_choice.AUTO_INTERPRETED_ENV)}
    if switch.engine == "interpreted":
        env["NUMBA_DISABLE_JIT"] = "1"
        if switch.auto:
            env[engine_choice.AUTO_INTERPRETED_ENV] = "1"
    else:  # an automatic interpreted run projected past its budget
        env[engine_choice.ENGINE_ENV] = "compiled"
        if err.is_terminal:
            err.print(f"ipam-bench: {switch.__cause__}; compiling the kernels instead (once)",
                      style="dim", highlight=False)
    env[_ARGV0_ENV] = sys.argv[0]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "ipam_core", *sys.argv[1:]], env)


def main() -> None:
    """Console-script entry point."""
    global _PROCESS_ENTRY
    _PROCESS_ENTRY = True
    sys.argv[0] = os.environ.pop(_ARGV0_ENV, sys.argv[0])
    if engine_choice.interpreted():
        np.seterr(over="ignore")  # the kernels' uint64 arithmetic wraps by design, compiled or not
        if engine_choice.chosen_by_auto() and err.is_terminal:
            err.print("ipam-bench: kernels not compiled yet: running their Python source, same results "
                      f"({engine_choice.ENGINE_ENV}=compiled compiles first)", style="dim", highlight=False)
    # What the imports made (modules, classes, functions, compiled dispatchers) lives as long as the
    # process: out of the collector's way, a full collection walks only what the command builds
    # (migrate --plan --nodes 5000: 0.2-0.5 s less CPU of ~9).
    gc.freeze()
    try:
        app()
    except _SwitchEngine as switch:
        _run_on(switch)


if __name__ == "__main__":
    main()
