"""A migration replay as Arrow tables: steps, nodes per step, pods per step.

Files (Arrow IPC, :func:`ipam_core.trace.write_ipc`; the folder is published as one run with a
``manifest.json``, see :mod:`ipam_core.rundir`):

* ``migration_steps.arrow``: one row per step: its time, command, what it set off, and the
  state once it has played out (pods running / stale / disrupted, disrupted pod-seconds until
  the next step, address conflicts, nodes with an operator error, addresses in use);
* ``migration_nodes.arrow``: one row per step and node: KCM ``spec.podCIDRs``, CiliumNode
  ``spec.ipam.podCIDRs`` and ``pools.allocated``, the operator's status error, the CIDRs the
  agent routes, its mode and state, pods, stale and disrupted pods;
* ``migration_pods.arrow``: one row per step and pod: node, address, state, whether it has a
  CiliumEndpoint, is stale, disrupted, in conflict, and its disrupted seconds so far.

Every field has ``unit`` and ``description`` metadata; the schema metadata holds the run
parameters (``ipam_core.run``, as the traces do) and the overall figures
(``ipam_core.migration_summary``, JSON). Load with ``pl.read_ipc`` or ``pd.read_feather``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa

from ipam_core.rundir import published_path, staged_folder
from ipam_core.trace import RUN_FILE, run_metadata, write_ipc, write_run_json
from ipam_core.trace.schema import RUN_METADATA_KEY, TABLE_KIND_KEY, encode_run, stored_run

STEPS_FILE = "migration_steps.arrow"
NODES_FILE = "migration_nodes.arrow"
PODS_FILE = "migration_pods.arrow"
SUMMARY_KEY = "ipam_core.migration_summary"

_LABEL = pa.dictionary(pa.int32(), pa.string())
_STRINGS = pa.list_(pa.string())


def _f(name: str, type_: pa.DataType, unit: str, description: str) -> pa.Field:
    return pa.field(name, type_, nullable=False, metadata={"unit": unit, "description": description})


_STEP = _f("step", pa.int32(), "", "index of the step in the scenario's steps: list")
_TIME = _f("time_s", pa.float64(), "s", "simulated time of the snapshot (just before the next step, or the end)")

STEPS_SCHEMA = pa.schema([
    _STEP,
    _f("at_s", pa.float64(), "s", "simulated time the step was applied"),
    _f("snapshot_s", pa.float64(), "s", "simulated time of the snapshot (just before the next step, or the end)"),
    _f("command", pa.string(), "", "the command as written, or as an operator would type it"),
    _f("kind", _LABEL, "", "what the step does (HelmUpgrade, RolloutRestart, DeleteCiliumNodes, ...)"),
    _f("note", pa.string(), "", "the step's note"),
    _f("operator_mode", _LABEL, "", "IPAM mode of the running cilium-operator ('restarting' while it restarts)"),
    _f("pods_running", pa.int64(), "pods", "pods running"),
    _f("pods_pending", pa.int64(), "pods", "pods created and not running yet"),
    _f("pods_stale", pa.int64(), "pods", "running pods whose address is outside every CIDR the operator accepts "
                                         "for their node"),
    _f("pods_disrupted", pa.int64(), "pods", "running pods whose address is outside every CIDR their node routes"),
    _f("disrupted_pod_s", pa.float64(), "pod-seconds", "disrupted pods integrated from this step to the next"),
    _f("disrupted_pod_s_total", pa.float64(), "pod-seconds", "disrupted pods integrated from t=0 to the snapshot"),
    _f("conflicts", pa.int64(), "addresses", "addresses held by more than one pod at the snapshot"),
    _f("nodes_in_error", pa.int64(), "nodes", "CiliumNodes with an operator status error"),
    _f("addresses_in_use", pa.int64(), "addresses", "addresses in routed node CIDRs and in older CIDRs pods still "
                                                    "hold addresses in"),
    _f("events", _STRINGS, "", "what happened from this step to the next, in order"),
])

NODES_SCHEMA = pa.schema([
    _STEP, _TIME,
    _f("node", _LABEL, "", "node name"),
    _f("kcm_pod_cidrs", _STRINGS, "", "Node spec.podCIDRs from kube-controller-manager"),
    _f("ciliumnode_pod_cidrs", _STRINGS, "", "CiliumNode spec.ipam.podCIDRs"),
    _f("pools_allocated", _STRINGS, "", "CiliumNode spec.ipam.pools.allocated as pool=CIDR"),
    _f("ciliumnode_exists", pa.bool_(), "", "whether the CiliumNode object exists"),
    _f("status_error", pa.string(), "", "CiliumNode status.ipam.operator-status.error ('' when none)"),
    _f("routed_cidrs", _STRINGS, "", "CIDRs the node's agent routes"),
    _f("agent_mode", _LABEL, "", "IPAM mode the agent runs"),
    _f("agent_state", _LABEL, "", "ready, restarting, or waiting (for a CIDR)"),
    _f("cordoned", pa.bool_(), "", "node cordoned"),
    _f("pods", pa.int64(), "pods", "pods on the node"),
    _f("pods_stale", pa.int64(), "pods", "running pods with stale addresses"),
    _f("pods_disrupted", pa.int64(), "pods", "running pods outside every CIDR the node routes"),
])

PODS_SCHEMA = pa.schema([
    _STEP, _TIME,
    _f("namespace", _LABEL, "", "pod namespace"),
    _f("pod", pa.string(), "", "pod name"),
    _f("owner", _LABEL, "", "deployment/NAME, or pod for a bare pod"),
    _f("node", _LABEL, "", "node the pod is on ('' when not scheduled)"),
    _f("address", pa.string(), "", "pod IPv4 address ('' when none yet)"),
    _f("state", _LABEL, "", "pending, starting or running"),
    _f("managed", pa.bool_(), "", "has a CiliumEndpoint (restored or created by the current agent)"),
    _f("stale", pa.bool_(), "", "address outside every CIDR the operator accepts for the node"),
    _f("disrupted", pa.bool_(), "", "address outside every CIDR the node routes"),
    _f("disrupted_s", pa.float64(), "s", "seconds this pod has been disrupted so far"),
    _f("conflict", pa.bool_(), "", "another pod holds the same address"),
])

SCHEMAS = {"migration_steps": STEPS_SCHEMA, "migration_nodes": NODES_SCHEMA, "migration_pods": PODS_SCHEMA}


def _column(field: pa.Field, values: list) -> pa.Array:
    if pa.types.is_dictionary(field.type):
        return pa.array(values, type=pa.string()).dictionary_encode().cast(field.type)
    return pa.array(values, type=field.type)


def _table(kind: str, rows: list[dict], metadata: dict[bytes | str, bytes | str]) -> pa.Table:
    schema = SCHEMAS[kind]
    arrays = [_column(f, [r[f.name] for r in rows]) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema.with_metadata({**metadata, TABLE_KIND_KEY: kind}))


def report_tables(result, run: dict) -> dict[str, pa.Table]:
    """The three tables of a replay.

    Parameters
    ----------
    result : MigrationResult
    run : dict
        Run parameters (:func:`ipam_core.trace.run_metadata`).

    Returns
    -------
    dict of str to pyarrow.Table
        ``migration_steps``, ``migration_nodes``, ``migration_pods``.
    """
    summary = {k: v for k, v in result.summary.items()}
    summary["conflict_list"] = [{"time_s": c.time_s, "address": c.address, "pods": list(c.pods)}
                                for c in result.conflicts]
    metadata = {RUN_METADATA_KEY: encode_run(stored_run(run)),
                SUMMARY_KEY: json.dumps(summary, sort_keys=True, allow_nan=False).encode()}
    return {
        "migration_steps": _table("migration_steps", result.step_rows, metadata),
        "migration_nodes": _table("migration_nodes", result.node_rows, metadata),
        "migration_pods": _table("migration_pods", result.pod_rows, metadata),
    }


def write_report(result, scenario, out_dir: str | os.PathLike[str], command=None) -> list[Path]:
    """Write the three Arrow files of a replay into ``out_dir``, published as one run.

    Parameters
    ----------
    result : MigrationResult
    scenario : ipam_core.scenario.Scenario
        For the run parameters (name, text hash).
    out_dir : str or os.PathLike
        The run folder, created if missing; its previous contents are replaced
        as a whole (see :class:`ipam_core.rundir.RunPublisher`).
    command : str or sequence of str, optional
        Command line recorded in the metadata (default ``sys.argv``).

    Returns
    -------
    list of pathlib.Path
        Steps, nodes and pods files in ``out_dir``, in that order.
    """
    modes = [result.summary.get("start_mode", ""), result.summary.get("end_mode", "")]
    run = run_metadata(scenario.name, scenario.source_text, result.seed, modes, command)
    tables = report_tables(result, run)
    names = (("migration_steps", STEPS_FILE), ("migration_nodes", NODES_FILE), ("migration_pods", PODS_FILE))
    with staged_folder(out_dir) as folder:
        for kind, name in names:
            write_ipc(folder / name, tables[kind])
        write_run_json(folder, run, recorded_out=published_path(out_dir))
    return [Path(out_dir) / name for _, name in names] + [Path(out_dir) / RUN_FILE]


__all__ = ["NODES_FILE", "NODES_SCHEMA", "PODS_FILE", "PODS_SCHEMA", "STEPS_FILE", "STEPS_SCHEMA", "SUMMARY_KEY",
           "report_tables", "write_report"]
