"""Read recorded pod and node events from CSV, Parquet or Arrow IPC into a Workload.

Columns (names are case-insensitive)::

    time         seconds (number) or ISO-8601 timestamps (-> seconds since the first event)
    op           add | create | delete | node-add | node-delete   (case-insensitive)
    pod          pod name                      (pod rows)
    namespace    namespace name                (pod rows)
    node         node name (optional; required on node rows; pins a pod when set on its add:
                 the pod waits for that node, as a pod whose spec.nodeName names it would)
    annotations  optional: JSON object '{"ipam.cilium.io/ip-pool": "blue"}' or 'k=v;k=v'
    pool         optional: pool name, used where annotations name none (written by Workload.to_arrow)

A pod is identified by ``namespace/pod``; a name created again after its delete
becomes a new pod id. Rows are sorted stably by time; every check reports the
file, the data row (counted from 1, header excluded) and the value. All column
work is vectorised with pyarrow.compute and numpy, with no Python loop per row.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc
import pyarrow.parquet as pq

from ipam_core.errors import ConfigError
from ipam_core.workloads.events import (
    OP_AGENT_RESTART,
    OP_NODE_ADD,
    OP_NODE_CORDON,
    OP_NODE_DEL,
    OP_NODE_DRAIN,
    OP_POD_ADD,
    OP_POD_DEL,
    Workload,
)

__all__ = ["read_events", "POOL_ANNOTATION"]

#: Pod annotation that selects a multi-pool IPAM pool (cilium
#: ``pkg/ipam/metadata/manager.go`` ``GetIPPoolForPod``).
POOL_ANNOTATION = "ipam.cilium.io/ip-pool"

_OP_WORDS = ("add", "create", "delete", "node-add", "node-delete", "node-cordon", "node-drain", "agent-restart")
_OP_CODES = np.array([OP_POD_ADD, OP_POD_ADD, OP_POD_DEL, OP_NODE_ADD, OP_NODE_DEL, OP_NODE_CORDON, OP_NODE_DRAIN,
                      OP_AGENT_RESTART], np.int8)
_REQUIRED = ("time", "op", "pod", "namespace")
_STRING_COLUMNS = ("op", "pod", "namespace", "node", "annotations", "pool")

_NUMBER_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_ISO_RE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
_ZONE_RE = r"(Z|[+-]\d{2}:?\d{2})$"
_ANN = POOL_ANNOTATION.replace(".", r"\.")
_JSON_POOL_RE = r'"' + _ANN + r'"\s*:\s*"(?P<pool>[^"]*)"'
_KV_POOL_RE = r"(?:^|;)\s*" + _ANN + r"\s*=\s*(?P<pool>[^;]*?)\s*(?:;|$)"
_KV_FORM_RE = r"^\s*[^=;{}]+=[^;]*(;\s*[^=;{}]+=[^;]*)*;?\s*$"


def read_events(path: str | os.PathLike, *, duration_s: float | None = None, time_scale: float = 1.0,
                pools: tuple[str, ...] | None = None, nodes: tuple[str, ...] | None = None) -> Workload:
    """Read an events file into a validated :class:`Workload`.

    Parameters
    ----------
    path : str or os.PathLike
        ``.csv`` (optionally compressed, e.g. ``.csv.gz``), ``.parquet``/``.pq``,
        or ``.arrow``/``.feather``/``.ipc``/``.arrows`` (Arrow IPC file or
        stream); other names are sniffed from their first bytes.
    duration_s : float, optional
        The scenario's duration: a row whose time x ``time_scale`` is later is refused
        (instead of silently dropped).
    time_scale : float, default 1
        The scenario's ``timeScale`` (for the duration check).
    pools : tuple of str, optional
        Pool names the scenario defines: a pod whose annotation or ``pool`` cell names
        another pool is refused (multi-pool would fail its allocation forever).
    nodes : tuple of str, optional
        Node names of the scenario's cluster: when the file has node rows, a pod pinned to
        a node that no node row names and that is not one of these is refused.

    Returns
    -------
    Workload
        Pod ids dense in creation order, ``pod_names`` holding the names; node
        ids, namespaces and pools numbered in order of first appearance. A node
        whose first appearance is not a ``node-add`` row (e.g. only pods pinned
        to it) gets an implicit NODE_ADD at the first event's time. Without a
        ``node`` column the workload has no nodes and the engine schedules pods.

    Raises
    ------
    ConfigError
        Naming the file, row and value: unreadable or empty file, missing column, time
        not a number or ISO-8601 timestamp, unknown op, pod row without pod or
        namespace, node row without node, malformed annotations, delete of a pod
        never created or already deleted, create of a pod still present,
        node-add of a present node, node-delete of an absent node; a negative time
        (numbers), a time after ``duration_s``, an unknown pool or node (when given).

    Notes
    -----
    Pool selection follows cilium ``pkg/ipam/metadata/manager.go``: only the
    pod's ``ipam.cilium.io/ip-pool`` annotation on its create row counts (the
    namespace annotation and family-specific keys are not modelled). A delete
    row's node and annotations are ignored; the pod keeps its create's pin.
    """
    path = Path(path)
    table = _read_table(path)
    table = table.rename_columns([c.strip().lower() for c in table.column_names])
    missing = [c for c in _REQUIRED if c not in table.column_names]
    if missing:
        raise ConfigError(f"{path}: missing column {missing[0]!r}; expected columns {', '.join(_REQUIRED)} "
                          f"(optional node, annotations), got {', '.join(table.column_names)}")
    if table.num_rows == 0:
        raise ConfigError(f"{path}: 0 event rows; expected at least one row after the header")
    reader = _Rows(path)
    time = reader.times(_column(table, "time"))
    if duration_s is not None:
        reader.within(time, duration_s, time_scale)
    order = np.argsort(time, kind="stable")
    reader.rows = order  # error messages name the original row of each sorted position
    time = time[order]
    cols = {c: _strings(table, c).take(pa.array(order)) if c in table.column_names else None
            for c in _STRING_COLUMNS}
    op = reader.ops(cols["op"])
    is_node_op = (op <= OP_NODE_DEL) | (op >= OP_NODE_CORDON)  # lifecycle rows name a node too
    is_pod_op = ~is_node_op
    reader.require(is_pod_op, cols["pod"], "pod", "pod")
    reader.require(is_pod_op, cols["namespace"], "namespace", "pod")

    node_col = cols["node"]
    if node_col is None:
        if is_node_op.any():
            i = int(np.argmax(is_node_op))
            raise reader.error(i, "op", cols["op"][i].as_py(), "a 'node' column naming the node of node rows")
        node = np.full(len(op), -1, np.int32)
        node_names: list[str] = []
    else:
        reader.require(is_node_op, node_col, "node", "node-add/node-delete/node-cordon/node-drain/agent-restart")
        node, node_names = _encode(node_col)

    # pods: identity namespace/pod; ops per identity must go add, delete, add, ...
    # a separator no Kubernetes name holds: namespace "a/b" + pod "c" is not namespace "a" + pod "b/c"
    key, _ = _encode(pc.binary_join_element_wise(cols["namespace"], cols["pod"], "\x1f"))
    key = np.where(is_pod_op, key, -1)  # pod/namespace cells on node rows mean nothing
    pod = reader.pod_ids(op, key, cols["namespace"], cols["pod"])
    adds = np.flatnonzero(op == OP_POD_ADD)
    n_pods = len(adds)
    pod_names = cols["pod"].take(pa.array(adds)) if n_pods else pa.array([], pa.string())

    namespace, namespaces = _encode(pc.if_else(pa.array(is_pod_op), cols["namespace"],
                                               pa.scalar(None, pa.string())))
    pool_col = reader.pools(cols["annotations"], cols["pool"], len(op))
    if pools is not None:
        reader.known(op == OP_POD_ADD, pool_col, pools, "pool", "a pool the scenario defines")
    if nodes is not None and node_col is not None and is_node_op.any():
        named = pc.filter(node_col, pa.array(is_node_op)).unique().to_pylist()
        reader.known(op == OP_POD_ADD, node_col, tuple(named) + tuple(nodes), "node",
                     "a node of the file's node rows or of the scenario's cluster")
    pool_of_pod, pool_names = _encode(pool_col.take(pa.array(adds)))
    pin_of_pod = node[adds]
    pool = np.where(is_pod_op, pool_of_pod[np.maximum(pod, 0)] if n_pods else -1, -1)
    node = np.where(is_pod_op, pin_of_pod[np.maximum(pod, 0)] if n_pods else -1, node)
    namespace = np.where(is_pod_op, namespace, -1)

    time, op, node, pod, namespace, pool, rows = _implicit_node_adds(
        time, op, node, pod, namespace, pool, reader.rows, len(node_names))
    reader.rows = rows
    reader.node_sequence(op, node, node_names)
    w = Workload(time=time, op=op, node=node, pod=pod, namespace=namespace, pool=pool,
                 node_names=node_names, namespaces=namespaces, pool_names=pool_names, n_pods=n_pods,
                 pod_names=pod_names)
    w.validate()
    return w


# ----------------------------------------------------------------------- reading
def _read_table(path: Path) -> pa.Table:
    """Read the file by extension, else by its first bytes."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such events file; expected a CSV, Parquet or Arrow IPC file")
    suffixes = [s.lower() for s in path.suffixes]
    kind = None
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        kind = "parquet"
    elif suffixes and suffixes[-1] in (".arrow", ".feather", ".ipc", ".arrows"):
        kind = "arrow"
    elif ".csv" in suffixes or ".tsv" in suffixes:
        kind = "csv"
    else:
        with open(path, "rb") as f:
            head = f.read(8)
        kind = "parquet" if head[:4] == b"PAR1" else \
            "arrow" if head[:6] == b"ARROW1" or head[:4] == b"\xff\xff\xff\xff" else "csv"
    try:
        if kind == "parquet":
            return pq.read_table(path)
        if kind == "arrow":
            try:
                with paipc.open_file(path) as f:
                    return f.read_all()
            except pa.ArrowInvalid:
                with paipc.open_stream(path) as f:
                    return f.read_all()
        delimiter = "\t" if ".tsv" in suffixes else ","
        # time read as text too, and only empty cells as null: "nan", "NA" or "null" reach the checks as written
        convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in ("time", *_STRING_COLUMNS)},
                                       strings_can_be_null=True, null_values=[""])
        return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                              convert_options=convert)
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: cannot read as {kind} ({first}); expected a CSV, Parquet or Arrow IPC "
                          "events file") from exc


def _column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _strings(table: pa.Table, name: str) -> pa.Array:
    """A column as trimmed strings, empty cells as null."""
    col = _column(table, name)
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    col = pc.utf8_trim_whitespace(col.cast(pa.string()))
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)


def _encode(col: pa.Array) -> tuple[np.ndarray, list[str]]:
    """Index of each value in first-appearance order (-1 for null), and the names."""
    enc = pc.dictionary_encode(col)
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    return codes, enc.dictionary.to_pylist()


def _implicit_node_adds(time, op, node, pod, namespace, pool, rows, n_nodes):
    """Prepend a NODE_ADD at the first event's time for each node that was there from the start.

    That is a node whose first node row is a node-delete, or that has no node
    rows at all (only pods pinned to it).
    """
    idx = np.flatnonzero(op <= OP_NODE_DEL)
    first_at = np.full(n_nodes, len(op), np.int64)
    if len(idx):
        np.minimum.at(first_at, node[idx], idx)
    has_node_ops = first_at < len(op)
    first_op = np.full(n_nodes, OP_NODE_DEL, np.int8)  # no node rows: treated like "first op is a delete"
    first_op[has_node_ops] = op[first_at[has_node_ops]]
    implicit = np.flatnonzero(first_op == OP_NODE_DEL).astype(np.int32)
    if not len(implicit):
        return time, op, node, pod, namespace, pool, rows
    k = len(implicit)
    minus = np.full(k, -1, np.int32)
    return (np.r_[np.full(k, time[0]), time], np.r_[np.full(k, OP_NODE_ADD, np.int8), op].astype(np.int8),
            np.r_[implicit, node], np.r_[minus, pod], np.r_[minus, namespace], np.r_[minus, pool],
            np.r_[np.full(k, -1, np.int64), rows])


class _Rows:
    """Column checks whose errors name the file, the original row and the value."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: np.ndarray | None = None  # sorted position -> original row index

    def error(self, i: int, what: str, value, expected: str) -> ConfigError:
        """Error for sorted position `i` (reported as its 1-based data row)."""
        row = int(self.rows[i]) if self.rows is not None else i
        where = f"row {row + 1}" if row >= 0 else "implicit node-add"
        return ConfigError(f"{self.path}: {where}: {what} {value!r}; expected {expected}")

    def times(self, col: pa.Array) -> np.ndarray:
        """Seconds as float64: numbers as given, timestamps since the earliest one."""
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if pa.types.is_null(col.type):  # every cell empty
            raise self.error(0, "time", None, "seconds or an ISO-8601 timestamp")
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.utf8_trim_whitespace(col)
            is_num = pc.fill_null(pc.match_substring_regex(col, _NUMBER_RE), False)
            is_iso = pc.fill_null(pc.match_substring_regex(col, _ISO_RE), False)
            if pc.all(is_num).as_py():
                col = col.cast(pa.float64())
            elif pc.all(is_iso).as_py():
                has_zone = pc.match_substring_regex(col, _ZONE_RE)
                col = pc.if_else(has_zone, col, pc.binary_join_element_wise(col, "Z", ""))
                col = pc.replace_substring(col, " ", "T").cast(pa.timestamp("ns", tz="UTC"))
            else:
                bad = pc.invert(pc.or_(is_num, is_iso)).to_numpy(zero_copy_only=False)
                i = int(np.argmax(bad)) if bad.any() else int(np.argmax(~is_iso.to_numpy(zero_copy_only=False)))
                raise self.error(i, "time", col[i].as_py(),
                                 "seconds or an ISO-8601 timestamp (one kind per file)")
        if pa.types.is_date(col.type):
            col = col.cast(pa.timestamp("s"))
        if pa.types.is_timestamp(col.type):
            self._no_nulls(col, "time")
            ns = col.cast(pa.timestamp("ns", tz=col.type.tz)).cast(pa.int64()).to_numpy()
            return (ns - ns.min()).astype(np.float64) / 1e9 if len(ns) else ns.astype(np.float64)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type)):
            raise ConfigError(f"{self.path}: column 'time' has type {col.type}; expected seconds or ISO-8601 "
                              "timestamps")
        self._no_nulls(col, "time")
        t = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(t)
        if bad.any():
            i = int(np.argmax(bad))
            raise self.error(i, "time", float(t[i]), "a finite number of seconds")
        negative = t < 0
        if negative.any():
            i = int(np.argmax(negative))
            raise self.error(i, "time", float(t[i]), "seconds >= 0 (a replay starts at time 0)")
        return t

    def within(self, t: np.ndarray, duration_s: float, time_scale: float) -> None:
        """Every time x ``time_scale`` is at most ``duration_s``."""
        late = t * time_scale > duration_s
        if late.any():
            i = int(np.argmax(late))
            scaled = f" (x timeScale {time_scale!r})" if time_scale != 1 else ""
            raise self.error(i, "time", float(t[i]), f"at most the scenario's duration, {duration_s:g} s{scaled}: "
                             "later events would be dropped")

    def known(self, rows: np.ndarray, col: pa.Array, names: tuple[str, ...], what: str, expected: str) -> None:
        """Every selected row's value in ``col`` (when set) is one of ``names``."""
        inside = pc.is_in(col, value_set=pa.array(list(names), pa.string()))
        bad = rows & col.is_valid().to_numpy(zero_copy_only=False) & ~inside.to_numpy(zero_copy_only=False)
        if bad.any():
            i = int(np.argmax(bad))
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise self.error(i, what, col[i].as_py(), f"{expected} ({shown or 'none'})")

    def _no_nulls(self, col: pa.Array, what: str) -> None:
        if col.null_count:
            i = int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))
            raise self.error(i, what, None, "a value")

    def ops(self, col: pa.Array) -> np.ndarray:
        """Op codes from case-insensitive words."""
        found = pc.index_in(pc.utf8_lower(col), value_set=pa.array(_OP_WORDS))
        if found.null_count:
            i = int(np.argmax(found.is_null().to_numpy(zero_copy_only=False)))
            raise self.error(i, "op", col[i].as_py(), f"one of {', '.join(_OP_WORDS)}")
        return _OP_CODES[found.to_numpy(zero_copy_only=False)]

    def require(self, rows: np.ndarray, col: pa.Array, column: str, kind: str) -> None:
        """Every selected row (`kind` rows) has a value in `col`."""
        bad = rows & col.is_null().to_numpy(zero_copy_only=False)
        if bad.any():
            i = int(np.argmax(bad))
            raise self.error(i, column, None, f"a {column} name on {kind} rows")

    def pod_ids(self, op: np.ndarray, key: np.ndarray, namespace: pa.Array, pod: pa.Array) -> np.ndarray:
        """Pod id per row: each add opens a new id; a delete closes its key's open id."""
        at = np.flatnonzero(key >= 0)
        by_key = at[np.argsort(key[at], kind="stable")]  # time order within each key
        k = key[by_key]
        starts = np.r_[True, k[1:] != k[:-1]] if len(k) else np.zeros(0, bool)
        rank = np.arange(len(k)) - np.maximum.accumulate(np.where(starts, np.arange(len(k)), 0))
        is_add = op[by_key] == OP_POD_ADD
        bad = np.flatnonzero(is_add != (rank % 2 == 0))
        if len(bad):
            j = int(bad[np.argmin(by_key[bad])])  # earliest offending row
            i = int(by_key[j])
            name = f"{namespace[i].as_py()}/{pod[i].as_py()}"
            if is_add[j]:
                raise self.error(i, "create of pod", name, "its delete before it is created again")
            what = "delete of never-created pod" if rank[j] == 0 else "delete of already-deleted pod"
            raise self.error(i, what, name, "a create before each delete")
        pid = np.full(len(op), -1, np.int32)
        adds = op == OP_POD_ADD
        pid[adds] = np.arange(int(adds.sum()), dtype=np.int32)  # creation order
        sorted_pid = pid[by_key]
        dels = ~is_add
        sorted_pid[dels] = sorted_pid[np.flatnonzero(dels) - 1]  # the add just before, same key
        pid[by_key] = sorted_pid
        return pid

    def pools(self, annotations: pa.Array | None, pool: pa.Array | None, n: int) -> pa.Array:
        """Pool name per row from the pod annotation, else the ``pool`` column, else null."""
        found = pa.nulls(n, pa.string())
        if annotations is not None:
            is_json = pc.fill_null(pc.starts_with(annotations, "{"), False)
            ok = pc.or_(pc.and_(is_json, pc.ends_with(annotations, "}")),
                        pc.match_substring_regex(annotations, _KV_FORM_RE))
            bad = pc.and_(annotations.is_valid(), pc.invert(pc.fill_null(ok, False)))
            bad_np = bad.to_numpy(zero_copy_only=False)
            if bad_np.any():
                i = int(np.argmax(bad_np))
                raise self.error(i, "annotations", annotations[i].as_py(),
                                 'a JSON object or "key=value;key=value"')
            from_json = pc.struct_field(pc.extract_regex(annotations, _JSON_POOL_RE), [0])
            from_kv = pc.struct_field(pc.extract_regex(annotations, _KV_POOL_RE), [0])
            found = pc.if_else(is_json, from_json, from_kv)
            found = pc.if_else(pc.equal(found, ""), pa.scalar(None, pa.string()), found)
        if pool is not None:
            found = pc.coalesce(found, pool)
        return found

    def node_sequence(self, op: np.ndarray, node: np.ndarray, node_names: list[str]) -> None:
        """Per node, node ops go add, delete, add, ..."""
        at = np.flatnonzero(op <= OP_NODE_DEL)
        by_node = at[np.argsort(node[at], kind="stable")]
        nd = node[by_node]
        starts = np.r_[True, nd[1:] != nd[:-1]] if len(nd) else np.zeros(0, bool)
        rank = np.arange(len(nd)) - np.maximum.accumulate(np.where(starts, np.arange(len(nd)), 0))
        bad = by_node[(op[by_node] == OP_NODE_ADD) != (rank % 2 == 0)]
        if len(bad):
            i = int(bad.min())
            if op[i] == OP_NODE_ADD:
                raise self.error(i, "node-add of present node", node_names[node[i]], "a node-delete before it")
            raise self.error(i, "node-delete of absent node", node_names[node[i]], "a node-add before it")
