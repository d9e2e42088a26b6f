"""One unit of sweep work: a point and a replicate, run through the point's modes.

Seeds. Replicate ``r`` gets the seed ``SeedSequence([spec.seed, r]).generate_state(1)[0]``
(a 32-bit integer) when ``seedBy: replicate`` (the default): every point of the sweep
sees the same random workload draws in replicate ``r`` (common random numbers), so
two points differ by their parameters, not by luck. With ``seedBy: point`` the
sequence also takes a 128-bit hash of the point's parameters (the ``ipam.mode`` axis
left out, so the modes of one point always share a workload).

Keys. A task's key is a SHA-256 over the spec's base scenario and modes, the point's
parameters, the replicate and the seed: a rerun skips the keys it already holds.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ipam_core.pipeline import SUMMARY_NAMES, simulate, summary_records, warmup, write_run
from ipam_core.engine.summary import idle_figures
from ipam_core.sweep.spec import Point, SweepSpec

__all__ = ["Task", "make_tasks", "replicate_seed", "run_batch", "run_task", "warm_worker"]

#: Extra per-run metrics computed from the trace, beside ipam_core.engine.SUMMARY_COLUMNS.
EXTRA_COLUMNS = (
    ("idle_mean", "mean idle addresses (carved, not used, not reserved)"),
    ("stranded_mean", "mean idle addresses at the samples where pods failed while addresses were free elsewhere"),
    ("peak_idle", "most idle addresses at once"),
)


@dataclass(frozen=True)
class Task:
    """What a worker needs to run one point and replicate (pickled to the worker)."""

    key: str
    point: int
    replicate: int
    seed: int
    scenario: object
    modes: tuple[str, ...]
    traces_dir: str | None = None


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def replicate_seed(spec: SweepSpec, point: Point, replicate: int) -> int:
    """The scenario seed of one replicate of one point (see the module docstring).

    Parameters
    ----------
    spec : SweepSpec
    point : Point
    replicate : int

    Returns
    -------
    int
        In ``[0, 2**32)``.
    """
    entropy = [spec.seed, replicate]
    if spec.seed_by == "point":
        params = {a.name: point.params[a.name] for a in spec.axes if not a.is_mode and a.name in point.params}
        digest = hashlib.sha256(_canonical(params).encode()).digest()[:16]
        entropy.append(int.from_bytes(digest, "little"))
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def task_key(spec: SweepSpec, point: Point, replicate: int, seed: int) -> str:
    """SHA-256 (hex, 24 digits) of what decides a task's result.

    Parameters
    ----------
    spec : SweepSpec
    point : Point
    replicate : int
    seed : int

    Returns
    -------
    str
    """
    what = {
        "base": hashlib.sha256(spec.base.source_text.encode()).hexdigest(),
        "params": point.params,
        "modes": list(point.modes),
        "replicate": replicate,
        "seed": seed,
    }
    return hashlib.sha256(_canonical(what).encode()).hexdigest()[:24]


def make_tasks(spec: SweepSpec, points: list[Point], traces_dir: str | Path | None = None) -> list[Task]:
    """Every point times every replicate, in (point, replicate) order.

    Parameters
    ----------
    spec : SweepSpec
    points : list of Point
    traces_dir : str or Path, optional
        When set, each task writes its traces to ``traces_dir/<key>/``.

    Returns
    -------
    list of Task
    """
    tasks = []
    for p in points:
        for r in range(spec.replicates):
            seed = replicate_seed(spec, p, r)
            tasks.append(Task(task_key(spec, p, r, seed), p.index, r, seed, p.scenario, p.modes,
                              str(traces_dir) if traces_dir is not None else None))
    return tasks


def warm_worker() -> None:
    """Compile (or load from the Numba cache) the engine once per worker process."""
    warmup()


def _extra_metrics(mode_result) -> dict[int, dict]:
    """:data:`EXTRA_COLUMNS` of one mode, per family (4 or 6).

    A sample "strands" its idle addresses when pods failed since the previous
    one although some node had room. Computed by one compiled pass over the
    counter block (:func:`ipam_core.engine.summary.idle_figures`, with
    ``np.mean``'s own order of addition), or with numpy from the trace columns
    of a result that has no block.
    """
    if mode_result.counters is None:
        return {family: _extra_metrics_numpy(mode_result.trace, family) for family in mode_result.families}
    sums, counts = idle_figures(mode_result.counters, len(mode_result.families))
    out = {}
    for family, (idle_sum, stranded_sum), (n, n_stranded, peak) in zip(mode_result.families, sums.tolist(),
                                                                        counts.tolist()):
        out[family] = {
            "idle_mean": round(idle_sum / n, 1) if n else 0.0,
            "stranded_mean": round(stranded_sum / n_stranded, 1) if n_stranded else 0.0,
            "peak_idle": peak if n else 0,
        }
    return out


def _extra_metrics_numpy(trace, family: int) -> dict:
    mine = trace["family"] == family
    idle = np.asarray(trace["addrs_idle"])[mine]
    stranding = np.diff(np.asarray(trace["pods_failed_free_elsewhere"])[mine], prepend=0) > 0
    return {
        "idle_mean": round(float(idle.mean()), 1) if idle.size else 0.0,
        "stranded_mean": round(float(idle[stranding].mean()), 1) if stranding.any() else 0.0,
        "peak_idle": int(idle.max()) if idle.size else 0,
    }


def run_task(task: Task) -> dict:
    """Run one task and return its small summary (what travels back from a worker).

    Parameters
    ----------
    task : Task

    Returns
    -------
    dict
        ``key``, ``point``, ``replicate``, ``seed``, ``run_s`` and ``rows``: one dict per
        mode and family with the summary metrics (``ipam_core.engine.SUMMARY_COLUMNS``
        and :data:`EXTRA_COLUMNS`).
    """
    start = time.perf_counter()
    result = simulate(replace(task.scenario, seed=task.seed), list(task.modes))
    # summarize's rows without its table: what summarize(result).to_pylist() gives
    rows = [dict(zip(SUMMARY_NAMES, record)) for record in summary_records(result)]
    extra = {m.mode: _extra_metrics(m) for m in result.modes}
    for row in rows:
        row.update(extra[row["mode"]][row["family"]])
    if task.traces_dir is not None:
        write_run(result, Path(task.traces_dir) / task.key, command=["ipam-bench", "sweep", f"point={task.point}",
                                                                     f"replicate={task.replicate}"])
    return {"key": task.key, "point": task.point, "replicate": task.replicate, "seed": task.seed,
            "run_s": round(time.perf_counter() - start, 3), "rows": rows}


def run_batch(tasks: list[Task]) -> list[dict]:
    """Run several tasks in a row on one worker (fewer, larger Dask tasks: less scheduler work per point).

    Parameters
    ----------
    tasks : list of Task

    Returns
    -------
    list of dict
        :func:`run_task`'s summaries, in order.
    """
    return [run_task(t) for t in tasks]
