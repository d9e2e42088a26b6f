"""PNG figures of one run, drawn from its ``trace.arrow``.

Three figures, one panel (column) per IPAM mode, panels of a row sharing
their y-scale so modes compare at a glance:

``addresses.png``
    addresses used / idle / reserved over time.
``pods.png``
    pods running / pending, cumulative failed and cumulative failed while
    free addresses existed elsewhere.
``fragmentation.png``
    largest free aligned block (top row) and node CIDRs still carvable
    (bottom row).

IPv4 is drawn solid and IPv6 dashed when a trace holds both families. When
the two families differ in scale by more than :data:`SYMLOG_RATIO` (a /24
next to a /112 node CIDR, say), the shared axis becomes symmetric-log so the
smaller family stays readable; the axis label says so.

Figures are built with :class:`matplotlib.figure.Figure` on the Agg canvas
(no pyplot, no display, no global backend switch) and written without a
``Software`` tag or timestamp, so identical traces give byte-identical PNGs.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pyarrow as pa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ipam_core.atomic import atomic_write_bytes
from ipam_core.trace.reader import read_trace
from ipam_core.trace.schema import RUN_METADATA_KEY, TraceError, field_units

__all__ = ["FIGURE_FILES", "SYMLOG_RATIO", "build_figures", "plot_run"]

FIGURE_FILES = ("addresses.png", "pods.png", "fragmentation.png")

#: Larger/smaller peak ratio between IPv4 and IPv6 series above which a shared axis goes symlog.
SYMLOG_RATIO = 100.0

_FAMILY_STYLE = {4: "-", 6: "--"}
_RC = {
    "svg.hashsalt": "ipam-bench",  # deterministic ids should anyone save these figures as SVG
    "path.simplify": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
_PNG_METADATA = {"Software": None}


@dataclass(frozen=True)
class _Metric:
    column: str
    label: str
    color: str


_ADDRESS_METRICS = (
    _Metric("addrs_used", "used", "C0"),
    _Metric("addrs_idle", "idle (free on its node)", "C1"),
    _Metric("addrs_reserved", "reserved", "C7"),
)
_POD_METRICS = (
    _Metric("pods_running", "running", "C2"),
    _Metric("pods_pending", "pending", "C1"),
    _Metric("pods_failed", "failed (cumulative)", "C3"),
    _Metric("pods_failed_free_elsewhere", "failed while free elsewhere (cumulative)", "C4"),
)
_FRAGMENTATION_ROWS = (
    (_Metric("largest_free_block", "largest free aligned block", "C0"),),
    (_Metric("carvable_node_cidrs", "node CIDRs still carvable", "C5"),),
)


@dataclass(frozen=True)
class _Series:
    """One (mode, family) slice of the trace, sorted by time."""

    mode: str
    family: int
    time: np.ndarray
    columns: dict[str, np.ndarray]


def _time_scale(max_seconds: float) -> tuple[float, str]:
    if max_seconds > 2 * 3600:
        return 3600.0, "h"
    if max_seconds > 2 * 60:
        return 60.0, "min"
    return 1.0, "s"


def _split(table: pa.Table, columns: Sequence[str]) -> tuple[list[str], list[int], list[_Series]]:
    """Slice the trace per (mode, family), modes in order of first appearance."""
    mode_column = table.column("mode").combine_chunks()
    names = mode_column.dictionary.to_pylist()
    codes = mode_column.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    family = table.column("family").to_numpy()
    time = table.column("time_s").to_numpy()
    values = {name: table.column(name).to_numpy() for name in columns}
    present, first = np.unique(codes, return_index=True)
    mode_codes = present[np.argsort(first, kind="stable")]
    families = sorted(int(f) for f in np.unique(family))
    series = []
    for code in mode_codes:
        for fam in families:
            rows = np.flatnonzero((codes == code) & (family == fam))
            if len(rows) == 0:
                continue
            rows = rows[np.argsort(time[rows], kind="stable")]
            series.append(
                _Series(names[code], fam, time[rows], {name: column[rows] for name, column in values.items()})
            )
    return [names[c] for c in mode_codes], families, series


def _needs_symlog(series: list[_Series], metrics: Sequence[_Metric]) -> bool:
    peaks = {}
    for s in series:
        for metric in metrics:
            column = s.columns[metric.column]
            if len(column):
                peaks[s.family] = max(peaks.get(s.family, 0), int(np.max(np.abs(column))))
    if len(peaks) < 2:
        return False
    low, high = min(peaks.values()), max(peaks.values())
    return low > 0 and high / low > SYMLOG_RATIO


def _draw_row(
    axes: Sequence,
    modes: list[str],
    series: list[_Series],
    metrics: Sequence[_Metric],
    ylabel: str,
    time_scale: tuple[float, str],
    both_families: bool,
) -> None:
    divisor, _ = time_scale
    symlog = _needs_symlog(series, metrics)
    for ax, mode in zip(axes, modes):
        for s in series:
            if s.mode != mode:
                continue
            for metric in metrics:
                ax.plot(
                    s.time / divisor,
                    s.columns[metric.column],
                    color=metric.color,
                    linestyle=_FAMILY_STYLE[s.family] if both_families else "-",
                    drawstyle="steps-post",
                    linewidth=1.4,
                )
        if symlog:
            ax.set_yscale("symlog", linthresh=1.0)
    # Only once every panel holds its data: the shared autoscale then covers all of them.
    axes[0].set_ylim(bottom=0)
    axes[0].set_ylabel(ylabel + (" (symlog scale)" if symlog else ""))


def _legend(fig: Figure, metrics: Sequence[_Metric], families: list[int]) -> None:
    handles = [Line2D([], [], color=m.color, label=m.label) for m in metrics]
    if len(families) > 1:
        handles += [Line2D([], [], color="0.3", linestyle=_FAMILY_STYLE[f], label=f"IPv{f}") for f in families]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), frameon=False)


def _title(run: dict) -> str:
    parts = []
    if run.get("scenario"):
        parts.append(f"scenario {run['scenario']}")
    if "seed" in run:
        parts.append(f"seed {run['seed']}")
    return ", ".join(parts)


def _figure(
    title: str,
    run: dict,
    modes: list[str],
    families: list[int],
    series: list[_Series],
    rows: Sequence[Sequence[_Metric]],
    ylabels: Sequence[str],
    time_scale: tuple[float, str],
) -> Figure:
    n_rows, n_cols = len(rows), len(modes)
    fig = Figure(figsize=(max(6.0, 4.2 * n_cols), 1.2 + 3.2 * n_rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, sharex=True, sharey="row", squeeze=False))
    both = len(families) > 1
    for row, metrics, ylabel in zip(axes, rows, ylabels):
        _draw_row(row, modes, series, metrics, ylabel, time_scale, both)
    for ax, mode in zip(axes[0], modes):
        ax.set_title(f"mode: {mode}" + ("" if both else f" (IPv{families[0]})"))
    for ax in axes[-1]:
        ax.set_xlabel(f"simulated time [{time_scale[1]}]")
    subtitle = _title(run)
    fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""))
    _legend(fig, [m for metrics in rows for m in metrics], families)
    return fig


def _label(quantity: str, units: dict[str, str], column: str) -> str:
    unit = units.get(column, "")
    return f"{quantity} [{unit}]" if unit else quantity


def build_figures(table: pa.Table, run: dict | None = None) -> dict[str, Figure]:
    """Build the three figures of a trace without writing them.

    Parameters
    ----------
    table : pyarrow.Table
        A trace table (``read_trace``); needs at least one row.
    run : dict, optional
        Run parameters for the titles; read from the table's
        ``ipam_core.run`` metadata when omitted.

    Returns
    -------
    dict of str to matplotlib.figure.Figure
        Keyed by file name (see :data:`FIGURE_FILES`), on an Agg canvas.

    Raises
    ------
    TraceError
        If the trace has no rows.
    """
    if table.num_rows == 0:
        raise TraceError("trace has no rows to plot (expected at least one sample)")
    if run is None:
        raw = (table.schema.metadata or {}).get(RUN_METADATA_KEY.encode())
        run = json.loads(raw) if raw else {}
    units = field_units(table.schema)
    metric_columns = [m.column for m in (*_ADDRESS_METRICS, *_POD_METRICS, *sum(_FRAGMENTATION_ROWS, ()))]
    modes, families, series = _split(table, metric_columns)
    time_scale = _time_scale(float(np.max(table.column("time_s").to_numpy())))
    with matplotlib.rc_context(_RC):
        return {
            "addresses.png": _figure(
                "Pod addresses over time",
                run,
                modes,
                families,
                series,
                [_ADDRESS_METRICS],
                [_label("IP addresses", units, "addrs_used")],
                time_scale,
            ),
            "pods.png": _figure(
                "Pods over time",
                run,
                modes,
                families,
                series,
                [_POD_METRICS],
                [_label("pods", units, "pods_running")],
                time_scale,
            ),
            "fragmentation.png": _figure(
                "Fragmentation over time",
                run,
                modes,
                families,
                series,
                _FRAGMENTATION_ROWS,
                [
                    _label("largest free aligned block", units, "largest_free_block"),
                    _label("carvable node CIDRs", units, "carvable_node_cidrs"),
                ],
                time_scale,
            ),
        }


def _png_bytes(fig: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="png", dpi=dpi, metadata=_PNG_METADATA)
    return buffer.getvalue()


def plot_run(out_dir: str | os.PathLike[str], *, dpi: int = 110) -> list[Path]:
    """Draw the figures of a run from ``out_dir/trace.arrow`` into ``out_dir``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder of a run (holding ``trace.arrow``).
    dpi : int
        Resolution of the PNGs.

    Returns
    -------
    list of pathlib.Path
        ``addresses.png``, ``pods.png`` and ``fragmentation.png`` in ``out_dir``.

    Raises
    ------
    TraceError
        If there is no readable trace or it has no rows.

    Notes
    -----
    Each PNG is written atomically. Output is deterministic for a given
    trace, matplotlib version and dpi.
    """
    directory = Path(out_dir)
    table = read_trace(directory)
    figures = build_figures(table)
    paths = []
    for name, fig in figures.items():
        paths.append(atomic_write_bytes(directory / name, _png_bytes(fig, dpi)))
    return paths
