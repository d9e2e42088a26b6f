"""Turn the engine's numpy sample arrays into schema-checked Arrow tables and write them.

``trace_table`` and ``nodes_table`` check that the columns are exactly those
of the contract (``docs/dev/contracts.md`` section 2), with the right dtype
and length, and wrap them without copying numeric data. ``write_tables``
writes them as Arrow IPC files (``pyarrow.ipc.new_file``, the format that
``pl.read_ipc`` and ``pd.read_feather`` read directly), atomically.

What varies between runs of the same scenario and seed (command line, Numba
threads, wall-clock seconds, output folder) stays out of ``trace.arrow``,
``nodes.arrow`` and ``summary.csv``; :func:`write_run_json` records it in
``run.json`` beside them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from ipam_core.atomic import atomic_write, atomic_write_text
from ipam_core.trace.schema import (
    MODE_TYPE,
    NODE_TYPE,
    RUN_METADATA_KEY,
    SCHEMAS,
    TRACE_SCHEMA,
    TraceError,
    nodes_schema_for,
    schema_with_run,
    trace_schema_for,
)

__all__ = [
    "NODES_FILE",
    "RUN_FILE",
    "SUMMARY_RUN_VARYING_COLUMNS",
    "TRACE_FILE",
    "nodes_table",
    "trace_table",
    "write_ipc",
    "write_run_json",
    "write_summary_csv",
    "write_tables",
]

TRACE_FILE = "trace.arrow"
NODES_FILE = "nodes.arrow"
RUN_FILE = "run.json"

#: Summary columns measured on the machine rather than simulated: left out of ``summary.csv``
#: (the CLI still prints them; :func:`write_run_json` records them).
SUMMARY_RUN_VARYING_COLUMNS = ("wall_s",)

#: Compression of the IPC body buffers; zstd shrinks the repetitive counters
#: several-fold and both polars and pandas (via pyarrow) read it.
DEFAULT_COMPRESSION = "zstd"

_FAMILIES = np.array([4, 6], dtype=np.int8)


def _dtype_name(values: Any) -> str:
    if isinstance(values, np.ndarray):
        return f"{values.ndim}-D {values.dtype}" if values.ndim != 1 else str(values.dtype)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return f"arrow {values.type}"
    return type(values).__name__


def _check_names(kind: str, given: Sequence[str], expected: Sequence[str]) -> None:
    missing = [name for name in expected if name not in given]
    extra = sorted(name for name in given if name not in expected)
    if not missing and not extra:
        return
    parts = []
    if missing:
        parts.append("missing " + ", ".join(repr(n) for n in missing))
    if extra:
        parts.append("unexpected " + ", ".join(repr(n) for n in extra))
    raise TraceError(f"{kind} columns do not match the schema: {'; '.join(parts)} (expected {', '.join(expected)})")


def _numeric(kind: str, name: str, values: Any, type_: pa.DataType) -> pa.Array:
    dtype = np.dtype(type_.to_pandas_dtype())
    if not isinstance(values, np.ndarray) or values.ndim != 1 or values.dtype != dtype:
        raise TraceError(f"{kind} column {name!r} must be a 1-D numpy {dtype} array, got {_dtype_name(values)}")
    return pa.array(values, type=type_)


def _strings(kind: str, name: str, values: Any) -> pa.Array:
    """A string array without nulls from numpy str/object arrays or Arrow string arrays."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "UO":
        try:
            values = pa.array(values, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise TraceError(f"{kind} column {name!r} must hold strings only") from None
    elif isinstance(values, pa.Array) and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = values.cast(pa.string())
    else:
        raise TraceError(
            f"{kind} column {name!r} must be a 1-D numpy str/object array or an Arrow string array, "
            f"got {_dtype_name(values)}"
        )
    if values.null_count:
        raise TraceError(f"{kind} column {name!r} has {values.null_count} null value(s); expected none")
    return values


def _dictionary(
    kind: str, name: str, values: Any, type_: pa.DictionaryType, names: Sequence[str] | None, names_from: str
) -> pa.DictionaryArray:
    """Build a ``dictionary<index, string>`` column from integer codes into ``names`` or from strings."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "iu":
        if names is None:
            raise TraceError(f"{kind} column {name!r} holds integer codes but no names were given ({names_from})")
        dictionary = pa.array([str(n) for n in names], type=pa.string()).dictionary_encode()
        if len(values) and (int(values.min()) < 0 or int(values.max()) >= len(dictionary)):
            bad = int(values.min()) if int(values.min()) < 0 else int(values.max())
            raise TraceError(
                f"{kind} column {name!r} has code {bad}, expected 0..{len(dictionary) - 1} (indices into {names_from})"
            )
        # Equal names share one dictionary entry, so readers see one category per name.
        remap = dictionary.indices.to_numpy()
        codes = remap[values] if len(values) else values
        result = pa.DictionaryArray.from_arrays(pa.array(codes).cast(pa.int64()), dictionary.dictionary)
    elif isinstance(values, pa.DictionaryArray):
        if not pa.types.is_string(values.type.value_type) and not pa.types.is_large_string(values.type.value_type):
            raise TraceError(f"{kind} column {name!r} must have string dictionary values, got {values.type}")
        if values.null_count:
            raise TraceError(f"{kind} column {name!r} has {values.null_count} null value(s); expected none")
        result = pa.DictionaryArray.from_arrays(values.indices.cast(pa.int64()), values.dictionary.cast(pa.string()))
    else:
        result = _strings(kind, name, values).dictionary_encode()
    max_entries = np.iinfo(type_.index_type.to_pandas_dtype()).max + 1
    if len(result.dictionary) > max_entries:
        raise TraceError(
            f"{kind} column {name!r} has {len(result.dictionary)} distinct names, at most {max_entries} fit {type_}"
        )
    return pa.DictionaryArray.from_arrays(result.indices.cast(type_.index_type), result.dictionary)


def _family(kind: str, values: Any) -> pa.Array:
    array = _numeric(kind, "family", values, pa.int8())
    bad = values[~np.isin(values, _FAMILIES)]
    if len(bad):
        raise TraceError(f"{kind} column 'family' has value {int(bad[0])}, expected 4 or 6")
    return array


def _check_lengths(kind: str, arrays: Mapping[str, Any]) -> int:
    first = next(iter(arrays))
    n_rows = len(arrays[first])
    for name, values in arrays.items():
        if len(values) != n_rows:
            raise TraceError(f"{kind} column {name!r} has {len(values)} rows, expected {n_rows} (as {first!r})")
    return n_rows


def _modes_of(run: Mapping[str, Any]) -> Sequence[str] | None:
    modes = run.get("modes") if isinstance(run, Mapping) else None
    return modes if isinstance(modes, Sequence) and not isinstance(modes, str) else None


def trace_table(columns: Mapping[str, Any], run: Mapping[str, Any]) -> pa.Table:
    """Build the ``trace`` table from the engine's per-sample arrays.

    Parameters
    ----------
    columns : mapping of str to array
        Exactly the columns of :data:`~ipam_core.trace.schema.TRACE_SCHEMA`
        (or of ``TRACE_LIFECYCLE_SCHEMA``: those and the node-lifecycle
        columns, for a run that uses them), all of one length. Numeric columns are 1-D numpy arrays of exactly the
        schema's dtype (``int8`` family, ``float64`` time_s, ``int64`` counts);
        they are wrapped without copying. ``mode`` is either integer codes
        into ``run["modes"]``, a numpy str/object array, or an Arrow string or
        dictionary array.
    run : mapping
        JSON-serialisable run parameters (see
        :func:`~ipam_core.trace.schema.run_metadata`), stored under the
        schema-metadata key ``ipam_core.run``.

    Returns
    -------
    pyarrow.Table
        With the trace schema, field metadata and run metadata.

    Raises
    ------
    TraceError
        One line naming the missing, unexpected, mistyped or mis-sized column,
        an out-of-range mode code, a family other than 4/6, or run parameters
        that are not JSON.
    """
    schema = trace_schema_for(columns) if isinstance(columns, Mapping) else TRACE_SCHEMA
    return _build("trace", schema, columns, run, {})


def nodes_table(
    columns: Mapping[str, Any],
    run: Mapping[str, Any],
    *,
    cidrs_values: Any,
    cidrs_offsets: np.ndarray,
    node_names: Sequence[str] | None = None,
) -> pa.Table:
    """Build the ``nodes`` table from the engine's per-node-sample arrays.

    Parameters
    ----------
    columns : mapping of str to array
        Every column of :data:`~ipam_core.trace.schema.NODES_SCHEMA` (or of
        ``NODES_CALICO_SCHEMA``, for a run with a calico mode: ``blocks`` a
        pyarrow list array of ``CALICO_BLOCK_TYPE``) except
        ``cidrs``, all of one length. ``mode`` as in :func:`trace_table`;
        ``node`` is integer node ids into ``node_names`` or strings;
        ``status_error`` is a numpy str/object array or an Arrow string array
        (``""`` for no error); the rest are numpy arrays of the schema dtype.
    run : mapping
        JSON-serialisable run parameters; ``run["modes"]`` names mode codes.
    cidrs_values : pyarrow.Array or array-like of str
        All node CIDRs of all rows, concatenated in row order.
    cidrs_offsets : numpy.ndarray
        ``int32``, one more than the number of rows: row ``i`` holds
        ``cidrs_values[cidrs_offsets[i]:cidrs_offsets[i + 1]]``.
    node_names : sequence of str, optional
        Node id -> name (``Workload.node_names``); needed when ``node`` holds ids.

    Returns
    -------
    pyarrow.Table
        With the nodes schema, field metadata and run metadata.

    Raises
    ------
    TraceError
        One line naming the offending column, as for :func:`trace_table`, or
        describing inconsistent CIDR offsets.
    """
    if "cidrs" in columns:
        raise TraceError("nodes column 'cidrs' must be passed as cidrs_values + cidrs_offsets, not in columns")
    given = [*columns, "cidrs"]
    schema = nodes_schema_for(given)
    _check_names("nodes", given, schema.names)
    n_rows = _check_lengths("nodes", columns)
    cidrs = _cidr_lists(cidrs_values, cidrs_offsets, n_rows)
    blocks_type = getattr(columns.get("blocks"), "type", None)
    if "blocks" in columns and blocks_type != schema.field("blocks").type:
        raise TraceError(f"nodes column 'blocks' has type {blocks_type}, expected {schema.field('blocks').type}")
    return _build("nodes", schema, {**columns, "cidrs": cidrs}, run, {"node": node_names})


def _cidr_lists(values: Any, offsets: Any, n_rows: int) -> pa.ListArray:
    if not isinstance(offsets, np.ndarray) or offsets.ndim != 1 or offsets.dtype != np.int32:
        raise TraceError(f"nodes cidrs_offsets must be a 1-D numpy int32 array, got {_dtype_name(offsets)}")
    if not isinstance(values, (pa.Array, pa.ChunkedArray, np.ndarray)):
        values = np.asarray(list(values), dtype=object)
    values = _strings("nodes", "cidrs", values)
    if len(offsets) != n_rows + 1:
        raise TraceError(f"nodes cidrs_offsets has {len(offsets)} entries, expected {n_rows + 1} (rows + 1)")
    if offsets[0] != 0 or offsets[-1] != len(values) or np.any(np.diff(offsets) < 0):
        raise TraceError(
            f"nodes cidrs_offsets must rise from 0 to {len(values)} (the number of CIDR values), "
            f"got {int(offsets[0])}..{int(offsets[-1])}"
            + (" and decreasing steps" if np.any(np.diff(offsets) < 0) else "")
        )
    if values.offset:
        values = pa.concat_arrays([values])  # offsets address the values from their first element
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)


def _build(
    kind: str,
    schema: pa.Schema,
    columns: Mapping[str, Any],
    run: Mapping[str, Any],
    names: Mapping[str, Sequence[str] | None],
) -> pa.Table:
    if not isinstance(columns, Mapping):
        raise TraceError(f"{kind} columns must be a mapping of column name to array, got {type(columns).__name__}")
    if not isinstance(run, Mapping):
        raise TraceError(f"{kind} run parameters must be a mapping, got {type(run).__name__}")
    _check_names(kind, list(columns), schema.names)
    _check_lengths(kind, {name: columns[name] for name in schema.names})
    full_schema = schema_with_run(kind, run, schema)
    arrays = []
    for field in schema:
        values = columns[field.name]
        if field.name == "family":
            arrays.append(_family(kind, values))
        elif field.type == MODE_TYPE and field.name == "mode":
            arrays.append(_dictionary(kind, "mode", values, MODE_TYPE, _modes_of(run), 'run["modes"]'))
        elif field.type == NODE_TYPE:
            arrays.append(_dictionary(kind, field.name, values, NODE_TYPE, names.get(field.name), "node_names"))
        elif pa.types.is_string(field.type):
            arrays.append(_strings(kind, field.name, values))
        elif pa.types.is_list(field.type):
            arrays.append(values)  # built and checked by _cidr_lists (cidrs) or nodes_table (blocks)
        else:
            arrays.append(_numeric(kind, field.name, values, field.type))
    return pa.Table.from_arrays(arrays, schema=full_schema)


def _conform(kind: str, table: pa.Table) -> pa.Table:
    """Check a table against the ``kind`` schema and restore the canonical field metadata."""
    if not isinstance(table, pa.Table):
        raise TraceError(f"{kind} table must be a pyarrow.Table, got {type(table).__name__}")
    names = table.schema.names
    expected = (trace_schema_for(names) if kind == "trace" else nodes_schema_for(names) if kind == "nodes"
                else SCHEMAS[kind])
    if not table.schema.equals(expected, check_metadata=False):
        _check_names(kind, table.schema.names, expected.names)
        for field in expected:
            got = table.schema.field(field.name).type
            if got != field.type:
                raise TraceError(f"{kind} column {field.name!r} has type {got}, expected {field.type}")
        raise TraceError(f"{kind} table schema differs from the contract (column order or nullability)")
    metadata = table.schema.metadata or {}
    if RUN_METADATA_KEY.encode() not in metadata:
        raise TraceError(f"{kind} table has no {RUN_METADATA_KEY!r} schema metadata; build it with {kind}_table()")
    if any(column.num_chunks > 1 for column in table.columns):
        # The IPC file format allows one dictionary per column: unify before merging chunks.
        table = table.unify_dictionaries().combine_chunks()
    return pa.Table.from_arrays(table.columns, schema=expected.with_metadata(metadata))


def write_ipc(path: str | os.PathLike[str], table: pa.Table, *, compression: str | None = DEFAULT_COMPRESSION) -> Path:
    """Write ``table`` as an Arrow IPC file (Feather V2), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its folder must exist.
    table : pyarrow.Table
        Any table; schema and field metadata are written as they are.
    compression : {"zstd", "lz4", None}
        Buffer compression.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Uses ``pyarrow.ipc.new_file``, not ``pyarrow.feather``. The output holds
    no timestamp, so identical tables give byte-identical files.
    """
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with atomic_write(path, "wb") as handle, pa.ipc.new_file(handle, table.schema, options=options) as writer:
        writer.write_table(table)
    return Path(path)


def write_tables(
    out_dir: str | os.PathLike[str],
    trace: pa.Table,
    nodes: pa.Table | None = None,
    *,
    compression: str | None = DEFAULT_COMPRESSION,
) -> list[Path]:
    """Write ``trace.arrow`` (and ``nodes.arrow``) into ``out_dir``, each atomically.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder, created (with parents) if missing.
    trace : pyarrow.Table
        From :func:`trace_table` (or tables from it concatenated).
    nodes : pyarrow.Table, optional
        From :func:`nodes_table`; nothing is written for it when ``None``.
    compression : {"zstd", "lz4", None}
        Buffer compression (zstd by default).

    Returns
    -------
    list of pathlib.Path
        The files written, trace first.

    Raises
    ------
    TraceError
        If a table's columns or types differ from the contract or it lacks
        the ``ipam_core.run`` metadata.
    """
    tables = [("trace", TRACE_FILE, _conform("trace", trace))]
    if nodes is not None:
        tables.append(("nodes", NODES_FILE, _conform("nodes", nodes)))
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return [write_ipc(directory / filename, table, compression=compression) for _, filename, table in tables]


def write_summary_csv(path: str | os.PathLike[str], table: Any) -> Path:
    """Write a summary table as CSV (header row, comma-separated), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its folder is created if missing.
    table : pyarrow.Table, polars.DataFrame or pandas.DataFrame
        Flat columns (numbers, strings, booleans, dictionary-encoded strings).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TraceError
        If ``table`` is not a table or has a column CSV cannot hold (lists, structs).

    Notes
    -----
    Columns of :data:`SUMMARY_RUN_VARYING_COLUMNS` (wall-clock seconds) are
    left out, so the same scenario and seed give a byte-identical file.
    """
    table = _as_arrow_table(table)
    table = table.drop_columns([n for n in SUMMARY_RUN_VARYING_COLUMNS if n in table.column_names])
    columns = [
        column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
        for column in table.columns
    ]
    for name, column in zip(table.column_names, columns):
        if pa.types.is_nested(column.type):
            raise TraceError(f"summary column {name!r} has nested type {column.type}, which CSV cannot hold")
    flat = pa.Table.from_arrays(columns, names=table.column_names)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, "wb") as handle:
        pa_csv.write_csv(flat, handle)
    return target


def _as_arrow_table(table: Any) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    if hasattr(table, "to_arrow"):  # polars
        return table.to_arrow()
    if hasattr(table, "to_records") and hasattr(table, "columns"):  # pandas
        return pa.Table.from_pandas(table, preserve_index=False)
    raise TraceError(f"summary must be a pyarrow, polars or pandas table, got {type(table).__name__}")


def write_run_json(
    out_dir: str | os.PathLike[str],
    run: Mapping[str, Any],
    *,
    wall_s: Mapping[str, float] | None = None,
    recorded_out: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``run.json``: the run parameters, including those kept out of the data files.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder of the run, created if missing; its path is recorded as ``out_dir``.
    run : mapping
        Run parameters (:func:`~ipam_core.trace.schema.run_metadata`), with
        ``command`` and ``numba_threads``.
    wall_s : mapping of str to float, optional
        Wall-clock seconds per mode (``RunResult.wall_s``), rounded to 1 ms.
    recorded_out : str or os.PathLike, optional
        The folder to record as ``out_dir`` when ``out_dir`` is a staging
        folder that is published under another name (default ``out_dir``).

    Returns
    -------
    pathlib.Path
        ``out_dir/run.json``.

    Raises
    ------
    TraceError
        If ``run`` is not JSON-serialisable.

    Notes
    -----
    ``trace.arrow``, ``nodes.arrow`` and ``summary.csv`` hold only what the
    scenario, seed and versions determine; this file holds the rest
    (:data:`~ipam_core.trace.schema.RUN_VARYING_KEYS`), so it differs between
    runs that wrote identical data.
    """
    directory = Path(out_dir)
    record = dict(run)
    record["out_dir"] = str(recorded_out if recorded_out is not None else directory)
    if wall_s is not None:
        record["wall_s"] = {str(mode): round(float(seconds), 3) for mode, seconds in wall_s.items()}
    try:
        text = json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TraceError(f"run parameters are not JSON-serialisable: {exc}") from None
    missing = [key for key in ("command", "numba_threads") if key not in record]
    if missing:
        raise TraceError(f"run.json needs {', '.join(missing)} in the run parameters (from run_metadata)")
    directory.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(directory / RUN_FILE, text + "\n")
