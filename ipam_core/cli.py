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
from rich.progress import TimeRemainingColumn
from rich.table import Table

from ipam_core.errors import ConfigError, IPAMBenchError

app = typer.Typer(
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

    sc = load_scenario(scenario or "default")
    return replace(sc, seed=seed) if seed is not None else sc


def _modes(text: str | None, scenario) -> list[str]:
    from ipam_core.modes import get_mode

    names = [m.strip() for m in text.split(",") if m.strip()] if text else list(scenario.modes)
    for name in names:
        get_mode(name)
    return names


def _simulate(scenario, modes):
    from ipam_core.engine import simulate

    quiet = not sys.stderr.isatty()
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
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
    mode: Annotated[Optional[str], typer.Option(help="Mode to run instead of the scenario's ipam.mode.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed instead of the scenario's.")] = None,
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
    seed: Annotated[Optional[int], typer.Option(help="Seed instead of the scenario's.")] = None,
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
    run_dir: Annotated[Path, typer.Argument(help="Folder holding trace.arrow, or a sweep folder (sweep.parquet).")],
) -> None:
    """Write PNG figures of used / idle / failed over time and fragmentation, per mode.

    Example: ipam-bench plot out/compare-default
    """
    from ipam_core.plot import plot_run
    from ipam_core.sweep_plot import is_sweep_dir, plot_sweep

    with _user_errors():
        for p in (plot_sweep(run_dir) if is_sweep_dir(run_dir) else plot_run(run_dir)):
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
    batch: Annotated[int, typer.Option(help="--plan: nodes per batch for node-by-node.")] = 1,
    to: Annotated[Optional[str], typer.Option("--to", help="--plan: target mode instead of the scenario's helm upgrade.")] = None,
    nodes: Annotated[Optional[int], typer.Option(help="--plan: a generated cluster of this many nodes.")] = None,
    pods_per_node: Annotated[Optional[int], typer.Option(help="--plan: pods per node of the generated cluster.")] = None,
    brief: Annotated[bool, typer.Option("--brief", help="Timeline without events and command output.")] = False,
    seed: Annotated[Optional[int], typer.Option(help="Seed instead of the scenario's.")] = None,
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

    from ipam_core.atomic import atomic_write_bytes

    buf = io.BytesIO()
    pacsv.write_csv(agg, buf)
    return atomic_write_bytes(target / "aggregate.csv", buf.getvalue())


@app.command()
def sweep(
    spec_file: Annotated[Path, typer.Argument(help="Sweep spec YAML (docs/sweep.md).")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Sweep folder (default out/sweep-NAME).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: the usable cores).")] = None,
    dask: Annotated[Optional[str], typer.Option(help="Run on Dask: tcp://scheduler:8786, or local.")] = None,
    keep_traces: Annotated[bool, typer.Option("--keep-traces", help="Also keep each run's trace.arrow.")] = False,
    plot: Annotated[bool, typer.Option(help="Write the sweep's PNG figures.")] = True,
) -> None:
    """Run a base scenario over a grid or a sample of parameter values, with replicates.

    Every point is validated before anything runs. Results: DIR/sweep.parquet (one row per
    point, mode, family and replicate), DIR/aggregate.csv (mean and 95 % interval over
    replicates). Rerun the same command to resume an interrupted sweep.

    Example: ipam-bench sweep scenarios/sweeps/mask-size.yaml --workers 2
    """
    from ipam_core.sweep import aggregate, load_spec, plan, run_sweep
    from ipam_core.sweep.results import metric_columns

    with _user_errors():
        spec = load_spec(spec_file)
        points = plan(spec)
        target = out_dir or Path("out") / f"sweep-{spec.name}"
        with _task_bar("sweep") as progress:
            result = run_sweep(spec, target, points=points, workers=workers, dask=dask, keep_traces=keep_traces,
                               progress=progress)
        from ipam_core.sweep import read_sweep

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
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: the usable cores).")] = None,
    dask: Annotated[Optional[str], typer.Option(help="Run on Dask: tcp://scheduler:8786, or local.")] = None,
) -> None:
    """Find, per mode, the first value of a setting (mask, pool, warm target) that meets a target.

    Bisects each mode's ordered values, running every value tried with the spec's
    replicates, and prints the answer with the table of values tried.

    Example: ipam-bench size scenarios/sweeps/size-mask.yaml
    """
    import csv
    import io
    import json

    from ipam_core.atomic import atomic_write_text
    from ipam_core.sweep.size import load_size_spec, parse_target, run_size

    with _user_errors():
        spec, searches, spec_target = load_size_spec(spec_file)
        goal = parse_target(target if target is not None else (spec_target or ""))
        folder = out_dir or Path("out") / f"size-{spec.name}"
        with _task_bar("size") as progress:
            result = run_size(spec, searches, goal, folder, workers=workers, dask=dask, progress=progress)
        view = Table(title=f"ipam-bench size {spec.name}: target {goal}; {spec.replicates} replicate(s) per value",
                     title_justify="left")
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
                out.print(f"{a.mode}: {a.axis} = {shown(a.value)}  (first of {shown(list(a.values))} that meets the "
                          f"target; {tried} of {len(a.values)} values run)", highlight=False)
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

    Example: ipam-bench report out/compare-default
    """
    from ipam_core.report import write_report

    with _user_errors():
        out.print(f"wrote {write_report(run_dir)}", highlight=False)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
