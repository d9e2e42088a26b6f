"""Arrow schemas of ipam-bench's output files ``trace.arrow`` and ``nodes.arrow``.

The columns, types and units are the contract in ``docs/dev/contracts.md``
section 2. Every field carries two metadata keys: ``unit`` (an empty string
for labels such as ``mode`` or ``family``) and ``description``. The run
parameters travel as JSON under the schema-metadata key ``ipam_core.run``;
two more keys say which table a file holds and which schema version wrote it.

Only what determines the data is stored there: the keys of
:data:`RUN_VARYING_KEYS` (command line, Numba threads, wall time, output
folder) change between runs that compute the very same thing, so they are
left out of the Arrow files (they go to ``run.json``, see
:func:`ipam_core.trace.writer.write_run_json`) and the same scenario and seed
give byte-identical ``trace.arrow`` and ``nodes.arrow`` wherever and however
they were run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ipam_core.errors import IPAMBenchError

__all__ = [
    "CALICO_BLOCK_TYPE",
    "CALICO_NODE_FIELDS",
    "CALICO_TRACE_FIELDS",
    "NODES_CALICO_SCHEMA",
    "NODES_SCHEMA",
    "RUN_METADATA_KEY",
    "RUN_VARYING_KEYS",
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_KEY",
    "TABLE_KIND_KEY",
    "LIFECYCLE_FIELDS",
    "TRACE_LIFECYCLE_SCHEMA",
    "TRACE_SCHEMA",
    "TraceError",
    "field_descriptions",
    "field_units",
    "nodes_schema_for",
    "run_metadata",
    "stored_run",
    "trace_schema_for",
]

#: Bumped whenever a column is added, removed, renamed or changes type or unit.
SCHEMA_VERSION = 3  # 2: cloud-mode columns (warm_addrs_per_node ... cloud_api_release); 3: cloud_api_prefix ...
# pod_start_wait_ms (cloud API cost and throttling, pod start latency)

RUN_METADATA_KEY = "ipam_core.run"
SCHEMA_VERSION_KEY = "ipam_core.schema_version"
TABLE_KIND_KEY = "ipam_core.table"

#: Run parameters that say how and where a run went, not what it computed: kept out of the
#: Arrow files' schema metadata (so their bytes depend on scenario, seed and versions only)
#: and written to ``run.json`` instead.
RUN_VARYING_KEYS = ("command", "numba_threads", "engine", "wall_s", "out_dir", "hostname")

MODE_TYPE = pa.dictionary(pa.int8(), pa.string())
NODE_TYPE = pa.dictionary(pa.int32(), pa.string())


class TraceError(IPAMBenchError, ValueError):
    """A trace table or file does not match the schema (one-line message)."""


def _field(name: str, type_: pa.DataType, unit: str, description: str) -> pa.Field:
    return pa.field(name, type_, nullable=False, metadata={"unit": unit, "description": description})


def _count(name: str, unit: str, description: str) -> pa.Field:
    return _field(name, pa.int64(), unit, description)


_MODE = _field("mode", MODE_TYPE, "", "IPAM mode name (kubernetes, cluster-pool, multi-pool, ...)")
_FAMILY = _field("family", pa.int8(), "", "IP family: 4 or 6")
_TIME = _field("time_s", pa.float64(), "s", "simulated time of the sample")

TRACE_SCHEMA = pa.schema(
    [
        _MODE,
        _FAMILY,
        _TIME,
        _count("nodes", "nodes", "nodes present"),
        _count("nodes_ready", "nodes", "nodes whose agent has a pod CIDR / IPs to hand out"),
        _count("pods_running", "pods", "pods holding their address(es)"),
        _count("pods_pending", "pods", "pods waiting for an address"),
        _count("pods_failed", "pods", "cumulative: pods that gave up waiting for an address"),
        _count(
            "pods_failed_free_elsewhere",
            "pods",
            "cumulative: of pods_failed, those that failed while free addresses existed "
            "on other nodes' CIDRs or uncarved in the pool",
        ),
        _count(
            "addrs_pool",
            "addresses",
            "addresses in the configured pools (IPv6 counted with the 65,536-slot cap per node CIDR)",
        ),
        _count("addrs_carved", "addresses", "addresses inside node CIDRs"),
        _count(
            "addrs_reserved",
            "addresses",
            "carved but never usable by pods: network, last, router, health, excluded",
        ),
        _count("addrs_used", "addresses", "held by pods"),
        _count("addrs_idle", "addresses", "carved, usable and free (stranded on their node)"),
        _count("addrs_uncarved", "addresses", "in pools but in no node CIDR"),
        _count("node_cidrs", "CIDRs", "node CIDRs held"),
        _count("carvable_node_cidrs", "CIDRs", "how many more node CIDRs the pools can still hand out"),
        _count(
            "largest_free_block",
            "addresses",
            "size of the largest aligned free block left in any pool (0 if none)",
        ),
        _count("cidr_carves", "operations", "cumulative node-CIDR allocations"),
        _count("cidr_releases", "operations", "cumulative node-CIDR releases"),
        _count("ip_allocs", "operations", "cumulative pod address allocations"),
        _count("ip_alloc_failures", "operations", "cumulative failed pod address allocation attempts"),
        # cloud modes (eni, aws-vpc-cni, azure, crd); 0 in the pool modes
        _field(
            "warm_addrs_per_node",
            pa.float64(),
            "addresses/node",
            "cloud modes: mean free addresses held in a node's pool (its warm pool) over present nodes; 0 in "
            "the pool modes (see addrs_idle)",
        ),
        _count("interfaces", "interfaces", "cloud modes: ENIs / NICs attached to nodes, primary ones included"),
        _count("prefixes", "prefixes", "cloud modes: /28 prefixes held by nodes"),
        _count(
            "frag_failures",
            "operations",
            "cumulative: prefix requests refused for want of a free aligned /28 while the subnet still had "
            "enough free addresses (EC2 InsufficientCidrBlocks)",
        ),
        _count("cloud_api_attach", "operations", "cumulative: cloud calls creating and attaching an interface"),
        _count("cloud_api_assign", "operations", "cumulative: cloud calls assigning addresses or prefixes"),
        _count(
            "cloud_api_release",
            "operations",
            "cumulative: cloud calls unassigning addresses or prefixes, or detaching and deleting an interface",
        ),
        _count("cloud_api_prefix", "operations",
               "cumulative: of cloud_api_assign, the calls asking for /28 prefixes (refused ones included)"),
        _count("cloud_api_throttled", "operations",
               "cumulative: call attempts refused because a token bucket was empty (cloud.apiThrottle); a pass "
               "waiting on a busy bucket is refused again at each try"),
        _count("cloud_api_delay_ms", "ms", "cumulative: milliseconds passes waited for a token (each wait counted once)"),
        _count("pods_started", "pods", "cumulative: pods that got their addresses"),
        _count("pod_start_wait_ms", "ms",
               "cumulative: milliseconds those pods had waited pending first (start latency; 0 when at once)"),
    ]
)
"""``trace.arrow``: one row per (mode, family, sample)."""

#: Node-lifecycle columns (issue #12): appended to the trace, after every column of :data:`TRACE_SCHEMA`,
#: only by runs whose workload drains, cordons or restarts nodes or that model stranded CIDRs; other runs'
#: traces are exactly :data:`TRACE_SCHEMA`.
LIFECYCLE_FIELDS = (
    _count("pods_evicted", "pods", "cumulative: pods evicted by node drains (scale-down, spot interruption, drain)"),
    _count(
        "pods_evicted_failed",
        "pods",
        "cumulative: of pods_evicted, those whose replacement gave up waiting for an address",
    ),
    _count("nodes_cordoned", "nodes", "present nodes cordoned (unschedulable), drained or not"),
    _count(
        "addrs_held_cordoned",
        "addresses",
        "addresses cordoned nodes hold: their node CIDRs (pool modes) or their pool (cloud modes)",
    ),
    _count(
        "cidrs_stranded",
        "CIDRs",
        "multi-pool fault model: node CIDRs the agent released that stay on the node and are not allocated from",
    ),
    _count("addrs_stranded", "addresses", "usable addresses in cidrs_stranded"),
)
TRACE_LIFECYCLE_SCHEMA = pa.schema([*TRACE_SCHEMA, *LIFECYCLE_FIELDS])
"""``trace.arrow`` of a run with node-lifecycle columns."""

#: Calico IPAM columns (docs/calico.md): appended to the trace, after the lifecycle columns if any, only by
#: runs with a calico mode (0 in the other modes' rows of such a run); other runs' traces keep their bytes.
CALICO_TRACE_FIELDS = (
    _count("calico_affine_blocks", "blocks", "calico: blocks with a node affinity (node_cidrs also counts orphans)"),
    _count("calico_blocks_per_node_max", "blocks", "calico: most affine blocks one node holds"),
    _count("calico_empty_affine_blocks", "blocks",
           "calico: affine blocks with no address in use (held until kube-controllers releases them)"),
    _count("calico_stranded_addrs", "addresses",
           "calico: free addresses in partly used affine blocks (only their node allocates from them)"),
    _count("calico_borrowed_addrs", "addresses",
           "calico: addresses pods hold in blocks not affine to their node (ipam_allocations_borrowed)"),
    _count("calico_empty_block_releases", "blocks", "calico: cumulative empty affine blocks kube-controllers released"),
    _count("calico_empty_block_wait_ms", "ms",
           "calico: cumulative milliseconds those blocks had been empty when released (time until release)"),
)

NODES_SCHEMA = pa.schema(
    [
        _MODE,
        _TIME,
        _field("node", NODE_TYPE, "", "node name"),
        _FAMILY,
        _field("cidrs", pa.list_(pa.string()), "", "node CIDRs, in the agent's order"),
        _count("used", "addresses", "pod addresses held"),
        _count("free", "addresses", "usable free addresses"),
        _count("reserved", "addresses", "network/last/router/health/excluded"),
        _count("pending", "pods", "pods on the node waiting for an address"),
        _field("status_error", pa.string(), "", 'operator status error ("" when none)'),
    ]
)
"""``nodes.arrow``: one row per (mode, node, family, node sample)."""

#: One block as ``calicoctl ipam show --show-blocks`` lists it: its CIDR, addresses in use (by any node's
#: pods, the tunnel address included: "IPS IN USE"), free ("IPS FREE"), and in use by other nodes' pods
#: (borrowed from it). Field names differ from the row's columns, so ``explode`` + ``unnest`` keeps both.
CALICO_BLOCK_TYPE = pa.struct([
    pa.field("block", pa.string(), nullable=False),
    pa.field("ips_in_use", pa.int64(), nullable=False),
    pa.field("ips_free", pa.int64(), nullable=False),
    pa.field("ips_lent", pa.int64(), nullable=False),
])
#: Calico columns of ``nodes.arrow``, after the others, only in runs with a calico mode (empty or 0 in the
#: other modes' rows of such a run).
CALICO_NODE_FIELDS = (
    _field("blocks", pa.list_(CALICO_BLOCK_TYPE), "",
           "calico: the node's affine blocks in datastore order (as cidrs) with ips_in_use, ips_free, ips_lent"),
    _count("empty_blocks", "blocks", "calico: affine blocks with no address in use"),
    _count("stranded", "addresses", "calico: free addresses in the node's partly used affine blocks"),
    _count("borrowed", "addresses", "calico: addresses the node's pods hold in blocks not affine to it"),
    _count("lent", "addresses", "calico: addresses of the node's blocks held by other nodes' pods"),
)
NODES_CALICO_SCHEMA = pa.schema([*NODES_SCHEMA, *CALICO_NODE_FIELDS])
"""``nodes.arrow`` of a run with a calico mode."""

SCHEMAS = {"trace": TRACE_SCHEMA, "nodes": NODES_SCHEMA}


def trace_schema_for(names) -> pa.Schema:
    """The trace schema of a table with the columns ``names``.

    Parameters
    ----------
    names : collection of str
        Column names (a mapping's keys or a schema's names).

    Returns
    -------
    pyarrow.Schema
        :data:`TRACE_SCHEMA`, then :data:`LIFECYCLE_FIELDS` when ``names`` holds the first
        node-lifecycle column, then :data:`CALICO_TRACE_FIELDS` when it holds the first Calico one.
    """
    schema = TRACE_LIFECYCLE_SCHEMA if LIFECYCLE_FIELDS[0].name in names else TRACE_SCHEMA
    return pa.schema([*schema, *CALICO_TRACE_FIELDS]) if CALICO_TRACE_FIELDS[0].name in names else schema


def nodes_schema_for(names) -> pa.Schema:
    """The nodes schema of a table with the columns ``names``.

    Parameters
    ----------
    names : collection of str

    Returns
    -------
    pyarrow.Schema
        :data:`NODES_CALICO_SCHEMA` when ``names`` holds the first Calico column, else :data:`NODES_SCHEMA`.
    """
    return NODES_CALICO_SCHEMA if CALICO_NODE_FIELDS[0].name in names else NODES_SCHEMA


def field_units(schema: pa.Schema) -> dict[str, str]:
    """Map each column name to its ``unit`` field metadata.

    Parameters
    ----------
    schema : pyarrow.Schema
        A trace or nodes schema (e.g. ``read_trace(path).schema``).

    Returns
    -------
    dict of str to str
        Column name -> unit (``""`` for unitless labels or missing metadata).
    """
    return {f.name: (f.metadata or {}).get(b"unit", b"").decode() for f in schema}


def field_descriptions(schema: pa.Schema) -> dict[str, str]:
    """Map each column name to its ``description`` field metadata.

    Parameters
    ----------
    schema : pyarrow.Schema
        A trace or nodes schema.

    Returns
    -------
    dict of str to str
        Column name -> description (``""`` when missing).
    """
    return {f.name: (f.metadata or {}).get(b"description", b"").decode() for f in schema}


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _numba_threads() -> int:
    import numba

    return int(numba.get_num_threads())


def _engine() -> str:
    from numba.core import config

    return "interpreted" if config.DISABLE_JIT else "compiled"


def run_metadata(
    scenario_name: str,
    scenario_text: str,
    seed: int,
    modes: Sequence[str],
    command: str | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Gather the run parameters stored under ``ipam_core.run`` in every output file.

    Parameters
    ----------
    scenario_name : str
        Name of the scenario.
    scenario_text : str
        The scenario file's text; only its SHA-256 is stored.
    seed : int
        Seed of the run.
    modes : sequence of str
        IPAM modes, in the order the engine ran them. Integer ``mode`` codes
        given to :func:`~ipam_core.trace.trace_table` index this list.
    command : str, sequence of str or None
        Command line that created the run (an argv list is shell-quoted);
        ``None`` records ``sys.argv``.

    Returns
    -------
    dict
        JSON-serialisable: ``schema_version``, ``scenario``, ``scenario_sha256``,
        ``seed``, ``modes``, ``versions`` (ipam_core, numpy, numba, pyarrow,
        python), ``numba_threads``, ``engine`` (``compiled``, or ``interpreted``:
        the kernels' Python source, :mod:`ipam_core.pipeline.engine_choice`) and ``command``.

    Notes
    -----
    ``command``, ``numba_threads`` and ``engine`` (see :data:`RUN_VARYING_KEYS`) are
    dropped when the dict is stored in ``trace.arrow`` / ``nodes.arrow``
    (:func:`stored_run`); they belong in ``run.json``. No timestamp or host
    name is recorded. Callers may add keys of their own to the dict.
    """
    if command is None:
        command = sys.argv
    if not isinstance(command, str):
        command = shlex.join(str(part) for part in command)
    return {
        "schema_version": SCHEMA_VERSION,
        "scenario": str(scenario_name),
        "scenario_sha256": hashlib.sha256(scenario_text.encode("utf-8")).hexdigest(),
        "seed": int(seed),
        "modes": [str(m) for m in modes],
        "versions": {
            "ipam_core": _version("ipam-bench"),
            "numpy": _version("numpy"),
            "numba": _version("numba"),
            "pyarrow": pa.__version__,
            "python": platform.python_version(),
        },
        "numba_threads": _numba_threads(),
        "engine": _engine(),
        "command": command,
    }


def encode_run(run: Mapping[str, Any]) -> bytes:
    """Serialise run parameters to canonical JSON (sorted keys, no NaN)."""
    try:
        return json.dumps(dict(run), sort_keys=True, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TraceError(f"run parameters are not JSON-serialisable: {exc}") from None


def stored_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the run parameters stored in ``trace.arrow`` and ``nodes.arrow``.

    Parameters
    ----------
    run : mapping
        Run parameters (:func:`run_metadata`, plus any keys of the caller's).

    Returns
    -------
    dict
        ``run`` without the keys of :data:`RUN_VARYING_KEYS`.
    """
    return {key: value for key, value in run.items() if key not in RUN_VARYING_KEYS}


def schema_with_run(kind: str, run: Mapping[str, Any], schema: pa.Schema | None = None) -> pa.Schema:
    """The ``kind`` schema (``"trace"`` or ``"nodes"``, or ``schema``) with the data-determining run parameters attached."""
    return (SCHEMAS[kind] if schema is None else schema).with_metadata(
        {
            RUN_METADATA_KEY: encode_run(stored_run(run)),
            SCHEMA_VERSION_KEY: str(SCHEMA_VERSION),
            TABLE_KIND_KEY: kind,
        }
    )
