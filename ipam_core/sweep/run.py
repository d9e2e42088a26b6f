"""Run a sweep: validate every point, run what is not done yet, write as it goes, consolidate.

Folder layout (``OUT``)::

    OUT/spec.yaml           the spec, as given
    OUT/points/*.arrow      finished point × replicate rows, flushed every 0.25 s (atomic)
    OUT/sweep.parquet       every row of the spec, sorted (rewritten at the end of each run)
    OUT/sweep.json          the last run's command, executor, workers, counts and seconds
    OUT/traces/<key>/       trace.arrow and nodes.arrow per task, with --keep-traces
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ipam_core.atomic import atomic_write_text
from ipam_core.scenario.limits import check_count
from ipam_core.sweep.executors import MAX_WORKERS, MAX_WORKERS_WHY, connect_dask, default_workers, run_dask, run_local
from ipam_core.sweep.folder import SPEC_FILE, hold_sweep_dir
from ipam_core.sweep.results import POINTS_DIR, consolidate, done_keys, point_table, write_points
from ipam_core.sweep.sampling import sample_points
from ipam_core.sweep.spec import Point, SweepSpec, plan_points
from ipam_core.sweep.tasks import Task, make_tasks

__all__ = ["SweepRun", "mode_order", "plan", "run_sweep"]

TRACES_DIR = "traces"
#: Seconds between writes of finished tasks (and at the end, and on any interruption).
FLUSH_S = 0.25


@dataclass
class SweepRun:
    """What :func:`run_sweep` did."""

    out_dir: Path
    spec: SweepSpec
    points: list[Point]
    tasks: list[Task]
    ran: int
    skipped: int
    table_path: Path
    wall_s: float


def plan(spec: SweepSpec) -> list[Point]:
    """Sample the spec's points and validate every one (nothing is written).

    Parameters
    ----------
    spec : SweepSpec

    Returns
    -------
    list of Point

    Raises
    ------
    ConfigError
        ``sweep axis NAME value V: ...`` for the first bad point.
    """
    return plan_points(spec, sample_points(spec))


def mode_order(points: list[Point]) -> list[str]:
    """Modes in the order they first appear over the points (the table's mode order).

    Parameters
    ----------
    points : list of Point

    Returns
    -------
    list of str
    """
    return list(dict.fromkeys(m for p in points for m in p.modes))


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    points: list[Point] | None = None,
    workers: int | None = None,
    dask: str | None = None,
    keep_traces: bool = False,
    progress: Callable[[int, int], None] | None = None,
    command: list[str] | None = None,
    label: str = "sweep folder",
) -> SweepRun:
    """Run every point × replicate not already in ``out_dir`` and write ``sweep.parquet``.

    Parameters
    ----------
    spec : SweepSpec
    out_dir : str or pathlib.Path
        The sweep folder; created if missing. A folder of an interrupted run of the
        same spec resumes: tasks already in ``points/`` are skipped.
    points : list of Point, optional
        Already validated points (default: :func:`plan`).
    workers : int, optional
        Local worker processes, or Dask LocalCluster workers (default: the usable cores).
    dask : str, optional
        ``tcp://scheduler:8786`` or ``local``: run on Dask instead of local processes.
    keep_traces : bool
        Also write each task's ``trace.arrow`` and ``nodes.arrow`` under ``traces/<key>/``.
    progress : callable, optional
        ``progress(done, total)`` after each finished task (skipped ones count as done).
    command : list of str, optional
        Recorded in ``sweep.json`` (default ``sys.argv``).
    label : str
        How messages name ``out_dir`` (``"--out"`` in the command line).

    Returns
    -------
    SweepRun

    Raises
    ------
    ConfigError
        A bad point, a bad worker count or an unusable executor (before anything is written).
    OutputDirError
        ``out_dir`` cannot take the sweep (:func:`ipam_core.sweep.folder.check_sweep_dir`),
        or another process writes it.

    Notes
    -----
    The folder is held locked (:func:`ipam_core.sweep.folder.hold_sweep_dir`) from the
    first write to the last; ``sweep.parquet`` is rebuilt from ``points/`` every time.
    """
    start = time.perf_counter()
    points = plan(spec) if points is None else points
    workers = default_workers() if workers is None else workers
    check_count("--workers", workers, 1, MAX_WORKERS, MAX_WORKERS_WHY)
    with hold_sweep_dir(out_dir, spec.text, label=label) as out:
        return _run_held(spec, out, points, workers, dask, keep_traces, progress, command, start)


def _run_held(spec, out: Path, points, workers, dask, keep_traces, progress, command, start) -> SweepRun:
    traces = out / TRACES_DIR if keep_traces else None
    tasks = make_tasks(spec, points, traces)
    session = connect_dask(dask, workers) if dask else None  # an unreachable scheduler fails before any write
    try:
        (out / POINTS_DIR).mkdir(exist_ok=True)
        if traces is not None:
            traces.mkdir(exist_ok=True)
        atomic_write_text(out / SPEC_FILE, spec.text)
        done = done_keys(out)
        todo = [t for t in tasks if t.key not in done]
        params = {p.index: p.params for p in points}
        by_key = {t.key: t for t in todo}
        finished = len(tasks) - len(todo)
        if progress is not None:
            progress(finished, len(tasks))
        stream = run_dask(todo, session) if session else run_local(todo, workers)
        fresh: dict = {}
        pending: dict = {}
        flushed = time.perf_counter()
        try:
            for outcome in stream:
                task = by_key[outcome["key"]]
                fresh[task.key] = pending[task.key] = point_table(spec, task, params[task.point], outcome)
                finished += 1
                if time.perf_counter() - flushed >= FLUSH_S:
                    # one fsync'd file per flush, not per task: the disk's fsync latency would bound the sweep
                    write_points(out, pending)
                    pending, flushed = {}, time.perf_counter()
                if progress is not None:
                    progress(finished, len(tasks))
        finally:
            write_points(out, pending)  # also on Ctrl-C or a failed task: nothing finished is lost
    finally:
        if session is not None:
            session.close()
    path = consolidate(out, spec, tasks, mode_order(points), fresh)
    wall = time.perf_counter() - start
    log = {"command": list(sys.argv if command is None else command), "executor": f"dask {dask}" if dask else "local",
           "workers": workers, "tasks": len(tasks), "ran": len(todo), "skipped": len(tasks) - len(todo),
           "wall_s": round(wall, 3)}
    atomic_write_text(out / "sweep.json", json.dumps(log, indent=2) + "\n")
    return SweepRun(out, spec, points, tasks, len(todo), len(tasks) - len(todo), path, wall)
