"""Atomic file writes: readers see the old file or the new one, never half of one.

Every writer in ipam_core (traces, ``summary.csv``, reports, plots) goes
through :func:`atomic_write`. The data go to a hidden temporary file in the
destination's folder (same file system, so the final :func:`os.replace` is an
atomic rename), are flushed and fsync'd, and only then replace ``path``. If
anything raises inside the ``with`` block, the temporary file is removed and
an existing file at ``path`` is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "is_temp_file", "remove_temp_files", "stop_point"]

_WRITE_MODES = {"w": "w", "wt": "w", "wb": "wb"}
_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")  # what _create_temp makes
#: Test hook (tests/test_kill.py): the point at which a writer stops itself so a test can kill it there.
STOP_AT_ENV = "IPAM_BENCH_TEST_STOP_AT"


def stop_point(name: str) -> None:
    """Stop this process (SIGSTOP) if the environment variable :data:`STOP_AT_ENV` names ``name``.

    Parameters
    ----------
    name : str
        The point reached: ``"FILE.tmp"`` (a file's data written and synced, not
        renamed yet), ``"FILE"`` (renamed into place) or a step of
        :meth:`ipam_core.rundir.RunPublisher.publish`.

    Notes
    -----
    A test hook only: it lets tests kill a writer at an exact point of its
    output instead of at a lucky moment. The variable may be a shell-style
    pattern (``*.arrow.tmp``: the first such file) for files whose names are
    not known in advance. Unset (always, outside tests), it
    costs one dictionary look-up.
    """
    wanted = os.environ.get(STOP_AT_ENV)
    if wanted and hasattr(signal, "SIGSTOP") and fnmatch.fnmatchcase(name, wanted):
        os.kill(os.getpid(), signal.SIGSTOP)


def _create_temp(directory: Path, name: str) -> tuple[int, Path]:
    """Create an exclusive temporary file next to ``name``; the umask applies as for a plain open()."""
    while True:
        temp = directory / f".{name}.{secrets.token_hex(6)}{_TEMP_SUFFIX}"
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), temp
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue


def is_temp_file(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`atomic_write` (``.NAME.<12 hex>.tmp``).

    Parameters
    ----------
    name : str
        A file name, without its folder.

    Returns
    -------
    bool
    """
    return _TEMP_NAME.match(name) is not None


def remove_temp_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files a killed :func:`atomic_write` left in ``directory``.

    Parameters
    ----------
    directory : str or os.PathLike
        A folder (missing: nothing to do). Call it only while no other process
        writes there (holding the folder's lock).

    Returns
    -------
    list of pathlib.Path
        The files deleted.
    """
    folder = Path(directory)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.iterdir() if is_temp_file(p.name) and p.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not possible (nor needed) on every platform."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "wb", *, encoding: str = "utf-8", newline: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` only if the ``with`` block succeeds.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file. Its folder must exist.
    mode : {"wb", "w", "wt"}
        Binary (default) or text mode.
    encoding : str
        Text encoding, used in text mode only.
    newline : str or None
        Passed to :func:`open` in text mode (``""`` keeps line endings as written).

    Yields
    ------
    file object
        Writable file; do not close it yourself.

    Raises
    ------
    ValueError
        If ``mode`` is not a write mode listed above.
    FileNotFoundError
        If the folder of ``path`` does not exist.

    Notes
    -----
    On success the data are fsync'd, the temporary file is renamed over
    ``path`` with :func:`os.replace` and the folder is fsync'd. On any
    exception (including ``KeyboardInterrupt``) the temporary file is deleted,
    ``path`` is untouched and the exception propagates. New files get the
    usual ``0o666 & ~umask`` permissions; an existing file keeps its own.
    """
    if mode not in _WRITE_MODES:
        raise ValueError(f"atomic_write mode {mode!r} is not supported (expected one of 'wb', 'w', 'wt')")
    target = Path(path)
    directory = target.parent
    fd, temp = _create_temp(directory, target.name)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temp, os.stat(target).st_mode & 0o7777)
        if _WRITE_MODES[mode] == "wb":
            handle: IO[Any] = os.fdopen(fd, "wb")
        else:
            handle = os.fdopen(fd, "w", encoding=encoding, newline=newline)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        stop_point(target.name + _TEMP_SUFFIX)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)
    stop_point(target.name)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its folder must exist.
    data : bytes-like
        The complete new contents.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically, line endings unchanged.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its folder must exist.
    text : str
        The complete new contents.
    encoding : str
        Text encoding (UTF-8 by default).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with atomic_write(path, "w", encoding=encoding, newline="") as handle:
        handle.write(text)
    return Path(path)
