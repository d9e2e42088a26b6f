"""Publish a run's output folder as a whole: readers see the previous run or the new one, never a mix.

Writing each file atomically is not enough: a run killed half-way through
leaves the new ``trace.arrow`` beside the old ``nodes.arrow``. A
:class:`RunPublisher` therefore writes every file of a run into a hidden
sibling folder ``.NAME.staging-<token>``, writes ``manifest.json`` (run id,
every file with its size and sha256) last, and then swaps the staging folder
with ``NAME`` in one step:

* on Linux, ``renameat2(RENAME_EXCHANGE)`` exchanges the two folders
  atomically; the previous run, now under the staging name, is deleted;
* elsewhere (or on a file system that refuses the exchange) ``NAME`` is
  renamed aside to ``.NAME.old-<token>``, the staging folder renamed to
  ``NAME``, and the aside folder deleted. A crash between the two renames
  leaves no ``NAME``; the next writer restores the aside folder.

An exclusive lock (``fcntl.flock`` on ``.NAME.lock`` beside the folder) is
held from before the simulation to the end of the swap, so a second writer to
the same folder fails at once with one line. Under the lock, a writer first
recovers what a killed writer left: it deletes stale staging and aside
folders and restores a lone aside folder when ``NAME`` is missing.

Readers (:mod:`ipam_core.trace.reader`) call :func:`check_member`, which
refuses a file whose hash differs from the folder's manifest.

Library writers (``write_run``, ``write_report``) publish through
:func:`staged_folder`; handed the staging folder of a publisher that is
already open in this process, they write into it and leave the publishing to
its owner, so a command can stage traces, CSV and figures and publish them
together. A sweep that fills a folder point by point can hold
:class:`OutputLock` on its folder and publish each point's sub-folder with a
:class:`RunPublisher`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from ipam_core.atomic import atomic_write_text, is_temp_file, remove_temp_files, stop_point
from ipam_core.errors import ConfigError

try:  # POSIX; without it (Windows) writers are not serialised
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = [
    "MANIFEST_FILE",
    "ManifestError",
    "OutputDirError",
    "OutputLock",
    "RunPublisher",
    "check_member",
    "check_output_dir",
    "check_output_path",
    "published_path",
    "read_manifest",
    "recover",
    "staged_folder",
    "verify_run",
]

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "ipam-bench-run/1"
#: Files an ipam-bench run writes; a folder holding anything else is not replaced.
RUN_FILES = ("trace.arrow", "nodes.arrow", "summary.csv", "run.json", "*.png", "migration_*.arrow", "migration_*.csv",
             MANIFEST_FILE)
_STAGING, _ASIDE, _LOCK = ".staging-", ".old-", ".lock"
_RENAME_EXCHANGE = 2  # linux/fs.h

# staging folders of the publishers open in this process -> nested writers join them
_OPEN_STAGES: set[Path] = set()


class OutputDirError(ConfigError):
    """The output folder cannot take a run: bad path, not writable, foreign files, or busy."""


class ManifestError(ConfigError):
    """A run folder's files do not match its manifest (two runs mixed, or a file changed)."""


# ---------------------------------------------------------------- checks before any work
def _entries_not_from_a_run(folder: Path) -> list[str]:
    listed = set((read_manifest(folder) or {}).get("files", {}))
    foreign = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if entry.is_dir() and not entry.is_symlink():
            foreign.append(name + "/")
        elif name not in listed and not is_temp_file(name) and not any(fnmatch.fnmatch(name, p) for p in RUN_FILES):
            foreign.append(name)
    return foreign


def check_output_path(path: str | os.PathLike[str], *, label: str = "output folder") -> Path:
    """Check that ``path`` names a folder that can be created or written, whatever it holds.

    Parameters
    ----------
    path : str or os.PathLike
        The output folder; it may be missing.
    label : str
        How messages name the folder.

    Returns
    -------
    pathlib.Path
        The folder (a symbolic link is followed to its target).

    Raises
    ------
    OutputDirError
        One line naming the folder when it is empty text, the current folder
        or one holding it, a file, under a file, or in a folder that cannot
        be written.

    Notes
    -----
    The checks of :func:`check_output_dir` on the path alone, without those on
    the folder's files: a sweep folder (:mod:`ipam_core.sweep.folder`) applies
    its own.
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise OutputDirError(f"{label} {text!r}: expected a folder path, got empty text")
    folder = Path(text).expanduser()
    if folder.is_symlink():
        folder = Path(os.path.realpath(folder))
    absolute = Path(os.path.abspath(folder))
    cwd = Path.cwd()
    if absolute == cwd or absolute in cwd.parents or absolute.name in ("", ".", ".."):
        raise OutputDirError(f"{label} {text!r} is the current folder or holds it; expected a folder of its own "
                             "for the run (e.g. out/run)")
    if folder.exists() and not folder.is_dir():
        raise OutputDirError(f"{label} {text!r} is a file; expected a folder")
    ancestor = absolute.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputDirError(f"{label} {text!r}: {str(ancestor)!r} is a file; expected a path under a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputDirError(f"{label} {text!r}: cannot create files in {str(ancestor)!r} (permission denied); "
                             "expected a writable folder")
    return folder


def check_output_dir(path: str | os.PathLike[str], *, label: str = "output folder", carry_over: bool = False) -> Path:
    """Check that ``path`` can take a run's files, before any work is done.

    Parameters
    ----------
    path : str or os.PathLike
        The output folder. It may be missing (it and its parents are created
        when the run is published).
    label : str
        How messages name the folder (``"--out"`` in the command line).
    carry_over : bool
        The folder's files are kept (``ipam-bench plot`` adds figures), so
        files from elsewhere do not make it unusable.

    Returns
    -------
    pathlib.Path
        The folder to publish to (a symbolic link is followed to its target).

    Raises
    ------
    OutputDirError
        One line naming the folder when it is empty text, the current folder
        or one holding it, a file, under a file, in a folder that cannot be
        written, or a folder holding files no ipam-bench run wrote.
    """
    text = os.fspath(path)
    folder = check_output_path(path, label=label)
    absolute = Path(os.path.abspath(folder))
    if folder.is_dir():
        if not os.access(absolute.parent, os.W_OK | os.X_OK):
            raise OutputDirError(f"{label} {text!r}: cannot replace it, {str(absolute.parent)!r} is not writable; "
                                 "expected a writable folder")
        foreign = _entries_not_from_a_run(folder)
        if carry_over:  # the files are kept; only folders inside would be lost
            foreign = [name for name in foreign if name.endswith("/")]
        if foreign:
            shown = ", ".join(repr(n) for n in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                                                else "")
            raise OutputDirError(f"{label} {text!r} holds {shown}, which no ipam-bench run wrote; expected a new "
                                 "or empty folder, or the folder of a previous run")
    return folder


def _oserror(label: str, text: str, what: str, exc: OSError) -> OutputDirError:
    where = f" {str(exc.filename)!r}" if exc.filename else ""
    return OutputDirError(f"{label} {text!r}: cannot {what}{where}: {exc.strerror or exc}; expected a writable folder")


# ---------------------------------------------------------------- lock
class OutputLock:
    """An exclusive, non-blocking lock on an output folder (``.NAME.lock`` beside it).

    Parameters
    ----------
    folder : pathlib.Path
        The output folder; its parent must exist.
    label : str
        How the one-line error names the folder.

    Raises
    ------
    OutputDirError
        On entering, when another process holds the lock (its pid is named).

    Notes
    -----
    ``flock`` locks are released by the kernel when the holder dies, so a
    killed writer never blocks the next one. The lock file is removed on
    release; a writer that locked a file someone removed meanwhile retries on
    the new one.
    """

    def __init__(self, folder: Path, label: str = "output folder"):
        self.path = folder.parent / f".{folder.name}{_LOCK}"
        self.folder, self.label = folder, label
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        if fcntl is None:  # pragma: no cover
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                who = f" (pid {holder})" if holder.isdigit() else ""
                raise OutputDirError(f"{self.label} {str(self.folder)!r} is being written by another "
                                     f"ipam-bench{who}; expected one writer per folder at a time") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                self._fd = fd
                return self
            os.close(fd)  # the holder removed the file as we opened it: lock the new one

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def published_path(folder: str | os.PathLike[str]) -> Path:
    """The folder a staging folder will be published as (any other folder is its own).

    Parameters
    ----------
    folder : str or os.PathLike
        A run folder, or the staging folder ``.NAME.staging-<id>`` of one.

    Returns
    -------
    pathlib.Path
        ``NAME`` beside the staging folder, or ``folder`` itself.
    """
    path = Path(folder)
    match = re.fullmatch(r"\.(.+)" + re.escape(_STAGING) + r"[0-9a-f]{8}", path.name)
    return path.parent / match.group(1) if match else path


# ---------------------------------------------------------------- recovery
def _siblings(folder: Path, marker: str) -> list[Path]:
    # exactly NAME's: not the staging folder of a folder called "NAME.staging-x"
    pattern = re.compile(re.escape(f".{folder.name}{marker}") + r"[0-9a-f]{8}")
    try:
        return sorted(p for p in folder.parent.iterdir() if pattern.fullmatch(p.name))
    except FileNotFoundError:
        return []


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def recover(folder: str | os.PathLike[str]) -> None:
    """Undo what a killed writer left beside ``folder``; call it holding :class:`OutputLock`.

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder.

    Notes
    -----
    Staging folders are deleted (a staging folder seen under the lock belongs
    to no live writer). When ``folder`` is missing, the newest aside folder
    (the previous run, moved aside just before the crash) is renamed back;
    every other aside folder is deleted. Stray temporary files inside
    ``folder`` are deleted.
    """
    folder = Path(folder)
    for staging in _siblings(folder, _STAGING):
        _remove_tree(staging)
    asides = sorted(_siblings(folder, _ASIDE), key=lambda p: p.stat().st_mtime)
    if asides and not folder.exists():
        os.rename(asides.pop(), folder)
        _fsync_dir(folder.parent)
    for aside in asides:
        _remove_tree(aside)
    remove_temp_files(folder)


# ---------------------------------------------------------------- manifest
def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _manifest_of(folder: Path) -> dict:
    files = {}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name == MANIFEST_FILE:
            continue
        if is_temp_file(entry.name):
            entry.unlink(missing_ok=True)
            continue
        if not entry.is_file():
            raise OutputDirError(f"{str(entry)!r} is not a file; a run folder holds files only")
        files[entry.name] = {"bytes": entry.stat().st_size, "sha256": _sha256(entry)}
    digest = hashlib.sha256()
    for name, info in files.items():
        digest.update(f"{name}\0{info['sha256']}\n".encode())
    # the id is the content's: the same files give the same id, any other file another
    return {"format": MANIFEST_FORMAT, "run_id": digest.hexdigest()[:16], "files": files}


def read_manifest(folder: str | os.PathLike[str]) -> dict | None:
    """The manifest of a run folder, or ``None`` when it has none (folders from before manifests).

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    dict or None
        ``{"format", "run_id", "files": {name: {"bytes", "sha256"}}}``.

    Raises
    ------
    ManifestError
        The manifest is not JSON or not an ipam-bench manifest.
    """
    path = Path(folder) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{str(path)!r} is unreadable ({exc.__class__.__name__}); expected an ipam-bench "
                            "run manifest") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT \
            or not isinstance(manifest.get("files"), dict):
        raise ManifestError(f"{str(path)!r} is not an ipam-bench run manifest (expected format {MANIFEST_FORMAT!r})")
    return manifest


def check_member(path: str | os.PathLike[str]) -> None:
    """Refuse a file whose folder's manifest does not list it with the same hash.

    Parameters
    ----------
    path : str or os.PathLike
        A file inside a run folder. Folders without a manifest pass.

    Raises
    ------
    ManifestError
        The file is not listed or its sha256 differs: it comes from another run.
    """
    path = Path(path)
    manifest = read_manifest(path.parent)
    if manifest is None:
        return
    entry = manifest["files"].get(path.name)
    if entry is None or _sha256(path) != entry.get("sha256"):
        problem = "is not part of" if entry is None else "differs from the file of"
        raise ManifestError(f"{str(path)!r} {problem} run {manifest.get('run_id')} ({MANIFEST_FILE}); the folder "
                            "mixes files of two runs, expected the files of one run")


def verify_run(folder: str | os.PathLike[str]) -> dict:
    """Check that a run folder holds exactly the files of its manifest, unchanged.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    ManifestError
        No manifest, a listed file missing or changed, or a file not listed.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise ManifestError(f"{str(folder)!r} has no {MANIFEST_FILE}; expected a folder written by ipam-bench")
    present = {p.name for p in folder.iterdir()} - {MANIFEST_FILE}
    listed = set(manifest["files"])
    if present != listed:
        extra, missing = sorted(present - listed), sorted(listed - present)
        raise ManifestError(f"{str(folder)!r} holds {extra} beyond and lacks {missing} of run "
                            f"{manifest['run_id']}; expected exactly the files of its {MANIFEST_FILE}")
    for name in sorted(listed):
        check_member(folder / name)
    return manifest


# ---------------------------------------------------------------- publishing
def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _libc_exchange():
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):  # pragma: no cover - not glibc / not Linux
        return None


_EXCHANGE = _libc_exchange()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False when the platform or file system cannot."""
    if _EXCHANGE is None:
        return False
    at_fdcwd = -100
    if _EXCHANGE(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


class RunPublisher:
    """Stage a run's files beside ``folder`` and publish them as a whole.

    Use as a context manager: entering checks the folder, creates its parents,
    takes the lock and recovers what a killed writer left; write files into
    :attr:`staging`; :meth:`publish` writes the manifest and swaps the staging
    folder in. Leaving without publishing (an error, Ctrl-C) deletes the
    staging folder and the parents it created: ``folder`` is left as it was.

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder.
    label : str
        How messages name it (``"--out"`` in the command line).
    carry_over : bool
        Start the staging folder with the current folder's files (hard links),
        to add files to a published run. A folder with a manifest must match
        it (:func:`verify_run`).

    Raises
    ------
    OutputDirError
        On entering: see :func:`check_output_dir`, or another writer holds
        the folder, or its parent cannot be created.
    ManifestError
        With ``carry_over``, on first use of :attr:`staging`: the folder's
        files do not match its manifest.
    """

    def __init__(self, folder: str | os.PathLike[str], *, label: str = "output folder", carry_over: bool = False):
        self.text = os.fspath(folder)
        self.label = label
        self.carry_over = carry_over
        self.folder = Path(self.text)
        self.published: dict | None = None
        self._staging: Path | None = None
        self._lock: OutputLock | None = None
        self._created: list[Path] = []

    # -- entering
    def __enter__(self) -> RunPublisher:
        self.folder = check_output_dir(self.text, label=self.label, carry_over=self.carry_over)
        missing = []  # parents to create, innermost first; removed again if nothing gets published
        parent = Path(os.path.abspath(self.folder)).parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        try:
            for directory in reversed(missing):
                directory.mkdir()
                self._created.append(directory)
            self._lock = OutputLock(self.folder, self.label).__enter__()
        except OutputDirError:
            self._remove_created()
            raise
        except OSError as exc:
            self._remove_created()
            raise _oserror(self.label, self.text, "create", exc) from None
        try:
            recover(self.folder)
        except BaseException:
            self._release()
            raise
        return self

    @property
    def staging(self) -> Path:
        """The hidden folder the run's files go to, created on first use."""
        if self._staging is None:
            if self._lock is None:
                raise RuntimeError("RunPublisher.staging used outside its with block")
            path = self.folder.parent / f".{self.folder.name}{_STAGING}{secrets.token_hex(4)}"
            try:
                path.mkdir()
            except OSError as exc:
                raise _oserror(self.label, self.text, "create", exc) from None
            self._staging = path
            _OPEN_STAGES.add(path.resolve())
            if self.carry_over and self.folder.is_dir():
                if read_manifest(self.folder) is not None:
                    verify_run(self.folder)  # carry one run's files over, not a mix
                for entry in self.folder.iterdir():
                    if entry.is_file() and entry.name != MANIFEST_FILE and not is_temp_file(entry.name):
                        try:
                            os.link(entry, path / entry.name)
                        except OSError:  # no hard links on this file system
                            shutil.copy2(entry, path / entry.name)
        return self._staging

    # -- publishing
    def publish(self) -> dict:
        """Write the manifest into the staging folder and swap it in for the folder.

        Returns
        -------
        dict
            The manifest (:func:`read_manifest`).
        """
        staging = self.staging
        stop_point("publish:staged")
        manifest = _manifest_of(staging)
        atomic_write_text(staging / MANIFEST_FILE, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        _fsync_dir(staging)
        folder = self.folder
        if not folder.exists():
            os.rename(staging, folder)
        elif _exchange(staging, folder):
            stop_point("publish:swapped")  # the previous run now sits under the staging name
            _fsync_dir(folder.parent)
        else:
            aside = folder.parent / f".{folder.name}{_ASIDE}{secrets.token_hex(4)}"
            os.rename(folder, aside)
            stop_point("publish:aside")  # no folder now: the next writer restores the aside one
            os.rename(staging, folder)
            staging = aside
        _fsync_dir(folder.parent)
        self.published = manifest
        stop_point("publish:published")
        _OPEN_STAGES.discard(self._staging.resolve())
        _remove_tree(staging)
        self._staging = None
        return manifest

    # -- leaving
    def _remove_created(self) -> None:
        for directory in reversed(self._created):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if still empty
        self._created = []

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None
        if self.published is None:
            self._remove_created()

    def __exit__(self, *exc) -> None:
        try:
            if self._staging is not None:
                _OPEN_STAGES.discard(self._staging.resolve())
                _remove_tree(self._staging)
                self._staging = None
        finally:
            self._release()


@contextlib.contextmanager
def staged_folder(folder: str | os.PathLike[str], *, label: str = "output folder",
                  carry_over: bool = False) -> Iterator[Path]:
    """A folder to write a run's files into, published as a whole when the block succeeds.

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder, or the :attr:`RunPublisher.staging` folder of a
        publisher open in this process (then the files join its run and its
        owner publishes them).
    label : str
        How messages name the folder.
    carry_over : bool
        Start from the folder's current files (:class:`RunPublisher`), to add
        files to a published run.

    Yields
    ------
    pathlib.Path
        Where to write the files.

    Raises
    ------
    OutputDirError
        As :class:`RunPublisher`.
    """
    path = Path(folder)
    if path.is_dir() and path.resolve() in _OPEN_STAGES:
        yield path
        return
    with RunPublisher(path, label=label, carry_over=carry_over) as publisher:
        yield publisher.staging
        publisher.publish()
