"""``ipam-bench``: the command line. It parses, calls the library and prints; no logic of its own.

Every error a user can cause ends in one line on stderr and exit status 2,
with no traceback and no half-written output.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ipam_core.errors import ConfigError, IPAMBenchError
from ipam_core.scenario import limits

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
    from ipam_core.modes import REGISTRY

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
err = Console(stderr=True)
# piped or captured output is not cut to 80 columns: the side-by-side table stays one line per metric
out = Console(width=None if sys.stdout.isatty() else 240)



@contextmanager
def _user_errors():
    """Turn library errors into one line and exit status 2."""
    try:
        yield
    except IPAMBenchError as exc:
        typer.echo("ipam-bench: error: " + str(exc).replace("\n", " "), err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        where = f" {exc.filename!s}" if exc.filename else ""
        typer.echo(f"ipam-bench: error:{where}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None


def _load(scenario: str | None, seed: Optional[int]):
    from dataclasses import replace

    from ipam_core.scenario import load_scenario

    if seed is not None:
        limits.check_seed("--seed", seed)
    sc = load_scenario(scenario or "default")
    return replace(sc, seed=seed) if seed is not None else sc


def _modes(text: str | None, scenario) -> list[str]:
    """Modes from ``--modes a, b`` (commas, spaces allowed), or the scenario's; empty lists and repeats refused."""
    from ipam_core.modes import REGISTRY
    from ipam_core.scenario import check_scenario_modes

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


def _simulate(scenario, modes):
    from ipam_core.engine import simulate

    quiet = not sys.stderr.isatty()
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
        transient=True,
    ) as bar:
        tasks = {m: bar.add_task(m, total=1.0) for m in modes}
        return simulate(scenario, modes, progress=lambda mode, done: bar.update(tasks[mode], completed=done))


def _print_summary(table) -> None:
    """Metrics as rows, one column per mode and family: side by side."""
    from ipam_core.engine import SUMMARY_COLUMNS

    rows = table.to_pylist()
    view = Table(title="ipam-bench compare", title_justify="left")
    view.add_column("metric", no_wrap=True)
    for row in rows:
        view.add_column(f"{row['mode']} v{row['family']}", justify="right")
    for name, meaning in SUMMARY_COLUMNS[2:]:
        view.add_row(meaning, *(str(row[name]) for row in rows))
    out.print(view)


def _default_out(scenario, kind: str) -> Path:
    return Path("out") / f"{kind}-{scenario.name}"


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="Scenario YAML file, or the name of a built-in (default).")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default out/run-NAME).")] = None,
    mode: Annotated[Optional[str], typer.Option(help="Mode to run instead of the scenario's ipam.mode.",
                                                callback=_mode_flag)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed instead of the scenario's (0 to 2^63-1).",
                                                callback=_seed_flag)] = None,
    plot: Annotated[bool, typer.Option(help="Also write PNG figures.")] = False,
) -> None:
    """Run one mode and write DIR/trace.arrow and DIR/nodes.arrow.

    Example: ipam-bench run scenarios/dual-stack.yaml --out out/ds
    """
    from ipam_core.engine import write_run

    with _user_errors():
        sc = _load(scenario, seed)
        modes = _modes(mode or sc.ipam.mode, sc)
        result = _simulate(sc, modes)
        target = out_dir or _default_out(sc, "run")
        paths = write_run(result, target, command=sys.argv)
        if plot:
            from ipam_core.plot import plot_run

            paths += plot_run(target)
        for p in paths:
            out.print(f"wrote {p}", highlight=False)


@app.command()
def compare(
    scenario: Annotated[Optional[str], typer.Argument(help="Scenario YAML file or built-in name.")] = None,
    modes: Annotated[Optional[str], typer.Option(help="Comma-separated modes (default: the scenario's).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default out/compare-NAME).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed instead of the scenario's (0 to 2^63-1).",
                                                callback=_seed_flag)] = None,
    plot: Annotated[bool, typer.Option(help="Write PNG figures too.")] = True,
) -> None:
    """Run the same workload through each mode and compare them side by side.

    Writes DIR/trace.arrow, DIR/nodes.arrow, DIR/summary.csv (and PNGs).
    With no scenario, runs the built-in default.

    Example: ipam-bench compare --modes kubernetes,cluster-pool,multi-pool
    """
    from ipam_core.engine import summarize, write_run
    from ipam_core.trace import write_summary_csv

    with _user_errors():
        sc = _load(scenario, seed)
        names = _modes(modes, sc)
        result = _simulate(sc, names)
        target = out_dir or _default_out(sc, "compare")
        summary = summarize(result)
        _print_summary(summary)
        paths = write_run(result, target, command=sys.argv)
        paths.append(write_summary_csv(Path(target) / "summary.csv", summary))
        if plot:
            from ipam_core.plot import plot_run

            paths += plot_run(target)
        for p in paths:
            out.print(f"wrote {p}", highlight=False)


@app.command("plot")
def plot_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Folder holding trace.arrow.")],
) -> None:
    """Write PNG figures of used / idle / failed over time and fragmentation, per mode.

    Example: ipam-bench plot out/compare-default
    """
    from ipam_core.plot import plot_run

    with _user_errors():
        for p in plot_run(run_dir):
            out.print(f"wrote {p}", highlight=False)


@app.command()
def scenarios() -> None:
    """List the built-in scenarios."""
    from ipam_core.scenario import builtin_scenarios

    for name in builtin_scenarios():
        out.print(name)


@app.command()
def migrate(
    scenario: Annotated[str, typer.Argument(help="Scenario YAML file with steps: (e.g. scenarios/seed-lab.yaml).")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default out/migrate-NAME).")] = None,
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
    from ipam_core.migration import run_migration
    from ipam_core.migration.plan import format_plan, plan_migration, write_plan_csv
    from ipam_core.migration.report import write_report
    from ipam_core.migration.timeline import format_timeline

    with _user_errors():
        sc = _load(scenario, None)
        target = out_dir or _default_out(sc, "migrate")
        if plan:
            result = plan_migration(sc, batch=batch, to_mode=to, nodes=nodes, pods_per_node=pods_per_node, seed=seed)
            typer.echo(format_plan(result), nl=False)
            paths = [write_plan_csv(result, Path(target) / "migration_plan.csv")]
        else:
            if to is not None or nodes is not None or pods_per_node is not None:
                raise ConfigError("--to, --nodes and --pods-per-node go with --plan; expected --plan, or a replay "
                                  "without them")
            result = run_migration(sc, seed=seed)
            typer.echo(format_timeline(result, width_events=0 if brief else 16, observations=not brief), nl=False)
            paths = write_report(result, sc, target, command=sys.argv)
        for p in paths:
            typer.echo(f"wrote {p}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
