"""Trace layer: schema round trip, validation, determinism and atomic writes."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from _synthetic_trace import (
    MODES,
    NODE_NAMES,
    NODES_UNITS,
    SCENARIO_TEXT,
    TRACE_UNITS,
    build_nodes,
    build_trace,
    nodes_columns,
    run,
    trace_columns,
)

from ipam_core.atomic import atomic_write, atomic_write_bytes, atomic_write_text
from ipam_core.errors import IPAMBenchError
from ipam_core.trace import (
    NODES_SCHEMA,
    RUN_METADATA_KEY,
    TRACE_SCHEMA,
    TraceError,
    field_descriptions,
    field_units,
    nodes_table,
    read_nodes,
    read_trace,
    RUN_VARYING_KEYS,
    run_metadata,
    run_params,
    stored_run,
    to_pandas,
    to_polars,
    trace_table,
    write_run_json,
    write_summary_csv,
    write_tables,
)


@pytest.fixture
def out_dir(tmp_path):
    out = tmp_path / "out"
    write_tables(out, build_trace(), build_nodes())
    return out


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --- schema --------------------------------------------------------------------------------------------------


def test_schemas_follow_the_contract_columns_and_units():
    assert field_units(TRACE_SCHEMA) == TRACE_UNITS
    assert list(TRACE_SCHEMA.names) == list(TRACE_UNITS)
    assert field_units(NODES_SCHEMA) == NODES_UNITS
    assert list(NODES_SCHEMA.names) == list(NODES_UNITS)
    for schema in (TRACE_SCHEMA, NODES_SCHEMA):
        assert all(text.strip() for text in field_descriptions(schema).values())
        for field in schema:
            assert set(field.metadata) == {b"unit", b"description"}
            if pa.types.is_integer(field.type) or pa.types.is_floating(field.type):
                assert b"unit" in field.metadata
    assert TRACE_SCHEMA.field("mode").type == pa.dictionary(pa.int8(), pa.string())
    assert NODES_SCHEMA.field("node").type == pa.dictionary(pa.int32(), pa.string())
    assert NODES_SCHEMA.field("cidrs").type == pa.list_(pa.string())


def test_run_metadata_records_versions_threads_and_scenario_hash():
    import numba

    meta = run_metadata("tiny", SCENARIO_TEXT, 42, ["kubernetes"], ["ipam-bench", "run", "my scenario.yaml"])
    assert meta["scenario"] == "tiny"
    assert meta["seed"] == 42
    assert meta["modes"] == ["kubernetes"]
    assert meta["scenario_sha256"] == hashlib.sha256(SCENARIO_TEXT.encode()).hexdigest()
    assert set(meta["versions"]) == {"ipam_core", "numpy", "numba", "pyarrow", "python"}
    assert meta["versions"]["numpy"] == np.__version__
    assert meta["versions"]["pyarrow"] == pa.__version__
    assert meta["versions"]["numba"] == numba.__version__
    assert meta["numba_threads"] == numba.get_num_threads()
    assert meta["engine"] == "compiled"
    assert meta["command"] == "ipam-bench run 'my scenario.yaml'"
    json.dumps(meta)  # must be JSON as is


# --- round trip ----------------------------------------------------------------------------------------------


def test_trace_round_trip_keeps_values_metadata_and_run(out_dir):
    columns = trace_columns()
    table = read_trace(out_dir)
    assert table.schema.equals(TRACE_SCHEMA, check_metadata=False)
    assert field_units(table.schema) == TRACE_UNITS
    assert field_descriptions(table.schema) == field_descriptions(TRACE_SCHEMA)
    for name in TRACE_SCHEMA.names:
        if name == "mode":
            got = table.column("mode").to_pylist()
            assert got == [MODES[c] for c in columns["mode"]]
        else:
            np.testing.assert_array_equal(table.column(name).to_numpy(), columns[name])
    data_run = {k: v for k, v in run().items() if k not in RUN_VARYING_KEYS}
    assert run_params(out_dir / "trace.arrow") == data_run
    assert run_params(out_dir) == data_run
    assert json.loads(table.schema.metadata[RUN_METADATA_KEY.encode()]) == data_run


def test_nodes_round_trip_rebuilds_cidr_lists_and_names(out_dir):
    columns, values, offsets = nodes_columns()
    table = read_nodes(out_dir)
    assert table.schema.equals(NODES_SCHEMA, check_metadata=False)
    assert field_units(table.schema) == NODES_UNITS
    cidrs = table.column("cidrs").to_pylist()
    flat = values.to_pylist()
    assert cidrs == [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    assert table.column("node").to_pylist() == [NODE_NAMES[i] for i in columns["node"]]
    assert table.column("status_error").to_pylist() == list(columns["status_error"])
    np.testing.assert_array_equal(table.column("used").to_numpy(), columns["used"])
    assert run_params(out_dir / "nodes.arrow") == stored_run(run())


def test_polars_reads_files_directly_with_categoricals(out_dir):
    trace = pl.read_ipc(out_dir / "trace.arrow")
    assert trace.schema["mode"] == pl.Categorical
    assert trace.schema["family"] == pl.Int8
    assert trace.schema["pods_running"] == pl.Int64
    assert trace["mode"].cast(pl.String).to_list() == [MODES[c] for c in trace_columns()["mode"]]
    nodes = pl.read_ipc(out_dir / "nodes.arrow")
    assert nodes.schema["node"] == pl.Categorical
    assert nodes.schema["cidrs"] == pl.List(pl.String)
    assert to_polars(out_dir).equals(trace)
    assert to_polars(out_dir, "nodes").equals(nodes)
    assert to_polars(out_dir / "nodes.arrow").equals(nodes)


def test_pandas_reads_files_directly_with_categoricals(out_dir):
    trace = pd.read_feather(out_dir / "trace.arrow")
    assert isinstance(trace["mode"].dtype, pd.CategoricalDtype)
    assert list(trace["mode"].cat.categories) == MODES
    np.testing.assert_array_equal(trace["addrs_idle"].to_numpy(), trace_columns()["addrs_idle"])
    nodes = pd.read_feather(out_dir / "nodes.arrow")
    assert isinstance(nodes["node"].dtype, pd.CategoricalDtype)
    helper = to_pandas(out_dir)
    pd.testing.assert_frame_equal(helper, trace)
    assert helper.attrs["units"]["addrs_used"] == "addresses"
    assert helper.attrs["run"]["seed"] == 7


def test_string_modes_and_node_names_equal_code_form():
    columns = trace_columns()
    as_codes = trace_table(columns, run())
    as_strings = trace_table({**columns, "mode": np.array(MODES, dtype=object)[columns["mode"]]}, run())
    assert as_strings.equals(as_codes)
    node_cols, values, offsets = nodes_columns()
    by_name = {**node_cols, "node": np.array(NODE_NAMES)[node_cols["node"]]}
    assert nodes_table(by_name, run(), cidrs_values=values, cidrs_offsets=offsets).column("node").to_pylist() == (
        build_nodes().column("node").to_pylist()
    )


def test_duplicate_node_names_share_one_category():
    node_cols, values, offsets = nodes_columns()
    names = ["same", "other", "same"]
    table = nodes_table(node_cols, run(), cidrs_values=values, cidrs_offsets=offsets, node_names=names)
    column = table.column("node").combine_chunks()
    assert column.dictionary.to_pylist() == ["same", "other"]
    assert column.to_pylist() == [names[i] for i in node_cols["node"]]


# --- validation ----------------------------------------------------------------------------------------------


def _one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(TraceError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, IPAMBenchError)
    return message


def test_missing_column_is_named():
    columns = trace_columns()
    del columns["addrs_idle"]
    message = _one_line_error(trace_table, columns, run())
    assert "missing 'addrs_idle'" in message


def test_extra_column_is_named():
    columns = {**trace_columns(), "addrs_wasted": np.zeros(48, dtype=np.int64)}
    message = _one_line_error(trace_table, columns, run())
    assert "unexpected 'addrs_wasted'" in message
    assert "missing" not in message


def test_wrong_dtype_is_named():
    columns = trace_columns()
    columns["pods_running"] = columns["pods_running"].astype(np.int32)
    message = _one_line_error(trace_table, columns, run())
    assert "'pods_running'" in message and "int64" in message and "int32" in message
    columns = trace_columns()
    columns["time_s"] = columns["time_s"].tolist()
    assert "'time_s'" in _one_line_error(trace_table, columns, run())


def test_wrong_length_is_named():
    columns = trace_columns()
    columns["ip_allocs"] = columns["ip_allocs"][:-1]
    message = _one_line_error(trace_table, columns, run())
    assert "'ip_allocs'" in message and "47" in message and "48" in message


def test_bad_family_and_mode_codes_rejected():
    columns = trace_columns()
    columns["family"] = columns["family"].copy()
    columns["family"][3] = 5
    assert "value 5" in _one_line_error(trace_table, columns, run())
    columns = trace_columns()
    columns["mode"] = columns["mode"].copy()
    columns["mode"][0] = 2
    assert "code 2" in _one_line_error(trace_table, columns, run())
    assert "no names" in _one_line_error(trace_table, trace_columns(), {"seed": 1})


def test_nodes_validation():
    columns, values, offsets = nodes_columns()
    kwargs = dict(cidrs_values=values, node_names=NODE_NAMES)
    bad = offsets.copy()
    bad[-1] += 1
    assert "cidrs_offsets" in _one_line_error(nodes_table, columns, run(), cidrs_offsets=bad, **kwargs)
    assert "int32" in _one_line_error(nodes_table, columns, run(), cidrs_offsets=offsets.astype(np.int64), **kwargs)
    short = offsets[:-1]
    assert "rows + 1" in _one_line_error(nodes_table, columns, run(), cidrs_offsets=short, **kwargs)
    no_names = _one_line_error(nodes_table, columns, run(), cidrs_values=values, cidrs_offsets=offsets)
    assert "'node'" in no_names
    nulls = {**columns, "status_error": np.array([None] * len(offsets[:-1]), dtype=object)}
    assert "null" in _one_line_error(nodes_table, nulls, run(), cidrs_offsets=offsets, **kwargs)
    missing = {k: v for k, v in columns.items() if k != "pending"}
    assert "missing 'pending'" in _one_line_error(nodes_table, missing, run(), cidrs_offsets=offsets, **kwargs)


def test_run_must_be_json():
    assert "JSON" in _one_line_error(trace_table, trace_columns(), {**run(), "bad": object()})


def test_write_tables_rejects_foreign_tables(tmp_path):
    trace = build_trace()
    renamed = trace.rename_columns([*trace.column_names[:-1], "ip_alloc_errors"])
    assert "ip_alloc_failures" in _one_line_error(write_tables, tmp_path, renamed)
    assert "ipam_core.run" in _one_line_error(write_tables, tmp_path, trace.replace_schema_metadata(None))
    recast = trace.set_column(3, "nodes", trace.column("nodes").cast(pa.int32()))
    assert "'nodes'" in _one_line_error(write_tables, tmp_path, recast)
    assert not any(tmp_path.iterdir())


def test_concatenated_tables_with_different_dictionaries_write(tmp_path):
    first = build_trace(modes=["kubernetes"])
    second = build_trace(modes=["multi-pool"])
    both = pa.concat_tables([first, second])
    write_tables(tmp_path, both)
    assert pl.read_ipc(tmp_path / "trace.arrow")["mode"].unique(maintain_order=True).to_list() == [
        "kubernetes",
        "multi-pool",
    ]


def test_reader_checks_table_kind(out_dir, tmp_path):
    assert "'nodes'" in _one_line_error(read_trace, out_dir / "nodes.arrow")
    assert "no trace file" in _one_line_error(read_trace, tmp_path)
    junk = tmp_path / "trace.arrow"
    junk.write_bytes(b"not arrow")
    assert "not an Arrow IPC file" in _one_line_error(read_trace, junk)


# --- determinism ---------------------------------------------------------------------------------------------


def test_identical_inputs_give_byte_identical_files(tmp_path):
    paths_a = write_tables(tmp_path / "a", build_trace(), build_nodes())
    paths_b = write_tables(tmp_path / "b", build_trace(), build_nodes())
    assert [p.name for p in paths_a] == ["trace.arrow", "nodes.arrow"]
    for a, b in zip(paths_a, paths_b):
        assert a.read_bytes() == b.read_bytes()
    before = [p.read_bytes() for p in paths_a]
    write_tables(tmp_path / "a", build_trace(), build_nodes())  # overwrite in place
    assert [p.read_bytes() for p in paths_a] == before
    other = write_tables(tmp_path / "c", build_trace(seed=8))
    assert other[0].read_bytes() != before[0]


def test_command_line_threads_and_wall_time_stay_out_of_the_data_files(tmp_path):
    """What varies between runs of one scenario and seed goes to run.json, not into the Arrow bytes."""
    first = run(command=["ipam-bench", "compare", "--out", "out/a"])
    second = {**run(command=["ipam-bench", "compare", "--out", "/elsewhere/b", "--plot"]), "numba_threads": 97}
    assert first != second
    columns, values, offsets = nodes_columns()
    files = {}
    for name, params in (("a", first), ("b", second)):
        nodes = nodes_table(columns, params, cidrs_values=values, cidrs_offsets=offsets, node_names=NODE_NAMES)
        paths = write_tables(tmp_path / name, trace_table(trace_columns(), params), nodes)
        files[name] = [p.read_bytes() for p in paths]
        stored = run_params(tmp_path / name)
        assert not set(RUN_VARYING_KEYS) & set(stored)
        assert stored["seed"] == 7 and stored["scenario_sha256"]
    assert files["a"] == files["b"]

    record = json.loads(write_run_json(tmp_path / "b", second, wall_s={"kubernetes": 1.2344}).read_text())
    assert record["command"] == "ipam-bench compare --out /elsewhere/b --plot"
    assert record["numba_threads"] == 97
    assert record["wall_s"] == {"kubernetes": 1.234}
    assert record["out_dir"] == str(tmp_path / "b")
    assert record["seed"] == 7
    with pytest.raises(TraceError, match="command"):
        write_run_json(tmp_path / "c", stored_run(first))
    assert not (tmp_path / "c" / "run.json").exists()


# --- atomic writes -------------------------------------------------------------------------------------------


class Boom(Exception):
    pass


def test_atomic_write_keeps_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "trace.arrow"
    target.write_bytes(b"old contents")
    with pytest.raises(Boom):
        with atomic_write(target) as handle:
            handle.write(b"half of the new")
            handle.flush()
            assert _leftovers(tmp_path)  # the new data really went to a temporary file
            raise Boom
    assert target.read_bytes() == b"old contents"
    assert _leftovers(tmp_path) == []


def test_atomic_write_creates_nothing_when_a_new_file_fails(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "new.csv", "w") as handle:
            handle.write("a,b\n")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_ipc_writer_failing_midway_keeps_old_trace(out_dir, monkeypatch):
    before = (out_dir / "trace.arrow").read_bytes()

    def fail(self, table, max_chunksize=None):
        raise Boom

    monkeypatch.setattr(pa.ipc.RecordBatchFileWriter, "write_table", fail)
    with pytest.raises(Boom):
        write_tables(out_dir, build_trace(seed=99))
    assert (out_dir / "trace.arrow").read_bytes() == before
    assert _leftovers(out_dir) == []


def test_atomic_write_replaces_and_uses_normal_permissions(tmp_path):
    target = tmp_path / "report.md"
    atomic_write_text(target, "first\r\nline\n")
    assert target.read_bytes() == b"first\r\nline\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    os.chmod(target, 0o640)
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert _leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="mode 'a'"):
        with atomic_write(target, "a"):
            pass


# --- summary.csv ---------------------------------------------------------------------------------------------


def test_write_summary_csv_flattens_dictionaries(tmp_path):
    trace = build_trace()
    summary = trace.select(["mode", "family", "addrs_used"]).slice(0, 4)
    path = write_summary_csv(tmp_path / "sub" / "summary.csv", summary)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["mode", "family", "addrs_used"]
    assert rows[1:] == [[m, str(f), str(u)] for m, f, u in zip(*(summary.column(i).to_pylist() for i in range(3)))]
    same = write_summary_csv(tmp_path / "polars.csv", pl.from_arrow(summary))
    assert same.read_bytes() == path.read_bytes()
    assert "nested" in _one_line_error(write_summary_csv, tmp_path / "n.csv", build_nodes())


def test_write_summary_csv_leaves_wall_time_out(tmp_path):
    summary = pa.table({"mode": ["kubernetes", "cluster-pool"], "pods_failed": [0, 7], "wall_s": [0.51, 0.73]})
    rerun = summary.set_column(2, "wall_s", pa.array([2.0, 0.1]))
    first = write_summary_csv(tmp_path / "a.csv", summary).read_bytes()
    assert first == write_summary_csv(tmp_path / "b.csv", rerun).read_bytes()
    assert first.decode().splitlines() == ["\"mode\",\"pods_failed\"", "\"kubernetes\",0", "\"cluster-pool\",7"]


def test_two_compare_runs_with_different_out_and_command_line_write_equal_bytes(tmp_path, monkeypatch):
    """README's claim: same scenario and seed, same bytes in trace/nodes/summary/PNGs, whatever --out says."""
    import yaml
    from engine_helpers import BASE, merge
    from typer.testing import CliRunner

    from ipam_core.cli import app

    scenario = tmp_path / "s.yaml"
    small = merge(BASE, {"duration": "2m", "cluster": {"nodes": 3}, "workload": {"podsPerNode": 5}})
    scenario.write_text(yaml.safe_dump(small, sort_keys=False))
    outputs = {}
    for out in (tmp_path / "first", tmp_path / "elsewhere" / "second"):
        argv = ["ipam-bench", "compare", str(scenario), "--out", str(out)]
        monkeypatch.setattr("sys.argv", argv)  # the command line the run records
        result = CliRunner().invoke(app, argv[1:])
        assert result.exit_code == 0, result.output
        # run.json records the command line and wall time; the manifest lists run.json's hash with the rest
        outputs[out] = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name not in ("run.json", "manifest.json")}
    first, second = outputs.values()
    assert {"trace.arrow", "nodes.arrow", "summary.csv", "pods.png"} <= set(first)
    rows = list(csv.DictReader(first["summary.csv"].decode().splitlines()))
    assert "wall_s" not in rows[0]
    # 15 pods created at t=0 all wait at the first sample; the summary's peak leaves that start-up out
    assert all(int(row["peak_pending"]) < 15 for row in rows)
    assert first == second
    assert str(tmp_path).encode() not in first["trace.arrow"] + first["nodes.arrow"]



# --- metrics shared by the summary and the plots ------------------------------------------------------------


def test_startup_ends_when_as_many_pods_run_as_wait():
    from ipam_core.trace.metrics import startup_end

    assert startup_end(np.array([1760, 27, 36, 20]), np.array([0, 1733, 1724, 1740])) == 1
    assert startup_end(np.array([1760, 1376, 1170, 8, 0]), np.array([0, 384, 590, 1752, 1760])) == 3
    assert startup_end(np.array([0, 3, 9]), np.array([0, 10, 40])) == 0  # a ramp from zero: no start-up
    assert startup_end(np.array([50, 60]), np.array([0, 10])) == 0  # never catches up: the whole run counts


def test_node_cidr_size_only_when_every_cidr_has_one_size():
    from ipam_core.trace.metrics import node_cidr_size

    assert node_cidr_size(np.array([0, 512, 768]), np.array([0, 2, 3])) == 256
    assert node_cidr_size(np.array([0, 0]), np.array([0, 0])) is None
    assert node_cidr_size(np.array([256, 272]), np.array([1, 2])) is None  # a /24 and a /28
    assert node_cidr_size(np.array([300]), np.array([1])) is None  # not a power of two


def test_numba_thread_count_does_not_change_the_trace_bytes(tmp_path):
    """The thread count is set per process, so two processes run the same scenario with 1 and 2 threads."""
    import os
    import subprocess
    import sys

    import yaml
    from engine_helpers import BASE, merge

    scenario = tmp_path / "s.yaml"
    small = merge(BASE, {"duration": "2m", "cluster": {"nodes": 3}, "workload": {"podsPerNode": 5}})
    scenario.write_text(yaml.safe_dump(small, sort_keys=False))
    written = []
    for threads in ("1", "2"):
        out = tmp_path / f"threads-{threads}"
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        done = subprocess.run(
            [sys.executable, "-m", "ipam_core", "run", str(scenario), "--out", str(out)],
            env=env, capture_output=True, text=True,
        )
        assert done.returncode == 0, done.stderr
        written.append([(out / name).read_bytes() for name in ("trace.arrow", "nodes.arrow")])
    assert written[0] == written[1]
