"""The Dask executor's batches and the LocalCluster it starts (settings that decide its speed)."""

from __future__ import annotations

import os

import pytest

from ipam_core.sweep.executors import _guided_batches


@pytest.mark.parametrize("n, threads", [(1000, 2), (200, 2), (7, 2), (1, 1), (5000, 8), (64, 4)])
def test_guided_batches_keep_every_task_once_in_order_and_shrink(n, threads):
    batches = _guided_batches(list(range(n)), threads, most=64, least=4, share=2)
    assert [t for b in batches for t in b] == list(range(n))
    sizes = [len(b) for b in batches]
    assert sizes == sorted(sizes, reverse=True) and max(sizes) <= 64
    assert all(size >= 4 for size in sizes[:-1])
    # the tail a worker can be left with is a small batch, not a big one
    assert sizes[-1] <= 4


def test_guided_batches_of_a_thousand_tasks_on_two_threads_are_few():
    sizes = [len(b) for b in _guided_batches(list(range(1000)), 2, most=64, least=4, share=2)]
    assert sizes[0] == 64 and len(sizes) < 40  # a few dozen scheduler round trips, not one per task


def test_local_cluster_workers_keep_glibc_malloc_defaults_and_do_not_profile(monkeypatch):
    pytest.importorskip("distributed")
    from distributed import Client

    from ipam_core.sweep.executors import start_local_cluster

    # a Dask nanny sets MALLOC_TRIM_THRESHOLD_ in its own process too: start from an environment without it
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with start_local_cluster(1) as cluster, Client(cluster) as client:
        seen = client.run(lambda dask_worker: (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                                               sorted(dask_worker.periodic_callbacks)))
    [(trim, callbacks)] = seen.values()
    assert trim is None
    assert "profile" not in callbacks and "heartbeat" in callbacks
