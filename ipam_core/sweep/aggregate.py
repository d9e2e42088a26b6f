"""Replicates summed up: the mean of each metric and its 95 % confidence interval.

The interval is Student's t: ``mean ± t(0.975, n-1) · s / √n`` with ``s`` the sample
standard deviation over the ``n`` replicates of one point, mode and family. With one
replicate there is no interval (NaN); when every replicate agrees it has zero width.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

__all__ = ["CONFIDENCE", "aggregate", "t_interval"]

CONFIDENCE = 0.95


def t_interval(mean: float, std: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided Student-t interval of a mean.

    Parameters
    ----------
    mean : float
    std : float
        Sample standard deviation (ddof 1).
    n : int
        Number of replicates.
    confidence : float

    Returns
    -------
    (float, float)
        Low and high ends; NaN for ``n < 2``.
    """
    if n < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return mean - half, mean + half


def aggregate(table: pa.Table, group: list[str], metrics: list[str]) -> pa.Table:
    """Mean, 95 % interval and count of ``metrics`` per group of rows.

    Parameters
    ----------
    table : pyarrow.Table
        The sweep table (one row per point, mode, family, replicate).
    group : list of str
        Columns that identify a group (e.g. ``["point", <axes...>, "mode", "family"]``).
    metrics : list of str
        Numeric columns to summarise.

    Returns
    -------
    pyarrow.Table
        ``group`` columns, ``replicates``, then ``<metric>_mean``, ``<metric>_lo``,
        ``<metric>_hi`` for each metric; groups in the order they first appear.
    """
    if table.num_rows == 0:
        return pa.table({})
    tagged = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    specs = [("_row", "min"), ("_row", "count")]
    for m in metrics:
        specs += [(m, "mean"), (m, "stddev", pc.VarianceOptions(ddof=1))]
    grouped = tagged.group_by(group, use_threads=False).aggregate(specs).sort_by("_row_min")
    out = {g: grouped[g] for g in group}
    counts = grouped["_row_count"].to_pylist()
    out["replicates"] = pa.array(counts, pa.int32())
    for m in metrics:
        means = [float(v) for v in grouped[f"{m}_mean"].to_pylist()]
        stds = [0.0 if v is None or math.isnan(v) else float(v) for v in grouped[f"{m}_stddev"].to_pylist()]
        ends = [t_interval(mu, s, n) for mu, s, n in zip(means, stds, counts)]
        out[f"{m}_mean"] = pa.array(means, pa.float64())
        out[f"{m}_lo"] = pa.array([lo for lo, _ in ends], pa.float64())
        out[f"{m}_hi"] = pa.array([hi for _, hi in ends], pa.float64())
    return pa.table(out)
