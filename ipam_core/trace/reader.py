"""Read ``trace.arrow`` / ``nodes.arrow`` back as Arrow, polars or pandas.

The files are plain Arrow IPC files, so ``pl.read_ipc("out/trace.arrow")``
and ``pd.read_feather("out/trace.arrow")`` work without this module; these
helpers add a check that the file holds the expected table, accept the
output folder as well as the file, and decode the run parameters. When the
folder has a ``manifest.json`` (see :mod:`ipam_core.rundir`), a file whose
hash differs from it (a file of another run) is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from ipam_core.rundir import ManifestError, check_member
from ipam_core.trace.schema import RUN_METADATA_KEY, TABLE_KIND_KEY, TraceError, field_units
from ipam_core.trace.writer import NODES_FILE, TRACE_FILE

__all__ = ["read_nodes", "read_trace", "run_params", "to_pandas", "to_polars"]

_FILES = {"trace": TRACE_FILE, "nodes": NODES_FILE}


def _resolve(path_or_dir: str | os.PathLike[str], kind: str) -> Path:
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / _FILES[kind]
    if not path.is_file():
        raise TraceError(f"no {kind} file at {str(path)!r} (expected an output folder or a {_FILES[kind]} file)")
    try:
        check_member(path)
    except ManifestError as exc:
        raise TraceError(str(exc)) from None
    return path


def _open_schema(path: Path) -> pa.Schema:
    try:
        with pa.ipc.open_file(path) as reader:
            return reader.schema
    except pa.ArrowInvalid as exc:
        raise TraceError(f"{str(path)!r} is not an Arrow IPC file: {str(exc).splitlines()[0]}") from None


def _check_kind(path: Path, schema: pa.Schema, kind: str) -> None:
    found = (schema.metadata or {}).get(TABLE_KIND_KEY.encode(), b"").decode()
    if found != kind:
        holds = f"a {found!r} table" if found else "no ipam-bench table"
        raise TraceError(f"{str(path)!r} holds {holds}, expected a {kind!r} table")


def _read(path_or_dir: str | os.PathLike[str], kind: str) -> pa.Table:
    path = _resolve(path_or_dir, kind)
    _check_kind(path, _open_schema(path), kind)
    with pa.memory_map(str(path)) as source, pa.ipc.open_file(source) as reader:
        return reader.read_all()


def read_trace(path_or_dir: str | os.PathLike[str]) -> pa.Table:
    """Read a ``trace.arrow`` file.

    Parameters
    ----------
    path_or_dir : str or os.PathLike
        The file, or the output folder holding ``trace.arrow``.

    Returns
    -------
    pyarrow.Table
        Schema, field metadata (``unit``, ``description``) and run metadata included.

    Raises
    ------
    TraceError
        If the file is missing, not Arrow IPC, holds another table, or differs
        from its folder's manifest.
    """
    return _read(path_or_dir, "trace")


def read_nodes(path_or_dir: str | os.PathLike[str]) -> pa.Table:
    """Read a ``nodes.arrow`` file.

    Parameters
    ----------
    path_or_dir : str or os.PathLike
        The file, or the output folder holding ``nodes.arrow``.

    Returns
    -------
    pyarrow.Table

    Raises
    ------
    TraceError
        If the file is missing, not Arrow IPC, holds another table, or differs
        from its folder's manifest.
    """
    return _read(path_or_dir, "nodes")


def run_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Decode the run parameters (``ipam_core.run`` schema metadata) of an output file.

    Parameters
    ----------
    path : str or os.PathLike
        ``trace.arrow``, ``nodes.arrow`` or an output folder (its trace is used).
        Only the file's schema is read.

    Returns
    -------
    dict
        The JSON written by the run (see :func:`~ipam_core.trace.schema.run_metadata`).

    Raises
    ------
    TraceError
        If the file is missing, not Arrow IPC, or carries no run metadata.
    """
    file = _resolve(path, "trace")
    raw = (_open_schema(file).metadata or {}).get(RUN_METADATA_KEY.encode())
    if raw is None:
        raise TraceError(f"{str(file)!r} has no {RUN_METADATA_KEY!r} schema metadata")
    return json.loads(raw)


def to_polars(path_or_dir: str | os.PathLike[str], table: str | None = None) -> Any:
    """Load a trace (or nodes) file as a polars DataFrame.

    Parameters
    ----------
    path_or_dir : str or os.PathLike
        The file or the output folder.
    table : {None, "trace", "nodes"}
        Which table to load. ``None``: the table a file holds, or the trace
        of a folder.

    Returns
    -------
    polars.DataFrame
        ``mode`` and ``node`` are ``Categorical``.

    Raises
    ------
    TraceError
        As :func:`read_trace`, or if ``table`` is unknown.
    ImportError
        If polars is not installed.
    """
    import polars as pl

    return pl.from_arrow(_read(path_or_dir, _kind(path_or_dir, table)))


def to_pandas(path_or_dir: str | os.PathLike[str], table: str | None = None) -> Any:
    """Load a trace (or nodes) file as a pandas DataFrame.

    Parameters
    ----------
    path_or_dir : str or os.PathLike
        The file or the output folder.
    table : {None, "trace", "nodes"}
        Which table to load. ``None``: the table a file holds, or the trace
        of a folder.

    Returns
    -------
    pandas.DataFrame
        ``mode`` and ``node`` are ``category``; ``attrs["units"]`` maps column
        -> unit and ``attrs["run"]`` holds the run parameters.

    Raises
    ------
    TraceError
        As :func:`read_trace`, or if ``table`` is unknown.
    ImportError
        If pandas is not installed.
    """
    arrow = _read(path_or_dir, _kind(path_or_dir, table))
    frame = arrow.to_pandas()
    frame.attrs["units"] = field_units(arrow.schema)
    raw = (arrow.schema.metadata or {}).get(RUN_METADATA_KEY.encode())
    frame.attrs["run"] = json.loads(raw) if raw else {}
    return frame


def _kind(path_or_dir: str | os.PathLike[str], table: str | None) -> str:
    if table is None:
        path = Path(path_or_dir)
        if not path.is_file():
            return "trace"
        found = (_open_schema(path).metadata or {}).get(TABLE_KIND_KEY.encode(), b"").decode()
        return found if found in _FILES else "trace"
    if table not in _FILES:
        raise TraceError(f"unknown table {table!r}, expected 'trace' or 'nodes'")
    return table
