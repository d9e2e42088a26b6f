"""Trace layer: the engine's sample arrays as typed Arrow tables and files.

Write::

    run = run_metadata(scenario.name, scenario_text, seed, modes, sys.argv)
    write_tables(out_dir, trace_table(columns, run), nodes_table(...))
    write_run_json(out_dir, run, wall_s=result.wall_s)   # command, threads, wall time

The Arrow files keep only what the scenario, seed and versions determine
(``stored_run``), so they are byte-identical across output folders, command
lines and thread counts; ``run.json`` keeps the rest.

Read (any of)::

    read_trace("out")                  # pyarrow.Table
    pl.read_ipc("out/trace.arrow")     # polars, mode as Categorical
    pd.read_feather("out/trace.arrow") # pandas, mode as category

Columns and units: ``docs/dev/contracts.md`` section 2.
"""

from ipam_core.trace.reader import read_nodes, read_trace, run_params, to_pandas, to_polars
from ipam_core.trace.schema import (
    NODES_SCHEMA,
    RUN_METADATA_KEY,
    RUN_VARYING_KEYS,
    SCHEMA_VERSION,
    TRACE_SCHEMA,
    TraceError,
    field_descriptions,
    field_units,
    run_metadata,
    stored_run,
)
from ipam_core.trace.writer import (
    NODES_FILE,
    RUN_FILE,
    SUMMARY_RUN_VARYING_COLUMNS,
    TRACE_FILE,
    nodes_table,
    trace_table,
    write_ipc,
    write_run_json,
    write_summary_csv,
    write_tables,
)

__all__ = [
    "NODES_FILE",
    "NODES_SCHEMA",
    "RUN_FILE",
    "RUN_METADATA_KEY",
    "RUN_VARYING_KEYS",
    "SCHEMA_VERSION",
    "SUMMARY_RUN_VARYING_COLUMNS",
    "TRACE_FILE",
    "TRACE_SCHEMA",
    "TraceError",
    "field_descriptions",
    "field_units",
    "nodes_table",
    "read_nodes",
    "read_trace",
    "run_metadata",
    "run_params",
    "stored_run",
    "to_pandas",
    "to_polars",
    "trace_table",
    "write_ipc",
    "write_run_json",
    "write_summary_csv",
    "write_tables",
]
