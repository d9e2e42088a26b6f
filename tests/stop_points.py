"""Waiting for a writer that stops itself at a stop point (``IPAM_BENCH_TEST_STOP_AT``, see
:func:`ipam_core.atomic.stop_point`), shared by the kill tests."""

from __future__ import annotations

import os
import subprocess
import time


def wait_for_stop(proc: subprocess.Popen, timeout_s: float) -> int | None:
    """Poll ``proc`` until it stops itself (SIGSTOP) or ends.

    Returns
    -------
    int or None
        None when it stopped (it is left stopped for the caller to kill), else its exit code.

    Raises
    ------
    TimeoutError
        Neither happened within ``timeout_s``; the process is still running.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid, status = os.waitpid(proc.pid, os.WNOHANG | os.WUNTRACED)
        if pid:
            if os.WIFSTOPPED(status):
                return None
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode
        time.sleep(0.005)
    raise TimeoutError(f"{proc.args} neither stopped nor ended within {timeout_s:g} s")
