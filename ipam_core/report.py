"""``report.html``: one self-contained page for a run or a sweep (no server, no CDN).

A run folder (``trace.arrow``) gets the modes side by side (``summary.csv`` when the
run wrote one, else the key figures read from the trace) and the run's PNG figures; a
sweep folder (``sweep.parquet``) gets the mean and 95 % interval of each point and mode
and the sweep figures. Figures are embedded as base64 PNG; tables sort on a click on
their header (a few lines of inline JavaScript); the run parameters close the page.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from ipam_core.atomic import atomic_write_text
from ipam_core.errors import ConfigError
from ipam_core.rundir import staged_folder
from ipam_core.sweep.folder import hold_sweep_dir
from ipam_core.sweep.aggregate import aggregate
from ipam_core.sweep.results import metric_columns, read_sweep
from ipam_core.sweep_plot import build_sweep_figures, figure_png, is_sweep_dir
from ipam_core.trace import TRACE_FILE, read_trace, run_params

__all__ = ["REPORT_FILE", "render_run", "render_sweep", "write_report"]

REPORT_FILE = "report.html"

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;position:sticky;top:0}th:hover{background:#e6e6e6}
td:first-child,th:first-child{text-align:left}tr:nth-child(even) td{background:#fafafa}
.wrap{overflow-x:auto;max-height:70vh}figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:12px}pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:12px}
.note{color:#555}
"""
# Click a header: sort by that column (numbers as numbers), click again: reverse.
_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((th,i)=>th.addEventListener('click',()=>{
const body=th.closest('table').tBodies[0],rows=[...body.rows],up=th.dataset.dir!=='asc';
const key=r=>{const t=r.cells[i].dataset.v??r.cells[i].textContent;const n=parseFloat(t);return isNaN(n)?t:n};
rows.sort((a,b)=>{const x=key(a),y=key(b);return (x>y?1:x<y?-1:0)*(up?1:-1)});
th.closest('tr').querySelectorAll('th').forEach(h=>delete h.dataset.dir);th.dataset.dir=up?'asc':'desc';
rows.forEach(r=>body.appendChild(r))}));
"""


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _cell(value) -> str:
    if isinstance(value, tuple):  # (mean, low, high): shown as mean ± half-width, sorted by the mean
        mean, lo, hi = value
        text = _num(mean) if math.isnan(lo) or hi - lo < 1e-9 else f"{_num(mean)} ± {_num((hi - lo) / 2)}"
        return f"<td data-v='{mean!r}' title='95 % interval {lo:.4g} to {hi:.4g}'>{text}</td>"
    if isinstance(value, float):
        if math.isnan(value):
            return "<td data-v=''>–</td>"
        return f"<td data-v='{value!r}'>{value:.4g}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def _table(columns: list[str], rows: list[list], table_id: str, titles: dict[str, str] | None = None) -> str:
    titles = titles or {}
    head = "".join(f"<th title='{html.escape(titles.get(c, ''))}'>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return (f"<div class='wrap'><table class='sortable' id='{table_id}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _figure(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _page(title: str, sections: list[str]) -> str:
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}"
            f"<script>{_SCRIPT}</script></body></html>\n")


def _trace_summary(trace: pa.Table) -> tuple[list[str], list[list]]:
    """Key figures per mode and family from the trace alone (runs without summary.csv)."""
    cols = ["mode", "family", "pods failed", "failed, free elsewhere", "peak used", "peak carved",
            "mean idle %", "node-CIDR carves", "node-CIDR releases"]
    data = {k: np.asarray(trace[k].to_numpy(zero_copy_only=False)) for k in
            ("family", "pods_failed", "pods_failed_free_elsewhere", "addrs_used", "addrs_carved", "addrs_idle",
             "cidr_carves", "cidr_releases")}
    modes = np.asarray(trace["mode"].to_pylist(), dtype=object)
    rows = []
    for mode in dict.fromkeys(modes.tolist()):
        for family in sorted(set(data["family"][modes == mode].tolist())):
            sel = (modes == mode) & (data["family"] == family)
            carved = data["addrs_carved"][sel].astype(float)
            has = carved > 0
            idle = float(np.mean(data["addrs_idle"][sel][has] / carved[has]) * 100) if has.any() else 0.0
            rows.append([mode, int(family), int(data["pods_failed"][sel][-1]),
                         int(data["pods_failed_free_elsewhere"][sel][-1]), int(data["addrs_used"][sel].max()),
                         int(carved.max()), round(idle, 1), int(data["cidr_carves"][sel][-1]),
                         int(data["cidr_releases"][sel][-1])])
    return cols, rows


def render_run(run_dir: str | os.PathLike[str]) -> str:
    """The HTML page of a run folder (``trace.arrow``; PNGs drawn if the folder has none).

    Parameters
    ----------
    run_dir : str or os.PathLike

    Returns
    -------
    str
    """
    folder = Path(run_dir)
    trace = read_trace(folder)
    params = run_params(folder / TRACE_FILE)
    summary = folder / "summary.csv"
    if summary.is_file():
        with summary.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            cols = next(reader)
            rows = [[_number(v) for v in row] for row in reader]
    else:
        cols, rows = _trace_summary(trace)
    pngs = sorted(folder.glob("*.png"))
    if not pngs:
        from ipam_core.plot import plot_run

        pngs = sorted(plot_run(folder))
    sections = [
        f"<p class='note'>scenario <b>{html.escape(str(params.get('scenario')))}</b>, seed {params.get('seed')}, "
        f"modes {html.escape(', '.join(params.get('modes', [])))}. Click a column header to sort.</p>",
        "<h2>Modes side by side</h2>", _table(cols, rows, "modes"),
        "<h2>Figures</h2>", *(_figure(p.name, p.read_bytes(), p.stem) for p in pngs),
        "<h2>Run parameters</h2>", f"<pre>{html.escape(json.dumps(params, indent=2, sort_keys=True))}</pre>",
    ]
    return _page(f"ipam-bench run: {params.get('scenario')}", sections)


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def render_sweep(sweep_dir: str | os.PathLike[str]) -> str:
    """The HTML page of a sweep folder (``sweep.parquet``).

    Parameters
    ----------
    sweep_dir : str or os.PathLike

    Returns
    -------
    str
    """
    table, meta = read_sweep(sweep_dir)
    axes = [a["name"] for a in meta["axes"]]
    metrics = ["pods_failed", "failed_free_elsewhere", "idle_pct", "stranded_mean", "idle_mean", "peak_carved",
               "cidr_carves", "frag_failures", "cloud_api_calls", "wall_s"]
    agg = aggregate(table, ["point", *axes, "mode", "family"], metrics)
    meaning = dict(metric_columns())
    cols = ["point", *axes, "mode", "family", "replicates", *metrics]
    titles = {m: meaning.get(m, m) + " (mean ± 95 % interval)" for m in metrics}
    rows = [[r["point"], *(r[a] for a in axes), r["mode"], r["family"], r["replicates"],
             *((r[f"{m}_mean"], r[f"{m}_lo"], r[f"{m}_hi"]) for m in metrics)] for r in agg.to_pylist()]
    figures = build_sweep_figures(table, meta)
    captions = {"sweep-tradeoff.png": "cost (idle addresses) against risk (pods failed) per point, Pareto front per mode",
                "sweep-axes.png": "each varying axis: failures and idle share, mean and 95 % interval",
                "sweep-heatmap.png": "two axes: mean failures (top) and idle share (bottom) per mode"}
    sections = [
        f"<p class='note'>sweep <b>{html.escape(meta['name'])}</b> on scenario {html.escape(meta['base']['scenario'])}: "
        f"{len(set(table['point'].to_pylist()))} points, {meta['replicates']} replicate(s), sampling "
        f"{html.escape(meta['sampling'])}, seed {meta['seed']}. Click a column header to sort.</p>",
        "<h2>Points and modes (mean ± 95 % interval over replicates; hover a header for its meaning)</h2>",
        _table(cols, rows, "modes", titles),
        "<h2>Figures</h2>", *(_figure(name, figure_png(fig), captions.get(name, name)) for name, fig in figures.items()),
        "<h2>Spec</h2>", f"<pre>{html.escape(meta['spec'])}</pre>",
        "<h2>Versions</h2>", f"<pre>{html.escape(json.dumps(meta['versions'], indent=2, sort_keys=True))}</pre>",
    ]
    return _page(f"ipam-bench sweep: {meta['name']}", sections)


def write_report(folder: str | os.PathLike[str], *, label: str = "run folder") -> Path:
    """Write ``report.html`` into a run or sweep folder, without breaking the folder's rules.

    Parameters
    ----------
    folder : str or os.PathLike
    label : str
        How messages name the folder.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ConfigError
        The folder holds neither ``sweep.parquet`` nor ``trace.arrow``.
    OutputDirError
        Another process writes the folder, or it cannot be written.
    ManifestError
        A run folder's files do not match its manifest.

    Notes
    -----
    A run folder gets the page (and the figures drawn for it, if it had none)
    through :class:`ipam_core.rundir.RunPublisher` with ``carry_over``: its
    ``manifest.json`` lists them and a kill leaves the previous folder. A sweep
    folder gets the page atomically while its lock is held
    (:func:`ipam_core.sweep.folder.hold_sweep_dir`).
    """
    path = Path(folder)
    if is_sweep_dir(path):
        with hold_sweep_dir(path, label=label):
            return atomic_write_text(path / REPORT_FILE, render_sweep(path))
    if not (path / TRACE_FILE).is_file():
        raise ConfigError(f"{str(path)!r} holds neither sweep.parquet nor {TRACE_FILE}; expected a run or sweep folder")
    read_trace(path)  # a mixed or damaged run is named by its own folder, before anything is written
    with staged_folder(path, label=label, carry_over=True) as staging:
        atomic_write_text(staging / REPORT_FILE, render_run(staging))
    return path / REPORT_FILE
