"""The sweep folder: checked before any point runs, one sweep per folder, one writer at a time.

A sweep folder fills point by point (``points/*.arrow``) and is meant to be resumed, so it
is not published as a whole like a run folder (:mod:`ipam_core.rundir`). Instead:

* before anything runs, the path is checked as for a run (:func:`ipam_core.rundir.check_output_path`)
  and the folder's files must all be a sweep's; a run folder of another command, files no
  sweep wrote, or the ``spec.yaml`` of a *different* sweep are refused with one line;
* the writer holds :class:`ipam_core.rundir.OutputLock` on the folder for the whole command,
  so a second writer fails at once with one line;
* under the lock, the temporary files a killed writer left are deleted;
* every file is written atomically (:mod:`ipam_core.atomic`), and the final files
  (``sweep.parquet``, ``aggregate.csv``, figures) are rebuilt from ``points/`` by every run,
  so a rerun after a kill resumes and rewrites them.

"The same sweep" means the same spec but for the values of its axes (and ``samples``, and a
size search's values and target): a spec that adds mask values to a finished sweep resumes it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
from collections.abc import Iterator
from pathlib import Path

import yaml

from ipam_core.atomic import is_temp_file, remove_temp_files
from ipam_core.rundir import MANIFEST_FILE, OutputDirError, OutputLock, check_output_path
from ipam_core.sweep.results import POINTS_DIR

__all__ = ["SPEC_FILE", "SWEEP_ENTRIES", "check_sweep_dir", "hold_sweep_dir"]

SPEC_FILE = "spec.yaml"
#: What a sweep or size command (and ``report``, ``plot``) writes into a sweep folder.
SWEEP_ENTRIES = (SPEC_FILE, "sweep.parquet", "sweep.json", "aggregate.csv", "size.csv", "report.html", "sweep-*.png",
                 POINTS_DIR + "/", "traces/")
_RUN_MARKERS = (MANIFEST_FILE, "trace.arrow", "nodes.arrow", "migration_steps.arrow")

# sweep folders this process holds the lock of: nested holders (run_size -> run_sweep) join it
_HELD: set[Path] = set()


def _identity(text: str):
    """A spec's text without what may change within one sweep: axis values, samples, size values."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if not isinstance(doc, dict):
        return text
    doc = dict(doc)
    doc.pop("samples", None)
    if isinstance(doc.get("axes"), dict):
        doc["axes"] = list(map(str, doc["axes"]))  # names in order: the order of the table's columns
    size = doc.get("size")
    if isinstance(size, dict) and isinstance(size.get("search"), dict):
        # the target only judges the runs (``--target`` overrides it): the searched axes identify the sweep
        doc["size"] = {mode: {k: v for k, v in s.items() if k != "values"} if isinstance(s, dict) else s
                       for mode, s in size["search"].items()}
    return doc


def _foreign(folder: Path) -> list[str]:
    names = []
    for entry in sorted(folder.iterdir()):
        shown = entry.name + ("/" if entry.is_dir() else "")
        if is_temp_file(entry.name):
            continue  # a killed writer's temporary file: deleted under the lock
        if not any(fnmatch.fnmatchcase(shown, pattern) for pattern in SWEEP_ENTRIES):
            names.append(shown)
    return names


def check_sweep_dir(path: str | os.PathLike[str], spec_text: str | None = None, *, label: str = "sweep folder") -> Path:
    """Check that ``path`` can take a sweep's files, before any point runs; nothing is written.

    Parameters
    ----------
    path : str or os.PathLike
        The sweep folder; it may be missing.
    spec_text : str, optional
        The spec about to run; a folder holding another sweep's ``spec.yaml`` is refused.
        ``None`` (``ipam-bench report``): any sweep.
    label : str
        How messages name the folder (``"--out"`` in the command line).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OutputDirError
        One line naming the folder: a bad path (:func:`ipam_core.rundir.check_output_path`),
        a folder that cannot be written, a run folder of another command, files no sweep
        wrote, or the ``spec.yaml`` of a different sweep.
    """
    folder = check_output_path(path, label=label)
    text = os.fspath(path)
    if not folder.is_dir():
        return folder
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputDirError(f"{label} {text!r}: cannot create files in it (permission denied); expected a "
                             "writable folder")
    run = [name for name in _RUN_MARKERS if (folder / name).exists()]
    if run:
        raise OutputDirError(f"{label} {text!r} holds a run of another ipam-bench command ({run[0]}); expected a "
                             "new or empty folder, or a sweep folder")
    foreign = _foreign(folder)
    if foreign:
        shown = ", ".join(repr(n) for n in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputDirError(f"{label} {text!r} holds {shown}, which no ipam-bench sweep wrote; expected a new or "
                             "empty folder, or a sweep folder")
    spec_file = folder / SPEC_FILE
    if spec_text is not None and spec_file.is_file():
        try:
            old = spec_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            old = None
        if old is None or _identity(old) != _identity(spec_text):
            raise OutputDirError(f"{label} {text!r} holds another sweep: its {SPEC_FILE} differs from this spec (not "
                                 "only in axis values); expected a new folder, or that sweep's spec to resume it")
    return folder


@contextlib.contextmanager
def hold_sweep_dir(path: str | os.PathLike[str], spec_text: str | None = None, *,
                   label: str = "sweep folder") -> Iterator[Path]:
    """Check a sweep folder, create it, lock it and clean a killed writer's temporary files.

    Parameters
    ----------
    path : str or os.PathLike
    spec_text : str, optional
        As for :func:`check_sweep_dir`.
    label : str
        How messages name the folder.

    Yields
    ------
    pathlib.Path
        The folder, existing and locked until the block ends. Nested calls in this
        process (``size`` runs several sweeps) join the outer hold and only check. Folders
        this call created are removed again if they are still empty at the end.

    Raises
    ------
    OutputDirError
        See :func:`check_sweep_dir`; or another process writes the folder (one line with
        its pid); or it cannot be created. Nothing is created then.
    """
    folder = check_sweep_dir(path, spec_text, label=label)
    key = Path(os.path.abspath(folder))
    if key in _HELD:
        yield folder
        return
    created = []  # the folders this call creates, removed again when the lock is refused
    parent = key
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    try:
        for directory in reversed(created):
            directory.mkdir()
    except OSError as exc:
        _remove_empty(created)
        raise OutputDirError(f"{label} {os.fspath(path)!r}: cannot create {str(exc.filename)!r}: "
                             f"{exc.strerror or exc}; expected a writable folder") from None
    try:
        lock = OutputLock(key, label).__enter__()
    except BaseException:
        _remove_empty(created)
        raise
    _HELD.add(key)
    try:
        check_sweep_dir(path, spec_text, label=label)  # again under the lock: a writer may have finished meanwhile
        for directory in (key, key / POINTS_DIR):
            remove_temp_files(directory)
        yield folder
    finally:
        _HELD.discard(key)
        lock.__exit__(None, None, None)
        _remove_empty(created)  # a command that failed before writing anything leaves no folder behind


def _remove_empty(created: list[Path]) -> None:
    for directory in created:  # innermost first
        with contextlib.suppress(OSError):
            directory.rmdir()
