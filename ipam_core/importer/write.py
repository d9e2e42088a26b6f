"""Write an imported cluster into ``--out`` as one run folder, after its scenario loads."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import yaml

from ipam_core.errors import ConfigError
from ipam_core.importer.pipeline import Imported
from ipam_core.importer.scenario import INITIAL_STATE_FILE, WORKLOAD_FILE
from ipam_core.rundir import RunPublisher
from ipam_core.scenario import load_scenario
from ipam_core.scenario.initial_state import without_position

SCENARIO_FILE = "scenario.yaml"
#: The files ``ipam-bench import`` writes (plus ``manifest.json``).
IMPORT_FILES = (SCENARIO_FILE, WORKLOAD_FILE, INITIAL_STATE_FILE)
_COLUMNS = ("time", "op", "node", "pod", "namespace", "pool")


def workload_csv(rows: list[dict]) -> bytes:
    """The replay rows as CSV (:mod:`ipam_core.workloads.replay` columns), empty cells for none."""
    table = pa.table({c: pa.array([r[c] for r in rows], pa.float64() if c == "time" else pa.string())
                      for c in _COLUMNS})
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue()


def write_import(imported: Imported, out, *, label: str = "--out") -> list[Path]:
    """Write ``scenario.yaml``, ``workload.csv`` and ``initial-state.json`` into ``out`` as a whole.

    The files go to a staging folder first; the scenario is loaded from there (the same
    validation ``run`` and ``compare`` apply), and only then is the folder published
    (:class:`ipam_core.rundir.RunPublisher`): a refused import writes nothing.

    Parameters
    ----------
    imported : Imported
    out : str or os.PathLike
        The output folder (new, empty, or an earlier import's).
    label : str
        How messages name it.

    Returns
    -------
    list of Path
        The files written, under ``out``.

    Raises
    ------
    ConfigError
        The folder cannot take the files, or the built scenario does not load (the message
        names the file under ``out``).
    """
    with RunPublisher(out, label=label) as publisher:
        staging = publisher.staging
        (staging / WORKLOAD_FILE).write_bytes(workload_csv(imported.rows))
        (staging / INITIAL_STATE_FILE).write_text(json.dumps(imported.initial, indent=1) + "\n", encoding="utf-8")
        try:
            _write_scenario(imported, staging / SCENARIO_FILE)
        except ConfigError as exc:
            final = str(Path(os.fspath(out)) / SCENARIO_FILE)
            message = str(exc).replace(str((staging / SCENARIO_FILE).resolve()), final)
            message = message.replace(str(staging / SCENARIO_FILE), final).replace(str(staging), os.fspath(out))
            raise ConfigError(f"imported scenario refused: {message}") from None
        publisher.publish()
    return [Path(os.fspath(out)) / name for name in IMPORT_FILES]


def _write_scenario(imported: Imported, path: Path) -> None:
    """Write and load the scenario; a state that does not fit its settings is left out, with a note.

    A cluster-pool cluster may hold node CIDRs outside its configured list (the operator
    reports "allocator not configured" for them): the engine cannot place those, so the
    scenario then carves every node CIDR by the mode's rules and says why.
    """
    try:
        _dump_scenario(imported, path)
        load_scenario(path)
    except ConfigError as exc:
        if "initialState" not in imported.scenario or f"initialState: {INITIAL_STATE_FILE}:" not in str(exc):
            raise
        del imported.scenario["initialState"]
        imported.notes.append(f"the run does not start from {INITIAL_STATE_FILE} (the run starts empty and "
                              f"carves by the rules): {without_position(exc)}")
        _dump_scenario(imported, path)
        load_scenario(path)


def _dump_scenario(imported: Imported, path: Path) -> None:
    start = (f"runs of {imported.initial['mode']} start from them" if "initialState" in imported.scenario
             else "the engine carves its own")
    header = ("# Written by ipam-bench import. Run: ipam-bench run THIS_FILE, ipam-bench compare THIS_FILE.\n"
              f"# Node CIDRs and pod addresses as dumped: {INITIAL_STATE_FILE} ({start}).\n")
    notes = "".join(f"# note: {n}\n" for n in imported.notes)
    text = header + notes + yaml.safe_dump(imported.scenario, sort_keys=False, default_flow_style=False)
    path.write_text(text, encoding="utf-8")
