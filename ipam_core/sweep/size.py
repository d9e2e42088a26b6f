"""``ipam-bench size``: the smallest per-node mask, pool or warm target per mode that meets a target.

A size spec is a sweep spec with a ``size:`` section instead of (or beside single-valued) axes::

    base: default
    replicates: 20
    size:
      target: pods_failed == 0 in 95% of replicates
      search:
        cluster-pool: {axis: ipam.operator.clusterPoolIPv4MaskSize, values: [28, 27, 26, 25, 24]}
        kubernetes: {axis: cluster.kubeControllerManager.node-cidr-mask-size, values: [28, 27, 26, 25, 24]}

``values`` are listed from the least generous to the most; the answer is the first value
that meets the target, found by bisection over the list, which assumes that once a value
meets the target every later one does too. Each value tried is one point of a sweep
(``replicates`` seeds, run by the sweep executors and kept in the same resumable folder),
and the evidence is the table of every value tried.

Targets: ``METRIC OP NUMBER`` compares the mean over replicates (``idle_pct <= 20``);
``METRIC OP NUMBER in P% of replicates`` asks that at least P % of the replicates meet it
(``pods_failed == 0 in 95% of replicates``). METRIC is a column of the sweep table;
OP is one of ``<= < >= > ==``. With two families, the worse family of each replicate counts.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import yaml

from ipam_core.errors import ConfigError
from ipam_core.scenario.limits import check_count
from ipam_core.sweep.aggregate import t_interval
from ipam_core.sweep.executors import MAX_WORKERS, MAX_WORKERS_WHY
from ipam_core.sweep.folder import hold_sweep_dir
from ipam_core.sweep.results import metric_columns, read_sweep
from ipam_core.sweep.run import run_sweep
from ipam_core.sweep.spec import Point, SweepSpec, build_point, parse_spec, plan_points

__all__ = ["SizeAnswer", "SizeResult", "Target", "Trial", "parse_target", "run_size"]

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_TARGET = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|<|>|≤|≥)\s*(-?[0-9.]+)\s*"
                     r"(?:in\s+([0-9.]+)\s*%\s+of\s+replicates)?\s*$")


@dataclass(frozen=True)
class Target:
    """A condition on a sweep metric (see the module docstring)."""

    metric: str
    op: str
    threshold: float
    share: float | None = None

    def holds(self, value: float) -> bool:
        """Whether one value meets the comparison."""
        return bool(_OPS[self.op](value, self.threshold))

    def __str__(self) -> str:
        text = f"{self.metric} {self.op} {self.threshold:g}"
        return text + (f" in {self.share * 100:g}% of replicates" if self.share is not None else " (mean)")


def parse_target(text: str) -> Target:
    """Read a target such as ``pods_failed == 0 in 95% of replicates`` or ``idle_pct <= 20``.

    Parameters
    ----------
    text : str

    Returns
    -------
    Target

    Raises
    ------
    ConfigError
        Malformed text, or a metric that is not a sweep column.
    """
    m = _TARGET.match(str(text).replace("≤", "<=").replace("≥", ">="))
    if not m:
        raise ConfigError(f"size target {text!r}: expected 'METRIC OP NUMBER' or 'METRIC OP NUMBER in P% of "
                          "replicates', e.g. 'pods_failed == 0 in 95% of replicates' or 'idle_pct <= 20'")
    metric, op, number, share = m.groups()
    names = [n for n, _ in metric_columns()]
    if metric not in names:
        raise ConfigError(f"size target {text!r}: {metric!r} is not a sweep metric; expected one of: {', '.join(names)}")
    if share is not None and not 0 < float(share) <= 100:
        raise ConfigError(f"size target {text!r}: {share}% of replicates; expected a share in (0, 100]")
    return Target(metric, op, float(number), float(share) / 100 if share is not None else None)


@dataclass(frozen=True)
class Trial:
    """One value tried for one mode: the evidence."""

    mode: str
    axis: str
    value: object
    replicates: int
    mean: float
    lo: float
    hi: float
    met: int
    meets: bool


@dataclass(frozen=True)
class SizeAnswer:
    """The first value of a mode's search that meets the target (``None``: none does)."""

    mode: str
    axis: str
    value: object
    values: tuple


@dataclass
class SizeResult:
    """Answers per mode, every trial, and the sweep folder holding the runs."""

    target: Target
    answers: list[SizeAnswer]
    trials: list[Trial]
    out_dir: Path


@dataclass(frozen=True)
class _Search:
    mode: str
    axis: str
    values: tuple


def _searches(spec_doc: dict, source: str) -> tuple[list[_Search], str]:
    size = spec_doc.get("size")
    if not isinstance(size, dict) or set(size) - {"target", "search"}:
        raise ConfigError(f"{source}: size: {size!r}; expected a mapping with target and search")
    search = size.get("search")
    if not isinstance(search, dict) or not search:
        raise ConfigError(f"{source}: size.search: {search!r}; expected a mapping of modes to {{axis, values}}")
    out = []
    for mode, item in search.items():
        if not isinstance(item, dict) or set(item) != {"axis", "values"} or not isinstance(item["values"], list) \
                or not item["values"]:
            raise ConfigError(f"{source}: size.search.{mode}: {item!r}; expected {{axis: dotted.path, values: [...]}}")
        out.append(_Search(str(mode), str(item["axis"]), tuple(item["values"])))
    return out, size.get("target")


def size_spec(doc: dict, text: str, source: str, folder: Path | None) -> tuple[SweepSpec, list[_Search], str]:
    """Turn a size spec into a sweep spec whose axes are the searched ones (plus fixed settings).

    Raises
    ------
    ConfigError
        A malformed ``size`` section, or an axis listed with more than one value.
    """
    searches, target = _searches(doc, source)
    fixed = doc.get("axes") or {}
    if not isinstance(fixed, dict):
        raise ConfigError(f"{source}: axes: {fixed!r}; expected single-valued settings with size")
    for name, values in fixed.items():
        if not isinstance(values, list) or len(values) != 1:
            raise ConfigError(f"{source}: axes.{name}: {values!r}; with size, expected one fixed value per axis "
                              "(the searched axes go under size.search)")
    axes = dict(fixed)
    for s in searches:
        merged = list(axes.get(s.axis, []))
        merged += [v for v in s.values if v not in merged]
        axes[s.axis] = merged
    sweep_doc = {k: v for k, v in doc.items() if k not in ("axes", "size", "modes", "sampling", "samples")}
    sweep_doc.update(axes=axes, modes=[s.mode for s in searches])
    spec = parse_spec(sweep_doc, text, source, folder)
    return spec, searches, target


def load_size_spec(path: str | Path) -> tuple[SweepSpec, list[_Search], str]:
    """Read a size spec file (see the module docstring).

    Returns
    -------
    (SweepSpec, list, str)
        The sweep spec, the searches, and the target text.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        doc = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read size spec {str(path)!r}: {exc.__class__.__name__}; expected a readable YAML "
                          "file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with base and size")
    return size_spec(doc, text, str(path), path.resolve().parent)


def _trial(table, target: Target, point: int, mode: str, search: _Search, value) -> Trial:
    rows = table.filter(pc.and_(pc.equal(table["point"], point), pc.equal(table["mode"], mode)))
    reps = sorted(set(rows["replicate"].to_pylist()))
    values = rows[target.metric].to_pylist()
    by_rep: dict[int, list[float]] = {}
    for r, v in zip(rows["replicate"].to_pylist(), values):
        by_rep.setdefault(r, []).append(float(v))
    met = sum(all(target.holds(v) for v in vs) for vs in by_rep.values())
    n = len(reps)
    worst = [max(vs) if target.op in ("<=", "<", "==") else min(vs) for vs in by_rep.values()]
    mean = sum(worst) / n if n else math.nan
    std = (sum((w - mean) ** 2 for w in worst) / (n - 1)) ** 0.5 if n > 1 else 0.0
    lo, hi = t_interval(mean, std, n)
    if target.share is None:
        ok = n > 0 and target.holds(mean)
    else:
        ok = n > 0 and met >= math.ceil(target.share * n - 1e-9)
    return Trial(mode, search.axis, value, n, mean, lo, hi, met, ok)


def run_size(spec: SweepSpec, searches: list[_Search], target: Target, out_dir: str | Path, *, workers=None,
             dask=None, progress=None, label: str = "sweep folder") -> SizeResult:
    """Bisect each mode's values for the first that meets ``target``.

    Parameters
    ----------
    spec : SweepSpec
        From :func:`size_spec` (its axes are the searched ones).
    searches : list
        One per mode: the axis and its ordered values.
    target : Target
    out_dir : str or pathlib.Path
        Sweep folder for the runs (resumable, as for ``ipam-bench sweep``).
    workers, dask
        As for :func:`ipam_core.sweep.run.run_sweep`.
    progress : callable, optional
        ``progress(done, total)`` per finished run.
    label : str
        How messages name ``out_dir`` (``"--out"`` in the command line).

    Returns
    -------
    SizeResult

    Raises
    ------
    ConfigError
        A bad value in a search (every value is validated before anything runs).
    OutputDirError
        As for :func:`ipam_core.sweep.run.run_sweep`; the folder is held for the whole search.
    """
    if workers is not None:
        check_count("--workers", workers, 1, MAX_WORKERS, MAX_WORKERS_WHY)
    fixed = {a.name: a.values[0] for a in spec.axes if a.name not in {s.axis for s in searches}}
    grid: dict[tuple[int, int], Point] = {}
    index = 0
    for m, s in enumerate(searches):
        checked = plan_points(spec, [{**fixed, s.axis: v} for v in s.values])
        for i, p in enumerate(checked):
            grid[(m, i)] = Point(index, p.params, p.scenario, (s.mode,))
            index += 1
    bounds = {m: [0, len(s.values) - 1] for m, s in enumerate(searches)}
    pending = {m: len(s.values) - 1 for m, s in enumerate(searches)}  # first: is the most generous enough?
    with hold_sweep_dir(out_dir, spec.text, label=label):  # one writer for every round of the search
        return _bisect(spec, searches, target, out_dir, grid, bounds, pending, workers, dask, progress, label)


def _bisect(spec, searches, target, out_dir, grid, bounds, pending, workers, dask, progress, label) -> SizeResult:
    tried: dict[tuple[int, int], Trial] = {}
    while pending:
        wanted = sorted({*tried, *((m, i) for m, i in pending.items())})
        run = run_sweep(spec, out_dir, points=[grid[k] for k in wanted], workers=workers, dask=dask,
                        progress=progress, label=label)
        table, _ = read_sweep(run.table_path)
        nxt = {}
        for m, i in pending.items():
            s = searches[m]
            tried[(m, i)] = _trial(table, target, grid[(m, i)].index, s.mode, s, s.values[i])
            lo, hi = bounds[m]
            if i == len(s.values) - 1 and not tried[(m, i)].meets:
                continue  # not even the most generous value: no answer
            if tried[(m, i)].meets:
                hi = i
            else:
                lo = i + 1
            bounds[m] = [lo, hi]
            if lo < hi:
                nxt[m] = (lo + hi) // 2
        pending = {m: i for m, i in nxt.items() if (m, i) not in tried}
    answers = []
    for m, s in enumerate(searches):
        best = tried.get((m, bounds[m][1]))
        answers.append(SizeAnswer(s.mode, s.axis, s.values[bounds[m][1]] if best and best.meets else None, s.values))
    trials = [tried[k] for k in sorted(tried)]
    return SizeResult(target, answers, trials, Path(out_dir))
