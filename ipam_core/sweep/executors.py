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

__all__ = ["LOCAL_CLUSTER_CONFIG", "MAX_WORKERS", "MAX_WORKERS_WHY", "DaskSession", "connect_dask", "default_workers",
           "run_dask", "run_local", "start_local_cluster"]

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


#: On Dask each batch is a scheduler round trip (a few ms of scheduler, client and worker time, and an idle gap
#: on the worker): batches start big and shrink as the sweep nears its end (guided self-scheduling), so the
#: workers finish together without a long tail of small round trips.
_DASK_MAX_BATCH = 64
_DASK_MIN_BATCH = 4
#: A Dask batch takes at most 1 / (this × worker threads) of the tasks still to hand out.
_DASK_SHARE = 2


def _guided_batches(tasks: list[Task], threads: int, most: int = _DASK_MAX_BATCH, least: int = _DASK_MIN_BATCH,
                    share: int = _DASK_SHARE) -> list[list[Task]]:
    """Cut tasks into consecutive batches of shrinking size (guided self-scheduling).

    Each batch takes ``ceil(left / (share × threads))`` of the ``left`` tasks not yet
    cut, kept between ``least`` and ``most``: the first batches are large (few round
    trips), the last ones small, so no worker is left with a long batch when the
    others have run out.
    """
    out, start = [], 0
    while start < len(tasks):
        left = len(tasks) - start
        size = max(least, min(most, -(-left // (share * threads))))
        out.append(tasks[start : start + size])
        start += size
    return out


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


#: Dask settings of the LocalCluster a sweep starts (measured on 200 default-scenario tasks in one worker):
#:
#: * Dask's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also turns off glibc's adaptive
#:   mmap threshold: every array of 128 KiB or more is then a fresh mmap, ~35,000 page faults and 6-7 % more
#:   CPU per 200 tasks than a local worker. Left unset, as in a local worker.
#: * Without a dashboard no one reads the workers' profiles; sampling one every 10 ms (and an event-loop health
#:   tick every 20 ms) wakes the worker's event loop, which takes the GIL from the thread running the sweep.
LOCAL_CLUSTER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
}


def start_local_cluster(workers: int):
    """Start a :class:`distributed.LocalCluster` for sweep tasks (needs ``distributed``).

    Parameters
    ----------
    workers : int
        Worker processes, one thread each: a sweep task holds the GIL while it runs.

    Returns
    -------
    distributed.LocalCluster
        No dashboard; workers started with :data:`LOCAL_CLUSTER_CONFIG`.
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set(LOCAL_CLUSTER_CONFIG):  # each worker process gets the configuration at its start
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


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
    ``local`` starts the cluster with :func:`start_local_cluster`.
    Every worker warms the engine once through a worker plugin
    (:class:`ipam_core.sweep.dask_plugin.WarmEngine`) and keeps its own Numba cache
    (its ``NUMBA_CACHE_DIR`` or ``~/.cache/ipam-bench``).
    """
    try:
        from distributed import Client

        from ipam_core.sweep.dask_plugin import WarmEngine
    except ImportError:
        raise ConfigError("--dask needs Dask: pip install 'ipam-bench[dask]'") from None
    cluster = None
    try:
        if address == "local":
            cluster = start_local_cluster(workers)
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
        Tasks go to the workers in batches of 64 down to 4 (:func:`_guided_batches`), so the
        scheduler handles a few dozen Dask tasks, not one per point, and the workers finish
        within a few tasks of each other.

    Notes
    -----
    The first batch of each worker thread is submitted on its own, the others right after,
    and results are gathered on the client's event loop as batches finish.
    With ``--keep-traces`` the workers write the traces themselves: the sweep folder
    must then be on a file system they share.
    """
    if not tasks:
        return
    from distributed import as_completed as dask_completed

    client = session.client
    threads = max(1, sum(client.nthreads().values()))
    batches = _guided_batches(tasks, threads, _DASK_MAX_BATCH, _DASK_MIN_BATCH, _DASK_SHARE)
    # the first batch of each worker thread goes alone: the scheduler takes ~0.1 s to unpack a graph of a
    # thousand tasks' scenarios, time the workers spend on their first batch instead of waiting for it
    futures = client.map(run_batch, batches[:threads], pure=False)
    # results are fetched on the client's event loop as batches finish, not one round trip per batch here
    finished = dask_completed(futures, with_results=True)
    try:
        rest = client.map(run_batch, batches[threads:], pure=False)
        futures += rest
        finished.update(rest)
        for fut, summaries in finished:
            yield from summaries
            fut.release()
    except BaseException:
        client.cancel(futures)
        raise
