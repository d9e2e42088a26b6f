"""Dask worker plugin: warm the engine's compiled kernels once per worker (needs ``distributed``)."""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

from ipam_core.sweep.tasks import warm_worker

__all__ = ["WarmEngine"]


class WarmEngine(WorkerPlugin):
    """Load the engine from the worker's Numba cache (or compile it) when the worker starts."""

    def setup(self, worker) -> None:
        """Called by Dask on every worker, current and future.

        Parameters
        ----------
        worker : distributed.Worker
        """
        warm_worker()
