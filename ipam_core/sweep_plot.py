"""PNG figures of a sweep, drawn from its ``sweep.parquet``.

``sweep-tradeoff.png``
    Every point's mean idle addresses (what a setting costs) against its mean pods
    failed for want of an address (what it risks), one colour per mode, each mode's
    Pareto front (no other point of the mode is better on both) drawn as a line.
``sweep-axes.png``
    For each axis that varies (up to four): pods failed and idle share against the
    axis value, per mode, mean over the other axes and replicates with its 95 % interval.
``sweep-heatmap.png``
    When two or more axes vary: mean pods failed (top) and idle share (bottom) over the
    first two, one panel per mode.

Figures use :class:`matplotlib.figure.Figure` on the Agg canvas and are written
without a timestamp, so the same table gives the same bytes.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ipam_core.atomic import atomic_write_bytes
from ipam_core.sweep.aggregate import aggregate
from ipam_core.sweep.results import SWEEP_FILE, read_sweep

__all__ = ["SWEEP_FIGURES", "build_sweep_figures", "is_sweep_dir", "pareto_front", "plot_sweep"]

SWEEP_FIGURES = ("sweep-tradeoff.png", "sweep-axes.png", "sweep-heatmap.png")
_RC = {"axes.grid": True, "grid.alpha": 0.3}
_COST = ("idle_mean", "idle addresses, mean over the run")
_RISK = ("pods_failed", "pods failed for want of an address")
_IDLE = ("idle_pct", "idle share of carved addresses (%)")


def is_sweep_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding a sweep table.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    return (Path(path) / SWEEP_FILE).is_file()


def pareto_front(cost: np.ndarray, risk: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both cost and risk, by increasing cost.

    Parameters
    ----------
    cost, risk : numpy.ndarray
        Lower is better for both.

    Returns
    -------
    numpy.ndarray
        Indices into the inputs.
    """
    order = np.lexsort((risk, cost))
    front, best = [], math.inf
    for i in order:
        if risk[i] < best:
            front.append(i)
            best = risk[i]
    return np.asarray(front, dtype=np.int64)


def _varying(table: pa.Table, meta: dict) -> list[str]:
    return [a["name"] for a in meta["axes"] if pc.count_distinct(table[a["name"]]).as_py() > 1]


def _modes(table: pa.Table) -> list[str]:
    return list(dict.fromkeys(table["mode"].to_pylist()))


def _colors(modes: list[str]) -> dict[str, str]:
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
    return {m: palette[i % len(palette)] for i, m in enumerate(modes)}


def _label(params: dict) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in params.items())


def _inert(rows: pa.Table, axis: str, others: list[str], metrics: list[str]) -> bool:
    """Whether ``axis`` changes none of ``metrics`` for these rows (e.g. a cluster-pool mask under multi-pool)."""
    seen: dict[tuple, tuple] = {}
    keys = zip(*(rows[o].to_pylist() for o in others)) if others else ((),) * rows.num_rows
    for key, *values in zip(keys, *(rows[m].to_pylist() for m in metrics)):
        if seen.setdefault(tuple(key), tuple(values)) != tuple(values):
            return False
    return True


def _tradeoff(table: pa.Table, meta: dict) -> Figure:
    axes = [a["name"] for a in meta["axes"]]
    per_point = aggregate(table, ["point", "mode", *axes], [_COST[0], _RISK[0]])
    modes = _modes(table)
    colors = _colors(modes)
    fig = Figure(figsize=(8.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    varying = _varying(table, meta)
    for mode in modes:
        rows = per_point.filter(pc.equal(per_point["mode"], mode))
        cost = np.asarray(rows[f"{_COST[0]}_mean"].to_pylist(), dtype=float)
        risk = np.asarray(rows[f"{_RISK[0]}_mean"].to_pylist(), dtype=float)
        ax.scatter(cost, risk, s=22, alpha=0.55, color=colors[mode], label=f"{mode} ({rows.num_rows} points)")
        front = pareto_front(cost, risk)
        ax.plot(cost[front], risk[front], "-", color=colors[mode], lw=1.6, drawstyle="steps-post")
        metrics = [f"{_COST[0]}_mean", f"{_RISK[0]}_mean"]
        shown = [a for a in varying if not _inert(rows, a, [o for o in varying if o != a], metrics)]
        if front.size <= 6:
            for k, i in enumerate(front):
                params = {a: rows[a][int(i)].as_py() for a in shown}
                if params:
                    ax.annotate(_label(params), (cost[i], risk[i]), fontsize=7, xytext=(5, 6 + 9 * (k % 2)),
                                textcoords="offset points", color=colors[mode])
    ax.set_xlabel(f"cost: {_COST[1]} (addresses)")
    ax.set_ylabel(f"risk: {_RISK[1]} (pods per run, symmetric log)")
    ax.set_yscale("symlog", linthresh=1.0)  # 0, a handful and a thousand failures all readable
    ax.set_title(f"sweep {meta['name']}: cost vs risk per point (mean of {meta['replicates']} replicate(s)); "
                 "line = Pareto front", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    return fig


def _numeric(column: pa.ChunkedArray) -> bool:
    return pa.types.is_integer(column.type) or pa.types.is_floating(column.type)


def _axes_figure(table: pa.Table, varying: list[str]) -> Figure:
    shown = varying[:4]
    modes = _modes(table)
    colors = _colors(modes)
    fig = Figure(figsize=(4.2 * len(shown) + 0.6, 6.4), layout="constrained")
    grid = fig.subplots(2, len(shown), squeeze=False)
    for col, axis in enumerate(shown):
        agg = aggregate(table, [axis, "mode"], [_RISK[0], _IDLE[0]])
        for row, (metric, meaning) in enumerate((_RISK, _IDLE)):
            ax = grid[row][col]
            for mode in modes:
                rows = agg.filter(pc.equal(agg["mode"], mode))
                xs = rows[axis].to_pylist()
                if _numeric(table[axis]):
                    order = np.argsort(np.asarray(xs, dtype=float), kind="stable")
                else:
                    order = np.arange(len(xs))
                x = [xs[i] for i in order] if _numeric(table[axis]) else [str(xs[i]) for i in order]
                mean = np.asarray(rows[f"{metric}_mean"].to_pylist(), dtype=float)[order]
                lo = np.asarray(rows[f"{metric}_lo"].to_pylist(), dtype=float)[order]
                hi = np.asarray(rows[f"{metric}_hi"].to_pylist(), dtype=float)[order]
                ax.plot(x, mean, "o-", color=colors[mode], ms=4, label=mode)
                if len(varying) == 1 and np.isfinite(lo).any():  # with other axes varying, the spread is theirs
                    ax.fill_between(x, np.nan_to_num(lo, nan=0), np.nan_to_num(hi, nan=0), color=colors[mode],
                                    alpha=0.15, lw=0)
            ax.set_xlabel(axis)
            ax.set_ylabel(meaning if col == 0 else "")
            if pa.types.is_integer(table[axis].type):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    grid[0][0].legend(fontsize=8)
    fig.suptitle("mean over replicates; band = 95 % interval" if len(varying) == 1 else
                 "mean over replicates and over the other axes' values", fontsize=10)
    return fig


def _heatmap(table: pa.Table, x_axis: str, y_axis: str) -> Figure:
    modes = _modes(table)
    xs = sorted(set(table[x_axis].to_pylist()), key=lambda v: (isinstance(v, str), v))
    ys = sorted(set(table[y_axis].to_pylist()), key=lambda v: (isinstance(v, str), v))
    agg = aggregate(table, [x_axis, y_axis, "mode"], [_RISK[0], _IDLE[0]])
    fig = Figure(figsize=(3.8 * len(modes) + 1.2, 6.6), layout="constrained")
    grid = fig.subplots(2, len(modes), squeeze=False)
    for row, (metric, meaning, cmap) in enumerate(((*_RISK, "Reds"), (*_IDLE, "Blues"))):
        values = np.asarray(agg[f"{metric}_mean"].to_pylist(), dtype=float)
        vmax = float(np.nanmax(values)) if values.size and np.nanmax(values) > 0 else 1.0
        for col, mode in enumerate(modes):
            ax = grid[row][col]
            cells = np.full((len(ys), len(xs)), np.nan)
            rows = agg.filter(pc.equal(agg["mode"], mode))
            for xv, yv, v in zip(rows[x_axis].to_pylist(), rows[y_axis].to_pylist(),
                                 rows[f"{metric}_mean"].to_pylist()):
                cells[ys.index(yv), xs.index(xv)] = v
            image = ax.imshow(cells, cmap=cmap, vmin=0, vmax=vmax, aspect="auto", origin="lower")
            for (i, j), v in np.ndenumerate(cells):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}", ha="center", va="center", fontsize=7,
                            color="white" if v > 0.6 * vmax else "black")
            ax.set_xticks(range(len(xs)), [str(v) for v in xs], fontsize=8)
            ax.set_yticks(range(len(ys)), [str(v) for v in ys], fontsize=8)
            ax.set_xlabel(x_axis)
            ax.set_ylabel(y_axis if col == 0 else "")
            ax.set_title(mode if row == 0 else "", fontsize=10)
            ax.grid(False)
        fig.colorbar(image, ax=list(grid[row]), label=meaning, shrink=0.9)
    return fig


def build_sweep_figures(table: pa.Table, meta: dict) -> dict[str, Figure]:
    """The figures of a sweep table (see the module docstring).

    Parameters
    ----------
    table : pyarrow.Table
        ``sweep.parquet``'s rows.
    meta : dict
        Its ``ipam_core.sweep`` metadata.

    Returns
    -------
    dict
        File name -> Figure; the heatmap only with two varying axes, the axes figure
        only with at least one.
    """
    import matplotlib

    with matplotlib.rc_context(_RC):
        figures = {"sweep-tradeoff.png": _tradeoff(table, meta)}
        varying = _varying(table, meta)
        if varying:
            figures["sweep-axes.png"] = _axes_figure(table, varying)
        if len(varying) >= 2:
            figures["sweep-heatmap.png"] = _heatmap(table, varying[0], varying[1])
    return figures


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """PNG bytes of a figure, without a timestamp or software tag.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : int

    Returns
    -------
    bytes
    """
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def plot_sweep(out_dir: str | os.PathLike[str], *, dpi: int = 110) -> list[Path]:
    """Write the sweep's figures into its folder (atomically).

    Parameters
    ----------
    out_dir : str or os.PathLike
        A folder holding ``sweep.parquet``.
    dpi : int

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    ConfigError
        No sweep table there.
    """
    table, meta = read_sweep(out_dir)
    return [atomic_write_bytes(Path(out_dir) / name, figure_png(fig, dpi))
            for name, fig in build_sweep_figures(table, meta).items()]
