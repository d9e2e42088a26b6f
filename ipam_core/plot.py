"""PNG figures of one run, drawn from its ``trace.arrow``.

Three figures, each a grid of small multiples (at most :data:`MAX_COLUMNS`
columns, as many rows as the modes need):

``addresses.png``
    one panel per mode and IP family: addresses used / idle / reserved.
``pods.png``
    two panels per mode: pods running; then pods waiting for an address,
    cumulative failed and cumulative failed while free addresses existed
    elsewhere. The second panel's scale ignores the start-up spike (every pod
    of a t=0 workload waits before any node has a CIDR); a note gives the
    spike's height.
``fragmentation.png``
    one panel per mode and family: addresses free in the pools (in no node
    CIDR) against the largest free aligned block among them, the gap being
    fragmentation; the title names the node-CIDR size (``/26``) and how many
    are still carvable at the end.

Panels in the same position of every block share one y scale when their peaks
are within a factor :data:`SHARE_RATIO`; otherwise each has its own and the
figure's subtitle says so. IPv4 is drawn solid with round markers, IPv6
dashed with crosses. The legend sits below the panels, in as many columns as
fit the figure's width.

Figures are built with :class:`matplotlib.figure.Figure` on the Agg canvas
(no pyplot, no display, no global backend switch) and written without a
``Software`` tag or timestamp, so identical traces give byte-identical PNGs.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pyarrow as pa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from ipam_core.atomic import atomic_write_bytes
from ipam_core.modes import REGISTRY
from ipam_core.trace.metrics import node_cidr_size, startup_end
from ipam_core.trace.reader import read_trace
from ipam_core.trace.schema import RUN_METADATA_KEY, TraceError, field_units

__all__ = ["FIGURE_FILES", "MAX_COLUMNS", "SHARE_RATIO", "build_figures", "plot_run"]

FIGURE_FILES = ("addresses.png", "pods.png", "fragmentation.png")

#: Most panel columns in a figure; more modes wrap onto further rows.
MAX_COLUMNS = 4

#: Panels share one y scale when the largest peak is at most this many times the smallest.
SHARE_RATIO = 2.0

_PANEL_WIDTH = 3.9  # inches
_PANEL_HEIGHT = 2.5
_FAMILY_STYLE = {
    4: {"linestyle": "-", "marker": "o", "linewidth": 1.9, "markersize": 3.5},
    6: {"linestyle": (0, (4, 2)), "marker": "x", "linewidth": 1.2, "markersize": 4.5},
}
_FAMILY_LABEL = {4: "IPv4 (solid, o)", 6: "IPv6 (dashed, x)"}
_RC = {
    "svg.hashsalt": "ipam-bench",  # deterministic ids should anyone save these figures as SVG
    "path.simplify": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 9,
}
_PNG_METADATA = {"Software": None}


@dataclass(frozen=True)
class _Metric:
    column: str
    label: str
    color: str
    width: float = 1.0  # times the family's line width: a wide line under a thin one keeps both visible


_USED = _Metric("addrs_used", "addresses used", "C0")
_IDLE = _Metric("addrs_idle", "addresses idle (free on their node)", "C1")
_RESERVED = _Metric("addrs_reserved", "addresses reserved", "C7")
_RUNNING = _Metric("pods_running", "pods running", "C2")
_PENDING = _Metric("pods_pending", "pods waiting for an address", "C1")
_FAILED = _Metric("pods_failed", "pods failed (cumulative)", "C3", width=2.4)
_FAILED_FREE = _Metric("pods_failed_free_elsewhere", "failed while free elsewhere (cumulative)", "C4")
_UNCARVED = _Metric("addrs_uncarved", "addresses free in the pools (in no node CIDR)", "C5", width=1.6)
_LARGEST = _Metric("largest_free_block", "largest free aligned block", "C0")
_METRICS = (_USED, _IDLE, _RESERVED, _RUNNING, _PENDING, _FAILED, _FAILED_FREE, _UNCARVED, _LARGEST)
_EXTRA_COLUMNS = ("addrs_carved", "node_cidrs", "carvable_node_cidrs")


@dataclass(frozen=True)
class _Series:
    """One (mode, family) slice of the trace, sorted by time."""

    mode: str
    family: int
    time: np.ndarray
    columns: dict[str, np.ndarray]


@dataclass
class _Panel:
    """One axes: its title, the series and metrics it draws, its y label and optional y limit."""

    title: str
    series: list[_Series]
    metrics: tuple[_Metric, ...]
    ylabel: str
    ytop: float | None = None  # clip (start-up spike) instead of autoscaling
    note: str = ""
    peak: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        values = [np.max(s.columns[m.column]) for s in self.series for m in self.metrics if len(s.time)]
        self.peak = float(max(values, default=0.0)) if self.ytop is None else self.ytop


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


def _cidr_name(s: _Series) -> str:
    """What the mode's nodes hold their addresses in, with the size when every node CIDR or block has one."""
    spec = REGISTRY.get(s.mode)
    holds = "node CIDRs" if spec is None else spec.holds
    if spec is not None and spec.cloud:
        return holds  # single addresses and /28 prefixes side by side: no one size to name
    size = node_cidr_size(s.columns["addrs_carved"], s.columns["node_cidrs"])
    if size is None:
        return f"mixed-size {holds}"
    prefix = (32 if s.family == 4 else 128) - int(math.log2(size))
    return f"/{prefix} {holds}"


def _address_blocks(series: list[_Series], units: dict[str, str]) -> list[list[_Panel]]:
    blocks = []
    for s in series:
        title = f"{s.mode} IPv{s.family}: {_cidr_name(s)}"
        blocks.append([_Panel(title, [s], (_USED, _IDLE, _RESERVED), units["addrs_used"])])
    return blocks


def _waiting_panel(mode: str, mine: list[_Series], unit: str) -> _Panel:
    """Waiting and failed pods on a scale that leaves out the start-up spike, noting its height."""
    metrics = (_PENDING, _FAILED, _FAILED_FREE)
    after, spike = [0.0], 0
    for s in mine:
        start = startup_end(s.columns["pods_pending"], s.columns["pods_running"])
        after += [float(np.max(s.columns[m.column][start:])) for m in metrics if len(s.time) > start]
        after += [float(np.max(s.columns[m.column])) for m in metrics[1:]]
        if start:
            spike = max(spike, int(np.max(s.columns["pods_pending"][:start])))
    top = max(5.0, 1.15 * max(after))
    notes = [f"start-up: {spike:,} waiting (off scale)"] if spike > top else []
    failed = max(int(s.columns["pods_failed"][-1]) for s in mine)
    if failed:
        elsewhere = max(int(s.columns["pods_failed_free_elsewhere"][-1]) for s in mine)
        notes.append(f"failed: {failed:,}, {elsewhere:,} while free elsewhere")
    note = "\n".join(notes)
    return _Panel(f"{mode}: waiting and failed", mine, metrics, unit, ytop=top, note=note)


def _pod_blocks(modes: list[str], series: list[_Series], units: dict[str, str]) -> list[list[_Panel]]:
    blocks = []
    for mode in modes:
        mine = [s for s in series if s.mode == mode]
        running = _Panel(f"{mode}: running", mine, (_RUNNING,), units["pods_running"])
        blocks.append([running, _waiting_panel(mode, mine, units["pods_pending"])])
    return blocks


def _fragmentation_blocks(series: list[_Series], units: dict[str, str]) -> list[list[_Panel]]:
    blocks = []
    for s in series:
        carvable = int(s.columns["carvable_node_cidrs"][-1])
        # Subnet modes count free subnet addresses as "carvable": one unit is one address.
        per_address = np.array_equal(s.columns["carvable_node_cidrs"], s.columns["addrs_uncarved"])
        left = f"{carvable:,} addresses still free" if per_address else f"{carvable:,} still carvable"
        title = f"{s.mode} IPv{s.family}: {_cidr_name(s)}\n{left} at the end"
        blocks.append([_Panel(title, [s], (_UNCARVED, _LARGEST), units["addrs_uncarved"])])
    return blocks


def _count_label(value: float, _position: int) -> str:
    """Tick label: plain below 10,000, else 3 significant digits with k / M / G (no '1e7' offset text)."""
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= 10_000 and abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:g}"


def _markevery(n: int, family: int) -> tuple[int, int]:
    step = max(2, n // 8)
    return (0 if family == 4 else step // 2, step)  # IPv6 markers fall between IPv4 ones


def _draw(ax, panel: _Panel, time_scale: tuple[float, str], both: bool) -> None:
    divisor, unit = time_scale
    for s in panel.series:
        style = dict(_FAMILY_STYLE[s.family]) if both else {"linestyle": "-", "linewidth": 1.5}
        if both:
            style["markevery"] = _markevery(len(s.time), s.family)
        for metric in panel.metrics:
            width = style["linewidth"] * metric.width
            options = {**style, "linewidth": width}
            ax.plot(s.time / divisor, s.columns[metric.column], color=metric.color, drawstyle="steps-post", **options)
    ax.set_title(panel.title)
    ax.yaxis.set_major_formatter(FuncFormatter(_count_label))
    ax.set_ylabel(panel.ylabel)
    ax.set_xlabel(f"simulated time [{unit}]")
    ax.set_ylim(bottom=0)
    if panel.ytop is not None:
        ax.set_ylim(0, panel.ytop)
    if panel.note:
        ax.text(0.98, 0.95, panel.note, transform=ax.transAxes, ha="right", va="top", fontsize=7.5, color="0.25")


def _share_scales(blocks: list[list[_Panel]], axes: list[list]) -> bool:
    """Give each panel position one y scale across blocks when peaks are alike; True if any differ."""
    differ = False
    for position in range(len(blocks[0])):
        peaks = [block[position].peak for block in blocks]
        low, high = min(peaks), max(peaks)
        if len(blocks) > 1 and low > 0 and high / low <= SHARE_RATIO:
            top = max(ax[position].get_ylim()[1] for ax in axes)
            for ax in axes:
                ax[position].set_ylim(0, top)
        elif len(blocks) > 1 and high > 0:
            differ = True
    return differ


def _legend(fig: Figure, blocks: list[list[_Panel]], families: list[int]) -> None:
    """A legend row under the panels, in as many columns as fit the figure's width."""
    metrics = list(dict.fromkeys(m for block in blocks for panel in block for m in panel.metrics))
    handles = [Line2D([], [], color=m.color, linewidth=2 * m.width, label=m.label) for m in metrics]
    if len(families) > 1:
        handles += [
            Line2D([], [], color="0.3", label=_FAMILY_LABEL[f], **{k: v for k, v in _FAMILY_STYLE[f].items()})
            for f in families
        ]
    renderer = fig.canvas.get_renderer()
    for ncols in range(len(handles), 0, -1):
        legend = fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)
        if legend.get_window_extent(renderer).width <= 0.96 * fig.bbox.width or ncols == 1:
            return
        legend.remove()


def _subtitle(run: dict, scales_differ: bool) -> str:
    parts = []
    if run.get("scenario"):
        parts.append(f"scenario {run['scenario']}")
    if "seed" in run:
        parts.append(f"seed {run['seed']}")
    if scales_differ:
        parts.append("y scales differ between panels")
    return ", ".join(parts)


def _figure(title: str, run: dict, blocks: list[list[_Panel]], families: list[int], time_scale) -> Figure:
    n_blocks, per_block = len(blocks), len(blocks[0])
    ncols = min(n_blocks, MAX_COLUMNS)
    block_rows = math.ceil(n_blocks / ncols)
    width = max(6.0, _PANEL_WIDTH * ncols)
    height = 1.3 + _PANEL_HEIGHT * per_block * block_rows
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(per_block * block_rows, ncols)
    both = len(families) > 1
    axes = []
    for index, block in enumerate(blocks):
        row, col = divmod(index, ncols)
        block_axes = []
        for position, panel in enumerate(block):
            ax = fig.add_subplot(grid[row * per_block + position, col])
            _draw(ax, panel, time_scale, both)
            block_axes.append(ax)
        axes.append(block_axes)
    differ = _share_scales(blocks, axes)
    subtitle = _subtitle(run, differ)
    fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
    _legend(fig, blocks, families)
    return fig


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
    modes, families, series = _split(table, [m.column for m in _METRICS] + list(_EXTRA_COLUMNS))
    time_scale = _time_scale(float(np.max(table.column("time_s").to_numpy())))
    with matplotlib.rc_context(_RC):
        return {
            "addresses.png": _figure(
                "Pod addresses over time", run, _address_blocks(series, units), families, time_scale
            ),
            "pods.png": _figure("Pods over time", run, _pod_blocks(modes, series, units), families, time_scale),
            "fragmentation.png": _figure(
                "Fragmentation over time", run, _fragmentation_blocks(series, units), families, time_scale
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
