"""The sweep's results table: one row per point × mode × replicate (× family).

Finished tasks are written within a quarter of a second, atomically, as Arrow IPC
files in ``points/`` (one file per flush, the task keys in its metadata), and on any
interruption before the error propagates, so an interrupted sweep loses nothing it
finished; a rerun reads the keys already there and skips them. :func:`consolidate` gathers the files of the
current spec into ``sweep.parquet``, rows sorted by point, mode (in run order),
replicate and family, so the table is the same whatever ran it.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ipam_core.atomic import atomic_write_bytes
from ipam_core.pipeline import SUMMARY_COLUMNS
from ipam_core.errors import ConfigError
from ipam_core.sweep.spec import Axis, SweepSpec
from ipam_core.trace import run_metadata
from ipam_core.sweep.tasks import EXTRA_COLUMNS, Task

__all__ = ["METADATA_KEY", "POINTS_DIR", "SWEEP_FILE", "WALL_COLUMNS", "consolidate", "done_keys", "metric_columns",
           "point_table", "read_sweep", "sweep_metadata", "write_points"]

SWEEP_FILE = "sweep.parquet"
POINTS_DIR = "points"
POINT_SUFFIX = ".arrow"
KEYS_METADATA = "ipam_core.sweep.keys"
METADATA_KEY = "ipam_core.sweep"
#: Wall-clock columns: the only ones that differ between two runs of the same spec.
WALL_COLUMNS = ("wall_s", "run_s")
_ID_COLUMNS = (("point", pa.int32()), ("mode", pa.string()), ("family", pa.int8()), ("replicate", pa.int32()),
               ("seed", pa.int64()), ("key", pa.string()))


def metric_columns() -> list[tuple[str, str]]:
    """(name, description) of every metric column, in table order.

    Returns
    -------
    list of (str, str)
        ``ipam_core.engine.SUMMARY_COLUMNS`` (less mode and family), the extra trace
        metrics, and ``run_s``.
    """
    return [*SUMMARY_COLUMNS[2:], *EXTRA_COLUMNS, ("run_s", "wall-clock seconds of the whole task (all modes)")]


def _param_type(axis: Axis) -> pa.DataType:
    if axis.values is None:
        return pa.int64() if axis.integer else pa.float64()
    vals = axis.values
    if all(isinstance(v, bool) for v in vals):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return pa.int64()
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return pa.float64()
    if all(isinstance(v, str) for v in vals):
        return pa.string()
    return pa.string()  # lists, mappings, mixed: JSON text


def _param_value(axis: Axis, value):
    if value is None:  # a size search sets only its own mode's axis: the others are null
        return None
    kind = _param_type(axis)
    if kind == pa.string() and not isinstance(value, str):
        return json.dumps(value, sort_keys=True)
    if kind == pa.float64():
        return float(value)
    return value


#: The last spec's table schema: built once per sweep, not once per finished task (~90 us each).
_LAST_SCHEMA: list = [None, None]


def _schema(spec: SweepSpec) -> pa.Schema:
    if _LAST_SCHEMA[0] is spec:
        return _LAST_SCHEMA[1]
    _LAST_SCHEMA[:] = [spec, _build_schema(spec)]
    return _LAST_SCHEMA[1]


def _build_schema(spec: SweepSpec) -> pa.Schema:
    fields = [pa.field("point", pa.int32())]
    fields += [pa.field(a.name, _param_type(a), metadata={"description": f"sweep axis {a.name}"}) for a in spec.axes]
    fields += [pa.field(name, kind) for name, kind in _ID_COLUMNS[1:]]
    ints = {"pods_failed", "failed_free_elsewhere", "peak_pending", "peak_used", "peak_carved", "peak_node_cidrs",
            "cidr_carves", "cidr_releases", "carvable_end", "largest_free_block_end", "peak_interfaces",
            "frag_failures", "cloud_api_calls", "peak_idle", "pods_evicted", "evicted_failed", "peak_held_cordoned",
            "peak_cidrs_stranded"}
    for name, meaning in metric_columns():
        fields.append(pa.field(name, pa.int64() if name in ints else pa.float64(), metadata={"description": meaning}))
    return pa.schema(fields)


def _task_table(spec: SweepSpec, task: Task, params: dict, outcome: dict) -> pa.Table:
    schema = _schema(spec)
    rows = []
    for row in outcome["rows"]:
        full = {"point": task.point, "mode": row["mode"], "family": row["family"], "replicate": task.replicate,
                "seed": task.seed, "key": task.key, "run_s": outcome["run_s"]}
        full.update({a.name: _param_value(a, params.get(a.name)) for a in spec.axes})
        full.update({name: row[name] for name, _ in metric_columns() if name != "run_s"})
        rows.append(full)
    return pa.Table.from_pylist(rows, schema=schema)


def point_table(spec: SweepSpec, task: Task, params: dict, outcome: dict) -> pa.Table:
    """One finished task's rows of the sweep table.

    Parameters
    ----------
    spec : SweepSpec
    task : Task
    params : dict
        The point's parameters.
    outcome : dict
        What :func:`ipam_core.sweep.tasks.run_task` returned.

    Returns
    -------
    pyarrow.Table
    """
    return _task_table(spec, task, params, outcome)


def write_points(out_dir: Path, tables: dict[str, pa.Table]) -> Path | None:
    """Write finished tasks' rows as one Arrow IPC file in ``points/``, atomically.

    Parameters
    ----------
    out_dir : pathlib.Path
        The sweep folder.
    tables : dict
        Task key -> its rows (:func:`point_table`).

    Returns
    -------
    pathlib.Path or None
        ``points/<hash of the keys>.arrow`` (None when there is nothing to write). The
        keys are in the file's schema metadata, so :func:`done_keys` reads no rows.
    """
    if not tables:
        return None
    keys = sorted(tables)
    table = pa.concat_tables(tables[k] for k in keys)
    table = table.replace_schema_metadata({KEYS_METADATA: json.dumps(keys)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:  # Arrow IPC: ~30x cheaper to write than Parquet
        writer.write_table(table)
    name = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24]
    return atomic_write_bytes(Path(out_dir) / POINTS_DIR / f"{name}{POINT_SUFFIX}", sink.getvalue().to_pybytes())


def _point_files(out_dir: Path) -> list[tuple[Path, list[str]]]:
    folder = Path(out_dir) / POINTS_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob(f"*{POINT_SUFFIX}")):
        if path.name.startswith("."):
            continue  # a temporary file of an interrupted atomic write
        with pa.ipc.open_file(path) as reader:
            raw = (reader.schema.metadata or {}).get(KEYS_METADATA.encode())
        out.append((path, json.loads(raw) if raw else []))
    return out


def done_keys(out_dir: Path) -> set[str]:
    """Keys of the tasks already written in ``out_dir/points/``.

    Parameters
    ----------
    out_dir : pathlib.Path

    Returns
    -------
    set of str
    """
    return {key for _, keys in _point_files(out_dir) for key in keys}


def sweep_metadata(spec: SweepSpec) -> dict:
    """What the table's schema metadata records: the spec, its base and the versions (no command, no host).

    Parameters
    ----------
    spec : SweepSpec

    Returns
    -------
    dict
        JSON-serialisable; stored under :data:`METADATA_KEY`.
    """
    base = spec.base
    run = run_metadata(base.name, base.source_text, spec.seed, list(spec.modes or base.modes), command="")
    return {
        "schema_version": 1,
        "name": spec.name,
        "spec": spec.text,
        "spec_sha256": spec.sha256,
        "axes": [{"name": a.name, "path": [str(p) for p in a.path]} for a in spec.axes],
        "sampling": spec.sampling,
        "replicates": spec.replicates,
        "seed": spec.seed,
        "seed_by": spec.seed_by,
        "base": {"scenario": base.name, "scenario_sha256": run["scenario_sha256"]},
        "modes": run["modes"],
        "versions": run["versions"],
    }


def consolidate(out_dir: Path, spec: SweepSpec, tasks: list[Task], mode_order: list[str],
                fresh: dict[str, pa.Table] | None = None) -> Path:
    """Gather the tasks' point files into ``sweep.parquet`` (sorted; atomic).

    Parameters
    ----------
    out_dir : pathlib.Path
    spec : SweepSpec
    tasks : list of Task
        The current spec's tasks (files of other specs in the folder are left out).
    mode_order : list of str
        Modes in run order, for sorting.
    fresh : dict, optional
        Tables of tasks this run wrote, by key: used instead of reading their files back.

    Returns
    -------
    pathlib.Path
    """
    schema = _schema(spec)
    fresh = fresh or {}
    parts = [fresh[t.key] for t in tasks if t.key in fresh]
    wanted = {t.key for t in tasks} - set(fresh)
    task_keys = pa.array([t.key for t in tasks], pa.string())
    task_points = pa.array([t.point for t in tasks], pa.int32())
    for path, keys in _point_files(out_dir):
        take = wanted.intersection(keys)
        if take:
            with pa.ipc.open_file(path) as reader:
                rows = reader.read_all().replace_schema_metadata(None).cast(schema)
            rows = rows.filter(pc.is_in(rows["key"], value_set=pa.array(sorted(take), pa.string())))
            # a key is the point's parameters, not its index: a spec that added values renumbers the points
            point = pc.take(task_points, pc.index_in(rows["key"], value_set=task_keys))
            parts.append(rows.set_column(rows.schema.get_field_index("point"), schema.field("point"), point))
            wanted -= take
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    order = pc.index_in(table["mode"], value_set=pa.array(mode_order, pa.string()))
    table = table.append_column("_mode_order", order)
    table = table.sort_by([("point", "ascending"), ("_mode_order", "ascending"), ("replicate", "ascending"),
                           ("family", "ascending")]).drop_columns(["_mode_order"])
    meta = {METADATA_KEY: json.dumps(sweep_metadata(spec), sort_keys=True)}
    table = table.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return atomic_write_bytes(Path(out_dir) / SWEEP_FILE, buf.getvalue())


def read_sweep(path: str | Path) -> tuple[pa.Table, dict]:
    """Read ``sweep.parquet`` (or the folder holding it) and its metadata.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    (pyarrow.Table, dict)

    Raises
    ------
    ConfigError
        No such file, or a Parquet file that is not a sweep table.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SWEEP_FILE
    if not path.is_file():
        raise ConfigError(f"{str(path)!r} not found; expected a sweep folder holding {SWEEP_FILE}")
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY.encode())
    if raw is None:
        raise ConfigError(f"{str(path)!r} has no {METADATA_KEY!r} metadata; expected a table written by ipam-bench sweep")
    return table, json.loads(raw)
