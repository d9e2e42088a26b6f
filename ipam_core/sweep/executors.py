"""Where sweep tasks run: local worker processes, or a Dask cluster.

Both take the same :class:`~ipam_core.sweep.tasks.Task` list and yield the same
small summaries (:func:`~ipam_core.sweep.tasks.run_task`) as tasks finish, in
whatever order they finish; the caller writes each one at once and sorts at the
end, so the table does not depend on the executor.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

from ipam_core.errors import ConfigError
from ipam_core.sweep.tasks import Task, run_batch, warm_worker

__all__ = ["MAX_WORKERS", "MAX_WORKERS_WHY", "DaskSession", "connect_dask", "default_workers", "run_dask", "run_local"]

#: Most worker processes (or local Dask workers) a sweep starts: each holds a Python process and its kernels.
MAX_WORKERS = 256
MAX_WORKERS_WHY = "each worker is a process of its own; more than this exhausts a host's memory and process table"


def default_workers() -> int:
    """Worker processes by default: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _context():
    """fork when this process is single-threaded: workers inherit the parent's compiled kernels.

    With other threads alive (a progress bar, a Dask client) a fork could copy a lock some thread
    holds, so workers start from a clean fork server instead and load the kernels from the cache.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["ipam_core.sweep.tasks"])  # imports done once, in the server
        return ctx
    return multiprocessing.get_context("spawn")


#: Batches per worker at least (for load balance) and sweep tasks per batch at most.
_BATCHES_PER_THREAD = 8
_MAX_BATCH = 8


#: On Dask each batch is a scheduler round trip: fewer, larger batches (measured, 1,000 default points on a
#: 2-worker LocalCluster: 2.4 s with 2 per thread and up to 64 tasks, 2.7 s with 8 and 8).
_DASK_BATCHES_PER_THREAD = 2
_DASK_MAX_BATCH = 64


def _batches(tasks: list[Task], threads: int, per_thread: int = _BATCHES_PER_THREAD,
             most: int = _MAX_BATCH) -> list[list[Task]]:
    """Cut tasks into consecutive batches: about ``per_thread`` per worker thread, at most ``most`` tasks each."""
    size = max(1, min(most, len(tasks) // (threads * per_thread)))
    return [tasks[i : i + size] for i in range(0, len(tasks), size)]


def run_local(tasks: list[Task], workers: int) -> Iterator[dict]:
    """Run tasks in ``workers`` local processes (``concurrent.futures``).

    Parameters
    ----------
    tasks : list of Task
    workers : int
        Worker processes (≥ 1).

    Yields
    ------
    dict
        Each task's summary, as its batch finishes (batches of up to 8 consecutive tasks,
        at least 8 batches per worker).

    Notes
    -----
    When this process is single-threaded the engine is warmed here first and the workers
    are forked: they inherit the compiled kernels. Otherwise they start from a fork server.
    Each worker runs :func:`~ipam_core.sweep.tasks.warm_worker` as its initializer (a no-op
    when inherited, else a load from the Numba cache).
    """
    if not tasks:
        return
    ctx = _context()
    if ctx.get_start_method() == "fork":
        warm_worker()
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx, initializer=warm_worker) as pool:
        # batches: a worker never waits on the parent between two short runs (the pool queues one call ahead)
        futures = [pool.submit(run_batch, batch) for batch in _batches(tasks, workers)]
        try:
            for fut in as_completed(futures):
                yield from fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


class DaskSession:
    """A connected Dask client (and the LocalCluster it owns, for ``local``); close it when done."""

    def __init__(self, client, cluster=None):
        self.client = client
        self.cluster = cluster

    def close(self) -> None:
        """Close the client, then the local cluster if there is one."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def connect_dask(address: str, workers: int) -> DaskSession:
    """Connect to a Dask scheduler, or start a LocalCluster, and register the warm-up plugin.

    Parameters
    ----------
    address : str
        ``tcp://host:8786`` of a running scheduler, or ``local`` for a
        :class:`distributed.LocalCluster` of ``workers`` single-threaded processes.
    workers : int
        Workers of the local cluster (ignored for a remote scheduler).

    Returns
    -------
    DaskSession

    Raises
    ------
    ConfigError
        Dask is not installed (``pip install 'ipam-bench[dask]'``), or the scheduler
        cannot be reached.

    Notes
    -----
    Every worker warms the engine once through a worker plugin
    (:class:`ipam_core.sweep.dask_plugin.WarmEngine`) and keeps its own Numba cache
    (its ``NUMBA_CACHE_DIR`` or ``~/.cache/ipam-bench``).
    """
    try:
        from distributed import Client, LocalCluster

        from ipam_core.sweep.dask_plugin import WarmEngine
    except ImportError:
        raise ConfigError("--dask needs Dask: pip install 'ipam-bench[dask]'") from None
    cluster = None
    try:
        if address == "local":
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise ConfigError(f"--dask {address}: cannot reach the scheduler ({' '.join(str(exc).split())}); expected "
                          "tcp://HOST:PORT of a running dask scheduler, or local") from None
    client.register_plugin(WarmEngine(), name="ipam-bench-warm-engine")
    return DaskSession(client, cluster)


def run_dask(tasks: list[Task], session: DaskSession) -> Iterator[dict]:
    """Run tasks on a connected Dask cluster (see :func:`connect_dask`).

    Parameters
    ----------
    tasks : list of Task
    session : DaskSession

    Yields
    ------
    dict
        Each task's summary, as its batch finishes; only these small summaries travel back.
        Tasks go to the workers in batches of up to 64 (at least 2 batches per worker thread),
        so the scheduler handles a few dozen Dask tasks, not one per point.

    Notes
    -----
    With ``--keep-traces`` the workers write the traces themselves: the sweep folder
    must then be on a file system they share.
    """
    if not tasks:
        return
    from distributed import as_completed as dask_completed

    batches = _batches(tasks, max(1, sum(session.client.nthreads().values())), _DASK_BATCHES_PER_THREAD,
                       _DASK_MAX_BATCH)
    futures = session.client.map(run_batch, batches, pure=False)
    try:
        for fut in dask_completed(futures):
            yield from fut.result()
            fut.release()
    except BaseException:
        session.client.cancel(futures)
        raise
